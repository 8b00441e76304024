"""The hawkBit DDI device API, as existing device clients (SWUpdate's suricatta, ...) speak it.

Routes under ``/{tenant}/controller/v1/{controller_id}``: the base poll, ``deploymentBase``,
``feedback``, ``cancelAction``, ``installedBase``, ``configData`` and artifact downloads (with HTTP
Range, so an interrupted download resumes). Devices authenticate with ``Authorization:
TargetToken <token>`` or, for gateways, ``GatewayToken <token>``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from starlette.types import Scope

from skyfleet import store
from skyfleet.errors import NotFoundError
from skyfleet.server._ddi_auth import (
    ControllerId,
    Device,
    IdempotencyKey,
    authorize,
    check_tenant,
    register_unknown,
    runtime,
)
from skyfleet.server._ddi_wire import (
    ACCEPTED,
    DEVICE_ERRORS,
    DOWNLOAD,
    CancelAnswer,
    ConfigData,
    DeploymentAnswer,
    Feedback,
    FeedbackStatus,
    PollAnswer,
)
from skyfleet.server._errors import error_responses
from skyfleet.server._limits import mark_device
from skyfleet.server._params import ActionIdPath, IdPath
from skyfleet.server._runtime import Runtime

__all__ = ["router"]


class _LenientJsonRoute(APIRoute):
    """Accept JSON bodies with raw control characters inside strings.

    SWUpdate's suricatta sends its install log as feedback details, newlines unescaped; a strict
    parser would refuse them (and the client would count the feedback as lost).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def lenient(request: Request) -> Response:
            if request.method in ("POST", "PUT"):
                raw = await request.body()
                if raw:
                    try:
                        json.loads(raw)
                    except ValueError:
                        with contextlib.suppress(ValueError):  # not JSON: reported as usual
                            request._body = json.dumps(json.loads(raw, strict=False)).encode()
            return await handler(request)

        return lenient


router = APIRouter(
    tags=["device (hawkBit DDI)"], route_class=_LenientJsonRoute, responses=DEVICE_ERRORS
)


def _sleep_text(seconds: float) -> str:
    seconds = max(1, round(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@functools.lru_cache(maxsize=64)
def _root_url_of(
    scheme: str, server: tuple[str, int] | None, host: bytes | None, root_path: str
) -> str:
    headers = [(b"host", host)] if host is not None else []
    scope: dict[str, Any] = {"type": "http", "scheme": scheme, "server": server, "path": "/"}
    scope |= {"root_path": root_path, "headers": headers, "query_string": b""}
    return str(Request(scope).base_url).rstrip("/")


def _root_url(scope: Scope) -> str:
    """The server's URL as the client addressed it (Starlette's ``base_url``), remembered per
    address: the links of every poll start with it."""
    host = next((value for key, value in scope["headers"] if key == b"host"), None)
    server = scope.get("server")
    return _root_url_of(
        scope.get("scheme", "http"),
        tuple(server) if server else None,
        host,
        scope.get("root_path", ""),
    )


def device_base(scope: Scope, tenant: str, controller_id: str) -> str:
    return f"{_root_url(scope)}/{tenant}/controller/v1/{controller_id}"


async def poll_answer(
    rt: Runtime, tenant: str, controller_id: str, authorization: str | None, base: str
) -> dict[str, Any]:
    """The base poll's body: when to poll again and the ``_links`` to follow."""
    check_tenant(rt, tenant)  # before the read: a wrong tenant takes no place in a batch
    view = await rt.polls.view(controller_id)
    if view is None:
        authorize(rt, tenant, authorization, None, known=False)
        await run_in_threadpool(register_unknown, rt, controller_id)
        offer, installed = None, None
    else:
        authorize(rt, tenant, authorization, view.token_hash, known=True)
        offer = view.offer
        installed = view.installed_action_id if offer is None else None
    jitter = 1.0 + rt.config.poll_jitter * (2.0 * random.random() - 1.0)
    links: dict[str, Any] = {}
    if offer is not None and offer.cancel:
        links["cancelAction"] = {"href": f"{base}/cancelAction/{offer.action_id}"}
    elif offer is not None:
        links["deploymentBase"] = {
            "href": f"{base}/deploymentBase/{offer.action_id}?c={offer.state.value}"
        }
    if installed is not None:
        links["installedBase"] = {"href": f"{base}/installedBase/{installed}"}
    # Ask for configData until the device has been seen, and while it has not said what it is.
    if (
        view is None
        or view.hw == store.UNKNOWN_HW
        or (view.last_seen is None and not rt.was_seen(controller_id))
    ):
        links["configData"] = {"href": f"{base}/configData"}
    rt.seen(controller_id, rt.clock())
    sleep = _sleep_text(rt.config.poll_sleep_s * jitter)
    return {"config": {"polling": {"sleep": sleep}}, "_links": links}


@router.get(
    "/{tenant}/controller/v1/{controller_id}",
    summary="Base poll",
    response_model=None,
    responses={
        200: {"model": PollAnswer, "description": "`config.polling.sleep` and the `_links`"}
    },
)
async def poll(
    request: Request,
    tenant: str,
    controller_id: Annotated[str, ControllerId],
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """What the device should do next, and when to poll again.

    The fleet's hot path: well-formed polls are answered by
    :class:`~skyfleet.server._poll_path.BasePollShortPath` before the framework's routing; this
    route documents them and answers the rest.
    """
    base = device_base(request.scope, tenant, controller_id)
    body = await poll_answer(runtime(request), tenant, controller_id, authorization, base)
    mark_device(request.scope)
    return JSONResponse(body)


def _deployment_body(
    request: Request, tenant: str, controller_id: str, dep: dict[str, Any], history: str
) -> dict[str, Any]:
    base = device_base(request.scope, tenant, controller_id)
    artifacts = []
    for art in dep["artifacts"]:
        href = f"{base}/softwaremodules/{dep['release_id']}/artifacts/{art['filename']}"
        artifacts.append(
            {
                "filename": art["filename"],
                "hashes": {"sha1": art["sha1"], "md5": art["md5"], "sha256": art["sha256"]},
                "size": art["size"],
                "_links": {
                    "download-http": {"href": href},
                    "md5sum-http": {"href": href + ".MD5SUM"},
                },
            }
        )
    return {
        "id": str(dep["action_id"]),
        "deployment": {
            "download": "forced",
            "update": "forced",
            "chunks": [
                {
                    "part": "os",
                    "version": dep["version"],
                    "name": dep["version"],
                    "artifacts": artifacts,
                }
            ],
        },
        "actionHistory": {"status": history, "messages": []},
    }


@router.get(
    "/{tenant}/controller/v1/{controller_id}/deploymentBase/{action_id}",
    summary="The deployment of an action",
    response_model=None,
    responses={200: {"model": DeploymentAnswer, "description": "What to download and install"}},
)
def deployment_base(
    request: Request,
    tenant: str,
    controller_id: str,
    action_id: ActionIdPath,
    device: Device,
) -> dict[str, Any]:
    """The release's chunks and artifacts (hashes, sizes, download links) for this device."""
    rt = runtime(request)
    with rt.store.begin() as conn:
        dep = store.deployment(conn, rt.clock(), controller_id, action_id)
    return _deployment_body(request, tenant, controller_id, dep, dep["state"].upper())


@router.get(
    "/{tenant}/controller/v1/{controller_id}/installedBase/{action_id}",
    summary="The last installed deployment",
    response_model=None,
    responses={200: {"model": DeploymentAnswer, "description": "What the device runs"}},
)
def installed_base(
    request: Request,
    tenant: str,
    controller_id: str,
    action_id: ActionIdPath,
    device: Device,
) -> dict[str, Any]:
    """The deployment the device confirmed most recently."""
    rt = runtime(request)
    with rt.store.begin() as conn:
        if store.installed_action(conn, controller_id) != action_id:
            raise NotFoundError(f"action {action_id} is not what device {controller_id!r} runs")
        dep = store.deployment(conn, rt.clock(), controller_id, action_id, installed=True)
    return _deployment_body(request, tenant, controller_id, dep, "FINISHED")


def _feedback(
    rt: Runtime, controller_id: str, action_id: int, fb: Feedback, key: str | None = None
) -> Response:
    now = rt.clock()
    with rt.store.begin() as conn:
        if key is not None and not store.claim_idempotency_key(conn, controller_id, key, now):
            return Response(status_code=200)  # applied before: the same answer, nothing again
        _state, finished = store.apply_feedback(
            conn,
            now,
            controller_id,
            action_id,
            execution=fb.status.execution,
            finished=fb.status.result.finished,
            details=fb.status.details,
        )
    if finished:
        rt.kick()
    return Response(status_code=200)


@router.post(
    "/{tenant}/controller/v1/{controller_id}/deploymentBase/{action_id}/feedback",
    summary="Report progress on an action",
    response_class=Response,
    responses={**ACCEPTED, **error_responses(400, 409, 413)},
)
def deployment_feedback(
    request: Request,
    tenant: str,
    controller_id: str,
    action_id: ActionIdPath,
    feedback: Feedback,
    device: Device,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Move the action along its state machine (late or repeated reports change nothing)."""
    return _feedback(runtime(request), controller_id, action_id, feedback, idempotency_key)


@router.get(
    "/{tenant}/controller/v1/{controller_id}/cancelAction/{action_id}",
    summary="An action the server is cancelling",
    response_model=None,
    responses={200: {"model": CancelAnswer, "description": "The action to stop"}},
)
def cancel_action(
    request: Request,
    tenant: str,
    controller_id: str,
    action_id: ActionIdPath,
    device: Device,
) -> dict[str, Any]:
    """The DDI cancel request: stop working on ``stopId``."""
    rt = runtime(request)
    with rt.store.read() as conn:
        offer = store.offered_action(conn, controller_id)
    if offer is None or offer.action_id != action_id or not offer.cancel:
        raise NotFoundError(
            f"action {action_id} of device {controller_id!r} is not being cancelled"
        )
    return {"id": str(action_id), "cancelAction": {"stopId": str(action_id)}}


@router.post(
    "/{tenant}/controller/v1/{controller_id}/cancelAction/{action_id}/feedback",
    summary="Answer a cancel request",
    response_class=Response,
    responses={**ACCEPTED, **error_responses(400, 409, 413)},
)
def cancel_feedback(
    request: Request,
    tenant: str,
    controller_id: str,
    action_id: ActionIdPath,
    feedback: Feedback,
    device: Device,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """``closed``/``success`` (or ``canceled``) confirms the cancel; ``rejected`` refuses it."""
    status = feedback.status
    if status.execution == "closed" and status.result.finished == "success":
        status = FeedbackStatus(execution="canceled", details=status.details)
    elif status.execution == "rejected" or status.result.finished == "failure":
        return Response(status_code=200)  # the device carries on; the action stays cancelling
    return _feedback(
        runtime(request), controller_id, action_id, Feedback(status=status), idempotency_key
    )


@router.put(
    "/{tenant}/controller/v1/{controller_id}/configData",
    summary="Report attributes",
    response_class=Response,
    responses={**ACCEPTED, **error_responses(400, 413)},
)
def config_data(
    request: Request,
    tenant: str,
    controller_id: str,
    body: ConfigData,
    device: Device,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Merge reported attributes; ``hw`` and ``version`` set the device's hardware and version."""
    rt = runtime(request)
    data = {str(k): v for k, v in body.data.items()}
    version = data.pop("version", None)
    hw = data.pop("hw", None)
    now = rt.clock()
    with rt.store.begin() as conn:
        if idempotency_key is not None and not store.claim_idempotency_key(
            conn, controller_id, idempotency_key, now
        ):
            return Response(status_code=200)  # applied before: the same answer, nothing again
        store.update_reported(
            conn,
            controller_id,
            attributes=data,
            mode=body.mode,
            installed_version=str(version) if version is not None else None,
            hw=str(hw) if hw is not None else None,
            last_seen=now,
            now_s=now,
        )
    rt.seen(controller_id, now)
    return Response(status_code=200)


_ARTIFACT = (
    "/{tenant}/controller/v1/{controller_id}/softwaremodules/{release_id}/artifacts/{filename}"
)


@router.head(
    _ARTIFACT,
    operation_id="artifact_head",
    summary="Artifact size",
    response_class=Response,
    response_model=None,
    responses=DOWNLOAD,
)
@router.get(
    _ARTIFACT,
    operation_id="artifact_download",
    summary="Download an artifact (HTTP Range supported)",
    response_class=Response,
    response_model=None,
    responses=DOWNLOAD,
)
def download(
    request: Request,
    tenant: str,
    controller_id: str,
    release_id: IdPath,
    filename: str,
    device: Device,
) -> FileResponse | PlainTextResponse:
    """The artifact's bytes; ``FILENAME.MD5SUM`` gives its MD5 line."""
    rt = runtime(request)
    rt.seen(controller_id, rt.clock())  # a device downloading is in touch, though it does not poll
    md5sum = filename.endswith(".MD5SUM")
    name = filename.removesuffix(".MD5SUM") if md5sum else filename
    store.check_filename(name)
    with rt.store.read() as conn:
        art = store.device_artifact(conn, controller_id, release_id, name)
    if md5sum:
        return PlainTextResponse(f"{art['md5']}  {art['filename']}\n")
    path = store.artifact_path(rt.store.artifacts_dir, art["sha256"])
    if not path.is_file():
        raise NotFoundError(f"the bytes of artifact {name!r} are missing from the server's store")
    return FileResponse(
        path,
        filename=art["filename"],
        media_type="application/octet-stream",
        content_disposition_type="attachment",
    )
