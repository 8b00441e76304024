"""Writing results: CSV or Parquet tables, JSON, output folders, and a PNG plot of RTT over time."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skyfleet.cli._common import iso
from skyfleet.errors import InputError
from skyfleet.links import LinkSeries, gaps

TABLE_SUFFIXES = (".csv", ".parquet")


def check_output_path(path: Path, option: str, suffixes: tuple[str, ...]) -> None:
    """Fail before any work unless ``path`` has one of ``suffixes`` and lies in a writable folder
    (and is not itself a folder)."""
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{option} {str(path)!r}: the name must end in {' or '.join(suffixes)}")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{option} {str(path)!r}: folder {str(folder)!r} does not exist")
    if path.is_dir():
        raise InputError(f"{option} {str(path)!r}: is a folder")
    probe_writable(folder, f"{option} {str(path)!r}")


def probe_writable(folder: Path, what: str) -> None:
    """Fail (``what: cannot write there``) unless a file can really be created in ``folder``:
    permissions alone do not tell (root, read-only mounts, /proc)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".skyfleet-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{what}: cannot write there ({exc.strerror or exc})") from None


def write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file beside ``path`` and rename: never a half-written file."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def make_out_dir(path: Path) -> Path:
    """Create ``path`` (its parent must exist) and prove it is writable, before any work."""
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {str(path)!r} is a file, not a folder")
    if not path.parent.is_dir():
        raise InputError(f"--out {str(path)!r}: folder {str(path.parent)!r} does not exist")
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {str(path)!r}: cannot create it ({exc.strerror or exc})") from None
    probe_writable(path, f"--out {str(path)!r}")
    return path


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (no NaN), atomically."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    write_atomic(path, write)


def series_rows(
    series: LinkSeries, sat_names: Sequence[str], gateway_ids: Sequence[str]
) -> dict[str, list[Any]]:
    """Columns of the time series table (``rtt_ms`` is None where there is no path)."""
    paths = series.paths or tuple(() for _ in series.t_s)
    return {
        "time_s": series.t_s.tolist(),
        "time_utc": [iso(series.start_unix_s + t) for t in series.t_s],
        "rtt_ms": [None if np.isnan(r) else round(float(r), 4) for r in series.rtt_ms],
        "sat": [sat_names[s] if s >= 0 else None for s in series.sat],
        "path_sats": [";".join(sat_names[s] for s in p) if p else None for p in paths],
        "gateway": [gateway_ids[g] if g >= 0 else None for g in series.gateway],
        "hops": series.hops.tolist(),
        "visible_sats": series.visible.tolist(),
        "lat_deg": np.round(series.lat_deg, 6).tolist(),
        "lon_deg": np.round(series.lon_deg, 6).tolist(),
    }


def write_table(path: Path, columns: dict[str, list[Any]]) -> None:
    """Write columns to ``path`` as CSV (empty cell for None) or Parquet (null)."""
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        write_atomic(path, lambda tmp: pq.write_table(pa.table(columns), tmp))
        return

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for row in zip(*columns.values(), strict=True):
                w.writerow(["" if v is None else v for v in row])

    write_atomic(path, write_csv)


def plot_series(path: Path, series: LinkSeries, title: str) -> None:
    """A PNG of RTT over time with the fiber floor, the inflated internet figure and the gaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = series.t_s / 60.0
    fig, ax = plt.subplots(figsize=(10, 4), dpi=120)
    ax.plot(minutes, series.rtt_ms, lw=1.2, color="#1f77b4", label=f"satellite ({series.mode})")
    ax.plot(
        minutes,
        series.fiber_rtt_ms,
        lw=1,
        ls="--",
        color="#2ca02c",
        label="fiber, great-circle floor",
    )
    ax.plot(
        minutes,
        series.internet_rtt_ms,
        lw=1,
        ls=":",
        color="#d62728",
        label="fiber, typical internet route",
    )
    for g in gaps(series):
        ax.axvspan(g["start_s"] / 60.0, g["end_s"] / 60.0, color="#999999", alpha=0.3, lw=0)
    ax.set_xlabel(f"minutes after {iso(series.start_unix_s)}")
    ax.set_ylabel("round-trip time (ms)")
    ax.set_title(title)
    top = np.nanmax(np.concatenate([series.rtt_ms, series.internet_rtt_ms, [1.0]]))
    ax.set_ylim(0, 1.3 * top)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
