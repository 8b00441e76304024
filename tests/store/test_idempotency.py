"""Idempotency keys (what makes a relay's re-sent report apply once) and the relay's own tables,
on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from skyfleet.errors import InputError, RateLimitError
from skyfleet.store import (
    RelayStore,
    Store,
    claim_idempotency_key,
    open_store,
    prune_idempotency_keys,
)

T0 = 1_767_225_600.0


def _claim(db: Store, device_id: str, key: str, now_s: float = T0) -> bool:
    with db.begin() as conn:
        return claim_idempotency_key(conn, device_id, key, now_s)


def test_a_key_is_claimed_once_and_a_repeat_applies_nothing(db: Store) -> None:
    assert _claim(db, "car-1", "relay-a:1")
    assert not _claim(db, "car-1", "relay-a:1")
    assert _claim(db, "car-1", "relay-a:2")


def test_a_key_is_per_device_so_no_device_can_suppress_anothers_report(db: Store) -> None:
    # car-2 guesses the relay's next key and sends it first: car-1's report still applies.
    assert _claim(db, "car-2", "relay-a:7")
    assert _claim(db, "car-1", "relay-a:7")


def test_a_claim_rolled_back_with_its_report_can_be_claimed_again(db: Store) -> None:
    # The report failed after the claim (a 409, the database went away): nothing was applied,
    # so the relay's next try must apply it.
    with pytest.raises(RuntimeError), db.begin() as conn:
        assert claim_idempotency_key(conn, "car-1", "relay-a:3", T0)
        raise RuntimeError("the report failed")
    assert _claim(db, "car-1", "relay-a:3")


def test_keys_older_than_the_ttl_are_pruned_and_newer_ones_kept(db: Store) -> None:
    assert _claim(db, "car-1", "old", T0)
    assert _claim(db, "car-1", "new", T0 + 100)
    with db.begin() as conn:
        assert prune_idempotency_keys(conn, T0 + 50) == 1
    assert _claim(db, "car-1", "old", T0 + 200)  # forgotten: a re-send would apply again
    assert not _claim(db, "car-1", "new", T0 + 200)


@pytest.mark.parametrize("key", ["", "two words", "x" * 201, "tab\there", "é"])
def test_a_malformed_key_is_refused(db: Store, key: str) -> None:
    with pytest.raises(InputError, match="Idempotency-Key"), db.begin() as conn:
        claim_idempotency_key(conn, "car-1", key, T0)


@pytest.mark.parametrize("first_commits", [True, False])
def test_the_same_key_sent_twice_at_once_applies_once(db: Store, first_commits: bool) -> None:
    # The relay re-sends while the first try is still in the server's transaction: the second
    # waits for the first, and applies only if the first rolled back.
    claimed = threading.Event()
    second: dict[str, bool] = {}

    def first() -> None:
        try:
            with db.begin() as conn:
                assert claim_idempotency_key(conn, "car-1", "relay-a:9", T0)
                claimed.set()
                time.sleep(0.4)  # the report being applied
                if not first_commits:
                    raise RuntimeError("the report failed")
        except RuntimeError:
            pass

    def again() -> None:
        claimed.wait(5)
        second["applies"] = _claim(db, "car-1", "relay-a:9", T0 + 1)

    threads = [threading.Thread(target=first), threading.Thread(target=again)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert second == {"applies": not first_commits}


# --- the relay's tables --------------------------------------------------------------------------


def _enqueue(relay: RelayStore, device_id: str = "car-1", link: str | None = None) -> int:
    return relay.enqueue(
        device_id,
        "POST",
        "/T/controller/v1/car-1/x",
        "application/json",
        b"{}",
        "TargetToken t",
        T0,
        reported_link=link,
    )


def test_relay_queue_numbers_are_never_reused_after_the_queue_empties(db: Store) -> None:
    # seq is half of the Idempotency-Key: a number used again would make the server drop a new
    # report as a repeat of an old one (SQLite reuses rowids without AUTOINCREMENT).
    relay = RelayStore(db)
    first = _enqueue(relay)
    relay.ack(first, T0)
    assert relay.head() is None
    second = _enqueue(relay)
    assert second > first
    head = relay.head()
    assert head is not None and head.seq == second


def test_relay_queue_is_forwarded_oldest_first(db: Store) -> None:
    relay = RelayStore(db)
    seqs = [_enqueue(relay, f"car-{i}") for i in range(3)]
    order = []
    while (head := relay.head()) is not None:
        order.append(head.seq)
        relay.ack(head.seq, T0)
    assert order == seqs == sorted(seqs)


def test_relay_keeps_the_newest_dead_letters_with_their_reason(db: Store) -> None:
    relay = RelayStore(db)
    for i in range(3):
        seq = _enqueue(relay, link="deploymentBase/5")
        head = relay.head()
        assert head is not None and head.seq == seq
        relay.dead_letter(head, 409, f"HTTP 409: refused {i}", T0, keep=2)
    status = relay.status()
    assert status["queue_depth"] == 0
    assert status["dead_letters"] == 2
    assert [d["reason"] for d in status["recent_dead_letters"]] == [
        "HTTP 409: refused 2",
        "HTTP 409: refused 1",
    ]
    assert relay.reported("car-1") == {}  # a refused report no longer hides the action


def test_relay_recognises_only_the_token_the_upstream_accepted(db: Store) -> None:
    relay = RelayStore(db)
    assert relay.token_verdict("car-1", "TargetToken good") == "unknown"
    relay.remember_token("car-1", "TargetToken good", T0)
    assert relay.token_verdict("car-1", "TargetToken good") == "ok"
    assert relay.token_verdict("car-1", "TargetToken bad") == "wrong"
    assert relay.token_verdict("car-1", None) == "wrong"
    assert relay.token_verdict("car-2", "TargetToken good") == "unknown"
    relay.forget_token("car-1", "TargetToken good")  # the upstream said 401
    assert relay.token_verdict("car-1", "TargetToken good") == "unknown"


def test_relay_id_is_made_once_and_kept(db: Store) -> None:
    relay = RelayStore(db)
    made = relay.relay_id()
    assert made.startswith("relay.") and relay.relay_id() == made
    chosen = relay.relay_id("site-7")
    assert chosen == f"site-7.{made.partition('.')[2]}" == relay.relay_id()
    with pytest.raises(InputError, match="relay id"):
        relay.relay_id("has:colon")


def test_a_relay_id_reused_on_a_fresh_database_gets_keys_of_its_own(tmp_path: Path) -> None:
    prefixes = []
    for name in ("first", "second"):
        fresh = open_store(f"sqlite:///{tmp_path / name}.db", artifacts_dir=tmp_path / name)
        try:
            prefixes.append(RelayStore(fresh).relay_id("site-7"))
            assert RelayStore(fresh).relay_id("site-7") == prefixes[-1]  # kept
        finally:
            fresh.close()
    first, second = prefixes
    assert first.startswith("site-7.") and second.startswith("site-7.") and first != second


def test_relay_refuses_a_device_more_queued_reports_than_its_limit(db: Store) -> None:
    relay = RelayStore(db)

    def send(device_id: str) -> int:
        return relay.enqueue(
            device_id, "POST", "/p", None, b"{}", "TargetToken t", T0, max_queued=2
        )

    send("car-1"), send("car-1")
    with pytest.raises(RateLimitError, match="2 reports waiting"):
        send("car-1")
    send("car-2")  # the other devices of the site are not held up
    assert relay.status()["queue_depth"] == 3


def test_relay_refuses_a_device_more_queued_bytes_than_its_limit(db: Store) -> None:
    relay = RelayStore(db)

    def send(device_id: str, size: int) -> int:
        body = b"x" * size
        return relay.enqueue(
            device_id, "POST", "/p", None, body, "TargetToken t", T0, max_queued_bytes=1000
        )

    send("car-1", 600), send("car-1", 400)
    with pytest.raises(RateLimitError, match="1000 bytes of reports waiting"):
        send("car-1", 1)
    send("car-2", 1000)  # the other devices of the site are not held up
    assert relay.status()["queue_depth"] == 3
