"""Statistics for the sampler tests: KL of an empirical distribution, a chi-square test (no scipy)."""

from __future__ import annotations

import math
from collections import Counter


def kl_empirical(samples, q) -> float:
    """KL(empirical ‖ q) in nats; q must cover every sample."""
    counts = Counter(samples)
    n = len(samples)
    return sum(c / n * math.log(c / n / q[w]) for w, c in counts.items())


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution with integer ``dof`` (closed forms).

    Even dof: ``e^{-x/2} Σ_{i<k/2} (x/2)^i / i!``; odd dof: ``erfc(√(x/2)) + e^{-x/2} Σ_{i=1}^{(k-1)/2}
    (x/2)^{i-1/2} / Γ(i+1/2)``; both are the regularised upper incomplete gamma Q(k/2, x/2).
    """
    if dof < 1:
        raise ValueError("dof must be >= 1")
    if x <= 0:
        return 1.0
    h = x / 2.0
    if dof % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, dof // 2):
            term *= h / i
            total += term
        return min(1.0, math.exp(-h) * total)
    total = math.erfc(math.sqrt(h))
    if dof > 1:
        term = math.sqrt(h) / math.gamma(1.5)  # i = 1
        s = term
        for i in range(2, (dof - 1) // 2 + 1):
            term *= h / (i - 0.5)
            s += term
        total += math.exp(-h) * s
    return min(1.0, total)


def chi_square_test(samples, q) -> float:
    """p-value of Pearson's goodness-of-fit test of ``samples`` against the distribution ``q``."""
    counts = Counter(samples)
    n = len(samples)
    if set(counts) - set(q):
        return 0.0
    stat = sum((counts.get(w, 0) - n * p) ** 2 / (n * p) for w, p in q.items())
    return chi2_sf(stat, len(q) - 1)
