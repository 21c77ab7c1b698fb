"""Distinct keys in every JSON object, enforced at run time (``property_order="any"``).

Declared properties in any order, each at most once, is a permutation language: as a grammar it
needs a rule per subset of the properties (2**n). :func:`~constrain.schema.compile.compile_json_schema`
with ``property_order="any"`` writes instead a grammar that *counts* members (how many required,
optional and additional ones were written, see ``_Compiler.object_any_counted``) -- linear in the
number of properties -- and wraps it in :class:`DistinctKeysConstraint`, which refuses any token
that would close a key equal to an earlier key of the same object. With no key written twice the
counts are exact: all required properties are there exactly when the required count is reached.

The wrapper follows the JSON text with a small scanner (containers, keys, strings; its state is an
immutable value, part of the constraint state) and keeps the decoded keys of every open object
(``"\\u0041"`` equals ``"A"``). It also keeps the output from stranding: a token may not leave a key
whose every completion the grammar allows was written before (in a closed object, ``"na`` once
``"name"`` is there). That is checked on the grammar itself: from the state after the token, the
allowed next bytes are followed only while the key so far is still a prefix of an earlier key,
so the search is bounded by the length of the keys written (and by ``_MAX_SEARCH`` steps, past
which the key is taken as live). Where the additional keys are infinitely many a comma is never
stranded (the counting grammar allows one only where a member with a fresh key can follow); where
they are finitely many (``check_commas``: anchored ``patternProperties`` such as ``^name:(en|nl)$``)
the same search runs from the comma: it is refused when every key the grammar allows next was
written before.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from functools import lru_cache

import numpy as np

from constrain.compiled import CompiledConstraint
from constrain.schema.runtime_check import RuntimeCheckConstraint, per_vocabulary, tokens_spelling_prefixes
from constrain.schema.unique import _split_partial as split_partial_string

__all__ = ["DistinctKeysConstraint"]

_MAX_SEARCH = 4096  # grammar steps of one liveness search
_MAX_PLANS = 20_000  # cached per-scanner-state refusal plans (and liveness answers)

# Scanner state: (stack, mode, buf). stack: ("o", seen keys, expecting a key) / ("a",) frames;
# mode: 0 outside strings, 1 in a key, 2 in a value, 3 / 4 the same after a backslash;
# buf: the raw bytes of the key being written (else None).
_START = ((), 0, None)


class _Duplicate(Exception):
    pass


_REFUSED = object()  # a token's verdict: it closes a repeated key
_UNSEEN = object()


_NOT_PLAIN = re.compile(rb"[\x00-\x1f\\]")


def _plain_text(raw: bytes) -> str | None:
    """A JSON string body without escapes or control bytes that is whole UTF-8, as text (what
    JSON decoding gives it); None otherwise (decode it as JSON). Keys are mostly plain: this
    spares a ``json.loads`` per candidate token and per key byte searched."""
    if _NOT_PLAIN.search(raw) is not None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@lru_cache(maxsize=4096)
def _sorted_keys(keys: frozenset) -> tuple[str, ...]:
    return tuple(sorted(keys))


def _extends_a_key(keys: frozenset, text: str) -> bool:
    """Whether some key of ``keys`` starts with ``text`` (in a sorted list the keys that do follow
    ``text`` at once, so one bisection answers for an object of many keys)."""
    if len(keys) <= 4:
        return any(k.startswith(text) for k in keys)
    ks = _sorted_keys(keys)
    i = bisect_left(ks, text)
    return i < len(ks) and ks[i].startswith(text)


def _key_text(raw: bytes) -> str:
    """The key a complete JSON string body spells (``json.loads`` of it quoted; raises ValueError
    where that does)."""
    text = _plain_text(raw)
    return json.loads(b'"' + raw + b'"') if text is None else text


def _prefix_text(raw: bytes) -> str:
    """The complete characters of a JSON string body prefix (``split_partial_string(raw)[0]``)."""
    text = _plain_text(raw)
    if text is None and raw[-1:] == b"\\":
        text = _plain_text(raw[:-1])  # plain text, then an escape just begun (not a character yet)
    return split_partial_string(raw)[0] if text is None else text


def _scan(state: tuple, data: bytes) -> tuple:
    """The scanner state after ``data`` (raises _Duplicate when a key closes equal to an earlier
    key of its object). The grammar guarantees JSON, so only structure is tracked."""
    stack, mode, buf = state
    for b in data:
        if mode:
            if mode >= 3:
                mode -= 2
                if buf is not None:
                    buf += bytes((b,))
                continue
            if b == 0x5C:
                mode += 2
                if buf is not None:
                    buf += b"\\"
                continue
            if b != 0x22:
                if buf is not None:
                    buf += bytes((b,))
                continue
            if mode == 1:  # a key closes
                key = _key_text(buf)
                top = stack[-1]
                if key in top[1]:
                    raise _Duplicate
                stack = stack[:-1] + (("o", top[1] | {key}, False),)
            mode, buf = 0, None
            continue
        if b in b" \t\r\n":
            continue
        top = stack[-1] if stack else None
        if b == 0x22:
            if top is not None and top[0] == "o" and top[2]:
                mode, buf = 1, b""
            else:
                mode, buf = 2, None
        elif b == 0x7B:
            stack = stack + (("o", frozenset(), True),)
        elif b == 0x5B:
            stack = stack + (("a",),)
        elif b == 0x7D or b == 0x5D:
            stack = stack[:-1]
        elif b == 0x2C and top is not None and top[0] == "o":
            stack = stack[:-1] + (("o", top[1], True),)
    return stack, mode, buf


def _after_comma(state: tuple) -> bool:
    """Whether the scanner waits for the key of a further member of an object with keys."""
    stack, mode, _buf = state
    return mode == 0 and bool(stack) and stack[-1][0] == "o" and stack[-1][2] and bool(stack[-1][1])


def _needs_search(state: tuple, check_commas: bool = False) -> bool:
    """Whether the key being written is a prefix of an earlier key of its object (only then can
    it be stranded), or (``check_commas``) a comma waits for the next key."""
    stack, mode, buf = state
    if check_commas and _after_comma(state):
        return True
    if mode not in (1, 3) or not stack or not stack[-1][1]:
        return False
    return _extends_a_key(stack[-1][1], _prefix_text(buf))


class _TokenIndex:
    """The vocabulary's tokens indexed for :meth:`DistinctKeysConstraint._candidates` (built once
    per vocabulary, :func:`~constrain.schema.runtime_check.per_vocabulary`)."""

    def __init__(self, vocab):
        quotes = np.zeros(vocab.size, dtype=np.int64)
        # Quote tokens without a backslash, indexed by their parts around the quotes (see
        # _candidates): before the first quote, between two quotes, after the last quote (by the
        # parity of the quote count: the last quote opens a key only if that parity fits the mode)
        self.by_leading: dict[bytes, list[int]] = {}
        self.by_middle: dict[bytes, list[int]] = {}
        self.by_trailing: tuple[dict, dict] = ({}, {})  # [quote count % 2][part after the last quote]
        escaped = []
        slashes = []  # no quote, a backslash: inside a key they may start an escape of an earlier key
        for t in range(vocab.size):
            data = vocab.token_bytes(t)
            if data:
                quotes[t] = data.count(b'"')
                if not quotes[t]:
                    if b"\\" in data:
                        slashes.append(t)
                    continue
                if b"\\" in data:
                    escaped.append(t)
                    continue
                parts = data.split(b'"')
                self.by_leading.setdefault(parts[0], []).append(t)
                for mid in set(parts[1:-1]):
                    self.by_middle.setdefault(mid, []).append(t)
                self.by_trailing[int(quotes[t]) % 2].setdefault(parts[-1], []).append(t)
        self.quote_tokens = np.flatnonzero(quotes > 0)
        # a token that could close two keys by itself (three quotes or more: the end of the key
        # being written, then a whole key), and quote tokens with a backslash (escapes): always
        # scanned
        self.multi_key_tokens = np.flatnonzero(quotes >= 3)
        self.always = np.union1d(self.multi_key_tokens, np.asarray(escaped, dtype=np.int64))
        self.slash_tokens = np.asarray(slashes, dtype=np.int64)
        self.comma_tokens = np.asarray([t for t in range(vocab.size) if b"," in (vocab.token_bytes(t) or b"")],
                                       dtype=np.int64)



class DistinctKeysConstraint(RuntimeCheckConstraint):
    """A JSON grammar constraint whose objects may not repeat a key (see the module docstring).

    The state is ``(inner state, scanner state)``, both immutable. The mask is the inner one minus
    the tokens that close a repeated key or strand the key being written; it differs from the
    inner mask only while some open object has keys, and only on tokens with a quote or, inside
    a key, on tokens that continue an earlier key."""

    _scan_start = _START

    def __init__(self, inner: CompiledConstraint, check_commas: bool = False):
        super().__init__(inner)
        self.check_commas = check_commas
        self._plans: dict = {}  # scanner state -> _plan
        self._key_memo: dict = {}  # (quote parity, key bytes) -> _key_candidates
        self._spelled: dict = {}  # key -> its JSON spelling (bytes between the quotes)
        self._along_memo: dict = {}  # rest of an earlier key's spelling -> _tokens_along
        self._fresh_memo: dict = {}  # (inner state, scanner state) -> _fresh_completion
        self._ix = per_vocabulary(self.vocab, _TokenIndex)

    def __repr__(self) -> str:
        return f"DistinctKeysConstraint({self.inner!r})"

    def rewrap(self, inner: CompiledConstraint) -> DistinctKeysConstraint:
        """The same check over another inner constraint (e.g. the grammar under length bounds)."""
        return DistinctKeysConstraint(inner, self.check_commas)

    # -- scanning
    def _step(self, inner_state, scan_state: tuple, data: bytes, inner_after=None):
        """The scanner state after ``data``, or None when it repeats or strands a key.
        ``inner_after``: the inner state after ``data`` (computed when the key must be searched)."""
        try:
            out = _scan(scan_state, data)
        except _Duplicate:
            return None
        if _needs_search(out, self.check_commas):
            if inner_after is None:
                inner_after = self.inner.advance_bytes(inner_state, data)
            if inner_after is None or not self._fresh_completion(inner_after, out):
                return None
        return out

    def _fresh_completion(self, inner_state, scan_state: tuple) -> bool:
        """Whether the grammar lets the key being written end as a key its object does not have.
        Memoized per (inner state, scanner state): the tokens of one mask and the masks after
        them reach the same key prefix in the same grammar state again and again (a third of
        the searches on MaskBench's any-order tail files)."""
        key = (inner_state, scan_state)
        hit = self._fresh_memo.get(key)
        if hit is None:
            if len(self._fresh_memo) >= _MAX_PLANS:
                self._fresh_memo.clear()
            hit = self._fresh_memo[key] = self._search_fresh(inner_state, scan_state)
        return hit

    def _search_fresh(self, inner_state, scan_state: tuple) -> bool:
        """:meth:`_fresh_completion`, unmemoized: a depth-first search of the grammar's bytes."""
        stack, _mode, buf = scan_state
        seen = stack[-1][1]
        steps = 0
        inner = self.inner
        todo = [(inner_state, buf)]  # raw None: after a comma, before the next key's opening quote
        while todo:
            g, raw = todo.pop()
            escaped = raw is not None and (len(raw) - len(raw.rstrip(b"\\"))) % 2 == 1
            # bytes probed one at a time (not next_bytes, which probes them all): the first byte
            # that ends or leaves the earlier keys settles it
            for b in inner.candidate_bytes(g):
                if raw is None:
                    if b != 0x22 and b not in b" \t\r\n":
                        continue  # (only whitespace and the quote can follow the comma)
                elif b == 0x22 and not escaped and _key_text(raw) in seen:
                    continue  # closes an earlier key: a dead end whatever the grammar says
                g2 = inner.advance_bytes(g, bytes((b,)))
                if g2 is None:
                    continue
                steps += 1
                if steps > _MAX_SEARCH:
                    return True  # bounded: taken as live
                if raw is None:
                    todo.append((g2, b"" if b == 0x22 else None))
                    continue
                if b == 0x22 and not escaped:
                    return True  # closes a key the object does not have
                raw2 = raw + bytes((b,))
                if not _extends_a_key(seen, _prefix_text(raw2)):
                    return True  # no earlier key goes this way: whatever ends it is fresh
                todo.append((g2, raw2))
        return False

    def _candidates(self, scan_state: tuple) -> np.ndarray | None:
        """Token ids the scanner may refuse here (None: the inner mask stands): a superset of the
        tokens that close a key equal to an earlier one or end inside a key that is a prefix of
        an earlier one; :meth:`_plan` scans each exactly. Unsorted and possibly repeated (one
        concatenation, no set union: :meth:`_filtered` narrows it to the allowed ones first).

        A key closed inside a token without a backslash is, byte for byte, the part between two of
        its quotes, or (inside a key) the key so far plus the part before its first quote; a token
        ends inside a key only if its last quote opens one: an odd number of quotes outside strings,
        an even one inside a string, and the part after it is then the key so far. Tokens with
        three quotes or more or with a backslash are always scanned."""
        stack, mode, buf = scan_state
        ix = self._ix
        if not any(f[0] == "o" and f[1] for f in stack):
            # no key written yet in any open object: only a token holding two keys can repeat one
            return ix.multi_key_tokens if len(ix.multi_key_tokens) else None
        if mode >= 3 or (buf is not None and b"\\" in buf):
            return self._with_extra(scan_state, ix.quote_tokens)  # after a backslash: every quote token
        parity = 1 if mode == 0 else 0
        parts = [ix.always, np.asarray(ix.by_trailing[parity].get(b"", ()), dtype=np.int64)]
        found: list[int] = []
        for f in stack:
            if f[0] != "o":
                continue
            for k in f[1]:
                e = k.encode("utf-8")
                parts.append(self._key_candidates(parity, e))
                if mode == 1 and e.startswith(buf):
                    found.extend(ix.by_leading.get(e[len(buf):], ()))
        parts.append(np.asarray(found, dtype=np.int64))
        return self._with_extra(scan_state, np.concatenate(parts))

    def _key_candidates(self, parity: int, e: bytes) -> np.ndarray:
        """The quote tokens that can close key ``e`` between two of their quotes, or open a key
        that ``e`` continues after their last quote (of quote-count parity ``parity``), cached
        per key: the part of :meth:`_candidates` that does not depend on the key being written."""
        got = self._key_memo.get((parity, e))
        if got is None:
            ix = self._ix
            trailing = ix.by_trailing[parity]
            found = list(ix.by_middle.get(e, ()))
            for i in range(1, len(e) + 1):
                found.extend(trailing.get(e[:i], ()))
            got = np.asarray(found, dtype=np.int64)
            if len(self._key_memo) >= _MAX_PLANS:
                self._key_memo.clear()
            self._key_memo[(parity, e)] = got
        return got

    def _with_extra(self, scan_state: tuple, base: np.ndarray) -> np.ndarray:
        """``base`` plus, inside a key, the tokens without a quote that continue an earlier key,
        and (``check_commas``) every token with a comma."""
        stack, mode, buf = scan_state
        parts = [base]
        if self.check_commas and len(self._ix.comma_tokens):
            parts.append(self._ix.comma_tokens)
        extra: list[int] = []
        if mode in (1, 3) and stack[-1][1]:
            # inside a key: tokens without a quote matter only if they continue an earlier key
            for k in stack[-1][1]:
                spelled = self._spelled.get(k)
                if spelled is None:
                    spelled = self._spelled[k] = json.dumps(k, ensure_ascii=False).encode("utf-8")[1:-1]
                if spelled.startswith(buf):
                    extra.extend(self._tokens_along(spelled[len(buf):]))
            if len(self._ix.slash_tokens):
                parts.append(self._ix.slash_tokens)
        if extra:
            parts.append(np.asarray(extra, dtype=np.int64))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _tokens_along(self, rest: bytes) -> list[int]:
        """:func:`tokens_spelling_prefixes` of ``rest``, cached (the rest of an earlier key)."""
        got = self._along_memo.get(rest)
        if got is None:
            if len(self._along_memo) >= _MAX_PLANS:
                self._along_memo.clear()
            got = self._along_memo[rest] = tokens_spelling_prefixes(self.vocab, rest)
        return got

    def token_bits(self, state) -> np.ndarray:
        words = self.inner.token_bits(state[0])
        plan = self._plan(state[1])
        if plan is None:
            return words
        return self._mask_cache.get(state, lambda st: self._filtered(st, words, plan))

    def _plan(self, scan_state: tuple):
        """``(candidates, verdicts)`` for a scanner state, cached on it (the scanner state changes
        only when a key, a container or a string starts or ends, not with every token):
        ``candidates`` the tokens that may repeat a key or strand the key being written (int64
        array, see :meth:`_candidates`), ``verdicts`` their scans, filled as masks meet them
        (:meth:`_verdict`: only the candidates some inner mask allows are ever scanned). None
        when no token can be refused."""
        hit = self._plans.get(scan_state, False)
        if hit is not False:
            return hit
        candidates = self._candidates(scan_state)
        plan = (candidates, {}) if candidates is not None and len(candidates) else None
        if len(self._plans) >= _MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[scan_state] = plan
        return plan

    def _verdict(self, scan_state: tuple, t: int):
        """What token ``t`` does to the keys from ``scan_state``: ``_REFUSED`` (it closes a repeated
        key), the scanner state after it when it leaves a key that is a prefix of an earlier one
        (the grammar decides whether a fresh key can still end it), else None."""
        try:
            after = _scan(scan_state, self.vocab.token_bytes(t))
            return after if _needs_search(after, self.check_commas) else None
        except _Duplicate:
            return _REFUSED
        except ValueError:  # not JSON here (an invalid escape): the grammar refuses it
            return None

    def _filtered(self, state, words: np.ndarray, plan) -> np.ndarray:
        candidates, verdicts = plan
        allowed = candidates[((words[candidates >> 5] >> (candidates & 31).astype(np.uint32)) & 1) != 0]
        out = words
        for t in np.unique(allowed).tolist():
            v = verdicts.get(t, _UNSEEN)
            if v is _UNSEEN:
                v = verdicts[t] = self._verdict(state[1], t)
            if v is None:
                continue
            if v is not _REFUSED:
                g = self.inner.advance_token(state[0], t)
                if g is not None and self._fresh_completion(g, v):
                    continue
            if out is words:
                out = words.copy()
            out[t >> 5] &= ~np.uint32(1 << (t & 31))
        return out  # (the inner mask itself when nothing is refused: read-only, shared)

    def clear_cache(self) -> None:
        super().clear_cache()
        for memo in (self._plans, self._key_memo, self._spelled, self._along_memo):
            memo.clear()
