"""Diagnostics figures of sampled group sets (what the researchers looked at, docs/method.md §4)."""

from __future__ import annotations

import math

import numpy as np

from sagea.groups.sampling import GroupSet


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
