"""compile_choice: the output is exactly one of a (possibly huge) set of strings.

The phrases are encoded as UTF-8, sorted and deduplicated; their byte trie is built directly (one
numba pass: each phrase shares its longest common prefix with the previous one) and minimized as an
acyclic DFA bottom-up (a node's right language is determined by whether it accepts and by the list
of (byte, canonical child); equal lists are merged through a hash table), in linear time. No regex
string is ever built.

The result is a :class:`~constrain.DFAConstraint` over a dense :class:`~constrain.regex.dfa.ByteDFA`
when the minimal automaton has at most ``DENSE_MAX_STATES`` states, and otherwise a
:class:`~constrain.constraints.sparse_dfa.SparseDFAConstraint` (edge lists; same trie-walk masks,
cached per state). No ``Limits`` bound applies to the automaton: it never has more states than the
phrases have bytes (plus one), so its size is linear in the input.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from constrain.compiled import CompiledConstraint
from constrain.constraints._kernels import build_phrase_trie, minimize_acyclic
from constrain.constraints.sparse_dfa import SparseDFA, SparseDFAConstraint
from constrain.dfa_constraint import DFAConstraint
from constrain.errors import InputError
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.vocab.vocabulary import Vocabulary

__all__ = ["compile_choice", "choice_dfa", "DENSE_MAX_STATES"]

# Above this many states the automaton is kept sparse (a dense table costs 1 KiB per state).
DENSE_MAX_STATES = 4096


def _encode(phrases: Iterable[str | bytes]) -> list[bytes]:
    out = set()
    for i, p in enumerate(phrases):
        if isinstance(p, str):
            try:
                out.add(p.encode("utf-8"))
            except UnicodeEncodeError as e:  # lone surrogates
                raise InputError(f"choice phrase {i} is not valid Unicode: {e}") from None
        elif isinstance(p, (bytes, bytearray)):
            out.add(bytes(p))
        else:
            raise TypeError(f"choice phrases must be str or bytes, got {type(p).__name__} at {i}")
    return sorted(out)


def choice_dfa(phrases: Iterable[str | bytes]) -> SparseDFA:
    """The minimal DFA accepting exactly the UTF-8 encodings of ``phrases`` (sparse form).

    Raises
    ------
    InputError
        ``phrases`` is empty.
    """
    keys = _encode(phrases)
    if not keys:
        raise InputError("compile_choice needs at least one phrase")
    lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=len(keys))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    data = np.frombuffer(b"".join(keys), dtype=np.uint8)
    parent, byte, accepting = build_phrase_trie(data, starts, ends, int(lengths.max()))
    n = parent.shape[0]
    # children CSR: a stable sort by parent keeps siblings in creation (= ascending byte) order
    counts = np.bincount(parent[1:], minlength=n) if n > 1 else np.zeros(n, dtype=np.int64)
    child_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=child_start[1:])
    children = (np.argsort(parent[1:], kind="stable") + 1).astype(np.int32)
    canon = minimize_acyclic(byte, accepting, child_start, children)

    is_rep = canon == np.arange(n, dtype=np.int32)
    new_id = (np.cumsum(is_rep) - 1).astype(np.int32)  # root (node 0) is a representative: id 0
    # edges of representatives, in `children` order: grouped by parent id, bytes ascending
    edge_nodes = children[is_rep[parent[children]]]
    edge_src = new_id[parent[edge_nodes]]
    n_states = int(is_rep.sum())
    offsets = np.zeros(n_states + 1, dtype=np.int64)
    np.cumsum(np.bincount(edge_src, minlength=n_states), out=offsets[1:])
    return SparseDFA(
        offsets=offsets,
        edge_byte=np.ascontiguousarray(byte[edge_nodes]),
        edge_target=np.ascontiguousarray(new_id[canon[edge_nodes]]),
        accepting=np.ascontiguousarray(accepting[is_rep]),
        start=0,
    )


def compile_choice(
    phrases: Iterable[str | bytes],
    vocab: Vocabulary,
    *,
    limits: Limits = DEFAULT_LIMITS,
    dense_max_states: int = DENSE_MAX_STATES,
) -> CompiledConstraint:
    """Constrain the output to be exactly one of ``phrases`` (str as UTF-8, or raw bytes).

    Duplicates are ignored; the empty string is allowed as a phrase. Compiling 100,000 phrases takes
    well under a second plus the sort; masks are computed per state on first visit and cached.

    Returns
    -------
    DFAConstraint or SparseDFAConstraint
        Dense when the minimal automaton has at most ``dense_max_states`` states.

    Raises
    ------
    InputError
        ``phrases`` is empty.
    """
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a constrain.Vocabulary, got {type(vocab).__name__}")
    phrases = list(phrases)
    sdfa = choice_dfa(phrases)
    source = f"choice of {len(phrases)} phrases"
    if sdfa.n_states <= dense_max_states:
        return DFAConstraint(sdfa.to_byte_dfa(), vocab, source=source, limits=limits)
    return SparseDFAConstraint(sdfa, vocab, source=source, limits=limits)
