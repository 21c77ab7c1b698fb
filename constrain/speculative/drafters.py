"""Drafters: cheap proposals of the next tokens, pre-filtered by the constraint.

Every drafter writes into a :class:`DraftBuilder`, which owns a *copy* of the committed matcher and
advances it by each proposed token: a token the constraint rejects ends the draft (deterministic
drafters: exact, spec 4b) and never reaches the verifier; the model drafter samples from the
*masked* draft distribution q', so it never proposes an invalid token at all.

Each token carries ``q``: ``None`` for a deterministic proposal (one-hot q: prompt lookup, forced
tokens, argmax drafts) or the exact masked draft distribution it was sampled from (stochastic model
drafts). It also carries a predicted acceptance probability, which drives the adaptive draft
length (see :class:`DraftBuilder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from constrain.kernels.bitmask import allocate_bitmask, bitmask_to_bool
from constrain.matcher import Matcher
from constrain.vocab.vocabulary import Vocabulary


class DraftBuilder:
    """One step's draft: tokens, their q, their source, and the masks computed on the way.

    Adaptive length (SpecDec++-style stopping rule): each added token j comes with a predicted
    acceptance probability ``a_j``; the builder stops the draft as soon as the predicted chance of
    at least one rejection, ``1 - prod(a_1..a_j)``, exceeds ``stop_threshold``. Drafters set
    ``a_j = 1`` where the constraint leaves a single choice (mask width 1), the draft model's
    masked confidence ``q'(x_j)`` otherwise, and for lookup/forced drafts the running acceptance
    rate their source has had so far in this generation. The draft also ends at ``max_draft``
    tokens, at EOS, and at the first token the constraint rejects.
    """

    def __init__(
        self,
        ids: Sequence[int],
        prompt_len: int,
        matcher: Matcher,
        vocab: Vocabulary,
        max_draft: int,
        stop_threshold: float,
        temperature: float,
        rng: np.random.Generator,
        rates: dict[str, float],
        tokenizer: Any = None,
    ):
        self.ids = list(ids)
        self.prompt_len = prompt_len
        self.matcher = matcher
        self.vocab = vocab
        self.max_draft = max_draft
        self.stop_threshold = stop_threshold
        self.temperature = temperature
        self.rng = rng
        self.rates = rates
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.q: list[np.ndarray | None] = []
        self.sources: list[str] = []
        self.masks: dict[int, np.ndarray] = {}  # draft position -> bool[V] mask of the state there
        self.survive = 1.0
        self.stopped = max_draft <= 0

    @property
    def context(self) -> list[int]:
        return self.ids + self.tokens

    @property
    def room(self) -> bool:
        return not self.stopped and len(self.tokens) < self.max_draft

    def rate(self, source: str) -> float:
        return self.rates.get(source, 0.7)

    def current_mask(self) -> np.ndarray:
        """bool[V] mask of the draft's current state (computed once per position, reused by the verifier)."""
        pos = len(self.tokens)
        mask = self.masks.get(pos)
        if mask is None:
            bm = allocate_bitmask(1, self.vocab.size)
            self.matcher.fill_bitmask(bm, 0)
            mask = bitmask_to_bool(bm[0], self.vocab.size)
            self.masks[pos] = mask
        return mask

    def add(self, token: int, source: str, accept_prob: float, q: np.ndarray | None = None) -> bool:
        """Append ``token`` if there is room and the constraint allows it; False ends this drafter's run."""
        if not self.room:
            return False
        token = int(token)
        if not self.matcher.accept_token(token):
            return False  # pre-filter: truncate a deterministic draft at its first invalid token
        self.tokens.append(token)
        self.q.append(q)
        self.sources.append(source)
        self.survive *= min(max(float(accept_prob), 0.0), 1.0)
        if 1.0 - self.survive > self.stop_threshold or self.vocab.is_eos(token):
            self.stopped = True
        return True


class Drafter:
    """Base class: ``extend(builder)`` appends proposals; ``start`` is called once per generation."""

    name = "drafter"

    def start(self, target_model: Any, vocab: Vocabulary) -> None:  # noqa: B027 - optional hook
        pass

    def extend(self, builder: DraftBuilder) -> None:
        raise NotImplementedError


class ForcedDrafter(Drafter):
    """The bytes the constraint forces next, tokenized, as a zero-cost draft.

    All forced bytes are tokenized (the tokenizer's encoding when one is given, else greedy
    longest tokens), also where a token could span past them (``Matcher.forced_tokens`` stops
    there): forced bytes may have several tokenizations, so these are proposals, not commitments,
    and the verifier keeps the output exact (spec 4c, "cleanest composition").
    """

    name = "forced"

    def __init__(self, confidence: float = 1.0, learn_whitespace: bool = True, max_bytes: int = 64):
        self.confidence = confidence
        self.learn_whitespace = learn_whitespace
        self.max_bytes = max_bytes

    def extend(self, builder: DraftBuilder) -> None:
        m = builder.matcher
        if m.is_terminated():
            return
        forced = self._forced(builder) if self.learn_whitespace else m.constraint.forced_bytes(m.state)
        if not forced:
            return
        for t in _tokenize(builder, forced, drop_last=False):
            if not builder.add(t, self.name, self.confidence):
                return

    def _forced(self, builder: DraftBuilder) -> bytes:
        """Forced bytes, continued across optional whitespace in the output's own style.

        Where the constraint forces nothing only because whitespace may come next (flexible JSON
        whitespace: ``,`` then ``\n  "key"`` or ``"key"``), the whitespace the output wrote after
        the same byte last time (possibly none) is assumed; if exactly one non-whitespace byte can
        follow it, it is drafted and forcing continues from there. A guess about style, never about
        validity: every drafted byte keeps the output valid, and the verifier judges the tokens.
        """
        c, state = builder.matcher.constraint, builder.matcher.state
        text = None
        out = bytearray()
        while len(out) < self.max_bytes:
            f = c.forced_bytes(state)
            if f:
                nxt = c.advance_bytes(state, f)
                if nxt is None:  # pragma: no cover - forced bytes always continue the state
                    break
                out += f
                state = nxt
                continue
            if c.is_accepting(state):
                break
            if text is None:
                vocab = builder.vocab
                text = b"".join(vocab.token_bytes(t) or b"" for t in builder.ids[builder.prompt_len:] + builder.tokens)
            ws = _style_whitespace(text + bytes(out))
            if ws is None:
                break
            after_ws = c.advance_bytes(state, ws) if ws else state
            if after_ws is None:
                break
            nb = c.next_bytes(after_ws, exclude=_WS_BYTES, stop_after=2)
            if len(nb) != 1:
                out += ws  # the style's whitespace, then the model chooses (": " before a value)
                break
            nxt = c.advance_bytes(after_ws, bytes(nb))
            if nxt is None:  # pragma: no cover - next_bytes checked it
                break
            out += ws + bytes(nb)
            state = nxt
        return bytes(out[: self.max_bytes])


_WS_BYTES = b" \t\n\r"


def _style_whitespace(text: bytes) -> bytes | None:
    """The whitespace ``text`` wrote after its last byte the previous time that byte occurred
    (followed by a non-whitespace byte); None when ``text`` ends in whitespace or has no such
    earlier occurrence."""
    if not text or text[-1] in _WS_BYTES:
        return None
    last = text[-1]
    i = text.rfind(bytes((last,)), 0, len(text) - 1)
    while i >= 0:
        j = i + 1
        while j < len(text) - 1 and text[j] in _WS_BYTES:
            j += 1
        if j < len(text) and text[j] not in _WS_BYTES:
            return text[i + 1:j]
        i = text.rfind(bytes((last,)), 0, i)
    return None


class PromptLookupDrafter(Drafter):
    """Prompt lookup / n-gram drafts from the context (prompt + generated + draft so far).

    Two matchers; the one with the longer match (in bytes) proposes, the other is the fallback
    when the first proposed token is invalid:

    1. Token n-grams: the most recent earlier occurrence of the longest suffix of ``min_ngram ..
       max_ngram`` tokens; propose the tokens that followed it.
    2. Text, punctuation-insensitive: the context's text with every run of non-alphanumeric bytes
       collapsed to one space; the longest suffix (``min_chars .. max_chars``) found earlier in it
       locates the source, and the original text that follows the match there (after its
       separator, when the suffix ends in one) is tokenized and proposed. This catches copies whose
       token boundaries or punctuation differ from the prompt's: ``"name": "A`` continues like
       ``name Ada Lovelace; born`` does (``da Lovelace; born``), ``"born": "`` like ``born 1815-12-10``.
       When no suffix occurs earlier in the context, the same search runs over the constraint's
       own literals (``CompiledConstraint.literals()``: literal terminals, JSON property names and
       string enum values; ``literals=False`` turns this off): ``{"sta`` continues as ``tus"``.
    Proposals are cut at the first token the constraint rejects (and by the draft length rule).
    """

    name = "lookup"

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1, min_chars: int = 2, max_chars: int = 32,
                 span_bytes: int = 48, literals: bool = True):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.min_chars, self.max_chars, self.span_bytes = min_chars, max_chars, span_bytes
        self.literals = literals
        self._token_text: dict[int, bytes] = {}
        self._corpus: tuple = (None, b"", b"", [])  # (constraint, raw, normalized, ends)

    def _token_proposal(self, ids: list[int], k: int, vocab: Vocabulary) -> tuple[int, list[int]]:
        arr = np.asarray(ids, dtype=np.int64)
        n_ids = len(ids)
        if n_ids < 2:
            return 0, []
        cands = np.flatnonzero(arr[:-1] == arr[-1])  # earlier positions holding the last token
        best_len, best_pos = 0, -1
        for pos in cands[::-1]:  # most recent first
            m = 1
            while m < self.max_ngram and pos - m >= 0 and arr[pos - m] == arr[n_ids - 1 - m]:
                m += 1
            if m > best_len:
                best_len, best_pos = m, int(pos)
                if m >= self.max_ngram:
                    break
        if best_len < self.min_ngram:
            return 0, []
        n_bytes = len(self._text(vocab, ids[n_ids - best_len :]))
        return n_bytes, ids[best_pos + 1 : best_pos + 1 + k]

    def _text(self, vocab: Vocabulary, ids: list[int]) -> bytes:
        parts = []
        for t in ids:
            b = self._token_text.get(t)
            if b is None:
                b = vocab.token_bytes(t) or b"\x00"
                self._token_text[t] = b
            parts.append(b)
        return b"".join(parts)

    @staticmethod
    def _normalize(text: bytes) -> tuple[bytes, list[int]]:
        """Non-alphanumeric runs -> one space; ``ends[i]`` = original offset just after normalized byte i."""
        out = bytearray()
        ends: list[int] = []
        for i, c in enumerate(text):
            if c >= 0x80 or 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122:
                out.append(c)
                ends.append(i + 1)
            elif out and out[-1] == 32:
                ends[-1] = i + 1  # the separator run extends
            else:
                out.append(32)
                ends.append(i + 1)
        return bytes(out), ends

    def _text_proposal(self, builder: DraftBuilder, k: int) -> tuple[int, list[int]]:
        text = self._text(builder.vocab, builder.context)
        norm, ends = self._normalize(text)
        found = self._find(norm, ends, text, norm, len(norm) - 1)  # earlier in the context
        if found is None and self.literals:  # else in the constraint's literals
            _, raw_c, norm_c, ends_c = self._literal_corpus(builder)
            if norm_c:
                found = self._find(norm_c, ends_c, raw_c, norm, len(norm_c))
        if not found or not found[1]:
            return 0, []
        return found[0], self._tokenize(builder, found[1])[:k]

    def _find(self, hay_norm: bytes, hay_ends: list[int], hay_raw: bytes, src_norm: bytes, limit: int):
        """(match length, original bytes after the match up to a NUL) for the longest suffix of
        ``src_norm`` (``min_chars .. max_chars``) found in ``hay_norm[:limit]`` (most recent
        occurrence); None when no suffix occurs."""
        n = len(src_norm)
        for length in range(min(self.max_chars, n - 1), self.min_chars - 1, -1):
            suffix = src_norm[n - length :]
            if not suffix.strip():
                continue
            at = hay_norm.rfind(suffix, 0, limit)
            if at < 0:
                continue
            start = hay_ends[at + length - 1]
            return length, hay_raw[start : start + self.span_bytes].split(b"\x00", 1)[0]
        return None

    def _literal_corpus(self, builder: DraftBuilder) -> tuple:
        """The constraint's literals (``CompiledConstraint.literals``), NUL-separated, normalized
        like the context; built once per constraint."""
        c = builder.matcher.constraint
        if self._corpus[0] is not c:
            lits = c.literals()
            raw = b"".join(lit + b"\x00" for lit in lits)
            norm, ends = self._normalize(raw)
            self._corpus = (c, raw, norm, ends)
        return self._corpus

    def _tokenize(self, builder: DraftBuilder, data: bytes) -> list[int]:
        return _tokenize(builder, data, drop_last=True)

    def extend(self, builder: DraftBuilder) -> None:
        k = builder.max_draft - len(builder.tokens)
        if k <= 0:
            return
        rate = builder.rate(self.name)
        cands = [self._token_proposal(builder.context, k, builder.vocab), self._text_proposal(builder, k)]
        cands.sort(key=lambda c: -c[0])
        for _, proposal in cands:
            if proposal and builder.matcher.is_token_allowed(proposal[0]):
                for t in proposal:
                    if not builder.add(t, self.name, rate):
                        return
                return


def _tokenize(builder: DraftBuilder, data: bytes, drop_last: bool) -> list[int]:
    """Token ids of ``data``: the tokenizer's when the builder has one, else greedy longest tokens.

    ``drop_last``: ``data`` is cut from a longer text, so its last token may be cut mid-word.
    """
    tok = builder.tokenizer
    ids: list[int] | None = None
    if tok is not None:
        try:
            ids = [int(t) for t in tok.encode(data.decode("utf-8", errors="ignore"), add_special_tokens=False)]
        except Exception:  # pragma: no cover - unusual tokenizer
            ids = None
    if not ids:
        trie = builder.vocab.trie
        ids, pos = [], 0
        while pos < len(data):
            t, length = trie.longest_token_prefix(data[pos:])
            if t < 0:
                break
            ids.append(t)
            pos += length
    return ids[:-1] if drop_last and len(ids) > 1 else ids


class ModelDrafter(Drafter):
    """Drafts from a draft model sharing the target's tokenizer (its own KV cache).

    Each draft token is drawn from the *masked* draft distribution q' (argmax of it when greedy,
    one-hot q); the masks are the ones the verifier needs at the same positions, so they are
    computed once. Pass a ``transformers`` model or a function ``prefix -> logits``.
    """

    def __init__(self, model: Any, name: str = "model"):
        self.model = model
        self.name = name
        self.lm: Any = None

    def _draft_lm(self, target_model: Any) -> Any:
        return self.model

    def start(self, target_model: Any, vocab: Vocabulary) -> None:
        from constrain.speculative.models import as_lm

        self.lm = as_lm(self._draft_lm(target_model))

    def extend(self, builder: DraftBuilder) -> None:
        from constrain.errors import VocabularyError

        vsize = builder.vocab.size
        while builder.room:
            mask = builder.current_mask()
            allowed = np.flatnonzero(mask)
            if len(allowed) == 0:
                raise VocabularyError("no token of the vocabulary can continue the draft")
            if len(allowed) == 1:  # the constraint decides: no draft forward needed
                if not builder.add(int(allowed[0]), self.name, 1.0):
                    return
                continue
            logits = self.lm.logits(builder.context, 1)[0][:vsize]
            masked = np.where(mask, logits, -np.inf)
            if builder.temperature <= 0:
                x = int(np.argmax(masked.astype(np.float32)))
                z = masked - masked[x]
                conf = 1.0 / float(np.exp(z).sum())
                ok = builder.add(x, self.name, conf)
            else:
                z = masked / builder.temperature
                z = np.exp(z - z.max())
                q = z / z.sum()
                x = int(builder.rng.choice(vsize, p=q))
                ok = builder.add(x, self.name, float(q[x]), q)
            if not ok:
                return


class LayerSkipDrafter(ModelDrafter):
    """Self-speculative draft: the target's first ``n_layers`` decoder layers + final norm + LM head.

    Built with :func:`constrain.speculative.models.layer_skip_model` (shared weights, its own KV
    cache of ``n_layers`` layers). Llama-family models only (``model.model.layers``).
    """

    def __init__(self, n_layers: int, name: str | None = None):
        super().__init__(None, name or f"layer_skip_{n_layers}")
        self.n_layers = n_layers

    def _draft_lm(self, target_model: Any) -> Any:
        from constrain.speculative.models import CachedLM, layer_skip_model

        model = target_model.model if isinstance(target_model, CachedLM) else target_model
        return layer_skip_model(model, self.n_layers)


class Chain(Drafter):
    """Drafters taking turns until none adds a token (e.g. forced bytes, then a lookup, then forced...)."""

    def __init__(self, drafters: Sequence[Drafter]):
        self.drafters = list(drafters)
        self.name = "+".join(d.name for d in self.drafters)

    def start(self, target_model: Any, vocab: Vocabulary) -> None:
        for d in self.drafters:
            d.start(target_model, vocab)

    def extend(self, builder: DraftBuilder) -> None:
        while builder.room:
            before = len(builder.tokens)
            for d in self.drafters:
                if not builder.room:
                    break
                d.extend(builder)
            if len(builder.tokens) == before:
                return
