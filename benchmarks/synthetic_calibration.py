"""Real MovieLens against the synthetic generator: the statistics that shape a group study.

Prepares a MovieLens release (ratings >= 4, the 50 / 20 MovieLens filter) and the synthetic
dataset of a config (default: the embedded default), computes
:func:`sagea.analysis.calibration.calibration_statistics` for both and prints a Markdown table with the
calibration band of every banded statistic (``sagea.analysis.calibration.CALIBRATION_BANDS``). This is the
table of docs/synthetic.md.

    PYTHONPATH=src python benchmarks/synthetic_calibration.py --movielens PATH/ml-latest-small \\
        [--config config/config.yaml] [--extra 'old={"n_items": 1500, ...}'] [--json out.json]

``--extra NAME=JSON`` adds a column for the config's generator with these parameters replaced
(e.g. an older default); ``--filter 20,10`` adds a column for MovieLens under another filter.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from sagea.analysis.calibration import (
    CALIBRATION_BANDS,
    calibration_statistics,
    group_kind_statistics,
    prepared_matrix,
    within_band,
)

ROWS = [
    ("counts.users", "users", "{:,.0f}"),
    ("counts.items", "items", "{:,.0f}"),
    ("counts.density", "density", "{:.3f}"),
    ("per_user.q10", "interactions per user, 10% quantile", "{:.0f}"),
    ("per_user.q25", "interactions per user, 25%", "{:.0f}"),
    ("per_user.q50", "interactions per user, median", "{:.0f}"),
    ("per_user.q75", "interactions per user, 75%", "{:.0f}"),
    ("per_user.q90", "interactions per user, 90%", "{:.0f}"),
    ("per_user.max", "interactions per user, max", "{:.0f}"),
    ("user_activity_gini", "Gini of user activity", "{:.2f}"),
    ("item_popularity_gini", "Gini of item popularity", "{:.2f}"),
    ("top_decile_share", "share of interactions on the top 10% items", "{:.2f}"),
    ("per_item_max_share", "share of users holding the most popular item", "{:.2f}"),
    ("pairs.mean", "items shared by a random pair, mean", "{:.1f}"),
    ("pairs.median", "items shared by a random pair, median", "{:.0f}"),
    ("pairs.share_ge1", "random pairs sharing >= 1 item", "{:.2f}"),
    ("pairs.share_ge5", "random pairs sharing >= 5 items", "{:.2f}"),
    ("groups.common_mean", "items held by all 3 members, mean", "{:.1f}"),
    ("groups.common_targets_mean", "common held-out items of a random 3-group, mean", "{:.2f}"),
    ("groups.share_any", "random 3-groups with >= 1 common held-out item", "{:.2f}"),
    ("groups.share_passing", "random 3-groups with more than common_interactions", "{:.3f}"),
    ("groups.share_gt5", "random 3-groups with more than 5 (the paper's filter)", "{:.3f}"),
    ("groups.targets_top_share", "common held-out items among the 20 most popular", "{:.2f}"),
    ("groups.targets_mean_rank_share", "mean popularity rank of common held-out items / items", "{:.3f}"),
    ("signal.POP", "single-user NDCG@20, POP (5 folds)", "{:.3f}"),
    ("signal.EASE", "single-user NDCG@20, EASE λ=200", "{:.3f}"),
    ("signal.ratio", "EASE / POP", "{:.2f}"),
]


def band_text(key: str) -> str:
    if key not in CALIBRATION_BANDS:
        return ""
    kind, width = CALIBRATION_BANDS[key]
    return f"±{width:.0%}" if kind == "rel" else f"±{width:g}"


def markdown(columns: dict[str, dict[str, float]], reference: str, calibrated: str) -> str:
    names = list(columns)
    lines = [
        "| statistic | " + " | ".join(names) + " | band | in band |",
        "|---|" + "---:|" * len(names) + "---|---|",
    ]
    for key, label, fmt in ROWS:
        cells = [fmt.format(columns[n][key]) for n in names]
        ok = within_band(key, columns[reference][key], columns[calibrated][key])
        mark = "" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {band_text(key)} | {mark} |")
    return "\n".join(lines) + "\n"


def kinds_markdown(kinds: dict[str, dict[str, dict[str, float]]]) -> str:
    names = list(kinds)
    first = kinds[names[0]]
    lines = ["| group kind | statistic | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    for kind in first:
        for stat in first[kind]:
            label = "common held-out items, mean" if stat == "mean" else f"share with more than {stat[8:]}"
            cells = [f"{kinds[n][kind][stat]:.3f}" for n in names]
            lines.append(f"| {kind} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", required=True, help="ml-latest-small folder (or any MovieLens release)")
    parser.add_argument("--release", default="ml-latest-small")
    parser.add_argument("--config", default="config/config.yaml", help="config whose synthetic dataset is compared")
    parser.add_argument("--extra", action="append", default=[], help="NAME=JSON: generator parameters to replace")
    parser.add_argument("--filter", action="append", default=[], help="USER,ITEM: MovieLens under another filter")
    parser.add_argument("--json", help="write every statistic of every column here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("SAGEA_PROGRESS", "0")

    config = yaml.safe_load(Path(args.config).read_text())
    name, spec = next((n, s) for n, s in config["datasets"].items() if s["source"] == "synthetic")
    groups = config.get("groups", {})
    kwargs = {
        "target_ratio": groups.get("split", {}).get("target_ratio", 0.5),
        "common_interactions": groups.get("common_interactions", 5),
    }
    movielens = {"source": "movielens", "release": args.release}
    matrices = {"MovieLens": prepared_matrix(movielens, args.movielens)}
    for text in args.filter:
        user, item = (int(v) for v in text.split(","))
        spec_f = {**movielens, "filter": {"min_user_interactions": user, "min_item_interactions": item}}
        matrices[f"MovieLens {user}/{item}"] = prepared_matrix(spec_f, args.movielens)
    matrices["synthetic"] = prepared_matrix(spec, name=name)
    for text in args.extra:
        label, params = text.split("=", 1)
        extra = {**spec, "synthetic": {**spec.get("synthetic", {}), **json.loads(params)}}
        matrices[label] = prepared_matrix(extra, name=name)
    columns = {label: calibration_statistics(rows, **kwargs) for label, rows in matrices.items()}
    kinds = {
        label: group_kind_statistics(rows, target_ratio=kwargs["target_ratio"]) for label, rows in matrices.items()
    }
    print(f"common_interactions = {kwargs['common_interactions']}, target_ratio = {kwargs['target_ratio']}\n")
    print(markdown(columns, "MovieLens", "synthetic"))
    print("\nGroups grown as the workflow grows them (embeddings: a rank-32 SVD of each matrix, pool: all users)\n")
    print(kinds_markdown(kinds))
    if args.json:
        Path(args.json).write_text(json.dumps({"statistics": columns, "group_kinds": kinds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
