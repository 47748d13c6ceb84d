"""Import the research code's models and group files into this project's formats (docs/importing.md).

The research code saves ``{"model_state_dict", "optimizer_state_dict", "epoch"}`` and nothing
else: ELSA as ``encoder [items, d]``, SAEs as ``encoder_w, encoder_b, decoder_w, decoder_b``
(BatchTopK adds ``threshold`` and ``processed_batches_count``). The SAE's ``k``, width and
variant live only in the research run's MLflow params ``top_k``, ``embedding_dim`` and ``model``,
so an import takes them explicitly (arguments, or read from the MLflow run) — ``k`` is never
guessed. Files are read with ``weights_only=True``; the research file is never modified.

Group files ``similar_{size}_{user_set}.npy`` (and ``divergent_…``, ``random_…``,
``opposing_{a}_{b}_{user_set}.npy``) are int arrays ``[groups, size]`` of user indices in the
research code's index order; they become our group Parquet files (:mod:`sagea.groups.io`).

Command line::

    python -m sagea.research sae SRC DEST --k 32 --variant TopKSAE [--width 1024] [--normalize]
    python -m sagea.research sae SRC DEST --mlflow-uri file:///mlruns --run-id <id>
    python -m sagea.research elsa SRC DEST
    python -m sagea.research groups SRC.npy DEST.parquet --users results/<dataset>/data/users.parquet
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sagea.io import read_torch
from sagea.models.sae import MODEL_NAMES, RECONSTRUCTION_LOSSES, SAE

log = logging.getLogger(__name__)

#: Research class name (MLflow ``model``) or our name -> our variant.
VARIANTS = {**{name: variant for variant, name in MODEL_NAMES.items()}, **{v: v for v in MODEL_NAMES}}
#: Group kind in research file names -> our kind.
_GROUP_FILE = re.compile(r"^(similar|divergent|random)_(\d+)_(\w+)$|^opposing_(\d+)_(\d+)_(\w+)$")


def _research_state(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    ckpt = read_torch(path, heal=False, what=f"research {what} checkpoint")
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: not a research {what} checkpoint (a {type(ckpt).__name__}, expected a dict)")
    state = ckpt.get("model_state_dict", ckpt)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: 'model_state_dict' is not a dict of tensors")
    return state


def mlflow_sae_params(tracking_uri: str, run_id: str) -> dict[str, Any]:
    """``k``, ``width``, ``variant`` (and ``normalize`` / ``reconstruction_loss`` when logged) of a research
    SAE run, from its MLflow params ``top_k``, ``embedding_dim``, ``model``."""
    from mlflow.tracking import MlflowClient

    try:
        params = MlflowClient(tracking_uri=tracking_uri).get_run(run_id).data.params
    except Exception as error:  # noqa: BLE001 - MLflow raises many types for a bad URI or id
        raise ValueError(f"cannot read MLflow run {run_id!r} at {tracking_uri}: {error}") from None
    missing = [name for name in ("top_k", "embedding_dim", "model") if name not in params]
    if missing:
        raise ValueError(f"MLflow run {run_id} at {tracking_uri} has no params {missing}; give k/width/variant by hand")
    out: dict[str, Any] = {"k": int(params["top_k"]), "width": int(params["embedding_dim"]), "variant": params["model"]}
    if "normalize" in params:
        out["normalize"] = params["normalize"].strip().lower() in ("true", "1")
    if "reconstruction_loss" in params:
        out["reconstruction_loss"] = params["reconstruction_loss"].lower()
    return out


def research_sae(
    source: str | os.PathLike,
    *,
    k: int | None = None,
    width: int | None = None,
    variant: str | None = None,
    normalize: bool = False,
    reconstruction_loss: str = "l2",
    mlflow_uri: str | None = None,
    run_id: str | None = None,
) -> SAE:
    """An :class:`SAE` from a research checkpoint with its hyperparameters given or read from MLflow.

    ``k`` is required (here or from the MLflow run); ``width`` and ``variant`` are checked against
    the weights when given (``variant`` from ``threshold`` otherwise). Values given here must agree
    with the MLflow run's.
    """
    given = {"k": k, "width": width, "variant": variant}
    if mlflow_uri and run_id:
        logged = mlflow_sae_params(mlflow_uri, run_id)
        for key, value in logged.items():
            if key in given and given[key] is not None and _norm(key, given[key]) != _norm(key, value):
                raise ValueError(f"{source}: {key}={given[key]!r} given but MLflow run {run_id} logged {value!r}")
        k, width, variant = logged["k"], logged["width"], logged["variant"]
        normalize = logged.get("normalize", normalize)
        reconstruction_loss = logged.get("reconstruction_loss", reconstruction_loss)
    state = _research_state(source, "SAE")
    required = {"encoder_w", "encoder_b", "decoder_w", "decoder_b"}
    if not required <= set(state):
        raise ValueError(f"{source}: model_state_dict lacks {sorted(required - set(state))}; not a research SAE")
    d, h = state["encoder_w"].shape
    if k is None:
        raise ValueError(
            f"{source}: the SAE's k is not stored in research checkpoints; give it (--k, or sae_import "
            "entry key k) or an MLflow run (--mlflow-uri/--run-id) whose param top_k holds it"
        )
    if width is not None and int(width) != h:
        raise ValueError(f"{source}: width {width} given but encoder_w is [{d}, {h}]")
    has_threshold = "threshold" in state
    if variant is None:
        variant = "batchtopk" if has_threshold else "topk"
        log.info("%s: variant %s from the %s of a threshold", source, variant, "presence" if has_threshold else "absence")
    if variant not in VARIANTS:
        raise ValueError(f"{source}: variant {variant!r} unknown; expected one of {sorted(VARIANTS)}")
    variant = VARIANTS[variant]
    if (variant == "batchtopk") != has_threshold:
        raise ValueError(
            f"{source}: variant {variant} but the checkpoint {'has' if has_threshold else 'has no'} a BatchTopK threshold"
        )
    reconstruction_loss = str(reconstruction_loss).lower()
    if reconstruction_loss not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"{source}: reconstruction_loss {reconstruction_loss!r}; expected l2 or cosine")
    model = SAE(d, h, int(k), variant, reconstruction_loss, normalize=bool(normalize), seed=None)
    weights = {name: state[name] for name in required}
    if has_threshold:
        weights["threshold"] = state["threshold"].reshape(())  # processed_batches_count: training only
    model.load_state_dict(weights)
    return model.eval()


def _norm(key: str, value: Any) -> Any:
    return VARIANTS.get(value, value) if key == "variant" else int(value)


def import_sae(source: str | os.PathLike, dest: str | os.PathLike, **params: Any) -> SAE:
    """:func:`research_sae` written as our ``model.pt`` at ``dest`` (``imported_from`` records the source)."""
    model = research_sae(source, **params)
    model.save(dest, imported_from=str(source))
    log.info("imported research SAE %s -> %s (%s, width %d, k %d)", source, dest, model.variant,
             model.hparams["width"], model.k)  # fmt: skip
    return model


def research_elsa(source: str | os.PathLike, relu: bool = True):
    """An ELSA model from a research checkpoint (``encoder [items, d]``)."""
    from sagea.models.elsa import ELSA

    state = _research_state(source, "ELSA")
    if "encoder" not in state or state["encoder"].ndim != 2:
        raise ValueError(f"{source}: no 2-d 'encoder' parameter (keys {sorted(state)[:6]}); not a research ELSA")
    n_items, factors = state["encoder"].shape
    model = ELSA(n_items, factors, seed=0, relu=relu)
    model.load_state_dict({"encoder": state["encoder"].float()})
    return model.eval()


def import_elsa(source: str | os.PathLike, dest: str | os.PathLike, relu: bool = True):
    """:func:`research_elsa` written as our checkpoint at ``dest``."""

    model = research_elsa(source, relu)
    model.save(dest, hyperparameters={"factors": model.factors}, imported_from=str(source))
    return model


# ----------------------------------------------------------------------------- groups
def parse_group_file(path: str | os.PathLike) -> tuple[str, list[int], str]:
    """``similar_3_test.npy`` -> ("similar_3", [3], "test"); ``opposing_2_1_test.npy`` -> ("opposing_2-1", [2, 1], "test")."""
    match = _GROUP_FILE.match(Path(path).name.removesuffix(".npy"))
    if not match:
        raise ValueError(
            f"{path}: not a research group file name (similar|divergent|random_<size>_<user_set>.npy or "
            "opposing_<a>_<b>_<user_set>.npy)"
        )
    if match.group(1):
        return f"{match.group(1)}_{match.group(2)}", [int(match.group(2))], match.group(3)
    a, b = int(match.group(4)), int(match.group(5))
    return f"opposing_{a}-{b}", [a, b], match.group(6)


def research_file_name(group_set: str, user_set: str) -> str:
    """Research file of one of our group sets: ``similar_3`` -> ``similar_3_<user_set>.npy``,
    ``opposing_2-1`` -> ``opposing_2_1_<user_set>.npy``."""
    return f"{group_set.replace('-', '_')}_{user_set}.npy"


def research_members(
    source: str | os.PathLike, users_table: str | os.PathLike, research_index: str | os.PathLike | None = None
) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Members of a research group file as rows of our ``users.parquet`` ``int64 [groups, size]``, the
    subgroup sizes from the file name and their original ids.

    The file's indices are rows of the research code's interaction matrix. With ``research_index``
    (a Parquet/CSV with ``original_id`` in the research order, e.g. a ``users.parquet`` prepared with
    the research index order) they are mapped through the original user ids; without it our
    ``users.parquet`` itself must be in the research order.
    """
    _, sizes, _ = parse_group_file(source)
    try:
        groups = np.load(source, allow_pickle=False)
    except ValueError as error:  # an object array needs pickle: refused
        raise ValueError(f"{source}: {error}; research group files are integer arrays") from None
    if groups.ndim != 2 or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(f"{source}: expected an integer array [groups, size], got {groups.dtype} {groups.shape}")
    if groups.shape[1] != sum(sizes):
        raise ValueError(f"{source}: groups have {groups.shape[1]} members but the name says {sum(sizes)}")
    users = pd.read_parquet(users_table, columns=["user", "original_id"]).sort_values("user")
    ours = users["original_id"].astype(str).to_numpy()
    if research_index is not None:
        path = Path(research_index)
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"original_id": str})
        if "user" in table:
            table = table.sort_values("user")
        order = table["original_id"].astype(str).to_numpy()
    else:
        order = ours
    if groups.size and (groups.min() < 0 or groups.max() >= len(order)):
        raise ValueError(f"{source}: user index {groups.max()} outside 0..{len(order) - 1} of the research index")
    original = order[groups]
    position = pd.Series(np.arange(len(ours)), index=ours)
    missing = ~np.isin(original, ours)
    if missing.any():
        raise ValueError(f"{source}: {int(missing.sum())} members (e.g. {original[missing][0]!r}) are not in {users_table}")
    user = position.reindex(original.ravel()).to_numpy().reshape(groups.shape).astype(np.int64)
    return user, sizes, original


def research_groups(
    source: str | os.PathLike, users_table: str | os.PathLike, *, research_index: str | os.PathLike | None = None
) -> pd.DataFrame:
    """A research group file as our group-set frame (:data:`sagea.groups.io.COLUMNS`), members mapped
    by :func:`research_members`. The research code stores no similarities: those columns are NaN and
    ``n_common_targets`` is -1 (:func:`research_group_set` computes them)."""
    from sagea.groups.io import COLUMNS

    user, sizes, original = research_members(source, users_table, research_index)
    n, size = user.shape
    subgroup = np.zeros(size, dtype=np.int8) if len(sizes) == 1 else np.repeat([0, 1], sizes).astype(np.int8)
    frame = pd.DataFrame({
        "group": np.repeat(np.arange(n), size), "member": np.tile(np.arange(size), n), "user": user.ravel(),
        "original_id": original.ravel(), "subgroup": np.tile(subgroup, n),
        **{name: np.nan for name in ("group_similarity", "subgroup_similarity_0", "subgroup_similarity_1",
                                     "between_similarity")},
        "n_common_targets": -1,
    })  # fmt: skip
    return frame[list(COLUMNS)]


def research_group_set(
    name: str,
    source: str | os.PathLike,
    users_table: str | os.PathLike,
    embeddings: np.ndarray,
    rows,
    *,
    research_index: str | os.PathLike | None = None,
    target_ratio: float = 0.5,
    split_seed: int = 42,
    shared_mask: bool = False,
):
    """A research group file as a :class:`sagea.groups.io.GroupSet` of our group set ``name``,
    with the similarities and common held-out items computed as for sampled groups (workflow key
    ``datasets.<name>.groups_import``)."""
    from sagea.groups.filters import count_common_targets
    from sagea.groups.io import GroupSet
    from sagea.groups.similarity import group_similarities, normalize_rows
    from sagea.plan import PAPER_GROUP_NAMES, parse_group_set

    kind, sizes = parse_group_set(name)
    members, file_sizes, _ = research_members(source, users_table, research_index)
    if file_sizes != sizes:
        raise ValueError(f"{source}: sizes {file_sizes} in the file name, but it is imported as {name}")
    a, b = (sizes[0], 0) if len(sizes) == 1 else (sizes[0], sizes[1])
    similarity = group_similarities(normalize_rows(embeddings), members, (a, b))
    common = count_common_targets(rows, members, target_ratio, split_seed, shared_mask)
    summary = {
        "kind": kind, "sizes": sizes, "paper_name": PAPER_GROUP_NAMES.get(name), "imported_from": str(source),
        "generated": len(members), "kept": len(members), "acceptance_rate": float("nan"), "restarts": 0,
        "mean_group_similarity": float(np.nanmean(similarity["group_similarity"])) if len(members) else float("nan"),
        "mean_common_targets": float(common.mean()) if len(members) else float("nan"),
    }  # fmt: skip
    subgroup = np.r_[np.zeros(a, dtype=np.int8), np.ones(b, dtype=np.int8)]
    return GroupSet(name=name, kind=kind, members=members, subgroup=subgroup, n_common_targets=common,
                    similarity=similarity, summary=summary)  # fmt: skip


def import_groups(source: str | os.PathLike, dest: str | os.PathLike, users_table: str | os.PathLike,
                  research_index: str | os.PathLike | None = None) -> pd.DataFrame:  # fmt: skip
    """:func:`research_groups` written as our group Parquet at ``dest``."""
    from sagea.groups.io import write_groups

    frame = research_groups(source, users_table, research_index=research_index)
    write_groups(frame, dest)
    return frame


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagea.research", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sae = sub.add_parser("sae", help="import a research SAE checkpoint")
    sae.add_argument("source")
    sae.add_argument("dest")
    sae.add_argument("--k", type=int, help="the run's top_k")
    sae.add_argument("--width", type=int, help="the run's embedding_dim (checked against the weights)")
    sae.add_argument("--variant", help="TopKSAE, BatchTopKSAE, BasicSAE (or topk, batchtopk, basic)")
    sae.add_argument("--normalize", action="store_true", help="the run L2-normalised its codes")
    sae.add_argument("--reconstruction-loss", default="l2", choices=["l2", "cosine"])
    sae.add_argument("--mlflow-uri", help="tracking URI of the research runs")
    sae.add_argument("--run-id", help="MLflow run id of the research SAE run")
    elsa = sub.add_parser("elsa", help="import a research ELSA checkpoint")
    elsa.add_argument("source")
    elsa.add_argument("dest")
    elsa.add_argument("--no-relu", action="store_true", help="the model was trained without the ReLU")
    groups = sub.add_parser("groups", help="import a research group file (.npy)")
    groups.add_argument("source")
    groups.add_argument("dest")
    groups.add_argument("--users", required=True, help="our users.parquet of the dataset")
    groups.add_argument("--research-index", help="table of original_id in the research index order")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.what == "sae":
            import_sae(args.source, args.dest, k=args.k, width=args.width, variant=args.variant,
                       normalize=args.normalize, reconstruction_loss=args.reconstruction_loss,
                       mlflow_uri=args.mlflow_uri, run_id=args.run_id)  # fmt: skip
        elif args.what == "elsa":
            import_elsa(args.source, args.dest, relu=not args.no_relu)
        else:
            import_groups(args.source, args.dest, args.users, args.research_index)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
