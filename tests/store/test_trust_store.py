"""Signed metadata in the store: versions kept for clients mid-update, publishers taking turns,
and releases from before names were checked."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from conftest import _reset_pg
from skyfleet import store
from skyfleet.rollout import Published
from skyfleet.store import Store
from skyfleet.store._schema import artifacts, release_artifacts, releases

HOUR = 3600.0


def _versions(db: Store, repo: str, role: str) -> list[int]:
    with db.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT version FROM tuf_metadata WHERE repo = ? AND role = ? ORDER BY version"
            if db.dialect == "sqlite"
            else "SELECT version FROM tuf_metadata WHERE repo = %s AND role = %s ORDER BY version",
            (repo, role),
        ).fetchall()
    return [r[0] for r in rows]


def _publish(db: Store, now_s: float, version: int) -> None:
    with db.begin() as conn:
        store.publish(conn, now_s, "image", [Published("timestamp", version, now_s + 86400, b"{}")])


def test_versions_a_client_may_still_want_are_kept_an_hour(db: Store) -> None:
    now = time.time()
    for version in range(1, 5):  # four signed within a minute: a client mid-update needs them
        _publish(db, now + version, version)
    assert _versions(db, "image", "timestamp") == [1, 2, 3, 4]
    _publish(db, now + HOUR + 60, 5)  # an hour later: the newest two stay
    assert _versions(db, "image", "timestamp") == [4, 5]


def test_publishers_of_a_repository_take_turns(pg_database: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _reset_pg(pg_database)
    db = store.open_store(pg_database, artifacts_dir=tmp_path / "artifacts")
    outcome: dict[str, str] = {}

    def try_lock(repo: str) -> None:
        with db.engine.connect() as conn:
            try:
                with conn.begin():
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '300ms'")
                    store.lock_repo(conn, repo)
                outcome[repo] = "locked"
            except OperationalError:
                outcome[repo] = "waited in vain"

    try:
        with db.begin() as conn:
            store.lock_repo(conn, "image")
            for repo in ("image", "director/car-1"):
                worker = threading.Thread(target=try_lock, args=(repo,))
                worker.start()
                worker.join(timeout=10)
        assert outcome == {"image": "waited in vain", "director/car-1": "locked"}
        try_lock("image")  # released at commit
        assert outcome["image"] == "locked"
    finally:
        db.close()


def test_a_release_from_before_names_were_checked_is_left_out_with_a_warning(
    db: Store, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    with db.begin() as conn:
        rows = []
        for version, hw in (("1.0", "hw3"), ("1.1", "hw 3/x")):
            art = conn.execute(
                insert(artifacts).values(
                    filename="u.swu",
                    size=3,
                    sha256="a" * 64,
                    sha1="b" * 40,
                    md5="c" * 32,
                    created_at=now,
                )
            ).inserted_primary_key[0]
            rel = conn.execute(
                insert(releases).values(version=version, notes="", generations=[hw], created_at=now)
            ).inserted_primary_key[0]
            rows.append({"release_id": rel, "hw": hw, "artifact_id": art})
        conn.execute(insert(release_artifacts), rows)
    with caplog.at_level(logging.WARNING, logger="skyfleet.store"), db.read() as conn:
        listed = store.image_targets(conn)
    assert list(listed) == ["1.0/hw3/u.swu"]
    assert "not signed for TUF clients" in caplog.text and "hw 3/x" in caplog.text
