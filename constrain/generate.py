"""Constrained generation with a causal LM: prompts, constraints and options in, text out.

This module resolves what the user passed (regex / grammar / compiled constraint, one prompt or a
batch, chat template or not) and hands the batch to :func:`constrain.decode.decode_batch`, which
runs the decoding loop. Torch and transformers are imported on first use only.
"""

from __future__ import annotations

from typing import Any

from constrain.compiled import CompiledConstraint
from constrain.decode import (
    DecodeOptions,
    GenerationResult,
    IncompleteGenerationError,
    decode_batch,
    decode_batch_on_device,
)
from constrain.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "GenerationResult",
    "IncompleteGenerationError",
    "encode_prompt",
    "generate",
    "generate_ids",
    "resolve_constraint",
]


def resolve_constraint(
    vocab,
    *,
    regex: str | None = None,
    grammar: Any = None,
    schema: Any = None,
    constraint: CompiledConstraint | None = None,
    start: str = "start",
    limits: Limits = DEFAULT_LIMITS,
    schema_options: dict | None = None,
) -> CompiledConstraint:
    """Compile whichever of ``regex=`` / ``grammar=`` / ``schema=`` was given, or check ``constraint=`` fits ``vocab``."""
    pairs = (("regex", regex), ("grammar", grammar), ("schema", schema), ("constraint", constraint))
    given = [name for name, x in pairs if x is not None]
    if len(given) != 1:
        raise TypeError(f"pass exactly one of regex=, grammar=, schema= or constraint= (got {given or 'none'})")
    if constraint is not None:
        if constraint.vocab.size != vocab.size:
            raise ValueError(
                f"the constraint was compiled for a vocabulary of {constraint.vocab.size} tokens, "
                f"but the model has {vocab.size} logits"
            )
        return constraint
    if schema is not None:
        from constrain.schema import compile_json_schema

        return compile_json_schema(schema, vocab, limits=limits, **(schema_options or {}))
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


def _generate_speculative(
    model: Any, tokenizer: Any, prompt: Any, speculative: Any, *, regex, grammar, schema, schema_options,
    constraint, start, max_new_tokens: int, temperature: float, top_p: float, top_k: int, seed, chat, system,
    limits: Limits,
) -> str | list[str]:
    """``speculative=``: one prompt on the batch-1 path, a list of prompts decoded as one batch."""
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for
    from constrain.speculative import generate_speculative

    if top_p < 1.0 or top_k > 0:
        raise ValueError("speculative decoding is exact for greedy and plain temperature sampling only")
    vocab = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer))
    if isinstance(prompt, str):
        prompts = None
    else:
        prompts = list(prompt)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompt must be a string or a non-empty list of strings")
    if isinstance(constraint, list):
        if prompts is None or len(constraint) != len(prompts):
            raise ValueError(f"got {len(constraint)} constraints for {1 if prompts is None else len(prompts)} prompts")
        compiled: Any = [resolve_constraint(vocab, constraint=c, limits=limits) for c in constraint]
    else:
        compiled = resolve_constraint(
            vocab, regex=regex, grammar=grammar, schema=schema, constraint=constraint, start=start,
            limits=limits, schema_options=schema_options,
        )
    result = generate_speculative(
        model, tokenizer, prompt if prompts is None else prompts, compiled, speculative,
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, chat=chat, system=system,
    )
    return result.text if prompts is None else [r.text for r in result]


def _generate_guided(
    model: Any, tokenizer: Any, prompt: Any, *, knowledge, search, regex, grammar, schema, schema_options,
    constraint, start, max_new_tokens: int, seed, chat, system, limits: Limits,
) -> str:
    """``knowledge=`` (KID) or ``search=`` (lookahead) decoding, inside the constraint if one is given."""
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    if knowledge is not None and search is not None:
        raise TypeError("pass knowledge= or search=, not both")
    if not isinstance(prompt, str):
        raise TypeError("knowledge= and search= decode one prompt at a time")
    compiled = None
    if any(x is not None for x in (regex, grammar, schema, constraint)):
        vocab = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer))
        compiled = resolve_constraint(
            vocab, regex=regex, grammar=grammar, schema=schema, constraint=constraint, start=start,
            limits=limits, schema_options=schema_options,
        )
    if knowledge is not None:
        from constrain.knowledge import generate_with_knowledge

        return generate_with_knowledge(
            model, tokenizer, prompt, knowledge=knowledge, constraint=compiled,
            max_new_tokens=max_new_tokens, seed=seed, chat=chat, system=system,
        )
    from constrain.search import generate_with_search

    return generate_with_search(
        model, tokenizer, prompt, search=search, constraint=compiled, max_new_tokens=max_new_tokens,
        chat=chat, system=system,
    )


def _generate_aligned(
    model: Any, tokenizer: Any, prompt: Any, *, regex, grammar, schema, constraint, start, num_samples,
    temperature: float, seed, max_new_tokens: int, chat, system, limits: Limits,
) -> list[str]:
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for
    from constrain.sampling import generate_aligned

    if not isinstance(prompt, str):
        raise TypeError("sampling='aligned' takes one prompt (it draws num_samples outputs for it)")
    if not num_samples or num_samples < 1:
        raise ValueError("sampling='aligned' needs num_samples >= 1")
    if temperature <= 0:
        temperature = 1.0  # aligned sampling targets the sampled distribution; greedy has none
    vocab = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer))
    compiled = resolve_constraint(
        vocab, regex=regex, grammar=grammar, schema=schema, constraint=constraint, start=start, limits=limits
    )
    prompt_ids = encode_prompt(tokenizer, prompt, chat=chat, system=system)
    return generate_aligned(
        model, tokenizer, prompt_ids, compiled, num_samples,
        temperature=temperature, seed=seed, max_new_tokens=max_new_tokens,
    )


def _device_tables_or_none(compiled: list[CompiledConstraint], device: Any, batch: int):
    """Device tables for the constraints of the prompts and each prompt's index into them, or None
    (with a warning) to use the CPU path; ``batch``: rows decoded at once."""
    import warnings

    from constrain.errors import LimitExceededError
    from constrain.integrations.device_tables import DeviceTables

    distinct: list[CompiledConstraint] = []
    index: dict[int, int] = {}
    for c in compiled:
        if id(c) not in index:
            index[id(c)] = len(distinct)
            distinct.append(c)
    try:
        tables = DeviceTables.for_constraints(distinct, device)
        if 2 * batch + 1 > tables.max_rows:
            tables.initial_states(batch)  # raises the limit's error
    except (LimitExceededError, TypeError) as exc:
        warnings.warn(f"device tables not used ({exc}); using the CPU path", stacklevel=3)
        return None
    return tables, [index[id(c)] for c in compiled]


def _with_length_bounds(
    model: Any, tokenizer: Any, length: dict, fit_budget: bool, max_new_tokens: int, *, regex, grammar, schema,
    schema_options, constraint, start, limits,
) -> CompiledConstraint | list[CompiledConstraint]:
    """Compile the constraint (or each of a list) and wrap it in the requested length bounds."""
    from constrain.constraints.length import length_bounds
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    bounds = dict(length)
    if fit_budget:
        if max_new_tokens < 2:
            raise ValueError("fit_budget=True needs max_new_tokens >= 2 (one token of output and EOS)")
        cap = max_new_tokens - 1
        bounds["max_tokens"] = cap if bounds.get("max_tokens") is None else min(cap, bounds["max_tokens"])
    vocab = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer))
    if isinstance(constraint, list):
        return [length_bounds(resolve_constraint(vocab, constraint=c, limits=limits), limits=limits, **bounds)
                for c in constraint]
    inner = resolve_constraint(
        vocab, regex=regex, grammar=grammar, schema=schema, constraint=constraint, start=start, limits=limits,
        schema_options=schema_options,
    )
    return length_bounds(inner, limits=limits, **bounds)


def _pad_token_id(tokenizer: Any, vocab) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else int(vocab.eos_token_ids[0])


def generate_ids(
    model: Any,
    tokenizer: Any,
    prompt: str | list[str],
    *,
    regex: str | None = None,
    grammar: Any = None,
    schema: Any = None,
    schema_options: dict | None = None,
    constraint: CompiledConstraint | list[CompiledConstraint] | None = None,
    start: str = "start",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    fast_forward: bool | str = False,
    opportunistic: bool = False,
    overlap: bool = True,
    max_batch_size: int | None = None,
    device_tables: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    allow_incomplete: bool = False,
    length: dict | None = None,
    fit_budget: bool = False,
) -> Any:
    """Like :func:`generate` but returns :class:`GenerationResult` (a list of them for a list of prompts)."""
    from constrain.integrations.transformers import model_vocab_size, vocabulary_for

    if length or fit_budget:
        constraint = _with_length_bounds(
            model, tokenizer, length or {}, fit_budget, max_new_tokens, regex=regex, grammar=grammar,
            schema=schema, schema_options=schema_options, constraint=constraint, start=start, limits=limits,
        )
        regex = grammar = schema = None

    vocab = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer))
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if isinstance(constraint, list):
        if len(constraint) != len(prompts):
            raise ValueError(f"got {len(constraint)} constraints for {len(prompts)} prompts")
        compiled = [resolve_constraint(vocab, constraint=c, limits=limits) for c in constraint]
    else:
        one = resolve_constraint(
            vocab, regex=regex, grammar=grammar, schema=schema, constraint=constraint, start=start,
            limits=limits, schema_options=schema_options,
        )
        compiled = [one] * len(prompts)
    options = DecodeOptions(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        fast_forward=fast_forward,
        opportunistic=opportunistic,
        overlap=overlap,
        allow_incomplete=allow_incomplete,
        max_batch_size=max_batch_size,
    )
    prompt_ids = [encode_prompt(tokenizer, p, chat=chat, system=system) for p in prompts]
    if device_tables:
        # Device tables decode a batch to its end; a max_batch_size is honoured in chunks.
        step = max_batch_size or len(prompt_ids)
        found = _device_tables_or_none(compiled, next(model.parameters()).device, min(step, len(prompt_ids)))
        if found is not None:
            tables, constraint_of_row = found
            results = [
                r
                for i in range(0, len(prompt_ids), step)
                for r in decode_batch_on_device(
                    model, prompt_ids[i : i + step], tables, options, pad_token_id=_pad_token_id(tokenizer, vocab),
                    constraint_of_row=constraint_of_row[i : i + step],
                )
            ]
            return results[0] if isinstance(prompt, str) else results
    results = decode_batch(
        model,
        prompt_ids,
        [c.matcher() for c in compiled],
        vocab,
        options,
        pad_token_id=_pad_token_id(tokenizer, vocab),
    )
    return results[0] if isinstance(prompt, str) else results


def generate(
    model: Any,
    tokenizer: Any,
    prompt: str | list[str],
    *,
    regex: str | None = None,
    grammar: Any = None,
    schema: Any = None,
    schema_options: dict | None = None,
    constraint: CompiledConstraint | list[CompiledConstraint] | None = None,
    start: str = "start",
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    fast_forward: bool | str = False,
    opportunistic: bool = False,
    overlap: bool = True,
    max_batch_size: int | None = None,
    device_tables: bool = False,
    sampling: str = "masked",
    num_samples: int | None = None,
    knowledge: Any = None,
    search: Any = None,
    speculative: Any = None,
    length: dict | None = None,
    fit_budget: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """Generate text from ``model`` that satisfies the constraint, and return it.

    Parameters
    ----------
    model, tokenizer
        A ``transformers`` causal LM and its tokenizer (see :func:`constrain.load_default_model`).
    prompt : str or list of str
        The user message, wrapped in the tokenizer's chat template when it has one (``chat=None``).
        A list decodes all prompts as one batch and returns a list of strings.
    regex : str, optional
        A Python regular expression the whole output must match.
    grammar : str or path, optional
        A Lark grammar (text or ``.lark`` file); the output must be a sentence of it
        (rule ``start``, see :func:`constrain.compile_grammar`).
    schema : dict, JSON string, path or pydantic model class, optional
        A JSON Schema (draft 2020-12) the output must be a valid instance of
        (see :func:`constrain.compile_json_schema`; unsupported keywords raise, never ignored).
    schema_options : dict, optional
        Options for the schema compiler, e.g. ``{"whitespace": "compact"}``.
    constraint : CompiledConstraint or list of them, optional
        Any compiled constraint for this model's vocabulary; a list gives each prompt its own.
    max_new_tokens : int, default: 256
        Budget per row, forced tokens included.
    temperature : float, default: 0.0
        0 is greedy decoding; otherwise softmax sampling with ``top_p`` / ``top_k``, seeded by ``seed``.
    fast_forward : False, True/"bytes" or "singleton", default: False
        Append the tokens the constraint forces without sampling them, all fed in one forward pass.
        "bytes" tokenizes the forced text (stopping where a token could span past it);
        "singleton" takes only tokens that are the single allowed choice, which keeps greedy
        output identical to decoding without fast-forward.
    opportunistic : bool, default: False
        Sample from the unmasked logits and compute the mask only when the token is invalid
        (exact for greedy and plain temperature sampling; rejected with top_p/top_k).
    overlap : bool, default: True
        Compute the next masks on a worker thread while the forward pass runs.
    max_batch_size : int, optional
        With a list of prompts: keep at most this many rows in the model's batch; each waiting
        prompt joins the running batch as soon as a row finishes (continuous batching). Default:
        every prompt at once.
    sampling : "masked" or "aligned", default: "masked"
        "aligned" draws ``num_samples`` outputs with grammar-aligned sampling (ASAp), whose
        distribution converges to the model's distribution conditioned on the constraint (masked
        sampling is biased); returns a list of strings. Needs ``temperature > 0`` (default 1.0 there).
    num_samples : int, optional
        Number of outputs for ``sampling="aligned"``.
    knowledge : KnowledgeTrie, optional
        Knowledge-infused decoding (KID): the entities in the text query the trie and the model's
        cached keys/values are nudged toward knowledge continuations, inside the constraint (if
        any). Sampling follows KID's defaults (``constrain.knowledge.KIDConfig``; top-k 20,
        top-p 0.92); call :func:`constrain.knowledge.generate_with_knowledge` to change them.
    search : Lookahead, optional
        DeAL-style lookahead search: top-k candidates scored by log-likelihood plus a weighted
        reward of a short rollout, inside the constraint (if any).
    speculative : Speculative, optional
        Speculative decoding with drafts pre-filtered by the constraint (forced tokens, prompt
        lookup, a draft model or a layer-skipped self-draft); verification is exact, so the output
        distribution is that of masked decoding (greedy: token-identical). A list of prompts is
        decoded as one batch (one target forward per step over every row's drafts).
    length : dict, optional
        Length bounds on the output, as keyword arguments of :func:`constrain.length_bounds`
        (``min_tokens``, ``max_tokens``, ``min_chars``, ``max_chars``, ``min_words``,
        ``max_words``), intersected with the constraint. A max bound ends gracefully: a token is
        allowed only while a valid completion still fits, so the output is never cut mid-way.
    fit_budget : bool, default: False
        Shorthand for ``length={"max_tokens": max_new_tokens - 1}``: the constraint itself makes
        the output (and its EOS) end within ``max_new_tokens``, so a JSON document is never cut
        by the budget. Merged with ``length`` (the tighter bound wins).
    device_tables : bool, default: False
        Keep the constraints' token transition tables and per-state bitmasks on the model's
        device, filled lazily: a state's bitmask is computed on the host when decoding first
        reaches it, a transition when it is first taken (a regex state's whole row at once); every
        later visit stays on the device (greedy or temperature sampling, no fast-forward). Best for
        regexes and schemas without recursion, whose states are few; any constraint works (exact:
        the constraint computes every entry). Bounded by ``limits.max_device_table_bytes`` (the
        tables are flushed and refilled when full); falls back to the CPU path, with a warning,
        when the bound cannot hold two rows per batch row.

    Raises
    ------
    IncompleteGenerationError
        ``max_new_tokens`` ran out before the output could end (``.text`` holds the prefix).
    """
    if length or fit_budget:
        constraint = _with_length_bounds(
            model, tokenizer, length or {}, fit_budget, max_new_tokens, regex=regex, grammar=grammar,
            schema=schema, schema_options=schema_options, constraint=constraint, start=start, limits=limits,
        )
        regex = grammar = schema = None
    if max_batch_size is not None and (
        speculative is not None or knowledge is not None or search is not None or sampling != "masked"
    ):
        raise ValueError("max_batch_size applies to masked decoding only, not with speculative/knowledge/search/"
                         "aligned sampling")
    if speculative is not None:
        return _generate_speculative(
            model, tokenizer, prompt, speculative, regex=regex, grammar=grammar, schema=schema,
            schema_options=schema_options, constraint=constraint, start=start, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, chat=chat, system=system, limits=limits,
        )
    if knowledge is not None or search is not None:
        return _generate_guided(
            model, tokenizer, prompt, knowledge=knowledge, search=search, regex=regex, grammar=grammar,
            schema=schema, schema_options=schema_options, constraint=constraint, start=start,
            max_new_tokens=max_new_tokens, seed=seed, chat=chat, system=system, limits=limits,
        )
    if sampling not in ("masked", "aligned"):
        raise ValueError(f"sampling must be 'masked' or 'aligned', got {sampling!r}")
    if sampling == "aligned":
        return _generate_aligned(
            model, tokenizer, prompt, regex=regex, grammar=grammar, schema=schema, constraint=constraint,
            start=start, num_samples=num_samples, temperature=temperature, seed=seed, max_new_tokens=max_new_tokens,
            chat=chat, system=system, limits=limits,
        )
    if num_samples is not None:
        raise TypeError("num_samples= goes with sampling='aligned'")
    result = generate_ids(
        model,
        tokenizer,
        prompt,
        regex=regex,
        grammar=grammar,
        schema=schema,
        schema_options=schema_options,
        constraint=constraint,
        start=start,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        seed=seed,
        chat=chat,
        system=system,
        fast_forward=fast_forward,
        opportunistic=opportunistic,
        overlap=overlap,
        max_batch_size=max_batch_size,
        device_tables=device_tables,
        limits=limits,
    )
    return result.text if isinstance(prompt, str) else [r.text for r in result]
