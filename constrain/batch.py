"""Masks for a whole batch in one call, parallel across sequences.

Mask kernels release the GIL (numba ``nogil``), so rows whose masks are not cached yet are filled
by a thread pool; rows served from a cache are cheaper to copy in the calling thread than to hand
to a worker.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

from constrain.matcher import Matcher

_POOL: ThreadPoolExecutor | None = None


def mask_pool() -> ThreadPoolExecutor:
    """The shared worker pool for mask computation (one thread per core, created on first use)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="constrain-mask")
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
    split into one chunk per worker of ``executor`` (default: :func:`mask_pool`).
    """
    if bitmask.shape[0] < len(matchers):
        raise ValueError(f"bitmask has {bitmask.shape[0]} rows for {len(matchers)} matchers")
    rows = [i for i, m in enumerate(matchers) if m is not None]
    if len(rows) < parallel_min_rows:
        for i in rows:
            matchers[i].fill_bitmask(bitmask, i)  # type: ignore[union-attr]
        return
    pool = executor or mask_pool()
    workers = getattr(pool, "_max_workers", 2)
    chunks = [rows[k::workers] for k in range(workers) if rows[k::workers]]

    def run(chunk: list[int]) -> None:
        for i in chunk:
            matchers[i].fill_bitmask(bitmask, i)  # type: ignore[union-attr]

    futures = [pool.submit(run, c) for c in chunks[1:]]
    run(chunks[0])  # the calling thread takes a share too
    for f in futures:
        f.result()
