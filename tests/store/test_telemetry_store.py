"""Telemetry in the store, on SQLite and PostgreSQL: batches, the latest state, the bounded
history, and the fleet status built from them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import func, insert, inspect, select

from skyfleet.rollout import GroupSpec
from skyfleet.store import (
    NewDevice,
    Store,
    create_release,
    create_rollout,
    fleet_status,
    get_device,
    ingest_telemetry,
    latest_telemetry,
    open_store,
    operate,
    prune_telemetry,
    register_devices,
    save_artifact,
    telemetry_counts,
    telemetry_history,
    write_blob,
)
from skyfleet.store._engine import _alembic_config
from skyfleet.store._schema import device_state, telemetry
from skyfleet.telemetry import Telemetry

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _register(db: Store, *ids: str, **kw: object) -> None:
    with db.begin() as conn:
        register_devices(
            conn,
            T0,
            [NewDevice(i, **kw) for i in ids],
            actor="test",  # type: ignore[arg-type]
        )


def _ingest(db: Store, now_s: float, *samples: tuple[str, Telemetry], invalid: int = 0) -> object:
    with db.begin() as conn:
        return ingest_telemetry(conn, now_s, list(samples), invalid_messages=invalid)


def _rows(db: Store, device_id: str) -> int:
    with db.begin() as conn:
        query = (
            select(func.count()).select_from(telemetry).where(telemetry.c.device_id == device_id)
        )
        return int(conn.execute(query).scalar_one())


def test_a_batch_stores_history_latest_state_and_last_seen(db: Store) -> None:
    _register(db, "car-1", "car-2")
    result = _ingest(
        db,
        T0 + 60,
        ("car-1", Telemetry(T0 + 10, 47.6, -122.3, "satellite", 41.0, 80.0, "2025.1", "driving")),
        ("car-1", Telemetry(T0 + 20, 47.7, -122.4, "cellular", 62.0, 79.0, "2025.1", "parked")),
        ("car-2", Telemetry(T0 + 15, link="wired", freq_hz=49.98, power_w=-3300.0)),
    )
    assert (result.stored, result.duplicate, result.stale, result.unknown_device) == (3, 0, 0, 0)
    with db.begin() as conn:
        latest = latest_telemetry(conn, ["car-1", "car-2", "nobody"])
        history = telemetry_history(conn, "car-1")
        assert get_device(conn, "car-1")["last_seen"] == T0 + 20  # its newest sample's time
    assert set(latest) == {"car-1", "car-2"}
    assert latest["car-1"] == {
        "received_at": T0 + 60,
        "ts": T0 + 20,  # the newest of the batch, though both came together
        "lat_deg": 47.7,
        "lon_deg": -122.4,
        "link": "cellular",
        "rtt_ms": 62.0,
        "soc_pct": 79.0,
        "version": "2025.1",
        "state": "parked",
        "freq_hz": None,  # not reported: null, not left out
        "power_w": None,
    }
    assert (latest["car-2"]["freq_hz"], latest["car-2"]["power_w"]) == (49.98, -3300.0)
    assert [s["ts"] for s in history] == [T0 + 20, T0 + 10]  # newest first


def test_power_and_frequency_go_to_the_history_and_the_latest_state_sample_by_sample(
    db: Store,
) -> None:
    _register(db, "home-1", kind="home-battery", hw="gen2")
    _ingest(
        db,
        T0 + 60,
        ("home-1", Telemetry(T0 + 10, soc_pct=70.0, freq_hz=50.0, power_w=2400.0)),  # discharging
        ("home-1", Telemetry(T0 + 20, soc_pct=71.0, freq_hz=50.2, power_w=-5000.0)),  # charging
        ("home-1", Telemetry(T0 + 30, soc_pct=71.0)),  # a sample without them
    )
    with db.begin() as conn:
        history = telemetry_history(conn, "home-1")
        latest = latest_telemetry(conn, ["home-1"])["home-1"]
    assert [(s["freq_hz"], s["power_w"]) for s in history] == [
        (None, None),
        (50.2, -5000.0),
        (50.0, 2400.0),
    ]
    assert (latest["ts"], latest["freq_hz"], latest["power_w"]) == (T0 + 30, None, None)
    _ingest(db, T0 + 70, ("home-1", Telemetry(T0 + 40, freq_hz=0.0, power_w=-1e6)))
    with db.begin() as conn:
        latest = latest_telemetry(conn, ["home-1"])["home-1"]
    assert (latest["freq_hz"], latest["power_w"]) == (0.0, -1e6)  # zero is a value, not null


def test_last_seen_is_the_device_time_of_the_newest_sample_never_later_than_now_never_back(
    db: Store,
) -> None:
    _register(db, "car-late", "car-fast")
    # an hour late (queued at an edge relay): last heard from an hour ago, not now
    _ingest(db, T0 + 3600, ("car-late", Telemetry(T0)), ("car-fast", Telemetry(T0 + 3700)))
    with db.begin() as conn:
        assert get_device(conn, "car-late")["last_seen"] == T0
        assert get_device(conn, "car-fast")["last_seen"] == T0 + 3600  # a clock ahead: now
        status = fleet_status(conn, T0 + 3600, silent_after_s=600)
    assert [d["id"] for d in status["silent"]] == ["car-late"]
    _ingest(db, T0 + 3700, ("car-fast", Telemetry(T0 + 100)))  # an old sample, late
    with db.begin() as conn:
        assert get_device(conn, "car-fast")["last_seen"] == T0 + 3600  # never moves back


def test_an_older_sample_goes_to_the_history_but_never_back_into_the_latest_state(
    db: Store,
) -> None:
    _register(db, "car-1")
    _ingest(db, T0 + 60, ("car-1", Telemetry(T0 + 50, link="satellite", soc_pct=50.0)))
    result = _ingest(db, T0 + 70, ("car-1", Telemetry(T0 + 40, link="cellular", soc_pct=55.0)))
    assert (result.stored, result.stale) == (1, 1)
    with db.begin() as conn:
        latest = latest_telemetry(conn, ["car-1"])["car-1"]
        assert (latest["ts"], latest["link"], latest["soc_pct"]) == (T0 + 50, "satellite", 50.0)
        assert [s["ts"] for s in telemetry_history(conn, "car-1")] == [T0 + 50, T0 + 40]
        assert telemetry_counts(conn)["stale"] == 1


def test_a_sample_delivered_twice_is_stored_once(db: Store) -> None:
    _register(db, "car-1")
    sample = ("car-1", Telemetry(T0 + 5, rtt_ms=30.0))
    _ingest(db, T0 + 10, sample, sample)  # twice in one batch
    result = _ingest(db, T0 + 20, sample)  # and again, as a broker delivers after a crash
    assert (result.stored, result.duplicate) == (0, 1)
    assert _rows(db, "car-1") == 1
    with db.begin() as conn:
        counts = telemetry_counts(conn)
    assert (counts["samples"], counts["stored"], counts["duplicate"]) == (3, 1, 2)


def test_samples_of_unregistered_devices_are_counted_and_dropped(db: Store) -> None:
    _register(db, "car-1")
    result = _ingest(
        db,
        T0 + 10,
        ("car-1", Telemetry(T0)),
        ("ghost", Telemetry(T0)),
        ("nul\x00id", Telemetry(T0)),  # PostgreSQL text cannot hold it: no device, no failure
        invalid=2,
    )
    assert (result.stored, result.unknown_device) == (1, 2)
    with db.begin() as conn:
        counts = telemetry_counts(conn)
        assert latest_telemetry(conn, ["ghost"]) == {}
    assert (counts["unknown_device"], counts["invalid_messages"]) == (2, 2)


def test_pruning_keeps_the_newest_samples_by_device_time(db: Store) -> None:
    _register(db, "car-1", "car-2")
    # received out of order: pruning goes by the device's time, not by arrival
    for ts in (5, 1, 9, 3, 7, 2, 8, 4, 6, 0):
        _ingest(db, T0 + 100, ("car-1", Telemetry(T0 + ts)), ("car-2", Telemetry(T0 + ts)))
    with db.begin() as conn:
        deleted = prune_telemetry(conn, ["car-1"], keep=4)
        assert deleted == 6
        assert [s["ts"] - T0 for s in telemetry_history(conn, "car-1")] == [9, 8, 7, 6]
        assert prune_telemetry(conn, ["car-1"], keep=4) == 0  # nothing more to do
        assert prune_telemetry(conn, [], keep=4) == 0
    assert _rows(db, "car-2") == 10  # another device's history is left alone


def test_fleet_status_counts_devices_by_state_kind_link_version_and_rollout_action(
    db: Store,
) -> None:
    _register(db, "car-1", "car-2", "car-3", installed_version="2025.38.1")
    _register(db, "battery-1", kind="home-battery", hw="gen2")
    _ingest(db, T0 + 100, ("car-1", Telemetry(T0 + 100, link="satellite", rtt_ms=40.0)))
    _ingest(db, T0 + 1000, ("car-2", Telemetry(T0 + 1000, link="satellite", rtt_ms=50.0)))
    _ingest(db, T0 + 1000, ("car-3", Telemetry(T0 + 1000, link="cellular", version="2025.44.25.5")))
    with db.begin() as conn:
        sha256, sha1, md5, size = write_blob(db.artifacts_dir, [b"an update" * 10])
        art = save_artifact(
            conn, T0, filename="u.swu", sha256=sha256, sha1=sha1, md5=md5, size=size, actor="t"
        )
        create_release(
            conn,
            T0,
            version="2025.44.25.5",
            notes="",
            artifact_sets={"hw3": [art["id"]]},
            actor="t",
        )
        rollout = create_rollout(
            conn, T0, release="2025.44.25.5", groups=[GroupSpec.parse("hw:hw3")], actor="t"
        )
        operate(conn, T0, int(rollout["id"]), "start", actor="t")
        status = fleet_status(conn, T0 + 1200, silent_after_s=600, limit=10)
    assert status["devices"] == 4
    assert status["by_state"] == {"online": 2, "silent": 1, "never_seen": 1}
    assert status["by_kind"] == {"home-battery": 1, "vehicle": 3}
    assert status["by_link"] == {"cellular": 1, "satellite": 2, "unreported": 1}
    assert status["rtt_ms_mean_by_link"]["satellite"] == 45.0
    # the version a device reports, else the one it was registered with
    assert status["by_version"] == {"2025.38.1": 2, "2025.44.25.5": 1, "unknown": 1}
    assert status["by_action_state"] == {"scheduled": 3}
    assert [(d["id"], d["silent_s"], d["link"]) for d in status["silent"]] == [
        ("car-1", 1100.0, "satellite")
    ]
    assert status["telemetry"]["stored"] == 3
    with db.begin() as conn:
        assert fleet_status(conn, T0 + 1200, silent_after_s=600, limit=0)["silent"] == []
        later = fleet_status(conn, T0 + 5000, silent_after_s=600)
    assert later["by_state"] == {"online": 0, "silent": 3, "never_seen": 1}
    assert [d["id"] for d in later["silent"]] == ["car-1", "car-2", "car-3"]  # longest first


# --- migration 0006: bus frequency and power -----------------------------------------------------


def _at_0005_with_samples(database_url: str, folder: Path) -> None:
    """A database made by skyfleet at revision 0005, two devices with telemetry in it."""
    old = open_store(database_url, artifacts_dir=folder, migrate=False)
    try:
        old.migrate("0005")
        assert old.revision() == "0005"
        _register(old, "car-1", "home-1")
        sample = {"received_at": T0 + 60, "link": "satellite", "rtt_ms": 41.0, "soc_pct": 80.0}
        with old.begin() as conn:
            conn.execute(
                insert(telemetry),
                [
                    {"device_id": d, "ts": T0 + k, **sample}
                    for d in ("car-1", "home-1")
                    for k in (10, 20)
                ],
            )
            for d in ("car-1", "home-1"):
                conn.execute(insert(device_state).values(device_id=d, ts=T0 + 20, **sample))
    finally:
        old.close()


def test_a_database_at_0005_keeps_its_samples_when_migrated_and_then_takes_power(
    database_url: str, tmp_path: Path
) -> None:
    _at_0005_with_samples(database_url, tmp_path / "a")
    db = open_store(database_url, artifacts_dir=tmp_path / "a")  # migrates to head
    try:
        assert db.revision() == db.head() == "0006"
        with db.begin() as conn:
            history = telemetry_history(conn, "home-1")
            latest = latest_telemetry(conn, ["car-1", "home-1"])
        assert [(s["ts"], s["rtt_ms"], s["soc_pct"]) for s in history] == [
            (T0 + 20, 41.0, 80.0),
            (T0 + 10, 41.0, 80.0),
        ]
        assert all(s["freq_hz"] is None and s["power_w"] is None for s in history)
        assert {d: (s["link"], s["freq_hz"], s["power_w"]) for d, s in latest.items()} == {
            "car-1": ("satellite", None, None),
            "home-1": ("satellite", None, None),
        }
        result = _ingest(db, T0 + 90, ("home-1", Telemetry(T0 + 30, freq_hz=50.0, power_w=-7.5e3)))
        assert result.stored == 1
        with db.begin() as conn:
            latest = latest_telemetry(conn, ["home-1"])
        assert (latest["home-1"]["freq_hz"], latest["home-1"]["power_w"]) == (50.0, -7500.0)
    finally:
        db.close()


def test_downgrading_0006_drops_only_the_two_columns_and_keeps_the_samples(
    database_url: str, tmp_path: Path
) -> None:
    _at_0005_with_samples(database_url, tmp_path / "a")
    db = open_store(database_url, artifacts_dir=tmp_path / "a")
    try:
        with db.engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0005")
        assert db.revision() == "0005"
        with db.engine.connect() as conn:
            for table in ("telemetry", "device_state"):
                names = {c["name"] for c in inspect(conn).get_columns(table)}
                assert {"soc_pct", "state"} <= names and not {"freq_hz", "power_w"} & names
            count = conn.exec_driver_sql("SELECT count(*) FROM telemetry").scalar_one()
        assert count == 4
        db.migrate()  # and up again
        assert db.revision() == "0006"
    finally:
        db.close()
