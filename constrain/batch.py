"""Masks for a whole batch in one call, parallel across sequences.

Mask kernels release the GIL (numba ``nogil``), so rows whose masks are not cached yet are filled
by a thread pool; rows served from a cache are cheaper to copy in the calling thread than to hand
to a worker.

The pool is small on purpose (:data:`MAX_MASK_WORKERS`) and a worker gets at least
:data:`MIN_ROWS_PER_CHUNK` rows: the Python glue around the kernels holds the GIL, so every thread
that wakes up competes with the thread launching the model's forward pass, and a warm row's fill
(a few microseconds) costs less than a worker's wake-up. On a 16-core GPU machine the earlier
pool (one thread per core, two rows each at batch 32) gave no measurable gain there
(``bench/loop_probe.py``, docs/performance.md "On a GPU, session 19").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

from constrain.matcher import Matcher

_POOL: ThreadPoolExecutor | None = None
MAX_MASK_WORKERS = 4  # threads of the shared pool (fewer on machines with fewer cores)
MIN_ROWS_PER_CHUNK = 8  # a worker's wake-up and GIL round trip cost more than a few rows' fills


def mask_pool() -> ThreadPoolExecutor:
    """The shared worker pool for mask computation (one thread per core up to
    :data:`MAX_MASK_WORKERS`, at least 2; created on first use)."""
    global _POOL
    if _POOL is None:
        workers = max(2, min(os.cpu_count() or 2, MAX_MASK_WORKERS))
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="constrain-mask")
    return _POOL


def fill_bitmasks(
    matchers: Sequence[Matcher | None],
    bitmask: np.ndarray,
    *,
    executor: Executor | None = None,
    parallel_min_rows: int = 4,
) -> None:
    """Fill ``bitmask[i]`` from ``matchers[i]`` for every row; ``None`` rows are left untouched.

    Query only: no matcher changes state. With ``len(matchers) >= parallel_min_rows`` the rows are
    split into chunks of at least :data:`MIN_ROWS_PER_CHUNK` rows, at most one per worker of
    ``executor`` (default: :func:`mask_pool`); the calling thread fills one of them.
    """
    if bitmask.shape[0] < len(matchers):
        raise ValueError(f"bitmask has {bitmask.shape[0]} rows for {len(matchers)} matchers")
    rows = [i for i, m in enumerate(matchers) if m is not None]
    pool = executor or mask_pool()
    n_chunks = min(getattr(pool, "_max_workers", 2), len(rows) // max(1, MIN_ROWS_PER_CHUNK))
    if len(rows) < parallel_min_rows or n_chunks < 2:
        for i in rows:
            matchers[i].fill_bitmask(bitmask, i)  # type: ignore[union-attr]
        return
    chunks = [rows[k::n_chunks] for k in range(n_chunks)]

    def run(chunk: list[int]) -> None:
        for i in chunk:
            matchers[i].fill_bitmask(bitmask, i)  # type: ignore[union-attr]

    futures = [pool.submit(run, c) for c in chunks[1:]]
    run(chunks[0])  # the calling thread takes a share too
    for f in futures:
        f.result()
