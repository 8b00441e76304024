"""Operator tokens: a name, a role (viewer, operator, admin) and the token's hash, never the token.

Tokens are 256-bit random strings, so one SHA-256 is enough to store them (a slow password hash
guards guessable secrets; these are not guessable). A revoked token keeps its row, so the audit
log's names stay meaningful, until a new token takes the name.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from skyfleet.errors import ConflictError, InputError, NotFoundError
from skyfleet.store import _audit
from skyfleet.store._fleet import hash_token
from skyfleet.store._schema import operator_tokens
from skyfleet.store._secrets import write_private

if TYPE_CHECKING:
    from skyfleet.store._engine import Store

__all__ = [
    "OPERATOR_ROLES",
    "Operator",
    "count_operators",
    "create_operator_token",
    "ensure_admin_token",
    "list_operator_tokens",
    "operator_for_token",
    "revoke_operator_token",
]

#: The roles, weakest first: a viewer reads, an operator also changes the fleet (devices,
#: artifacts, releases, rollouts), an admin also manages tokens and signing roots.
OPERATOR_ROLES = ("viewer", "operator", "admin")
_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
TOKEN_PREFIX = "sfo_"  # recognisable in logs and by secret scanners


@dataclass(frozen=True, slots=True)
class Operator:
    """Who made an operator request: the token's name and role."""

    name: str
    role: str

    @property
    def actor(self) -> str:
        """The audit log's name for this operator, e.g. ``operator:alice``."""
        return f"operator:{self.name}"

    def may(self, role: str) -> bool:
        """Whether this operator's role is ``role`` or stronger."""
        return OPERATOR_ROLES.index(self.role) >= OPERATOR_ROLES.index(role)


def _check(name: str, role: str) -> None:
    if not _NAME.fullmatch(name):
        raise InputError(
            f"operator token name {name!r} must be 1-64 lower-case letters, digits and ._@- "
            "(e.g. alice or ci-bot)"
        )
    if role not in OPERATOR_ROLES:
        raise InputError(f"role {role!r} is unknown: use {', '.join(OPERATOR_ROLES)}")


def create_operator_token(
    conn: Connection,
    now_s: float,
    *,
    name: str,
    role: str,
    actor: str,
    token: str | None = None,
) -> str:
    """Create a token named ``name`` with ``role``; returns the token (shown once).

    A name in use by a live token is a :class:`ConflictError`; a revoked one is replaced.
    ``token`` is for tests and provisioning tools; by default one is generated.
    """
    _check(name, role)
    if token is not None and len(token) < 16:
        raise InputError("an operator token must be at least 16 characters")
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        select(operator_tokens.c.revoked_at).where(operator_tokens.c.name == name)
    ).first()
    if row is not None and row.revoked_at is None:
        raise ConflictError(f"operator token {name!r} exists; revoke it first or pick a new name")
    if row is not None:
        conn.execute(delete(operator_tokens).where(operator_tokens.c.name == name))
    conn.execute(
        insert(operator_tokens).values(
            name=name,
            role=role,
            token_hash=hash_token(token),
            created_at=now_s,
            created_by=actor,
            revoked_at=None,
        )
    )
    _audit.record(conn, now_s, actor=actor, event="token.create", detail=f"{name} ({role})")
    return token


_BY_HASH = select(operator_tokens.c.name, operator_tokens.c.role).where(
    operator_tokens.c.token_hash == bindparam("token_hash"),
    operator_tokens.c.revoked_at.is_(None),
)


def operator_for_token(conn: Connection, token: str) -> Operator | None:
    """The live operator a token belongs to, or None (unknown or revoked).

    The lookup is by hash on a unique index: the database compares hashes, never tokens, so
    its timing tells nothing about a token.
    """
    row = conn.execute(_BY_HASH, {"token_hash": hash_token(token)}).first()
    return None if row is None else Operator(row.name, row.role)


def list_operator_tokens(conn: Connection) -> list[dict[str, Any]]:
    """Every token's name, role, creation and revocation (never the hash), by name."""
    columns = [c for c in operator_tokens.c if c.name != "token_hash"]
    rows = conn.execute(select(*columns).order_by(operator_tokens.c.name))
    return [dict(r._mapping) for r in rows]


def revoke_operator_token(conn: Connection, now_s: float, name: str, *, actor: str) -> None:
    """Revoke a live token at once; :class:`NotFoundError` when there is none by that name.

    The last live admin token cannot be revoked (nobody could manage tokens afterwards).
    """
    # Lock every live admin before counting them: two revocations at once must not both see
    # "one more left". Always first and by name, so that two revocations lock in one order and
    # the second waits for the first (SQLite's BEGIN IMMEDIATE serialises writers anyway).
    live_admins = conn.execute(
        select(operator_tokens.c.name)
        .where(operator_tokens.c.role == "admin", operator_tokens.c.revoked_at.is_(None))
        .order_by(operator_tokens.c.name)
        .with_for_update()
    ).all()
    row = conn.execute(
        select(operator_tokens.c.role)
        .where(operator_tokens.c.name == name, operator_tokens.c.revoked_at.is_(None))
        .with_for_update()
    ).first()
    if row is None:
        raise NotFoundError(
            f"no live operator token {name!r}; list them with 'skyfleet token list'"
        )
    if row.role == "admin" and len(live_admins) <= 1:
        raise ConflictError(f"{name!r} is the last admin token; create another admin first")
    conn.execute(
        update(operator_tokens).where(operator_tokens.c.name == name).values(revoked_at=now_s)
    )
    _audit.record(conn, now_s, actor=actor, event="token.revoke", detail=name)


def count_operators(conn: Connection, *, role: str | None = None) -> int:
    """How many live tokens there are (of ``role`` when given)."""
    query = select(func.count()).where(operator_tokens.c.revoked_at.is_(None))
    if role is not None:
        query = query.where(operator_tokens.c.role == role)
    return int(conn.execute(query).scalar_one())


def ensure_admin_token(db: Store, path: Path, now_s: float, *, actor: str) -> bool:
    """Create the first admin token, named ``admin``, into ``path`` (mode 600) when the store has
    no live admin; returns whether it did. The file is written before the token is committed:
    a file that cannot be written leaves no token behind that nobody knows."""
    with db.begin() as conn:
        if count_operators(conn, role="admin"):
            return False
        name = "admin" if not _name_live(conn, "admin") else f"admin-{int(now_s)}"
        token = create_operator_token(conn, now_s, name=name, role="admin", actor=actor)
        write_private(path, (token + "\n").encode())
    return True


def _name_live(conn: Connection, name: str) -> bool:
    row = conn.execute(
        select(operator_tokens.c.name).where(
            operator_tokens.c.name == name, operator_tokens.c.revoked_at.is_(None)
        )
    ).first()
    return row is not None
