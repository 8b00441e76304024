"""Helpers shared by the benchmark scripts: machine description, peak memory, output.

Not a benchmark itself. The scripts import it as ``_bench`` (Python puts the script's folder on
``sys.path`` when it runs ``python benchmarks/bench_xxx.py``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

MIB = 1024.0  # ru_maxrss is in KiB on Linux
HERE = Path(__file__).resolve().parent


def machine() -> dict[str, Any]:
    """Where the figures were taken: CPU count, Python and library versions."""
    import numpy
    import scipy

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "measured_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def peak_rss_mib(workers: int = 0) -> dict[str, float]:
    """Peak resident set size, MiB, from ``getrusage(...).ru_maxrss``.

    ``parent`` is this process. ``largest_child`` is RUSAGE_CHILDREN's figure: the largest peak of
    any child process that has been reaped (a spawned worker), not a sum. ``total_bound`` is
    ``parent + workers * largest_child``, an upper bound for what was resident at once when
    ``workers`` workers ran side by side (with ``workers=0`` it is the parent alone).
    """
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / MIB
    return {
        "parent": round(parent, 1),
        "largest_child": round(child, 1),
        "total_bound": round(parent + max(workers, 0) * child, 1),
    }


def memory_line(mem: dict[str, float], workers: int) -> str:
    """One line that says what the memory figures are and how they were taken."""
    if workers > 1:
        return (
            f"peak RSS (ru_maxrss): parent {mem['parent']:.0f} MiB, largest worker "
            f"{mem['largest_child']:.0f} MiB; parent + {workers} x worker = "
            f"{mem['total_bound']:.0f} MiB (upper bound)"
        )
    return f"peak RSS (ru_maxrss, single process): {mem['parent']:.0f} MiB"


def emit(report: dict[str, Any], lines: list[str], as_json: bool) -> None:
    """Print the human report, or with ``as_json`` one JSON object and nothing else."""
    if as_json:
        json.dump(report, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print("\n".join(lines))


def fmt_s(seconds: float) -> str:
    """Seconds for a report line: ``12.3 s``, ``1,049 s (17.5 min)`` or ``1.2 h (4,321 s)``."""
    if seconds >= 3600.0:
        return f"{seconds / 3600.0:.1f} h ({seconds:,.0f} s)"
    if seconds >= 100.0:
        return f"{seconds:,.0f} s ({seconds / 60.0:.1f} min)"
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"


def source() -> dict[str, Any]:
    """The commit measured, and the source files that differ from it (read-only git calls)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*cmd: str) -> str:
        done = subprocess.run(
            ["git", *cmd], cwd=HERE.parent, env=env, capture_output=True, text=True, check=False
        )
        return done.stdout.rstrip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--untracked-files=no", "--", "src").splitlines()
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "changed": [c[3:] for c in changed],
    }
