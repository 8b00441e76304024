"""Running chunks of independent time steps in parallel worker processes.

Workers are spawned (not forked), so they start clean whatever threads the caller runs; what a
job carries must pickle.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

Progress = Callable[[int], None]
"""A callback told how many more steps are done."""


def execute(
    fn: Callable[[Any], dict[str, Any]],
    jobs: Sequence[Any],
    steps: Sequence[int],
    workers: int,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    """Run ``fn`` over ``jobs`` (in ``workers`` spawned processes when above 1), in order,
    reporting each job's ``steps`` to ``progress`` as it finishes."""
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if workers <= 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            results[i] = fn(job)
            if progress:
                progress(steps[i])
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(steps[futures[fut]])
    return [r for r in results if r is not None]
