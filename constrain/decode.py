"""The batched decoding loop behind :func:`constrain.generate`.

One forward pass per step for the whole batch (KV cache; rows are padded and masked, so each row
can feed a different number of tokens per step — fast-forwarded spans included). Per step:

1. the next masks are computed on a worker thread *while* the forward pass runs (``overlap``), or
   synchronously when every row could end (so a finished batch skips the forward pass);
2. each row's logits are masked (or, with ``opportunistic``, sampled unmasked first and masked only
   when the sampled token is invalid — exact for greedy and plain temperature sampling);
3. the chosen token is accepted; with ``fast_forward`` the tokens the constraint forces next are
   accepted too and fed in the next forward pass (in a batch, as many per step as keep the padded
   block at least ``ragged_fill`` full; the rest in the steps after, without masks or sampling).

Rows leave the batch (and the KV cache) as they finish, so a step costs only the live rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from constrain.batch import fill_bitmasks, mask_pool
from constrain.errors import ConstrainError, VocabularyError
from constrain.kernels.bitmask import allocate_bitmask, apply_bitmask, bitmask_words
from constrain.matcher import Matcher
from constrain.vocab.vocabulary import Vocabulary

FAST_FORWARD_MODES = (False, "bytes", "singleton")


class IncompleteGenerationError(ConstrainError):
    """Generation stopped (``max_new_tokens``) before the constraint could end; ``.text`` holds the prefix."""

    def __init__(self, text: str, max_new_tokens: int):
        self.text = text
        super().__init__(
            f"the output was not complete after max_new_tokens={max_new_tokens} tokens "
            f"(got {text[:80]!r}...); raise max_new_tokens"
        )


@dataclass
class GenerationResult:
    """Text and statistics of one constrained generation (one row of a batch)."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    stop_reason: str  # "eos" | "constraint_complete" (only EOS was allowed) | "max_new_tokens"
    seconds: float  # wall time of the whole batch
    mask_seconds: float  # time spent computing this batch's masks (hidden or not)
    step_seconds: list[float] = field(default_factory=list)  # wall time of each step that chose a token
    forced_tokens: int = 0  # tokens appended by fast-forward, without sampling
    mask_wait_seconds: float = 0.0  # mask time on the critical path (waits + synchronous fills)
    forward_seconds: float = 0.0  # time in the model's forward passes
    path: str = "cpu"  # "cpu": matchers on the host; "device": device-resident token tables
    steps: int = 0  # forward passes of the batch (fast-forwarded tokens share one)


@dataclass(frozen=True)
class DecodeOptions:
    """How to choose tokens; see :func:`constrain.generate` for each field."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    fast_forward: bool | str = False
    opportunistic: bool = False
    overlap: bool = True
    allow_incomplete: bool = False
    # None: 0.5 for a batch decoded together, 1.0 with continuous batching (measured on CPU at
    # batch 8: rows that join at different times make ragged steps that cost more than they save).
    ragged_fill: float | None = None
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        ff = "bytes" if self.fast_forward is True else self.fast_forward
        if ff not in FAST_FORWARD_MODES:
            raise ValueError(f"fast_forward must be one of False, True, 'bytes', 'singleton'; got {self.fast_forward!r}")
        object.__setattr__(self, "fast_forward", ff)
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1 (or None: every prompt at once), got {self.max_batch_size}")
        if self.ragged_fill is not None and not 0.0 <= self.ragged_fill <= 1.0:
            raise ValueError(f"ragged_fill must be in [0, 1], got {self.ragged_fill}")
        if self.opportunistic and self.temperature > 0 and (self.top_p < 1.0 or self.top_k > 0):
            raise ValueError(
                "opportunistic masking is exact only for greedy or plain temperature sampling: "
                "top_p/top_k do not commute with the mask"
            )


class BatchForward:
    """Forward passes with a KV cache for a padded batch, across transformers versions.

    transformers >= 5.2x names the cache argument and output ``cache``; older releases use
    ``past_key_values``. ``logits_to_keep=1`` skips projecting positions whose logits are unused.
    """

    def __init__(self, model: Any):
        import inspect

        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_name = "cache" if "cache" in params else "past_key_values"
        self.can_keep_last = "logits_to_keep" in params
        self.cache = None

    def __call__(self, input_ids, attention_mask=None, position_ids=None, *, last_only: bool = True, keep=None):
        """Logits of the step; ``keep`` (``long[batch, 1]``, when the model takes ``logits_to_keep``)
        projects only one position per row, so ``logits[:, -1]`` is that position's."""
        kwargs = {self.cache_name: self.cache, "use_cache": True}
        if keep is not None and self.can_keep_last:
            kwargs["logits_to_keep"] = keep
        elif last_only and self.can_keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        cache = getattr(out, self.cache_name, None)
        self.cache = cache if cache is not None else out.past_key_values
        return out.logits

    def select_rows(self, index) -> bool:
        """Keep only the batch rows ``index`` (a long tensor) of the KV cache; False if the cache cannot."""
        select = getattr(self.cache, "batch_select_indices", None)
        if select is None:
            return False
        select(index)
        return True

    def can_append_rows(self) -> bool:
        """Whether :meth:`append_rows` and :meth:`trim_left` work on this cache."""
        return _cache_layers(self.cache) is not None

    def append_rows(self, other: Any) -> bool:
        """Append the rows of the cache ``other`` below this cache's rows (mutates this cache).

        The shorter side is left-padded with zero keys/values, which the caller masks out by
        left-padding the attention mask the same way (:func:`_left_pad_cat`). False (nothing
        changed) when either cache is not a plain per-layer cache of the same depth.
        """
        mine = _cache_layers(self.cache)
        theirs = _cache_layers(other)
        if mine is None or theirs is None or len(mine) != len(theirs):
            return False
        for a, b in zip(mine, theirs):
            a.keys = _left_pad_cat(a.keys, b.keys.to(a.keys.device), dim=-2)
            a.values = _left_pad_cat(a.values, b.values.to(a.values.device), dim=-2)
        return True

    def trim_left(self, attention):
        """Drop the leading cache columns no row attends to (left padding of rows that have left);
        returns the attention mask trimmed the same way. Mutates the cache."""
        layers = _cache_layers(self.cache)
        if layers is None or attention.shape[1] == 0:
            return attention
        used = attention.any(dim=0).nonzero()
        drop = int(used[0]) if len(used) else 0
        if drop == 0:
            return attention
        for layer in layers:
            layer.keys = layer.keys[:, :, drop:].contiguous()
            layer.values = layer.values[:, :, drop:].contiguous()
        return attention[:, drop:]


def _to_device(t, device):
    """``t`` (a new host tensor) on ``device``: through pinned memory without waiting for the
    device's queue on CUDA (a copy from pageable memory waits for the stream first)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _cache_layers(cache: Any) -> list | None:
    """A KV cache's per-layer ``keys``/``values`` holders, when every layer is a plain growing
    ``[batch, heads, positions, dim]`` pair (transformers' ``DynamicLayer``); else None."""
    layers = getattr(cache, "layers", None)
    if not layers:
        return None
    for layer in layers:
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if getattr(layer, "is_sliding", False) or keys is None or values is None:
            return None
        if getattr(keys, "ndim", 0) != 4 or getattr(values, "ndim", 0) != 4:
            return None
    return list(layers)


def _left_pad_cat(a, b, dim: int = 1):
    """Concatenate ``a`` and ``b`` along the batch (first) dimension after left-padding the shorter
    one with zeros along ``dim`` (the positions), so both rows' last positions line up."""
    import torch

    la, lb = a.shape[dim], b.shape[dim]
    if la < lb:
        a = _pad_front(a, lb - la, dim)
    elif lb < la:
        b = _pad_front(b, la - lb, dim)
    return torch.cat([a, b], dim=0)


def _pad_front(t, n: int, dim: int):
    import torch

    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)


def feed_width(lengths: list[int], min_fill: float) -> int:
    """Width of a ragged step: the widest whose fed tokens fill at least ``min_fill`` of the padded
    block ``len(lengths) x width`` (a single row always feeds all it has). Rows with more tokens
    queued feed the rest in later steps; on a compute-bound device padding costs as much as tokens.
    """
    width = max(1, max(lengths, default=1))
    while width > 1 and sum(min(n, width) for n in lengths) < min_fill * width * len(lengths):
        width -= 1
    return width


def crop_cache(cache: Any, keep: int) -> bool:
    """Shrink a transformers KV cache to its first ``keep`` positions; False if that cannot be done."""
    try:
        current = int(cache.get_seq_length())
    except Exception:  # pragma: no cover - unknown cache type
        return False
    if current == keep:
        return True
    if current < keep:
        return False
    for arg in (keep - current, keep):  # transformers >= 5.2x: negative = tokens to drop; older: new length
        try:
            cache.crop(arg)
        except Exception:
            continue
        return int(cache.get_seq_length()) == keep
    return False


def choose_token(logits, temperature: float, top_p: float, top_k: int, generator) -> int:
    """Greedy (``temperature <= 0``) or sampled choice from one row of logits (torch, CPU)."""
    import torch

    if temperature <= 0:
        return int(torch.argmax(logits).item())
    scaled = logits / temperature
    if top_k > 0:
        kth = torch.topk(scaled, min(top_k, scaled.shape[-1])).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < top_p
        filtered = torch.zeros_like(probs)
        filtered[order[keep]] = sorted_p[keep]
        probs = filtered / filtered.sum()
    return int(torch.multinomial(probs, 1, generator=generator).item())


def _singleton_forced(matcher: Matcher, row_bitmask: np.ndarray, vocab: Vocabulary, budget: int) -> list[int]:
    """Accept tokens while the mask allows exactly one (non-EOS) token; return them (mutates matcher)."""
    out: list[int] = []
    words = row_bitmask.view(np.uint32)
    while len(out) < budget:
        matcher.fill_bitmask(row_bitmask[None, :], 0)
        nz = np.flatnonzero(words)
        if len(nz) != 1:
            break
        w = int(words[nz[0]])
        if w & (w - 1):
            break
        token = int(nz[0]) * 32 + (w.bit_length() - 1)
        if vocab.is_eos(token):
            break
        matcher.accept_token(token)
        out.append(token)
    return out


def prompt_step_inputs(prompt_ids: list[list[int]], pad_token_id: int):
    """``(input_ids, attention_mask, position_ids)`` of the prompt step, left-padded.

    Left padding puts every row's last prompt token in the last column, so the first forward pass
    needs the logits of one position only (``logits_to_keep=1``).
    """
    import torch

    batch = len(prompt_ids)
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
    attention = torch.zeros((batch, width), dtype=torch.long)
    for b, ids in enumerate(prompt_ids):
        input_ids[b, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[b, width - len(ids) :] = 1
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return input_ids, attention, positions


def decode_batch_on_device(
    model: Any,
    prompt_ids: list[list[int]],
    tables: Any,
    options: DecodeOptions,
    *,
    pad_token_id: int,
    constraint_of_row: list[int] | None = None,
) -> list[GenerationResult]:
    """Decode with device-resident token tables (:class:`~constrain.integrations.device_tables.
    DeviceTables`): states, masks and token choice stay on the model's device. Per step the host
    checks whether a transition is new (then the constraint computes it and the tables keep it)
    and whether all rows have finished. Row ``b`` decodes under ``tables.constraints[
    constraint_of_row[b]]`` (default: the first). Greedy or plain temperature sampling (no
    top-p/top-k, no fast-forward). Mutates ``tables`` (rows and transitions it learns).
    """
    import torch

    if options.top_p < 1.0 or options.top_k > 0 or options.fast_forward or options.opportunistic:
        raise ValueError("device tables support greedy and plain temperature sampling only")
    vocab = tables.vocab
    batch = len(prompt_ids)
    device = tables.device
    generator = None
    if options.seed is not None:
        generator = torch.Generator(device=device).manual_seed(options.seed)
    forward = BatchForward(model)
    input_ids, attention, positions = prompt_step_inputs(prompt_ids, pad_token_id)
    input_ids, attention, positions = input_ids.to(device), attention.to(device), positions.to(device)
    states = tables.initial_states(batch, constraint_of_row)
    eos = torch.tensor(vocab.eos_token_ids[0], device=device)
    next_pos = attention.sum(-1)
    chosen: list[torch.Tensor] = []
    steps_done = 0
    start = time.perf_counter()
    forward_seconds = 0.0
    with torch.no_grad():
        for _ in range(options.max_new_tokens + 1):
            was_finished = tables.is_finished(states)
            t0 = time.perf_counter()
            logits = forward(input_ids, attention, positions, last_only=True)[:, -1, : vocab.size].float()
            forward_seconds += time.perf_counter() - t0
            logits = tables.apply(logits, states)
            if options.temperature <= 0:
                tokens = torch.argmax(logits, dim=-1)
            else:
                probs = torch.softmax(logits / options.temperature, dim=-1)
                tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            tokens = torch.where(was_finished, eos, tokens)
            states = tables.advance(states, tokens)
            chosen.append(tokens)
            steps_done += 1
            done, stuck = torch.stack([tables.is_finished(states).all(), ~(tables.any_allowed(states).all())]).tolist()
            if stuck:
                raise VocabularyError("no token of the vocabulary can continue an output of the batch")
            if done or steps_done > options.max_new_tokens:
                break
            input_ids = tokens[:, None]
            attention = torch.cat([attention, torch.ones((batch, 1), dtype=attention.dtype, device=device)], 1)
            positions = next_pos[:, None]
            next_pos = next_pos + 1
    seconds = time.perf_counter() - start
    table = torch.stack(chosen, dim=1).cpu().tolist()
    results = []
    for b in range(batch):
        ids: list[int] = []
        stop_reason = "max_new_tokens"
        for t in table[b]:
            if vocab.is_eos(t):
                stop_reason = "eos"
                break
            ids.append(t)
        ids = ids[: options.max_new_tokens]
        text = vocab.decode(ids).decode("utf-8", errors="replace")
        if stop_reason != "eos" and not options.allow_incomplete:
            matcher = tables.constraints[0 if constraint_of_row is None else constraint_of_row[b]].matcher()
            if matcher.accept_tokens(ids) != len(ids) or not matcher.is_accepting():
                raise IncompleteGenerationError(text, options.max_new_tokens)
        results.append(
            GenerationResult(
                text=text, token_ids=ids, prompt_tokens=len(prompt_ids[b]), stop_reason=stop_reason,
                seconds=seconds, mask_seconds=0.0, step_seconds=[seconds / steps_done] * len(ids),
                forward_seconds=forward_seconds, path="device", steps=steps_done,
            )
        )
    return results


def decode_batch(
    model: Any,
    prompt_ids: list[list[int]],
    matchers: list[Matcher],
    vocab: Vocabulary,
    options: DecodeOptions,
    *,
    pad_token_id: int,
    row_max_new_tokens: list[int] | None = None,
) -> list[GenerationResult]:
    """Decode every row of the batch under its matcher (mutates the matchers); one result per row.

    ``row_max_new_tokens``: a token budget per row instead of ``options.max_new_tokens`` (a row that
    reaches its budget leaves the batch like a finished one).

    With ``options.max_batch_size`` below the number of prompts, at most that many rows are in the
    model's batch at once; a waiting prompt is prefilled and joins the running batch as soon as a
    row finishes (continuous batching), so the batch stays full while prompts wait.
    """
    import torch

    batch = len(prompt_ids)
    if batch == 0:
        return []
    if len(matchers) != batch:
        raise ValueError(f"{len(matchers)} matchers for {batch} prompts")
    if row_max_new_tokens is None:
        budgets = [options.max_new_tokens] * batch
    else:
        budgets = [int(n) for n in row_max_new_tokens]
        if len(budgets) != batch or min(budgets) < 1:
            raise ValueError(f"row_max_new_tokens needs {batch} budgets of at least 1, got {row_max_new_tokens!r}")
    capacity = min(batch, options.max_batch_size or batch)
    ragged_fill = options.ragged_fill
    if ragged_fill is None:
        ragged_fill = 1.0 if capacity < batch else 0.5
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(options.seed) if options.seed is not None else None
    forward = BatchForward(model)
    bitmask = allocate_bitmask(batch, vocab.size)
    bitmask_t = torch.from_numpy(bitmask)
    eos_words = np.zeros(bitmask_words(vocab.size), dtype=np.uint32)
    for e in vocab.eos_token_ids:
        eos_words[e >> 5] |= np.uint32(1) << np.uint32(e & 31)

    finished = [False] * batch
    stop = ["max_new_tokens"] * batch
    out_ids: list[list[int]] = [[] for _ in range(batch)]
    forced_counts = [0] * batch
    step_seconds: list[list[float]] = [[] for _ in range(batch)]
    n_real = [len(p) for p in prompt_ids]  # next position id of each row
    stats = {"mask": 0.0, "mask_wait": 0.0, "forward": 0.0, "steps": 0}
    start = time.perf_counter()

    def timed_fill(rows: list[int]) -> float:
        t0 = time.perf_counter()
        wanted = set(rows)
        fill_bitmasks([matchers[b] if b in wanted else None for b in range(batch)], bitmask)
        return time.perf_counter() - t0

    def masks_then_forward(rows: list[int], choosing: list[int], run_forward, sync: bool):
        """Fill the masks of the ``choosing`` rows (on the worker thread while ``run_forward``
        runs, unless ``sync``); return the logits, or None when the masks finished every row of
        the forward pass (``rows``), which is then skipped."""
        future = None
        if choosing and not options.opportunistic:
            if sync or not options.overlap:
                took = timed_fill(choosing)
                stats["mask"] += took
                stats["mask_wait"] += took
                for b in choosing:
                    if np.array_equal(bitmask[b].view(np.uint32), eos_words):
                        matchers[b].accept_token(vocab.eos_token_ids[0])
                        finished[b], stop[b] = True, "constraint_complete"
                if all(finished[b] for b in rows):
                    return None
            else:
                future = mask_pool().submit(timed_fill, list(choosing))
        t_fwd = time.perf_counter()
        logits = run_forward()
        stats["forward"] += time.perf_counter() - t_fwd
        stats["steps"] += 1
        if future is not None:
            t_wait = time.perf_counter()
            stats["mask"] += future.result()
            stats["mask_wait"] += time.perf_counter() - t_wait
        return logits

    def masked_choices(rows: list[int], logits: Any) -> dict[int, int]:
        """Tokens of the ``rows`` (``logits[k]`` is row ``rows[k]``'s) whose filled masks allow
        text: their masks applied at once on the logits' device and one transfer back (greedy:
        the argmax indices; sampling: the masked logits, then :func:`choose_token` row by row in
        order). Empty (see :func:`choose`) unless masks are filled before choosing (not
        opportunistic). ``logits`` is not modified."""
        if options.opportunistic:
            return {}
        sel = [k for k, b in enumerate(rows)
               if bitmask[b].any() and not np.array_equal(bitmask[b].view(np.uint32), eos_words)]
        if not sel:
            return {}
        if len(sel) < len(rows):
            logits = logits[_to_device(torch.tensor(sel), logits.device)]  # a copy: the rows stay unmasked
        else:
            logits = logits.clone()
        words = _to_device(bitmask_t[[rows[k] for k in sel]], logits.device)
        apply_bitmask(logits, words, vocab_size=vocab.size)
        if options.temperature <= 0:
            tokens = torch.argmax(logits, dim=-1).tolist()
        else:
            cpu = logits.cpu()
            tokens = [choose_token(cpu[k], options.temperature, options.top_p, options.top_k, generator)
                      for k in range(len(sel))]
        return {rows[k]: int(t) for k, t in zip(sel, tokens)}

    def choose(b: int, logits, t_step: float, token: int = -1) -> None:
        """Pick row ``b``'s next token from its logits under its mask (filled unless opportunistic;
        ``token``: already chosen under it by :func:`masked_choices`), accept it and the tokens
        fast-forward forces after it; queue them to be fed."""
        matcher = matchers[b]
        if options.opportunistic:
            token = choose_token(logits.cpu(), options.temperature, 1.0, 0, generator)
            if not matcher.is_token_allowed(token):
                t0 = time.perf_counter()
                matcher.fill_bitmask(bitmask, b)
                stats["mask"] += time.perf_counter() - t0
                stats["mask_wait"] += time.perf_counter() - t0
                token = -1
        only_end = False
        if token < 0:
            if not bitmask[b].any():
                raise VocabularyError(
                    f"no token of the vocabulary can continue the output {vocab.decode(out_ids[b])!r}: "
                    "the constraint needs text this tokenizer cannot produce"
                )
            if np.array_equal(bitmask[b].view(np.uint32), eos_words):
                token, only_end = vocab.eos_token_ids[0], True
            else:
                apply_bitmask(logits, bitmask_t[b].to(logits.device), vocab_size=vocab.size)
                token = choose_token(logits.cpu(), options.temperature, options.top_p, options.top_k, generator)
        if not matcher.accept_token(token):  # pragma: no cover - the mask makes this impossible
            raise RuntimeError(f"internal: token {token} rejected by its own mask")
        step_seconds[b].append(time.perf_counter() - t_step)
        if vocab.is_eos(token):
            # Where the mask allowed only EOS, the row ended because the constraint did, whether
            # the mask was known before the forward pass or computed beside it.
            finished[b], stop[b] = True, "constraint_complete" if only_end else "eos"
            return
        out_ids[b].append(token)
        queue[b] = [token]
        budget = budgets[b] - len(out_ids[b])
        if options.fast_forward and budget > 0:
            if options.fast_forward == "singleton":
                forced = _singleton_forced(matcher, bitmask[b].copy(), vocab, budget)
            else:
                forced = matcher.forced_tokens()[:budget]
                matcher.accept_tokens(forced)
            out_ids[b].extend(forced)
            forced_counts[b] += len(forced)
            queue[b].extend(forced)
        if len(out_ids[b]) >= budgets[b]:
            finished[b] = True

    def admit(rows: list[int], joining: bool) -> Any:
        """Prefill the prompts of ``rows`` in a forward pass of their own, choose their first tokens,
        and return the rows' KV cache and attention mask (for :meth:`BatchForward.append_rows`).

        ``joining`` (rows that join a running batch): the tokens fast-forward forced after the
        first one are fed here too, all but the last, so the rows join with one queued token like
        the others instead of making the whole batch's next steps ragged."""
        t_step = time.perf_counter()
        ids, att, pos = prompt_step_inputs([prompt_ids[b] for b in rows], pad_token_id)
        att = att.to(device)
        prefill = BatchForward(model)
        choosing = [b for b in rows if not finished[b]]
        sync = all(matchers[b].is_accepting() for b in choosing)
        logits = masks_then_forward(
            rows, choosing, lambda: prefill(ids.to(device), att, pos.to(device), last_only=True), sync
        )
        if logits is not None:
            index = [i for i, b in enumerate(rows) if not finished[b]]
            picked = logits[torch.tensor(index).to(logits.device), -1].float()
            chosen = masked_choices([rows[i] for i in index], picked)
            for k, i in enumerate(index):
                choose(rows[i], picked[k], t_step, chosen.get(rows[i], -1))
        width = max((len(queue[b]) - 1 for b in rows if not finished[b]), default=0)
        if joining and width > 0:
            ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
            extra = torch.zeros((len(rows), width), dtype=torch.long)
            pos = torch.zeros((len(rows), width), dtype=torch.long)
            for i, b in enumerate(rows):
                feed = queue[b][:-1] if not finished[b] else []
                if feed:
                    ids[i, : len(feed)] = torch.tensor(feed, dtype=torch.long)
                    extra[i, : len(feed)] = 1
                    pos[i, : len(feed)] = torch.arange(n_real[b], n_real[b] + len(feed))
                    n_real[b] += len(feed)
                    queue[b] = queue[b][-1:]
            att = torch.cat([att, extra.to(device)], dim=1)
            t_fwd = time.perf_counter()
            prefill(ids.to(device), att, pos.to(device), last_only=True)
            stats["forward"] += time.perf_counter() - t_fwd
            stats["steps"] += 1
        return prefill, att

    waiting = list(range(batch))  # prompts not admitted yet, in order
    live: list[int] = []  # rows in the model's batch (and KV cache), in order; finished rows leave
    attention: Any = None  # attention mask of the live rows over the cache's columns
    queue: list[list[int]] = [[] for _ in range(batch)]  # accepted tokens not fed to the model yet
    refill = True  # whether prompts may join a running batch (the cache supports it)

    with torch.no_grad():
        while True:
            # Finished rows leave the batch (and the KV cache): later steps cost only live rows.
            keep = [i for i, b in enumerate(live) if not finished[b]]
            if len(keep) < len(live):
                if not keep:
                    live, attention, forward.cache = [], None, None
                    refill = True
                else:
                    index = torch.tensor(keep, dtype=torch.long).to(device)
                    if forward.select_rows(index):
                        attention = attention[index]
                        live = [live[i] for i in keep]
                        attention = forward.trim_left(attention)
            # Waiting prompts fill the free slots (all at once while the batch is empty).
            while waiting and len(live) < capacity and (refill or not live):
                rows, waiting = waiting[: capacity - len(live)], waiting[capacity - len(live) :]
                prefill, att = admit(rows, joining=bool(live))
                alive = [i for i, b in enumerate(rows) if not finished[b]]
                if not alive:
                    continue
                if len(alive) < len(rows):
                    index = torch.tensor(alive, dtype=torch.long).to(device)
                    if prefill.select_rows(index):
                        att = att[index]
                        rows = [rows[i] for i in alive]
                if not live:
                    forward.cache, attention, live = prefill.cache, att, rows
                    refill = forward.can_append_rows()
                elif forward.append_rows(prefill.cache):
                    attention = _left_pad_cat(attention, att)
                    live = live + rows
                else:  # pragma: no cover - checked by can_append_rows
                    raise RuntimeError("internal: the KV cache refused new rows")
            if all(finished[b] for b in live):
                if not waiting:
                    break
                live, attention, forward.cache = [], None, None  # a cache that kept finished rows
                continue
            # Next step: ragged rows, right-padded; padding is masked out of attention.
            width = feed_width([len(queue[b]) for b in live], ragged_fill)
            # Built as Python lists and turned into tensors once (per-row tensor writes cost more
            # than the step's other host work on a fast device); ids and positions travel to the
            # device in one copy, the attention mask stays there (a column of ones per plain step).
            ids_rows, att_rows, pos_rows = [], [], []
            last_index = [0] * len(live)
            for i, b in enumerate(live):
                feed, queue[b] = queue[b][:width], queue[b][width:]
                pad = width - len(feed)
                ids_rows.append(feed + [pad_token_id] * pad)
                att_rows.append([1] * len(feed) + [0] * pad)
                pos_rows.append(list(range(n_real[b], n_real[b] + len(feed))) + [0] * pad)
                n_real[b] += len(feed)
                last_index[i] = max(len(feed) - 1, 0)
            input_ids, positions = _to_device(torch.tensor([ids_rows, pos_rows], dtype=torch.long), device)
            if width == 1 and all(a[0] for a in att_rows):  # every live row feeds one token
                attention = torch.cat([attention, attention.new_ones((len(live), 1))], dim=1)
            else:
                attention = torch.cat([attention, _to_device(torch.tensor(att_rows, dtype=torch.long), device)], dim=1)
            keep_index = None
            if width > 1 and forward.can_keep_last:
                keep_index = torch.tensor([[k] for k in last_index], dtype=torch.long)

            t_step = time.perf_counter()
            # Rows still draining fast-forwarded tokens choose nothing this step.
            choosing = [b for b in live if not finished[b] and not queue[b]]
            # Every row could end: know the masks first, so rows that can only end stop here and
            # a finished batch skips the forward pass.
            sync = bool(choosing) and all(matchers[b].is_accepting() for b in choosing)
            step_input = (input_ids, attention, positions)
            logits_all = masks_then_forward(
                live, choosing,
                lambda: forward(*step_input, last_only=width == 1,
                                keep=None if keep_index is None else keep_index.to(device)),
                sync,
            )
            if logits_all is None:
                # No forward pass ran: the fed columns are not in the cache; every row is finished.
                continue
            pick_rows, pick_index, pick_cols = [], [], []
            for i, b in enumerate(live):
                if b in choosing and not finished[b]:
                    pick_rows.append(b)
                    pick_index.append(i)
                    pick_cols.append(-1 if (width == 1 or keep_index is not None) else last_index[i])
            if pick_rows:
                # One gather of the choosing rows' logits (not one slice per row), none when every
                # row of a plain step chooses.
                if len(pick_rows) == len(live) and all(c == -1 for c in pick_cols):
                    picked = logits_all[:, -1].float()
                else:
                    where = _to_device(torch.tensor([pick_index, pick_cols]), logits_all.device)
                    picked = logits_all[where[0], where[1]].float()
                chosen = masked_choices(pick_rows, picked)
                for k, b in enumerate(pick_rows):
                    choose(b, picked[k], t_step, chosen.get(b, -1))

    seconds = time.perf_counter() - start
    results = []
    for b in range(batch):
        text = vocab.decode(out_ids[b]).decode("utf-8", errors="replace")
        if stop[b] == "max_new_tokens" and not matchers[b].is_accepting() and not options.allow_incomplete:
            raise IncompleteGenerationError(text, budgets[b])
        results.append(
            GenerationResult(
                text=text,
                token_ids=out_ids[b],
                prompt_tokens=len(prompt_ids[b]),
                stop_reason=stop[b],
                seconds=seconds,
                mask_seconds=stats["mask"],
                step_seconds=step_seconds[b],
                forced_tokens=forced_counts[b],
                mask_wait_seconds=stats["mask_wait"],
                forward_seconds=stats["forward"],
                steps=stats["steps"],
            )
        )
    return results
