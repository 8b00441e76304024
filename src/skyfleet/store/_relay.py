"""An edge relay's persistence: remembered device tokens, cached answers and bytes, the queue
of device reports waiting for the uplink, and what was refused for good.

Each method is one transaction. The relay's server (:mod:`skyfleet.server._relay`) calls them
from worker threads; nothing here talks to the network.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    Table,
    Text,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from skyfleet.errors import InputError, RateLimitError
from skyfleet.store._catalog import artifact_path
from skyfleet.store._engine import Store
from skyfleet.store._fleet import hash_token, token_matches
from skyfleet.store._relay_schema import (
    relay_blob_refs,
    relay_blobs,
    relay_dead,
    relay_queue,
    relay_reported,
    relay_responses,
    relay_state,
    relay_tokens,
)

__all__ = ["BlobRef", "CachedResponse", "QueuedRequest", "RelayStore"]


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """The upstream's answer to a GET, as it came, and when (UNIX seconds)."""

    status: int
    content_type: str | None
    body: bytes
    fetched_at: float


@dataclass(frozen=True, slots=True)
class BlobRef:
    """The bytes a download path names: their SHA-256 and, when known, size and file name."""

    sha256: str
    size: int | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """A device report waiting to be forwarded; ``seq`` orders them and keys them upstream."""

    seq: int
    device_id: str
    method: str
    path: str
    content_type: str | None
    body: bytes
    authorization: str
    created_at: float
    attempts: int


def _queued(m: Any) -> QueuedRequest:
    return QueuedRequest(
        int(m["seq"]),
        m["device_id"],
        m["method"],
        m["path"],
        m["content_type"],
        bytes(m["body"]),
        m["authorization"],
        m["created_at"],
        m["attempts"],
    )


def _upsert(conn: Connection, table: Table, row: dict[str, Any], keys: Iterable[str]) -> None:
    index = list(keys)
    changed = {k: v for k, v in row.items() if k not in index}
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = module.insert(table).values(row)
    conn.execute(statement.on_conflict_do_update(index_elements=index, set_=changed))


def _keep_newest_dead(conn: Connection, keep: int) -> None:
    newest = select(relay_dead.c.seq).order_by(relay_dead.c.seq.desc()).limit(keep)
    conn.execute(delete(relay_dead).where(relay_dead.c.seq.not_in(newest.scalar_subquery())))


def _check_relay_id(relay_id: str) -> str:
    if not (0 < len(relay_id) <= 64 and all(33 <= ord(c) <= 126 and c != ":" for c in relay_id)):
        raise InputError(f"relay id {relay_id!r} must be 1-64 visible ASCII characters without ':'")
    return relay_id


class RelayStore:
    """The relay's tables in ``db``, and its cached bytes in ``db.artifacts_dir``."""

    def __init__(self, db: Store) -> None:
        self.db = db

    # --- identity ------------------------------------------------------------------------------

    def relay_id(self, wanted: str | None = None) -> str:
        """The prefix of the relay's idempotency keys, ``ID.RANDOM``: ``ID`` is ``wanted`` if
        given (kept), else the one kept in the database, else ``relay``; ``RANDOM`` is made
        once per relay database and kept. A relay id reused on a fresh database (a replaced
        disk, a second site) thus never sends a key the server has already seen."""
        with self.db.begin() as conn:
            kept = dict(
                conn.execute(
                    select(relay_state.c.key, relay_state.c.value).where(
                        relay_state.c.key.in_(["relay_id", "key_nonce"])
                    )
                ).all()
            )
            name = _check_relay_id(wanted or kept.get("relay_id") or "relay")
            nonce = kept.get("key_nonce") or secrets.token_hex(8)
            for key, value in (("relay_id", name), ("key_nonce", nonce)):
                if kept.get(key) != value:
                    _upsert(conn, relay_state, {"key": key, "value": value}, ["key"])
        return f"{name}.{nonce}"

    # --- tokens --------------------------------------------------------------------------------

    def token_verdict(self, device_id: str, authorization: str | None) -> str:
        """``ok``: the upstream accepted this header from the device; ``wrong``: it accepted
        another one; ``unknown``: the relay never saw the upstream accept the device."""
        with self.db.read() as conn:
            known = conn.execute(
                select(relay_tokens.c.token_hash).where(relay_tokens.c.device_id == device_id)
            ).scalar()
        if known is None:
            return "unknown"
        return "ok" if authorization and token_matches(authorization, known) else "wrong"

    def remember_token(self, device_id: str, authorization: str, now_s: float) -> None:
        """The upstream accepted ``authorization`` from the device (only its hash is kept)."""
        row = {
            "device_id": device_id,
            "token_hash": hash_token(authorization),
            "accepted_at": now_s,
        }
        with self.db.begin() as conn:
            _upsert(conn, relay_tokens, row, ["device_id"])

    def forget_token(self, device_id: str, authorization: str | None) -> None:
        """The upstream refused ``authorization`` (401): stop accepting it while down."""
        with self.db.begin() as conn:
            conn.execute(
                delete(relay_tokens).where(
                    relay_tokens.c.device_id == device_id,
                    relay_tokens.c.token_hash == hash_token(authorization or ""),
                )
            )

    # --- cached answers ------------------------------------------------------------------------

    def put_response(
        self,
        device_id: str,
        path: str,
        answer: CachedResponse,
        refs: Iterable[tuple[str, BlobRef]] = (),
    ) -> None:
        """Keep the upstream's answer to the device's GET of ``path`` (and, for a deployment,
        the bytes its download paths name)."""
        row = {
            "device_id": device_id,
            "path": path,
            "status": answer.status,
            "content_type": answer.content_type,
            "body": answer.body,
            "fetched_at": answer.fetched_at,
        }
        with self.db.begin() as conn:
            _upsert(conn, relay_responses, row, ["device_id", "path"])
            for ref_path, ref in refs:
                ref_row = {
                    "device_id": device_id,
                    "path": ref_path,
                    "sha256": ref.sha256,
                    "size": ref.size,
                    "filename": ref.filename,
                }
                _upsert(conn, relay_blob_refs, ref_row, ["device_id", "path"])

    def response(self, device_id: str, path: str) -> CachedResponse | None:
        """The kept answer to the device's GET of ``path``, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(
                    relay_responses.c.status,
                    relay_responses.c.content_type,
                    relay_responses.c.body,
                    relay_responses.c.fetched_at,
                ).where(relay_responses.c.device_id == device_id, relay_responses.c.path == path)
            ).first()
        return None if row is None else CachedResponse(row[0], row[1], bytes(row[2]), row[3])

    # --- cached bytes --------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        """Where the bytes with this SHA-256 are (or will be) kept."""
        return artifact_path(self.db.artifacts_dir, sha256)

    def blob_ref(self, device_id: str, path: str) -> BlobRef | None:
        """What the device's download ``path`` names, if the relay learnt it."""
        with self.db.read() as conn:
            row = conn.execute(
                select(
                    relay_blob_refs.c.sha256, relay_blob_refs.c.size, relay_blob_refs.c.filename
                ).where(relay_blob_refs.c.device_id == device_id, relay_blob_refs.c.path == path)
            ).first()
        return None if row is None else BlobRef(row[0], row[1], row[2])

    def add_ref(self, device_id: str, path: str, ref: BlobRef) -> None:
        """Note what the device's download ``path`` names."""
        row = {"device_id": device_id, "path": path, "sha256": ref.sha256, "size": ref.size}
        with self.db.begin() as conn:
            _upsert(conn, relay_blob_refs, {**row, "filename": ref.filename}, ["device_id", "path"])

    def has_blob(self, sha256: str) -> bool:
        """Whether the bytes are kept (recorded, and the file is there)."""
        with self.db.read() as conn:
            found = conn.execute(
                select(relay_blobs.c.sha256).where(relay_blobs.c.sha256 == sha256)
            ).first()
        return found is not None and self.blob_path(sha256).is_file()

    def add_blob(self, sha256: str, size: int, now_s: float) -> None:
        """Record bytes stored (by :func:`~skyfleet.store.write_blob`, hash checked)."""
        with self.db.begin() as conn:
            _upsert(
                conn, relay_blobs, {"sha256": sha256, "size": size, "fetched_at": now_s}, ["sha256"]
            )

    # --- the queue -----------------------------------------------------------------------------

    def enqueue(
        self,
        device_id: str,
        method: str,
        path: str,
        content_type: str | None,
        body: bytes,
        authorization: str,
        now_s: float,
        *,
        reported_link: str | None = None,
        max_queued: int | None = None,
        max_queued_bytes: int | None = None,
    ) -> int:
        """Queue a device report (and note the poll link it answers); returns its ``seq``.

        :class:`~skyfleet.errors.RateLimitError` if the device already has ``max_queued``
        reports waiting, or ``max_queued_bytes`` of them with this one (a device in a loop must
        not fill the relay's disk while it is offline).
        """
        row = {
            "device_id": device_id,
            "method": method,
            "path": path,
            "content_type": content_type,
            "body": body,
            "authorization": authorization,
            "created_at": now_s,
            "attempts": 0,
        }
        with self.db.begin() as conn:
            if max_queued is not None or max_queued_bytes is not None:
                waiting, waiting_bytes = conn.execute(
                    select(
                        func.count(), func.coalesce(func.sum(func.length(relay_queue.c.body)), 0)
                    ).where(relay_queue.c.device_id == device_id)
                ).one()
                if max_queued is not None and waiting >= max_queued:
                    raise RateLimitError(
                        f"device {device_id!r} has {waiting} reports waiting for the uplink, "
                        f"the relay's limit; retry later",
                        retry_after_s=60.0,
                    )
                if max_queued_bytes is not None and waiting_bytes + len(body) > max_queued_bytes:
                    raise RateLimitError(
                        f"device {device_id!r} has {waiting_bytes} bytes of reports waiting for "
                        f"the uplink, the relay's limit is {max_queued_bytes}; retry later",
                        retry_after_s=60.0,
                    )
            seq = int(conn.execute(insert(relay_queue).values(row)).inserted_primary_key[0])  # type: ignore[index]
            if reported_link is not None:
                reported = {
                    "device_id": device_id,
                    "link": reported_link,
                    "seq": seq,
                    "acked_at": None,
                }
                _upsert(conn, relay_reported, reported, ["device_id", "link"])
        return seq

    def head(self) -> QueuedRequest | None:
        """The oldest queued report, or None."""
        with self.db.read() as conn:
            row = conn.execute(select(relay_queue).order_by(relay_queue.c.seq).limit(1)).first()
        return None if row is None else _queued(row._mapping)

    def queued_devices(self) -> list[str]:
        """The devices with reports queued, by id."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(relay_queue.c.device_id).distinct().order_by(relay_queue.c.device_id)
            ).all()
        return [device_id for (device_id,) in rows]

    def device_head(self, device_id: str, limit: int = 1) -> list[QueuedRequest]:
        """The device's oldest ``limit`` queued reports, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(relay_queue)
                .where(relay_queue.c.device_id == device_id)
                .order_by(relay_queue.c.seq)
                .limit(limit)
            ).all()
        return [_queued(row._mapping) for row in rows]

    def ack(self, seq: int | Iterable[int], now_s: float) -> None:
        """The upstream took report ``seq`` (or these reports, sent as one): drop them from the
        queue, together."""
        seqs = [seq] if isinstance(seq, int) else list(seq)
        with self.db.begin() as conn:
            conn.execute(delete(relay_queue).where(relay_queue.c.seq.in_(seqs)))
            conn.execute(
                update(relay_reported).where(relay_reported.c.seq.in_(seqs)).values(acked_at=now_s)
            )

    def attempt_failed(self, seq: int, error: str) -> None:
        """Count a failed delivery of report ``seq`` (it stays queued)."""
        with self.db.begin() as conn:
            conn.execute(
                update(relay_queue)
                .where(relay_queue.c.seq == seq)
                .values(attempts=relay_queue.c.attempts + 1, last_error=error[:2000])
            )

    def dead_letter(
        self, entry: QueuedRequest, status: int | None, reason: str, now_s: float, *, keep: int
    ) -> None:
        """Move report ``entry`` out of the queue for good, with why (the newest ``keep`` kept)."""
        row = {
            "seq": entry.seq,
            "device_id": entry.device_id,
            "method": entry.method,
            "path": entry.path,
            "body": entry.body,
            "status": status,
            "reason": reason[:2000],
            "created_at": entry.created_at,
            "dead_at": now_s,
        }
        with self.db.begin() as conn:
            conn.execute(delete(relay_queue).where(relay_queue.c.seq == entry.seq))
            conn.execute(delete(relay_reported).where(relay_reported.c.seq == entry.seq))
            conn.execute(insert(relay_dead).values(row))
            _keep_newest_dead(conn, keep)

    def dead_letter_token(
        self, entry: QueuedRequest, status: int | None, reason: str, now_s: float, *, keep: int
    ) -> int:
        """The upstream refused ``entry``'s ``Authorization`` (401): move every report of that
        device queued with the same header out of the queue at once, with why, and forget the
        header's hash. Returns how many reports were set aside."""
        same = (relay_queue.c.device_id == entry.device_id) & (
            relay_queue.c.authorization == entry.authorization
        )
        with self.db.begin() as conn:
            seqs = [int(seq) for (seq,) in conn.execute(select(relay_queue.c.seq).where(same))]
            conn.execute(
                insert(relay_dead).from_select(
                    [
                        "seq",
                        "device_id",
                        "method",
                        "path",
                        "body",
                        "status",
                        "reason",
                        "created_at",
                        "dead_at",
                    ],
                    select(
                        relay_queue.c.seq,
                        relay_queue.c.device_id,
                        relay_queue.c.method,
                        relay_queue.c.path,
                        relay_queue.c.body,
                        literal(status, Integer),
                        literal(reason[:2000], Text),
                        relay_queue.c.created_at,
                        literal(now_s, Float),
                    ).where(same),
                )
            )
            conn.execute(delete(relay_reported).where(relay_reported.c.seq.in_(seqs)))
            conn.execute(delete(relay_queue).where(same))
            conn.execute(
                delete(relay_tokens).where(
                    relay_tokens.c.device_id == entry.device_id,
                    relay_tokens.c.token_hash == hash_token(entry.authorization),
                )
            )
            _keep_newest_dead(conn, keep)
        return len(seqs)

    def reported(self, device_id: str) -> dict[str, float | None]:
        """The poll links the device answered through the relay: link -> when the upstream took
        the answer (None: still queued)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(relay_reported.c.link, relay_reported.c.acked_at).where(
                    relay_reported.c.device_id == device_id
                )
            ).all()
        return {link: acked for link, acked in rows}

    def forget_reported(self, device_id: str, links: Iterable[str], acked_before_s: float) -> None:
        """Drop notes the upstream has caught up with (taken before ``acked_before_s``)."""
        with self.db.begin() as conn:
            conn.execute(
                delete(relay_reported).where(
                    relay_reported.c.device_id == device_id,
                    relay_reported.c.link.in_(list(links)),
                    relay_reported.c.acked_at < acked_before_s,
                )
            )

    # --- status --------------------------------------------------------------------------------

    def status(self, *, recent: int = 20) -> dict[str, Any]:
        """Queue depth, oldest report, dead letters (count and the newest), cache sizes."""
        with self.db.read() as conn:
            depth, oldest = conn.execute(
                select(func.count(), func.min(relay_queue.c.created_at))
            ).one()
            dead = conn.execute(select(func.count()).select_from(relay_dead)).scalar_one()
            latest = conn.execute(
                select(
                    relay_dead.c.seq,
                    relay_dead.c.device_id,
                    relay_dead.c.method,
                    relay_dead.c.path,
                    relay_dead.c.status,
                    relay_dead.c.reason,
                    relay_dead.c.dead_at,
                )
                .order_by(relay_dead.c.seq.desc())
                .limit(recent)
            ).all()
            responses, response_bytes = conn.execute(
                select(
                    func.count(), func.coalesce(func.sum(func.length(relay_responses.c.body)), 0)
                )
            ).one()
            blobs, blob_bytes = conn.execute(
                select(func.count(), func.coalesce(func.sum(relay_blobs.c.size), 0))
            ).one()
        return {
            "queue_depth": int(depth),
            "oldest_queued_at": oldest,
            "dead_letters": int(dead),
            "recent_dead_letters": [dict(r._mapping) for r in latest],
            "cached_responses": int(responses),
            "cached_blobs": int(blobs),
            "cached_bytes": int(response_bytes) + int(blob_bytes),
        }
