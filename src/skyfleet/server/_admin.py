"""Admin routes of the operator API: operator tokens, and who am I."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from skyfleet import store
from skyfleet.server._access import Admin, Viewer
from skyfleet.server._runtime import Runtime

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["admin"])

TokenName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._@-]*$")]


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


class TokenIn(BaseModel):
    """A token to create: a name for the audit log and a role."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._@-]*$")
    role: Literal["viewer", "operator", "admin"] = "viewer"


@router.get("/whoami", summary="The caller's token name and role")
def whoami(who: Viewer) -> dict[str, Any]:
    """The operator the request's token belongs to."""
    return {"name": who.name, "role": who.role}


@router.get("/tokens", summary="List operator tokens")
def list_tokens(request: Request, who: Admin) -> dict[str, Any]:
    """Every token's name, role, creator and times (never the token or its hash)."""
    with _rt(request).store.read() as conn:
        return {"tokens": store.list_operator_tokens(conn)}


@router.post("/tokens", status_code=201, summary="Create an operator token")
def create_token(request: Request, who: Admin, body: TokenIn) -> dict[str, Any]:
    """A new token; the answer is the only place it is ever shown."""
    rt = _rt(request)
    with rt.store.begin() as conn:
        token = store.create_operator_token(
            conn, rt.clock(), name=body.name, role=body.role, actor=who.actor
        )
    return {"name": body.name, "role": body.role, "token": token}


@router.delete("/tokens/{name}", summary="Revoke an operator token")
def revoke_token(request: Request, who: Admin, name: TokenName) -> dict[str, Any]:
    """Revoke at once: the next request with the token gets 401."""
    rt = _rt(request)
    with rt.store.begin() as conn:
        store.revoke_operator_token(conn, rt.clock(), name, actor=who.actor)
    return {"name": name, "revoked": True}
