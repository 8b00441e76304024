"""Base polls read in batches: the polls that arrive together share one statement.

A million vehicles polling every five minutes are 3,400 polls a second; each needs the device's
token hash, hardware and offered action. Read one by one, the statement, the thread hand-off and
the database round trip cost several times the HTTP work. Here a poll waits only while a read is
already running: the polls that queued up meanwhile go out together in the next read, so at low
load each poll is read alone (no added delay) and under load the cost per poll falls with the
batch size. Every read starts after its polls arrived, so a device sees its own earlier writes.
"""

from __future__ import annotations

import asyncio
import itertools

from skyfleet import store
from skyfleet.errors import StoreError

__all__ = ["PollBatcher"]

_Waiters = dict[str, list["asyncio.Future[store.PollView | None]"]]
_STOPPING = "the server is stopping"


class PollBatcher:
    """Reads :class:`~skyfleet.store.PollView` records, batching the polls that wait together.

    At most ``parallel`` reads run at once, each of up to ``max_batch`` devices. One at a time
    (the default) measured best in ``benchmarks/bench_checkins.py``: bigger batches, less CPU per
    poll, and a wait of at most one read.
    """

    def __init__(
        self, reader: store.PollViewReader, *, max_batch: int = 256, parallel: int = 1
    ) -> None:
        if max_batch < 1 or parallel < 1:
            raise ValueError("max_batch and parallel must be at least 1")
        self._reader = reader
        self._max_batch = max_batch
        self._parallel = parallel
        self._waiting: _Waiters = {}
        self._reading = 0  # reads running; counted here, not by tasks alive, to close a race
        self._tasks: set[asyncio.Task[None]] = set()

    async def view(self, device_id: str) -> store.PollView | None:
        """The device's poll view, or None for an unknown device."""
        future: asyncio.Future[store.PollView | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(device_id, []).append(future)
        if self._reading < self._parallel:
            self._reading += 1
            task = asyncio.create_task(self._drain(), name="skyfleet-poll-reader")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take(self) -> _Waiters:
        return {
            device_id: self._waiting.pop(device_id)
            for device_id in list(itertools.islice(self._waiting, self._max_batch))
        }

    def _fail(self, batch: _Waiters, failure: Exception) -> None:
        for futures in batch.values():
            for future in futures:
                if not future.done():
                    future.set_exception(failure)

    def _fail_waiting(self, failure: Exception) -> None:
        waiting, self._waiting = self._waiting, {}
        self._fail(waiting, failure)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                await self._read_batch(self._take())
        except BaseException:  # cancelled (the server stops): nobody is left waiting for ever
            self._fail_waiting(RuntimeError(_STOPPING))
            raise
        finally:  # no await between the loop's last check and this: a new poll starts a reader
            self._reading -= 1

    async def _read_batch(self, batch: _Waiters) -> None:
        try:
            views = await self._reader.read(list(batch))
        except Exception as exc:
            # The polls that queued meanwhile would meet the same database: they fail at once
            # too (a 503 for an outage) rather than wait behind it.
            self._fail(batch, exc)
            if isinstance(exc, StoreError):
                self._fail_waiting(exc)
            return
        except BaseException:
            self._fail(batch, RuntimeError(_STOPPING))
            raise
        for device_id, futures in batch.items():
            view = views.get(device_id)
            for future in futures:
                if not future.done():  # its client may have gone away
                    future.set_result(view)

    async def aclose(self) -> None:
        """Stop the reads in flight; polls still waiting fail."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
