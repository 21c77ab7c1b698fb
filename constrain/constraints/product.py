"""Product of byte DFAs with an arbitrary acceptance rule, minimized back into one ByteDFA.

Only the product states reachable from the start are built (BFS over the joint byte classes of the
components), bounded by ``Limits.max_dfa_states``; then the regex compiler's Hopcroft minimization
merges equivalent states and drops dead ones, so the result keeps the ByteDFA invariants (start 0,
every state reachable and live, ``-1`` the only dead outcome).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from constrain.errors import LimitExceededError
from constrain.limits import DEFAULT_LIMITS, Limits
from constrain.regex.dfa import ByteDFA, _expand, _minimize


def product_dfa(
    dfas: Sequence[ByteDFA],
    accept: Callable[[np.ndarray], bool],
    *,
    doomed: Sequence[np.ndarray | None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    what: str = "product automaton",
) -> ByteDFA:
    """Minimized DFA of the synchronous product of ``dfas``.

    Parameters
    ----------
    accept : callable
        Called with the ``bool[k]`` vector of the components' accepting flags; whether the product
        state accepts.
    doomed : list of (bool[n_i] or None), optional
        Component states from which no accepted product can be reached; product states containing
        one are not explored (pruning only: the result is the same without it).

    Returns
    -------
    ByteDFA
        The empty language gives one non-accepting state without transitions (as ``regex_to_dfa``).

    Raises
    ------
    LimitExceededError
        More than ``limits.max_dfa_states`` reachable product states.
    """
    k = len(dfas)
    cols = np.concatenate([np.asarray(d.transitions, dtype=np.int32) for d in dfas], axis=0).T  # [256, sum n]
    _, reps, class_of = np.unique(cols, axis=0, return_index=True, return_inverse=True)
    class_of = np.asarray(class_of, dtype=np.int32).reshape(256)
    n_cls = int(reps.shape[0])
    reduced = [np.ascontiguousarray(np.asarray(d.transitions)[:, reps], dtype=np.int64) for d in dfas]
    accs = [np.asarray(d.accepting, dtype=bool) for d in dfas]
    sizes = [d.n_states for d in dfas]
    dooms = list(doomed) if doomed is not None else [None] * k
    mult = np.ones(k, dtype=object)
    for i in range(k - 2, -1, -1):
        mult[i] = mult[i + 1] * sizes[i + 1]
    use_int = int(mult[0]) * sizes[0] < 2**62
    mult_i = np.array([int(m) for m in mult], dtype=np.int64) if use_int else None

    start = tuple(int(d.start) for d in dfas)
    index: dict = {start: 0}
    states: list[tuple[int, ...]] = [start]
    key_index: dict = {}
    if use_int:
        key_index[int(sum(s * int(m) for s, m in zip(start, mult)))] = 0
    table: list[list[int]] = []
    labels: list[tuple[int, ...]] = []
    max_states = limits.max_dfa_states
    d = 0
    while d < len(states):
        cur = states[d]
        labels.append((0,) if accept(np.array([accs[i][cur[i]] for i in range(k)], dtype=bool)) else ())
        nxt = np.stack([reduced[i][cur[i]] for i in range(k)])  # [k, n_cls]
        dead = (nxt < 0).any(axis=0)
        for i in range(k):
            dm = dooms[i]
            if dm is not None:
                dead |= dm[np.maximum(nxt[i], 0)] & (nxt[i] >= 0)
        row = [-1] * n_cls
        if use_int:
            keys = (nxt * mult_i[:, None]).sum(axis=0).tolist()
            dead_l = dead.tolist()
            for c in range(n_cls):
                if dead_l[c]:
                    continue
                t = key_index.get(keys[c])
                if t is None:
                    t = len(states)
                    if t >= max_states:
                        raise LimitExceededError(
                            "max_dfa_states", max_states, f"{what} needs more than {max_states} DFA states"
                        )
                    key_index[keys[c]] = t
                    states.append(tuple(nxt[:, c].tolist()))
                row[c] = t
        else:
            for c in range(n_cls):
                if dead[c]:
                    continue
                tup = tuple(nxt[:, c].tolist())
                t = index.get(tup)
                if t is None:
                    t = len(states)
                    if t >= max_states:
                        raise LimitExceededError(
                            "max_dfa_states", max_states, f"{what} needs more than {max_states} DFA states"
                        )
                    index[tup] = t
                    states.append(tup)
                row[c] = t
        table.append(row)
        d += 1
    table_cls, out_labels = _minimize(table, labels, n_cls)
    accepting = np.array([bool(lab) for lab in out_labels], dtype=bool)
    return ByteDFA(_expand(table_cls, class_of), accepting, 0)


def is_empty(dfa: ByteDFA) -> bool:
    """Whether ``dfa`` accepts nothing (the minimized empty language: one dead start state)."""
    return dfa.n_states == 1 and not dfa.accepting[0] and not (dfa.transitions >= 0).any()
