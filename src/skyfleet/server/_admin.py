"""Admin routes of the operator API: operator tokens, who am I, and the signing roots."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from tuf.api.metadata import Root

from skyfleet import store
from skyfleet.errors import ConflictError, KeyStoreError, MetadataError, NotFoundError
from skyfleet.rollout import parse
from skyfleet.server._access import Admin, Viewer
from skyfleet.server._errors import error_responses
from skyfleet.server._params import MAX_ID
from skyfleet.server._runtime import Runtime

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["admin"])

# The errors a route declares (error_responses), as in the operator routes: a token's 401 and
# 403 and a busy database's 503; parameters add 400 and 422, a body 413.
_TOKEN = (401, 403, 503)
_PARAMS = (*_TOKEN, 400, 422)
_BODY = (*_PARAMS, 413)
#: A new root's body: TUF root metadata as JSON, signed offline (read as bytes, not a model).
_ROOT_BODY = {"application/json": {"schema": {"type": "object"}}}

TokenName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._@-]*$")]


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def accept_root_body(body: bytes) -> Root:
    """The root in an upload's bytes, or :class:`MetadataError` (400)."""
    if len(body) > 512_000:
        raise MetadataError("a root is at most 512 kB")
    signed = parse(body).signed
    if not isinstance(signed, Root):
        raise MetadataError(f"expected root metadata, got {signed.type}")
    return signed


class TokenIn(BaseModel):
    """A token to create: a name for the audit log and a role."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._@-]*$")
    role: Literal["viewer", "operator", "admin"] = "viewer"


@router.get(
    "/whoami", summary="The caller's token name and role", responses=error_responses(*_TOKEN)
)
def whoami(who: Viewer) -> dict[str, Any]:
    """The operator the request's token belongs to."""
    return {"name": who.name, "role": who.role}


@router.get("/tokens", summary="List operator tokens", responses=error_responses(*_TOKEN))
def list_tokens(request: Request, who: Admin) -> dict[str, Any]:
    """Every token's name, role, creator and times (never the token or its hash)."""
    with _rt(request).store.read() as conn:
        return {"tokens": store.list_operator_tokens(conn)}


@router.post(
    "/tokens",
    status_code=201,
    summary="Create an operator token",
    responses=error_responses(*_BODY, 409),
)
def create_token(request: Request, who: Admin, body: TokenIn) -> dict[str, Any]:
    """A new token; the answer is the only place it is ever shown."""
    rt = _rt(request)
    with rt.store.begin() as conn:
        token = store.create_operator_token(
            conn, rt.clock(), name=body.name, role=body.role, actor=who.actor
        )
    return {"name": body.name, "role": body.role, "token": token}


@router.delete(
    "/tokens/{name}",
    summary="Revoke an operator token",
    responses=error_responses(*_PARAMS, 404, 409),
)
def revoke_token(request: Request, who: Admin, name: TokenName) -> dict[str, Any]:
    """Revoke at once: the next request with the token gets 401."""
    rt = _rt(request)
    with rt.store.begin() as conn:
        store.revoke_operator_token(conn, rt.clock(), name, actor=who.actor)
    return {"name": name, "revoked": True}


Repo = Annotated[Literal["image", "director"], Path(description="image or director")]


@router.get(
    "/trust", summary="Signing roots, keys and thresholds", responses=error_responses(*_TOKEN)
)
def trust_status(request: Request, who: Viewer) -> dict[str, Any]:
    """Per repository: root version and expiry, each role's key ids and threshold and how many
    of its keys the server holds, and the image repository's newest versions."""
    rt = _rt(request)
    with rt.store.read() as conn:
        return rt.signing.status(conn, rt.clock())


@router.get(
    "/trust/{repo}/root",
    summary="A repository's root metadata (to provision devices with)",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}}, "description": "signed root"},
        **error_responses(*_PARAMS, 404),
    },
)
def trust_root(
    request: Request,
    who: Viewer,
    repo: Repo,
    version: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """The newest root of ``repo`` (or ``version``): what a device is built with as its trust
    anchor, and what ``skyfleet trust rotate-root`` signs the next version of."""
    with _rt(request).store.read() as conn:
        body = store.root(conn, repo, version)
    if body is None:
        raise NotFoundError(f"the {repo} repository has no root version {version}")
    return Response(body, media_type="application/json")


@router.post(
    "/trust/{repo}/root",
    status_code=201,
    summary="Publish a new root (signed offline)",
    responses=error_responses(*_BODY, 409),
    openapi_extra={"requestBody": {"required": True, "content": _ROOT_BODY}},
)
async def trust_new_root(request: Request, who: Admin, repo: Repo) -> dict[str, Any]:
    """Publish the next root version, signed offline by a threshold of the current root keys
    and of its own. Refused (409) when the server does not hold enough of the online keys the
    new root names: publishing it would leave the server unable to sign."""
    rt = _rt(request)
    body = await request.body()
    new = accept_root_body(body)

    def save() -> int:
        try:
            rt.signing.signers_for(new, repo)
        except KeyStoreError as exc:
            raise ConflictError(
                f"refused: the server could not sign with this root ({exc}); put the new online "
                "keys in its key folder first"
            ) from None
        with rt.store.begin() as conn:
            return store.save_root(conn, rt.clock(), repo, body, actor=who.actor)

    version = await run_in_threadpool(save)
    return {"repo": repo, "version": version, "expires": new.expires.timestamp()}
