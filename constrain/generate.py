"""Constrained generation with a causal LM: KV cache, chat templates, greedy or sampled decoding.

Each step: one forward pass on the new tokens (the KV cache holds the rest), the matcher fills the
bitmask, disallowed logits become -inf, a token is chosen and fed to the matcher. Torch and
transformers are imported on first use only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from constrain.compiled import CompiledConstraint
from constrain.errors import ConstrainError, VocabularyError
from constrain.kernels.bitmask import allocate_bitmask, apply_bitmask
from constrain.limits import DEFAULT_LIMITS, Limits


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
    """Text and statistics of one constrained generation."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    stop_reason: str  # "eos" | "constraint_complete" (only EOS was allowed) | "max_new_tokens"
    seconds: float
    mask_seconds: float
    step_seconds: list[float] = field(default_factory=list)


def resolve_constraint(
    vocab,
    *,
    regex: str | None = None,
    grammar: Any = None,
    constraint: CompiledConstraint | None = None,
    start: str = "start",
    limits: Limits = DEFAULT_LIMITS,
) -> CompiledConstraint:
    """Compile whichever of ``regex=`` / ``grammar=`` was given, or check ``constraint=`` fits ``vocab``."""
    given = [name for name, x in (("regex", regex), ("grammar", grammar), ("constraint", constraint)) if x is not None]
    if len(given) != 1:
        raise TypeError(f"pass exactly one of regex=, grammar= or constraint= (got {given or 'none'})")
    if constraint is not None:
        if constraint.vocab.size != vocab.size:
            raise ValueError(
                f"the constraint was compiled for a vocabulary of {constraint.vocab.size} tokens, "
                f"but the model has {vocab.size} logits"
            )
        return constraint
    if grammar is not None:
        from constrain.grammar import compile_grammar

        return compile_grammar(grammar, vocab, start=start, limits=limits)
    from constrain.dfa_constraint import compile_regex

    return compile_regex(regex, vocab, limits=limits)


def encode_prompt(tokenizer: Any, prompt: str, *, chat: bool | None = None, system: str | None = None) -> list[int]:
    """Token ids of ``prompt``, wrapped in the chat template when the tokenizer has one (``chat=None``)."""
    if chat is None:
        chat = bool(getattr(tokenizer, "chat_template", None))
    if chat:
        messages = []
        if system is not None:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt)["input_ids"])


class _CachedForward:
    """One decoding step on new tokens with the KV cache, across transformers versions.

    transformers >= 5.2x names the cache argument and output ``cache``; older releases use
    ``past_key_values``. ``logits_to_keep=1`` skips the vocabulary projection of prompt positions.
    """

    def __init__(self, model: Any):
        import inspect

        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_name = "cache" if "cache" in params else "past_key_values"
        self.keep_last = "logits_to_keep" in params
        self.cache = None

    def __call__(self, input_ids):
        kwargs = {self.cache_name: self.cache, "use_cache": True}
        if self.keep_last:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, **kwargs)
        self.cache = getattr(out, self.cache_name, None)
        if self.cache is None:
            self.cache = out.past_key_values
        return out.logits[0, -1, :]


def _choose_token(logits, temperature: float, top_p: float, top_k: int, generator) -> int:
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


def generate_ids(
    model: Any,
    tokenizer: Any,
    prompt: str,
    *,
    regex: str | None = None,
    grammar: Any = None,
    constraint: CompiledConstraint | None = None,
    start: str = "start",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    allow_incomplete: bool = False,
) -> GenerationResult:
    """Like :func:`generate` but returns a :class:`GenerationResult` with ids and timings."""
    import torch

    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    vocab = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer))
    compiled = resolve_constraint(
        vocab, regex=regex, grammar=grammar, constraint=constraint, start=start, limits=limits
    )
    matcher = compiled.matcher()
    prompt_ids = encode_prompt(tokenizer, prompt, chat=chat, system=system)
    device = next(model.parameters()).device
    generator = None
    if seed is not None:
        generator = torch.Generator(device="cpu").manual_seed(seed)
    bitmask = allocate_bitmask(1, vocab.size)
    bitmask_t = torch.from_numpy(bitmask)
    out_ids: list[int] = []
    step_seconds: list[float] = []
    mask_seconds = 0.0
    stop_reason = "max_new_tokens"
    start = time.perf_counter()
    next_input = torch.tensor([prompt_ids], dtype=torch.long, device=device)
    forward = _CachedForward(model)
    eos_words = bitmask_t.new_zeros(bitmask.shape[1]).numpy()
    for e in vocab.eos_token_ids:
        eos_words.view("uint32")[e >> 5] |= 1 << (e & 31)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            t0 = time.perf_counter()
            # The mask depends only on the matcher, so it is known before the forward pass: a
            # finished constraint (only EOS allowed) stops without paying for one more forward.
            matcher.fill_bitmask(bitmask, 0)
            mask_seconds += time.perf_counter() - t0
            if not bitmask.any():
                raise VocabularyError(
                    f"no token of the vocabulary can continue the output {vocab.decode(out_ids)!r}: "
                    "the constraint needs text this tokenizer cannot produce"
                )
            if np.array_equal(bitmask[0], eos_words):
                stop_reason = "constraint_complete"
                break
            logits = forward(next_input).float()
            apply_bitmask(logits, bitmask_t.to(logits.device), vocab_size=vocab.size)
            token = _choose_token(logits.cpu(), temperature, top_p, top_k, generator)
            if not matcher.accept_token(token):  # pragma: no cover - the mask makes this impossible
                raise RuntimeError(f"internal: sampled token {token} rejected by its own mask")
            step_seconds.append(time.perf_counter() - t0)
            if vocab.is_eos(token):
                stop_reason = "eos"
                break
            out_ids.append(token)
            next_input = torch.tensor([[token]], dtype=torch.long, device=device)
    text = vocab.decode(out_ids).decode("utf-8", errors="replace")
    if stop_reason == "max_new_tokens" and not matcher.is_accepting() and not allow_incomplete:
        raise IncompleteGenerationError(text, max_new_tokens)
    return GenerationResult(
        text=text,
        token_ids=out_ids,
        prompt_tokens=len(prompt_ids),
        stop_reason=stop_reason,
        seconds=time.perf_counter() - start,
        mask_seconds=mask_seconds,
        step_seconds=step_seconds,
    )


def generate(
    model: Any,
    tokenizer: Any,
    prompt: str,
    *,
    regex: str | None = None,
    grammar: Any = None,
    constraint: CompiledConstraint | None = None,
    start: str = "start",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> str:
    """Generate text from ``model`` that matches the constraint, and return it.

    Parameters
    ----------
    model, tokenizer
        A ``transformers`` causal LM and its tokenizer (see :func:`constrain.load_default_model`).
    prompt : str
        The user message; wrapped in the tokenizer's chat template when it has one (``chat=None``).
    regex : str, optional
        A Python regular expression the whole output must match.
    grammar : str or path, optional
        A Lark grammar (text or ``.lark`` file); the output must be a sentence of it
        (rule ``start``, see :func:`constrain.compile_grammar`).
    constraint : CompiledConstraint, optional
        Any compiled constraint (``compile_regex`` ...), compiled for this model's vocabulary.
    max_new_tokens : int, default: 256
    temperature : float, default: 0.0
        0 is greedy decoding; otherwise softmax sampling with ``top_p`` / ``top_k``, seeded by ``seed``.

    Raises
    ------
    IncompleteGenerationError
        ``max_new_tokens`` ran out before the output could end (``.text`` holds the prefix).
    """
    return generate_ids(
        model,
        tokenizer,
        prompt,
        regex=regex,
        grammar=grammar,
        constraint=constraint,
        start=start,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        chat=chat,
        system=system,
        limits=limits,
    ).text
