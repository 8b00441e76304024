"""The request limits on their own: token buckets, the device rate middleware and the body limit,
driven with a fake clock around tiny ASGI apps (the server's own wiring: test_device_security)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from skyfleet.errors import InputError, TooLargeError
from skyfleet.server._errors import DEVICE_AUTH_FAILED
from skyfleet.server._limits import BodyLimit, DeviceRateLimit, RateLimiter, mark_device

GOOD = "TargetToken good"


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class Answer:
    """What an ASGI app sent back."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        self.status: int = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def error(self) -> str:
        body: dict[str, str] = json.loads(self.body)
        assert set(body) == {"error"}
        return body["error"]


def call(
    app: Any,
    path: str,
    *,
    method: str = "GET",
    auth: str | None = GOOD,
    client: str = "10.0.0.1",
    chunks: Sequence[bytes] = (),
    headers: Sequence[tuple[str, str]] = (),
    root_path: str = "",
) -> Answer:
    """One request to ``app``; the body arrives in ``chunks``."""
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks or [b""])
    ]
    sent: list[dict[str, Any]] = []
    raw = [(k.encode(), v.encode()) for k, v in headers]
    if auth is not None:
        raw.append((b"authorization", auth.encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "headers": raw,
        "client": (client, 50000),
        "query_string": b"",
    }

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return Answer(sent)


async def device_app(scope: Any, receive: Any, send: Any) -> None:
    """A device API that accepts the token 'good', and knows only base polls."""
    known = scope["path"].removeprefix(scope["root_path"]).count("/") == 4
    if dict(scope["headers"]).get(b"authorization") != GOOD.encode():
        scope[DEVICE_AUTH_FAILED] = True  # as the server's DeviceAuthError handler does
        status = 401
    elif known:
        mark_device(scope)
        status = 200
    else:
        status = 404  # an unknown path: nobody authenticated, nobody failed to
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def limited(clock: FakeClock, **limits: Any) -> DeviceRateLimit:
    settings = {"rate_per_s": 1.0, "burst": 3, "auth_fail_rate_per_s": 0.1, "auth_fail_burst": 2}
    return DeviceRateLimit(device_app, clock=clock, **(settings | limits))


def poll(app: Any, device: str, **options: Any) -> Answer:
    return call(app, f"/DEFAULT/controller/v1/{device}", **options)


# --- token buckets -------------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_its_rate_and_says_how_long_to_wait() -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=4)
    for _ in range(4):
        assert limiter.wait_s("car", 10.0) == 0.0
        limiter.charge("car", 10.0)
    assert limiter.wait_s("car", 10.0) == pytest.approx(0.5)  # one token every 0.5 s
    assert limiter.wait_s("car", 10.25) == pytest.approx(0.25)
    assert limiter.wait_s("car", 10.5) == 0.0
    assert limiter.wait_s("other", 10.0) == 0.0  # buckets are per key
    # after a quiet spell the bucket is full again, and no fuller than the burst
    for _ in range(4):
        assert limiter.wait_s("car", 100.0) == 0.0
        limiter.charge("car", 100.0)
    assert limiter.wait_s("car", 100.0) > 0.0


def test_buckets_are_bounded_full_ones_dropped_first() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=2, max_keys=100)
    limiter.charge("busy", 0.0)
    limiter.charge("busy", 0.0)  # empty until t = 1 s, full at t = 2 s
    for i in range(99):
        limiter.charge(f"idle-{i}", -10.0)  # full again by t = 0
    assert len(limiter) == 100
    limiter.charge("newcomer", 0.0)
    assert len(limiter) == 2  # the full buckets went; the busy one is kept, still empty
    assert limiter.wait_s("busy", 0.0) == pytest.approx(1.0)
    for i in range(500):  # all busy: the oldest go, memory stays bounded
        limiter.charge(f"flood-{i}", 0.0)
        assert len(limiter) <= 100


def test_a_token_given_back_never_makes_a_bucket_fuller_than_full() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=2)
    limiter.charge("car", 0.0)
    limiter.charge("car", 0.0)
    assert limiter.wait_s("car", 0.0) == pytest.approx(1.0)
    limiter.refund("car", 0.0)
    assert limiter.wait_s("car", 0.0) == 0.0  # one token back
    limiter.refund("car", 0.0)
    limiter.refund("car", 0.0)  # more than were taken
    limiter.refund("bus", 0.0)  # never taken
    assert len(limiter) == 0  # full buckets are forgotten
    limiter.charge("car", 0.0)
    limiter.charge("car", 0.0)
    assert limiter.wait_s("car", 0.0) == pytest.approx(1.0)  # still a burst of 2, not 3 or 4


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 5), (-1.0, 5), (float("nan"), 5), (1.0, 0)])
def test_a_bucket_that_cannot_work_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(InputError):
        RateLimiter(rate, burst)


# --- device rate limit ---------------------------------------------------------------------------


def test_flooding_device_gets_429_with_retry_after_and_others_still_served() -> None:
    clock = FakeClock()
    app = limited(clock)
    assert [poll(app, "car-1").status for _ in range(3)] == [200, 200, 200]
    flooded = poll(app, "car-1")
    assert flooded.status == 429
    assert flooded.headers["retry-after"] == "1"
    assert "car-1" in flooded.error() and "retry in 1 s" in flooded.error()
    deeper = call(app, "/DEFAULT/controller/v1/car-1/configData", method="PUT")
    assert deeper.status == 429  # every route of the device shares its bucket
    assert [poll(app, "car-2").status for _ in range(3)] == [200, 200, 200]
    clock.now_s += 1.0
    assert [poll(app, "car-1").status for _ in range(2)] == [200, 429]  # one token a second


def test_wrong_tokens_for_a_device_do_not_use_up_its_rate() -> None:
    clock = FakeClock()
    app = limited(clock, auth_fail_burst=100)
    for _ in range(20):
        assert poll(app, "car-1", auth="TargetToken guess", client="10.6.6.6").status == 401
    assert [poll(app, "car-1").status for _ in range(3)] == [200, 200, 200]
    assert poll(app, "car-1").status == 429


def test_a_client_guessing_tokens_gets_429_after_its_failed_auth_budget() -> None:
    clock = FakeClock()
    app = limited(clock)
    guesser = {"client": "10.6.6.6", "auth": "TargetToken guess"}
    assert [poll(app, f"car-{i}", **guesser).status for i in range(2)] == [401, 401]
    stopped = poll(app, "car-9", **guesser)
    assert stopped.status == 429
    assert stopped.headers["retry-after"] == "10"  # auth_fail_rate_per_s = 0.1
    assert "10.6.6.6" in stopped.error() and "TargetToken" in stopped.error()
    # refused before it is read: even a right guess gets no answer that tells it apart
    assert poll(app, "car-1", client="10.6.6.6").status == 429
    assert poll(app, "car-1", client="10.0.0.1").status == 200  # other addresses go on
    clock.now_s += 10.0
    assert poll(app, "car-9", **guesser).status == 401


def test_requests_that_neither_authenticate_nor_fail_cost_nothing() -> None:
    clock = FakeClock()
    app = limited(clock, burst=1, auth_fail_burst=1)
    for _ in range(10):  # unknown paths under the device's id, by anyone
        assert call(app, "/DEFAULT/controller/v1/car-1/nothing/here").status == 404
    assert poll(app, "car-1").status == 200
    assert poll(app, "car-1").status == 429


def test_operator_paths_are_not_rate_limited_and_a_rate_of_zero_turns_a_limit_off() -> None:
    clock = FakeClock()
    app = limited(clock, burst=1, auth_fail_burst=1)
    assert {call(app, "/api/v1/devices", auth=None).status for _ in range(10)} == {401}
    unlimited = limited(clock, rate_per_s=0.0, auth_fail_rate_per_s=0.0)
    assert {poll(unlimited, "car-1").status for _ in range(100)} == {200}
    assert {poll(unlimited, "car-1", auth=None).status for _ in range(100)} == {401}


def test_the_device_is_found_under_a_root_path() -> None:
    clock = FakeClock()
    app = limited(clock, burst=1)
    assert poll(app, "car-1", root_path="/fleet").status == 200
    assert poll(app, "car-1", root_path="/fleet").status == 429


# --- body limit ----------------------------------------------------------------------------------


class BodyReader:
    """An app that reads the whole body, and answers with its length (or 413 if it is cut)."""

    def __init__(self) -> None:
        self.called = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called += 1
        size, more = 0, True
        try:
            while more:
                message = await receive()
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
        except TooLargeError as exc:
            status, body = 413, str(exc).encode()
        else:
            status, body = 200, str(size).encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


def bodies(reader: BodyReader) -> BodyLimit:
    return BodyLimit(
        reader, max_body_bytes=100, by_prefix=[("/api/v1/artifacts", 1000, "max_upload_bytes")]
    )


def test_a_declared_content_length_over_the_limit_is_refused_before_the_app_reads() -> None:
    reader = BodyReader()
    app = bodies(reader)
    answer = call(app, "/x/feedback", method="POST", headers=[("content-length", "101")])
    assert answer.status == 413
    assert "100 bytes" in answer.error() and "max_body_bytes" in answer.error()
    assert reader.called == 0
    upload = call(app, "/api/v1/artifacts", method="POST", headers=[("content-length", "1001")])
    assert upload.status == 413 and "max_upload_bytes" in upload.error()
    assert reader.called == 0


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit() -> None:
    reader = BodyReader()
    app = bodies(reader)
    answer = call(app, "/x/feedback", method="POST", chunks=[b"x" * 60, b"x" * 60, b"x" * 60])
    assert answer.status == 413
    assert "100 bytes" in answer.body.decode()
    exact = call(app, "/x/feedback", method="POST", chunks=[b"x" * 60, b"x" * 40])
    assert (exact.status, exact.body) == (200, b"100")
    upload = call(app, "/api/v1/artifacts", method="POST", chunks=[b"x" * 600, b"x" * 400])
    assert (upload.status, upload.body) == (200, b"1000")
    under_root = call(
        app, "/api/v1/artifacts", method="POST", chunks=[b"x" * 600] * 2, root_path="/fleet"
    )
    assert under_root.status == 413 and "max_upload_bytes" in under_root.body.decode()


def test_requests_without_a_body_pass_untouched() -> None:
    reader = BodyReader()
    app = bodies(reader)
    answer = call(app, "/x", method="GET", headers=[("content-length", "10000")])
    assert (answer.status, reader.called) == (200, 1)


def test_requests_sent_in_parallel_cannot_all_pass_the_device_check() -> None:
    """All in flight before any answer starts: only the burst is let through."""
    clock = FakeClock()
    release = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        mark_device(scope)
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app = DeviceRateLimit(
        slow_app, clock=clock, rate_per_s=1.0, burst=3, auth_fail_rate_per_s=0.1, auth_fail_burst=2
    )

    async def one() -> int:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/DEFAULT/controller/v1/car-1",
            "headers": [],
            "client": ("10.0.0.1", 1),
        }

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await app(scope, receive, send)
        return int(sent[0]["status"])

    async def burst() -> list[int]:
        tasks = [asyncio.create_task(one()) for _ in range(10)]
        await asyncio.sleep(0.01)  # every request is in flight, none answered
        release.set()
        return await asyncio.gather(*tasks)

    statuses = asyncio.run(burst())
    assert sorted(statuses) == [200] * 3 + [429] * 7


def test_a_request_that_did_not_authenticate_gives_its_token_back() -> None:
    clock = FakeClock()
    app = limited(clock)
    for _ in range(10):  # unknown paths under the device: neither authenticated nor failed
        assert call(app, "/DEFAULT/controller/v1/car-1/nothing/here").status == 404
    assert [poll(app, "car-1").status for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.parametrize(
    ("first", "second", "shared"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one /64
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),  # another /64
        ("::ffff:10.6.6.6", "10.6.6.6", True),  # IPv4, written either way
        ("10.6.6.6", "10.6.6.7", False),
    ],
)
def test_failed_auth_budgets_group_ipv6_by_64(first: str, second: str, shared: bool) -> None:
    clock = FakeClock()
    app = limited(clock)
    guesses = [poll(app, "car-1", client=first, auth="TargetToken x").status for _ in range(2)]
    assert guesses == [401, 401]
    after = poll(app, "car-2", client=second, auth="TargetToken x").status
    assert after == (429 if shared else 401)
