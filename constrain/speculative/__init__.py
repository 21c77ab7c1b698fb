"""Constrained speculative decoding (docs/speculative.md; spec: algorithms.md section 4).

    from constrain.speculative import Speculative, generate_speculative
    res = generate_speculative(model, tokenizer, "Convert ...", constraint, Speculative(),
                               max_new_tokens=128)
    res.text, res.speculative["mean_accepted_length"], res.speculative["per_drafter"]

``Speculative()`` drafts with the constraint's forced tokens and prompt lookup (no extra model).
``Speculative(drafter="layer_skip", draft_layers=10)`` drafts with the target's first 10 layers;
``Speculative(drafter=ModelDrafter(small_model))`` with a separate draft model sharing the tokenizer.
Greedy output is token-identical to masked greedy decoding; sampled output has the distribution of
masked sampling at the same temperature.

A list of prompts decodes as one batch (one target forward per step over every row's drafts):

    results = generate_speculative(model, tokenizer, ["p1", "p2"], constraint, Speculative())
    # or constraint=[c1, c2]: one constraint per row
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from constrain.speculative.decode import SpeculativeResult, StepInfo, speculative_decode, speculative_decode_batch
from constrain.speculative.drafters import (
    Chain,
    DraftBuilder,
    Drafter,
    ForcedDrafter,
    LayerSkipDrafter,
    ModelDrafter,
    PromptLookupDrafter,
)
from constrain.speculative.models import CachedLM, CallableLM, layer_skip_model

__all__ = [
    "CachedLM",
    "CallableLM",
    "Chain",
    "DraftBuilder",
    "Drafter",
    "ForcedDrafter",
    "LayerSkipDrafter",
    "ModelDrafter",
    "PromptLookupDrafter",
    "Speculative",
    "SpeculativeResult",
    "StepInfo",
    "generate_speculative",
    "layer_skip_model",
    "speculative_decode",
    "speculative_decode_batch",
]

_NAMED = ("lookup", "forced", "lookup+forced", "layer_skip")


@dataclass(frozen=True)
class Speculative:
    """Speculative decoding settings.

    drafter
        ``None`` (default: forced tokens, then prompt lookup, taking turns), a name (``"lookup"``,
        ``"forced"``, ``"lookup+forced"``, ``"layer_skip"``), a :class:`Drafter`, or a sequence of
        drafters chained. Model drafters are wrapped so forced tokens come first.
    max_draft
        Most tokens drafted per step (12: on SmolLM2 JSON generation 12-13% faster than 8, see docs/speculative.md).
    stop_threshold
        Adaptive draft length: stop drafting when the predicted chance of a rejection exceeds it
        (1.0 = always draft ``max_draft``); see :class:`DraftBuilder`.
    draft_layers
        Decoder layers of the self-speculative draft (``drafter="layer_skip"``).
    """

    drafter: Any = None
    max_draft: int = 12
    stop_threshold: float = 0.8
    draft_layers: int = 8

    def __post_init__(self) -> None:
        if self.max_draft < 0:
            raise ValueError(f"max_draft must be >= 0, got {self.max_draft}")
        if not 0.0 <= self.stop_threshold <= 1.0:
            raise ValueError(f"stop_threshold must be in [0, 1], got {self.stop_threshold}")
        if isinstance(self.drafter, str) and self.drafter not in _NAMED:
            raise ValueError(f"drafter must be one of {_NAMED}, a Drafter or a list of them; got {self.drafter!r}")

    def build_drafter(self) -> Drafter:
        """A fresh drafter for one generation (drafters hold per-generation caches)."""
        d = self.drafter
        if d is None or d == "lookup+forced":
            return Chain([ForcedDrafter(), PromptLookupDrafter()])
        if d == "lookup":
            return PromptLookupDrafter()
        if d == "forced":
            return ForcedDrafter()
        if d == "layer_skip":
            return Chain([ForcedDrafter(), LayerSkipDrafter(self.draft_layers)])
        if isinstance(d, ModelDrafter):
            return Chain([ForcedDrafter(), d])
        if isinstance(d, Drafter):
            return d
        if isinstance(d, Sequence):
            return Chain(list(d))
        raise TypeError(f"cannot use {type(d).__name__} as a drafter")


def _is_batch(prompt: Any) -> bool:
    """A list of prompts (texts or token-id lists), as opposed to one prompt's token ids."""
    return isinstance(prompt, (list, tuple)) and bool(prompt) and not isinstance(prompt[0], (int, np.integer))


def generate_speculative(
    model: Any,
    tokenizer: Any,
    prompt: str | Sequence[int] | Sequence[str] | Sequence[Sequence[int]],
    constraint: Any = None,
    speculative: Speculative | None = None,
    *,
    regex: str | None = None,
    grammar: Any = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    seed: int | None = None,
    chat: bool | None = None,
    system: str | None = None,
    allow_incomplete: bool = False,
    on_step: Any = None,
) -> Any:
    """Constrained generation with speculative decoding.

    ``tokenizer`` is a ``transformers`` tokenizer, or a :class:`~constrain.Vocabulary` when
    ``prompt`` is already a list of token ids. ``constraint`` is a compiled constraint (or give
    ``regex=`` / ``grammar=``). Returns a :class:`SpeculativeResult` (a ``GenerationResult`` with a
    ``speculative`` dict: steps, mean accepted draft length, per-drafter counts).

    ``prompt`` may be a list of prompts (texts, or token-id lists): the rows are decoded as one
    batch (:func:`speculative_decode_batch`, a ``transformers`` model is needed) and a list of
    results comes back. ``constraint`` may then be a list, one per row. Each row gets its own
    drafter from ``speculative.build_drafter()`` (a :class:`Drafter` instance you pass is shared
    by the rows). A one-prompt list takes the batch-1 path.
    """
    from constrain.generate import encode_prompt, resolve_constraint
    from constrain.vocab.vocabulary import Vocabulary

    speculative = speculative or Speculative()
    if isinstance(tokenizer, Vocabulary):
        vocab, hf_tokenizer = tokenizer, None
    else:
        from constrain.integrations.transformers import model_vocab_size, vocabulary_for

        vocab, hf_tokenizer = vocabulary_for(tokenizer, model_vocab_size(model, tokenizer)), tokenizer

    def ids_of(p: Any) -> list[int]:
        if isinstance(p, str):
            if hf_tokenizer is None:
                raise TypeError("a text prompt needs a transformers tokenizer; pass token ids with a Vocabulary")
            return encode_prompt(hf_tokenizer, p, chat=chat, system=system)
        return [int(t) for t in p]

    batch = _is_batch(prompt)
    prompts = list(prompt) if batch else [prompt]
    if isinstance(constraint, (list, tuple)):
        if len(constraint) != len(prompts):
            raise ValueError(f"got {len(constraint)} constraints for {len(prompts)} prompts")
        compiled = [resolve_constraint(vocab, constraint=c) for c in constraint]
    else:
        compiled = [resolve_constraint(vocab, regex=regex, grammar=grammar, constraint=constraint)] * len(prompts)
    prompt_ids = [ids_of(p) for p in prompts]
    common = dict(max_draft=speculative.max_draft, stop_threshold=speculative.stop_threshold,
                  max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, tokenizer=hf_tokenizer,
                  allow_incomplete=allow_incomplete, on_step=on_step)
    if len(prompts) == 1:  # batch 1: the per-sequence KV-cache path (no padding, cache cropped)
        result = speculative_decode(model, prompt_ids[0], compiled[0].matcher(), vocab,
                                    speculative.build_drafter(), **common)
        return [result] if batch else result
    pad = getattr(hf_tokenizer, "pad_token_id", None)
    return speculative_decode_batch(
        model, prompt_ids, [c.matcher() for c in compiled], vocab,
        [speculative.build_drafter() for _ in prompts], pad_token_id=pad, **common,
    )
