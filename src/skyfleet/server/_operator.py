"""The operator REST API (``/api/v1``): devices, artifacts, releases, rollouts, the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from skyfleet import __version__, store
from skyfleet.rollout import GroupSpec
from skyfleet.server._access import Op, Viewer
from skyfleet.server._errors import error_responses
from skyfleet.server._params import MAX_BIG_ID, MAX_ID, Count, Hardware, Id, IdPath
from skyfleet.server._runtime import Runtime

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["operator"])

# The errors a route declares (error_responses): every route that needs a token can answer 401
# and 403, and find the database busy (503); taking parameters or a body adds 400 (a value
# refused) and 422 (one out of range or of the wrong type); a body adds 413 (over the limit).
_TOKEN = (401, 403, 503)
_PARAMS = (*_TOKEN, 400, 422)
_BODY = (*_PARAMS, 413)
#: An artifact upload's body: the file's bytes, streamed (not a form).
_FILE_BODY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DeviceIn(_Strict):
    """A device to register. Leave ``token`` out to have one generated (returned once)."""

    id: str = Field(min_length=1, max_length=128, pattern=r"^[^/\\\s]+$")
    kind: Literal["vehicle", "home-battery", "site"] = "vehicle"
    hw: Hardware = "hw3"
    attributes: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    installed_version: str | None = None
    token: str | None = Field(default=None, min_length=16, max_length=256)


class DevicesIn(_Strict):
    """One registration of one or many devices (all or none are stored)."""

    devices: list[DeviceIn] = Field(min_length=1, max_length=100_000)


class ReleaseIn(_Strict):
    """A release: ``artifacts`` maps a hardware generation to uploaded artifact ids."""

    version: str = Field(min_length=1, max_length=128)
    notes: str = ""
    artifacts: dict[Hardware, list[Id]] = Field(min_length=1, max_length=64)
    generations: list[Hardware] | None = Field(default=None, max_length=64)
    min_installed_version: str | None = None


class GroupIn(_Strict):
    """A group: ``group`` is the filter and percentage, e.g. ``'hw:hw3 10%'``."""

    group: str = Field(min_length=1, max_length=2000)
    success_pct: float = 95.0  # ranges are checked by the domain (400 naming the value)
    auto_advance: bool = True
    error_pct: float | None = 10.0
    error_count: Count | None = None
    min_finished: Count = 5
    timeout_s: float = Field(default=3600.0, gt=0.0, le=365 * 86400.0)


class RolloutIn(_Strict):
    """A rollout of ``release`` over ordered ``groups``. ``seed`` decides which devices a
    percentage takes (the same seed, groups and devices: the same members); leave it out for a
    random one."""

    release: str
    name: str | None = Field(default=None, max_length=255)
    groups: list[GroupIn] = Field(min_length=1, max_length=100)
    seed: str | None = Field(
        default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$"
    )


class RollbackIn(_Strict):
    """Roll back to ``to`` (default: the version most of the rollout's devices ran before)."""

    to: str | None = None


def _public(device: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in device.items() if k != "token_hash"}


@router.get("/health", summary="Is the server up, and on which database")
def health(request: Request) -> dict[str, Any]:
    """Liveness, the skyfleet version and the database kind."""
    rt = _rt(request)
    return {"status": "ok", "version": __version__, "database": rt.store.dialect}


@router.get("/devices", summary="List devices", responses=error_responses(*_PARAMS))
def list_devices(
    request: Request,
    who: Viewer,
    hw: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_BIG_ID)] = 0,
) -> dict[str, Any]:
    """One page of devices (filter by hardware, kind or tag) and how many match in all; each
    with its latest ``telemetry`` sample (null before the first)."""
    with _rt(request).store.read() as conn:
        total, rows = store.list_devices(
            conn, hw=hw, kind=kind, tag=tag, limit=limit, offset=offset
        )
        latest = store.latest_telemetry(conn, [r["id"] for r in rows])
    return {
        "total": total,
        "devices": [{**_public(r), "telemetry": latest.get(r["id"])} for r in rows],
    }


@router.post(
    "/devices",
    status_code=201,
    summary="Register devices",
    responses=error_responses(*_BODY, 409),
)
def register_devices(request: Request, who: Op, body: DevicesIn) -> dict[str, Any]:
    """Register devices; each joins the groups of running rollouts its filter matches."""
    rt = _rt(request)
    with rt.store.begin() as conn:
        issued = store.register_devices(
            conn,
            rt.clock(),
            [store.NewDevice(**d.model_dump()) for d in body.devices],
            actor=who.actor,
        )
    return {"devices": [{"id": i, "token": t} for i, t in issued]}


@router.get("/devices/{device_id}", summary="One device", responses=error_responses(*_PARAMS, 404))
def get_device(request: Request, who: Viewer, device_id: str) -> dict[str, Any]:
    """A device's fields, what it reported, when it was last seen, and its latest
    ``telemetry`` sample (null before the first)."""
    with _rt(request).store.read() as conn:
        device = _public(store.get_device(conn, device_id))
        return {**device, "telemetry": store.latest_telemetry(conn, [device_id]).get(device_id)}


@router.post(
    "/artifacts",
    status_code=201,
    summary="Upload an artifact (the body is the file)",
    responses=error_responses(*_BODY),
    openapi_extra={"requestBody": {"required": True, "content": _FILE_BODY}},
)
async def upload_artifact(
    request: Request,
    who: Op,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
    sha256: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{64}$")] = None,
) -> dict[str, Any]:
    """Stream the request body to disk, hashing it; refused (and nothing kept) on a mismatch."""
    rt = _rt(request)
    store.check_filename(filename)
    blob = store.BlobWriter(rt.store.artifacts_dir, max_bytes=rt.config.max_upload_bytes)
    try:
        async for chunk in request.stream():
            await run_in_threadpool(blob.write, chunk)  # disk and hashing off the event loop
    except BaseException:
        blob.discard()
        raise
    digest, sha1, md5, size = await run_in_threadpool(blob.finish, sha256)

    def save() -> dict[str, Any]:
        with rt.store.begin() as conn:
            return store.save_artifact(
                conn,
                rt.clock(),
                filename=filename,
                sha256=digest,
                sha1=sha1,
                md5=md5,
                size=size,
                actor=who.actor,
            )

    return await run_in_threadpool(save)


@router.get("/artifacts", summary="List artifacts", responses=error_responses(*_TOKEN))
def list_artifacts(
    request: Request,
    who: Viewer,
) -> dict[str, Any]:
    """Every uploaded artifact with its hashes and size."""
    with _rt(request).store.read() as conn:
        return {"artifacts": store.list_artifacts(conn)}


@router.post(
    "/releases",
    status_code=201,
    summary="Create a release",
    responses=error_responses(*_BODY, 404, 409),
)
def create_release(request: Request, who: Op, body: ReleaseIn) -> dict[str, Any]:
    """A version, notes, one artifact set per hardware generation, and compatibility rules."""
    rt = _rt(request)
    now = rt.clock()
    with rt.store.begin() as conn:
        release = store.create_release(
            conn,
            now,
            version=body.version,
            notes=body.notes,
            artifact_sets=body.artifacts,
            generations=body.generations,
            min_installed_version=body.min_installed_version,
            actor=who.actor,
        )
        rt.signing.refresh_image_in(conn, now)  # the release and its signature commit together
    return release


@router.get("/releases", summary="List releases", responses=error_responses(*_TOKEN))
def list_releases(
    request: Request,
    who: Viewer,
) -> dict[str, Any]:
    """Every release, oldest first."""
    with _rt(request).store.read() as conn:
        return {"releases": store.list_releases(conn)}


@router.get("/releases/{version}", summary="One release", responses=error_responses(*_PARAMS, 404))
def get_release(request: Request, who: Viewer, version: str) -> dict[str, Any]:
    """A release with its artifacts by hardware generation."""
    with _rt(request).store.read() as conn:
        return store.get_release(conn, version)


@router.post(
    "/rollouts",
    status_code=201,
    summary="Create a rollout",
    responses=error_responses(*_BODY, 404, 409),
)
def create_rollout(request: Request, who: Op, body: RolloutIn) -> dict[str, Any]:
    """Assign every compatible device to its group; the rollout waits for ``start``."""
    rt = _rt(request)
    groups = [GroupSpec.parse(g.group, **g.model_dump(exclude={"group"})) for g in body.groups]
    with rt.store.begin() as conn:
        return store.create_rollout(
            conn,
            rt.clock(),
            release=body.release,
            groups=groups,
            name=body.name,
            seed=body.seed,
            actor=who.actor,
        )


@router.get("/rollouts", summary="List rollouts", responses=error_responses(*_TOKEN))
def list_rollouts(
    request: Request,
    who: Viewer,
) -> dict[str, Any]:
    """Every rollout, newest first."""
    with _rt(request).store.read() as conn:
        return {"rollouts": store.list_rollouts(conn)}


@router.get(
    "/rollouts/{rollout_id}",
    summary="A rollout's status",
    responses=error_responses(*_PARAMS, 404),
)
def get_rollout(request: Request, who: Viewer, rollout_id: IdPath) -> dict[str, Any]:
    """Per group: counts by state, success and error rates, thresholds, the time to 50 % and
    95 % confirmed, and the devices waiting for a link (not heard from for two polling
    intervals: not failures until the group's in-progress timeout)."""
    rt = _rt(request)
    silent_s = 2.0 * rt.config.poll_sleep_s * (1.0 + rt.config.poll_jitter)
    with rt.store.read() as conn:
        return store.get_rollout(conn, rollout_id, now_s=rt.clock(), out_of_contact_s=silent_s)


@router.get(
    "/rollouts/{rollout_id}/actions",
    summary="A rollout's device actions",
    responses=error_responses(*_PARAMS, 404),
)
def list_actions(
    request: Request,
    who: Viewer,
    rollout_id: IdPath,
    group: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    state: Annotated[str | None, Query(pattern=r"^[a-z_]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_BIG_ID)] = 0,
) -> dict[str, Any]:
    """Which device is in which group and state (filter by group number and state)."""
    with _rt(request).store.read() as conn:
        rows = store.list_actions(
            conn, rollout_id, group=group, state=state, limit=limit, offset=offset
        )
    return {"actions": rows}


@router.post(
    "/rollouts/{rollout_id}/rollback",
    status_code=201,
    summary="Roll back",
    responses=error_responses(*_BODY, 404, 409),
)
def rollback(
    request: Request, who: Op, rollout_id: IdPath, body: RollbackIn | None = None
) -> dict[str, Any]:
    """Cancel the rollout and start a new one to the previous release for the devices it reached."""
    rt = _rt(request)
    with rt.store.begin() as conn:
        return store.rollback(
            conn, rt.clock(), rollout_id, to_version=body.to if body else None, actor=who.actor
        )


@router.post(
    "/rollouts/{rollout_id}/{operation}",
    summary="Start, halt, resume or cancel",
    responses=error_responses(*_PARAMS, 404, 409),
)
def operate(
    request: Request,
    who: Op,
    rollout_id: IdPath,
    operation: Literal["start", "halt", "resume", "cancel"],
) -> dict[str, Any]:
    """Apply an operation the rollout's status allows (409 otherwise)."""
    rt = _rt(request)
    with rt.store.begin() as conn:
        return store.operate(conn, rt.clock(), rollout_id, operation, actor=who.actor)


@router.get("/audit", summary="The audit log", responses=error_responses(*_PARAMS))
def audit(
    request: Request,
    who: Viewer,
    rollout_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_BIG_ID)] = None,
) -> dict[str, Any]:
    """Newest entries first: every action transition and operator operation."""
    with _rt(request).store.read() as conn:
        entries = store.list_audit(
            conn, rollout_id=rollout_id, device_id=device_id, limit=limit, before_id=before_id
        )
    return {"entries": entries}
