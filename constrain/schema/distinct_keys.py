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
                key = json.loads(b'"' + buf + b'"')
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
    text, _partial = split_partial_string(buf)
    return any(k.startswith(text) for k in stack[-1][1])


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
                elif b == 0x22 and not escaped and json.loads(b'"' + raw + b'"') in seen:
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
                text, _partial = split_partial_string(raw2)
                if not any(k.startswith(text) for k in seen):
                    return True  # no earlier key goes this way: whatever ends it is fresh
                todo.append((g2, raw2))
        return False

    def _candidates(self, scan_state: tuple) -> np.ndarray | None:
        """Token ids the scanner may refuse here (None: the inner mask stands): a superset of the
        tokens that close a key equal to an earlier one or end inside a key that is a prefix of
        an earlier one; :meth:`_plan` scans each exactly.

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
        seen = [k.encode("utf-8") for f in stack if f[0] == "o" for k in f[1]]
        trailing = ix.by_trailing[1 if mode == 0 else 0]
        found: list[int] = []
        for e in seen:
            found.extend(ix.by_middle.get(e, ()))
            for i in range(len(e) + 1):
                found.extend(trailing.get(e[:i], ()))
            if mode == 1 and e.startswith(buf):
                found.extend(ix.by_leading.get(e[len(buf):], ()))
        return self._with_extra(scan_state, np.union1d(ix.always, np.asarray(found, dtype=np.int64)))

    def _with_extra(self, scan_state: tuple, base: np.ndarray) -> np.ndarray:
        """``base`` plus, inside a key, the tokens without a quote that continue an earlier key,
        and (``check_commas``) every token with a comma."""
        stack, mode, buf = scan_state
        if self.check_commas and len(self._ix.comma_tokens):
            base = np.union1d(base, self._ix.comma_tokens)
        extra: list[int] = []
        if mode in (1, 3) and stack[-1][1]:
            # inside a key: tokens without a quote matter only if they continue an earlier key
            for k in stack[-1][1]:
                spelled = json.dumps(k, ensure_ascii=False).encode("utf-8")[1:-1]
                if spelled.startswith(buf):
                    extra.extend(tokens_spelling_prefixes(self.vocab, spelled[len(buf):]))
            if len(self._ix.slash_tokens):
                base = np.union1d(base, self._ix.slash_tokens)
        if not extra:
            return base
        return np.union1d(base, np.asarray(extra, dtype=np.int64))

    def token_bits(self, state) -> np.ndarray:
        words = self.inner.token_bits(state[0])
        plan = self._plan(state[1])
        if plan is None:
            return words
        return self._mask_cache.get(state, lambda st: self._filtered(st, words, plan))

    def _plan(self, scan_state: tuple):
        """``(refused, to_search)`` for a scanner state, cached on it (the scanner state changes
        only when a key, a container or a string starts or ends, not with every token):
        ``refused`` the candidate tokens that repeat a key whatever the grammar allows (int64
        array), ``to_search`` those that leave a key prefix of an earlier key (the grammar decides
        whether a fresh key can still end it). None when no token can be refused."""
        hit = self._plans.get(scan_state, False)
        if hit is not False:
            return hit
        candidates = self._candidates(scan_state)
        plan = None
        if candidates is not None and len(candidates):
            refused, to_search = [], []
            for t in candidates.tolist():
                try:
                    after = _scan(scan_state, self.vocab.token_bytes(t))
                    search = _needs_search(after, self.check_commas)
                except _Duplicate:
                    refused.append(t)
                    continue
                except ValueError:  # not JSON here (an invalid escape): the grammar refuses it
                    continue
                if search:
                    to_search.append((t, after))
            if refused or to_search:
                plan = (np.asarray(refused, dtype=np.int64), tuple(to_search))
        if len(self._plans) >= _MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[scan_state] = plan
        return plan

    def _filtered(self, state, words: np.ndarray, plan) -> np.ndarray:
        refused, to_search = plan
        out = words.copy()
        if len(refused):
            np.bitwise_and.at(out, refused >> 5, ~(np.uint32(1) << (refused & 31).astype(np.uint32)))
        for t, after in to_search:
            if not (words[t >> 5] >> np.uint32(t & 31)) & 1:
                continue
            g = self.inner.advance_token(state[0], t)
            if g is None or not self._fresh_completion(g, after):
                out[t >> 5] &= ~np.uint32(1 << (t & 31))
        return out

    def clear_cache(self) -> None:
        super().clear_cache()
        self._plans.clear()
