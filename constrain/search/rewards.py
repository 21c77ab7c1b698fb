"""Programmatic rewards for lookahead search (docs algorithms.md §3b): ``reward(text) -> float``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

__all__ = ["Reward", "combine", "concept_present", "keyword_coverage", "length_reward", "word_count"]

Reward = Callable[[str], float]


def concept_present(concept: str, text: str) -> bool:
    """Whether ``concept`` starts a word of ``text``, case-insensitive ("dog" matches "Dogs",
    "dog's", "dogged"; not "hotdog"). A cheap stand-in for the lemma match CommonGen uses."""
    return re.search(r"(?<![^\W_])" + re.escape(concept), text, re.IGNORECASE) is not None


def keyword_coverage(words: Iterable[str]) -> Reward:
    """Soft coverage R_kw = |{κ ∈ K : κ occurs in y}| / |K| (occurrence: :func:`concept_present`)."""
    kws = [w for w in dict.fromkeys(words) if w]
    if not kws:
        raise ValueError("keyword_coverage needs at least one keyword")

    def reward(text: str) -> float:
        return sum(concept_present(k, text) for k in kws) / len(kws)

    reward.keywords = kws  # type: ignore[attr-defined]
    return reward


_WORD = re.compile(r"\S+")


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def length_reward(target_words: int, *, over: float = 1.0, under: float = 0.0) -> Reward:
    """R_len = 0 if words(y) ≤ N else −over·(words(y) − N)/N; with ``under`` > 0, texts shorter
    than N also lose ``under·(N − words(y))/N`` (configurable, as the spec asks: the paper's exact
    form was not retrieved)."""
    if target_words < 1:
        raise ValueError("target_words must be >= 1")
    n = float(target_words)

    def reward(text: str) -> float:
        w = word_count(text)
        if w > n:
            return -over * (w - n) / n
        return -under * (n - w) / n

    return reward


def combine(parts: Sequence[tuple[float, Reward]]) -> Reward:
    """h = Σ w_i · R_i(text)."""
    parts = list(parts)

    def reward(text: str) -> float:
        return sum(w * r(text) for w, r in parts)

    return reward
