"""``skyfleet serve --upstream``: bad settings are one line on stderr and exit status 2, before
anything listens or any database is made."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli._run import run


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--upstream", "ftp://fleet.example.com"], "must be http:// or https://"),
        (["--upstream", "fleet.example.com:8000"], "must be http:// or https://"),
        (["--upstream", "http://127.0.0.1:9", "--workers", "2"], "one process"),
        (["--upstream", "http://127.0.0.1:9", "--uplink-retry", "0s"], "must be positive"),
    ],
)
def test_serve_upstream_refuses_bad_settings_in_one_line(
    extra: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "relay.db"
    code, out, err = run(["serve", "--database-url", f"sqlite:///{database}", *extra], capsys)
    assert code == 2, (out, err)
    assert says in err and len(err.strip().splitlines()) == 1, err
    assert not database.exists()
