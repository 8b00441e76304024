"""Regressions from the store's code review, on SQLite and PostgreSQL: assignment and judging under
concurrent transactions, waiting rollouts that still halt, resumes that forgive only after a
halt, a rollout rolled back once, devices that cannot cancel their own action, feedback as a sign
of life, devices whose hardware becomes known, and audit entries with the real previous state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import Connection, func, select, update
from tests.store._actions import action_id, groups_of, states_of

from skyfleet.errors import ConflictError
from skyfleet.rollout import GroupSpec
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
    operate,
    register_devices,
    rollback,
    save_artifact,
    sweep,
    update_reported,
    write_blob,
)
from skyfleet.store._schema import actions, rollouts

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
ACTOR = "test"
OLD, NEW, NEWER = "2025.38.1", "2025.44.25.5", "2025.46.1"
GENERIC = "2025.40.1"  # a release with an image for every hardware, unknown included
UNKNOWN = "unknown"  # the hardware of a device a gateway registered before it said what it is


# --- helpers -------------------------------------------------------------------------------------


def _car(device_id: str, hw: str = "hw3", tags: Sequence[str] = (), **kw: object) -> NewDevice:
    kw.setdefault("installed_version", OLD)
    return NewDevice(device_id, hw=hw, tags=tags, **kw)  # type: ignore[arg-type]


def _register(conn: Connection, *new: NewDevice, now_s: float = T0) -> None:
    register_devices(conn, now_s, list(new), actor=ACTOR)


def _release(
    db: Store, conn: Connection, version: str, generations: Sequence[str] = ("hw3",)
) -> None:
    sets = {}
    for hw in generations:
        sha256, sha1, md5, size = write_blob(db.artifacts_dir, [f"{version}/{hw}".encode() * 32])
        art = save_artifact(
            conn,
            T0,
            filename=f"{hw}.swu",
            sha256=sha256,
            sha1=sha1,
            md5=md5,
            size=size,
            actor=ACTOR,
        )
        sets[hw] = [int(art["id"])]
    create_release(conn, T0, version=version, notes="", artifact_sets=sets, actor=ACTOR)


def _rollout(
    conn: Connection, version: str, groups: Sequence[GroupSpec | str], **opts: object
) -> int:
    specs = [g if isinstance(g, GroupSpec) else GroupSpec.parse(g, **opts) for g in groups]
    return int(create_rollout(conn, T0, release=version, groups=specs, actor=ACTOR)["id"])


def _started(
    conn: Connection, version: str, groups: Sequence[GroupSpec | str], **opts: object
) -> int:
    rollout_id = _rollout(conn, version, groups, **opts)
    operate(conn, T0, rollout_id, "start", actor=ACTOR)
    return rollout_id


_groups_of, _states_of, _action_id = groups_of, states_of, action_id


def _report(
    conn: Connection, now_s: float, rollout_id: int, device_id: str, execution: str, finished: str
) -> str:
    action_id = _action_id(conn, rollout_id, device_id)
    state, _ = apply_feedback(
        conn, now_s, device_id, action_id, execution=execution, finished=finished
    )
    return state


def _status(db: Store, rollout_id: int) -> str:
    with db.begin() as conn:
        return str(get_rollout(conn, rollout_id)["status"])


def _in_threads(*steps: Callable[[], None]) -> list[BaseException]:
    """Run each step in its own thread, released together; the exceptions they raised."""
    start = threading.Barrier(len(steps))
    errors: list[BaseException] = []

    def run(step: Callable[[], None]) -> None:
        try:
            start.wait(timeout=10)
            step()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a concurrent step never finished"
    return errors


# --- assignment under concurrent transactions ----------------------------------------------------


@pytest.mark.parametrize("first", ["rollout creation", "registration"])
def test_a_device_registered_while_a_rollout_is_created_always_ends_up_in_it(
    db: Store, first: str
) -> None:
    with db.begin() as conn:
        _register(conn, _car("existing"))
        _release(db, conn, NEW)

    def create(conn: Connection) -> None:
        _rollout(conn, NEW, ["hw:hw3"])

    def register(conn: Connection) -> None:
        _register(conn, _car("newcomer"), now_s=T0 + 1)

    opener, other = (create, register) if first == "rollout creation" else (register, create)
    errors: list[BaseException] = []

    def in_another_connection() -> None:
        try:
            with db.engine.connect() as conn, conn.begin():
                other(conn)
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=in_another_connection)
    with db.engine.connect() as conn:
        with conn.begin():
            opener(conn)
            thread.start()
            # without the assignment lock the other transaction would be done by now, blind to
            # this one's uncommitted rollout (or device)
            thread.join(timeout=0.5)
            waited = thread.is_alive()
        thread.join(timeout=30)
    assert not thread.is_alive() and errors == []
    assert waited, "the other transaction did not wait for the assignment lock"
    with db.begin() as conn:
        [rollout_id] = conn.execute(select(rollouts.c.id)).scalars().all()
        assert _groups_of(conn, rollout_id) == {"existing": 1, "newcomer": 1}


def test_sweep_and_cancel_running_at_the_same_time_never_deadlock(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(f"small-{i:02d}", tags=["small"]) for i in range(10)])
        _register(conn, *[_car(f"big-{i:03d}", tags=["big"]) for i in range(150)])
        _release(db, conn, NEW)
    for attempt in range(20):
        now = T0 + 10_000 * (attempt + 1)
        with db.begin() as conn:
            ids = [
                _started(conn, NEW, [group], timeout_s=60.0)
                for group in ("tag:small", "tag:big", "tag:big")
            ]
            # every device has the update in hand and went silent long before `now`
            conn.execute(
                update(actions)
                .where(actions.c.rollout_id.in_(ids))
                .values(state="downloading", updated_at=now - 3600)
            )

        def judge(now: float = now) -> None:
            with db.begin() as conn:
                sweep(conn, now)

        def cancel(
            now: float = now, rollout_id: int = ids[0], delay_s: float = attempt / 1000
        ) -> None:
            time.sleep(delay_s)  # vary the interleaving from one attempt to the next
            with db.begin() as conn:
                operate(conn, now, rollout_id, "cancel", actor=ACTOR)

        errors = _in_threads(judge, cancel)
        assert errors == [], f"attempt {attempt}: {errors!r}"
        assert _status(db, ids[0]) == "cancelled"


# --- judging -------------------------------------------------------------------------------------


def test_a_waiting_rollout_still_halts_when_a_started_group_crosses_its_error_threshold(
    db: Store,
) -> None:
    first = GroupSpec.parse(
        "tag:eap",
        success_pct=50.0,
        auto_advance=False,
        error_pct=None,
        error_count=1,
        min_finished=1,
    )
    with db.begin() as conn:
        _register(conn, *[_car(f"eap-{i}", tags=["eap"]) for i in range(4)], _car("car-1"))
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, [first, GroupSpec.parse("hw:hw3")])
        for device in ("eap-0", "eap-1"):
            _report(conn, T0 + 10, rollout_id, device, "closed", "success")
    with db.begin() as conn:
        sweep(conn, T0 + 11)
    assert _status(db, rollout_id) == "waiting"  # group 1 passed; group 2 waits for resume
    with db.begin() as conn:
        assert _report(conn, T0 + 20, rollout_id, "eap-2", "closed", "failure") == "failed"
    with db.begin() as conn:
        sweep(conn, T0 + 21)
        status = get_rollout(conn, rollout_id)
    assert status["status"] == "halted"
    assert "group 1" in status["reason"]


def test_resuming_a_waiting_rollout_does_not_forgive_earlier_failures(db: Store) -> None:
    first = GroupSpec.parse(
        "tag:eap",
        success_pct=50.0,
        auto_advance=False,
        error_pct=None,
        error_count=2,
        min_finished=1,
    )
    with db.begin() as conn:
        _register(conn, *[_car(f"eap-{i}", tags=["eap"]) for i in range(4)], _car("car-1"))
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, [first, GroupSpec.parse("hw:hw3")])
        _report(conn, T0 + 10, rollout_id, "eap-0", "closed", "success")
        _report(conn, T0 + 10, rollout_id, "eap-1", "closed", "success")
        _report(conn, T0 + 10, rollout_id, "eap-2", "closed", "failure")  # 1 of 2 allowed
    with db.begin() as conn:
        sweep(conn, T0 + 11)
    assert _status(db, rollout_id) == "waiting"
    with db.begin() as conn:
        resumed = operate(conn, T0 + 20, rollout_id, "resume", actor=ACTOR)
    assert resumed["status"] == "running"
    assert [g["started"] for g in resumed["groups"]] == [True, True]
    with db.begin() as conn:
        _report(conn, T0 + 30, rollout_id, "eap-3", "closed", "failure")  # the second failure
    with db.begin() as conn:
        sweep(conn, T0 + 31)
        status = get_rollout(conn, rollout_id)
    assert status["status"] == "halted"
    assert "2 devices failed" in status["reason"]


# --- rollback and cancel -------------------------------------------------------------------------


def test_rolling_back_the_same_rollout_twice_is_a_conflict_and_writes_nothing(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"), _car("b"))
        _release(db, conn, OLD)
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, ["hw:hw3"])
        _report(conn, T0 + 5, rollout_id, "a", "closed", "success")
        first = rollback(conn, T0 + 10, rollout_id, to_version=None, actor=ACTOR)
    assert (first["rollback_of"], first["release"]) == (rollout_id, OLD)
    for to_version in (None, OLD):
        with pytest.raises(ConflictError, match="already rolled back"), db.begin() as conn:
            rollback(conn, T0 + 20, rollout_id, to_version=to_version, actor=ACTOR)
    with db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(rollouts)).scalar_one() == 2
        assert _states_of(conn, first["id"]) == {"a": "scheduled"}


def test_a_device_cannot_cancel_its_own_action_unless_the_server_is_cancelling_it(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, _car("a"), _car("b"))
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, ["hw:hw3"])
        for device in ("a", "b"):
            assert _report(conn, T0 + 1, rollout_id, device, "download", "none") == "downloading"
    with pytest.raises(ConflictError, match="not being cancelled"), db.begin() as conn:
        _report(conn, T0 + 2, rollout_id, "a", "canceled", "none")
    with db.begin() as conn:
        assert _states_of(conn, rollout_id) == {"a": "downloading", "b": "downloading"}
        operate(conn, T0 + 3, rollout_id, "cancel", actor=ACTOR)
        assert _report(conn, T0 + 4, rollout_id, "a", "canceled", "none") == "cancelled"
        assert _states_of(conn, rollout_id) == {"a": "cancelled", "b": "cancelling"}


# --- feedback as a sign of life ------------------------------------------------------------------


def test_a_device_that_keeps_reporting_progress_is_not_timed_out_but_a_silent_one_is(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, _car("chatty"), _car("silent"))
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, ["hw:hw3"], timeout_s=600.0, min_finished=5)
        for device in ("chatty", "silent"):
            _report(conn, T0 + 10, rollout_id, device, "download", "none")
    for t in (T0 + 400, T0 + 800, T0 + 1200):  # the same stage again: no change, still alive
        with db.begin() as conn:
            assert _report(conn, t, rollout_id, "chatty", "download", "none") == "downloading"
    with db.begin() as conn:
        sweep(conn, T0 + 1300)  # 1290 s after the first report, 100 s after the last
        assert _states_of(conn, rollout_id) == {"chatty": "downloading", "silent": "timed_out"}
    with db.begin() as conn:
        sweep(conn, T0 + 1200 + 600.5)  # silent since its last report for longer than 600 s
        assert _states_of(conn, rollout_id)["chatty"] == "timed_out"


# --- devices whose hardware becomes known --------------------------------------------------------


def test_a_device_whose_hardware_becomes_known_joins_every_matching_active_rollout(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, _car("gw-car", hw=UNKNOWN, installed_version=None), _car("car-1"))
        _release(db, conn, NEW)
        _release(db, conn, NEWER)
        running = _started(conn, NEW, ["hw:hw3"])
        created = _rollout(conn, NEWER, ["tag:eap", "hw:hw3"])
        assert "gw-car" not in _groups_of(conn, running)
        update_reported(conn, "gw-car", hw="hw3", last_seen=T0 + 5, now_s=T0 + 5)
    with db.begin() as conn:
        assert get_device(conn, "gw-car")["hw"] == "hw3"
        assert _groups_of(conn, running) == {"car-1": 1, "gw-car": 1}
        assert _groups_of(conn, created) == {"car-1": 2, "gw-car": 2}


def test_a_device_already_in_one_rollout_joins_the_others_when_its_hardware_becomes_known(
    db: Store,
) -> None:
    with db.begin() as conn:
        _register(conn, _car("gw-car", hw=UNKNOWN, installed_version=None), _car("car-1"))
        _release(db, conn, GENERIC, [UNKNOWN, "hw3"])
        _release(db, conn, NEW)
        _release(db, conn, NEWER)
        generic = _started(conn, GENERIC, ["kind:vehicle"])
        assert _groups_of(conn, generic) == {"gw-car": 1, "car-1": 1}
        later = [_started(conn, version, ["hw:hw3"]) for version in (NEW, NEWER)]
        update_reported(conn, "gw-car", hw="hw3", now_s=T0 + 5)
    with db.begin() as conn:
        assert _groups_of(conn, generic) == {"gw-car": 1, "car-1": 1}  # kept, not assigned twice
        for rollout_id in later:
            assert _groups_of(conn, rollout_id) == {"car-1": 1, "gw-car": 1}, rollout_id


def test_a_device_cannot_change_the_hardware_an_operator_registered(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, _car("car-4", hw="hw4"))
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, ["hw:hw3"])
        update_reported(conn, "car-4", hw="hw3", now_s=T0 + 5)
    with db.begin() as conn:
        assert get_device(conn, "car-4")["hw"] == "hw4"
        assert _groups_of(conn, rollout_id) == {}


# --- the audit log -------------------------------------------------------------------------------


def _moves(conn: Connection, rollout_id: int, to_state: str) -> dict[str, str | None]:
    """Device id -> from_state of the rollout's audit entries that moved an action to ``to_state``."""
    entries = list_audit(conn, rollout_id=rollout_id, limit=10_000)
    return {
        e["device_id"]: e["from_state"]
        for e in entries
        if e["event"] == "action.state" and e["to_state"] == to_state
    }


def test_audit_entries_of_a_cancel_carry_each_actions_previous_state(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(d) for d in ("idle", "fetched", "downloading", "installing")])
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, ["hw:hw3"])
        deployment(conn, T0 + 1, "fetched", _action_id(conn, rollout_id, "fetched"))
        _report(conn, T0 + 2, rollout_id, "downloading", "download", "none")
        _report(conn, T0 + 2, rollout_id, "installing", "proceeding", "none")
        operate(conn, T0 + 10, rollout_id, "cancel", actor=ACTOR)
        assert _moves(conn, rollout_id, "cancelled") == {"idle": "scheduled"}
        assert _moves(conn, rollout_id, "cancelling") == {
            "fetched": "retrieved",
            "downloading": "downloading",
            "installing": "installing",
        }


def test_audit_entries_of_a_timeout_carry_each_actions_previous_state(db: Store) -> None:
    with db.begin() as conn:
        _register(conn, *[_car(d) for d in ("idle", "fetched", "downloaded", "rebooting")])
        _release(db, conn, NEW)
        rollout_id = _started(conn, NEW, ["hw:hw3"], timeout_s=60.0)
        deployment(conn, T0 + 1, "fetched", _action_id(conn, rollout_id, "fetched"))
        _report(conn, T0 + 2, rollout_id, "downloaded", "downloaded", "none")
        action_id = _action_id(conn, rollout_id, "rebooting")
        apply_feedback(
            conn,
            T0 + 2,
            "rebooting",
            action_id,
            execution="proceeding",
            finished="none",
            details=["rebooting into the new image"],
        )
    with db.begin() as conn:
        sweep(conn, T0 + 100)
        assert _moves(conn, rollout_id, "timed_out") == {
            "fetched": "retrieved",
            "downloaded": "downloaded",
            "rebooting": "rebooting",
        }
