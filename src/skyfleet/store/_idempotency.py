"""Idempotency keys: a device request that carries one is applied at most once.

An edge relay (``skyfleet serve --upstream``) cannot always know whether a request it forwarded
arrived: the uplink may drop after the server applied it and before the answer came back, or the
relay may be killed in between. It sends the request again with the same ``Idempotency-Key``;
the server records each key in the transaction that applies the request
(:func:`claim_idempotency_key`), so a key it has already seen is answered with the original
success and nothing is applied twice. A key that failed (the transaction rolled back) is not
recorded, so the request may be tried again.

Keys are per device: a device can only ever suppress its own requests, not another device's
by guessing a relay's next key. They are kept for ``ServerConfig.idempotency_ttl_s`` and then
pruned (:func:`prune_idempotency_keys`); a request re-sent after that is applied again.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from skyfleet.errors import InputError
from skyfleet.store._schema import idempotency_keys

__all__ = [
    "MAX_KEY_LENGTH",
    "check_idempotency_key",
    "claim_idempotency_key",
    "prune_idempotency_keys",
]

#: The longest key kept (characters); a relay's ``RELAY-ID:SEQ`` takes about 40.
MAX_KEY_LENGTH = 200


def check_idempotency_key(key: str) -> str:
    """``key`` if it is usable (1-200 visible ASCII characters), else :class:`InputError`.

    >>> check_idempotency_key("relay-7f3a:42")
    'relay-7f3a:42'
    >>> check_idempotency_key("two words")
    Traceback (most recent call last):
    ...
    skyfleet.errors.InputError: Idempotency-Key 'two words' must be 1-200 visible ASCII characters (a relay sends RELAY-ID:SEQ)
    """
    if not (0 < len(key) <= MAX_KEY_LENGTH and all(33 <= ord(c) <= 126 for c in key)):
        shown = key if len(key) <= 60 else key[:57] + "..."
        raise InputError(
            f"Idempotency-Key {shown!r} must be 1-{MAX_KEY_LENGTH} visible ASCII characters "
            "(a relay sends RELAY-ID:SEQ)"
        )
    return key


def claim_idempotency_key(conn: Connection, device_id: str, key: str, now_s: float) -> bool:
    """Record ``key`` for ``device_id``; True if it is new (apply the request in this same
    transaction), False if a committed request already carried it (apply nothing).

    On PostgreSQL a second request with the same key, sent while the first is still in its
    transaction, waits for it: it gets False if the first committed, True if it rolled back.
    """
    check_idempotency_key(key)
    row = {"device_id": device_id, "key": key, "created_at": now_s}
    dialect = conn.dialect.name
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
    if dialect == "postgresql":
        on_pg = postgresql.insert(idempotency_keys).values(row).on_conflict_do_nothing()
        result = conn.execute(on_pg.returning(idempotency_keys.c.key))
    elif dialect == "sqlite":
        on_sqlite = sqlite.insert(idempotency_keys).values(row).on_conflict_do_nothing()
        result = conn.execute(on_sqlite.returning(idempotency_keys.c.key))
    else:  # pragma: no cover - the store opens only SQLite and PostgreSQL
        raise InputError(f"idempotency keys are not supported on {dialect}")
    return result.first() is not None


def prune_idempotency_keys(conn: Connection, before_s: float) -> int:
    """Forget the keys recorded before ``before_s`` (UNIX seconds); returns how many."""
    result = conn.execute(delete(idempotency_keys).where(idempotency_keys.c.created_at < before_s))
    return int(result.rowcount)
