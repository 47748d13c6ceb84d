"""Significance tests, multiple-testing corrections and bootstrap confidence intervals.

The paper's test (docs/method.md §5): for each group kind and metric, a one-sided paired t-test of
the best approach against every other over the per-group values, ``H1: mean(best - other) > 0``
(``< 0`` for lower-is-better metrics such as popularity); ``p <= alpha`` is marked ``*``.
The Wilcoxon signed-rank test is the non-parametric option. Everything is seeded and pure.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

TESTS = ("ttest", "wilcoxon")
CORRECTIONS = ("none", "holm", "bh")


def paired_test(best: np.ndarray, other: np.ndarray, test: str = "ttest", higher_is_better: bool = True) -> float:
    """One-sided paired p-value that ``best`` beats ``other`` (pairs with a NaN are dropped).

    ``ttest``: ``scipy.stats.ttest_rel(best, other, alternative="greater")``;
    ``wilcoxon``: ``scipy.stats.wilcoxon(best - other, alternative="greater")``. With
    ``higher_is_better=False`` the alternative is "less". Identical samples give p = 1.
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r} (config key reports.test): use one of {TESTS}")
    best = np.asarray(best, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if best.shape != other.shape:
        raise ValueError(f"paired test needs equal lengths, got {best.shape} and {other.shape}")
    keep = np.isfinite(best) & np.isfinite(other)
    diff = best[keep] - other[keep]
    if diff.size < 2 or np.allclose(diff, 0.0):
        return 1.0
    alternative = "greater" if higher_is_better else "less"
    if test == "ttest":
        if np.allclose(diff, diff[0]):  # zero variance: the sign decides
            return 0.0 if (diff[0] > 0) == higher_is_better else 1.0
        p = sps.ttest_rel(best[keep], other[keep], alternative=alternative).pvalue
    else:
        p = sps.wilcoxon(diff, alternative=alternative, zero_method="wilcox").pvalue
    return float(p) if np.isfinite(p) else 1.0


def correct(pvalues: np.ndarray, method: str = "none") -> np.ndarray:
    """Adjust a family of p-values: ``none``, ``holm`` (step-down FWER) or ``bh`` (FDR).

    Holm: ``p_(i) * (m - i + 1)`` for sorted p, made monotone increasing, capped at 1.
    Benjamini–Hochberg: ``p_(i) * m / i``, made monotone decreasing from the top, capped at 1.
    NaN entries stay NaN and do not count in ``m``.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r} (config key reports.correction): use one of {CORRECTIONS}")
    p = np.asarray(pvalues, dtype=np.float64)
    out = p.copy()
    if method == "none":
        return out
    ok = np.isfinite(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    i = np.arange(1, m + 1)
    if method == "holm":
        adj = np.maximum.accumulate(ranked * (m - i + 1))
    else:
        adj = np.minimum.accumulate((ranked * m / i)[::-1])[::-1]
    adj = np.minimum(adj, 1.0)
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, seed: int = 42, level: float = 0.95, chunk: int = 256
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean: resample ``n`` values with replacement ``n_boot`` times.

    Returns ``(low, high)`` = the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the resampled
    means. NaNs are dropped first; an empty sample gives ``(nan, nan)``. Resampling is done in
    chunks of ``chunk`` replicates to bound memory (``chunk * n`` indices at once).
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def best_vs_others(
    samples: dict[str, np.ndarray],
    higher_is_better: bool = True,
    test: str = "ttest",
    correction: str = "none",
) -> tuple[str, dict[str, float]]:
    """The approach with the best mean and the (corrected) p-value of it beating each other one.

    ``samples`` maps approach -> per-group values aligned on the same groups. The best one gets
    p = NaN. The correction runs over the family of the ``len(samples) - 1`` comparisons.
    """
    names = list(samples)
    means = np.array([np.nanmean(samples[n]) if np.isfinite(samples[n]).any() else np.nan for n in names])
    score = means if higher_is_better else -means
    if not np.isfinite(score).any():  # nothing to compare: no best, no stars
        return names[0], {n: float("nan") for n in names}
    best = names[int(np.nanargmax(score))]
    others = [n for n in names if n != best]
    raw = np.array([paired_test(samples[best], samples[n], test, higher_is_better) for n in others])
    adj = correct(raw, correction)
    pvals = {best: float("nan")}
    pvals.update(dict(zip(others, adj.tolist())))
    return best, pvals
