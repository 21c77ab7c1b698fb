"""Sets of Unicode scalar values as sorted range lists, and their UTF-8 byte-range encodings.

A *range set* is a tuple of disjoint, non-adjacent, sorted ``(lo, hi)`` pairs (both inclusive) of code
points. Surrogates (U+D800..U+DFFF) are never members: they have no UTF-8 encoding, so a DFA built
from these sets never accepts them.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache
from typing import Iterable

MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)

Ranges = tuple[tuple[int, int], ...]

# ASCII character categories, the same sets as Python's ``re`` with ``re.ASCII``.
DIGIT: Ranges = ((0x30, 0x39),)
WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
SPACE: Ranges = ((0x09, 0x0D), (0x20, 0x20))


def normalize(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Return the canonical range set of the union of ``ranges``, without surrogates."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    result: list[tuple[int, int]] = []
    s_lo, s_hi = SURROGATES
    for lo, hi in out:
        if hi < s_lo or lo > s_hi:
            result.append((lo, hi))
            continue
        if lo < s_lo:
            result.append((lo, s_lo - 1))
        if hi > s_hi:
            result.append((s_hi + 1, hi))
    return tuple(result)


def complement(ranges: Ranges) -> Ranges:
    """Return all Unicode scalar values (surrogates excluded) that are not in ``ranges``."""
    out = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_CODE_POINT:
        out.append((nxt, MAX_CODE_POINT))
    return normalize(out)


def contains(ranges: Ranges, cp: int) -> bool:
    """Return whether code point ``cp`` is in the range set."""
    i = bisect_right(ranges, (cp, MAX_CODE_POINT + 1)) - 1
    return i >= 0 and ranges[i][0] <= cp <= ranges[i][1]


@lru_cache(maxsize=1)
def _case_classes() -> tuple[tuple[int, ...], ...]:
    """Return the classes of code points equal under simple (one-character) lower/upper mapping.

    These are exactly the classes ``re.IGNORECASE`` (without ``re.ASCII``) treats as equal.

    Every code point with a one-character case mapping is below U+1F000 (Unicode 15: the last is
    U+1E943), so scanning up to U+20000 costs ~25 ms once instead of ~0.5 s for the whole range.
    """
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for cp in range(0x20000):
        if SURROGATES[0] <= cp <= SURROGATES[1]:
            continue
        c = chr(cp)
        # U+0130 is the one character whose full lowercase ("i" + U+0307) differs in length from
        # its simple lowercase "i"; ``re`` uses the simple one, so we do too.
        for other in (c.lower() if cp != 0x130 else "i", c.upper()):
            if len(other) == 1 and other != c:
                a, b = find(cp), find(ord(other))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for cp in list(parent):
        groups.setdefault(find(cp), []).append(cp)
    for root, members in groups.items():
        if root not in members:
            members.append(root)
    return tuple(tuple(sorted(m)) for m in groups.values() if len(m) > 1)


@lru_cache(maxsize=1)
def _case_class_of() -> dict[int, tuple[int, ...]]:
    return {cp: members for members in _case_classes() for cp in members}


@lru_cache(maxsize=4096)
def case_closure(ranges: Ranges) -> Ranges:
    """Return ``ranges`` plus every code point equal to a member under simple case mapping."""
    if not ranges:
        return ranges
    extra: list[tuple[int, int]] = []
    if sum(hi - lo + 1 for lo, hi in ranges) <= 4096:
        class_of = _case_class_of()
        for lo, hi in ranges:
            for cp in range(lo, hi + 1):
                members = class_of.get(cp)
                if members:
                    extra.extend((m, m) for m in members)
    else:
        for members in _case_classes():
            if any(contains(ranges, cp) for cp in members):
                extra.extend((cp, cp) for cp in members)
    return normalize(list(ranges) + extra) if extra else ranges


_UTF8_MAX = (0x7F, 0x7FF, 0xFFFF)


def _encode(cp: int) -> bytes:
    return chr(cp).encode("utf-8", "surrogatepass")


@lru_cache(maxsize=4096)
def utf8_sequences(ranges: Ranges) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Return byte-range sequences whose concatenations are exactly the UTF-8 encodings of ``ranges``.

    Each sequence is a tuple of ``(lo, hi)`` byte ranges, one per byte of the encoding; the sequences
    are disjoint (the same algorithm as Rust's ``utf8-ranges``).
    """
    out: list[tuple[tuple[int, int], ...]] = []
    for lo, hi in ranges:
        stack = [(lo, hi)]
        while stack:
            s, e = stack.pop()
            split = False
            for mx in _UTF8_MAX:
                if s <= mx < e:
                    stack.append((mx + 1, e))
                    stack.append((s, mx))
                    split = True
                    break
            if split:
                continue
            if e <= 0x7F:
                out.append(((s, e),))
                continue
            n = len(_encode(s))
            for i in range(1, n):
                m = (1 << (6 * i)) - 1
                if s & ~m != e & ~m:
                    if s & m != 0:
                        stack.append(((s | m) + 1, e))
                        stack.append((s, s | m))
                        split = True
                        break
                    if e & m != m:
                        stack.append((e & ~m, e))
                        stack.append((s, (e & ~m) - 1))
                        split = True
                        break
            if split:
                continue
            out.append(tuple(zip(_encode(s), _encode(e))))
    return tuple(out)
