"""The relay's connection to the central server, with a circuit breaker.

Every request upstream goes through :class:`Uplink`. A connection that cannot be opened, a
timeout, a connection dropped before the answer, or a gateway that says it cannot reach the
server (502, 504) marks the uplink down; it is tried again after ``retry_initial_s``, doubling
up to ``retry_max_s``. While it is down and the retry time has not come, requests fail at once
(:class:`UplinkDownError`), so devices are answered from the cache without waiting for a timeout;
when it has come, one request tries (the others still fail at once until it is answered). Any
answer from the server marks it up again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping

import httpx

from skyfleet.server._relay_config import RelayConfig

__all__ = ["Uplink", "UplinkDownError"]

#: What a gateway in front of the server answers when it cannot reach it.
_GATEWAY_DOWN = frozenset({502, 504})


class UplinkDownError(Exception):
    """The central server cannot be reached now (or is not being tried yet)."""


class Uplink:
    """Requests to the upstream server, and whether it is reachable.

    ``clock`` gives seconds on a monotonic clock (the retry schedule), ``wall`` UNIX seconds
    (``last_sync``, reported by ``/relay/status``).
    """

    def __init__(
        self,
        config: RelayConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.base = config.upstream_base
        #: The upstream as shown to devices and in ``/relay/status``: without credentials.
        self.shown = config.upstream_shown
        self.clock = clock
        self.wall = wall
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(config.upstream_timeout_s, connect=config.connect_timeout_s),
            follow_redirects=False,
            transport=transport,
        )
        self.failures = 0
        self.retry_at = 0.0
        self.last_sync: float | None = None
        self.down_since: float | None = None
        #: The last failure as it came (it may name the URL, credentials included): for logs.
        self.last_error: str | None = None
        #: What kind of failure it was (``ConnectError``, ``HTTP 502 from a gateway``): shown.
        self.last_failure: str | None = None
        #: Called when the uplink comes back up.
        self.on_up: list[Callable[[], None]] = []

    @property
    def up(self) -> bool:
        """Whether the last exchange with the upstream worked."""
        return self.failures == 0

    def available(self) -> bool:
        """Whether a request should be tried now (up, or down and due for a retry)."""
        return self.failures == 0 or self.clock() >= self.retry_at

    def retry_in_s(self) -> float:
        """Seconds until the next try (0 when up or due)."""
        return 0.0 if self.failures == 0 else max(0.0, self.retry_at - self.clock())

    def succeeded(self) -> None:
        """An answer came back: the uplink is up."""
        was_down = self.failures > 0
        self.failures = 0
        self.down_since = None
        self.last_sync = self.wall()
        if was_down:
            for callback in self.on_up:
                callback()

    def failed(self, error: str, kind: str) -> None:
        """A request could not be completed (``error``, and its ``kind`` without details):
        the uplink is down until the next retry."""
        self.failures += 1
        self.last_error = error
        self.last_failure = kind
        if self.down_since is None:
            self.down_since = self.wall()
        backoff = self.config.retry_initial_s * 2.0 ** min(self.failures - 1, 30)
        self.retry_at = self.clock() + min(self.config.retry_max_s, backoff)

    def _check(self) -> None:
        if not self.available():
            raise UplinkDownError(
                f"the uplink to {self.shown} is down ({self.last_failure}); "
                f"next try in {self.retry_in_s():.1f} s"
            )
        if self.failures:
            # This request is the one try: the others keep to the cache until it is answered
            # (an uplink that drops packets would otherwise hold each of them for a timeout).
            self.retry_at = (
                self.clock() + self.config.connect_timeout_s + self.config.upstream_timeout_s
            )

    def _answered(self, response: httpx.Response) -> None:
        if response.status_code in _GATEWAY_DOWN:
            kind = f"HTTP {response.status_code} from a gateway"
            self.failed(kind, kind)
        else:
            self.succeeded()

    async def send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send a request (``path`` with its query, appended to the upstream URL) and read the
        whole answer; :class:`UplinkDownError` if it cannot be sent or answered now."""
        self._check()
        try:
            response = await self.client.request(
                method, self.base + path, headers=dict(headers), content=content
            )
        except httpx.TransportError as exc:
            self.failed(f"{type(exc).__name__}: {exc}", type(exc).__name__)
            raise UplinkDownError(
                f"the uplink to {self.shown} failed: {self.last_failure}"
            ) from exc
        self._answered(response)
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, path: str, *, headers: Mapping[str, str]
    ) -> AsyncIterator[httpx.Response]:
        """Like :meth:`send`, but the body is read by the caller, in the ``async with`` block;
        the connection dropping while it reads is :class:`UplinkDownError` too."""
        self._check()
        request = self.client.build_request(method, self.base + path, headers=dict(headers))
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TransportError as exc:
            self.failed(f"{type(exc).__name__}: {exc}", type(exc).__name__)
            raise UplinkDownError(
                f"the uplink to {self.shown} failed: {self.last_failure}"
            ) from exc
        try:
            self._answered(response)
            yield response
        except httpx.TransportError as exc:
            kind = f"{type(exc).__name__} while reading"
            self.failed(f"{kind}: {exc}", kind)
            raise UplinkDownError(f"the uplink to {self.shown} dropped: {kind}") from exc
        finally:
            await response.aclose()

    async def probe(self) -> bool:
        """Ask the upstream whether it is there (``GET /api/v1/health``); True if it answered."""
        try:
            await self.send("GET", "/api/v1/health", headers={})
        except UplinkDownError:
            return False
        return self.up

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()
