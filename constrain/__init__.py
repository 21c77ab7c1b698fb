"""constrain: structured-generation constraints for LLMs, exact and fast.

Compile a regex, a Lark grammar or a JSON schema against a model's vocabulary, then ask a
matcher for the allowed tokens at every step::

    vocab = constrain.Vocabulary.from_tokenizer(tokenizer)
    c = constrain.compile_regex(r"\\d{3}-\\d{4}", vocab)
    m = c.matcher()
    bm = constrain.allocate_bitmask(1, vocab.size)
    m.fill_bitmask(bm, row=0); constrain.apply_bitmask(logits, bm); m.accept_token(t)

Everything public is exported here; torch / transformers are imported only when used (inside
``generate``, ``load_default_model``, ``ConstrainLogitsProcessor``). The function ``generate`` is
bound here after its module is imported, so ``constrain.generate`` stays the function even when
``constrain.generate`` the module is imported elsewhere.
"""

from __future__ import annotations

from typing import Any

from constrain.batch import fill_bitmasks
from constrain.compiled import CompiledConstraint
from constrain.constraints import (
    compile_choice,
    compile_keywords,
    intersect,
    length_bounds,
    max_length,
    min_length,
)
from constrain.dfa_constraint import DFAConstraint, compile_regex
from constrain.errors import (
    ConstrainError,
    GrammarSyntaxError,
    InputError,
    InternalError,
    LimitExceededError,
    RegexSyntaxError,
    SchemaError,
    UnsupportedFeatureError,
    VocabularyError,
)
from constrain.generate import (
    GenerationResult,
    IncompleteGenerationError,
    generate,
    generate_ids,
)
from constrain.grammar import GrammarConstraint, compile_grammar
from constrain.kernels.bitmask import (
    allocate_bitmask,
    apply_bitmask,
    bitmask_to_bool,
    bool_to_bitmask,
)
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.knowledge import KnowledgeTrie
from constrain.matcher import Matcher
from constrain.schema import compile_json_schema, schema_to_lark
from constrain.search import Lookahead
from constrain.speculative import Speculative
from constrain.sampling import AlignedSampler, MaskedSampler
from constrain.vocab.trie import TokenTrie
from constrain.vocab.vocabulary import Vocabulary, VocabType
from constrain.warmup import warm_up

__version__ = "0.1.0"

_LAZY = {
    "load_default_model": ("constrain.integrations.transformers", "load_default_model"),
    "load_default_tokenizer": ("constrain.integrations.transformers", "load_default_tokenizer"),
    "ConstrainLogitsProcessor": ("constrain.integrations.transformers", "ConstrainLogitsProcessor"),
}

__all__ = [
    "DEFAULT_LIMITS",
    "AlignedSampler",
    "MaskedSampler",
    "CompiledConstraint",
    "ConstrainError",
    "ConstrainLogitsProcessor",
    "DFAConstraint",
    "GenerationResult",
    "GrammarConstraint",
    "GrammarSyntaxError",
    "IncompleteGenerationError",
    "InputError",
    "InternalError",
    "KnowledgeTrie",
    "LimitExceededError",
    "Limits",
    "Lookahead",
    "Matcher",
    "RegexSyntaxError",
    "SchemaError",
    "Speculative",
    "TokenTrie",
    "UnsupportedFeatureError",
    "VocabType",
    "Vocabulary",
    "VocabularyError",
    "__version__",
    "allocate_bitmask",
    "apply_bitmask",
    "bitmask_to_bool",
    "bool_to_bitmask",
    "compile_choice",
    "compile_grammar",
    "compile_json_schema",
    "compile_keywords",
    "fill_bitmasks",
    "compile_regex",
    "generate",
    "generate_ids",
    "intersect",
    "length_bounds",
    "load_default_model",
    "load_default_tokenizer",
    "max_length",
    "min_length",
    "schema_to_lark",
    "warm_up",
]


def __getattr__(name: str) -> Any:
    """Import torch-dependent names on first access (``import constrain`` stays light)."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'constrain' has no attribute {name!r}")
