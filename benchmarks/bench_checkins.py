"""Benchmark check-ins: sustained hawkBit DDI base polls per second against ``skyfleet serve``.

Registers ``--devices`` devices (default 1,000,000) straight through the store, starts
``skyfleet serve`` as a subprocess on a free loopback port (SQLite: one process; PostgreSQL:
``--workers`` processes), creates a release and a started rollout through the operator API
(groups ``tag:eap`` and ``hw:hw3 10%``: ~5% of the fleet is offered the update, ~6% more hold a
scheduled action that is not offered yet), then polls ``GET /DEFAULT/controller/v1/{id}`` with
``Authorization: TargetToken ...`` for devices drawn uniformly at random.

The load generator is a separate process (this script with ``--loadgen``; uvloop, raw sockets,
keep-alive HTTP/1.1 connections). Open loop: requests are scheduled on a clock at ``--rate`` and
each latency runs from its scheduled send time, so a stalled server is not hidden (coordinated
omission). Saturation: ``--sat-connections`` closed-loop connections as fast as answers come.
Baseline in the same run: a bare FastAPI endpoint (same route, constant JSON, ``async def`` like
skyfleet's) under the same uvicorn settings and worker count, driven by the same generator.
Target: 3,400 check-ins/s with p99 under 100 ms on PostgreSQL on 2 cores.

    python benchmarks/bench_checkins.py                  # 1M devices, both databases (~10 min)
    python benchmarks/bench_checkins.py --quick          # 20k devices, 5 s runs (~2 min)
    python benchmarks/bench_checkins.py --db postgresql --keep-db   # then --reuse-db next time

Run ``python benchmarks/bench_checkins.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from _bench import emit, fmt_s, machine, source

HERE = Path(__file__).resolve().parent
TARGET_RATE = 3400.0
TARGET_P99_MS = 100.0
TENANT = "DEFAULT"
VERSION_FROM, VERSION_TO = "2025.38.1", "2025.44.0"
BATCH = 50_000
QUICK = {"devices": 20_000, "duration": 5.0, "warmup": 2.0, "sat_duration": 5.0}
FULL = {"devices": 1_000_000, "duration": 30.0, "warmup": 5.0, "sat_duration": 10.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Sustained hawkBit DDI check-ins per second (open loop at a fixed rate, p50/p90/p99 "
            "from the scheduled send time) and the saturation rate, on SQLite and PostgreSQL, "
            "against a bare FastAPI endpoint measured in the same run. Target: 3,400/s with "
            "p99 < 100 ms on PostgreSQL."
        ),
    )
    p.add_argument("--devices", type=int, help="devices registered (default 1,000,000)")
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--duration", type=float, help="seconds measured per run (default 30)")
    p.add_argument("--warmup", type=float, help="seconds before each run is measured (default 5)")
    p.add_argument("--sat-duration", type=float, help="seconds of saturation run (default 10)")
    p.add_argument("--rate", type=float, default=TARGET_RATE, help="open-loop rate (3400/s)")
    p.add_argument(
        "--rates", default="", help="more open-loop rates to try, comma-separated (e.g. 1000,2000)"
    )
    p.add_argument("--sat-connections", type=int, default=64, help="closed-loop connections")
    p.add_argument("--max-connections", type=int, default=256, help="open-loop connection cap")
    p.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/skyfleet_bench",
        help="PostgreSQL database the benchmark creates (and drops at the end)",
    )
    p.add_argument("--workers", type=int, default=2, help="server processes on PostgreSQL (2)")
    p.add_argument("--workdir", type=Path, help="SQLite file, artifacts, logs (default: temp)")
    p.add_argument("--keep-db", action="store_true", help="keep the databases at the end")
    p.add_argument("--reuse-db", action="store_true", help="reuse a kept database of --devices")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each run, wait up to this many seconds for other processes to go quiet",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the bare endpoint")
    p.add_argument("--quick", action="store_true", help="smoke run: 20k devices, 5 s runs")
    p.add_argument("--seed", type=int, default=1, help="seed of the devices polled")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--save", type=Path, help="also write the JSON object to this file")
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for key, full in FULL.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK[key] if args.quick else full)
    args.extra_rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if args.devices < 1 or args.duration <= 0 or args.rate <= 0 or args.workers < 1:
        p.error("--devices, --workers must be >= 1; --duration and --rate > 0")
    return args


def log(msg: str) -> None:
    """Progress on stderr (stdout holds the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the fleet


def device_id(i: int) -> str:
    return f"veh{i:07d}"


def device_token(i: int) -> str:
    return f"bench-token-{i:07d}"


def new_device(i: int) -> Any:
    """Device ``i``: 60% hw3, 30% hw4, 10% hw2 (not in the release); 5% tagged ``eap``."""
    from skyfleet import store

    spread = ((i * 2_654_435_761) % 2**32 >> 16) % 100  # Knuth's hash: mixes independent of i
    hw = "hw3" if spread < 60 else "hw4" if spread < 90 else "hw2"
    return store.NewDevice(
        device_id(i),
        kind="vehicle",
        hw=hw,
        tags=("eap",) if i % 20 == 7 else (),
        attributes={"region": ("eu", "us", "apac")[i % 3]},
        installed_version=VERSION_FROM,
        token=device_token(i),
    )


def register(url: str, n: int, artifacts_dir: Path) -> float:
    """Register devices ``0..n-1`` in transactions of ``BATCH``; returns seconds taken."""
    from skyfleet import store

    st = store.open_store(url, artifacts_dir=artifacts_dir)
    t0 = time.perf_counter()
    try:
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            with st.begin() as conn:
                store.register_devices(
                    conn, time.time(), [new_device(i) for i in range(start, stop)], actor="bench"
                )
            rate = stop / (time.perf_counter() - t0)
            log(f"  registered {stop:,} / {n:,} devices ({rate:,.0f}/s)")
    finally:
        st.close()
    return time.perf_counter() - t0


BENCH_TOKEN = "sfo_bench-operator-token-0123456789"


def operator_token(url: str, artifacts_dir: Path) -> None:
    """Give the store the operator token :func:`api` sends (once; a reused store has it)."""
    from skyfleet import store
    from skyfleet.errors import ConflictError

    st = store.open_store(url, artifacts_dir=artifacts_dir)
    try:
        with st.begin() as conn:
            store.create_operator_token(
                conn, time.time(), name="bench", role="operator", actor="bench", token=BENCH_TOKEN
            )
    except ConflictError:
        pass
    finally:
        st.close()


def count_devices(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM devices")).scalar_one())
    except Exception:
        return -1
    finally:
        engine.dispose()


def pg_admin(url: str, sql: str) -> list[Any]:
    """Run ``sql`` (autocommit) in the server's ``postgres`` database; returns the rows."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        cur = c.execute(sql)
        return cur.fetchall() if cur.description else []


def pg_db_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if not name.startswith("skyfleet_bench"):
        raise SystemExit(f"--pg-url must name a database skyfleet_bench*, not {name!r}")
    return name


def pg_analyze(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


# ---------------------------------------------------------------- server processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(port: int, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    """Call the server; ``body`` is JSON, or bytes sent as they are."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {BENCH_TOKEN}")
    if data is not None and not isinstance(body, bytes):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (uvicorn's worker processes)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def postgres_pids(database: str) -> list[int]:
    """PostgreSQL's shared processes and the backends connected to ``database``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() != "postgres":
                    continue
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                client = "(" in cmd or "autovacuum worker" in cmd
                if not client or f" {database} " in f"{cmd} ":
                    pids.append(int(entry))
    return pids


def reaped_cpu_s(pid: int) -> float:
    """CPU seconds of the children ``pid`` has reaped (``cutime + cstime``)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / CLK_TCK
    return 0.0


def postmaster_pid() -> int | None:
    """The PostgreSQL server's main process (the parent of its other processes)."""
    for pid in postgres_pids(""):
        with contextlib.suppress(OSError):
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres:"):
                return pid
    return None


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / CLK_TCK, sum(v) / CLK_TCK


def peak_rss_mib(pids: list[int]) -> list[float]:
    """VmHWM of each live process, MiB."""
    out = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(int(line.split()[1]) / 1024.0)
    return out


@dataclass
class Server:
    """A server subprocess (its own session) and its worker processes."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    logfile: Path

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def workers_up(self) -> int:
        """uvicorn's worker processes (multiprocessing spawns them) that have started."""
        n = 0
        for pid in children(self.proc.pid):
            with contextlib.suppress(OSError):
                n += b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        return n

    def stop(self) -> None:
        """SIGTERM the server (uvicorn stops its workers), then SIGKILL what is left of it."""
        pids = self.pids()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in pids[1:]:  # a worker the supervisor left behind, if still in our session
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[3]) == self.proc.pid:
                    os.kill(pid, signal.SIGKILL)


def start_server(name: str, cmd: list[str], workdir: Path, workers: int) -> Server:
    port = free_port()
    logfile = workdir / f"{name}.log"
    with logfile.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
        )
    server = Server(name, proc, port, logfile)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited: {logfile.read_text()[-2000:]}")
        try:
            api(port, "GET", "/api/v1/health", timeout=2)
            if workers == 1 or server.workers_up() >= workers:
                time.sleep(1.0 if workers > 1 else 0.0)  # let every worker finish starting
                return server
        except (OSError, SystemExit):
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"{name} did not answer /api/v1/health within 300 s")


def skyfleet_cmd(url: str, workdir: Path, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "skyfleet",
        "serve",
        "--database-url",
        url,
        "--artifacts-dir",
        str(workdir / "artifacts"),
        "--workers",
        str(workers),
    ]


def bare_cmd(workers: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--bare-serve", str(workers)]


def bare_app() -> Any:
    """The baseline: the DDI poll route (an ``async def``, as skyfleet's) with a constant body."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    body = {"config": {"polling": {"sleep": "00:05:00"}}, "_links": {}}

    @app.get("/{tenant}/controller/v1/{controller_id}")
    async def poll(tenant: str, controller_id: str) -> JSONResponse:
        return JSONResponse(body)

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def bare_serve(argv: list[str]) -> None:
    """``--bare-serve WORKERS --host H --port P --log-level L``: uvicorn as ``skyfleet serve``."""
    import uvicorn

    opts = dict(zip(argv[1::2], argv[2::2], strict=False))
    uvicorn.run(
        "bench_checkins:bare_app",
        factory=True,
        app_dir=str(HERE),
        host=opts["--host"],
        port=int(opts["--port"]),
        workers=int(argv[0]),
        log_level=opts["--log-level"],
    )


def create_rollout(port: int) -> dict[str, Any]:
    """Artifact, release for hw3 and hw4, rollout ``tag:eap`` then ``hw:hw3 10%``, started."""
    art = api(port, "POST", "/api/v1/artifacts?filename=bench-update.swu", os.urandom(4096))
    api(
        port,
        "POST",
        "/api/v1/releases",
        {"version": VERSION_TO, "artifacts": {"hw3": [art["id"]], "hw4": [art["id"]]}},
    )
    groups = [{"group": "tag:eap"}, {"group": "hw:hw3 10%"}]
    rollout = api(port, "POST", "/api/v1/rollouts", {"release": VERSION_TO, "groups": groups}, 3600)
    return dict(api(port, "POST", f"/api/v1/rollouts/{rollout['id']}/start", None, 600))


# ---------------------------------------------------------------- the load generator


def quantiles_ms(values: array[float]) -> dict[str, float | None]:
    if not values:
        return {k: None for k in ("p50", "p90", "p99", "p999", "max", "mean")}
    s = sorted(values)

    def q(f: float) -> float:
        return round(s[min(len(s) - 1, max(0, int(f * len(s) + 0.999999) - 1))] * 1e3, 3)

    mean = round(sum(s) / len(s) * 1e3, 3)
    return {
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "p999": q(0.999),
        "max": q(1.0),
        "mean": mean,
    }


now_s = time.perf_counter  # uvloop's loop.time() has 1 ms resolution: too coarse for latencies


class _Conn(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, gen: _Gen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.sched = 0.0  # open loop: when the request was due; closed loop: when it was sent
        self.record = False
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            at = buf.find(b"content-length:", 0, end)  # uvicorn writes header names lower case
            if at < 0:
                at = bytes(buf[:end]).lower().find(b"content-length:")
            clen = int(buf[at + 15 : buf.find(b"\r\n", at)]) if at >= 0 else 0
            total = end + 4 + clen
            if len(buf) < total:
                return
            status = int(buf[9:12])
            offered = buf.find(b"deploymentBase", end, total) >= 0
            del buf[:total]
            self.gen.answered(self, status, offered)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


class _Gen:
    """Sends DDI polls for devices drawn uniformly at random; records latencies in seconds."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.loop = asyncio.get_running_loop()
        self.port = int(spec["port"])
        self.n_devices = int(spec["devices"])
        self.rng = random.Random(spec["seed"])
        self.host = b"127.0.0.1:%d" % self.port
        self.closed_loop = spec["mode"] == "closed"
        self.max_conns = int(spec.get("max_connections", 256))
        self.conns: set[_Conn] = set()
        self.tasks: set[asyncio.Task[_Conn | None]] = set()
        self.idle: list[_Conn] = []
        self.waiting: deque[tuple[float, bool]] = deque()
        self.opening = 0
        self.peak_conns = 0
        self.lat: array[float] = array("d")
        self.lag: array[float] = array("d")
        self.ok = self.errors = self.lost_n = self.offered = self.completed_total = 0
        self.ok_in_window = 0  # answered (200) inside the measured window, whenever sent
        self.pending = 0  # recorded requests not answered yet
        self.window = (0.0, 0.0)
        self.stop_at = float("inf")
        self.scheduling = True
        self.closing = False
        self.drained = asyncio.Event()
        self.cpu: list[float] = []

    def send(self, conn: _Conn, sched: float, record: bool) -> None:
        i = self.rng.randrange(self.n_devices)
        conn.sched, conn.record, conn.busy = sched, record, True
        assert conn.transport is not None
        conn.transport.write(
            b"GET /%s/controller/v1/veh%07d HTTP/1.1\r\nHost: %s\r\n"
            b"Authorization: TargetToken bench-token-%07d\r\n\r\n"
            % (TENANT.encode(), i, self.host, i)
        )
        if record:
            self.lag.append(now_s() - sched)

    def answered(self, conn: _Conn, status: int, offered: bool) -> None:
        now = now_s()
        conn.busy = False
        self.completed_total += 1
        if status == 200 and self.window[0] <= now < self.window[1]:
            self.ok_in_window += 1
        if self.closed_loop:
            if self.window[0] <= now < self.window[1]:
                self._count(now - conn.sched, status, offered)
            if now < self.stop_at:
                self.send(conn, now, False)
            return
        if conn.record:
            self._count(now - conn.sched, status, offered)
            self._settle()
        self._assign(conn)

    def _count(self, latency: float, status: int, offered: bool) -> None:
        self.lat.append(latency)
        if status == 200:
            self.ok += 1
            self.offered += offered
        else:
            self.errors += 1

    def _settle(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.scheduling:
            self.drained.set()

    def lost(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.closing:  # closed by the generator at the end: counted already
            return
        if conn.busy and self.closed_loop:
            self.lost_n += 1
        elif conn.busy and conn.record:
            self.lost_n += 1
            self.lat.append(now_s() - conn.sched)
            self._settle()
        if self.waiting and len(self.conns) + self.opening < self.max_conns:
            self._spawn()

    def _assign(self, conn: _Conn) -> None:
        if self.waiting:
            self.send(conn, *self.waiting.popleft())
        else:
            self.idle.append(conn)

    def _spawn(self) -> None:
        self.opening += 1  # counted now, so that one tick cannot open more than the cap
        task = self.loop.create_task(self.connect(counted=True))
        self.tasks.add(task)  # a strong reference until it is done
        task.add_done_callback(self.tasks.discard)

    async def connect(self, counted: bool = False) -> _Conn | None:
        """Open one connection; in open loop it takes the oldest waiting request."""
        self.opening += 0 if counted else 1
        try:
            _, conn = await self.loop.create_connection(lambda: _Conn(self), "127.0.0.1", self.port)
        except OSError:
            return None
        finally:
            self.opening -= 1
        self.conns.add(conn)
        self.peak_conns = max(self.peak_conns, len(self.conns))
        if not self.closed_loop:
            self._assign(conn)
        return conn

    def dispatch(self, sched: float, record: bool) -> None:
        if record:
            self.pending += 1
        if self.idle:
            self.send(self.idle.pop(), sched, record)
            return
        self.waiting.append((sched, record))
        if len(self.conns) + self.opening < self.max_conns:
            self._spawn()

    def snapshot_cpu(self) -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu.append(ru.ru_utime + ru.ru_stime)

    async def run_open(self, rate: float, warmup: float, duration: float) -> dict[str, Any]:
        """Requests due every ``1/rate`` s; latency from when each was due."""
        for _ in range(8):
            await self.connect()
        interval = 1.0 / rate
        t0 = now_s() + 0.05
        n_total, first = int((warmup + duration) * rate), int(warmup * rate)
        self.window = (t0 + warmup, t0 + warmup + duration)
        self.loop.call_later(self.window[0] - now_s(), self.snapshot_cpu)
        k = 0
        while k < n_total:
            now = now_s()
            if t0 + k * interval > now:  # uvloop timers tick in ms: sleep >= 1 ms, never spin
                await asyncio.sleep(max(t0 + k * interval - now, 0.001))
                continue
            while k < n_total and t0 + k * interval <= now:
                self.dispatch(t0 + k * interval, k >= first)
                k += 1
        self.snapshot_cpu()
        self.scheduling = False
        if self.pending == 0:
            self.drained.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drained.wait(), timeout=10.0)
        deadline = now_s()
        unfinished = [s for s, r in self.waiting if r]
        unfinished += [c.sched for c in self.conns if c.busy and c.record]
        for sched in unfinished:  # never answered: counted as late as the deadline, at least
            self.lat.append(deadline - sched)
        self.closing = True
        for conn in list(self.conns):
            assert conn.transport is not None
            conn.transport.close()
        return self._result(n_total - first, duration, len(unfinished))

    async def run_closed(self, conns: int, warmup: float, duration: float) -> dict[str, Any]:
        """``conns`` connections, each sending its next request as soon as one is answered."""
        opened = [c for c in [await self.connect() for _ in range(conns)] if c is not None]
        start = now_s()
        self.window = (start + warmup, start + warmup + duration)
        self.stop_at = self.window[1]
        self.loop.call_later(self.window[0] - now_s(), self.snapshot_cpu)
        self.loop.call_later(self.window[1] - now_s(), self.snapshot_cpu)
        for conn in opened:
            self.send(conn, now_s(), False)
        await asyncio.sleep(warmup + duration + 1.0)
        self.closing = True
        for conn in list(self.conns):
            assert conn.transport is not None
            conn.transport.close()
        return self._result(len(self.lat), duration, 0)

    def _result(self, sent: int, duration: float, unfinished: int) -> dict[str, Any]:
        cpu = (self.cpu[1] - self.cpu[0]) / duration if len(self.cpu) >= 2 else float("nan")
        return {
            "sent": sent,
            "ok": self.ok,
            "errors": self.errors,
            "lost": self.lost_n,
            "unfinished": unfinished,
            "achieved_per_s": round(self.ok_in_window / duration, 1),
            "latency_ms": quantiles_ms(self.lat),
            "send_lag_ms": quantiles_ms(self.lag),
            "offered_pct": round(100.0 * self.offered / max(self.ok, 1), 2),
            "connections": self.peak_conns,
            "loadgen_cpu_pct": round(100.0 * cpu, 1),
            "completed_total": self.completed_total,
        }


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    gen = _Gen(spec)
    if spec["mode"] == "closed":
        return await gen.run_closed(int(spec["connections"]), spec["warmup"], spec["duration"])
    return await gen.run_open(float(spec["rate"]), spec["warmup"], spec["duration"])


def loadgen_main() -> None:
    """``--loadgen``: read the spec (JSON) on stdin, print the result (JSON) on stdout."""
    spec = json.loads(sys.stdin.read())
    gc.disable()  # no collector pauses inside the measurement
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(_loadgen(spec))
    else:
        result = uvloop.run(_loadgen(spec))
    print(json.dumps(result))


# ---------------------------------------------------------------- orchestration


def wait_quiet(limit_s: float) -> None:
    """Wait (up to ``limit_s``) until the machine is under 15% busy for 3 s in a row."""
    start, calm = time.monotonic(), 0
    b0, t0 = machine_busy()
    while time.monotonic() - start < limit_s:
        time.sleep(1.0)
        b1, t1 = machine_busy()
        calm = calm + 1 if (b1 - b0) < 0.15 * (t1 - t0) else 0
        b0, t0 = b1, t1
        if calm >= 3:
            return
    if limit_s > 0:
        log(f"  machine still busy after {limit_s:g} s; measuring anyway (see other%)")


class CpuWatch:
    """CPU seconds of a changing set of processes, sampled every 0.25 s from ``/proc``.

    A process that ends during the run (a PostgreSQL backend of a pooled connection that was
    closed) counts up to its last sample, or, with ``reaper`` (the postmaster), in full: the
    CPU of the reaper's reaped children. That includes backends of other databases that end
    during the run, so on a busy PostgreSQL server the figure can be too high.
    """

    def __init__(self, list_pids: Callable[[], list[int]], reaper: int | None = None) -> None:
        self.list_pids = list_pids
        self.reaper = reaper
        self.reaped0 = reaped_cpu_s(reaper) if reaper else 0.0
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.initial = set(list_pids())
        for pid in self.initial:
            self.first[pid] = self.last[pid] = cpu_s([pid])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def seen(self) -> set[int]:
        return set(self.last)

    def _sample(self) -> list[int]:
        pids = self.list_pids()
        for pid in pids:
            cpu = cpu_s([pid])
            self.first.setdefault(pid, 0.0)  # started during the run
            self.last[pid] = max(self.last.get(pid, 0.0), cpu)
        return pids

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def stop(self) -> float:
        """Stop sampling; CPU seconds used since the start."""
        self._stop.set()
        self._thread.join()
        alive = set(self._sample())
        total = sum(self.last[p] - self.first[p] for p in alive)
        gone = [p for p in self.last if p not in alive]
        if self.reaper:
            reaped = reaped_cpu_s(self.reaper) - self.reaped0
            return total + reaped - sum(self.first[p] for p in gone)
        return total + sum(self.last[p] - self.first[p] for p in gone)


def drive(
    server: Server, spec: dict[str, Any], quiet_s: float, database: str | None
) -> dict[str, Any]:
    """Run the load generator process against ``server``; adds CPU per check-in by process.

    ``database``: the PostgreSQL database the server uses, whose backends' CPU is counted.
    """
    wait_quiet(quiet_s)
    spec = {**spec, "port": server.port}
    srv = CpuWatch(server.pids)
    pg = CpuWatch(
        lambda: postgres_pids(database) if database else [],
        postmaster_pid() if database else None,
    )
    b0, t0 = machine_busy()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--loadgen"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=spec["warmup"] + spec["duration"] + 120,
        check=False,
    )
    srv_s, pg_s = srv.stop(), pg.stop()
    b1, t1 = machine_busy()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - w0
    ours = sum(
        b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(ru0, ru1, strict=True)
    )
    if proc.returncode != 0:
        raise SystemExit(f"load generator failed: {proc.stderr[-2000:]}")
    res: dict[str, Any] = json.loads(proc.stdout)
    n = max(res["completed_total"], 1)
    res["server_cpu_ms_per_req"] = round(srv_s * 1e3 / n, 3)
    res["postgres_cpu_ms_per_req"] = round(pg_s * 1e3 / n, 3)
    res["postgres_connects"] = len(pg.seen - pg.initial)  # backends started during the run
    ncpu = os.cpu_count() or 1
    res["machine_busy_pct"] = round(100.0 * (b1 - b0) / max(t1 - t0, 1e-9), 1)
    other = (b1 - b0) - srv_s - pg_s - ours
    res["other_cpu_pct"] = round(max(0.0, 100.0 * other / (wall * ncpu)), 1)
    res["spec"] = {k: v for k, v in spec.items() if k != "port"}
    lat = res["latency_ms"]
    log(
        f"  {spec['mode']:>6} {spec.get('rate', spec.get('connections'))}: "
        f"{res['achieved_per_s']:,.0f}/s, p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
        f"errors {res['errors'] + res['lost'] + res['unfinished']}, "
        f"machine busy {res['machine_busy_pct']:.0f}% (other processes "
        f"{res['other_cpu_pct']:.0f}%), loadgen {res['loadgen_cpu_pct']:.0f}% of a core"
    )
    time.sleep(2.0)  # let a backlog clear before the next run
    return res


def measure(server: Server, args: argparse.Namespace, database: str | None) -> dict[str, Any]:
    """Open-loop runs at each rate, then the saturation run; peak RSS of the server."""
    common = {"devices": args.devices, "seed": args.seed, "warmup": args.warmup}
    runs = []
    for rate in [args.rate, *args.extra_rates]:
        spec = {**common, "mode": "open", "rate": rate, "duration": args.duration}
        runs.append(
            drive(
                server, {**spec, "max_connections": args.max_connections}, args.wait_quiet, database
            )
        )
    sat_spec = {**common, "mode": "closed", "duration": args.sat_duration}
    saturation = drive(
        server, {**sat_spec, "connections": args.sat_connections}, args.wait_quiet, database
    )
    return {"open": runs, "saturation": saturation, "peak_rss_mib": peak_rss_mib(server.pids())}


def prepare_db(db: str, args: argparse.Namespace, workdir: Path) -> tuple[str, bool]:
    """The database URL, and whether a kept database of ``--devices`` devices is reused."""
    if db == "sqlite":
        path = workdir / "bench.db"
        url = f"sqlite:///{path}"
        if args.reuse_db and path.exists() and count_devices(url) == args.devices:
            return url, True
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return url, False
    url = args.pg_url
    name = pg_db_name(url)
    exists = pg_admin(url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if args.reuse_db and exists and count_devices(url) == args.devices:
        return url, True
    pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(url, f'CREATE DATABASE "{name}"')
    return url, False


def bench_db(db: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Set up the fleet and the rollout on ``db``, serve it, drive it."""
    log(f"{db}: preparing {args.devices:,} devices")
    url, reused = prepare_db(db, args, workdir)
    out: dict[str, Any] = {"db": db, "workers": 1 if db == "sqlite" else args.workers}
    out["registration_s"] = (
        None if reused else round(register(url, args.devices, workdir / "artifacts"), 1)
    )
    operator_token(url, workdir / "artifacts")
    server = start_server(
        f"skyfleet-{db}", skyfleet_cmd(url, workdir, out["workers"]), workdir, out["workers"]
    )
    try:
        rollouts = api(server.port, "GET", "/api/v1/rollouts")["rollouts"]
        if reused and rollouts:
            rollout = api(server.port, "GET", f"/api/v1/rollouts/{rollouts[0]['id']}")
            out["rollout_s"] = None
        else:
            log(f"{db}: creating and starting the rollout")
            t0 = time.perf_counter()
            rollout = create_rollout(server.port)
            out["rollout_s"] = round(time.perf_counter() - t0, 1)
        out["actions"] = {f"group {g['index']} {g['group']}": g["total"] for g in rollout["groups"]}
        out["rollout_status"] = rollout["status"]
        if db == "postgresql":
            pg_analyze(url)  # what autovacuum does soon after a bulk load, done now
        log(f"{db}: serving with {out['workers']} worker(s) on port {server.port}; driving")
        out.update(measure(server, args, pg_db_name(url) if db == "postgresql" else None))
    finally:
        server.stop()
    return out


def bench_bare(workers: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    log(f"bare endpoint, {workers} worker(s): driving")
    server = start_server(f"bare-{workers}", bare_cmd(workers), workdir, workers)
    try:
        return {"db": "bare", "workers": workers, **measure(server, args, None)}
    finally:
        server.stop()


# ---------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _run_line(server: str, run: dict[str, Any]) -> str:
    lat, spec = run["latency_ms"], run["spec"]
    what = (
        f"open {spec['rate']:,.0f}/s"
        if spec["mode"] == "open"
        else f"closed x{spec['connections']}"
    )
    bad = run["errors"] + run["lost"] + run["unfinished"]
    cpu = run["server_cpu_ms_per_req"] + run["postgres_cpu_ms_per_req"]
    return (
        f"{server:<24} {what:<14} {run['achieved_per_s']:>8,.0f} {_ms(lat['p50']):>8} "
        f"{_ms(lat['p90']):>8} {_ms(lat['p99']):>8} {_ms(lat['max']):>8} {bad:>7,} {cpu:>7.2f} "
        f"{run['machine_busy_pct']:>5.0f} {run['other_cpu_pct']:>6.0f} {run['loadgen_cpu_pct']:>5.0f}"
    )


def report(
    args: argparse.Namespace, runs: list[dict[str, Any]], m: dict[str, Any], src: dict[str, Any]
) -> list[str]:
    lines = [
        f"check-ins: {args.devices:,} devices; open loop at {args.rate:,.0f}/s for "
        f"{args.duration:g} s (+{args.warmup:g} s warm-up), latency from the scheduled send "
        f"time; saturation: {args.sat_connections} closed-loop connections for "
        f"{args.sat_duration:g} s",
        f"machine: {m['cpus']} CPUs, Python {m['python']}, {m['platform']}",
        f"source: commit {src['commit']}"
        + (f", with uncommitted changes to {', '.join(src['changed'])}" if src["changed"] else ""),
    ]
    for r in runs:
        if r["db"] == "bare":
            continue
        reg = r["registration_s"]
        reg_text = "reused" if reg is None else f"{fmt_s(reg)} ({args.devices / reg:,.0f}/s)"
        ro = "reused" if r["rollout_s"] is None else fmt_s(r["rollout_s"])
        acts = ", ".join(f"{k}: {v:,}" for k, v in r["actions"].items())
        lines.append(
            f"{r['db']}: registration {reg_text}; rollout create+start {ro} "
            f"({r['rollout_status']}; {acts}); offered in "
            f"{r['open'][0]['offered_pct']:.1f}% of polls"
        )
    lines += [
        "",
        f"{'server':<24} {'run':<14} {'ach./s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>7} {'CPU ms':>7} {'busy%':>5} {'other%':>6} {'lgen%':>5}",
    ]
    for r in runs:
        name = "bare FastAPI" if r["db"] == "bare" else f"skyfleet {r['db']}"
        name = f"{name} x{r['workers']}"
        for run in [*r["open"], r["saturation"]]:
            lines.append(_run_line(name, run))
            name = ""
    lines += [
        "ach./s: answered 200 per second; latency from the scheduled send time (open loop) or",
        "from the send (closed loop); errors: non-200, lost connection or unanswered 10 s after",
        "the run; CPU ms: server + PostgreSQL CPU per check-in; busy%: both cores; other%:",
        "processes outside the benchmark; lgen%: load generator, of one core.",
        "peak RSS (VmHWM): "
        + "; ".join(
            f"{'bare' if r['db'] == 'bare' else r['db']} x{r['workers']} "
            + " + ".join(f"{v:.0f}" for v in r["peak_rss_mib"])
            + " MiB"
            for r in runs
        ),
        "",
    ]
    bare = {r["workers"]: r for r in runs if r["db"] == "bare"}
    for r in runs:
        b = bare.get(r["workers"])
        if r["db"] == "bare" or b is None:
            continue
        sat, bsat = r["saturation"]["achieved_per_s"], b["saturation"]["achieved_per_s"]
        o, bo = r["open"][0], b["open"][0]
        cpu = o["server_cpu_ms_per_req"] + o["postgres_cpu_ms_per_req"]
        bcpu = bo["server_cpu_ms_per_req"]
        lines.append(
            f"{r['db']} x{r['workers']}: skyfleet/bare saturation throughput "
            f"{sat / max(bsat, 1e-9):.2f} ({sat:,.0f} vs {bsat:,.0f}/s); CPU per check-in "
            f"{cpu / max(bcpu, 1e-9):.1f}x ({cpu:.2f} vs {bcpu:.2f} ms); at {args.rate:,.0f}/s "
            f"p50 {_ms(o['latency_ms']['p50'])} vs {_ms(bo['latency_ms']['p50'])} ms, "
            f"p99 {_ms(o['latency_ms']['p99'])} vs {_ms(bo['latency_ms']['p99'])} ms"
        )
    for r in runs:
        if r["db"] == "postgresql":
            o = r["open"][0]
            bad = o["errors"] + o["lost"] + o["unfinished"]
            p99 = o["latency_ms"]["p99"]
            met = (
                o["achieved_per_s"] >= 0.99 * TARGET_RATE
                and p99 is not None
                and p99 < TARGET_P99_MS
                and bad == 0
                and args.rate >= TARGET_RATE
            )
            lines.append(
                f"target ({TARGET_RATE:,.0f}/s, p99 < {TARGET_P99_MS:.0f} ms, PostgreSQL, "
                f"{args.devices:,} devices): {'met' if met else 'missed'} "
                f"({o['achieved_per_s']:,.0f}/s, p99 {_ms(p99)} ms, "
                f"{bad} errors; saturation {r['saturation']['achieved_per_s']:,.0f}/s)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--bare-serve"]:
        bare_serve(argv[1:])
        return 0
    args = parse_args(argv)
    if args.loadgen:
        loadgen_main()
        return 0
    src = source()  # before the run: the tree may change while it runs
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skyfleet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    runs: list[dict[str, Any]] = []
    done_bare: set[int] = set()
    try:
        for db in dbs:
            runs.append(bench_db(db, args, workdir))
            workers = runs[-1]["workers"]
            if not args.no_baseline and workers not in done_bare:
                runs.append(bench_bare(workers, args, workdir))
                done_bare.add(workers)
    finally:
        if args.keep_db:
            log(f"kept: {workdir} (SQLite, logs) and {args.pg_url}")
        else:
            if "postgresql" in dbs:
                with contextlib.suppress(Exception):
                    pg_admin(
                        args.pg_url,
                        f'DROP DATABASE IF EXISTS "{pg_db_name(args.pg_url)}" WITH (FORCE)',
                    )
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
    m = machine()
    lines = report(args, runs, m, src)
    skip = ("loadgen", "workdir", "json", "save")
    config = {k: v for k, v in vars(args).items() if k not in skip}
    result = {"benchmark": "checkins", "machine": m, "source": src, "config": config, "runs": runs}
    if args.save:
        args.save.write_text(json.dumps(result, indent=1) + "\n")
    emit(result, lines, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
