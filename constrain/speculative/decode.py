"""The speculative decoding loop (batch 1): draft, verify in one target forward, commit, roll back.

One step (spec 4b):

1. the drafter proposes up to ``max_draft`` tokens, advancing a copy of the committed matcher;
2. ONE target forward over ``[last committed token] + drafts`` (the KV cache holds the rest) gives
   logits at every draft position and the bonus position;
3. position j is judged against the *masked* target p'_j (mask of the state after drafts[:j]):
   greedy accepts iff the draft is the masked argmax; sampling accepts with ``min(1, p'(x)/q(x))``
   (``p'(x)`` for one-hot q) and otherwise samples the residual ``max(p' - q, 0)``; if all pass, a
   bonus token is sampled from p' at the next position;
4. the committed matcher accepts exactly the emitted tokens, and the target's KV cache is cropped to
   the committed sequence minus its newest token (which is fed with the next step's drafts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from constrain.decode import GenerationResult, IncompleteGenerationError
from constrain.errors import VocabularyError
from constrain.kernels.bitmask import allocate_bitmask, bitmask_to_bool
from constrain.matcher import Matcher
from constrain.speculative.drafters import DraftBuilder, Drafter
from constrain.speculative.models import as_lm
from constrain.vocab.vocabulary import Vocabulary


@dataclass
class SpeculativeResult(GenerationResult):
    """:class:`GenerationResult` plus ``speculative``: per-drafter and per-step statistics."""

    speculative: dict = field(default_factory=dict)


@dataclass
class StepInfo:
    """What one step did (passed to ``on_step``; for tests and tracing)."""

    draft: list[int]
    sources: list[str]
    accepted: int  # drafts accepted
    emitted: list[int]  # tokens committed this step (accepted drafts + residual/bonus), EOS included
    matcher: Matcher  # the committed matcher (do not mutate)
    committed: list[int]  # all tokens committed so far (EOS included)
    prompt_len: int
    target: Any  # the target LM adapter (``cache_length``; batched: the row's attended cache positions)
    row: int = 0  # row of the batch (``speculative_decode_batch``)


class _Stats:
    def __init__(self, ema: float = 0.1, prior: float = 0.7):
        self.ema, self.prior = ema, prior
        self.rates: dict[str, float] = {}
        self.per: dict[str, dict[str, float]] = {}
        self.steps = 0
        self.accepted_lengths: list[int] = []

    def record(self, sources: list[str], accepted: int) -> None:
        self.steps += 1
        self.accepted_lengths.append(accepted)
        seen: set[str] = set()
        for j, s in enumerate(sources):
            d = self.per.setdefault(s, {"steps": 0, "drafted": 0, "judged": 0, "accepted": 0})
            if s not in seen:
                d["steps"] += 1
                seen.add(s)
            d["drafted"] += 1
            if j <= accepted:
                hit = j < accepted
                d["judged"] += 1
                d["accepted"] += hit
                r = self.rates.get(s, self.prior)
                self.rates[s] = (1 - self.ema) * r + self.ema * float(hit)

    def summary(self) -> dict:
        per = {}
        for s, d in self.per.items():
            per[s] = dict(d, mean_accepted_per_step=d["accepted"] / max(d["steps"], 1),
                          acceptance_rate=d["accepted"] / max(d["judged"], 1))
        n = max(self.steps, 1)
        return {
            "steps": self.steps,
            "mean_accepted_length": sum(self.accepted_lengths) / n,
            "accepted_lengths": list(self.accepted_lengths),
            "per_drafter": per,
        }


def _masked_softmax(logits: np.ndarray, mask: np.ndarray, temperature: float) -> np.ndarray:
    z = np.where(mask, logits / temperature, -np.inf)
    z = np.exp(z - z.max())
    return z / z.sum()


class _Judge:
    """Masked target decisions at one position (mask computed lazily, reused from the draft)."""

    def __init__(self, vocab: Vocabulary, temperature: float, rng: np.random.Generator):
        self.vocab, self.temperature, self.rng = vocab, temperature, rng
        self._bm = allocate_bitmask(1, vocab.size)
        self.mask_seconds = 0.0

    def mask(self, matcher: Matcher, cached: np.ndarray | None) -> np.ndarray:
        if cached is not None:
            return cached
        t0 = time.perf_counter()
        matcher.fill_bitmask(self._bm, 0)
        mask = bitmask_to_bool(self._bm[0], self.vocab.size)
        self.mask_seconds += time.perf_counter() - t0
        if not mask.any():
            raise VocabularyError("no token of the vocabulary can continue the output under the constraint")
        return mask

    def greedy(self, row: np.ndarray, matcher: Matcher, cached: np.ndarray | None) -> int:
        # float32 as in constrain.decode (ties resolve the same way); an allowed unmasked argmax
        # is the masked argmax, so the mask is only computed when it is not allowed.
        row = row[: self.vocab.size].astype(np.float32)
        t = int(np.argmax(row))
        if cached is None and matcher.is_token_allowed(t):
            return t
        mask = self.mask(matcher, cached)
        return int(np.argmax(np.where(mask, row, -np.inf)))

    def sample(self, row: np.ndarray, matcher: Matcher, cached: np.ndarray | None) -> np.ndarray:
        return _masked_softmax(row[: self.vocab.size], self.mask(matcher, cached), self.temperature)

    def judge(self, row: np.ndarray, x: int, q: np.ndarray | None, matcher: Matcher,
              cached: np.ndarray | None) -> tuple[bool, int]:
        """``(accepted, token)``: the draft ``x`` or the replacement for it."""
        if self.temperature <= 0:
            y = self.greedy(row, matcher, cached)
            return y == x, y
        p = self.sample(row, matcher, cached)
        if q is None:  # one-hot draft: accept with p'(x), else resample p' without x
            if self.rng.random() < p[x]:
                return True, x
            r = p.copy()
            r[x] = 0.0
        else:
            if q[x] > 0 and self.rng.random() < min(1.0, p[x] / q[x]):
                return True, x
            r = np.maximum(p - q, 0.0)
        total = r.sum()
        if total <= 0:  # p' == q up to rounding: the rejection had probability ~0
            r, total = p, 1.0
        return False, int(self.rng.choice(len(r), p=r / total))

    def bonus(self, row: np.ndarray, matcher: Matcher, cached: np.ndarray | None) -> int:
        if self.temperature <= 0:
            return self.greedy(row, matcher, cached)
        p = self.sample(row, matcher, cached)
        return int(self.rng.choice(len(p), p=p))


def _verify(judge: _Judge, logits: np.ndarray, builder: DraftBuilder, matcher: Matcher,
            vocab: Vocabulary) -> tuple[list[int], int]:
    """``(emitted, accepted)``: judge ``builder``'s draft against ``logits`` (rows: each draft
    position, then the bonus position), from the committed ``matcher`` (not mutated)."""
    draft = builder.tokens
    vm = matcher.copy()
    emitted: list[int] = []
    accepted = 0
    for j, x in enumerate(draft):
        ok, y = judge.judge(logits[j], x, builder.q[j], vm, builder.masks.get(j))
        emitted.append(y)
        if not ok:
            break
        accepted += 1
        vm.accept_token(x)
    else:
        if not (draft and vocab.is_eos(draft[-1])):
            emitted.append(judge.bonus(logits[len(draft)], vm, builder.masks.get(len(draft))))
    return emitted, accepted


def _commit(emitted: list[int], matcher: Matcher, vocab: Vocabulary, committed: list[int],
            out_ids: list[int]) -> str | None:
    """Accept ``emitted`` into the committed matcher and lists; the stop reason if EOS ended the output."""
    for y in emitted:
        # as in constrain.decode: EOS where nothing else was allowed completes the constraint
        only_eos = vocab.is_eos(y) and not matcher.constraint.token_bits(matcher.state).any()
        if not matcher.accept_token(y):  # pragma: no cover - masks make this impossible
            raise RuntimeError(f"internal: token {y} rejected by its own mask")
        committed.append(y)
        if vocab.is_eos(y):
            return "constraint_complete" if only_eos else "eos"
        out_ids.append(y)
    return None


def speculative_decode(
    target: Any,
    prompt_ids: Sequence[int],
    matcher: Matcher,
    vocab: Vocabulary,
    drafter: Drafter,
    *,
    max_draft: int = 12,
    stop_threshold: float = 0.8,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    tokenizer: Any = None,
    allow_incomplete: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
) -> SpeculativeResult:
    """Decode one sequence speculatively under ``matcher`` (mutated: it ends at the committed state).

    ``target`` is a ``transformers`` causal LM, a function ``prefix -> logits``, or an adapter from
    :mod:`constrain.speculative.models`. Output distribution = masked decoding with the same
    ``temperature`` (greedy: token-identical).
    """
    prompt_ids = [int(t) for t in prompt_ids]
    if not prompt_ids:
        raise ValueError("speculative decoding needs a non-empty prompt (at least a BOS token)")
    lm = as_lm(target)
    drafter.start(lm, vocab)
    if rng is None:
        rng = np.random.default_rng(seed)
    judge = _Judge(vocab, temperature, rng)
    stats = _Stats()
    eos_only = np.zeros(vocab.size, dtype=bool)
    eos_only[list(vocab.eos_token_ids)] = True
    committed: list[int] = []  # EOS included when it ends the output
    out_ids: list[int] = []
    stop = "max_new_tokens"
    step_seconds: list[float] = []
    forward_seconds = draft_seconds = 0.0
    n_forward = 0
    forced_accepted = 0
    start = time.perf_counter()

    while True:
        budget = max_new_tokens - len(out_ids)
        if budget <= 0:
            break
        t_step = time.perf_counter()
        if matcher.is_accepting():  # as in constrain.decode: stop without a forward when only EOS is left
            mask = judge.mask(matcher, None)
            if np.array_equal(mask, eos_only):
                matcher.accept_token(vocab.eos_token_ids[0])
                committed.append(vocab.eos_token_ids[0])
                stop = "constraint_complete"
                break
        t0 = time.perf_counter()
        builder = DraftBuilder(
            prompt_ids + committed, len(prompt_ids), matcher.copy(), vocab, min(max_draft, budget - 1),
            stop_threshold, temperature, rng, stats.rates, tokenizer,
        )
        drafter.extend(builder)
        draft = builder.tokens
        draft_seconds += time.perf_counter() - t0

        t0 = time.perf_counter()
        logits = lm.logits(prompt_ids + committed + draft, len(draft) + 1)
        forward_seconds += time.perf_counter() - t0
        n_forward += 1

        emitted, accepted = _verify(judge, logits, builder, matcher, vocab)
        stats.record(builder.sources, accepted)
        forced_accepted += sum(1 for s in builder.sources[:accepted] if s == "forced")
        stop = _commit(emitted, matcher, vocab, committed, out_ids) or stop
        lm.crop(len(prompt_ids) + len(committed) - 1)
        step_seconds.append(time.perf_counter() - t_step)
        if on_step is not None:
            on_step(StepInfo(list(draft), list(builder.sources), accepted, emitted, matcher, list(committed),
                             len(prompt_ids), lm))
        if stop != "max_new_tokens":
            break

    seconds = time.perf_counter() - start
    text = vocab.decode(out_ids).decode("utf-8", errors="replace")
    if stop == "max_new_tokens" and not matcher.is_accepting() and not allow_incomplete:
        raise IncompleteGenerationError(text, max_new_tokens)
    summary = stats.summary()
    summary.update(
        drafter=drafter.name, forward_passes=n_forward, draft_seconds=draft_seconds,
        tokens_per_forward=len(committed) / max(n_forward, 1),
    )
    return SpeculativeResult(
        text=text, token_ids=out_ids, prompt_tokens=len(prompt_ids), stop_reason=stop, seconds=seconds,
        mask_seconds=judge.mask_seconds, step_seconds=step_seconds, forced_tokens=forced_accepted,
        forward_seconds=forward_seconds, speculative=summary,
    )


class _RowCache:
    """One row's view of the batched KV cache: ``cache_length`` = positions the row attends to."""

    def __init__(self, attention: Any, row: int, forward: Any):
        self._attention, self.row, self._forward = attention, row, forward

    @property
    def cache_length(self) -> int:
        return int(self._attention[self.row].sum())

    @property
    def cache_columns(self) -> int:
        """Columns of the shared cache (every row's, rejected and padding positions included)."""
        cache = self._forward.cache
        return 0 if cache is None else int(cache.get_seq_length())


class _Row:
    """Per-row state of :func:`speculative_decode_batch`."""

    def __init__(self, prompt_ids: list[int], matcher: Matcher, vocab: Vocabulary, drafter: Drafter,
                 temperature: float, rng: np.random.Generator):
        self.prompt_ids = prompt_ids
        self.matcher = matcher
        self.drafter = drafter
        self.rng = rng
        self.judge = _Judge(vocab, temperature, rng)
        self.stats = _Stats()
        self.committed: list[int] = []
        self.out_ids: list[int] = []
        self.stop = "max_new_tokens"
        self.finished = False
        self.pending = -1  # newest committed token: not in the KV cache yet, fed with the next drafts
        self.n_real = len(prompt_ids)  # next position id (= tokens whose keys/values are attended)
        self.builder: DraftBuilder | None = None
        self.step_seconds: list[float] = []
        self.n_forward = 0
        self.draft_seconds = 0.0
        self.forced_accepted = 0


def speculative_decode_batch(
    target: Any,
    prompt_ids: Sequence[Sequence[int]],
    matchers: Sequence[Matcher],
    vocab: Vocabulary,
    drafters: Sequence[Drafter],
    *,
    max_draft: int = 12,
    stop_threshold: float = 0.8,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    seed: int | None = None,
    tokenizer: Any = None,
    pad_token_id: int | None = None,
    allow_incomplete: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
) -> list[SpeculativeResult]:
    """Decode a batch speculatively: every row has its matcher (mutated) and drafter, ONE target
    forward per step over all rows' ``[newest committed token] + drafts``.

    ``target`` is a ``transformers`` causal LM. The prompts are fed left-padded (as in
    :func:`constrain.decode.decode_batch`) and the first token of each row is chosen from that
    forward; every later step is right-padded (ragged drafts), with explicit ``position_ids`` per
    row. Rolling back a row after a rejection does not crop the shared KV cache: the rejected
    positions stay, with attention 0 for that row from then on, and the row's next positions
    continue from its committed length. Verification is per row and exact (greedy: the masked
    argmax; sampling: speculative acceptance with residual resampling on the masked target).
    Rows finish independently. Sampling draws from one generator per row (spawned from ``seed``).
    """
    import torch

    from constrain.decode import BatchForward, prompt_step_inputs

    prompts = [[int(t) for t in p] for p in prompt_ids]
    batch = len(prompts)
    if batch == 0:
        return []
    if len(matchers) != batch or len(drafters) != batch:
        raise ValueError(f"{len(matchers)} matchers and {len(drafters)} drafters for {batch} prompts")
    if any(not p for p in prompts):
        raise ValueError("speculative decoding needs non-empty prompts (at least a BOS token)")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if pad_token_id is None:
        pad_token_id = vocab.eos_token_ids[0]
    device = next(target.parameters()).device
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(batch)]
    rows = [_Row(prompts[b], matchers[b], vocab, drafters[b], temperature, rngs[b]) for b in range(batch)]
    started: set[int] = set()
    for r in rows:
        if id(r.drafter) not in started:  # a drafter shared by rows starts once
            r.drafter.start(target, vocab)
            started.add(id(r.drafter))
    eos_only = np.zeros(vocab.size, dtype=bool)
    eos_only[list(vocab.eos_token_ids)] = True
    forward = BatchForward(target)
    forward_seconds = 0.0
    n_forward = 0
    start = time.perf_counter()

    def ends_here(r: _Row) -> bool:
        """Stop a row without a forward when only EOS is left (as constrain.decode does)."""
        if r.matcher.is_accepting() and np.array_equal(r.judge.mask(r.matcher, None), eos_only):
            r.matcher.accept_token(vocab.eos_token_ids[0])
            r.committed.append(vocab.eos_token_ids[0])
            r.finished, r.stop = True, "constraint_complete"
            return True
        return False

    def after_commit(r: _Row, b: int, emitted: list[int], accepted: int, t_step: float) -> None:
        stop = _commit(emitted, r.matcher, vocab, r.committed, r.out_ids)
        if stop is not None:
            r.finished, r.stop = True, stop
        elif len(r.out_ids) >= max_new_tokens:
            r.finished = True
        r.pending = r.committed[-1]
        r.step_seconds.append(time.perf_counter() - t_step)
        if on_step is not None:
            builder = r.builder
            draft = list(builder.tokens) if builder is not None else []
            sources = list(builder.sources) if builder is not None else []
            on_step(StepInfo(draft, sources, accepted, emitted, r.matcher, list(r.committed), len(r.prompt_ids),
                             _RowCache(attention, b, forward), row=b))

    with torch.no_grad():
        # Prompt step: left-padded prompts, one logit row each; the first token of every row.
        t_step = time.perf_counter()
        input_ids, attention, positions = prompt_step_inputs(prompts, pad_token_id)
        live = [b for b, r in enumerate(rows) if not ends_here(r)]
        if live:
            t0 = time.perf_counter()
            logits_all = forward(input_ids.to(device), attention.to(device), positions.to(device), last_only=True)
            forward_seconds += time.perf_counter() - t0
            n_forward += 1
            last = logits_all[:, -1, : vocab.size].double().cpu().numpy()
            for b in live:
                r = rows[b]
                r.n_forward += 1
                y = r.judge.bonus(last[b], r.matcher, None)
                r.stats.record([], 0)
                after_commit(r, b, [y], 0, t_step)

        while True:
            t_step = time.perf_counter()
            feeds: dict[int, list[int]] = {}
            for b, r in enumerate(rows):
                if r.finished or ends_here(r):
                    continue
                budget = max_new_tokens - len(r.out_ids)
                t0 = time.perf_counter()
                r.builder = DraftBuilder(
                    r.prompt_ids + r.committed, len(r.prompt_ids), r.matcher.copy(), vocab,
                    min(max_draft, budget - 1), stop_threshold, temperature, r.rng, r.stats.rates, tokenizer,
                )
                r.drafter.extend(r.builder)
                r.draft_seconds += time.perf_counter() - t0
                feeds[b] = [r.pending] + r.builder.tokens
            if not feeds:
                break
            # One forward: ragged rows right-padded, padding (and every row that is done) attends to nothing.
            width = max(len(f) for f in feeds.values())
            input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
            new_attention = torch.zeros((batch, width), dtype=attention.dtype)
            positions = torch.zeros((batch, width), dtype=torch.long)
            for b, feed in feeds.items():
                input_ids[b, : len(feed)] = torch.tensor(feed, dtype=torch.long)
                new_attention[b, : len(feed)] = 1
                positions[b, : len(feed)] = torch.arange(rows[b].n_real, rows[b].n_real + len(feed))
            first_new = attention.shape[1]
            attention = torch.cat([attention, new_attention], dim=1)
            t0 = time.perf_counter()
            logits_all = forward(input_ids.to(device), attention.to(device), positions.to(device),
                                 last_only=width == 1)
            forward_seconds += time.perf_counter() - t0
            n_forward += 1
            if width == 1:
                logits_np = logits_all[:, -1:, : vocab.size].double().cpu().numpy()
            else:
                logits_np = logits_all[:, :, : vocab.size].double().cpu().numpy()
            for b, feed in feeds.items():
                r = rows[b]
                r.n_forward += 1
                builder = r.builder
                emitted, accepted = _verify(r.judge, logits_np[b, : len(feed)], builder, r.matcher, vocab)
                r.stats.record(builder.sources, accepted)
                r.forced_accepted += sum(1 for s in builder.sources[:accepted] if s == "forced")
                # The row keeps attending to the pending token and the accepted drafts except the
                # newest committed token (fed with the next drafts): len(emitted) positions (one
                # fewer than 1 + accepted when an accepted EOS draft ends the row without a bonus).
                # The rejected positions stay in the cache, but this row never attends to them again.
                keep = len(emitted)
                attention[b, first_new + keep : first_new + len(feed)] = 0
                r.n_real += keep
                after_commit(r, b, emitted, accepted, t_step)

    seconds = time.perf_counter() - start
    results = []
    for r in rows:
        text = vocab.decode(r.out_ids).decode("utf-8", errors="replace")
        if r.stop == "max_new_tokens" and not r.matcher.is_accepting() and not allow_incomplete:
            raise IncompleteGenerationError(text, max_new_tokens)
        summary = r.stats.summary()
        summary.update(
            drafter=r.drafter.name, forward_passes=r.n_forward, draft_seconds=r.draft_seconds,
            tokens_per_forward=len(r.committed) / max(r.n_forward, 1), batch_forward_passes=n_forward,
        )
        results.append(SpeculativeResult(
            text=text, token_ids=r.out_ids, prompt_tokens=len(r.prompt_ids), stop_reason=r.stop, seconds=seconds,
            mask_seconds=r.judge.mask_seconds, step_seconds=r.step_seconds, forced_tokens=r.forced_accepted,
            forward_seconds=forward_seconds, speculative=summary,
        ))
    return results
