"""The CLI's HTTP client for the operator API: errors become one clear line."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from skyfleet.errors import ApiError, InputError
from skyfleet.store import iter_file

__all__ = [
    "DEFAULT_SERVER",
    "Api",
    "JsonOption",
    "ServerOption",
    "TokenOption",
    "file_sha256",
    "once",
]

DEFAULT_SERVER = "http://127.0.0.1:8000"

#: ``--server``: the options every operator command takes.
ServerOption = Annotated[
    str,
    typer.Option("--server", envvar="SKYFLEET_SERVER", help="The skyfleet server's URL."),
]
#: ``--token``: the operator token (``SKYFLEET_TOKEN``).
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="SKYFLEET_TOKEN",
        help="Operator token; 'skyfleet serve' wrote the first admin token to skyfleet-admin.token.",
        show_default=False,
    ),
]
#: ``--json``.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Api:
    """Calls ``/api/v1`` on a skyfleet server with an operator ``token``."""

    def __init__(self, server: str, token: str | None = None, timeout_s: float = 60.0) -> None:
        if not server.startswith(("http://", "https://")):
            raise InputError(f"server {server!r} must be an http:// or https:// URL")
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token.strip()}"} if token else {}
        self.http = httpx.Client(
            base_url=self.server + "/api/v1", timeout=timeout_s, headers=headers
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the JSON answer, or :class:`ApiError` with the server's message."""
        response = self.send(method, path, **kwargs)
        return response.json() if response.content else None

    def raw(self, path: str, **params: Any) -> bytes:
        """GET the bytes of a document as served (signed metadata must stay byte for byte)."""
        query = {k: v for k, v in params.items() if v is not None}
        return self.send("GET", path, params=query).content

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call; the response, or :class:`ApiError` with the server's message."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                f"cannot reach the skyfleet server at {self.server} ({exc.__class__.__name__}); "
                "start it with 'skyfleet serve' or pass --server URL"
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text.strip()[:200] or response.reason_phrase
            raise ApiError(f"{message} (HTTP {response.status_code})", response.status_code)
        return response

    def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters (None values left out)."""
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body."""
        return self.request("POST", path, json=body)

    def upload(self, path: Path) -> dict[str, Any]:
        """Stream a file to ``/artifacts`` with its SHA-256, so a corrupted upload is refused."""
        if not path.is_file():
            raise InputError(f"artifact file {str(path)!r} does not exist")
        answer: dict[str, Any] = self.request(
            "POST",
            "/artifacts",
            params={"filename": path.name, "sha256": file_sha256(path)},
            content=iter_file(path),
            headers={"Content-Type": "application/octet-stream"},
        )
        return answer

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def once(server: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One call on a fresh :class:`Api`, closed right after."""
    with Api(server, token) as api:
        return api.request(method, path, **kwargs)
