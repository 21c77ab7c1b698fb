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
    """The tokens the constraint forces next (``Matcher.forced_tokens``), as a zero-cost draft.

    Forced *bytes* may have several tokenizations, so these are proposals, not commitments: the
    verifier keeps the output exact (spec 4c, "cleanest composition").
    """

    name = "forced"

    def __init__(self, confidence: float = 1.0):
        self.confidence = confidence

    def extend(self, builder: DraftBuilder) -> None:
        for t in builder.matcher.forced_tokens():
            if not builder.add(t, self.name, self.confidence):
                return


class PromptLookupDrafter(Drafter):
    """Prompt lookup / n-gram drafts from the context (prompt + generated + draft so far).

    1. Token n-grams: the most recent earlier occurrence of the longest suffix of ``min_ngram ..
       max_ngram`` tokens; propose the tokens that followed it.
    2. Bytes, when no token n-gram gives a valid first token: the longest suffix (``min_bytes ..
       max_bytes``) of the context's text found earlier in it; the text that followed is
       tokenized (the tokenizer when given, else greedy longest vocabulary tokens) and proposed.
       This catches copies whose token boundaries differ from the prompt's (``"Ada`` vs `` Ada``).
    """

    name = "lookup"

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1, min_bytes: int = 3, max_bytes: int = 32,
                 span_bytes: int = 48):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.min_bytes, self.max_bytes, self.span_bytes = min_bytes, max_bytes, span_bytes
        self._token_text: dict[int, bytes] = {}

    def start(self, target_model: Any, vocab: Vocabulary) -> None:
        self._vocab = vocab

    def _token_proposal(self, ids: list[int], k: int) -> list[int]:
        arr = np.asarray(ids, dtype=np.int64)
        n_ids = len(ids)
        if n_ids < 2:
            return []
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
            return []
        return ids[best_pos + 1 : best_pos + 1 + k]

    def _text(self, vocab: Vocabulary, ids: list[int]) -> bytes:
        parts = []
        for t in ids:
            b = self._token_text.get(t)
            if b is None:
                b = vocab.token_bytes(t) or b"\x00"
                self._token_text[t] = b
            parts.append(b)
        return b"".join(parts)

    def _byte_proposal(self, builder: DraftBuilder, k: int) -> list[int]:
        text = self._text(builder.vocab, builder.context)
        n = len(text)
        for length in range(min(self.max_bytes, n - 1), self.min_bytes - 1, -1):
            suffix = text[n - length :]
            at = text.rfind(suffix, 0, n - 1)
            if at < 0:
                continue
            follow = text[at + length : at + length + self.span_bytes]
            if not follow or b"\x00" in follow[:1]:
                return []
            follow = follow.split(b"\x00", 1)[0]
            return self._tokenize(builder, follow)[:k]
        return []

    def _tokenize(self, builder: DraftBuilder, data: bytes) -> list[int]:
        tok = builder.tokenizer
        if tok is not None:
            try:
                ids = list(tok.encode(data.decode("utf-8", errors="ignore"), add_special_tokens=False))
            except Exception:  # pragma: no cover - unusual tokenizer
                ids = None
            if ids:
                return ids[:-1] if len(ids) > 1 else ids  # the last token may be cut mid-word
        trie = builder.vocab.trie
        out, pos = [], 0
        while pos < len(data):
            t, length = trie.longest_token_prefix(data[pos:])
            if t < 0:
                break
            out.append(t)
            pos += length
        return out[:-1] if len(out) > 1 else out

    def extend(self, builder: DraftBuilder) -> None:
        k = builder.max_draft - len(builder.tokens)
        if k <= 0:
            return
        rate = builder.rate(self.name)
        proposal = self._token_proposal(builder.context, k)
        if not proposal or not builder.matcher.is_token_allowed(proposal[0]):
            proposal = self._byte_proposal(builder, k)
        for t in proposal:
            if not builder.add(t, self.name, rate):
                return


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
