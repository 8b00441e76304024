"""How much one client may ask of the server: device request rates and request body sizes.

Two ASGI middlewares, cheap enough for the base poll's hot path (a few microseconds a request):

- :class:`DeviceRateLimit`: a token bucket per device, so that one misbehaving device cannot
  starve the fleet; requests that fail device authentication are charged to the client's IP
  address instead (a stricter bucket), so that nobody can use up a device's rate by knowing its
  id, and guessing tokens is slow. Over a limit: 429 with ``Retry-After``.
- :class:`BodyLimit`: request bodies over a route's limit are refused with 413, at once when
  ``Content-Length`` says so, else as soon as the streamed body passes the limit.

The limits are per server process: with ``skyfleet serve --workers N`` each process keeps its own
buckets, so a device whose requests are spread over the processes may reach up to N times its
rate. Buckets live in memory only; a restart starts every bucket full.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
from collections.abc import Callable, Sequence

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skyfleet.errors import InputError, RateLimitError, TooLargeError
from skyfleet.server._errors import DEVICE_AUTH_FAILED as _FAILED
from skyfleet.server._errors import exception_response

__all__ = ["BodyLimit", "DeviceRateLimit", "RateLimiter", "mark_device"]

#: The scope key a device route sets once the request authenticated as the device in its path.
_AUTHENTICATED = "skyfleet.device_authenticated"
#: What every device API path has between the tenant and the device id.
_DEVICE_PATH = "/controller/v1/"
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


def mark_device(scope: Scope) -> None:
    """Note that this request authenticated as the device its path names.

    Only such requests keep the token they took from the device's bucket; a request that ends
    in 401 is charged to the client's address instead. The device routes call this once the
    token was accepted.
    """
    scope[_AUTHENTICATED] = True


class RateLimiter:
    """Token buckets by key: ``burst`` requests at once, then ``rate_per_s`` requests a second.

    Each bucket is one float: the time (seconds on a monotonic clock, as the caller passes it)
    at which it is full again (the generic cell rate algorithm). Full buckets are forgotten when
    more than ``max_keys`` exist; if that is not enough, the oldest go too (each starts full
    again), so memory stays bounded (about 150 bytes a bucket). Not thread-safe: one event
    loop uses it.

    >>> limiter = RateLimiter(rate_per_s=1.0, burst=2)
    >>> limiter.wait_s("car-1", 0.0)
    0.0
    >>> limiter.charge("car-1", 0.0)
    >>> limiter.charge("car-1", 0.0)
    >>> limiter.wait_s("car-1", 0.0)  # both tokens used: the next one comes after 1 s
    1.0
    >>> limiter.wait_s("car-1", 1.0), limiter.wait_s("car-2", 0.0)
    (0.0, 0.0)
    >>> limiter.refund("car-1", 0.0)  # one request turned out not to be car-1's
    >>> limiter.wait_s("car-1", 0.0)
    0.0
    """

    __slots__ = ("_full_at", "_interval_s", "_slack_s", "burst", "max_keys", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int, *, max_keys: int = 100_000) -> None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
            raise InputError(
                f"a request rate must be a positive number per second, not {rate_per_s}"
            )
        if burst < 1 or max_keys < 1:
            raise InputError(
                f"a burst and a bucket count must be at least 1, not {burst}, {max_keys}"
            )
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._interval_s = 1.0 / rate_per_s
        self._slack_s = (burst - 1) / rate_per_s
        self._full_at: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._full_at)

    def wait_s(self, key: str, now_s: float) -> float:
        """Seconds until ``key`` may send a request (0.0: it may now)."""
        full_at = self._full_at.get(key)
        if full_at is None:
            return 0.0
        return max(0.0, full_at - now_s - self._slack_s)

    def charge(self, key: str, now_s: float) -> None:
        """Take one token from ``key``'s bucket (a request it sent at ``now_s``)."""
        full_at = self._full_at.get(key)
        if full_at is None:
            if len(self._full_at) >= self.max_keys:
                self._prune(now_s)
            full_at = now_s
        elif full_at < now_s:
            full_at = now_s
        self._full_at[key] = full_at + self._interval_s

    def refund(self, key: str, now_s: float) -> None:
        """Give back a token :meth:`charge` took (the request turned out not to be ``key``'s).

        A bucket never gets fuller than full: one that is full again (at ``now_s``, or any time
        after it) is forgotten, as if it had never been charged.
        """
        full_at = self._full_at.get(key)
        if full_at is None:
            return
        full_at -= self._interval_s
        if full_at > now_s:
            self._full_at[key] = full_at
        else:
            del self._full_at[key]

    def _prune(self, now_s: float) -> None:
        """Forget the full buckets, then the oldest, down to half of ``max_keys``."""
        kept = {k: t for k, t in self._full_at.items() if t > now_s}
        excess = len(kept) - self.max_keys // 2
        if excess > 0:
            kept = dict(list(kept.items())[excess:])
        self._full_at = kept


class DeviceRateLimit:
    """ASGI middleware: a rate per device on the device API (``/{tenant}/controller/v1/{id}``).

    A request whose device (``rate_per_s``, ``burst``) or whose client address (for failed
    authentication: ``auth_fail_rate_per_s``, ``auth_fail_burst``) has no token left gets 429
    with ``Retry-After``, before it is read. An admitted request takes its device's token at
    once (so that requests sent in parallel cannot all pass), and gets it back if it did not
    authenticate as that device (:func:`mark_device`); one answered 401 (the app's handler for
    :class:`~skyfleet.errors.DeviceAuthError` marks it) costs its client address a token (an
    IPv6 client by its /64, which one client may hold whole); anything else costs nothing. So a
    device's rate is used up only by requests carrying its token, while a client guessing
    tokens is slowed down, and with it every device behind the same address (behind a reverse
    proxy, let uvicorn take the client address from ``X-Forwarded-For``). A rate of 0 turns
    that limit off. ``clock`` gives seconds (monotonic).

    Added after :class:`~skyfleet.server._poll_path.BasePollShortPath`, so that it sees the
    base polls too.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate_per_s: float,
        burst: int,
        auth_fail_rate_per_s: float,
        auth_fail_burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        self.app = app
        self.clock = clock
        self.devices = (
            RateLimiter(rate_per_s, burst, max_keys=max_buckets) if rate_per_s > 0 else None
        )
        self.failures = (
            RateLimiter(auth_fail_rate_per_s, auth_fail_burst, max_keys=max_buckets)
            if auth_fail_rate_per_s > 0
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"] if scope["type"] == "http" else ""
        start = path.find(_DEVICE_PATH)
        if start < 0:
            await self.app(scope, receive, send)
            return
        device = path[start + len(_DEVICE_PATH) :].partition("/")[0]
        client = scope.get("client")
        address: str = client[0] if client else "unknown"
        if ":" in address:  # IPv6; IPv4 (the common case) needs no parsing
            address = _ipv6_key(address)
        now_s = self.clock()
        devices, failures = self.devices, self.failures
        refusal = None
        if devices is not None and (wait_s := devices.wait_s(device, now_s)) > 0.0:
            refusal = _device_refusal(devices, device, wait_s)
        elif failures is not None and (wait_s := failures.wait_s(address, now_s)) > 0.0:
            refusal = _address_refusal(failures, address, wait_s)
        if refusal is not None:
            await exception_response(refusal)(scope, receive, send)
            return
        if devices is not None:
            # Taken now, not when the answer starts: requests in flight at once all count.
            devices.charge(device, now_s)
        try:
            await self.app(scope, receive, send)
        finally:
            if not scope.get(_AUTHENTICATED):
                if devices is not None:
                    devices.refund(device, now_s)  # not the device's request: its token back
                if failures is not None and scope.get(_FAILED):  # answered 401
                    failures.charge(address, now_s)


@functools.lru_cache(maxsize=4096)
def _ipv6_key(host: str) -> str:
    """The failed-auth bucket of an IPv6 client: its /64 (one client may hold a whole /64 and
    take a new address for every guess), or the IPv4 address an IPv4-mapped one carries.
    Cached: parsing costs several microseconds, and a client keeps its address.

    >>> _ipv6_key("2001:db8:1:2:aaaa::1"), _ipv6_key("2001:db8:1:2:bbbb::9")
    ('2001:db8:1:2::/64', '2001:db8:1:2::/64')
    >>> _ipv6_key("::ffff:203.0.113.7"), _ipv6_key("not:an-address")
    ('203.0.113.7', 'not:an-address')
    """
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"


def _device_refusal(limiter: RateLimiter, device: str, wait_s: float) -> RateLimitError:
    return RateLimitError(
        f"device {device!r} sent more than {limiter.burst} requests at once or "
        f"{limiter.rate_per_s:g} a second; retry in {math.ceil(wait_s)} s "
        "and poll no faster than config.polling.sleep says",
        retry_after_s=wait_s,
    )


def _address_refusal(limiter: RateLimiter, address: str, wait_s: float) -> RateLimitError:
    return RateLimitError(
        f"too many requests with a missing or wrong device token from {address}; retry in "
        f"{math.ceil(wait_s)} s with the device's own token ('Authorization: TargetToken <token>')",
        retry_after_s=wait_s,
    )


class _BodyTooLargeError(TooLargeError, HTTPException):
    """A :class:`TooLargeError` raised while the app reads the body. It is also an
    ``HTTPException`` because FastAPI passes those on from its body reading (and turns anything
    else into a 400)."""

    def __init__(self, message: str) -> None:
        TooLargeError.__init__(self, message)
        HTTPException.__init__(self, 413, message)

    def __str__(self) -> str:
        return str(self.detail)


class BodyLimit:
    """ASGI middleware: request bodies over ``max_body_bytes`` (bytes) are refused with 413.

    ``by_prefix`` gives other limits, as ``(path prefix, limit in bytes, setting name)``; the
    first prefix the path (without the root path) starts with wins. A declared
    ``Content-Length`` over the limit is refused before anything is read; a body sent without
    one (chunked) is cut off as soon as it passes the limit: reading it raises
    :class:`TooLargeError`, which the app answers with 413 (an upload in progress discards what
    it wrote). GET, HEAD and OPTIONS requests are passed on untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        setting: str = "max_body_bytes",
        by_prefix: Sequence[tuple[str, int, str]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.setting = setting
        self.by_prefix = tuple(by_prefix)

    def limit_for(self, route_path: str) -> tuple[int, str]:
        """The body limit (bytes) for a path, and the name of the setting that gives it."""
        for prefix, limit, setting in self.by_prefix:
            if route_path.startswith(prefix):
                return limit, setting
        return self.max_body_bytes, self.setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODILESS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        limit, setting = self.limit_for(path)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            refusal = TooLargeError(_too_large(path, limit, setting))
            await exception_response(refusal)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message_in = await receive()
            if message_in["type"] == "http.request":
                received += len(message_in.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError(_too_large(path, limit, setting))
            return message_in

        await self.app(scope, limited_receive, send)


def _too_large(path: str, limit: int, setting: str) -> str:
    return (
        f"the request body is larger than {limit:,} bytes, the server's limit for {path} "
        f"({setting}); send a smaller body or ask the operator to raise {setting}"
    )
