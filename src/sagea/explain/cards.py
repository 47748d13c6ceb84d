"""Report items of the explanations: example cards (HTML) and the numeric tables.

Tables are :class:`sagea.reports.table.Table` objects written by
:func:`sagea.reports.writers.write_table` (CSV, LaTeX, Markdown, HTML) like every report table;
text labels go into the row index, numbers into the cells.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sagea.reports.table_data import Table, mark_best


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def deletion_table(deletion: pd.DataFrame, dataset: str) -> Table:
    """Mean list overlap after deleting the top-m explaining features vs m random active features."""
    data = deletion.pivot_table(index=["kind", "group_set"], columns="m", values=["top_overlap", "random_overlap"], sort=True)
    cols = []
    for m in sorted(deletion["m"].unique()):
        cols += [("top_overlap", m), ("random_overlap", m)]
    data = data[cols]
    data.columns = pd.MultiIndex.from_tuples([(f"m={m}", "top-m" if what == "top_overlap" else "random") for what, m in cols])
    data.index.names = ["kind", "group set"]
    return Table(
        name=f"explain_deletion-{dataset}",
        title=f"Deletion curve ({dataset}): list overlap after removing m features from the fused code",
        data=data,
        notes=[
            "Overlap |L ∩ L'| / |L| of the top-k list before and after setting m features of the fused code to 0; "
            "top-m = the features contributing most to the list's scores, random = m active features drawn at random "
            "(mean over draws). Lower = the deleted features mattered more. Faithful explanations: top-m far below random.",
        ],
    )


def clusters_table(per_cluster: pd.DataFrame, summary: dict[str, float], labels: pd.DataFrame, dataset: str) -> Table:
    """Per planted cluster the purest feature; the notes carry the headline recovery numbers."""
    label_of = dict(zip(labels["feature"].astype(int), labels["label"])) if len(labels) else {}
    if len(per_cluster) == 0:
        data = pd.DataFrame({"best purity": [np.nan]}, index=pd.Index(["(no planted clusters)"], name="cluster"))
        notes = ["The dataset has no planted clusters (only synthetic data has them)."]
    else:
        index = pd.MultiIndex.from_arrays(
            [
                [f"cluster {c}" for c in per_cluster["cluster"]],
                [f"{f}: {label_of.get(int(f), '')}" for f in per_cluster["best_feature"]],
            ],
            names=["planted cluster", "best feature: label"],
        )
        data = pd.DataFrame(
            {
                "items": per_cluster["n_items"].to_numpy(float),
                "best purity": per_cluster["best_purity"].to_numpy(float),
                "pure features": per_cluster["n_pure"].to_numpy(float),
            },
            index=index,
        )
        notes = [
            f"{int(summary['features_alive'])} alive features: mean purity {summary['mean_purity']:.3f} "
            f"(share of a feature's top items in their majority cluster), {100 * summary['share_pure']:.1f} % pure "
            f"(purity ≥ {summary.get('pure', 0.8):g}), {100 * summary['share_label_matches']:.1f} % labelled with their "
            f"majority cluster; {100 * summary['share_clusters_recovered']:.1f} % of the "
            f"{int(summary['clusters'])} planted clusters have a pure feature.",
        ]
    return Table(
        name=f"explain_clusters-{dataset}",
        title=f"Planted taste clusters recovered by SAE features ({dataset})",
        data=data,
        decimals={"items": 0, "pure features": 0, "best purity": 2},
        notes=notes,
    )


def shared_table(shared: pd.DataFrame, dataset: str, top: int = 10) -> Table:
    """Per group set the features most often held by every member, their label and list share."""
    sets = list(dict.fromkeys(shared["group_set"]))  # in the config's order of group sets
    ordered = shared.assign(_set=shared["group_set"].map({g: i for i, g in enumerate(sets)}))
    rows = (
        ordered.sort_values(["_set", "groups_sharing", "feature"], ascending=[True, False, True])
        .groupby("group_set", sort=False)
        .head(top)
    )
    index = pd.MultiIndex.from_arrays(
        [rows["group_set"], [f"{f}: {lab}" for f, lab in zip(rows["feature"], rows["label"])]],
        names=["group set", "feature: label"],
    )
    data = pd.DataFrame(
        {
            "groups sharing (%)": 100 * rows["groups_sharing"].to_numpy(float),
            "list score share (%)": 100 * rows["mean_share"].to_numpy(float),
        },
        index=index,
    )
    decimals = {"groups sharing (%)": 1, "list score share (%)": 1}
    return Table(
        name=f"explain_shared-{dataset}",
        title=f"Features most shared inside groups ({dataset})",
        data=data,
        marks=mark_best(data, within="group set", decimals=decimals),
        decimals=decimals,
        notes=[
            "groups sharing: share of the set's groups in which every member's code holds the feature; "
            "list score share: its mean share of the features' contribution to the list's scores in those groups.",
        ],
    )


CARD_STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:1em}
.card{border:1px solid #d0d4da;border-radius:6px;padding:.6em 1em;margin:0 0 1em;max-width:70em}
.card h3{margin:.2em 0 .5em;font-size:15px}
.card table{border-collapse:collapse;margin:.3em 0}
.card th,.card td{border:1px solid #e2e5ea;padding:2px 6px;text-align:left;vertical-align:top}
.card td.num{text-align:right;font-variant-numeric:tabular-nums}
.members{display:flex;gap:1.5em;flex-wrap:wrap}
.muted{color:#666}
"""


def _title(item: dict) -> str:
    """Display name of an item record: title, else artist, else its original id (with its planted cluster)."""
    for key in ("title", "artist"):
        if item.get(key) not in (None, ""):
            return str(item[key])
    name = str(item.get("original_id", f"item {item.get('item')}"))
    return f"{name} (cluster {item['cluster']})" if item.get("cluster") is not None else name


def item_names(items: pd.DataFrame) -> np.ndarray:
    """:func:`_title` of every item of items.parquet, by item index."""
    return np.array([_title(r) for r in items.sort_values("item").to_dict(orient="records")], dtype=object)


def card_html(card: dict, n_items: int = 10) -> str:
    """One group's card: members and their top items, the list with titles, the shared features."""
    ex = card["explanation"]
    parts = [f'<div class="card"><h3>{_esc(card["group_set"])} · group {card["group"]}</h3>', '<div class="members">']
    for member in card["members"]:
        tops = "".join(f"<li>{_esc(t)}</li>" for t in member["top_items"])
        parts.append(f'<div><b>member {_esc(member["original_id"])}</b><ol>{tops}</ol></div>')
    parts.append("</div><b>Shared and driving features</b><table><tr><th>feature</th><th>label</th>"
                 "<th>share of list score</th><th>held by members</th></tr>")  # fmt: skip
    for f in ex["features"]:
        share = "–" if f["share"] is None else f"{100 * f['share']:.1f} %"
        held = ", ".join(str(card["members"][m]["original_id"]) for m in f["members"]) or '<span class="muted">none</span>'
        parts.append(f'<tr><td class="num">{f["feature"]}</td><td>{_esc(f["label"])}</td>'
                     f'<td class="num">{share}</td><td>{held}</td></tr>')  # fmt: skip
    parts.append("</table><b>Recommended</b><table><tr><th>#</th><th>item</th><th>score</th><th>from features</th></tr>")
    for item in ex["items"][:n_items]:
        feats = ", ".join(f"{f} ({_esc(lab)})" if lab else str(f) for f, lab in zip(item["features"], item["feature_labels"]))
        parts.append(f'<tr><td class="num">{item["rank"] + 1}</td><td>{_esc(_title(item))}</td>'
                     f'<td class="num">{item["score"]:.3f}</td><td>{feats}</td></tr>')  # fmt: skip
    parts.append("</table></div>")
    return "\n".join(parts)


def cards_page(cards: Sequence[dict], dataset: str, fusion: str, sae: str) -> str:
    """A standalone HTML page with every example card."""
    body = "\n".join(card_html(c) for c in cards) or "<p>No groups to show.</p>"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Explanations – {_esc(dataset)}</title>"
        f"<style>{CARD_STYLE}</style></head><body><h2>Why these groups got their lists ({_esc(dataset)})</h2>"
        f"<p class='muted'>SAGEA fusion <code>{_esc(fusion)}</code> on SAE <code>{_esc(sae)}</code>. "
        "Features of the fused group code, ranked by their contribution to the recommended items' scores; "
        "labels name the item metadata most over-represented among each feature's top items.</p>"
        f"{body}</body></html>\n"
    )
