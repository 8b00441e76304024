"""Run the ``skyfleet`` command in-process, as the tests do."""

from __future__ import annotations

import pytest

from skyfleet.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``skyfleet ARGV``: its exit status, stdout and stderr."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    got = capsys.readouterr()
    return code, got.out, got.err
