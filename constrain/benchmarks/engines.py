"""constrain and the peer engines behind one interface for end-to-end generation with ``transformers``.

Every engine is driven through its own ``transformers`` integration (a ``LogitsProcessor`` handed
to ``model.generate``), with the engine's default JSON Schema options:

* ``constrain``: :func:`constrain.schema.compile_json_schema` and
  :class:`constrain.integrations.transformers.ConstrainLogitsProcessor`.
* ``llguidance``: ``LLMatcher.grammar_from_json_schema`` + ``LLMatcher`` over
  ``llguidance.hf.from_tokenizer``; the processor uses ``llguidance.torch``'s
  ``fill_next_token_bitmask`` / ``apply_token_bitmask_inplace``.
* ``xgrammar``: ``GrammarCompiler.compile_json_schema`` and ``xgrammar.contrib.hf.LogitsProcessor``.
* ``outlines``: **outlines-core** (the ``outlines`` package is not used): schema -> regex with
  ``outlines_core.json_schema.build_regex_from_schema``, ``Index(regex, Vocabulary)``, and a
  processor over ``Guide`` with ``outlines_core.kernels.torch``.  Its ``Vocabulary`` is built from
  constrain's token bytes (``Vocabulary.from_pretrained`` would download).
* ``constrain-fit``: the same, with the length bound ``max_tokens = max_new_tokens - 1`` on the
  constraint (what ``constrain.generate(..., fit_budget=True)`` does): outputs end inside the budget.
* ``none``: unconstrained ``model.generate``.

Peers are optional imports: :func:`missing_engines` names the ones whose package is absent.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

__all__ = [
    "ALL_ENGINES",
    "EngineCompileError",
    "missing_engines",
    "build_engine",
]

ALL_ENGINES = ("constrain", "constrain-fit", "llguidance", "xgrammar", "outlines", "none")
_PACKAGES = {"llguidance": "llguidance", "xgrammar": "xgrammar", "outlines": "outlines_core"}


class EngineCompileError(Exception):
    """An engine could not compile a schema; ``error_class`` is the engine's own exception class."""

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class
        self.message = message


def missing_engines(names) -> dict[str, str]:
    """``{engine: why it cannot run}`` for the engines among ``names`` whose package is missing.

    Raises
    ------
    ValueError
        For a name that is not an engine.
    """
    out = {}
    for n in names:
        if n not in ALL_ENGINES:
            raise ValueError(f"unknown engine {n!r}; known: {', '.join(ALL_ENGINES)}")
        pkg = _PACKAGES.get(n)
        if pkg is not None and importlib.util.find_spec(pkg) is None:
            extra = "pip install 'constrain[bench]'"
            out[n] = f"package {pkg} is not installed ({extra})"
    return out


def _schema_text(schema: Any) -> str:
    return schema if isinstance(schema, str) else json.dumps(schema)


class _Engine:
    name = "?"

    def compile(self, schema: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def logits_processor(self, compiled: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class NoneEngine(_Engine):
    """Unconstrained generation: nothing to compile, no processor."""

    name = "none"

    def __init__(self, model, tokenizer, vocab_size: int):
        pass

    def compile(self, schema):
        return None

    def logits_processor(self, compiled):
        return None


class ConstrainEngine(_Engine):
    name = "constrain"

    def __init__(self, model, tokenizer, vocab_size: int):
        from constrain.integrations.transformers import vocabulary_for

        self.vocab = vocabulary_for(tokenizer, vocab_size)

    def compile(self, schema):
        from constrain.errors import ConstrainError
        from constrain.schema import compile_json_schema

        try:
            return compile_json_schema(schema, self.vocab)
        except ConstrainError as e:
            raise EngineCompileError(type(e).__name__, str(e)) from e

    def logits_processor(self, compiled):
        from constrain.integrations.transformers import ConstrainLogitsProcessor

        return ConstrainLogitsProcessor(compiled)


class ConstrainFitEngine(ConstrainEngine):
    """constrain with ``fit_budget``: the schema's constraint intersected with
    ``max_tokens = max_new_tokens - 1`` (:func:`constrain.max_length`), so the document closes
    inside the budget instead of being cut at ``max_new_tokens`` (no ``unfinished`` outputs)."""

    name = "constrain-fit"

    def __init__(self, model, tokenizer, vocab_size: int, max_new_tokens: int | None = None):
        super().__init__(model, tokenizer, vocab_size)
        self.max_new_tokens = max_new_tokens

    def compile(self, schema):
        from constrain.constraints.length import max_length
        from constrain.errors import ConstrainError

        if self.max_new_tokens is None or self.max_new_tokens < 2:
            raise ValueError("constrain-fit needs max_new_tokens >= 2")
        inner = super().compile(schema)
        try:
            return max_length(inner, max_tokens=self.max_new_tokens - 1)
        except ConstrainError as e:
            raise EngineCompileError(type(e).__name__, str(e)) from e


class LLGuidanceEngine(_Engine):
    name = "llguidance"

    def __init__(self, model, tokenizer, vocab_size: int):
        import llguidance
        import llguidance.hf

        self._llg = llguidance
        self.vocab_size = vocab_size
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)

    def compile(self, schema):
        llg = self._llg
        try:
            grammar = llg.LLMatcher.grammar_from_json_schema(_schema_text(schema))
        except Exception as e:  # malformed schema: ValueError from the grammar front end
            raise EngineCompileError(type(e).__name__, str(e)) from e
        m = llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if m.is_error():
            raise EngineCompileError("LLMatcherError", m.get_error())
        return m

    def logits_processor(self, compiled):
        return _LLGuidanceProcessor(compiled.deep_copy(), self.vocab_size)


class _LLGuidanceProcessor:
    """llguidance's torch helpers as a logits processor for ``generate`` (batch 1; one per call).

    A plain callable: ``LogitsProcessorList`` only calls ``(input_ids, scores)``.
    """

    def __init__(self, matcher, vocab_size: int):
        import llguidance.torch as lt

        self._lt = lt
        self.matcher = matcher
        self.bitmask = lt.allocate_token_bitmask(1, vocab_size)
        self.started = False

    def __call__(self, input_ids, scores):
        if self.started:
            tok = int(input_ids[0, -1])
            if not self.matcher.consume_token(tok):
                raise RuntimeError(f"llguidance rejected generated token {tok}: {self.matcher.get_error()}")
        self.started = True
        self._lt.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        self._lt.apply_token_bitmask_inplace(scores, self.bitmask)
        return scores


class XGrammarEngine(_Engine):
    name = "xgrammar"

    def __init__(self, model, tokenizer, vocab_size: int):
        import xgrammar

        self._xgr = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        # No grammar cache: a repeated schema would otherwise compile in a lookup.
        self.compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)

    def compile(self, schema):
        try:
            return self.compiler.compile_json_schema(_schema_text(schema))
        except (RuntimeError, ValueError) as e:
            raise EngineCompileError(type(e).__name__, str(e)) from e

    def logits_processor(self, compiled):
        from xgrammar.contrib.hf import LogitsProcessor

        return LogitsProcessor(compiled)


class OutlinesCoreEngine(_Engine):
    name = "outlines"

    def __init__(self, model, tokenizer, vocab_size: int):
        import outlines_core

        from constrain.integrations.transformers import vocabulary_for

        self._oc = outlines_core
        self.vocab_size = vocab_size
        vocab = vocabulary_for(tokenizer, vocab_size)
        table: dict[bytes, list[int]] = {}
        for i, b in enumerate(vocab.tokens):
            if b:  # None: special tokens and EOS, as Vocabulary.from_pretrained leaves them out
                table.setdefault(b, []).append(i)
        self.vocabulary = outlines_core.Vocabulary(int(tokenizer.eos_token_id), table)

    def compile(self, schema):
        oc = self._oc
        try:
            regex = oc.json_schema.build_regex_from_schema(_schema_text(schema))
            return oc.Index(regex, self.vocabulary)
        except (ValueError, RuntimeError, TypeError) as e:
            raise EngineCompileError(type(e).__name__, str(e)) from e

    def logits_processor(self, compiled):
        return _OutlinesCoreProcessor(self._oc.Guide(compiled), self.vocab_size)


class _OutlinesCoreProcessor:
    """outlines-core's ``Guide`` and torch kernels in a LogitsProcessor (batch 1)."""

    def __init__(self, guide, vocab_size: int):
        import outlines_core.kernels.torch as ot

        self._ot = ot
        self.guide = guide
        self.bitmask = ot.allocate_token_bitmask(vocab_size)
        self.started = False

    def __call__(self, input_ids, scores):
        if self.started:
            self.guide.advance(int(input_ids[0, -1]), return_tokens=False)  # ValueError if rejected
        self.started = True
        self._ot.fill_next_token_bitmask(self.guide, self.bitmask)
        self._ot.apply_token_bitmask_inplace(scores, self.bitmask)
        return scores


_CLASSES = {
    c.name: c for c in (ConstrainEngine, ConstrainFitEngine, LLGuidanceEngine, XGrammarEngine, OutlinesCoreEngine,
                        NoneEngine)
}


def build_engine(name: str, model, tokenizer, vocab_size: int, *, max_new_tokens: int | None = None) -> _Engine:
    """The engine ``name`` set up for this tokenizer and logits width (token tables: 0.1-2 s).

    ``max_new_tokens`` is the generation budget; only ``constrain-fit`` uses it (its length bound)."""
    if name == ConstrainFitEngine.name:
        return ConstrainFitEngine(model, tokenizer, vocab_size, max_new_tokens)
    return _CLASSES[name](model, tokenizer, vocab_size)
