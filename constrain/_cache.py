"""BoundedCache: the process-wide memo tables of the compilers, bounded and thread-safe.

Compiling a schema or a grammar repeats work across compiles (the same string languages, regex
pieces, NFA fragments); the compilers keep that work in tables that live as long as the process.
Each table is bounded by a number of entries and, optionally, a total weight (states, edges), and
drops its oldest entries first. A lock makes ``get``/``put`` safe when several threads compile at
once (eviction walks the table, which a concurrent insertion would break).

Entries keyed by an object's ``id`` must hold the object in the value and check it on ``get`` (an
``id`` is reused once its object is gone); :meth:`BoundedCache.get_for` does both.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any, Callable, Hashable

_ALL: "weakref.WeakSet[BoundedCache]" = weakref.WeakSet()
# modules whose functools.lru_cache memos hold compile work (not the model/tokenizer loaders)
_COMPILER_MODULES = ("constrain.regex", "constrain.schema", "constrain.grammar", "constrain.constraints")


def clear_compile_caches() -> int:
    """Empty every compile-time memo of the process (each :class:`BoundedCache` and the
    ``functools.lru_cache`` functions of the compiler modules), so the next compile starts cold
    (``bench/maskbench_inprocess.py --cold`` measures that); returns how many were cleared
    (mutates process-wide state)."""
    n = 0
    for cache in list(_ALL):
        cache.clear()
        n += 1
    seen: set[int] = set()
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(_COMPILER_MODULES):
            continue
        for value in list(vars(mod).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and str(getattr(value, "__module__", "")).startswith(_COMPILER_MODULES) and id(value) not in seen:
                seen.add(id(value))
                clear()
                n += 1
    return n


class BoundedCache:
    """An insertion-ordered memo of at most ``max_entries`` entries and ``max_weight`` total
    ``weight(value)`` (None: unweighted); the oldest entries go first. ``put`` and the ``get``
    methods mutate or read it under one lock; values must not be mutated by their users."""

    def __init__(self, max_entries: int, max_weight: int | None = None, weight: Callable[[Any], int] | None = None):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weight = weight
        self._data: dict[Hashable, Any] = {}
        self._total = 0
        self._lock = threading.Lock()
        _ALL.add(self)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def total_weight(self) -> int:
        return self._total

    def clear(self) -> None:
        """Drop every entry (mutates)."""
        with self._lock:
            self._data.clear()
            self._total = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        with self._lock:
            return self._data.get(key, default)

    def put(self, key: Hashable, value: Any) -> Any:
        """Store ``value`` under ``key`` (replacing any) and evict the oldest entries past the
        bounds, never the new one; returns ``value`` (mutates)."""
        w = self._weight(value) if self._weight is not None else 0
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None and self._weight is not None:
                self._total -= self._weight(old)
            self._data[key] = value
            self._total += w
            while len(self._data) > 1 and (
                len(self._data) > self.max_entries or (self.max_weight is not None and self._total > self.max_weight)
            ):
                first = next(iter(self._data))
                gone = self._data.pop(first)
                if self._weight is not None:
                    self._total -= self._weight(gone)
        return value

    def get_for(self, obj: object, extra: Hashable = None) -> Any:
        """The value stored by :meth:`put_for` for this very object (and ``extra``), or None."""
        hit = self.get((id(obj), extra))
        if hit is not None and hit[0] is obj:
            return hit[1]
        return None

    def put_for(self, obj: object, value: Any, extra: Hashable = None) -> Any:
        """Store ``value`` for ``obj`` (keyed by its ``id`` and ``extra``; the entry holds ``obj``, so
        the ``id`` is not reused while it is stored); returns ``value`` (mutates)."""
        self.put((id(obj), extra), (obj, value))
        return value
