"""What we report about a sampled group set (docs/method.md §4): pairs of groups sharing
members, the small-data flags and warnings of its summary, and the figures the researchers
looked at (histograms of group and subgroup similarity)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from sagea.groups.io import GroupSet

#: Share of members two groups must have in common to be reported as overlapping (seed 001).
OVERLAP_REPORT_THRESHOLD = 0.3


def member_overlap_pairs(groups: np.ndarray, threshold: float = OVERLAP_REPORT_THRESHOLD) -> np.ndarray:
    """Pairs ``(i, j, shared)`` with ``i < j`` whose share ``|G_i ∩ G_j| / size`` is >= threshold."""
    n, size = groups.shape
    if n == 0:
        return np.zeros((0, 3), dtype=np.int64)
    incidence = sp.csr_matrix(
        (np.ones(groups.size, dtype=np.int32), (np.repeat(np.arange(n), size), groups.reshape(-1))),
        shape=(n, int(groups.max()) + 1),
    )
    shared = sp.triu(incidence @ incidence.T, k=1).tocoo()
    keep = shared.data >= threshold * size - 1e-9
    return np.stack([shared.row[keep], shared.col[keep], shared.data[keep]], axis=1).astype(np.int64)


# ----------------------------------------------------------------------------- small-data honesty
#: A group set whose median number of common held-out items is at most this is flagged: its
#: NDCG_com rests on one or two items per group.
FEW_COMMON_TARGETS = 2
#: A group set is flagged for heavy overlap when at least this share of its groups shares at least
#: HEAVY_OVERLAP_THRESHOLD of its members with another group of the set (a near-duplicate). The
#: research diagnostic's 30% (OVERLAP_REPORT_THRESHOLD, kept in the summary) is one member of a
#: group of 3, which nearly every group set of a realistic pool reaches, so it cannot be the flag.
HEAVY_OVERLAP_THRESHOLD = 0.5
HEAVY_OVERLAP_SHARE = 0.25


def small_data_flags(
    n_common_targets: np.ndarray, overlapping_groups: int, n_groups: int, size: int, pool_users: int
) -> dict[str, Any]:
    """``common_targets`` statistics, ``flags`` and readable ``warnings`` of one group set.

    Flags: ``few_common_targets`` (median common held-out items <= :data:`FEW_COMMON_TARGETS`),
    ``heavy_overlap`` (share of groups sharing >= :data:`HEAVY_OVERLAP_THRESHOLD` of their members with
    another group >= :data:`HEAVY_OVERLAP_SHARE`; ``overlapping_groups`` counts those groups),
    ``small_pool`` (``size x n_groups`` member slots exceed the pool: groups cannot be disjoint).
    """
    counts = np.asarray(n_common_targets, dtype=np.float64)
    median = float(np.median(counts)) if len(counts) else float("nan")
    share_few = float((counts <= FEW_COMMON_TARGETS).mean()) if len(counts) else float("nan")
    overlap_share = overlapping_groups / n_groups if n_groups else 0.0
    per_user = size * n_groups / pool_users if pool_users else float("inf")
    flags, warnings = [], []
    if len(counts) and median <= FEW_COMMON_TARGETS:
        flags.append("few_common_targets")
        warnings.append(
            f"median {median:g} common held-out items per group ({share_few:.0%} of the groups have at most "
            f"{FEW_COMMON_TARGETS}): NDCG_com rests on one or two items per group; raise groups.common_interactions"
        )
    if overlap_share >= HEAVY_OVERLAP_SHARE:
        flags.append("heavy_overlap")
        warnings.append(
            f"{overlap_share:.0%} of the groups share >= {HEAVY_OVERLAP_THRESHOLD:.0%} of their members with "
            "another group: the groups are not independent samples (paired tests overstate significance)"
        )
    if per_user > 1:
        flags.append("small_pool")
        warnings.append(
            f"the pool of {pool_users} users is too small for {n_groups} groups of {size}: each user is in "
            f"{per_user:.1f} groups on average; use a larger pool (groups.pools, groups.max_pool_users) or fewer "
            "groups (groups.final_group_count)"
        )
    return {
        "common_targets": {
            "median": median,
            "min": float(counts.min()) if len(counts) else float("nan"),
            f"share_at_most_{FEW_COMMON_TARGETS}": share_few,
        },
        "overlap_share": overlap_share,
        "mean_groups_per_user": per_user,
        "flags": flags,
        "warnings": warnings,
    }


# ----------------------------------------------------------------------------- figures
def _axes_grid(n: int, width: float = 4.0, height: float = 3.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, axes.ravel()


def similarity_histograms(sets: dict[str, GroupSet], td: float, ts: float, bins: int = 40):
    """One histogram per group set of the mean pairwise similarity of its groups, with Td / Ts."""
    fig, axes = _axes_grid(len(sets))
    lo = min((np.nanmin(s.similarity["group_similarity"]) for s in sets.values()), default=0.0)
    hi = max((np.nanmax(s.similarity["group_similarity"]) for s in sets.values()), default=1.0)
    edges = np.linspace(min(lo, ts) - 0.01, max(hi, td) + 0.01, bins + 1)
    for ax, (name, s) in zip(axes, sets.items()):
        ax.hist(s.similarity["group_similarity"], bins=edges, color="tab:blue", alpha=0.8)
        ax.axvline(td, color="tab:green", ls="--", label=f"Td={td:.3f}")
        ax.axvline(ts, color="tab:red", ls="--", label=f"Ts={ts:.3f}")
        ax.set_title(f"{name} ({len(s.members)} groups)")
        ax.set_xlabel("mean pairwise similarity")
        ax.set_ylabel("groups")
        ax.legend(fontsize=7)
    for ax in axes[len(sets) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def opposing_subgroup_figure(sets: dict[str, GroupSet], td: float, ts: float, bins: int = 40):
    """Per opposing set: within-subgroup similarities and the similarity between the subgroups."""
    opposing = {n: s for n, s in sets.items() if s.kind == "opposing"}
    fig, axes = _axes_grid(max(1, len(opposing)))
    if not opposing:
        axes[0].text(0.5, 0.5, "no opposing group sets configured", ha="center", va="center")
        axes[0].set_axis_off()
        return fig
    keys = ("subgroup_similarity_0", "subgroup_similarity_1", "between_similarity")
    values_all = np.concatenate([s.similarity[k] for s in opposing.values() for k in keys])
    values_all = values_all[np.isfinite(values_all)]
    lo = min(values_all.min(initial=1.0), ts) - 0.01
    hi = max(values_all.max(initial=0.0), td) + 0.01
    edges = np.linspace(lo, hi, bins + 1)
    for ax, (name, s) in zip(axes, opposing.items()):
        for key, label, color in (
            ("subgroup_similarity_0", "within subgroup 0", "tab:green"),
            ("subgroup_similarity_1", "within subgroup 1", "tab:olive"),
            ("between_similarity", "between subgroups", "tab:red"),
        ):
            values = s.similarity[key]
            values = values[np.isfinite(values)]
            if len(values):
                ax.hist(values, bins=edges, alpha=0.6, color=color, label=label)
        ax.axvline(td, color="tab:green", ls="--", lw=1, label=f"Td={td:.3f} (similar)")
        ax.axvline(ts, color="tab:red", ls="--", lw=1, label=f"Ts={ts:.3f} (divergent)")
        ax.set_title(name)
        ax.set_xlabel("mean pairwise similarity")
        ax.set_ylabel("groups")
        ax.legend(fontsize=7)
    for ax in axes[len(opposing) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
