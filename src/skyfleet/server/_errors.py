"""Every error the server returns is a 4xx/5xx with a JSON body ``{"error": "what was wrong"}``.

The handlers here turn skyfleet's exceptions, validation errors, and database trouble into that
body; :class:`Error` is its schema, and :func:`error_responses` is how a route declares in the
OpenAPI document which of these errors it can answer with, so that a client generated from the
document (and the fuzz test that holds the server to it) knows every status code it may see.
500 is never declared: it is a bug, logged with its traceback, and the fuzz test fails on it.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from skyfleet.errors import (
    ArtifactError,
    ConflictError,
    DeviceAuthError,
    DeviceError,
    FilterError,
    ForbiddenError,
    InputError,
    KeyStoreError,
    MetadataError,
    NotFoundError,
    OperatorAuthError,
    RateLimitError,
    ReleaseError,
    SkyfleetError,
    StoreError,
    TooLargeError,
)

__all__ = [
    "DEVICE_AUTH_FAILED",
    "Error",
    "error_response",
    "error_responses",
    "exception_response",
    "install_error_handlers",
]

log = logging.getLogger("skyfleet.server")

_STATUS: list[tuple[type[SkyfleetError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (DeviceAuthError, 401),
    (OperatorAuthError, 401),
    (ForbiddenError, 403),
    (TooLargeError, 413),
    (RateLimitError, 429),
    (InputError, 400),
    (MetadataError, 400),
    (KeyStoreError, 503),
    (ArtifactError, 400),
    (FilterError, 400),
    (DeviceError, 400),
    (ReleaseError, 400),
    (StoreError, 503),
]


class Error(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(
        description="What was wrong, and how to fix it: one line for a person to read.",
        examples=["no rollout 7; list them with 'skyfleet rollout list'"],
    )


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}

#: What each error status means in this API, and the headers that come with it.
_DOCUMENTED: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("The request cannot be used: a body that is not JSON, or a value the server refuses", {}),
    401: (
        "No valid token: WWW-Authenticate says which kind to send",
        {
            "WWW-Authenticate": {
                "description": "Bearer or TargetToken",
                "schema": {"type": "string"},
            }
        },
    ),
    403: ("The token is valid, but its role may not do this", {}),
    404: ("No such tenant, device, release, rollout, action, artifact or token", {}),
    409: ("What is stored forbids this now (start a rollout twice, reuse an id, ...)", {}),
    413: ("The request body is larger than the server accepts", {}),
    422: ("A parameter or body field is missing, of the wrong type, or out of range", {}),
    429: ("Too many requests from this client: wait Retry-After seconds", _RETRY_AFTER),
    503: ("The database is busy or unreachable: retry after Retry-After seconds", _RETRY_AFTER),
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route or router: each of ``codes`` with the :class:`Error` body.

    A 422 given here replaces FastAPI's own (``HTTPValidationError``), which is not what the
    server sends.

    >>> sorted(error_responses(404, 401))
    [401, 404]
    >>> error_responses(404)[404]["model"].__name__
    'Error'
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description, headers = _DOCUMENTED[code]
        responses[code] = {"model": Error, "description": description}
        if headers:
            responses[code]["headers"] = headers
    return responses


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``{"error": message}`` with ``status`` (401: how to authenticate; 503: retry in 1 s)."""
    if headers is None:
        headers = {401: {"WWW-Authenticate": "TargetToken"}, 503: {"Retry-After": "1"}}.get(status)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


#: The scope key set when a request failed device authentication (it is answered 401).
DEVICE_AUTH_FAILED = "skyfleet.device_auth_failed"


def exception_response(exc: SkyfleetError) -> JSONResponse:
    """The answer to one of skyfleet's errors: its status (404, 429, ...), message and headers
    (``Retry-After`` for a rate limit, in whole seconds)."""
    status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)
    return error_response(status, str(exc), _headers(exc))


def _headers(exc: SkyfleetError) -> dict[str, str] | None:
    if isinstance(exc, OperatorAuthError):
        return {"WWW-Authenticate": 'Bearer realm="skyfleet operator API"'}
    if isinstance(exc, RateLimitError):
        return {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return None


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for e in exc.errors():
        if e.get("type") == "json_invalid":
            return f"the request body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})"
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        got = e.get("input")
        shown = (
            f" (got {got!r})" if isinstance(got, int | float | str) and len(repr(got)) < 60 else ""
        )
        problems.append(f"{where}: {e.get('msg', 'invalid')}{shown}")
    return "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    """Map skyfleet's exceptions, validation errors and anything unexpected to JSON errors."""

    @app.exception_handler(SkyfleetError)
    async def _skyfleet(request: Request, exc: SkyfleetError) -> JSONResponse:
        if isinstance(exc, DeviceAuthError):
            request.scope[DEVICE_AUTH_FAILED] = True  # for the rate limiter's failed-auth budget
        return exception_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = any(e.get("type") == "json_invalid" for e in exc.errors())
        return error_response(400 if bad_json else 422, _validation_message(exc))

    @app.exception_handler(json.JSONDecodeError)
    async def _json(_request: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return error_response(400, f"the request body is not valid JSON ({exc.msg})")

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(DataError)
    async def _data(_request: Request, exc: DataError) -> JSONResponse:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "a value out of range"
        return error_response(400, f"a value cannot be stored: {reason}")

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database busy on %s %s: %s", request.method, request.url.path, exc.orig)
        return error_response(503, "the database is busy or unreachable; retry shortly")

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        return error_response(409, "the request conflicts with what is stored (a duplicate id?)")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error; see the server log")
