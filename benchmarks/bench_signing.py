"""Benchmark: Uptane director signing, devices per second, and what it costs a million devices.

Each device's director metadata (targets naming its one assigned artifact, snapshot, timestamp;
ed25519, python-tuf's Metadata API) is signed by ``skyfleet.server._signing.Signing`` when the
device asks for its timestamp and something is due, and stored in ``tuf_metadata``. Measured on
SQLite (a file in a temporary folder) and on PostgreSQL, one device after another in one thread,
as the server does for one request:

1. first signing: ``refresh_director`` for devices with an assigned release and no metadata
   (a read decides, a write signs and stores all three roles);
2. steady state: ``refresh_director`` again with nothing due (the read and the comparison, no
   signature), and ``metadata("director", id, "timestamp", None, now)``, what the HTTP endpoint
   calls (the same plus the read of the bytes);
3. renewal: ``refresh_director`` 0.6 days later, past half of the one-day lifetime, when all
   three roles are signed again.

Baseline in the same run: the bare work, python-tuf alone with no database: ``Metadata.sign``
(canonical JSON + ed25519) and compact JSON of equivalent Targets, Snapshot and Timestamp
objects for the same devices. The ratios are skyfleet / bare time per device.

Run ``python benchmarks/bench_signing.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _bench import emit, fmt_s, machine, peak_rss_mib, source

HERE = Path(__file__).resolve().parent
DAY_S = 86_400.0
RELEASE = "2026.48.1"
INSTALLED = "2026.40.0"
FILENAME = "update.swu"
ARTIFACT = bytes(range(256)) * 16  # 4 KiB; only its size and hashes reach the metadata
RENEW_AFTER_S = 0.6 * DAY_S  # past half of the default one-day lifetime
RENEWALS_PER_DAY = 2.0  # a one-day lifetime renewed at half-life
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/skyfleet_bench_signing"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Uptane director signing: devices per second whose director metadata (targets, "
            "snapshot, timestamp; ed25519) skyfleet signs and stores, on SQLite and PostgreSQL, "
            "against bare python-tuf signing in the same run, and the cost for a fleet."
        ),
    )
    p.add_argument("--devices", type=int, default=2000, help="devices signed (default 2000)")
    p.add_argument(
        "--db",
        choices=("sqlite", "postgresql", "both"),
        default="both",
        help="databases to measure (default both)",
    )
    p.add_argument(
        "--pg-url",
        default=PG_URL,
        help="PostgreSQL database to create and drop; its name must start with skyfleet_bench "
        f"(default {PG_URL})",
    )
    p.add_argument(
        "--fleet", type=int, default=1_000_000, help="fleet size extrapolated to (1,000,000)"
    )
    p.add_argument(
        "--ask-interval-s",
        type=float,
        default=300.0,
        help="how often each device asks for its timestamp, for the steady-state figure "
        "(default 300 s: every 5-minute poll, the worst case)",
    )
    p.add_argument(
        "--other-devices",
        type=int,
        default=20_000,
        help="ballast: metadata rows of this many other devices in the table before the timing, "
        "as in a running fleet (default 20000)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = p.parse_args(argv)
    if args.devices < 1 or args.fleet < 1 or args.ask_interval_s <= 0 or args.other_devices < 0:
        p.error("--devices and --fleet must be >= 1, --ask-interval-s > 0, --other-devices >= 0")
    return args


def log(msg: str) -> None:
    """Progress on stderr (stdout holds the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def device_id(i: int) -> str:
    return f"veh{i:07d}"


# ---------------------------------------------------------------- timing


class Bar:
    """A rich progress bar on stderr, updated every few devices (not inside the timing's
    hot path more than that)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def loop(self, label: str, ids: Sequence[str], fn: Callable[[int, str], object]) -> None:
        task = self.progress.add_task(label, total=len(ids))
        for i, dev in enumerate(ids):
            fn(i, dev)
            if i % 64 == 63:
                self.progress.update(task, completed=i + 1)
        self.progress.remove_task(task)


def proc_cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds of processes (``/proc/PID/stat``); 0 for one that is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine_busy_s() -> float:
    """CPU seconds all processes have used since boot, over every core (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mib(pid: int) -> float | None:
    """Peak resident set size (``VmHWM``) of a process, MiB; None when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def timed(
    bar: Bar,
    label: str,
    ids: Sequence[str],
    fn: Callable[[int, str], object],
    db_pids: Sequence[int] = (),
) -> dict[str, Any]:
    """Run ``fn`` for every device; wall time, this process's CPU and the database backends',
    and how busy the machine's cores were with other processes meanwhile (a disturbed run)."""
    db0, busy0 = proc_cpu_s(db_pids), machine_busy_s()
    c0 = time.process_time()
    t0 = time.perf_counter()
    bar.loop(label, ids, fn)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    db_cpu = proc_cpu_s(db_pids) - db0 if db_pids else None
    other = machine_busy_s() - busy0 - cpu - (db_cpu or 0.0)
    n = len(ids)
    out = {
        "seconds": round(wall, 3),
        "devices_per_s": round(n / wall, 1),
        "us_per_device": round(wall / n * 1e6, 1),
        "client_cpu_us_per_device": round(cpu / n * 1e6, 1),
        "db_cpu_us_per_device": None if db_cpu is None else round(db_cpu / n * 1e6, 1),
        "cpu_us_per_device": round((cpu + (db_cpu or 0.0)) / n * 1e6, 1),
        "other_processes_pct": round(max(other, 0.0) / (wall * (os.cpu_count() or 1)) * 100),
    }
    return out


# ---------------------------------------------------------------- bare python-tuf baseline


def target_custom(dev: str, action_id: int) -> dict[str, Any]:
    """The director's ``custom`` data of a target (see ``store._trust.director_targets``)."""
    return {
        "release": RELEASE,
        "hardware_identifier": "hw3",
        "ecu_identifier": dev,
        "action_id": action_id,
    }


def bare(ids: Sequence[str], now_s: float, bar: Bar) -> dict[str, Any]:
    """Three ``Metadata.sign`` (canonical JSON + ed25519) and compact JSON per device, with
    python-tuf and no database; then ed25519 alone over the same three canonical payloads."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata, MetaFile, Snapshot, TargetFile, Targets, Timestamp
    from tuf.api.serialization.json import JSONSerializer

    compact = JSONSerializer(compact=True)
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    signers = [CryptoSigner(k) for k in keys]
    expires = datetime.fromtimestamp(int(now_s + DAY_S), UTC)
    path = f"{RELEASE}/hw3/{FILENAME}"
    sha256 = hashlib.sha256(ARTIFACT).hexdigest()
    sizes: list[int] = []
    payloads: list[bytes] = []

    def meta_file(body: bytes) -> MetaFile:
        return MetaFile(1, len(body), {"sha256": hashlib.sha256(body).hexdigest()})

    def one(i: int, dev: str) -> None:
        extra = {"custom": target_custom(dev, i + 1)}
        target = TargetFile(len(ARTIFACT), {"sha256": sha256}, path, extra)
        targets = Metadata(Targets(1, None, expires, {path: target}, None))
        targets.sign(signers[0])
        targets_body = targets.to_bytes(compact)
        snapshot = Metadata(Snapshot(1, None, expires, {"targets.json": meta_file(targets_body)}))
        snapshot.sign(signers[1])
        snapshot_body = snapshot.to_bytes(compact)
        timestamp = Metadata(Timestamp(1, None, expires, meta_file(snapshot_body)))
        timestamp.sign(signers[2])
        timestamp_body = timestamp.to_bytes(compact)
        if i == 0:
            sizes.extend(len(b) for b in (targets_body, snapshot_body, timestamp_body))
            payloads.extend(md.signed_bytes for md in (targets, snapshot, timestamp))

    out = timed(bar, "bare python-tuf", ids, one)

    def raw(_i: int, _dev: str) -> None:
        for key, payload in zip(keys, payloads, strict=True):
            key.sign(payload)

    ed = timed(bar, "ed25519 alone", ids, raw)
    out["ed25519_us_per_device"] = ed["us_per_device"]
    out["body_bytes_per_device"] = sum(sizes)
    return out


# ---------------------------------------------------------------- a database


def pg_admin(url: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run ``sql`` (autocommit) in the server's ``postgres`` database; returns the rows."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        cur = c.execute(sql, params)
        return cur.fetchall() if cur.description else []


def pg_db_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if not name.startswith("skyfleet_bench"):
        raise SystemExit(f"--pg-url must name a database skyfleet_bench*, not {name!r}")
    return name


def ballast(db: Any, other_devices: int, now_s: float) -> None:
    """Rows for the metadata of ``other_devices`` devices (``director/other...``, 500 bytes
    each role) so that ``tuf_metadata`` is not a tiny table, as in a running fleet. On
    PostgreSQL a tiny table with fresh statistics gets sequential scans, and psycopg's prepared
    statements keep those plans until autovacuum's next ANALYZE: the benchmark's own growing
    table would then be read whole on every lookup."""
    from sqlalchemy import insert

    from skyfleet.store._schema import tuf_metadata

    body = b"x" * 500
    with db.begin() as conn:
        for start in range(0, other_devices, 5_000):
            conn.execute(
                insert(tuf_metadata),
                [
                    {
                        "repo": f"director/other{i:07d}",
                        "role": role,
                        "version": 1,
                        "expires": now_s + DAY_S,
                        "created_at": now_s,
                        "body": body,
                    }
                    for i in range(start, min(other_devices, start + 5_000))
                    for role in ("targets", "snapshot", "timestamp")
                ],
            )


def setup(url: str, folder: Path, ids: Sequence[str], now_s: float, other_devices: int) -> Any:
    """A store with keys and roots, ``ids`` registered (hw3), a release with one 4 KiB artifact
    for hw3, a started rollout that offers it to every device, and the ballast of
    ``other_devices``; on PostgreSQL then ANALYZE (what autovacuum does soon after)."""
    from skyfleet import store
    from skyfleet.rollout import GroupSpec

    db = store.open_store(url, artifacts_dir=folder / "artifacts")
    store.init_trust(db, now_s, keys_dir=folder / "keys", root_keys_dir=folder / "root-keys")
    news = [
        store.NewDevice(d, hw="hw3", installed_version=INSTALLED, token=f"bench-token-{d}")
        for d in ids
    ]
    with db.begin() as conn:
        for start in range(0, len(news), 10_000):
            store.register_devices(conn, now_s, news[start : start + 10_000], actor="bench")
    sha256, sha1, md5, size = store.write_blob(folder / "artifacts", [ARTIFACT])
    with db.begin() as conn:
        artifact = store.save_artifact(
            conn,
            now_s,
            filename=FILENAME,
            sha256=sha256,
            sha1=sha1,
            md5=md5,
            size=size,
            actor="bench",
        )
        store.create_release(
            conn,
            now_s,
            version=RELEASE,
            notes="signing benchmark",
            artifact_sets={"hw3": [artifact["id"]]},
            actor="bench",
        )
        rollout = store.create_rollout(
            conn, now_s, release=RELEASE, groups=[GroupSpec.parse("hw:hw3")], actor="bench"
        )
        store.operate(conn, now_s, rollout["id"], "start", actor="bench")
    ballast(db, other_devices, now_s)
    with db.read() as conn:
        if not store.director_targets(conn, ids[0]) or not store.director_targets(conn, ids[-1]):
            raise SystemExit("set-up failed: the devices have no assigned release")
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return db


def scalar(db: Any, sql: str) -> int:
    from sqlalchemy import text

    with db.read() as conn:
        return int(conn.execute(text(sql)).scalar_one() or 0)


def table_bytes(db: Any) -> int:
    """Bytes of ``tuf_metadata`` with its indexes: SQLite's ``dbstat`` pages, PostgreSQL's
    ``pg_total_relation_size``."""
    if db.dialect == "sqlite":
        return scalar(
            db,
            "SELECT sum(pgsize) FROM dbstat WHERE name IN "
            "(SELECT name FROM sqlite_schema WHERE tbl_name = 'tuf_metadata')",
        )
    return scalar(db, "SELECT pg_total_relation_size('tuf_metadata')")


def body_bytes(db: Any) -> int:
    """Bytes of the benchmark devices' stored director metadata themselves."""
    return scalar(db, "SELECT sum(length(body)) FROM tuf_metadata WHERE repo LIKE 'director/veh%'")


def versions(db: Any) -> dict[str, int]:
    """The benchmark devices' director metadata rows by version."""
    from sqlalchemy import text

    with db.read() as conn:
        rows = conn.execute(
            text(
                "SELECT version, count(*) FROM tuf_metadata WHERE repo LIKE 'director/veh%' "
                "GROUP BY version ORDER BY version"
            )
        ).all()
    return {str(v): int(c) for v, c in rows}


def verify(db: Any, dev: str, version: int, now_s: float) -> None:
    """The device's three roles are at ``version``, signed by the keys its director root
    names, unexpired, and the timestamp and snapshot name what they vouch for."""
    from tuf.api.metadata import Metadata, Root, Snapshot, Timestamp

    from skyfleet import store

    with db.read() as conn:
        root = Metadata[Root].from_bytes(store.root(conn, "director") or b"").signed
        bodies = {
            r: store.metadata(conn, store.director_repo(dev), r) or b""
            for r in ("targets", "snapshot", "timestamp")
        }
    for role, body in bodies.items():
        md = Metadata[Any].from_bytes(body)
        root.verify_delegate(role, md.signed_bytes, md.signatures)
        if md.signed.version != version or md.signed.expires.timestamp() <= now_s:
            raise SystemExit(f"{dev} {role}: version {md.signed.version}, expected {version}")
        if isinstance(md.signed, Timestamp):
            md.signed.snapshot_meta.verify_length_and_hashes(bodies["snapshot"])
        if isinstance(md.signed, Snapshot):
            md.signed.meta["targets.json"].verify_length_and_hashes(bodies["targets"])


def bench_db(
    name: str,
    url: str,
    folder: Path,
    ids: Sequence[str],
    now_s: float,
    other_devices: int,
    bar: Bar,
) -> dict[str, Any]:
    """Set up ``url``, then time the three phases, checking what each stored."""
    from skyfleet.rollout import Lifetimes
    from skyfleet.server._signing import Signing

    n = len(ids)
    log(f"{name}: registering {n:,} devices, a release and a started rollout")
    t0 = time.perf_counter()
    db = setup(url, folder, ids, now_s, other_devices)
    out: dict[str, Any] = {"setup_s": round(time.perf_counter() - t0, 2)}
    try:
        db_pids: list[int] = []
        if db.dialect == "postgresql":
            with db.read():  # the pool's one connection exists; find its backend
                rows = pg_admin(
                    url,
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                    [pg_db_name(url)],
                )
            db_pids = [int(r[0]) for r in rows]
        signing = Signing(db, folder / "keys", Lifetimes())
        empty_bytes = table_bytes(db)
        log(f"{name}: timing")

        out["first"] = timed(
            bar,
            f"{name}: first signing",
            ids,
            lambda _i, d: signing.refresh_director(d, now_s),
            db_pids,
        )
        out["versions_after_first"] = versions(db)
        first_bytes, first_body = table_bytes(db), body_bytes(db)
        verify(db, ids[0], 1, now_s)
        verify(db, ids[-1], 1, now_s)

        later = now_s + 60.0
        out["steady_refresh"] = timed(
            bar,
            f"{name}: steady, refresh",
            ids,
            lambda _i, d: signing.refresh_director(d, later),
            db_pids,
        )
        out["steady_timestamp"] = timed(
            bar,
            f"{name}: steady, timestamp",
            ids,
            lambda _i, d: signing.metadata("director", d, "timestamp", None, later),
            db_pids,
        )
        out["versions_after_steady"] = versions(db)

        renew = now_s + RENEW_AFTER_S
        out["renewal"] = timed(
            bar,
            f"{name}: renewal at +0.6 d",
            ids,
            lambda _i, d: signing.refresh_director(d, renew),
            db_pids,
        )
        out["versions_after_renewal"] = versions(db)
        renewed_bytes, renewed_body = table_bytes(db), body_bytes(db)
        verify(db, ids[0], 2, renew)
        verify(db, ids[-1], 2, renew)

        expect_first = {"1": 3 * n}
        expect_renewed = {"1": 3 * n, "2": 3 * n}
        out["checks_passed"] = (
            out["versions_after_first"] == expect_first
            and out["versions_after_steady"] == expect_first
            and out["versions_after_renewal"] == expect_renewed
        )
        out["bytes_per_device"] = {
            "table_first": round((first_bytes - empty_bytes) / n),
            "body_first": round(first_body / n),
            "table_two_versions": round((renewed_bytes - empty_bytes) / n),
            "body_two_versions": round(renewed_body / n),
        }
        out["peak_rss_mib"] = peak_rss_mib(0)["parent"]
        if db_pids:
            out["db_backend_peak_rss_mib"] = proc_hwm_mib(db_pids[0])
    finally:
        db.close()
    return out


# ---------------------------------------------------------------- report


def fleet_figures(
    r: dict[str, Any], fleet: int, ask_interval_s: float, bare_us: float
) -> dict[str, Any]:
    """What the per-device figures mean for ``fleet`` devices."""
    asks_per_day = DAY_S / ask_interval_s
    renew_cpu = fleet * RENEWALS_PER_DAY * r["renewal"]["cpu_us_per_device"] / 1e6
    steady_cpu = fleet * asks_per_day * r["steady_timestamp"]["cpu_us_per_device"] / 1e6
    return {
        "sign_all_once_s": round(fleet * r["first"]["us_per_device"] / 1e6, 1),
        "renewals_per_s_needed": round(fleet * RENEWALS_PER_DAY / DAY_S, 1),
        "renewal_cpu_s_per_day": round(renew_cpu),
        "renewal_cores": round(renew_cpu / DAY_S, 4),
        "bare_renewal_cpu_s_per_day": round(fleet * RENEWALS_PER_DAY * bare_us / 1e6),
        "timestamp_asks_per_s": round(fleet * asks_per_day / DAY_S, 1),
        "steady_cpu_s_per_day": round(steady_cpu),
        "steady_cores": round(steady_cpu / DAY_S, 4),
        "storage_gib": round(fleet * r["bytes_per_device"]["table_two_versions"] / 2**30, 2),
    }


def phase_line(label: str, p: dict[str, Any], bare_us: float) -> str:
    db_cpu = p["db_cpu_us_per_device"]
    cpu = f"client {p['client_cpu_us_per_device']:,.0f}" + (
        f" + db {db_cpu:,.0f}" if db_cpu is not None else ""
    )
    return (
        f"  {label:<28}{p['devices_per_s']:>8,.0f} devices/s {p['us_per_device']:>8,.0f} us/device"
        f"  (CPU {cpu} us)  {p['us_per_device'] / bare_us:5.2f}x bare"
        f"  [other {p['other_processes_pct']}%]"
    )


def versions_used(pg_url: str | None) -> dict[str, str]:
    """The versions of what does the work: python-tuf, the crypto, the database stack."""
    import sqlite3
    from importlib.metadata import version

    found = {
        name: version(name)
        for name in ("tuf", "securesystemslib", "cryptography", "sqlalchemy", "psycopg")
    }
    found["sqlite"] = sqlite3.sqlite_version
    if pg_url is not None:
        found["postgresql"] = str(pg_admin(pg_url, "SHOW server_version")[0][0])
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ids = [device_id(i) for i in range(args.devices)]
    now_s = float(int(time.time()))
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in dbs:
        pg_db_name(args.pg_url)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="skyfleet-bench-signing-") as tmp, Bar() as bar:
        log(f"bare python-tuf: {args.devices:,} devices")
        base = bare(ids, now_s, bar)
        base["peak_rss_mib"] = peak_rss_mib(0)["parent"]
        for name in dbs:
            folder = Path(tmp) / name
            if name == "sqlite":
                url = f"sqlite:///{folder / 'bench.db'}"
                folder.mkdir()
                results[name] = bench_db(name, url, folder, ids, now_s, args.other_devices, bar)
                continue
            url, db_name = args.pg_url, pg_db_name(args.pg_url)
            pg_admin(url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            pg_admin(url, f'CREATE DATABASE "{db_name}"')
            try:
                results[name] = bench_db(name, url, folder, ids, now_s, args.other_devices, bar)
            finally:
                pg_admin(url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    for r in results.values():
        for phase in ("first", "steady_refresh", "steady_timestamp", "renewal"):
            r[phase]["ratio_to_bare"] = round(r[phase]["us_per_device"] / base["us_per_device"], 2)
        r["fleet"] = fleet_figures(r, args.fleet, args.ask_interval_s, base["us_per_device"])

    report: dict[str, Any] = {
        "benchmark": "signing",
        "machine": machine(),
        "versions": versions_used(args.pg_url if "postgresql" in dbs else None),
        "source": source(),
        "devices": args.devices,
        "fleet": args.fleet,
        "ask_interval_s": args.ask_interval_s,
        "other_devices": args.other_devices,
        "lifetime_s": DAY_S,
        "renew_after_s": RENEW_AFTER_S,
        "renewals_per_device_per_day": RENEWALS_PER_DAY,
        "bare": base,
        "databases": results,
        "checks_passed": all(r["checks_passed"] for r in results.values()),
        "timing": "one thread, perf_counter; CPU: this process (process_time) plus, on "
        "PostgreSQL, its backend (/proc/PID/stat)",
    }
    bare_us = base["us_per_device"]
    lines = [
        f"director signing  {args.devices:,} devices, one 4 KiB hw3 target each; targets + "
        f"snapshot + timestamp, ed25519; lifetime 1 d, renewed at half-life; rows of "
        f"{args.other_devices:,} other devices in the table; one thread",
        f"bare python-tuf (3 x Metadata.sign + compact JSON, no database): "
        f"{base['devices_per_s']:,.0f} devices/s, {bare_us:,.0f} us/device (ed25519 alone "
        f"{base['ed25519_us_per_device']:,.0f} us); {base['body_bytes_per_device']:,} bytes "
        f"of metadata per device",
        "(x bare: skyfleet's time per device / the bare one; other: share of the cores other "
        "processes used during the phase)",
    ]
    for name, r in results.items():
        b = r["bytes_per_device"]
        lines += [
            f"{name} (set-up {r['setup_s']:.1f} s, untimed):",
            phase_line("first signing", r["first"], bare_us),
            phase_line("steady, refresh_director", r["steady_refresh"], bare_us),
            phase_line("steady, timestamp endpoint", r["steady_timestamp"], bare_us),
            phase_line("renewal at +0.6 d", r["renewal"], bare_us),
            f"  tuf_metadata per device: {b['table_first']:,} bytes after the first signing "
            f"(metadata {b['body_first']:,}), {b['table_two_versions']:,} with two versions "
            f"kept (metadata {b['body_two_versions']:,})",
            f"  checks (3 rows per device, none signed in the steady state, all renewed, "
            f"signatures verify): {'passed' if r['checks_passed'] else 'FAILED'}; process peak "
            f"RSS so far {r['peak_rss_mib']:.0f} MiB"
            + (
                f", backend {r['db_backend_peak_rss_mib']:.0f} MiB"
                if r.get("db_backend_peak_rss_mib")
                else ""
            ),
        ]
    for name, r in results.items():
        f = r["fleet"]
        lines += [
            f"{args.fleet:,} devices, {name}:",
            f"  signing every device once (e.g. a release for all): "
            f"{fmt_s(f['sign_all_once_s'])} of one thread",
            f"  renewals, {RENEWALS_PER_DAY:g} per device per day ({f['renewals_per_s_needed']:,.1f}/s"
            f" needed, one thread does {r['renewal']['devices_per_s']:,.0f}/s): "
            f"{f['renewal_cpu_s_per_day']:,} CPU-s/day = {f['renewal_cores']:.3f} cores "
            f"(bare python-tuf: {f['bare_renewal_cpu_s_per_day']:,} CPU-s/day)",
            f"  timestamp asks every {args.ask_interval_s:g} s ({f['timestamp_asks_per_s']:,.0f}"
            f"/s) with nothing due: {f['steady_cpu_s_per_day']:,} CPU-s/day = "
            f"{f['steady_cores']:.2f} cores",
            f"  storage with two versions kept: {f['storage_gib']:.2f} GiB",
        ]
    lines.append(f"peak RSS (ru_maxrss, single process): {peak_rss_mib(0)['parent']:.0f} MiB")
    emit(report, lines, args.json)
    return 0 if report["checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
