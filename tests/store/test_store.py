"""The store against SQLite and PostgreSQL: assignment, operations, sweeps, feedback, failures
that leave nothing behind, and migrations."""

from __future__ import annotations

import gc
import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, func, insert, select, text
from tests.store._actions import action_id, groups_of, states_of

from skyfleet.errors import (
    ArtifactError,
    ConflictError,
    DeviceError,
    FilterError,
    NotFoundError,
    ReleaseError,
    StoreError,
    TooLargeError,
)
from skyfleet.rollout import GroupSpec, assign_group
from skyfleet.store import (
    NewDevice,
    Store,
    apply_feedback,
    create_release,
    create_rollout,
    deployment,
    get_device,
    get_rollout,
    list_audit,
    offered_action,
    open_store,
    operate,
    register_devices,
    rollback,
    save_artifact,
    sweep,
    write_blob,
)
from skyfleet.store._fleet import device_record
from skyfleet.store._schema import (
    actions,
    artifacts,
    devices,
    metadata,
    release_artifacts,
    releases,
    rollout_groups,
    rollouts,
)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ACTOR = "test"
OLD, NEW = "2025.38.1", "2025.44.25.5"


# --- helpers -------------------------------------------------------------------------------------


def _register(conn: Connection, *new: NewDevice, now_s: float = T0) -> None:
    register_devices(conn, now_s, list(new), actor=ACTOR)


def _car(device_id: str, hw: str = "hw3", tags: Sequence[str] = (), **kw: object) -> NewDevice:
    kw.setdefault("installed_version", OLD)
    return NewDevice(device_id, hw=hw, tags=tags, **kw)  # type: ignore[arg-type]


def _artifact(db: Store, conn: Connection, payload: bytes, name: str = "update.swu") -> int:
    sha256, sha1, md5, size = write_blob(db.artifacts_dir, [payload])
    row = save_artifact(
        conn, T0, filename=name, sha256=sha256, sha1=sha1, md5=md5, size=size, actor=ACTOR
    )
    return int(row["id"])


def _release(
    db: Store, conn: Connection, version: str, generations: Sequence[str] = ("hw3",)
) -> None:
    sets = {hw: [_artifact(db, conn, f"{version}/{hw}".encode() * 32)] for hw in generations}
    create_release(conn, T0, version=version, notes="", artifact_sets=sets, actor=ACTOR)


def _rollout(
    conn: Connection, version: str, groups: Sequence[str], seed: str | None = None, **opts: object
) -> int:
    specs = [GroupSpec.parse(g, **opts) for g in groups]
    created = create_rollout(conn, T0, release=version, groups=specs, actor=ACTOR, seed=seed)
    return int(created["id"])


_groups_of, _states_of, _action_id = groups_of, states_of, action_id


def _row_counts(db: Store) -> dict[str, int]:
    with db.begin() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- assignment ----------------------------------------------------------------------------------


def test_devices_registered_while_a_rollout_runs_join_the_group_their_filter_matches(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, _car("old-eap", tags=["eap"]), _car("old-hw3"), _car("old-hw4", "hw4"))
        _release(db, conn, NEW, ["hw3", "hw4"])
        rollout_id = _rollout(conn, NEW, ["tag:eap", "hw:hw3", "kind:vehicle"])
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
    with db.begin() as conn:
        _register(
            conn,
            _car("new-eap", tags=["eap"]),
            _car("new-hw3"),
            _car("new-hw4", "hw4"),
            _car("new-hw2", "hw2"),  # no artifact for hw2: not compatible, no action
            _car("new-site", "hw4", kind="site"),  # matched by no group
            now_s=T0 + 60,
        )
    with db.begin() as conn:
        groups = _groups_of(conn, rollout_id)
        assert groups == {
            "old-eap": 1,
            "old-hw3": 2,
            "old-hw4": 3,
            "new-eap": 1,
            "new-hw3": 2,
            "new-hw4": 3,
        }
        # group 1 has started: the newcomer is offered the release at once; group 2 waits
        assert offered_action(conn, "new-eap") is not None
        assert offered_action(conn, "new-hw3") is None
        assert get_rollout(conn, rollout_id)["groups"][0]["total"] == 2


def test_devices_registered_while_a_rollout_is_halted_still_get_their_group(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        operate(conn, T0, rollout_id, "halt", actor=ACTOR)
        _register(conn, _car("b"), now_s=T0 + 1)
        assert _groups_of(conn, rollout_id) == {"a": 1, "b": 1}
        assert offered_action(conn, "b") is None  # halted: not offered yet


def test_halt_then_resume_keeps_the_same_devices_in_each_group(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(f"car-{i:02d}") for i in range(40)])
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3 25%", "hw:hw3"], auto_advance=False)
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        before = _groups_of(conn, rollout_id)
        operate(conn, T0 + 10, rollout_id, "halt", actor=ACTOR)
        operate(conn, T0 + 20, rollout_id, "resume", actor=ACTOR)
        after = _groups_of(conn, rollout_id)
        assert get_rollout(conn, rollout_id)["status"] == "running"
    assert before == after
    assert set(before) == {f"car-{i:02d}" for i in range(40)}
    assert set(before.values()) == {1, 2}


def test_the_same_seed_gives_the_same_groups(db: Store) -> None:
    groups = ["hw:hw3 30%", "hw:hw3 50%", "hw:hw3"]
    with db.begin() as conn:
        _register(conn, *[_car(f"car-{i:02d}") for i in range(40)])
        _release(db, conn, NEW)
        first = _groups_of(conn, _rollout(conn, NEW, groups, seed="fixed-seed"))
        second = _groups_of(conn, _rollout(conn, NEW, groups, seed="fixed-seed"))
        other = _groups_of(conn, _rollout(conn, NEW, groups, seed="another-seed"))
        records = [device_record(r._mapping) for r in conn.execute(select(devices))]
    assert first == second
    assert first != other
    specs = [GroupSpec.parse(g) for g in groups]
    expected = {d.id: assign_group("fixed-seed", specs, d) + 1 for d in records}  # type: ignore[operator]
    assert first == expected


# --- operations ----------------------------------------------------------------------------------


def test_cancel_moves_scheduled_to_cancelled_and_in_progress_to_cancelling(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(d) for d in ("fetched", "downloading", "done", "waiting")])
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        ids = {d: _action_id(conn, rollout_id, d) for d in ("fetched", "downloading", "done")}
        deployment(conn, T0 + 1, "fetched", ids["fetched"])
        apply_feedback(
            conn, T0 + 2, "downloading", ids["downloading"], execution="download", finished="none"
        )
        apply_feedback(conn, T0 + 3, "done", ids["done"], execution="closed", finished="success")
        result = operate(conn, T0 + 10, rollout_id, "cancel", actor=ACTOR)
        assert result["status"] == "cancelled"
        assert _states_of(conn, rollout_id) == {
            "fetched": "cancelling",
            "downloading": "cancelling",
            "done": "confirmed",
            "waiting": "cancelled",
        }
        offer = offered_action(conn, "fetched")
        assert offer is not None and offer.cancel and offer.action_id == ids["fetched"]
        assert offered_action(conn, "waiting") is None
        # the device acknowledges the cancel
        state, finished = apply_feedback(
            conn, T0 + 11, "fetched", ids["fetched"], execution="canceled", finished="none"
        )
        assert (state, finished) == ("cancelled", True)
        assert offered_action(conn, "fetched") is None


def test_an_operation_the_status_forbids_is_a_conflict_and_changes_nothing(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])
    before = _row_counts(db)
    for operation in ("resume", "halt"):
        with pytest.raises(ConflictError, match="created"), db.begin() as conn:
            operate(conn, T0, rollout_id, operation, actor=ACTOR)
    assert _row_counts(db) == before
    with db.begin() as conn:
        assert get_rollout(conn, rollout_id)["status"] == "created"


def test_an_unknown_operation_is_a_conflict_naming_the_operations(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])
    with pytest.raises(ConflictError, match="explode"), db.begin() as conn:
        operate(conn, T0, rollout_id, "explode", actor=ACTOR)


def test_an_unknown_rollout_is_not_found(db: Store) -> None:
    with pytest.raises(NotFoundError, match="rollout 404"), db.begin() as conn:
        operate(conn, T0, 404, "start", actor=ACTOR)


def test_rollback_starts_a_rollout_to_the_previous_release_for_reached_devices_only(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(d) for d in ("ok-1", "ok-2", "fetched", "idle-1", "idle-2")])
        _release(db, conn, OLD)
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"], success_pct=100.0)
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        for d in ("ok-1", "ok-2"):
            apply_feedback(
                conn,
                T0 + 5,
                d,
                _action_id(conn, rollout_id, d),
                execution="closed",
                finished="success",
            )
            assert get_device(conn, d)["installed_version"] == NEW
        deployment(conn, T0 + 6, "fetched", _action_id(conn, rollout_id, "fetched"))

        back = rollback(conn, T0 + 100, rollout_id, to_version=None, actor=ACTOR)

        assert back["release"] == OLD
        assert back["rollback_of"] == rollout_id
        assert back["status"] == "running"
        assert back["groups"][0]["started"]
        # ok-1/ok-2 run NEW and go back; 'fetched' never left OLD; idle devices were not reached
        assert set(_groups_of(conn, back["id"])) == {"ok-1", "ok-2"}
        assert offered_action(conn, "ok-1") is not None
        original = get_rollout(conn, rollout_id)
        assert original["status"] == "cancelled"
        assert _states_of(conn, rollout_id) == {
            "ok-1": "confirmed",
            "ok-2": "confirmed",
            "fetched": "cancelling",
            "idle-1": "cancelled",
            "idle-2": "cancelled",
        }
        # a device registered later is not pulled into a rollback
        _register(conn, _car("late", installed_version=NEW), now_s=T0 + 200)
        assert "late" not in _groups_of(conn, back["id"])


def test_rollback_to_the_release_being_rolled_out_is_a_conflict(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
    before = _row_counts(db)
    with pytest.raises(ConflictError, match="already ships"), db.begin() as conn:
        rollback(conn, T0, rollout_id, to_version=NEW, actor=ACTOR)
    assert _row_counts(db) == before


# --- the sweep -----------------------------------------------------------------------------------


def test_sweep_times_out_silent_devices_only_after_the_groups_timeout(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(f"car-{i}") for i in range(10)])
        _release(db, conn, NEW)
        rollout_id = _rollout(
            conn, NEW, ["hw:hw3"], timeout_s=600.0, error_pct=50.0, min_finished=5
        )
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        deployment(conn, T0 + 10, "car-0", _action_id(conn, rollout_id, "car-0"))
        apply_feedback(
            conn,
            T0 + 20,
            "car-1",
            _action_id(conn, rollout_id, "car-1"),
            execution="proceeding",
            finished="none",
        )
    with db.begin() as conn:
        sweep(conn, T0 + 10 + 600)  # exactly the timeout: not yet
        states = _states_of(conn, rollout_id)
        assert (states["car-0"], states["car-1"]) == ("retrieved", "installing")
    with db.begin() as conn:
        sweep(conn, T0 + 10 + 600.5)
        states = _states_of(conn, rollout_id)
        assert (states["car-0"], states["car-1"]) == ("timed_out", "installing")
    with db.begin() as conn:
        sweep(conn, T0 + 20 + 601)
        states = _states_of(conn, rollout_id)
        assert (states["car-0"], states["car-1"]) == ("timed_out", "timed_out")
        # devices that never fetched the deployment are not in progress: they do not time out
        assert all(states[f"car-{i}"] == "scheduled" for i in range(2, 10))
        status = get_rollout(conn, rollout_id)
        assert status["status"] == "running"  # 2 finished, below the minimum sample of 5
        assert status["groups"][0]["counts"]["timed_out"] == 2
        timed_out = [
            e for e in list_audit(conn, rollout_id=rollout_id) if e["to_state"] == "timed_out"
        ]
        assert {e["device_id"] for e in timed_out} == {"car-0", "car-1"}


def test_a_timed_out_device_over_the_error_threshold_halts_the_rollout(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(f"car-{i}") for i in range(4)])
        _release(db, conn, NEW)
        rollout_id = _rollout(
            conn, NEW, ["hw:hw3"], timeout_s=60.0, error_pct=None, error_count=1, min_finished=1
        )
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        action_id = _action_id(conn, rollout_id, "car-0")
        deployment(conn, T0, "car-0", action_id)
    with db.begin() as conn:
        assert sweep(conn, T0 + 30) == [rollout_id]
        assert get_rollout(conn, rollout_id)["status"] == "running"
    with db.begin() as conn:
        sweep(conn, T0 + 61)
        status = get_rollout(conn, rollout_id)
        assert status["status"] == "halted"
        assert "group 1" in status["reason"]
        # halted: devices that have not fetched the release are no longer offered it
        assert offered_action(conn, "car-1") is None
    with db.begin() as conn:
        # the silent device comes back and reports success: it ends confirmed
        state, _ = apply_feedback(
            conn, T0 + 120, "car-0", action_id, execution="closed", finished="success"
        )
        assert state == "confirmed"
        assert get_device(conn, "car-0")["installed_version"] == NEW


def test_sweep_completes_a_rollout_whose_last_group_passed(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"), _car("b"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["id:a", "id:b"], success_pct=100.0, min_finished=1)
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        assert offered_action(conn, "b") is None
        for device, t in (("a", T0 + 1), ("b", T0 + 3)):
            apply_feedback(
                conn,
                t,
                device,
                _action_id(conn, rollout_id, device),
                execution="closed",
                finished="success",
            )
            sweep(conn, t + 1)
        assert get_rollout(conn, rollout_id)["status"] == "complete"


# --- feedback ------------------------------------------------------------------------------------


def test_repeated_feedback_adds_no_audit_rows_and_leaves_counts_alone(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"), _car("b"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        action_id = _action_id(conn, rollout_id, "a")
        deployment(conn, T0 + 1, "a", action_id)
        deployment(conn, T0 + 1.5, "a", action_id)  # fetched again: still one transition

    def audit_rows() -> int:
        with db.begin() as conn:
            return len(list_audit(conn, device_id="a", limit=10_000))

    def counts() -> dict[str, int]:
        with db.begin() as conn:
            return dict(get_rollout(conn, rollout_id)["groups"][0]["counts"])

    conversation = [
        ("download", "none"),
        ("downloaded", "none"),
        ("proceeding", "none"),
        ("closed", "success"),
    ]
    for i, (execution, finished) in enumerate(conversation):
        with db.begin() as conn:
            apply_feedback(
                conn, T0 + 10 + i, "a", action_id, execution=execution, finished=finished
            )
        rows, seen = audit_rows(), counts()
        with db.begin() as conn:
            state, just_finished = apply_feedback(
                conn, T0 + 20 + i, "a", action_id, execution=execution, finished=finished
            )
        assert not just_finished
        assert audit_rows() == rows
        assert counts() == seen
    assert state == "confirmed"
    assert counts()["confirmed"] == 1
    with db.begin() as conn:
        transitions = [e for e in list_audit(conn, device_id="a") if e["event"] == "action.state"]
    assert [e["to_state"] for e in reversed(transitions)] == [
        "retrieved",
        "downloading",
        "downloaded",
        "installing",
        "confirmed",
    ]


def test_feedback_for_an_action_not_offered_yet_is_refused(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])  # created, not started
        action_id = _action_id(conn, rollout_id, "a")
    with pytest.raises(ConflictError, match="not been offered"), db.begin() as conn:
        apply_feedback(conn, T0, "a", action_id, execution="closed", finished="success")
    with db.begin() as conn:
        assert _states_of(conn, rollout_id) == {"a": "scheduled"}
        assert get_device(conn, "a")["installed_version"] == OLD


def test_feedback_for_an_unstarted_rollout_is_refused_while_another_is_offered(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
        _release(db, conn, "2025.44.1")
        _release(db, conn, NEW)
        running = _rollout(conn, "2025.44.1", ["hw:hw3"])
        operate(conn, T0, running, "start", actor=ACTOR)
        deployment(conn, T0 + 1, "a", _action_id(conn, running, "a"))
        not_started = _rollout(conn, NEW, ["hw:hw3"])
        other_action = _action_id(conn, not_started, "a")
    with pytest.raises(ConflictError), db.begin() as conn:
        apply_feedback(conn, T0 + 2, "a", other_action, execution="closed", finished="success")
    with db.begin() as conn:
        assert _states_of(conn, not_started) == {"a": "scheduled"}
        assert get_device(conn, "a")["installed_version"] == OLD


def test_feedback_for_another_devices_action_is_not_found(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"), _car("b"))
        _release(db, conn, NEW)
        rollout_id = _rollout(conn, NEW, ["hw:hw3"])
        operate(conn, T0, rollout_id, "start", actor=ACTOR)
        action_of_a = _action_id(conn, rollout_id, "a")
    with pytest.raises(NotFoundError, match="'b'"), db.begin() as conn:
        apply_feedback(conn, T0, "b", action_of_a, execution="closed", finished="success")


# --- failures leave nothing behind ---------------------------------------------------------------


def test_a_release_with_an_unknown_artifact_writes_nothing(db: Store) -> None:
    with db.begin() as conn:
        known = _artifact(db, conn, b"payload")
    before = _row_counts(db)
    with pytest.raises(NotFoundError, match="artifact 9999"), db.begin() as conn:
        create_release(
            conn, T0, version=NEW, notes="", artifact_sets={"hw3": [known, 9999]}, actor=ACTOR
        )
    assert _row_counts(db) == before


def test_a_duplicate_release_version_writes_nothing(db: Store) -> None:
    with db.begin() as conn:
        _release(db, conn, NEW)
        known = _artifact(db, conn, b"another payload")
    before = _row_counts(db)
    with pytest.raises(ReleaseError, match="already exists"), db.begin() as conn:
        create_release(conn, T0, version=NEW, notes="", artifact_sets={"hw4": [known]}, actor=ACTOR)
    assert _row_counts(db) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"artifact_sets": {}}, "at least one artifact"),
        ({"artifact_sets": {"hw3": []}}, "at least one artifact"),
        ({"generations": ["hw3", "hw4"]}, "hw4"),
        ({"min_installed_version": "not a version"}, "not usable"),
        ({"version": "bad version"}, "not usable"),
    ],
)
def test_an_unusable_release_writes_nothing(
    db: Store, options: dict[str, object], message: str
) -> None:
    with db.begin() as conn:
        known = _artifact(db, conn, b"payload")
    before = _row_counts(db)
    arguments: dict[str, object] = {
        "version": NEW,
        "notes": "",
        "artifact_sets": {"hw3": [known]},
        **options,
    }
    with pytest.raises(ReleaseError, match=message), db.begin() as conn:
        create_release(conn, T0, actor=ACTOR, **arguments)  # type: ignore[arg-type]
    assert _row_counts(db) == before


def test_a_rollout_of_an_unknown_release_writes_nothing(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
    before = _row_counts(db)
    with pytest.raises(NotFoundError, match=r"9\.9\.9"), db.begin() as conn:
        create_rollout(conn, T0, release="9.9.9", groups=[GroupSpec()], actor=ACTOR)
    assert _row_counts(db) == before


def test_a_rollout_without_groups_or_with_a_malformed_group_writes_nothing(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
        _release(db, conn, NEW)
    before = _row_counts(db)
    with pytest.raises(FilterError, match="at least one group"), db.begin() as conn:
        create_rollout(conn, T0, release=NEW, groups=[], actor=ACTOR)
    with pytest.raises(FilterError, match="color:red"), db.begin() as conn:
        create_rollout(
            conn,
            T0,
            release=NEW,
            groups=[GroupSpec.parse("hw:hw3"), GroupSpec.parse("color:red 10%")],
            actor=ACTOR,
        )
    assert _row_counts(db) == before


def test_a_registration_with_one_bad_device_stores_none(db: Store) -> None:
    before = _row_counts(db)
    bad = [
        [_car("good"), NewDevice("has space")],
        [_car("good"), NewDevice("x", kind="boat")],
        [_car("good"), NewDevice("x", hw="")],
        [_car("good"), NewDevice("x", installed_version="not a version")],
        [_car("good"), _car("twice"), _car("twice")],
    ]
    for batch in bad:
        with pytest.raises(DeviceError), db.begin() as conn:
            register_devices(conn, T0, batch, actor=ACTOR)
    assert _row_counts(db) == before


def test_registering_an_existing_device_id_is_a_conflict_and_stores_none(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("taken"))
    before = _row_counts(db)
    with pytest.raises(ConflictError, match="'taken'"), db.begin() as conn:
        register_devices(conn, T0, [_car("new"), _car("taken")], actor=ACTOR)
    assert _row_counts(db) == before


def test_a_large_registration_with_an_existing_id_past_the_first_thousand_is_a_conflict(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, _car("car-1000"))
    before = _row_counts(db)
    batch = [_car(f"car-{i:04d}", token="t" * 16) for i in range(1001)]
    with pytest.raises(ConflictError, match="'car-1000'"), db.begin() as conn:
        register_devices(conn, T0, batch, actor=ACTOR)
    assert _row_counts(db) == before


# --- artifact bytes ------------------------------------------------------------------------------


def test_write_blob_stores_the_bytes_under_their_sha256_with_all_hashes(tmp_path: Path) -> None:
    folder = tmp_path / "blobs"
    payload = bytes(range(256)) * 100
    chunks = [payload[i : i + 999] for i in range(0, len(payload), 999)]
    sha256, sha1, md5, size = write_blob(
        folder, chunks, expected_sha256=hashlib.sha256(payload).hexdigest().upper()
    )
    assert sha256 == hashlib.sha256(payload).hexdigest()
    assert sha1 == hashlib.sha1(payload).hexdigest()
    assert md5 == hashlib.md5(payload).hexdigest()
    assert size == len(payload)
    assert _files(folder) == [sha256]
    assert (folder / sha256).read_bytes() == payload


def test_write_blob_with_a_wrong_sha256_leaves_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "blobs"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ArtifactError, match=wrong):
        write_blob(folder, [b"the real ", b"bytes"], expected_sha256=wrong)
    assert _files(folder) == []


def test_write_blob_over_the_size_limit_leaves_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "blobs"
    with pytest.raises(TooLargeError, match="limit of 10 bytes"):
        write_blob(folder, [b"123456", b"7890", b"x"], max_bytes=10)
    assert _files(folder) == []


def test_an_empty_upload_leaves_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "blobs"
    with pytest.raises(ArtifactError, match="empty"):
        write_blob(folder, [])
    assert _files(folder) == []


def test_an_upload_cut_off_half_way_leaves_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "blobs"

    def cut_off() -> Iterator[bytes]:
        yield b"first part"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        write_blob(folder, cut_off())
    assert _files(folder) == []


# --- migrations ----------------------------------------------------------------------------------


def test_a_database_at_revision_0001_keeps_its_rows_when_migrated_to_head(
    database_url: str, tmp_path: Path
) -> None:
    old = open_store(database_url, artifacts_dir=tmp_path / "a", migrate=False)
    try:
        assert old.revision() is None
        old.migrate("0001")
        assert old.revision() == "0001"
        with old.begin() as conn:
            conn.execute(
                insert(devices),
                [
                    {
                        "id": f"car-{i}",
                        "kind": "vehicle",
                        "hw": "hw3",
                        "attributes": {"region": "eu"},
                        "tags": ["eap"],
                        "installed_version": OLD,
                        "token_hash": None,
                        "registered_at": T0,
                        "last_seen": None,
                    }
                    for i in range(3)
                ],
            )
            artifact_id = conn.execute(
                insert(artifacts).values(
                    filename="u.swu",
                    size=3,
                    sha256="0" * 64,
                    sha1="0" * 40,
                    md5="0" * 32,
                    created_at=T0,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            release_id = conn.execute(
                insert(releases).values(version=NEW, notes="n", generations=["hw3"], created_at=T0)
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(release_artifacts).values(
                    release_id=release_id, hw="hw3", artifact_id=artifact_id
                )
            )
            rollout_id = conn.execute(
                insert(rollouts).values(
                    name="old",
                    release_id=release_id,
                    status="running",
                    seed="s",
                    reason="",
                    created_at=T0,
                    updated_at=T0,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                insert(rollout_groups).values(
                    rollout_id=rollout_id,
                    idx=0,
                    filter="hw:hw3",
                    percent=100.0,
                    success_pct=95.0,
                    auto_advance=True,
                    error_pct=10.0,
                    min_finished=5,
                    timeout_s=3600.0,
                    started_at=T0,
                    failures_before=0,
                    finished_before=0,
                )
            )
            conn.execute(
                insert(actions),
                [
                    {
                        "rollout_id": rollout_id,
                        "device_id": f"car-{i}",
                        "group_idx": 0,
                        "state": "confirmed" if i == 0 else "scheduled",
                        "from_version": OLD,
                        "created_at": T0,
                        "updated_at": T0,
                    }
                    for i in range(3)
                ],
            )
        with old.begin() as conn:
            before = {
                t: [tuple(r) for r in conn.execute(select(t)).all()]
                for t in (devices, artifacts, releases, release_artifacts, rollouts, actions)
            }
    finally:
        old.close()

    upgraded = open_store(database_url, artifacts_dir=tmp_path / "a")
    try:
        assert upgraded.revision() == upgraded.head() != "0001"
        with upgraded.begin() as conn:
            for table, rows in before.items():
                assert [tuple(r) for r in conn.execute(select(table)).all()] == rows, table.name
            status = get_rollout(conn, int(rollout_id))
            assert (status["release"], status["total"]) == (NEW, 3)
            assert status["groups"][0]["counts"]["confirmed"] == 1
            assert list_audit(conn) == []
            # and the upgraded database is usable: the new audit table takes entries
            _register(conn, _car("car-new"), now_s=T0 + 1)
            assert [e["device_id"] for e in list_audit(conn)] == ["car-new"]
    finally:
        upgraded.close()


def test_the_migrated_schema_is_exactly_the_schema_the_code_uses(db: Store) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrate_to_head_twice_changes_nothing(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"))
    before = _row_counts(db)
    db.migrate()
    assert db.revision() == db.head()
    assert _row_counts(db) == before


def _stamp_future(database_url: str, tmp_path: Path) -> None:
    """A database with one device, stamped with a schema revision this skyfleet does not know."""
    current = open_store(database_url, artifacts_dir=tmp_path / "a")
    try:
        with current.begin() as conn:
            _register(conn, _car("a"))
            conn.execute(text(f"UPDATE alembic_version SET version_num = '{FUTURE}'"))
    finally:
        current.close()


def _open_connections(database_url: str) -> int:
    """Connections open to the database: PostgreSQL backends, or this process's SQLite files."""
    if database_url.startswith("postgresql"):
        with psycopg.connect(database_url.replace("+psycopg", "")) as probe:
            query = (
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            row = probe.execute(query).fetchone()
            assert row is not None
            return int(row[0])
    database = database_url.removeprefix("sqlite:///")
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd).startswith(database))


def _drop_leftovers() -> None:
    """Collect what a failed open left behind, so it cannot fail an unrelated test later."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


FUTURE = "9999_from_the_future"


def test_a_database_with_a_newer_unknown_schema_is_refused_untouched(
    database_url: str, tmp_path: Path
) -> None:
    _stamp_future(database_url, tmp_path)
    try:
        with pytest.raises(StoreError, match=FUTURE) as caught:
            open_store(database_url, artifacts_dir=tmp_path / "a")
        message = str(caught.value)
        assert "newer" in message and "upgrade skyfleet" in message
    finally:
        del caught
        _drop_leftovers()
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            assert version == FUTURE
            assert conn.execute(select(devices.c.id)).scalars().all() == ["a"]
    finally:
        engine.dispose()


def test_refusing_a_newer_schema_leaves_no_connection_open(
    database_url: str, tmp_path: Path
) -> None:
    _stamp_future(database_url, tmp_path)
    before = _open_connections(database_url)
    try:
        with pytest.raises(StoreError) as caught:
            open_store(database_url, artifacts_dir=tmp_path / "a")
        # counted while the caller still holds the error (and its traceback) to report it
        assert "newer" in str(caught.value)
        still_open = _open_connections(database_url)
    finally:
        del caught
        _drop_leftovers()
    assert still_open == before


@pytest.mark.parametrize("url", ["mysql://db/skyfleet", "not a url", "sqlite+nodriver:///x.db"])
def test_an_unusable_database_url_is_a_store_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="database URL"):
        open_store(url, artifacts_dir=tmp_path / "a")
