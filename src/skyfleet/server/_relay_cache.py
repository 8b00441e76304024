"""The relay's GETs: forwarded while the uplink is up, answered from the cache while it is down.

Documents (the base poll, deploymentBase, installedBase, cancelAction, MD5 lines, TUF metadata)
are kept as the upstream sent them, by device and path, and served again as they came: the
relay rewrites only the links in DDI answers (to point at itself), and never touches TUF
metadata, which the device verifies against its own roots. Bytes (artifacts, TUF targets) are
kept once by SHA-256, checked against the hash a deployment or a targets file promises before
they are kept, and served with HTTP Range to any device whose own deployment names them.
A poll that offers a deployment makes the relay fetch it and its artifacts at once
(``prefetch``), so that a device can install while the uplink is down.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from skyfleet import store
from skyfleet.errors import ArtifactError
from skyfleet.server._errors import DEVICE_AUTH_FAILED, error_response
from skyfleet.server._limits import mark_device
from skyfleet.server._relay_config import RelayConfig
from skyfleet.server._relay_paths import (
    DevicePath,
    classify,
    deployment_refs,
    hide_reported,
    local_path,
    rewrite_hrefs,
    tuf_target_refs,
)
from skyfleet.server._relay_uplink import Uplink, UplinkDownError

__all__ = ["SOURCE_HEADER", "RelayCache", "refusal"]

log = logging.getLogger("skyfleet.relay")

#: Says where an answer came from: ``upstream`` (just now) or ``cache``.
SOURCE_HEADER = "X-Skyfleet-Relay"
_FORWARD = ("authorization", "accept", "user-agent")
_PASS_BACK = ("cache-control", "retry-after", "www-authenticate", "content-disposition")
#: Upstream answers that mean "not now": a cached answer is better, if there is one.
_FALL_BACK = frozenset({429, 502, 503, 504})
_PREFETCH_LINKS = ("deploymentBase", "cancelAction", "installedBase")
#: How many 404s wait in memory for their device's first success.
_HELD = 1024


def refusal(request: Request, verdict: str, device_id: str, retry_in_s: float) -> Response:
    """The answer to a device the relay cannot authenticate while the uplink is down."""
    if verdict == "wrong":
        request.scope[DEVICE_AUTH_FAILED] = True
        return error_response(
            401,
            f"the uplink is down and this is not the token the server last accepted from "
            f"device {device_id!r}: send 'Authorization: TargetToken <token>'",
        )
    return error_response(
        503,
        f"the uplink is down and the relay has not yet seen the server accept device "
        f"{device_id!r}; retry when the uplink is back",
        {"Retry-After": str(max(1, round(retry_in_s)))},
    )


def forward_headers(request: Request) -> dict[str, str]:
    """The device's request headers the upstream needs (its own Authorization among them)."""
    return {k: v for k, v in request.headers.items() if k in _FORWARD}


class RelayCache:
    """Answers the device GETs; ``wall`` gives UNIX seconds."""

    def __init__(
        self, db: store.RelayStore, uplink: Uplink, config: RelayConfig, wall: Callable[[], float]
    ) -> None:
        self.db = db
        self.uplink = uplink
        self.config = config
        self.wall = wall
        self._fetches: dict[str, asyncio.Task[tuple[str, int]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.prefetch_failures = 0
        #: 404s a device got before the relay saw the upstream accept its token:
        #: (device, path) -> (token hash, answer), the oldest dropped past _HELD.
        self._held: OrderedDict[tuple[str, str], tuple[str, store.CachedResponse]] = OrderedDict()

    @property
    def prefetching(self) -> int:
        """Fetches running in the background (deployments and bytes)."""
        return len(self._background)

    # --- documents -----------------------------------------------------------------------------

    async def document(
        self, request: Request, where: DevicePath, device_id: str, prefix: str, path: str
    ) -> Response:
        """A DDI or TUF document: the upstream's answer now, or the cached one while down."""
        auth = request.headers.get("authorization")
        query = request.url.query
        upstream: httpx.Response | None = None
        if self.uplink.available():
            started = self.wall()
            try:
                upstream = await self.uplink.send(
                    "GET", path + (f"?{query}" if query else ""), headers=forward_headers(request)
                )
            except UplinkDownError:
                upstream = None
            if upstream is not None and upstream.status_code not in _FALL_BACK:
                return await self._fresh(request, where, device_id, prefix, path, upstream, started)
        verdict = await run_in_threadpool(self.db.token_verdict, device_id, auth)
        if verdict != "ok":
            if upstream is not None:  # the upstream's own "not now" is for it to say
                return _passed_back(upstream)
            return refusal(request, verdict, device_id, self.uplink.retry_in_s())
        cached = await run_in_threadpool(self.db.response, device_id, path)
        if cached is None:
            if upstream is not None:  # the upstream's own "not now" is the best answer left
                return _passed_back(upstream)
            return error_response(
                503,
                f"the uplink is down and the relay has no copy of {path}; retry later",
                {"Retry-After": str(max(1, round(self.uplink.retry_in_s())))},
            )
        mark_device(request.scope)
        return await self._answer(request, where, device_id, prefix, cached, "cache", {})

    async def _fresh(
        self,
        request: Request,
        where: DevicePath,
        device_id: str,
        prefix: str,
        path: str,
        upstream: httpx.Response,
        started: float,
    ) -> Response:
        status = upstream.status_code
        auth = request.headers.get("authorization")
        if status == 401:
            await run_in_threadpool(self.db.forget_token, device_id, auth)
            request.scope[DEVICE_AUTH_FAILED] = True
            return _passed_back(upstream)
        if not 200 <= status < 300 and (
            status != 404 or len(upstream.content) > self.config.max_cached_body_bytes
        ):
            return _passed_back(upstream)
        answer = store.CachedResponse(
            status, upstream.headers.get("content-type"), upstream.content, started
        )
        if status == 404:
            # A 404 (a TUF client's next root) is kept only for a device the upstream has
            # accepted with this very token, not for unknown routes, tenants or strangers;
            # one that came before the device's first success waits for it, in memory.
            verdict = await run_in_threadpool(self.db.token_verdict, device_id, auth)
            if verdict != "ok":
                if auth and where.kind != "other":
                    self._hold(device_id, path, auth, answer)
                return _passed_back(upstream)
        elif auth:
            await run_in_threadpool(self.db.remember_token, device_id, auth, started)
            await self._confirm(device_id, auth, path)
            mark_device(request.scope)
        parsed = _json(answer) if status == 200 else None
        refs: list[tuple[str, store.BlobRef]] = []
        if where.kind in ("deployment", "installed"):
            refs = deployment_refs(parsed, prefix)
        elif (
            where.kind == "tuf_meta" and path.endswith("targets.json") and "/tuf/director/" in path
        ):
            refs = tuf_target_refs(parsed, prefix)
        if len(answer.body) <= self.config.max_cached_body_bytes:
            await run_in_threadpool(self.db.put_response, device_id, path, answer, refs)
        if self.config.prefetch and auth and status == 200:
            if where.kind == "poll":
                self._prefetch_links(parsed, device_id, prefix, auth)
            self._prefetch_blobs(refs, device_id, auth)
        headers = {k: v for k, v in upstream.headers.items() if k in _PASS_BACK}
        return await self._answer(request, where, device_id, prefix, answer, "upstream", headers)

    async def _answer(
        self,
        request: Request,
        where: DevicePath,
        device_id: str,
        prefix: str,
        answer: store.CachedResponse,
        source: str,
        headers: Mapping[str, str],
    ) -> Response:
        body = answer.body
        parsed = _json(answer) if where.kind not in ("tuf_meta", "md5sum") else None
        if parsed is not None:
            if where.kind == "poll":
                parsed = await self._overlay(device_id, parsed, answer.fetched_at, source)
            body = json.dumps(rewrite_hrefs(parsed, prefix, _root(request))).encode()
        return Response(
            body,
            status_code=answer.status,
            media_type=answer.content_type,
            headers={**headers, SOURCE_HEADER: source},
        )

    async def _overlay(self, device_id: str, poll: Any, fetched_at: float, source: str) -> Any:
        """Hide what the device already answered through the relay from an older answer;
        forget the notes a fresh upstream answer has caught up with."""
        reported = await run_in_threadpool(self.db.reported, device_id)
        if not reported:
            return poll
        poll, _hidden = hide_reported(poll, reported, fetched_at)
        caught_up = [k for k, acked in reported.items() if acked is not None and acked < fetched_at]
        if source == "upstream" and caught_up:
            await run_in_threadpool(self.db.forget_reported, device_id, caught_up, fetched_at)
        return poll

    def _hold(self, device_id: str, path: str, auth: str, answer: store.CachedResponse) -> None:
        self._held[device_id, path] = (store.hash_token(auth), answer)
        self._held.move_to_end((device_id, path))
        while len(self._held) > _HELD:
            self._held.popitem(last=False)

    async def _confirm(self, device_id: str, auth: str, path: str) -> None:
        """The upstream accepted ``auth`` from the device at ``path``: keep the 404s it got
        with that token under the same tenant."""
        if not self._held:
            return
        token_hash = store.hash_token(auth)
        prefix = "/".join(path.split("/")[:5]) + "/"  # /{tenant}/controller/v1/{device}/
        for key in [
            k
            for k, (h, _) in self._held.items()
            if k[0] == device_id and h == token_hash and k[1].startswith(prefix)
        ]:
            _hash, answer = self._held.pop(key)
            await run_in_threadpool(self.db.put_response, device_id, key[1], answer)

    # --- bytes ---------------------------------------------------------------------------------

    async def blob(
        self, request: Request, where: DevicePath, device_id: str, path: str
    ) -> Response:
        """An artifact or TUF target: from the cache when this device's own deployment or
        metadata named it, else fetched whole from the upstream (checked, kept), then served."""
        auth = request.headers.get("authorization")
        verdict = await run_in_threadpool(self.db.token_verdict, device_id, auth)
        ref = await run_in_threadpool(self.db.blob_ref, device_id, path)
        if verdict == "ok" and ref is not None:
            pending = self._fetches.get(ref.sha256)
            if pending is not None:  # a prefetch of these bytes is running: wait for it
                await asyncio.wait([pending])
            if await run_in_threadpool(self.db.has_blob, ref.sha256):
                mark_device(request.scope)
                return self._file(ref, where, "cache")
        if not self.uplink.available():
            if verdict != "ok":
                return refusal(request, verdict, device_id, self.uplink.retry_in_s())
            return error_response(
                503,
                f"the uplink is down and the relay has no copy of {path}; retry later",
                {"Retry-After": str(max(1, round(self.uplink.retry_in_s())))},
            )
        expected = ref.sha256 if ref is not None else where.sha256
        try:
            sha256, size = await self._download(path, auth, expected)
        except _RefusedError as refused:
            if refused.response.status_code == 401:
                await run_in_threadpool(self.db.forget_token, device_id, auth)
                request.scope[DEVICE_AUTH_FAILED] = True
            return _passed_back(refused.response)
        except UplinkDownError as exc:
            return error_response(503, str(exc), {"Retry-After": "1"})
        except ArtifactError as exc:
            return error_response(502, f"the upstream sent bad bytes for {path}: {exc}")
        if auth:
            await run_in_threadpool(self.db.remember_token, device_id, auth, self.wall())
            await self._confirm(device_id, auth, path)
        known = ref or store.BlobRef(sha256, size, path.rpartition("/")[2])
        await run_in_threadpool(self.db.add_ref, device_id, path, known)
        mark_device(request.scope)
        return self._file(known, where, "upstream")

    def _file(self, ref: store.BlobRef, where: DevicePath, source: str) -> FileResponse:
        named = where.kind == "artifact" and ref.filename is not None
        return FileResponse(
            self.db.blob_path(ref.sha256),
            media_type="application/octet-stream",
            filename=ref.filename if named else None,
            content_disposition_type="attachment",
            headers={SOURCE_HEADER: source},
        )

    async def _download(self, path: str, auth: str | None, expected: str | None) -> tuple[str, int]:
        """Fetch ``path`` whole into the cache (checked against ``expected``); (sha256, size)."""
        headers = {"authorization": auth} if auth else {}
        async with self.uplink.stream("GET", path, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                raise _RefusedError(response)
            writer = await run_in_threadpool(store.BlobWriter, self.db.db.artifacts_dir)
            try:
                async for chunk in response.aiter_bytes(1 << 20):
                    await run_in_threadpool(writer.write, chunk)
                sha256, _sha1, _md5, size = await run_in_threadpool(writer.finish, expected)
            except BaseException:
                await run_in_threadpool(writer.discard)
                raise
        await run_in_threadpool(self.db.add_blob, sha256, size, self.wall())
        return sha256, size

    # --- prefetch ------------------------------------------------------------------------------

    def _spawn(self, name: str, work: Callable[[], Awaitable[object]]) -> None:
        async def run() -> None:
            try:
                await work()
            except (UplinkDownError, _RefusedError, ArtifactError) as exc:
                self.prefetch_failures += 1
                log.warning("prefetch %s failed: %s", name, exc)
            except Exception:
                self.prefetch_failures += 1
                log.exception("prefetch %s failed", name)

        task = asyncio.create_task(run(), name=f"skyfleet-relay-prefetch {name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _prefetch_links(self, poll: Any, device_id: str, prefix: str, auth: str) -> None:
        links = poll.get("_links") if isinstance(poll, dict) else None
        for name in _PREFETCH_LINKS:
            link = links.get(name) if isinstance(links, dict) else None
            href = link.get("href") if isinstance(link, dict) else None
            path = local_path(href, prefix) if isinstance(href, str) else None
            if path is not None:
                self._spawn(
                    path, functools.partial(self._prefetch_document, device_id, prefix, path, auth)
                )

    async def _prefetch_document(self, device_id: str, prefix: str, path: str, auth: str) -> None:
        if await run_in_threadpool(self.db.response, device_id, path) is not None:
            return  # the device fetches it itself while up; the copy is fresh enough to install
        started = self.wall()
        response = await self.uplink.send("GET", path, headers={"authorization": auth})
        if response.status_code != 200:
            raise _RefusedError(response)
        answer = store.CachedResponse(
            200, response.headers.get("content-type"), response.content, started
        )
        where = classify(path[len(prefix) :])
        refs = deployment_refs(_json(answer), prefix) if where.kind == "deployment" else []
        await run_in_threadpool(self.db.put_response, device_id, path, answer, refs)
        self._prefetch_blobs(refs, device_id, auth)

    def _prefetch_blobs(
        self, refs: Sequence[tuple[str, store.BlobRef]], device_id: str, auth: str
    ) -> None:
        for path, ref in refs:
            if ref.sha256 not in self._fetches:
                task = asyncio.create_task(self._prefetch_blob(path, ref, auth))
                self._fetches[ref.sha256] = task
                task.add_done_callback(functools.partial(self._fetched, ref.sha256))
                self._spawn(ref.sha256, functools.partial(_awaited, task))

    def _fetched(self, sha256: str, _task: object) -> None:
        self._fetches.pop(sha256, None)

    async def _prefetch_blob(self, path: str, ref: store.BlobRef, auth: str) -> tuple[str, int]:
        if await run_in_threadpool(self.db.has_blob, ref.sha256):
            return ref.sha256, ref.size or 0
        return await self._download(path, auth, ref.sha256)

    async def aclose(self) -> None:
        """Stop the background fetches."""
        tasks = [*self._background, *self._fetches.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _RefusedError(Exception):
    """The upstream answered a fetch with something other than 200."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code} from the upstream")
        self.response = response


async def _awaited(task: asyncio.Task[tuple[str, int]]) -> tuple[str, int]:
    return await task


def _json(answer: store.CachedResponse) -> Any:
    if "json" not in (answer.content_type or ""):
        return None
    try:
        return json.loads(answer.body)
    except ValueError:
        return None


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _passed_back(upstream: httpx.Response) -> Response:
    headers = {k: v for k, v in upstream.headers.items() if k in _PASS_BACK}
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type"),
        headers={**headers, SOURCE_HEADER: "upstream"},
    )
