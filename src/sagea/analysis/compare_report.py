"""Tables and figures of the pairwise comparisons written by :mod:`sagea.analysis.compare`.

Figures follow seed notebook 002: similarity to a reference run against the hyperparameter
that changed, one panel per measure, here with the noise floor (seed pairs) and the random
baseline drawn next to each point.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

#: Human-readable panel titles.
TITLES = {
    "knn_jaccard": "kNN Jaccard overlap@k (mean)",
    "knn_jaccard_std": "kNN Jaccard overlap@k (std over rows)",
    "cka": "linear CKA",
    "procrustes_residual": "Procrustes residual (0 = same)",
    "cca": "held-out CCA mean correlation",
    "decoder_mmcs_ab": "decoder mean max cosine a→b",
    "decoder_mmcs_ba": "decoder mean max cosine b→a",
    "decoder_hungarian": "decoder Hungarian mean cosine",
    "decoder_matched_share": "decoder share matched ≥ threshold",
    "activation_mmc_ab": "activation mean max corr. a→b",
    "activation_mmc_ba": "activation mean max corr. b→a",
    "activation_hungarian": "activation Hungarian mean corr.",
    "activation_matched_share": "activation share matched ≥ threshold",
}


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Wide table of the compared pairs: ``a, b, varied`` then ``<measure>``, ``<measure>_noise``, ``<measure>_random``."""
    comp = scores[scores["kind"] == "compared"]
    measures = list(dict.fromkeys(comp["measure"]))
    pairs = comp.drop_duplicates(["a", "b"])[["a", "b", "varied"]].reset_index(drop=True)
    out = pairs.copy()
    indexed = comp.set_index(["a", "b", "measure"])
    for m in measures:
        for col, suffix in (("value", ""), ("noise_floor", "_noise"), ("random_baseline", "_random")):
            out[m + suffix] = [indexed.loc[(a, b, m), col] for a, b in zip(pairs["a"], pairs["b"])]
    return out


def _fmt(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def markdown_table(scores: pd.DataFrame) -> str:
    """Markdown: one row per compared pair, each cell ``value (noise floor / random)``."""
    wide = summary_table(scores)
    measures = [c for c in wide.columns[3:] if not c.endswith(("_noise", "_random"))]
    head = ["a", "b", "varied", *measures]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in wide.iterrows():
        cells = [str(row["a"]), str(row["b"]), str(row["varied"])]
        cells += [f"{_fmt(row[m])} ({_fmt(row[m + '_noise'])} / {_fmt(row[m + '_random'])})" for m in measures]
        lines.append("| " + " | ".join(cells) + " |")
    note = "\n\nCells: value (noise floor from seed pairs / random baseline of the same shape); – = not available.\n"
    return "\n".join(lines) + note


def _sort_key(label: str) -> tuple:
    """Natural order of ``key=value`` labels: by key, then numerically where the value is a number."""
    parts = []
    for item in label.split(", "):
        key, _, value = item.partition("=")
        try:
            parts.append((key, 0, float(value), ""))
        except ValueError:
            parts.append((key, 1, 0.0, value))
    return tuple(parts)


def similarity_figure(scores: pd.DataFrame, reference: str | None = None, title: str = ""):
    """Similarity to ``reference`` (default: the first ``a``) vs the varied hyperparameters, one panel per measure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = scores[scores["kind"] == "compared"]
    reference = reference or (comp["a"].iloc[0] if len(comp) else "")
    comp = comp[comp["a"] == reference]
    measures = list(dict.fromkeys(comp["measure"]))
    ncols = min(4, max(1, len(measures)))
    nrows = max(1, math.ceil(len(measures) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False)
    labels = sorted(dict.fromkeys(comp["varied"]), key=_sort_key)
    x = np.arange(len(labels))
    for ax, m in zip(axes.flat, measures):
        sub = comp[comp["measure"] == m].set_index("varied").reindex(labels)
        ax.plot(x, sub["value"], "o-", label="value")
        ax.plot(x, sub["noise_floor"], "s--", color="tab:green", alpha=0.8, label="noise floor (seed)")
        ax.plot(x, sub["random_baseline"], "x:", color="tab:grey", label="random baseline")
        ax.set_title(TITLES.get(m, m), fontsize=10)
        ax.set_xticks(x, [re.sub(r",\s*", "\n", lab) for lab in labels], fontsize=7)
        ax.set_ylabel(f"vs {reference}", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(measures):]:
        ax.axis("off")
    if measures:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(title or f"Similarity to {reference}")
    fig.tight_layout()
    return fig


def pairwise_figure(scores: pd.DataFrame, title: str = ""):
    """Heat maps of every compared pair, one panel per measure (symmetric, or row → column for a→b/b→a)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comp = scores[scores["kind"] == "compared"]
    ids = list(dict.fromkeys([*comp["a"], *comp["b"]]))
    pos = {r: i for i, r in enumerate(ids)}
    # Directional pairs (x_ab, x_ba) share one panel: cell (row a, column b) = a → b.
    all_measures = list(dict.fromkeys(comp["measure"]))
    measures = [m for m in all_measures if not (m.endswith("_ba") and m[:-3] + "_ab" in all_measures)]
    ncols = min(4, max(1, len(measures)))
    nrows = max(1, math.ceil(len(measures) / ncols))
    # Ticks are short numbers with a key below the panels: run ids ("f64-s42/topk-h128-k8-l2")
    # are too long to read as rotated tick labels. Cells carry their values while they fit.
    size = 2.2 + 0.5 * len(ids)
    annotate = len(ids) <= 12
    key_lines = math.ceil(len(ids) / 2)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + 0.25 * key_lines + 0.6), squeeze=False
    )
    ticks = [str(i + 1) for i in range(len(ids))]
    for ax, m in zip(axes.flat, measures):
        mat = np.full((len(ids), len(ids)), np.nan)
        reverse = m[:-3] + "_ba" if m.endswith("_ab") and m[:-3] + "_ba" in all_measures else m
        for row in comp[comp["measure"] == m].itertuples():
            mat[pos[row.a], pos[row.b]] = row.value
        for row in comp[comp["measure"] == reverse].itertuples():
            mat[pos[row.b], pos[row.a]] = row.value
        im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
        panel = TITLES.get(m, m)
        ax.set_title(panel.replace(" a→b", " row→column") if reverse != m else panel, fontsize=9)
        ax.set_xticks(range(len(ids)), ticks, fontsize=8)
        ax.set_yticks(range(len(ids)), ticks, fontsize=8)
        if annotate:
            for (r, c), v in np.ndenumerate(mat):
                if np.isfinite(v):
                    ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="k" if v > 0.5 else "w")
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[len(measures):]:
        ax.axis("off")
    half = math.ceil(len(ids) / 2)
    key = [f"{i + 1} = {r}" for i, r in enumerate(ids)]
    columns = ["\n".join(key[:half]), "\n".join(key[half:])]
    for x, text in zip((0.02, 0.52), columns):
        fig.text(x, 0.01, text, fontsize=7, va="bottom", ha="left", family="monospace")
    fig.suptitle(title or "Pairwise similarity")
    fig.tight_layout(rect=(0, (0.25 * key_lines + 0.4) / fig.get_figheight(), 1, 1))
    return fig


def write_report(
    scores: pd.DataFrame,
    csv: str,
    markdown: str,
    figure: str,
    pairs_figure: str | None = None,
    title: str = "",
) -> None:
    """Write the wide CSV, the Markdown table, the similarity figure and optionally the pairwise heat maps."""
    import matplotlib.pyplot as plt

    from sagea.io import atomic_path, save_figure, write_text

    with atomic_path(csv) as tmp:
        summary_table(scores).to_csv(tmp, index=False)
    write_text(markdown_table(scores), markdown)
    fig = similarity_figure(scores, title=title)
    save_figure(fig, figure)
    plt.close(fig)
    if pairs_figure:
        fig = pairwise_figure(scores, title=title)
        save_figure(fig, pairs_figure)
        plt.close(fig)


def write_pairs_figure(scores: pd.DataFrame, figure: str, title: str = "") -> None:
    """Write :func:`pairwise_figure` (heat maps of every compared pair)."""
    import matplotlib.pyplot as plt

    from sagea.io import save_figure

    fig = pairwise_figure(scores, title=title)
    save_figure(fig, figure)
    plt.close(fig)
