"""Thin adapters over the peer constraint engines we benchmark against.

One small interface over llguidance, XGrammar and outlines-core so the
benchmarks can drive every engine (and ``constrain``) through the same loop::

    eng = LLGuidanceEngine(hf_tokenizer)          # once per tokenizer (expensive)
    c = eng.compile_regex(r"\\d{3}-\\d{4}")        # once per grammar
    m = c.matcher()                               # once per sequence
    m.fill_bitmask(bitmask, row)                  # once per step
    m.accept_token(tok)                           # once per step

Bitmask layout is the one XGrammar and llguidance use: ``int32[batch,
ceil(V/32)]``, C-contiguous, bit ``t & 31`` of word ``t >> 5`` set means token
``t`` is allowed.  ``V`` is the engine's ``vocab_size`` (the model's logits
width, which may be larger than the tokenizer).

Timing honesty: the per-step methods do no Python work beyond what the engine
needs.  Where the adapter adds nothing, the engine's bound method is installed
directly on the matcher instance (so there is not even an extra Python frame);
the remaining wrappers are a pointer lookup cached per bitmask buffer, a row
bounds check (we hand raw pointers to native code, so this one is a safety
requirement), and, for outlines-core, a try/except that costs nothing unless a
token is rejected.

Semantics normalised across engines (see each class for the engine quirk):

* ``accept_token`` returning False leaves the matcher state unchanged, so the
  caller may keep using it (llguidance's ``consume_token`` would instead put the
  matcher into a permanent error state that even ``reset()`` does not clear).
* ``is_accepting`` is "the grammar is complete here, EOS may be sampled".
* Accepting the EOS token in an accepting state returns True on every engine.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

__all__ = [
    "PeerUnsupported",
    "PeerCompileError",
    "PeerEngine",
    "PeerConstraint",
    "PeerMatcher",
    "LLGuidanceEngine",
    "XGrammarEngine",
    "OutlinesCoreEngine",
    "ENGINE_CLASSES",
    "available_engines",
]


class PeerUnsupported(Exception):
    """The engine has no front end for this kind of grammar."""


class PeerCompileError(ValueError):
    """The engine rejected the grammar; ``str()`` carries the engine's own message."""

    def __init__(self, engine: str, kind: str, message: str):
        self.engine = engine
        self.kind = kind
        self.message = message
        super().__init__(f"{engine}: failed to compile {kind}: {message}")


# --------------------------------------------------------------------------- #
# Interface
# --------------------------------------------------------------------------- #


class PeerMatcher:
    """Per-sequence matcher state.  Subclasses implement the four methods."""

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        raise NotImplementedError

    def accept_token(self, token_id: int) -> bool:
        raise NotImplementedError

    def is_accepting(self) -> bool:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


class PeerConstraint:
    """A compiled grammar; ``matcher()`` starts a fresh sequence."""

    def __init__(self, engine: "PeerEngine", kind: str, source: Any):
        self.engine = engine
        self.kind = kind
        self.source = source

    def matcher(self) -> PeerMatcher:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.engine.name} {self.kind}>"


class PeerEngine:
    """One per engine per tokenizer (building the engine's token tables is the
    expensive part, 0.1-0.5 s for a 49k vocabulary)."""

    name: str = "?"

    def __init__(self, hf_tokenizer, vocab_size: int | None = None):
        self.hf_tokenizer = hf_tokenizer
        self.vocab_size = int(vocab_size) if vocab_size is not None else len(hf_tokenizer)
        self.eos_token_id = hf_tokenizer.eos_token_id
        self.bitmask_words = (self.vocab_size + 31) // 32

    def allocate_bitmask(self, batch: int = 1) -> np.ndarray:
        """A zeroed bitmask buffer of the right shape for this engine."""
        return np.zeros((batch, self.bitmask_words), dtype=np.int32)

    def compile_regex(self, pattern: str) -> PeerConstraint:
        raise PeerUnsupported(f"{self.name} has no regex front end")

    def compile_json_schema(self, schema: dict, **options) -> PeerConstraint:
        raise PeerUnsupported(f"{self.name} has no JSON-schema front end")

    def compile_lark(self, grammar_text: str) -> PeerConstraint:
        raise PeerUnsupported(f"{self.name} has no Lark front end")

    def compile_ebnf(self, ebnf_text: str) -> PeerConstraint:
        raise PeerUnsupported(f"{self.name} has no EBNF front end")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} vocab_size={self.vocab_size}>"


class _PtrCache:
    """Raw data pointer of the last bitmask buffer seen, so the per-step cost is
    an identity check instead of ``ndarray.ctypes.data`` (about 1 us, as much as
    a whole mask fill on easy grammars).  Holding the reference keeps the
    buffer alive, so the cached pointer cannot dangle."""

    __slots__ = ("buf", "base", "stride", "rows")

    def __init__(self):
        self.buf = None
        self.base = 0
        self.stride = 0
        self.rows = 0

    def bind(self, bitmask: np.ndarray, words: int) -> None:
        if not isinstance(bitmask, np.ndarray) or bitmask.dtype != np.int32 or bitmask.ndim != 2:
            raise TypeError("bitmask must be a 2-D numpy int32 array")
        if not bitmask.flags["C_CONTIGUOUS"] or not bitmask.flags["WRITEABLE"]:
            raise ValueError("bitmask must be C-contiguous and writeable")
        if bitmask.shape[1] != words:
            raise ValueError(f"bitmask has {bitmask.shape[1]} words per row, engine needs {words}")
        self.buf = bitmask
        self.base = bitmask.ctypes.data
        self.stride = bitmask.strides[0]
        self.rows = bitmask.shape[0]


# --------------------------------------------------------------------------- #
# llguidance
# --------------------------------------------------------------------------- #


class _LLGMatcher(PeerMatcher):
    """Wraps ``llguidance.LLMatcher``.

    fill: ``LLMatcher.unsafe_compute_mask_ptr(ptr, nbytes)`` (what
    ``llguidance.numpy.fill_next_token_bitmask`` calls, minus its asserts and
    per-call ``ctypes`` lookup).  The byte size must equal the row size exactly.
    accept: ``try_consume_tokens([t])``, which leaves the state untouched when
    the token is rejected; ``consume_token`` would enter a sticky error state
    (and log a warning).  Same per-token cost as ``consume_token``.
    EOS: set in the mask once accepting, but ``try_consume_tokens([eos])``
    returns 0 even then, so on that (failure) path only we hand EOS to
    ``consume_token`` when ``is_accepting()``; afterwards the matcher is
    stopped and rejects everything.
    """

    __slots__ = ("_m", "_ptr", "_nbytes", "_eos", "is_accepting")

    def __init__(self, llmatcher, words: int, eos_tokens: frozenset):
        self._m = llmatcher
        self._ptr = _PtrCache()
        self._nbytes = words * 4
        self._eos = eos_tokens
        self.is_accepting = llmatcher.is_accepting  # no adapter work

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        p = self._ptr
        if bitmask is not p.buf:
            p.bind(bitmask, self._nbytes // 4)
        if not 0 <= row < p.rows:
            raise IndexError(f"row {row} out of range for bitmask with {p.rows} rows")
        self._m.unsafe_compute_mask_ptr(p.base + row * p.stride, self._nbytes)

    def accept_token(self, token_id: int) -> bool:
        m = self._m
        if m.try_consume_tokens([token_id]):
            return True
        return token_id in self._eos and m.is_accepting() and m.consume_token(token_id)

    def reset(self) -> None:
        self._m.reset()

    @property
    def error(self) -> str:
        return self._m.get_error()


class _LLGConstraint(PeerConstraint):
    def __init__(self, engine, kind, source, prototype):
        super().__init__(engine, kind, source)
        self._proto = prototype  # validated, never advanced

    def matcher(self) -> PeerMatcher:
        # deep_copy (~1 us) instead of re-running the LLMatcher constructor (~0.5 ms).
        e = self.engine
        return _LLGMatcher(self._proto.deep_copy(), e.bitmask_words, e.eos_tokens)


class LLGuidanceEngine(PeerEngine):
    """llguidance: ``llguidance.hf.from_tokenizer`` -> ``LLTokenizer``;
    ``LLMatcher.grammar_from_regex / grammar_from_json_schema /
    grammar_from_lark`` -> grammar string; ``LLMatcher(tokenizer, grammar)``
    compiles (it never raises: we check ``is_error()`` / ``get_error()``).

    ``compile_ebnf`` goes through ``llguidance.grammar_from("ebnf", ...)``, which
    accepts Lark or GBNF (llama.cpp / XGrammar style EBNF, converted to Lark).
    """

    name = "llguidance"

    def __init__(self, hf_tokenizer, vocab_size: int | None = None, *, log_level: int = 0):
        super().__init__(hf_tokenizer, vocab_size)
        import llguidance
        import llguidance.hf

        self._llg = llguidance
        self.version = llguidance.__version__
        self.log_level = log_level  # 0: do not print parser warnings to stderr
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=self.vocab_size)
        if self.tokenizer.vocab_size != self.vocab_size:
            raise ValueError(
                f"llguidance tokenizer has {self.tokenizer.vocab_size} tokens, expected {self.vocab_size}"
            )
        self.eos_tokens = frozenset(self.tokenizer.eos_tokens)

    def _build(self, kind: str, source: Any, grammar_fn: Callable[[], str]) -> PeerConstraint:
        try:
            grammar = grammar_fn()
        except Exception as e:  # grammar_from_* raise ValueError on malformed input
            raise PeerCompileError(self.name, kind, str(e)) from e
        m = self._llg.LLMatcher(self.tokenizer, grammar, log_level=self.log_level)
        if m.is_error():
            raise PeerCompileError(self.name, kind, m.get_error())
        return _LLGConstraint(self, kind, source, m)

    def compile_regex(self, pattern: str) -> PeerConstraint:
        return self._build("regex", pattern, lambda: self._llg.LLMatcher.grammar_from_regex(pattern))

    def compile_json_schema(self, schema: dict, **options) -> PeerConstraint:
        """``options`` become llguidance JsonCompileOptions overrides, e.g.
        ``whitespace_flexible=False``; default is llguidance's own default."""
        s = schema if isinstance(schema, str) else json.dumps(schema)
        ov = options or None
        return self._build(
            "json_schema", schema,
            lambda: self._llg.LLMatcher.grammar_from_json_schema(s, overrides=ov),
        )

    def compile_lark(self, grammar_text: str) -> PeerConstraint:
        return self._build("lark", grammar_text, lambda: self._llg.LLMatcher.grammar_from_lark(grammar_text))

    def compile_ebnf(self, ebnf_text: str) -> PeerConstraint:
        return self._build("ebnf", ebnf_text, lambda: self._llg.grammar_from("ebnf", ebnf_text))


# --------------------------------------------------------------------------- #
# XGrammar
# --------------------------------------------------------------------------- #


class _XGRMatcher(PeerMatcher):
    """Wraps ``xgrammar.GrammarMatcher``.

    fill: ``GrammarMatcher.fill_next_token_bitmask(tensor, row)`` on a
    ``torch.from_numpy`` view of the caller's buffer (writes in place); the view
    is cached per buffer, since creating it costs about as much as the fill.
    (0.2.8 also takes the numpy array directly through DLPack, ~10% slower.)
    The buffer must be exactly ``ceil(vocab_size/32)`` words wide.
    accept: ``accept_token`` (rejection leaves the state unchanged).
    accepting: ``is_completed()`` (true before and after the stop token;
    ``is_terminated()`` only becomes true once EOS was accepted).
    """

    __slots__ = ("_m", "_buf", "_view", "_to_view", "accept_token", "is_accepting", "reset")

    def __init__(self, gm, to_view):
        self._m = gm
        self._buf = None
        self._view = None
        self._to_view = to_view
        self.accept_token = gm.accept_token  # no adapter work
        self.is_accepting = gm.is_completed
        self.reset = gm.reset

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        if bitmask is not self._buf:
            self._view = self._to_view(bitmask)
            self._buf = bitmask
        self._m.fill_next_token_bitmask(self._view, row)


class _XGRConstraint(PeerConstraint):
    def __init__(self, engine, kind, source, compiled):
        super().__init__(engine, kind, source)
        self.compiled = compiled

    def matcher(self) -> PeerMatcher:
        return _XGRMatcher(self.engine._xgr.GrammarMatcher(self.compiled), self.engine._to_view)


class XGrammarEngine(PeerEngine):
    """XGrammar: ``TokenizerInfo.from_huggingface(tok, vocab_size=V)``,
    ``GrammarCompiler(info, cache_enabled=...)``, ``compile_regex /
    compile_json_schema / compile_lark / compile_grammar(ebnf)``,
    ``GrammarMatcher(compiled)``.  Compile errors are RuntimeErrors, re-raised
    as PeerCompileError.

    Quirk: ``TokenizerInfo.from_huggingface`` finds no special tokens in the
    SmolLM2 (GGUF) tokenizer (``special_token_ids == []``), so XGrammar treats
    ``<|endoftext|>``, ``<repo_name>``, ... as literal text and allows them
    inside e.g. JSON strings, where llguidance and outlines-core do not.  This
    is stock XGrammar behaviour and is kept; expect mask diffs on those ids.

    ``cache=False`` by default: the compiler's grammar cache would otherwise
    turn a repeated compile of the same grammar into a lookup, which no other
    engine does, and distort compile-time comparisons.
    """

    name = "xgrammar"

    def __init__(self, hf_tokenizer, vocab_size: int | None = None, *, cache: bool = False,
                 max_threads: int = 8):
        super().__init__(hf_tokenizer, vocab_size)
        import xgrammar

        self._xgr = xgrammar
        self.version = xgrammar.__version__ if hasattr(xgrammar, "__version__") else "?"
        self.tokenizer_info = xgrammar.TokenizerInfo.from_huggingface(hf_tokenizer, vocab_size=self.vocab_size)
        self.compiler = xgrammar.GrammarCompiler(
            self.tokenizer_info, max_threads=max_threads, cache_enabled=cache
        )
        try:
            import torch

            self._to_view = torch.from_numpy
        except ImportError:  # xgrammar takes DLPack arrays too
            self._to_view = lambda a: a

    def _build(self, kind: str, source: Any, fn: Callable[[], Any]) -> PeerConstraint:
        try:
            compiled = fn()
        except (RuntimeError, ValueError) as e:
            raise PeerCompileError(self.name, kind, str(e)) from e
        return _XGRConstraint(self, kind, source, compiled)

    def compile_regex(self, pattern: str) -> PeerConstraint:
        return self._build("regex", pattern, lambda: self.compiler.compile_regex(pattern))

    def compile_json_schema(self, schema: dict, **options) -> PeerConstraint:
        """``options`` go to ``GrammarCompiler.compile_json_schema`` (e.g.
        ``any_whitespace=False``); the default allows any whitespace."""
        s = schema if isinstance(schema, str) else json.dumps(schema)
        return self._build("json_schema", schema, lambda: self.compiler.compile_json_schema(s, **options))

    def compile_lark(self, grammar_text: str) -> PeerConstraint:
        if not hasattr(self.compiler, "compile_lark"):
            raise PeerUnsupported(f"xgrammar {self.version} has no Lark front end")
        return self._build("lark", grammar_text, lambda: self.compiler.compile_lark(grammar_text))

    def compile_ebnf(self, ebnf_text: str) -> PeerConstraint:
        return self._build("ebnf", ebnf_text, lambda: self.compiler.compile_grammar(ebnf_text))


# --------------------------------------------------------------------------- #
# outlines-core
# --------------------------------------------------------------------------- #


def _gpt2_unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` table used by byte-level BPE."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _decoder_kind(hf_tokenizer) -> str:
    """'byte_level', 'byte_fallback' (SentencePiece-style) or 'plain'."""
    try:
        spec = json.loads(hf_tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    except Exception:
        return "plain"
    text = json.dumps(spec)
    if '"ByteLevel"' in text:
        return "byte_level"
    if '"ByteFallback"' in text:
        return "byte_fallback"
    return "plain"


def token_bytes_table(hf_tokenizer, vocab_size: int) -> tuple[dict[bytes, list[int]], set[int]]:
    """{token bytes: [ids]} for every non-special token id < vocab_size, the way
    outlines-core's own ``Vocabulary.from_pretrained`` processes tokens (which
    we cannot call: it downloads).  Returns (table, ids that were left out)."""
    kind = _decoder_kind(hf_tokenizer)
    u2b = _gpt2_unicode_to_byte()
    special = set(hf_tokenizer.all_special_ids)
    special |= {i for i, t in getattr(hf_tokenizer, "added_tokens_decoder", {}).items() if t.special}
    table: dict[bytes, list[int]] = {}
    skipped: set[int] = set()
    for s, i in hf_tokenizer.get_vocab().items():
        if i >= vocab_size or i in special:
            skipped.add(i)
            continue
        if kind == "byte_level":
            b = bytes(u2b[c] for c in s) if all(c in u2b for c in s) else s.encode()
        elif kind == "byte_fallback" and len(s) == 6 and s.startswith("<0x") and s.endswith(">"):
            b = bytes([int(s[3:5], 16)])
        else:
            b = s.replace("\u2581", " ").encode()
        if not b:
            skipped.add(i)
            continue
        table.setdefault(b, []).append(i)
    return table, skipped


class _OCMatcher(PeerMatcher):
    """Wraps ``outlines_core.Guide``.

    fill: ``Guide.write_mask_into(ptr, numel, 4)`` (what
    ``outlines_core.kernels.numpy.fill_next_token_bitmask`` calls; that helper
    only allows batch 1, we pass the row pointer).  It zeroes the whole row it
    is given, so a row wider than the vocabulary is fine.
    accept: ``Guide.advance(t, return_tokens=False)``; it raises ValueError on a
    rejected token (state unchanged).  outlines-core puts EOS in the allowed
    set of final states but has no transition for it, so ``advance(eos)``
    raises; we accept EOS when ``is_finished()`` (in the except path only), and
    do not model "stopped after EOS".
    """

    __slots__ = ("_g", "_ptr", "_numel", "_eos", "is_accepting", "reset")

    def __init__(self, guide, words: int, eos: int):
        self._g = guide
        self._ptr = _PtrCache()
        self._numel = words
        self._eos = eos
        self.is_accepting = guide.is_finished  # no adapter work
        self.reset = guide.reset

    def fill_bitmask(self, bitmask: np.ndarray, row: int = 0) -> None:
        p = self._ptr
        if bitmask is not p.buf:
            p.bind(bitmask, self._numel)
        if not 0 <= row < p.rows:
            raise IndexError(f"row {row} out of range for bitmask with {p.rows} rows")
        self._g.write_mask_into(p.base + row * p.stride, self._numel, 4)

    def accept_token(self, token_id: int) -> bool:
        try:
            self._g.advance(token_id, return_tokens=False)
            return True
        except ValueError:
            return token_id == self._eos and self._g.is_finished()


class _OCConstraint(PeerConstraint):
    def __init__(self, engine, kind, source, index, regex):
        super().__init__(engine, kind, source)
        self.index = index
        self.regex = regex

    def matcher(self) -> PeerMatcher:
        e = self.engine
        return _OCMatcher(e._oc.Guide(self.index), e.bitmask_words, e.eos_token_id)


class OutlinesCoreEngine(PeerEngine):
    """outlines-core: ``Vocabulary(eos_id, {token_bytes: [ids]})`` built here
    from the HF vocab (byte-level tokens decoded to their raw bytes, special
    tokens and EOS left out, as ``Vocabulary.from_pretrained`` does);
    ``Index(regex, vocabulary)`` compiles, ``Guide(index)`` matches;
    JSON schema -> regex via ``outlines_core.json_schema.build_regex_from_schema``.
    No Lark / EBNF front end.
    """

    name = "outlines-core"

    def __init__(self, hf_tokenizer, vocab_size: int | None = None):
        super().__init__(hf_tokenizer, vocab_size)
        import outlines_core

        self._oc = outlines_core
        try:
            from importlib.metadata import version

            self.version = version("outlines_core")
        except Exception:
            self.version = "?"
        table, self.skipped_token_ids = token_bytes_table(hf_tokenizer, self.vocab_size)
        self.vocabulary = outlines_core.Vocabulary(self.eos_token_id, table)

    def _index(self, kind: str, source: Any, regex: str) -> PeerConstraint:
        try:
            index = self._oc.Index(regex, self.vocabulary)
        except (ValueError, RuntimeError) as e:
            raise PeerCompileError(self.name, kind, str(e)) from e
        return _OCConstraint(self, kind, source, index, regex)

    def compile_regex(self, pattern: str) -> PeerConstraint:
        return self._index("regex", pattern, pattern)

    def compile_json_schema(self, schema: dict, **options) -> PeerConstraint:
        """``options``: ``whitespace_pattern`` (default ``[ ]?``), ``max_recursion_depth``."""
        s = schema if isinstance(schema, str) else json.dumps(schema)
        try:
            regex = self._oc.json_schema.build_regex_from_schema(s, **options)
        except (ValueError, RuntimeError, TypeError) as e:
            raise PeerCompileError(self.name, "json_schema", str(e)) from e
        return self._index("json_schema", schema, regex)

    def compile_lark(self, grammar_text: str) -> PeerConstraint:
        raise PeerUnsupported("outlines-core has no Lark front end (regex and JSON schema only)")

    def compile_ebnf(self, ebnf_text: str) -> PeerConstraint:
        raise PeerUnsupported("outlines-core has no EBNF front end (regex and JSON schema only)")


# --------------------------------------------------------------------------- #

ENGINE_CLASSES: dict[str, type[PeerEngine]] = {
    LLGuidanceEngine.name: LLGuidanceEngine,
    XGrammarEngine.name: XGrammarEngine,
    OutlinesCoreEngine.name: OutlinesCoreEngine,
}


def available_engines(hf_tokenizer, vocab_size: int | None = None) -> list[PeerEngine]:
    """Every peer engine whose package imports, built for this tokenizer.
    Engines whose package is missing are skipped with a printed reason; any
    other construction error propagates (it is a bug, not a missing peer)."""
    engines: list[PeerEngine] = []
    for name, cls in ENGINE_CLASSES.items():
        try:
            engines.append(cls(hf_tokenizer, vocab_size))
        except ImportError as e:
            print(f"[peers] skipping {name}: {e}")
    return engines
