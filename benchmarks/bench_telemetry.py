"""Benchmark telemetry: 100,000 devices publishing every 10 s through Mosquitto into a live server.

Registers ``--devices`` devices (default 100,000) straight through the store, starts its own
Mosquitto on a free loopback port and ``skyfleet serve --mqtt`` as a subprocess, then publishes
one sample per device every ``--interval`` seconds (10,000 messages/s by default) for
``--duration`` seconds, open loop: each message is due at a fixed time, carries that time as its
``ts``, and is sent then whatever the server does, so lag runs from when the device would have
sent it. Reported: messages the broker acknowledged (published/s), samples stored (ingested/s),
loss (published minus stored: must be 0), lag from the device's ``ts`` to the ``received_at``
the server stored (p50/p99/max), and CPU per message of the server, the broker and the load
generator.

Baseline in the same run: the same load through the same broker to a bare paho-mqtt subscriber
(MQTT 5, QoS 1, the same receive maximum) that only counts messages and reads their ``ts``: the
broker and client's ceiling. The report gives skyfleet/bare for CPU per message and lag.

The load generator is a separate process (this script with ``--loadgen``): a minimal MQTT 3.1.1
publisher on uvloop that writes pre-encoded QoS 1 PUBLISH packets and reads the PUBACKs, so that
on two cores the publisher takes as little CPU from the system measured as it can.

    python benchmarks/bench_telemetry.py               # SQLite, 100,000 devices, 60 s (~3 min)
    python benchmarks/bench_telemetry.py --pg          # and PostgreSQL
    python benchmarks/bench_telemetry.py --quick       # 20,000 devices (2,000/s), 15 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from _bench import emit, machine, source

HERE = Path(__file__).resolve().parent
TENANT = "DEFAULT"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_TOKEN = "sfo_bench-telemetry-viewer-0123456789"
BATCH = 50_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Telemetry ingest: --devices devices publishing every --interval s through Mosquitto "
            "into skyfleet serve (open loop), with loss and lag; a bare paho subscriber on the "
            "same load is the baseline."
        )
    )
    p.add_argument("--devices", type=int, default=None, help="devices (default 100,000)")
    p.add_argument(
        "--interval", type=float, default=10.0, help="seconds between a device's samples"
    )
    p.add_argument("--duration", type=float, default=None, help="seconds of publishing (60)")
    p.add_argument("--history", type=int, default=360, help="samples kept per device (360)")
    p.add_argument("--connections", type=int, default=2, help="publisher MQTT connections (2)")
    p.add_argument("--pg", action="store_true", help="also run on PostgreSQL")
    p.add_argument("--pg-only", action="store_true", help="run on PostgreSQL only")
    p.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/skyfleet_bench_telemetry",
        help="PostgreSQL database the benchmark creates (and drops at the end)",
    )
    p.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the tail (60)")
    p.add_argument("--no-baseline", action="store_true", help="skip the bare subscriber")
    p.add_argument("--quick", action="store_true", help="20,000 devices for 15 s")
    p.add_argument("--wait-quiet", type=float, default=30.0, help="wait for a quiet machine (s)")
    p.add_argument("--workdir", type=Path, help="databases, logs (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.add_argument("--save", type=Path, help="also write the JSON object to this file")
    p.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bare-subscriber", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.devices is None:
        args.devices = 20_000 if args.quick else 100_000
    if args.duration is None:
        args.duration = 15.0 if args.quick else 60.0
    if args.devices < 1 or args.duration <= 0 or args.interval <= 0:
        p.error("--devices must be >= 1, --duration and --interval > 0")
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def device_id(i: int) -> str:
    return f"veh{i:07d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and the children it reaped."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / CLK_TCK
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / CLK_TCK, sum(v) / CLK_TCK


def postgres_backends(database: str) -> list[int]:
    """The PostgreSQL backends connected to ``database``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() != "postgres":
                    continue
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                if f" {database} " in f"{cmd} ":
                    pids.append(int(entry))
    return pids


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


def quantiles_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {k: None for k in ("p50", "p90", "p99", "max", "mean")}
    s = sorted(values)

    def q(f: float) -> float:
        return round(s[min(len(s) - 1, max(0, int(f * len(s) + 0.999999) - 1))] * 1e3, 1)

    return {
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "max": q(1.0),
        "mean": round(sum(s) / len(s) * 1e3, 1),
    }


# ---------------------------------------------------------------- the broker


class Broker:
    """Mosquitto with the settings a telemetry broker needs: queues deep enough for the
    subscriber's session (the default holds 1,000 messages), no persistence writes mid-run."""

    def __init__(self, workdir: Path) -> None:
        import getpass

        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            "persistence false\nmax_queued_messages 1000000\nmax_inflight_messages 0\n"
            f"log_dest file {workdir}/mosquitto.log\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            if time.monotonic() > deadline:
                raise SystemExit("mosquitto did not start")
            time.sleep(0.05)

    def version(self) -> str:
        done = subprocess.run(
            [shutil.which("mosquitto") or "mosquitto", "-h"], capture_output=True, text=True
        )
        first = (done.stdout or done.stderr).splitlines()
        return first[0].split("version")[-1].strip() if first else "?"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


# ---------------------------------------------------------------- the load generator

now = time.time  # the devices' clock is the wall clock: ts in the payload, received_at stored


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


class _Publisher(asyncio.Protocol):
    """One MQTT 3.1.1 connection: QoS 1 PUBLISHes written in bulk, PUBACKs counted."""

    def __init__(self, gen: _LoadGen) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.connected = asyncio.get_running_loop().create_future()
        self.inflight: set[int] = set()
        self.next_mid = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        client = f"bench-pub-{os.getpid()}-{id(self)}".encode()
        body = _string(b"MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _string(client)
        self.transport.write(bytes([0x10]) + _varint(len(body)) + body)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, n = 0, len(buf)
        while pos + 2 <= n:
            kind, size = buf[pos], buf[pos + 1]  # every packet a broker sends here is short
            if pos + 2 + size > n:
                break
            if kind == 0x40:  # PUBACK
                self.inflight.discard(int.from_bytes(buf[pos + 2 : pos + 4], "big"))
                self.gen.acked += 1
            elif kind == 0x20 and not self.connected.done():  # CONNACK
                if buf[pos + 3] != 0:
                    self.connected.set_exception(RuntimeError(f"CONNACK {buf[pos + 3]}"))
                else:
                    self.connected.set_result(None)
            pos += 2 + size
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed"))
        self.gen.lost += 1

    def publish(self, packets: list[bytes]) -> None:
        assert self.transport is not None
        self.transport.write(b"".join(packets))

    def mid(self) -> int:
        mid = self.next_mid % 65535 + 1
        while mid in self.inflight:  # more than 65,535 in flight never happens at these rates
            mid = mid % 65535 + 1
        self.next_mid = mid
        self.inflight.add(mid)
        return mid


class _LoadGen:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.acked = 0
        self.lost = 0
        n = spec["devices"]
        self.topics = [
            _string(f"skyfleet/{spec['tenant']}/devices/{device_id(i)}/telemetry".encode())
            for i in range(n)
        ]
        links = ("satellite", "satellite", "satellite", "cellular", "wired")
        self.rest = [
            (
                f',"lat_deg":{-60 + (i * 7919) % 12000 / 100:.2f},"lon_deg":'
                f'{-180 + (i * 104729) % 36000 / 100:.2f},"link":"{links[i % 5]}",'
                f'"rtt_ms":{30 + i % 40}.5,"soc_pct":{20 + i % 80},"version":"2025.44.25.5",'
                '"state":"driving"}'
            ).encode()
            for i in range(n)
        ]

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        loop = asyncio.get_running_loop()
        conns = []
        for _ in range(spec["connections"]):
            _, proto = await loop.create_connection(
                lambda: _Publisher(self), "127.0.0.1", spec["port"]
            )
            await proto.connected
            conns.append(proto)
        n, rate = spec["devices"], spec["devices"] / spec["interval"]
        total = int(rate * spec["duration"])
        t0 = spec["t0"]
        cpu0 = time.process_time()
        sent = 0
        behind_max = 0.0
        while sent < total:
            t = now()
            due = min(total, int((t - t0) * rate) + 1)
            if due > sent:
                behind_max = max(behind_max, t - (t0 + sent / rate))
                per: list[list[bytes]] = [[] for _ in conns]
                for k in range(sent, due):
                    i = k % n
                    conn_i = i % len(conns)
                    conn = conns[conn_i]
                    payload = b'{"ts":%.3f' % (t0 + k / rate) + self.rest[i]
                    topic = self.topics[i]
                    mid = conn.mid()
                    size = len(topic) + 2 + len(payload)
                    per[conn_i].append(
                        b"\x32" + _varint(size) + topic + mid.to_bytes(2, "big") + payload
                    )
                for conn, packets in zip(conns, per, strict=True):
                    if packets:
                        conn.publish(packets)
                sent = due
            await asyncio.sleep(0.005)
        send_end = now()
        deadline = time.monotonic() + 60
        while self.acked < sent and time.monotonic() < deadline and not self.lost:
            await asyncio.sleep(0.01)
        for conn in conns:
            assert conn.transport is not None
            conn.transport.write(b"\xe0\x00")  # DISCONNECT
            conn.transport.close()
        return {
            "sent": sent,
            "acked": self.acked,
            "send_end": send_end,
            "ack_end": now(),
            "behind_max_s": round(behind_max, 4),
            "cpu_s": round(time.process_time() - cpu0, 3),
            "connections_lost": self.lost,
        }


def loadgen_main() -> None:
    import uvloop

    spec = json.loads(sys.stdin.readline())
    gen = _LoadGen(spec)
    print("ready", flush=True)
    spec["t0"] = float(sys.stdin.readline())
    print(json.dumps(uvloop.run(gen.run())), flush=True)


def run_loadgen(port: int, args: argparse.Namespace, wait_until: float) -> dict[str, Any]:
    """Start the generator, let it build its packets, start publishing at ``wait_until``."""
    spec = {
        "port": port,
        "tenant": TENANT,
        "devices": args.devices,
        "interval": args.interval,
        "duration": args.duration,
        "connections": args.connections,
    }
    proc = subprocess.Popen(
        [sys.executable, __file__, "--loadgen"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(spec) + "\n")
    proc.stdin.flush()
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("the load generator did not start")
    t0 = max(now() + 0.5, wait_until)
    proc.stdin.write(f"{t0}\n")
    proc.stdin.flush()
    result: dict[str, Any] = json.loads(proc.stdout.readline())
    proc.wait(timeout=30)
    result["t0"] = t0
    return result


# ---------------------------------------------------------------- the bare subscriber


def bare_subscriber_main() -> None:
    """Count messages (and read their ts) with paho, MQTT 5, QoS 1, receive maximum 65,535."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    url = sys.argv[sys.argv.index("--bare-subscriber") + 1]
    port = int(url.rsplit(":", 1)[1])
    lags: list[float] = []
    ready = threading.Event()
    state = {"first": 0.0, "last": 0.0}

    def on_connect(client: Any, *_a: Any) -> None:
        client.subscribe(f"skyfleet/{TENANT}/devices/+/telemetry", qos=1)

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        t = now()
        payload = message.payload
        lags.append(t - float(payload[6 : payload.index(b",")]))
        if not state["first"]:
            state["first"] = t
        state["last"] = t

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_connect = on_connect
    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = 65535  # as skyfleet's subscriber; its session ends with it
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.loop_start()
    ready.wait(10)
    print("ready", flush=True)
    cpu0 = time.process_time()
    expected = int(sys.stdin.readline())
    deadline = time.monotonic() + 60
    while len(lags) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"received": len(lags), "cpu_s": cpu, **state, "lags": lags}), flush=True)


def bench_bare(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    log("baseline: a bare paho subscriber")
    wait_quiet(args.wait_quiet)
    sub = subprocess.Popen(
        [sys.executable, __file__, "--bare-subscriber", broker.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sub.stdin is not None and sub.stdout is not None
    if sub.stdout.readline().strip() != "ready":
        raise SystemExit("the bare subscriber did not start")
    busy0, all0 = machine_busy()
    cpu0 = cpu_s(sub.pid), cpu_s(broker.proc.pid)
    gen = run_loadgen(broker.port, args, 0.0)
    sub.stdin.write(f"{gen['acked']}\n")
    sub.stdin.flush()
    got = json.loads(sub.stdout.readline())
    sub.wait(timeout=30)
    cpu_sub = got["cpu_s"]
    cpu_broker = cpu_s(broker.proc.pid) - cpu0[1]
    busy1, all1 = machine_busy()
    window = max(got["last"], gen["ack_end"]) - gen["t0"]
    return summarize(
        "bare paho subscriber",
        gen,
        received=got["received"],
        stored=got["received"],
        lags_s=got["lags"],
        ingest_end=got["last"],
        cpu={"system": cpu_sub, "broker": cpu_broker, "loadgen": gen["cpu_s"]},
        busy=(busy1 - busy0, all1 - all0, window),
    )


# ---------------------------------------------------------------- skyfleet


def prepare_store(url: str, args: argparse.Namespace, workdir: Path) -> float:
    """Register the devices and a viewer token; seconds taken."""
    from skyfleet import store

    st = store.open_store(url, artifacts_dir=workdir / "artifacts")
    t0 = time.perf_counter()
    try:
        for start in range(0, args.devices, BATCH):
            stop = min(args.devices, start + BATCH)
            new = [
                store.NewDevice(
                    device_id(i), token=f"bench-token-{i:09d}", installed_version="2025.38.1"
                )
                for i in range(start, stop)
            ]
            with st.begin() as conn:
                store.register_devices(conn, time.time(), new, actor="bench")
            log(f"  registered {stop:,} / {args.devices:,} devices")
        with st.begin() as conn:
            store.create_operator_token(
                conn, time.time(), name="bench", role="viewer", actor="bench", token=BENCH_TOKEN
            )
    finally:
        st.close()
    return time.perf_counter() - t0


def pg_admin(url: str, sql: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(sql)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    logfile: Path

    def get(self, path: str) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        req.add_header("Authorization", f"Bearer {BENCH_TOKEN}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self.get("/api/v1/fleet/status?limit=0")["telemetry"]
        return counts

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(url: str, broker: Broker, args: argparse.Namespace, workdir: Path) -> Server:
    port = free_port()
    logfile = workdir / "serve.log"
    cmd = [
        sys.executable, "-m", "skyfleet", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--database-url", url, "--artifacts-dir", str(workdir / "artifacts"),
        "--mqtt", broker.url, "--telemetry-history", str(args.history), "--log-level", "warning",
    ]  # fmt: skip
    with logfile.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(proc, port, logfile)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"skyfleet serve exited: {logfile.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            server.get("/api/v1/health")
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise SystemExit("skyfleet serve did not start")
        time.sleep(0.2)


def probe(server: Server, broker: Broker) -> None:
    """Publish one sample and wait until it is stored: the subscription is in place."""
    from skyfleet.sim import MqttTelemetryPublisher
    from skyfleet.telemetry import Telemetry

    with MqttTelemetryPublisher(broker.url, tenant=TENANT, client_id="bench-probe") as pub:
        pub.publish(device_id(0), Telemetry(now() - 3600.0, link="wired"))
        pub.flush(10)
    deadline = time.monotonic() + 30
    while server.counts()["stored"] < 1:
        if time.monotonic() > deadline:
            raise SystemExit(f"the probe was never stored: {server.logfile.read_text()[-2000:]}")
        time.sleep(0.1)


def stored_lags(url: str, workdir: Path, t0: float) -> tuple[int, int, list[float], float]:
    """(rows of the run, distinct (device, ts) among them, lags in seconds, last received_at)."""
    from sqlalchemy import select

    from skyfleet import store
    from skyfleet.store._schema import telemetry

    st = store.open_store(url, artifacts_dir=workdir / "artifacts", migrate=False)
    try:
        with st.read() as conn:
            rows = conn.execute(
                select(telemetry.c.device_id, telemetry.c.ts, telemetry.c.received_at).where(
                    telemetry.c.ts >= t0 - 1.0
                )
            ).all()
    finally:
        st.close()
    lags = [r[2] - r[1] for r in rows]
    distinct = len({(r[0], r[1]) for r in rows})
    return len(rows), distinct, lags, max((r[2] for r in rows), default=0.0)


def bench_skyfleet(
    db: str, broker: Broker, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    folder = workdir / db
    folder.mkdir(exist_ok=True)
    if db == "sqlite":
        url = f"sqlite:///{folder / 'skyfleet.db'}"
    else:
        from sqlalchemy.engine import make_url

        name = make_url(args.pg_url).database or ""
        if not name.startswith("skyfleet_bench"):
            raise SystemExit(f"--pg-url must name a database skyfleet_bench*, not {name!r}")
        pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg_admin(args.pg_url, f'CREATE DATABASE "{name}"')
        url = args.pg_url
    log(f"{db}: registering {args.devices:,} devices")
    prepare_store(url, args, folder)
    server = start_server(url, broker, args, folder)
    try:
        probe(server, broker)
        before = server.counts()
        log(
            f"{db}: publishing {args.devices / args.interval:,.0f} messages/s for {args.duration:g} s"
        )
        wait_quiet(args.wait_quiet)
        backends = postgres_backends(make_db_name(url)) if db == "postgresql" else []
        cpu0 = {"system": cpu_s(server.proc.pid), "broker": cpu_s(broker.proc.pid)}
        cpu0["database"] = sum(cpu_s(p) for p in backends)
        busy0, all0 = machine_busy()
        gen = run_loadgen(broker.port, args, 0.0)
        expected = before["stored"] + gen["acked"]
        deadline = time.monotonic() + args.drain
        while server.counts()["stored"] < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        busy1, all1 = machine_busy()
        cpu = {
            "system": cpu_s(server.proc.pid) - cpu0["system"],
            "broker": cpu_s(broker.proc.pid) - cpu0["broker"],
            "loadgen": gen["cpu_s"],
        }
        if backends:
            cpu["database"] = sum(cpu_s(p) for p in backends) - cpu0["database"]
        after = server.counts()
    finally:
        server.stop()
    rows, distinct, lags, last = stored_lags(url, folder, gen["t0"])
    if db == "postgresql":
        pg_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{make_db_name(url)}" WITH (FORCE)')
    window = max(last, gen["ack_end"]) - gen["t0"]
    result = summarize(
        f"skyfleet, {'SQLite' if db == 'sqlite' else 'PostgreSQL'}",
        gen,
        received=after["samples"] - before["samples"],
        stored=after["stored"] - before["stored"],
        lags_s=lags,
        ingest_end=last,
        cpu=cpu,
        busy=(busy1 - busy0, all1 - all0, window),
    )
    result["rows"] = rows
    result["distinct_rows"] = distinct
    result["counters"] = {k: after[k] - before[k] for k in after}
    return result


def make_db_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or ""


def summarize(
    name: str,
    gen: dict[str, Any],
    *,
    received: int,
    stored: int,
    lags_s: list[float],
    ingest_end: float,
    cpu: dict[str, float],
    busy: tuple[float, float, float],
) -> dict[str, Any]:
    t0 = gen["t0"]
    publish_s = gen["send_end"] - t0
    per_msg = {k: round(v / max(stored, 1) * 1e6, 1) for k, v in cpu.items()}
    busy_s, all_s, window_s = busy
    return {
        "name": name,
        "published": gen["acked"],
        "published_per_s": round(gen["acked"] / publish_s, 1),
        "received": received,
        "stored": stored,
        "ingested_per_s": round(stored / max(ingest_end - t0, publish_s), 1),
        "loss": gen["acked"] - stored,
        "lag_ms": quantiles_ms(lags_s),
        "tail_s": round(max(0.0, ingest_end - gen["send_end"]), 2),
        "publisher_behind_max_s": gen["behind_max_s"],
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_us_per_message": per_msg,
        "machine_busy_pct": round(100.0 * busy_s / max(all_s, 1e-9), 1),
        "window_s": round(window_s, 1),
    }


# ---------------------------------------------------------------- report


def report(args: argparse.Namespace, runs: list[dict[str, Any]], m: dict[str, Any]) -> list[str]:
    rate = args.devices / args.interval
    lines = [
        f"telemetry: {args.devices:,} devices every {args.interval:g} s = {rate:,.0f} messages/s "
        f"offered for {args.duration:g} s (open loop), QoS 1, through Mosquitto {m.get('mosquitto')}",
        f"machine: {m['cpus']} CPUs, Python {m['python']}, {m['measured_utc']}",
        "",
        f"{'run':<28} {'pub./s':>8} {'ingest/s':>9} {'loss':>5} {'lag p50':>8} {'p99':>8} "
        f"{'max':>8} {'tail':>6} {'CPU us/msg (system, broker, gen)':>34} {'busy':>5}",
    ]
    for r in runs:
        lag = r["lag_ms"]
        per = r["cpu_us_per_message"]
        cpu = f"{per['system']:.0f}"
        if "database" in per:
            cpu += f"+{per['database']:.0f}db"
        cpu += f", {per['broker']:.0f}, {per['loadgen']:.0f}"
        lines.append(
            f"{r['name']:<28} {r['published_per_s']:>8,.0f} {r['ingested_per_s']:>9,.0f} "
            f"{r['loss']:>5} {lag['p50'] or 0:>6.0f}ms {lag['p99'] or 0:>6.0f}ms "
            f"{lag['max'] or 0:>6.0f}ms {r['tail_s']:>5.1f}s {cpu:>34} {r['machine_busy_pct']:>4.0f}%"
        )
    bare = next((r for r in runs if r["name"].startswith("bare")), None)
    for r in runs:
        if bare is None or r is bare:
            continue
        ratio_cpu = r["cpu_us_per_message"]["system"] / max(
            bare["cpu_us_per_message"]["system"], 1e-9
        )
        lines.append(
            f"{r['name']}: skyfleet/bare CPU per message {ratio_cpu:.2f}x; "
            f"lag p50 {r['lag_ms']['p50']} ms vs {bare['lag_ms']['p50']} ms; "
            f"rows {r['rows']:,} ({r['distinct_rows']:,} distinct); counters {r['counters']}"
        )
    lines.append(
        "loss = messages the broker acknowledged to the publisher - samples stored; lag = stored "
        "received_at - the device's ts (when the message was due); tail = after the last send"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--bare-subscriber" in argv:
        bare_subscriber_main()
        return 0
    args = parse_args(argv)
    if args.loadgen:
        loadgen_main()
        return 0
    src = source()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skyfleet-bench-telemetry-"))
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Broker(workdir)
    runs: list[dict[str, Any]] = []
    dbs = ["postgresql"] if args.pg_only else ["sqlite", "postgresql"] if args.pg else ["sqlite"]
    try:
        if not args.no_baseline:
            runs.append(bench_bare(broker, args))
        for db in dbs:
            runs.append(bench_skyfleet(db, broker, args, workdir))
    finally:
        broker.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    m = {**machine(), "mosquitto": broker.version()}
    lines = report(args, runs, m)
    skip = ("loadgen", "bare_subscriber", "workdir", "json", "save")
    config = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in skip
    }
    result = {"benchmark": "telemetry", "machine": m, "source": src, "config": config, "runs": runs}
    if args.save:
        args.save.write_text(json.dumps(result, indent=1) + "\n")
    emit(result, lines, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
