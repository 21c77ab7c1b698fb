"""KID: knowledge-infused decoding (docs algorithms.md §2b), intersected with a hard constraint.

Per step ``t`` (one sequence; ``H`` is the KV cache of the context *without* its last token)::

    π   = softmax(model(last, past=H))                                   # original policy
    K   = knowledge_tokens(ents(prompt + generated)) ∩ allowed(mask)     # trie query ∩ constraint
    if K and n_iter > 0:                                                 # else: no update at all
        dH = 0 (per layer, shaped like H's keys and values)
        repeat n_iter: π* = softmax(model(last, past=H + dH))
                       loss = -log Σ_K π* + β·KL(π* ‖ π)
                       g = ∂loss/∂dH;  gmax_l = max over iterations of ‖g_l‖ (first: ‖g_l‖ + 1e-15)
                       dH_l -= α · g_l / gmax_l^γ
        π*, H' = model(last, past=H + dH)         # the perturbed cache is carried forward
        p = π*^gm · π^(1-gm)                      # geometric fusion
    else: p = π, H' = model(last, past=H).cache
    p = top_p(top_k(mask(no_repeat_ngram(p))))    # then sample (or argmax at temperature 0)

This is the KV-cache variant of the spec (not a logit-level shortcut): the gradient is taken
with respect to additive perturbations of every layer's cached keys and values, exactly as the
reference ``kid_policy.py`` (PPLM-style) does. Defaults are the reference code's: 3 iterations,
β = 0.01, α = 0.01, γ = 1.5, one hop, gm = 0.99, no-repeat 2-gram, top-k 20, top-p 0.92,
temperature 1. Differences from the reference code, on purpose:

* K is intersected with the constraint's mask; an empty intersection skips the update (the
  reference code falls back to K = {EOS}); the context is never fed twice (spec §2b note).
* the local memory is the entity set of the user prompt plus the generated text (the reference
  re-extracts from all text, too); entities come from :mod:`constrain.knowledge.text`, not spaCy.
* knowledge words contribute their first sub-token both bare and with a leading space
  (``space_variants=True``; the reference encodes bare words only, which in running text mostly
  selects word-internal pieces).
* no-repeat n-grams are counted over the generated tokens only (not the prompt).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from constrain.compiled import CompiledConstraint
from constrain.knowledge._kv import KVForward, model_device, past_length
from constrain.knowledge.text import entities
from constrain.knowledge.trie import KnowledgeTrie, decode_ids

__all__ = ["KIDConfig", "KnowledgeResult", "filter_logits", "generate_with_knowledge", "infused_distribution"]


@dataclass(frozen=True)
class KIDConfig:
    """KID's parameters (reference-code defaults, docs algorithms.md §2d)."""

    n_iter: int = 3  # kid_steps
    kl_scale: float = 0.01  # β
    step_size: float = 0.01  # α
    gamma: float = 1.5
    max_hops: int = 1
    gm_scale: float = 0.99  # weight of π* in the geometric fusion
    space_variants: bool = True  # also the " word" first sub-token (see module docstring)
    continuations: bool = False  # also continue knowledge phrases the text has started (trie walk)
    memory_size: int | None = None  # FIFO of the most recent distinct entities; None = all

    def __post_init__(self) -> None:
        if self.n_iter < 0 or self.max_hops < 0:
            raise ValueError("n_iter and max_hops must be >= 0")
        if not 0.0 <= self.gm_scale <= 1.0:
            raise ValueError("gm_scale must be in [0, 1]")


@dataclass
class KnowledgeResult:
    """One KID generation and its per-step diagnostics."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    stop_reason: str  # "eos" | "constraint_complete" | "max_new_tokens"
    seconds: float
    knowledge_sizes: list[int] = field(default_factory=list)  # |K ∩ mask| per step
    base_mass: list[float] = field(default_factory=list)  # π(K) on steps with an update
    infused_mass: list[float] = field(default_factory=list)  # π*(K) on the same steps
    kl: list[float] = field(default_factory=list)  # KL(π* ‖ π) on the same steps
    kv_lengths: list[int] = field(default_factory=list)  # cache length after each step
    n_updates: int = 0


def _knowledge_source(knowledge: Any, cfg: KIDConfig, tokenizer: Any) -> Callable[[list[int], str], set[int]]:
    if knowledge is None:
        return lambda ids, text: set()
    if isinstance(knowledge, KnowledgeTrie):
        def query(ids: list[int], text: str) -> set[int]:
            ents = entities(text)
            if cfg.memory_size is not None:
                ents = list(dict.fromkeys(reversed(ents)))[: cfg.memory_size]
            out = set(knowledge.knowledge_tokens(set(ents), max_hops=cfg.max_hops, space_variants=cfg.space_variants))
            if cfg.continuations:
                out |= set(knowledge.continuations(ids))
            return out

        return query
    if callable(knowledge):
        return lambda ids, text: {int(t) for t in knowledge(ids, text)}
    fixed = {int(t) for t in knowledge}
    return lambda ids, text: fixed


def filter_logits(logits, *, generated: Sequence[int], allowed, no_repeat_ngram: int, top_k: int, top_p: float):
    """no-repeat n-gram ban, constraint mask, top-k, top-p on one row of log-probabilities (torch)."""
    import torch

    x = logits.clone()
    if no_repeat_ngram > 0 and len(generated) >= no_repeat_ngram - 1:
        n = no_repeat_ngram
        prefix = tuple(generated[len(generated) - (n - 1):]) if n > 1 else ()
        banned = [generated[i + n - 1] for i in range(len(generated) - n + 1) if tuple(generated[i : i + n - 1]) == prefix]
        if banned:
            x[torch.tensor(banned, dtype=torch.long)] = float("-inf")
    if allowed is not None:
        x = x.masked_fill(~allowed, float("-inf"))
    if torch.isinf(x).all() and allowed is not None:  # the n-gram ban removed every allowed token
        x = logits.masked_fill(~allowed, float("-inf"))
    if top_k > 0:
        kth = torch.topk(x, min(top_k, x.shape[-1])).values[-1]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        probs = torch.softmax(x, -1)
        sorted_p, order = torch.sort(probs, descending=True)
        drop = torch.cumsum(sorted_p, -1) - sorted_p >= top_p
        x[order[drop]] = float("-inf")
    return x


def _allowed_tensor(matcher, vocab_size: int, bitmask: np.ndarray):
    import torch

    from constrain.kernels.bitmask import bitmask_to_bool

    matcher.fill_bitmask(bitmask, 0)
    allowed = np.asarray(bitmask_to_bool(bitmask[0], vocab_size)).reshape(-1)[:vocab_size]
    return torch.from_numpy(allowed.copy())


def generate_with_knowledge(
    model: Any,
    tokenizer: Any,
    prompt: str | Sequence[int],
    *,
    knowledge: KnowledgeTrie | Iterable[int] | Callable[[list[int], str], Iterable[int]] | None = None,
    constraint: CompiledConstraint | None = None,
    config: KIDConfig | None = None,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_k: int = 20,
    top_p: float = 0.92,
    no_repeat_ngram: int = 2,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    vocab: Any = None,
    allow_incomplete: bool = False,
    return_result: bool = False,
) -> str | KnowledgeResult:
    """Generate with KID guidance toward ``knowledge``; every output satisfies ``constraint``.

    Parameters
    ----------
    knowledge : KnowledgeTrie, iterable of token ids, or callable ``(context_ids, text) -> ids``
        Where the knowledge tokens K come from at each step (a trie: the spec's entity query; a
        fixed id set or callable: for experiments). ``None`` or an empty trie: plain decoding.
    constraint : CompiledConstraint, optional
        Hard constraint; K is intersected with its mask and tokens are drawn within it.
    config : KIDConfig
        KID's parameters (defaults: the reference code's).
    temperature, top_k, top_p, no_repeat_ngram, seed
        The sampler after fusion (reference defaults 1.0 / 20 / 0.92 / 2); ``temperature=0`` is greedy.
    prompt : str or token ids
        A string is wrapped in the chat template when the tokenizer has one (``chat=None``).
    vocab : Vocabulary, optional
        Default: ``vocabulary_for(tokenizer, model's logits width)``.
    return_result : bool
        Return a :class:`KnowledgeResult` (diagnostics included) instead of the text.
    """
    import torch

    from constrain.decode import IncompleteGenerationError, choose_token
    from constrain.kernels.bitmask import allocate_bitmask

    cfg = config or KIDConfig()
    if vocab is None:
        from constrain.integrations.transformers import model_vocab_size, vocabulary_for

        vocab = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer))
    if constraint is not None and constraint.vocab.size != vocab.size:
        raise ValueError(f"constraint vocabulary has {constraint.vocab.size} tokens, model has {vocab.size}")
    if isinstance(prompt, str):
        from constrain.generate import encode_prompt

        prompt_ids = encode_prompt(tokenizer, prompt, chat=chat, system=system)
        prompt_text = prompt
    else:
        prompt_ids = [int(t) for t in prompt]
        prompt_text = decode_ids(tokenizer, prompt_ids) if tokenizer is not None else ""
    if not prompt_ids:
        raise ValueError("the prompt must have at least one token")
    query = _knowledge_source(knowledge, cfg, tokenizer)
    if isinstance(knowledge, KnowledgeTrie) and knowledge.is_empty():
        query = _knowledge_source(None, cfg, tokenizer)
    matcher = constraint.matcher() if constraint is not None else None
    bitmask = allocate_bitmask(1, vocab.size)
    eos = list(vocab.eos_token_ids)
    device = model_device(model)
    generator = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
    kv = KVForward(model)
    res = KnowledgeResult(text="", token_ids=[], prompt_tokens=len(prompt_ids), stop_reason="max_new_tokens", seconds=0.0)
    start = time.perf_counter()

    with torch.no_grad():
        _, past = kv(torch.tensor([prompt_ids[:-1]], device=device), None) if len(prompt_ids) > 1 else (None, None)
    last = prompt_ids[-1]
    generated: list[int] = []
    gen_text = ""
    for _step in range(max_new_tokens):
        if matcher is not None:
            allowed = _allowed_tensor(matcher, vocab.size, bitmask)
            if matcher.is_accepting() and int(allowed.sum()) == sum(1 for e in eos if allowed[e]):
                res.stop_reason = "constraint_complete"
                break
        else:
            allowed = None
        last_t = torch.tensor([[last]], device=device)
        with torch.no_grad():
            logits, new_past = kv(last_t, past)
        base = torch.log_softmax(logits[0, -1, : vocab.size].double(), -1).cpu()
        k_ids = query(prompt_ids + generated, prompt_text + gen_text)
        k_ids = {t for t in k_ids if 0 <= t < vocab.size and (allowed is None or bool(allowed[t]))}
        res.knowledge_sizes.append(len(k_ids))
        fused = base
        if k_ids and cfg.n_iter > 0 and past:
            k_idx = torch.tensor(sorted(k_ids), dtype=torch.long)
            dh = _perturb(kv, past, last_t, base.to(device=device, dtype=torch.float32), k_idx.to(device), cfg, vocab.size)
            with torch.no_grad():
                pert = tuple((k + dk, v + dv) for (k, v), (dk, dv) in zip(past, dh))
                logits_s, new_past = kv(last_t, pert)
            infused = torch.log_softmax(logits_s[0, -1, : vocab.size].double(), -1).cpu()
            res.base_mass.append(float(base[k_idx].exp().sum()))
            res.infused_mass.append(float(infused[k_idx].exp().sum()))
            res.kl.append(float((infused.exp() * (infused - base)).sum()))
            res.n_updates += 1
            fused = cfg.gm_scale * infused + (1.0 - cfg.gm_scale) * base
        x = filter_logits(fused, generated=generated, allowed=allowed, no_repeat_ngram=no_repeat_ngram, top_k=top_k, top_p=top_p)
        if torch.isinf(x).all():
            from constrain.errors import VocabularyError

            raise VocabularyError("no token of the vocabulary can continue the output")
        token = choose_token(x, temperature, 1.0, 0, generator)
        if matcher is not None and not matcher.accept_token(token):  # pragma: no cover - masked above
            raise RuntimeError(f"internal: token {token} rejected by its own mask")
        past = new_past
        res.kv_lengths.append(past_length(past))
        if vocab.is_eos(token):
            res.stop_reason = "eos"
            break
        generated.append(token)
        last = token
        gen_text = "\n" + vocab.decode(generated).decode("utf-8", "replace")
    res.token_ids = generated
    res.text = vocab.decode(generated).decode("utf-8", "replace")
    res.seconds = time.perf_counter() - start
    if res.stop_reason == "max_new_tokens" and matcher is not None and not matcher.is_accepting() and not allow_incomplete:
        raise IncompleteGenerationError(res.text, max_new_tokens)
    return res if return_result else res.text


def _perturb(kv: KVForward, past, last_t, base_logp, k_idx, cfg: KIDConfig, vocab_size: int):
    """The n_iter gradient steps on additive key/value perturbations; returns [(dK, dV)] per layer."""
    import torch

    dh = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in past]
    gmax: list[float] | None = None
    for _ in range(cfg.n_iter):
        leaves = [(dk.detach().requires_grad_(True), dv.detach().requires_grad_(True)) for dk, dv in dh]
        with torch.enable_grad():
            pert = tuple((k + dk, v + dv) for (k, v), (dk, dv) in zip(past, leaves))
            logits, _ = kv(last_t, pert)
            logp = torch.log_softmax(logits[0, -1, :vocab_size].float(), -1)
            loss = -torch.logsumexp(logp[k_idx], 0) + cfg.kl_scale * (logp.exp() * (logp - base_logp)).sum()
            flat = [t for pair in leaves for t in pair]
            grads = torch.autograd.grad(loss, flat)
        norms = [float(torch.sqrt(grads[2 * i].pow(2).sum() + grads[2 * i + 1].pow(2).sum())) for i in range(len(dh))]
        gmax = [n + 1e-15 for n in norms] if gmax is None else [max(g, n) for g, n in zip(gmax, norms)]
        dh = [
            (dk.detach() - cfg.step_size * grads[2 * i] / gmax[i] ** cfg.gamma,
             dv.detach() - cfg.step_size * grads[2 * i + 1] / gmax[i] ** cfg.gamma)
            for i, (dk, dv) in enumerate(leaves)
        ]
    return dh


def infused_distribution(model: Any, context_ids: Sequence[int], knowledge_ids: Iterable[int], config: KIDConfig | None = None):
    """One KID update for a fixed context: ``(π, π*)`` as float64 log-probabilities (torch, CPU).

    ``π`` is the model's next-token distribution after ``context_ids``; ``π*`` the distribution
    after ``config.n_iter`` gradient steps on the cached keys/values of ``context_ids[:-1]``
    (before fusion). For tests and diagnostics.
    """
    import torch

    cfg = config or KIDConfig()
    kv = KVForward(model)
    device = model_device(model)
    ids = [int(t) for t in context_ids]
    if len(ids) < 2:
        raise ValueError("the context needs at least two tokens (a cache to perturb and a last token)")
    with torch.no_grad():
        _, past = kv(torch.tensor([ids[:-1]], device=device), None)
        last_t = torch.tensor([[ids[-1]]], device=device)
        logits, _ = kv(last_t, past)
    width = logits.shape[-1]
    base = torch.log_softmax(logits[0, -1].double(), -1)
    k_idx = torch.tensor(sorted({int(t) for t in knowledge_ids}), dtype=torch.long, device=device)
    if len(k_idx) == 0 or cfg.n_iter == 0:
        return base.cpu(), base.cpu()
    dh = _perturb(kv, past, last_t, base.float(), k_idx, cfg, width)
    with torch.no_grad():
        logits_s, _ = kv(last_t, tuple((k + dk, v + dv) for (k, v), (dk, dv) in zip(past, dh)))
    return base.cpu(), torch.log_softmax(logits_s[0, -1].double(), -1).cpu()
