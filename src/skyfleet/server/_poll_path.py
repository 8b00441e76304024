"""The base poll's short path: the fleet's hot path, answered before the framework's routing."""

from __future__ import annotations

import inspect
import re

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from skyfleet.server._ddi import device_base, poll_answer
from skyfleet.server._ddi_auth import CONTROLLER_ID
from skyfleet.server._limits import mark_device

__all__ = ["BasePollShortPath"]

_POLL_PATH = re.compile(f"/([^/]+)/controller/v1/({CONTROLLER_ID})")


class BasePollShortPath:
    """ASGI middleware: answers well-formed base polls without routing and parameter validation.

    A million vehicles polling every five minutes are 3,400 polls a second; the framework's
    routing, dependency solving and validation would cost more than the poll itself. The answer
    and its errors are the route's: the same body, and an exception goes to the handler the app
    registered for it. Anything else (another method or path, a mounted root path) passes on.
    Middleware that must see the polls too (rate limits, say) is added after this one, which
    puts it outside.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _POLL_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path")
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        tenant, controller_id = match.groups()
        authorization = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == b"authorization"),
            None,
        )
        try:
            body = await poll_answer(
                scope["app"].state.runtime,
                tenant,
                controller_id,
                authorization,
                device_base(scope, tenant, controller_id),
            )
            mark_device(scope)
            response: Response = JSONResponse(body)
        except Exception as exc:
            response = await _handled(Request(scope, receive), exc)
        await response(scope, receive, send)


async def _handled(request: Request, exc: Exception) -> Response:
    """The response the app's exception handler for ``exc`` gives (the nearest class's)."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            response = handlers[cls](request, exc)
            answer: Response = await response if inspect.isawaitable(response) else response
            return answer
    raise exc
