"""Grammar-aligned sampling (ASAp) and the plain masked-sampling baseline, over a shared trie.

ASAp (Park et al., "Grammar-Aligned Decoding", NeurIPS 2024) targets the LM distribution
conditioned on the constraint, ``Q(w) ∝ P(w)·1[w ∈ L]``. Plain masked sampling (GCD) renormalises
each step over the allowed tokens and ignores how much mass a branch later loses, so it is biased.
ASAp samples ``t`` after prefix ``w`` with probability ``∝ P(t|w)·c~(wt)``, where ``c~`` is an
over-approximation of the expected future grammaticality ``c(w) = P(a continuation of w is in L)``:
1 for prefixes never sampled, and for a sampled prefix ``c~(w) = Σ_{t allowed} P(t|w)·c~(wt)``,
recomputed along the path after every sample. Masked-out tokens contribute 0 (that is where the
estimate tightens); EOS contributes ``P(EOS|w)·1`` (the mask already guarantees ``w ∈ L``). ``P``
is the full-vocabulary softmax *before* masking: renormalising it over the allowed tokens would
keep ``c~ = 1`` and ASAp would degenerate to GCD.

Both samplers cache every visited prefix's next-token distribution in the trie, so a revisited
prefix costs no forward pass; the constraint is used only through the matcher contract
(``fill_bitmask`` / ``accept_token`` / ``reset`` / ``is_accepting``), so regexes and grammars work alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from constrain.compiled import CompiledConstraint
from constrain.errors import ConstrainError
from constrain.kernels.bitmask import allocate_bitmask, bitmask_to_bool
from constrain.sampling.lm import CallableLM, HFCausalLM, NextTokenModel, is_hf_model, log_softmax
from constrain.sampling.trie import SampleTrie, logsumexp
from constrain.vocab.vocabulary import Vocabulary


class NoValidSampleError(ConstrainError):
    """No token sequence allowed by the constraint has positive probability (within max_new_tokens)."""


def _sample_log_weights(log_w: np.ndarray, rng: np.random.Generator) -> int:
    """Index drawn with probability ``∝ exp(log_w)`` (one uniform draw; zero-weight entries never)."""
    p = np.exp(log_w - np.max(log_w))
    c = np.cumsum(p)
    k = int(np.searchsorted(c, rng.random() * c[-1], side="right"))
    return min(k, len(c) - 1)


def _resolve_vocab(model: Any, tokenizer_or_vocab: Any) -> tuple[Vocabulary, Any]:
    if isinstance(tokenizer_or_vocab, Vocabulary):
        return tokenizer_or_vocab, None
    tokenizer = tokenizer_or_vocab
    if is_hf_model(model):
        from constrain.integrations.transformers import model_vocab_size, vocabulary_for

        return vocabulary_for(tokenizer, model_vocab_size(model, tokenizer)), tokenizer
    return Vocabulary.from_tokenizer(tokenizer), tokenizer


def _resolve_prompt(prompt: Any, tokenizer: Any) -> list[int]:
    if prompt is None:
        return []
    if isinstance(prompt, str):
        if tokenizer is None:
            raise TypeError("a text prompt needs a tokenizer (pass a tokenizer, not a Vocabulary, or token ids)")
        from constrain.generate import encode_prompt

        return encode_prompt(tokenizer, prompt)
    return [int(t) for t in prompt]


def _resolve_model(model: Any, prompt_ids: list[int]) -> NextTokenModel:
    if is_hf_model(model):
        return HFCausalLM(model, prompt_ids)
    if isinstance(model, NextTokenModel):
        if prompt_ids:
            raise TypeError("a NextTokenModel holds its own prompt; pass prompt=None")
        return model
    if callable(model):
        return CallableLM(model, prompt_ids)
    raise TypeError(
        f"model must be a transformers causal LM, a NextTokenModel or a callable, got {type(model).__name__}"
    )


class _TrieSampler:
    """Shared machinery: trie descent with cached distributions, matcher, RNG, persistence."""

    _aligned: bool = False
    kind = "base"

    def __init__(
        self,
        model: Any,
        tokenizer_or_vocab: Any,
        constraint: CompiledConstraint | str,
        prompt: str | Sequence[int] | None = None,
        *,
        temperature: float = 1.0,
        seed: int | None = None,
        max_new_tokens: int = 256,
        max_retries: int = 10_000,
    ):
        if not temperature > 0:
            raise ValueError(f"temperature must be positive (sampling), got {temperature}")
        self.vocab, tokenizer = _resolve_vocab(model, tokenizer_or_vocab)
        if isinstance(constraint, str):
            from constrain.dfa_constraint import compile_regex

            constraint = compile_regex(constraint, self.vocab)
        if constraint.vocab.size != self.vocab.size:
            raise ValueError(
                f"the constraint was compiled for {constraint.vocab.size} tokens, the vocabulary has {self.vocab.size}"
            )
        self.constraint = constraint
        self.prompt_ids = _resolve_prompt(prompt, tokenizer)
        self.lm = _resolve_model(model, self.prompt_ids)
        self.temperature = float(temperature)
        self.max_new_tokens = int(max_new_tokens)
        self.max_retries = int(max_retries)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.trie = SampleTrie()
        self._matcher = constraint.matcher()
        self._bitmask = allocate_bitmask(1, self.vocab.size)
        self._eos = np.asarray(sorted(self.vocab.eos_token_ids), dtype=np.int32)
        self.n_samples = 0  # complete samples returned
        self.n_dead_ends = 0  # descents that reached a prefix with no allowed token
        self.n_expansions = 0  # prefixes expanded (a model call each, unless no token was allowed)

    # ------------------------------------------------------------------ one step's distribution
    def _allowed(self, matcher, depth: int) -> np.ndarray:
        if depth >= self.max_new_tokens:  # only EOS may follow: the target is Q on short outputs
            return self._eos if matcher.is_accepting() else self._eos[:0]
        matcher.fill_bitmask(self._bitmask, 0)
        return np.flatnonzero(bitmask_to_bool(self._bitmask[0], self.vocab.size)).astype(np.int32)

    def _distribution(self, matcher, prefix: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Allowed token ids (ascending) and their full-vocabulary log-probs after ``prefix``."""
        allowed = self._allowed(matcher, len(prefix))
        if len(allowed) == 0:
            return allowed, np.zeros(0, dtype=np.float64)
        lp = log_softmax(self.lm.logprobs(prefix), self.temperature)
        if lp.shape[-1] < self.vocab.size:
            raise ValueError(f"the model gave {lp.shape[-1]} scores for a vocabulary of {self.vocab.size}")
        return allowed, lp[allowed]

    def _log_weights(self, node: int) -> np.ndarray:
        if self._aligned:
            return self.trie.log_weights(node)
        return self.trie.dist_logp[self.trie.slots(node)]

    # ------------------------------------------------------------------ sampling
    def _descend(self) -> list[int] | None:
        """One sample from the root: the generated ids (EOS excluded), or None at a dead end."""
        trie, m = self.trie, self._matcher
        m.reset()
        node, prefix, path = 0, [], [0]
        while True:
            if not trie.is_expanded(node):
                allowed, logps = self._distribution(m, prefix)
                trie.expand(node, allowed, logps)
                self.n_expansions += 1
            log_w = self._log_weights(node)
            if len(log_w) == 0 or not np.max(log_w) > float("-inf"):
                ids = None  # dead end: c~(node) is now 0, the update below propagates it
                break
            slot = trie.slots(node).start + _sample_log_weights(log_w, self.rng)
            tok = int(trie.dist_tok[slot])
            eos = self.vocab.is_eos(tok)
            if not m.accept_token(tok):  # pragma: no cover - the mask makes this impossible
                raise RuntimeError(f"internal: sampled token {tok} rejected by its own mask")
            node = trie.child_at(node, slot, eos=eos)
            path.append(node)
            if eos:
                ids = prefix
                break
            prefix.append(tok)
        for n in path:
            trie.visits[n] += 1
        if self._aligned:
            for n in reversed(path):
                if trie.is_expanded(n):
                    self._update_node(n)
        return ids

    def _update_node(self, node: int) -> None:
        """ASAp's backward step at one expanded node: ``c~(w) = Σ_t P(t|w)·c~(wt)``, full-vocabulary P."""
        self.trie.update(node)

    def sample_ids(self, n: int) -> list[list[int]]:
        """``n`` samples as token-id lists (EOS excluded), drawn one after another."""
        out: list[list[int]] = []
        for _ in range(n):
            for _attempt in range(self.max_retries):
                ids = self._descend()
                if ids is not None:
                    break
                self.n_dead_ends += 1
                if self.trie.log_efg[0] == float("-inf"):
                    raise NoValidSampleError(
                        f"no output allowed by the constraint within max_new_tokens={self.max_new_tokens} "
                        "has positive probability under the model"
                    )
            else:
                raise NoValidSampleError(f"{self.max_retries} descents in a row ended at dead ends")
            self.n_samples += 1
            out.append(ids)
        return out

    def sample(self, n: int) -> list[str]:
        """``n`` samples as text (UTF-8, invalid bytes replaced)."""
        return [self.decode(ids) for ids in self.sample_ids(n)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.vocab.decode(ids).decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ introspection
    def next_sample_logprob(self, ids: Sequence[int]) -> float:
        """log-probability that the *next* sample is ``ids`` (EOS excluded), given the trie as it is.

        Prefixes the trie has not expanded are scored with the model and the matcher but not stored,
        so the trie and the RNG are unchanged (model calls are not cached).
        """
        m = self.constraint.matcher()
        trie = self.trie
        node = 0  # -1 once off the trie
        total = 0.0
        eos = int(self._eos[0])
        seq = [int(t) for t in ids] + [eos]
        for depth, tok in enumerate(seq):
            if node >= 0 and trie.is_expanded(node):
                log_w = self._log_weights(node)
                toks = trie.dist_tok[trie.slots(node)]
            else:
                toks, log_w = self._distribution(m, seq[:depth])
            k = int(np.searchsorted(toks, tok)) if len(toks) else 0
            if k >= len(toks) or toks[k] != tok:
                return float("-inf")
            total += float(log_w[k]) - logsumexp(log_w)
            if depth < len(ids) and not m.accept_token(tok):  # pragma: no cover - allowed by the mask
                return float("-inf")
            if node >= 0 and trie.is_expanded(node):
                slot = trie.slots(node).start + k
                child = int(trie.dist_child[slot])
                node = child
            else:
                node = -1
        return total

    @property
    def log_efg_root(self) -> float:
        """``log c~(root)``: an upper bound on ``log P(L)``, exact once every output has been seen."""
        return float(self.trie.log_efg[0])

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "samples": self.n_samples,
            "dead_ends": self.n_dead_ends,
            "trie_nodes": int(self.trie.n_nodes),
            "cached_distributions": int(np.count_nonzero(self.trie.flags[: self.trie.n_nodes] & 1)),
            "expansions": self.n_expansions,
            "log_efg_root": self.log_efg_root,
        }

    # ------------------------------------------------------------------ persistence
    def _meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "vocab_size": self.vocab.size,
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "prompt_ids": self.prompt_ids,
            "constraint": repr(self.constraint),
            "n_samples": self.n_samples,
            "n_dead_ends": self.n_dead_ends,
            "rng_state": self.rng.bit_generator.state,
        }

    def save(self, path: str | Path) -> None:
        """Save the trie, the counters and the RNG state to an ``.npz`` file (plain arrays + JSON)."""
        self.trie.save(path, self._meta())

    def load(self, path: str | Path, *, restore_rng: bool = True) -> _TrieSampler:
        """Replace this sampler's trie with one saved by :meth:`save`; returns ``self``.

        The file must come from the same kind of sampler, vocabulary size, temperature,
        ``max_new_tokens`` and prompt (the model and constraint are the caller's to keep identical).
        With ``restore_rng`` (default), sampling continues exactly where the saved sampler stopped;
        otherwise the RNG is the one this sampler was built with.
        """
        trie, meta = SampleTrie.load(path)
        expected = self._meta()
        for key in ("kind", "vocab_size", "temperature", "max_new_tokens", "prompt_ids"):
            if meta.get(key) != expected[key]:
                raise ValueError(f"{path}: saved {key}={meta.get(key)!r}, this sampler has {expected[key]!r}")
        self.trie = trie
        self.n_samples = int(meta.get("n_samples", 0))
        self.n_dead_ends = int(meta.get("n_dead_ends", 0))
        if restore_rng and "rng_state" in meta:
            rng = np.random.default_rng()
            rng.bit_generator.state = meta["rng_state"]
            self.rng = rng
        return self


class AlignedSampler(_TrieSampler):
    """ASAp: samples converge to the LM distribution conditioned on the constraint.

    Parameters
    ----------
    model
        A ``transformers`` causal LM, a :class:`~constrain.sampling.lm.NextTokenModel`, or a callable
        ``logprobs(prefix_token_ids) -> float[V]`` (log-probs or logits of the next token).
    tokenizer_or_vocab
        The model's tokenizer (needed for a text prompt) or a :class:`Vocabulary`.
    constraint
        A compiled constraint for this vocabulary (``compile_regex``, a grammar ...), or a regex string.
    prompt
        Text (chat template applied when the tokenizer has one), token ids, or None (callables only).
    temperature
        Applied to P before anything else; Q is the tempered model conditioned on the constraint.
    seed
        Seeds the numpy RNG; the whole run is deterministic given the seed.
    max_new_tokens
        Outputs longer than this are excluded from the target (such prefixes count as dead ends).

    The trie persists across :meth:`sample` calls and can be saved and loaded to continue later.
    """

    _aligned = True
    kind = "asap"


class MaskedSampler(_TrieSampler):
    """Plain masked sampling (GCD): ``P(t|w)`` renormalised over the allowed tokens at each step.

    Same interface as :class:`AlignedSampler`; distributions are cached per prefix the same way, so
    the two cost the same model calls for the same prefixes. Dead ends are retried (rejection).
    """

    _aligned = False
    kind = "masked"


def generate_aligned(
    model: Any,
    tokenizer: Any,
    prompt: str | Sequence[int],
    constraint: CompiledConstraint | str,
    num_samples: int,
    *,
    temperature: float = 1.0,
    seed: int | None = None,
    max_new_tokens: int = 256,
) -> list[str]:
    """``num_samples`` grammar-aligned samples (ASAp) of ``model`` under ``constraint``, as text."""
    sampler = AlignedSampler(
        model, tokenizer, constraint, prompt, temperature=temperature, seed=seed, max_new_tokens=max_new_tokens
    )
    return sampler.sample(num_samples)


__all__ = [
    "AlignedSampler",
    "MaskedSampler",
    "NoValidSampleError",
    "generate_aligned",
]
