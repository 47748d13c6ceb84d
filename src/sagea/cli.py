"""The ``sagea`` command: look into a trained study, recommend for a group, explain a list.

Installed as the console script ``sagea`` (``pyproject.toml``); without it, ``python -m sagea.cli``.
Every subcommand prints a table, or JSON with ``--json``; ``sagea <command> --help`` has examples.
The work is done by :mod:`sagea.api`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

MAIN_EPILOG = """\
examples:
  sagea runs                                   what is in ./results (datasets, models, groups, evaluations)
  sagea recommend --users 1,2,3 -k 10          a list for the group of users 1, 2 and 3 (original ids)
  sagea recommend --users 1 --items-of-new-user 318,296 --strategy GFAR
  sagea groups show test/similar_3 --group 0   the members of group 0 and the evaluation's lists
  sagea explain --users 1,2,3                  the sparse features behind a SAGEA list

Run `sagea <command> --help` for the options of each command.
"""

RECOMMEND_EPILOG = """\
members of the group (combine freely):
  --users 1,2,3                 existing users by their original ids (users.parquet); their full histories
  --items-of-new-user 10,20,30  a new user given by the original ids of their items (repeat per new user)
  --group-set test/similar_3 --group 4
                                a group of the evaluation with exactly the evaluation's member inputs
                                (the group split's input part): with the evaluation's options the
                                list equals the saved one (`sagea groups show` prints it)

strategies: sagea:<fusion> (fusions: average, square_average, topk, max, min, common_features,
  at_least_2_common_features, wcom) or a baseline (ELSA, ELSA_INT, ADD, MUL, LMS, MPL, GFAR,
  EPFuzzDA, POPULAR).

examples:
  sagea recommend --users 1,2,3
  sagea recommend --users 1,2,3 --strategy sagea:common_features --sae topk-h256-k16-l2 --json
  sagea recommend --items-of-new-user 318,296,593 --items-of-new-user 2571,4993 --strategy ADD -k 10
  sagea recommend --group-set test/similar_3 --group 4 --strategy GFAR
  sagea recommend results/ml-32m/s42 --users 1,2 --dataset ml-32m
"""

EXPLAIN_EPILOG = """\
Explains a SAGEA list: the features of the fused group code that drive it (with labels from the
SAE's features.parquet), which members hold them, and for each recommended item its features.

examples:
  sagea explain --users 1,2,3
  sagea explain --group-set test/similar_3 --group 4 --strategy sagea:wcom --json
"""

RUNS_EPILOG = """\
PATH may be a results folder (results/), a dataset folder (results/<dataset>/) or a replicate
(results/<dataset>/s42/). SAE k and width are read from each checkpoint.

examples:
  sagea runs
  sagea runs results/synthetic/s42 --json
"""

GROUPS_EPILOG = """\
examples:
  sagea groups show test/similar_3                 every group: members and similarity
  sagea groups show test/similar_3 --group 4       group 4's members and the evaluation's lists
  sagea groups show test/similar_3 --group 4 --strategy ADD --json
"""


def _ids(values: Sequence[str] | None) -> list[str]:
    """``["1,2", "3"]`` -> ``["1", "2", "3"]``."""
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def _plain(obj: Any) -> Any:
    """JSON-ready values: NumPy scalars/arrays plain, NaN/NA -> null."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def records(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame as a list of JSON-ready row dicts."""
    return _plain(frame.to_dict("records"))


def _emit(args: argparse.Namespace, payload: dict, tables: list[tuple[str, pd.DataFrame]]) -> None:
    if args.json:
        print(json.dumps(_plain(payload), indent=2))
        return
    for title, frame in tables:
        print(f"{title}:" if title else "", end="\n" if title else "")
        print(frame.to_string(index=False) if len(frame) else "  (none)")
        print()


def _study(args: argparse.Namespace):
    from sagea.api import Study

    return Study.open(args.results, device=args.device)


def _rep(args: argparse.Namespace):
    return _study(args).replicate(args.dataset, args.replicate)


# ----------------------------------------------------------------------------- commands
def cmd_runs(args: argparse.Namespace) -> None:
    study = _study(args)
    reps = [r for r in study.replicates if args.dataset in (None, r.dataset) and args.replicate in (None, r.rep)]
    payload = {"path": str(study.root), "replicates": [r.summary() for r in reps]}
    tables = []
    for s in payload["replicates"]:
        name = f"{s['dataset']}/{s['replicate']}"
        tables += [
            (f"{name}: ELSA runs", pd.DataFrame(s["elsa"])),
            (f"{name}: SAE variants", pd.DataFrame(s["sae"])),
            (f"{name}: group sets", pd.DataFrame(s["group_sets"])),
            (f"{name}: evaluation folders (strategies per pool/group set/ELSA run)", pd.DataFrame(s["evaluations"])),
        ]
    if not args.json:
        print(f"{study.root}: {len(reps)} replicate(s) of {', '.join(sorted({r.dataset for r in reps}))}\n")
    _emit(args, payload, tables)


def _options(args: argparse.Namespace) -> dict:
    return dict(
        elsa=args.elsa, sae=args.sae, topk_inference=not args.no_topk_inference,
        normalize_users_embeddings=args.normalize_users_embeddings, zero_fallback=args.zero_fallback,
    )  # fmt: skip


def _members(args: argparse.Namespace, rep) -> tuple[dict, dict]:
    """(keyword arguments naming the members for the API, their description for the output)."""
    users, new_users = _ids(args.users), [_ids([v]) for v in args.items_of_new_user or ()]
    if args.group_set:
        if args.group is None or users or new_users:
            raise SystemExit("--group-set needs --group N and no --users/--items-of-new-user")
        pool, groupset = _group_set(args.group_set)
        _, inputs = rep.group_inputs(pool, groupset, [args.group])
        members = rep.group_members(pool, groupset, args.group)["original_id"].tolist()
        return {"inputs": inputs[0]}, {"group_set": args.group_set, "group": args.group, "users": members,
                                       "inputs": "the evaluation's member inputs"}  # fmt: skip
    if not users and not new_users:
        raise SystemExit("name the group's members: --users 1,2,3 and/or --items-of-new-user 10,20 "
                         "(or --group-set POOL/GROUPSET --group N); see --help")  # fmt: skip
    return {"users": users, "new_users": new_users}, {"users": users, "new_users": new_users}


def _group_set(value: str) -> tuple[str, str]:
    pool, _, groupset = value.partition("/")
    if not groupset:
        raise SystemExit(f"group set {value!r}: expected POOL/GROUPSET, e.g. test/similar_3 (see `sagea runs`)")
    return pool, groupset


def cmd_recommend(args: argparse.Namespace) -> None:
    rep = _rep(args)
    members, described = _members(args, rep)
    frame = rep.recommend(
        strategy=args.strategy, k=args.k, popularity_with_targets=args.popularity_with_targets, **members,
        **_options(args),
    )  # fmt: skip
    payload = {"dataset": rep.dataset, "replicate": rep.rep, "strategy": args.strategy, "k": args.k,
               "members": described, "recommendations": records(frame)}  # fmt: skip
    _emit(args, payload, [(f"{args.strategy} for {described}", frame)])


def cmd_explain(args: argparse.Namespace) -> None:
    rep = _rep(args)
    members, described = _members(args, rep)
    result = rep.explain(strategy=args.strategy, n=args.n, n_features=args.n_features, **members, **_options(args))
    payload = {"dataset": rep.dataset, "replicate": rep.rep, "strategy": args.strategy, "members": described,
               "explanation": result.to_dict()}  # fmt: skip
    _emit(args, payload, [("features of the fused code", result.features), ("recommended items", result.items)])


def cmd_groups_show(args: argparse.Namespace) -> None:
    rep = _rep(args)
    pool, groupset = _group_set(args.group_set)
    members = rep.group_members(pool, groupset, args.group)
    payload: dict[str, Any] = {"dataset": rep.dataset, "replicate": rep.rep, "group_set": args.group_set}
    if args.group is None:
        summary = members.groupby("group").agg(
            members=("original_id", lambda s: ",".join(map(str, s))), group_similarity=("group_similarity", "first")
        ).reset_index()  # fmt: skip
        payload["groups"] = records(summary)
        _emit(args, payload, [(f"{args.group_set}: {len(summary)} groups", summary)])
        return
    cols = [c for c in ("member", "user", "original_id", "subgroup", "group_similarity", "subgroup_similarity_0",
                        "subgroup_similarity_1", "between_similarity", "n_common_targets") if c in members]  # fmt: skip
    members = members[cols]
    lists = rep.evaluation_lists(pool, groupset, args.group, args.strategy, args.elsa, args.sae)
    payload.update(group=args.group, members=records(members), recommendations=records(lists))
    if len(lists):  # one row per evaluated strategy: its list as original ids
        keys = ["elsa", "strategy", "sae", "option"]
        named = lists.astype({"sae": object, "option": object}).fillna({"sae": "", "option": ""})
        compact = (
            named.groupby(keys, sort=False)["original_id"].agg(lambda s: ",".join(s.head(args.show)))
            .rename(f"top {args.show} items (original ids)").reset_index()
        )  # fmt: skip
    else:
        compact = pd.DataFrame()
    _emit(args, payload, [(f"group {args.group} of {args.group_set}: members", members),
                          ("the evaluation's lists", compact)])  # fmt: skip


# ----------------------------------------------------------------------------- parser
def _common(parser: argparse.ArgumentParser, results: bool = True) -> None:
    if results:
        parser.add_argument("results", nargs="?", default="results", metavar="PATH",
                            help="results folder, dataset folder or replicate folder (default: results)")  # fmt: skip
    parser.add_argument("--dataset", help="dataset, when PATH holds several")
    parser.add_argument("--replicate", help="replicate folder name (e.g. s42), when PATH holds several")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--device", default="cpu", help="where the models run: cpu (default), cuda, mps")


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strategy", default="sagea:average",
                        help="sagea:<fusion> or a baseline name (default: sagea:average)")  # fmt: skip
    parser.add_argument("--elsa", help="ELSA run (default: the only one, or the one the evaluation used)")
    parser.add_argument("--sae", help="SAE variant for sagea:* strategies (default: the only one); see `sagea runs`")
    parser.add_argument("--no-topk-inference", action="store_true",
                        help="SAGEA option ti0: keep every SAE activation instead of the top k")  # fmt: skip
    parser.add_argument("--normalize-users-embeddings", action="store_true",
                        help="SAGEA option nu1: scale each member's code to unit length before fusing")  # fmt: skip
    parser.add_argument("--zero-fallback", default="relax", choices=("relax", "average", "nan"),
                        help="what replaces an all-zero fused code (default: relax)")  # fmt: skip


def _member_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", action="append", metavar="IDS", help="existing users' original ids, comma-separated")
    parser.add_argument("--items-of-new-user", action="append", metavar="IDS",
                        help="a new user's items (original ids, comma-separated); repeat per new user")  # fmt: skip
    parser.add_argument("--group-set", metavar="POOL/GROUPSET", help="an evaluated group set, with --group")
    parser.add_argument("--group", type=int, metavar="N", help="group number in --group-set")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="sagea", formatter_class=fmt, epilog=MAIN_EPILOG,
        description="Use a trained SAGEA study: list what a results folder holds, recommend for a group "
                    "of users with any strategy of the evaluation, explain SAGEA lists.",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = sub.add_parser("runs", help="what is in a results folder", formatter_class=fmt, epilog=RUNS_EPILOG,
                          description="List datasets, replicates, ELSA runs, SAE variants (k, width), group sets "
                                      "and evaluation folders.")  # fmt: skip
    _common(runs)
    runs.set_defaults(func=cmd_runs)

    rec = sub.add_parser("recommend", help="recommend items to a group", formatter_class=fmt,
                         epilog=RECOMMEND_EPILOG,
                         description="Recommend k items to a group of existing and/or new users with one strategy "
                                     "of the evaluation (same code, same options).")  # fmt: skip
    _common(rec)
    _member_options(rec)
    _model_options(rec)
    rec.add_argument("-k", type=int, default=20, help="list length (default: 20)")
    rec.add_argument("--popularity-with-targets", action="store_true",
                     help="POPULAR: count every user's items (research behaviour), not the training users'")  # fmt: skip
    rec.set_defaults(func=cmd_recommend)

    exp = sub.add_parser("explain", help="explain a SAGEA list by its sparse features", formatter_class=fmt,
                         epilog=EXPLAIN_EPILOG,
                         description="Explain the list a SAGEA fusion gives a group.")  # fmt: skip
    _common(exp)
    _member_options(exp)
    _model_options(exp)
    exp.add_argument("-n", "-k", dest="n", type=int, default=20, help="list length (default: 20)")
    exp.add_argument("--n-features", type=int, default=10, help="features to show (default: 10)")
    exp.set_defaults(func=cmd_explain)

    groups = sub.add_parser("groups", help="inspect group sets", description="Inspect the sampled groups.")
    gsub = groups.add_subparsers(dest="groups_command", required=True, metavar="SUBCOMMAND")
    show = gsub.add_parser("show", help="members of a group set or one group, with the evaluation's lists",
                           formatter_class=fmt, epilog=GROUPS_EPILOG,
                           description="Show a group set's groups, or one group's members (original ids, "
                                       "similarities) and the lists the evaluation saved for it.")  # fmt: skip
    show.add_argument("group_set", metavar="POOL/GROUPSET", help="e.g. test/similar_3 (see `sagea runs`)")
    show.add_argument("--group", type=int, metavar="N", help="one group (default: list every group)")
    show.add_argument("--results", default="results", metavar="PATH", help="results folder (default: results)")
    show.add_argument("--strategy", help="only this strategy's lists (default: every evaluated strategy)")
    show.add_argument("--elsa", help="only this ELSA run's lists")
    show.add_argument("--sae", help="only this SAE variant's SAGEA lists")
    show.add_argument("--show", type=int, default=10, metavar="N", help="items per list in the table (default: 10)")
    _common(show, results=False)
    show.set_defaults(func=cmd_groups_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sagea`` console script; returns the exit status."""
    from sagea.api import StudyError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except StudyError as error:
        print(f"sagea {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
