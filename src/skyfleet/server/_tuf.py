"""Signed update metadata for devices: two TUF repositories under the DDI device path.

A device runs python-tuf's ``ngclient.Updater`` (or any TUF client) twice, with its own target
token, against::

    /{tenant}/controller/v1/{device}/tuf/image/      the image repository (every release)
    /{tenant}/controller/v1/{device}/tuf/director/   the director: what this device should install

and downloads the bytes from ``.../tuf/targets/``, which serves only what the director assigned
to that device. Metadata file names are TUF's: ``N.root.json``, ``timestamp.json``,
``N.snapshot.json``, ``N.targets.json`` (consistent snapshots). The device then checks that the
director's targets are genuine images (:func:`skyfleet.rollout.verify_assignment`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from skyfleet import store
from skyfleet.errors import NotFoundError
from skyfleet.server._ddi_auth import ControllerId, Device, runtime
from skyfleet.server._ddi_wire import DEVICE_ERRORS

__all__ = ["router"]

router = APIRouter(tags=["device (TUF / Uptane)"], responses=DEVICE_ERRORS)

_BASE = "/{tenant}/controller/v1/{controller_id}/tuf"
_NAME = re.compile(r"(?:(\d{1,9})\.)?(root|timestamp|snapshot|targets)\.json")
_HASHED = re.compile(r"[0-9a-f]{64}\.(.+)")

MetadataName = Annotated[
    str,
    Path(
        pattern=r"^(\d{1,9}\.)?(root|timestamp|snapshot|targets)\.json$",
        description="a TUF file name: timestamp.json, N.root.json, N.snapshot.json, N.targets.json",
    ),
]


@router.get(
    _BASE + "/targets/{target:path}",
    summary="Download a target the director assigned to this device",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the bytes"}},
)
def tuf_target(
    request: Request,
    tenant: str,
    controller_id: Annotated[str, ControllerId],
    target: str,
    device: Device,
) -> FileResponse:
    """The bytes of a target in this device's director metadata, by its path or by the
    hash-prefixed name TUF uses with consistent snapshots (``RELEASE/HW/SHA256.FILE``)."""
    rt = runtime(request)
    with rt.store.read() as conn:
        assigned = store.director_targets(conn, controller_id)
    folder, _, base = target.rpartition("/")
    hashed = _HASHED.fullmatch(base)
    found = assigned.get(target)
    if found is None and hashed is not None:
        found = assigned.get(f"{folder}/{hashed.group(1)}")
        if found is not None and found.hashes.get("sha256") != base[:64]:
            found = None
    if found is None:
        raise NotFoundError(f"target {target!r} is not assigned to device {controller_id!r}")
    path = store.artifact_path(rt.store.artifacts_dir, found.hashes["sha256"])
    if not path.is_file():
        raise NotFoundError(f"the bytes of target {target!r} are missing from the server's store")
    return FileResponse(path, media_type="application/octet-stream")


@router.get(
    _BASE + "/{repo}/{name}",
    summary="TUF metadata of the image repository or of this device's director",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "signed metadata"}},
)
async def tuf_metadata(
    request: Request,
    tenant: str,
    controller_id: Annotated[str, ControllerId],
    repo: Literal["image", "director"],
    name: MetadataName,
    device: Device,
) -> Response:
    """Signed metadata, as a TUF client asks for it; the timestamp is signed again when the
    device's assignment changed or it is half-way to expiring."""
    match = _NAME.fullmatch(name)
    assert match is not None  # the path pattern admits only these names
    version = int(match.group(1)) if match.group(1) else None
    role = match.group(2)
    if role == "timestamp" and version is not None:
        raise NotFoundError("the timestamp is served without a version: timestamp.json")
    rt = runtime(request)
    body = await run_in_threadpool(
        rt.signing.metadata, repo, controller_id, role, version, rt.clock()
    )
    headers = {"Cache-Control": "no-store"} if version is None else None
    return Response(body, media_type="application/json", headers=headers)
