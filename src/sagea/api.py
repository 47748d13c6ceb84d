"""Use a trained study from Python: what a results folder holds, recommendations, explanations.

    >>> from sagea.api import Study
    >>> study = Study.open("results")                      # or results/<dataset>/ or results/<dataset>/s42/
    >>> study.sae_runs()                                    # SAE variants with k and width from their checkpoints
    >>> study.recommend(users=["1", "7", "42"], strategy="sagea:average", k=10)
    >>> study.recommend(new_users=[["318", "296", "593"]], strategy="GFAR")
    >>> study.recommend_group_set("test", "similar_3", group=4, strategy="ADD")  # the evaluation's inputs

Recommendations come from the library code the evaluation runs (``sagea.recommenders``: the same
strategy objects, the same exclusion of the members' inputs, the same tie-breaking), so a group
given the same member inputs gets the same list as in the evaluation's ``recommendations.parquet``.
The evaluation recommends from each member's *input* part of the group split (the other part is
held out as targets); :meth:`Replicate.recommend` uses the members' full rows unless ``inputs`` are
given, and :meth:`Replicate.recommend_group_set` rebuilds the evaluation's inputs of a group set.
Users and items are named by their original ids (``users.parquet`` / ``items.parquet``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from sagea import registry

#: Strategy names of SAGEA fusions: ``sagea:<fusion>`` (the bare fusion name is accepted too).
SAGEA_PREFIX = "sagea:"
#: Item metadata columns copied into recommendation tables where ``items.parquet`` has them.
ITEM_METADATA = ("title", "genres", "artist", "cluster")
#: The group evaluation split's settings when a group set has no ``groups_summary.json``.
DEFAULT_SPLIT = {"target_ratio": 0.5, "split_seed": 42, "shared_mask": False}


class StudyError(ValueError):
    """A request the results folder cannot answer (unknown id, strategy, run, ...); says what exists."""


def strategies() -> list[str]:
    """Every strategy name :meth:`Replicate.recommend` accepts."""
    return [SAGEA_PREFIX + f for f in registry.fusion_names()] + list(registry.baseline_names())


def parse_strategy(strategy: str) -> tuple[str, str | None]:
    """``"sagea:average"`` / ``"average"`` -> ``("sagea", "average")``; ``"ADD"`` -> ``("ADD", None)``."""
    name = str(strategy)
    fusion = name[len(SAGEA_PREFIX) :] if name.lower().startswith(SAGEA_PREFIX) else name
    if fusion in registry.fusion_names():
        return "sagea", fusion
    if name in registry.baseline_names():
        return name, None
    upper = {b.upper(): b for b in registry.baseline_names()}
    if name.upper() in upper:
        return upper[name.upper()], None
    raise StudyError(f"unknown strategy {strategy!r}; available: {', '.join(strategies())}")


def _listing(values: Iterable[str], limit: int = 12) -> str:
    values = list(values)
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "") if values else "none"


def _is_replicate(path: Path) -> bool:
    return (path / "split.parquet").is_file() or (path / "elsa").is_dir()


# ============================================================================ one replicate
@dataclass
class Replicate:
    """One replicate folder ``results/<dataset>/<rep>/``: its models, groups and evaluations."""

    dataset: str
    rep: str
    path: Path
    device: str = "cpu"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ---------------------------------------------------------------- files
    @property
    def data_dir(self) -> Path:
        """``<rep>/data`` (synthetic data, generated per replicate) or ``<dataset>/data`` (real data)."""
        own = self.path / "data"
        return own if (own / "interactions.parquet").is_file() else self.path.parent / "data"

    def _need(self, path: Path, what: str) -> Path:
        if not path.exists():
            raise StudyError(f"{path} not found ({what}); build it with the workflow (`snakemake`) first")
        return path

    def _cached(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def users(self) -> pd.DataFrame:
        """``users.parquet``: ``user`` (index), ``original_id``, ``n_interactions``, ..."""
        from sagea.io import read_parquet

        path = self._need(self.data_dir / "users.parquet", "user table")
        return self._cached("users", lambda: read_parquet(path).astype({"original_id": str}))

    def items(self) -> pd.DataFrame:
        """``items.parquet``: ``item`` (index), ``original_id`` and metadata (title, genres, ...)."""
        from sagea.io import read_parquet

        path = self._need(self.data_dir / "items.parquet", "item table")
        return self._cached("items", lambda: read_parquet(path).astype({"original_id": str}))

    def interactions(self) -> sp.csr_matrix:
        """The full 0/1 user x item matrix (CSR)."""
        from sagea.data.matrix import load_interactions

        self._need(self.data_dir / "interactions.parquet", "interactions")
        return self._cached("rows", lambda: load_interactions(self.data_dir))

    # ---------------------------------------------------------------- listings
    def elsa_runs(self) -> pd.DataFrame:
        """ELSA runs: ``elsa``, ``factors``, ``n_items``, ``evaluated`` (has evaluation folders)."""
        from sagea.io import read_torch

        evaluated = set(self.evaluations()["elsa"])
        rows = []
        for model in sorted((self.path / "elsa").glob("*/model.pt")):
            ckpt = read_torch(model, what="ELSA checkpoint")
            encoder = ckpt.get("model_state_dict", ckpt).get("encoder")
            n_items, factors = (tuple(encoder.shape) if encoder is not None else (None, None))
            rows.append({"elsa": model.parent.name, "factors": factors, "n_items": n_items,
                         "evaluated": model.parent.name in evaluated})  # fmt: skip
        return pd.DataFrame(rows, columns=["elsa", "factors", "n_items", "evaluated"])

    def sae_runs(self, elsa: str | None = None) -> pd.DataFrame:
        """SAE variants: ``elsa``, ``sae``, ``variant``, ``width``, ``k``, ``reconstruction_loss``.

        k and width come from the checkpoint's hyperparameters, never from the folder name.
        """
        from sagea.io import read_torch

        rows = []
        for model in sorted((self.path / "sae").glob(f"{elsa or '*'}/*/model.pt")):
            hp = dict(read_torch(model, what="SAE checkpoint").get("hyperparameters") or {})
            rows.append({"elsa": model.parent.parent.name, "sae": model.parent.name, "variant": hp.get("variant"),
                         "width": hp.get("width"), "k": hp.get("k"),
                         "reconstruction_loss": hp.get("reconstruction_loss")})  # fmt: skip
        return pd.DataFrame(rows, columns=["elsa", "sae", "variant", "width", "k", "reconstruction_loss"])

    def group_sets(self) -> pd.DataFrame:
        """Group sets: ``pool``, ``groupset``, ``groups`` (count), ``size``."""
        from sagea.io import read_parquet

        rows = []
        for path in sorted((self.path / "groups").glob("*/*.parquet")):
            frame = read_parquet(path, columns=["group", "member"])
            groups = int(frame["group"].max()) + 1 if len(frame) else 0
            size = int(frame["member"].max()) + 1 if len(frame) else 0
            rows.append({"pool": path.parent.name, "groupset": path.stem, "groups": groups, "size": size})
        return pd.DataFrame(rows, columns=["pool", "groupset", "groups", "size"])

    def evaluations(self) -> pd.DataFrame:
        """Evaluation folders: ``pool``, ``groupset``, ``elsa``, ``strategy``, ``sae``, ``option``, ``path``."""
        rows = []
        for rec in sorted((self.path / "eval").glob("*/*/*/**/recommendations.parquet")):
            parts = rec.parent.relative_to(self.path / "eval").parts
            pool, groupset, elsa, rest = parts[0], parts[1], parts[2], parts[3:]
            if len(rest) == 2 and rest[0] == "baselines":
                strategy, sae, option = rest[1], None, None
            elif len(rest) == 3:
                strategy, sae, option = SAGEA_PREFIX + rest[2], rest[0], rest[1]
            else:
                continue
            rows.append({"pool": pool, "groupset": groupset, "elsa": elsa, "strategy": strategy,
                         "sae": sae, "option": option, "path": str(rec.parent)})  # fmt: skip
        return pd.DataFrame(rows, columns=["pool", "groupset", "elsa", "strategy", "sae", "option", "path"])

    def summary(self) -> dict:
        """Everything :func:`sagea.cli` ``runs`` shows, as plain Python values."""
        evals = self.evaluations()
        folders = (
            evals.groupby(["pool", "groupset", "elsa"]).size().rename("strategies").reset_index()
            if len(evals) else pd.DataFrame(columns=["pool", "groupset", "elsa", "strategies"])
        )  # fmt: skip
        return {
            "dataset": self.dataset, "replicate": self.rep, "path": str(self.path), "data": str(self.data_dir),
            "elsa": self.elsa_runs().to_dict("records"), "sae": self.sae_runs().to_dict("records"),
            "group_sets": self.group_sets().to_dict("records"), "evaluations": folders.to_dict("records"),
        }  # fmt: skip

    # ---------------------------------------------------------------- models
    def default_elsa(self, elsa: str | None = None) -> str:
        """``elsa`` checked, or the only ELSA run, or the only one with evaluation folders (the main run)."""
        runs = self.elsa_runs()
        names = list(runs["elsa"])
        if elsa is not None:
            if elsa not in names:
                raise StudyError(f"unknown ELSA run {elsa!r} in {self.path}/elsa; available: {_listing(names)}")
            return elsa
        if len(names) == 1:
            return names[0]
        evaluated = list(runs.loc[runs["evaluated"], "elsa"])
        if len(evaluated) == 1:
            return evaluated[0]
        raise StudyError(f"{self.path}: choose an ELSA run (elsa=... or --elsa): {_listing(names)}")

    def default_sae(self, elsa: str, sae: str | None = None) -> str:
        """``sae`` checked, or the only SAE variant trained on ``elsa``."""
        names = list(self.sae_runs(elsa)["sae"])
        if sae is not None:
            if sae not in names:
                raise StudyError(f"unknown SAE variant {sae!r} for ELSA run {elsa} in {self.path}/sae/{elsa}; "
                                 f"available: {_listing(names)}")  # fmt: skip
            return sae
        if len(names) == 1:
            return names[0]
        raise StudyError(f"{self.path}/sae/{elsa}: choose an SAE variant (sae=... or --sae): {_listing(names)}")

    def elsa_model(self, elsa: str | None = None):
        """The loaded ELSA model (``sagea.models.elsa.ELSA``, eval mode)."""
        from sagea.models.elsa import ELSA

        name = self.default_elsa(elsa)
        return self._cached(("elsa", name), lambda: ELSA.load(self.path / "elsa" / name / "model.pt", self.device))

    def sae_model(self, elsa: str | None = None, sae: str | None = None):
        """The loaded SAE (``sagea.models.sae.SAE``); its ``k`` comes from the checkpoint."""
        from sagea.models.sae import SAE

        e = self.default_elsa(elsa)
        name = self.default_sae(e, sae)
        return self._cached(("sae", e, name), lambda: SAE.load(self.path / "sae" / e / name / "model.pt", self.device))

    def popularity(self, with_targets: bool = False) -> np.ndarray:
        """Item popularity for POPULAR, as the evaluation counts it (training users; all with ``with_targets``)."""
        from sagea.data.matrix import load_split
        from sagea.scoring import item_popularity

        def make() -> np.ndarray:
            split = load_split(self._need(self.path / "split.parquet", "user split"))
            return item_popularity(self.interactions(), split["train"], with_targets)

        return self._cached(("pop", with_targets), make)

    # ---------------------------------------------------------------- ids
    def user_index(self, ids: Sequence) -> np.ndarray:
        """Internal user indices of original ids; unknown ids raise naming them."""
        return self._index(self.users(), "user", ids, "users.parquet")

    def item_index(self, ids: Sequence) -> np.ndarray:
        """Internal item indices of original ids; unknown ids raise naming them."""
        return self._index(self.items(), "item", ids, "items.parquet")

    def _index(self, table: pd.DataFrame, column: str, ids: Sequence, file: str) -> np.ndarray:
        lookup = pd.Series(table[column].to_numpy(), index=table["original_id"].to_numpy())
        wanted = [str(i) for i in ids]
        unknown = [i for i in wanted if i not in lookup.index]
        if unknown:
            raise StudyError(
                f"unknown {column} id(s) {unknown[:10]} in {self.data_dir / file} ({len(table)} {column}s; "
                f"original ids look like {_listing(table['original_id'].head(5), 5)})"
            )
        return lookup.loc[wanted].to_numpy().astype(np.int64)

    # ---------------------------------------------------------------- groups
    def group_members(self, pool: str, groupset: str, group: int | None = None) -> pd.DataFrame:
        """Members of a group set (one or all groups), with original ids and similarities."""
        from sagea.groups.io import load_groups_frame

        path = self.path / "groups" / pool / f"{groupset}.parquet"
        if not path.is_file():
            sets = self.group_sets()
            raise StudyError(f"no group set {pool}/{groupset} in {self.path}/groups; available: "
                             f"{_listing(sets['pool'] + '/' + sets['groupset'])}")  # fmt: skip
        frame = load_groups_frame(path)
        if group is not None:
            if int(group) not in set(frame["group"]):
                raise StudyError(f"no group {group} in {path} (groups 0..{int(frame['group'].max())})")
            frame = frame[frame["group"] == int(group)].reset_index(drop=True)
        return frame

    def split_settings(self, pool: str) -> dict:
        """The group split's ``target_ratio``, ``split_seed``, ``shared_mask`` as recorded by the
        group sampling in ``groups/<pool>/groups_summary.json`` (the evaluation uses the same)."""
        from sagea.io import read_json

        path = self.path / "groups" / pool / "groups_summary.json"
        params = read_json(path).get("parameters", {}) if path.is_file() else {}
        return {key: params.get(key, default) for key, default in DEFAULT_SPLIT.items()}

    def group_inputs(
        self, pool: str, groupset: str, groups: Sequence[int] | None = None, *,
        target_ratio: float | None = None, split_seed: int | None = None, shared_mask: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The evaluation's member inputs of a group set: ``(group ids [G], inputs bool [G, m, I])``.

        The group split of the evaluation (``group_target_masks`` + ``group_split``) with the
        settings of :meth:`split_settings` unless given.
        """
        from sagea.data.splits import group_split, group_target_masks
        from sagea.groups.io import load_groups

        self.group_members(pool, groupset)  # names what exists when the set is missing
        members = load_groups(self.path / "groups" / pool / f"{groupset}.parquet")
        ids = np.arange(len(members)) if groups is None else np.atleast_1d(np.asarray(groups, dtype=np.int64))
        bad = [int(g) for g in ids if not 0 <= g < len(members)]
        if bad:
            raise StudyError(f"no group {bad} in {pool}/{groupset} (groups 0..{len(members) - 1})")
        s = self.split_settings(pool)
        ratio = s["target_ratio"] if target_ratio is None else target_ratio
        seed = s["split_seed"] if split_seed is None else split_seed
        shared = s["shared_mask"] if shared_mask is None else shared_mask
        rows = self.interactions()
        chunk = members[ids]
        masks = group_target_masks(chunk, rows.shape[1], ratio, seed, shared)
        inputs, _ = group_split(rows, chunk, masks)
        return ids, inputs

    def evaluation_lists(
        self, pool: str, groupset: str, group: int | None = None, strategy: str | None = None,
        elsa: str | None = None, sae: str | None = None, option: str | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """The evaluation's saved lists (``recommendations.parquet``) with original ids and metadata."""
        from sagea.io import read_parquet

        evals = self.evaluations()
        evals = evals[(evals["pool"] == pool) & (evals["groupset"] == groupset)]
        if elsa is not None:
            evals = evals[evals["elsa"] == elsa]
        if strategy is not None:
            kind, fusion = parse_strategy(strategy)
            evals = evals[evals["strategy"] == (SAGEA_PREFIX + fusion if fusion else kind)]
        for col, value in (("sae", sae), ("option", option)):
            if value is not None:
                evals = evals[evals[col].isna() | (evals[col] == value)]
        parts = []
        for row in evals.itertuples():  # one file per strategy folder
            rec = read_parquet(Path(row.path) / "recommendations.parquet", columns=["group", "rank", "item"])
            if group is not None:
                rec = rec[rec["group"] == int(group)]
            parts.append(rec.assign(strategy=row.strategy, sae=row.sae, option=row.option, elsa=row.elsa))
        cols = ["elsa", "strategy", "sae", "option", "group", "rank", "item"]
        frame = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
        return self._with_metadata(frame)

    # ---------------------------------------------------------------- recommend
    def _with_metadata(self, frame: pd.DataFrame) -> pd.DataFrame:
        items = self.items()
        meta = ["item", "original_id", *[c for c in ITEM_METADATA if c in items.columns]]
        out = frame.astype({"item": np.int64}).merge(items[meta].astype({"item": np.int64}), on="item", how="left")
        return out.astype({"original_id": str})

    def member_rows(
        self, users: Sequence = (), new_users: Sequence[Sequence] = (), inputs: Any = None
    ) -> np.ndarray:
        """A group's member inputs ``bool [m, I]``: existing users' full rows, new users' item
        lists (original item ids), or ``inputs`` (rows over the item index, 0/1) as given."""
        n_items = self.interactions().shape[1]
        if inputs is not None:
            if len(users) or len(new_users):
                raise StudyError("give either inputs or users/new_users, not both")
            rows = inputs.toarray() if sp.issparse(inputs) else np.asarray(inputs)
            if rows.ndim != 2 or rows.shape[1] != n_items:
                raise StudyError(
                    f"inputs must be a [members, {n_items}] 0/1 matrix over the item index, got shape {rows.shape}"
                )
            return rows > 0
        parts = []
        if len(users):
            parts.append(self.interactions()[self.user_index(users)].toarray() > 0)
        for item_ids in new_users:
            row = np.zeros((1, n_items), dtype=bool)
            row[0, self.item_index(item_ids)] = True
            parts.append(row)
        if not parts:
            raise StudyError("a group needs members: give users=[original ids] and/or new_users=[[original item ids]]")
        return np.concatenate(parts)

    def recommender(
        self, strategy: str, elsa: str | None = None, sae: str | None = None, *, topk_inference: bool = True,
        normalize_users_embeddings: bool = False, zero_fallback: str = "relax", popularity_with_targets: bool = False,
        elsa_seen_at_zero: bool = False, aggregation_seen_at_zero: bool = False,
    ):  # fmt: skip
        """The evaluation's strategy object for ``strategy`` (``sagea.recommenders``), same options."""
        kind, fusion = parse_strategy(strategy)
        if kind == "sagea":
            from sagea.recommenders.sagea import SageaRecommender

            model = self.sae_model(elsa, sae)
            return SageaRecommender(self.elsa_model(elsa), model, fusion, int(model.k), topk_inference,
                                    normalize_users_embeddings, zero_fallback)  # fmt: skip
        from sagea.stages.evaluate import build_baselines

        popularity = self.popularity(popularity_with_targets) if kind == "POPULAR" else None
        elsa_model = self.elsa_model(elsa)
        return build_baselines([kind], elsa_model, popularity, elsa_seen_at_zero, aggregation_seen_at_zero)[0]

    def lists(self, recommender, inputs: np.ndarray, k: int = 20, batch_groups: int = 256) -> np.ndarray:
        """Top-k item indices ``[G, k]`` (``-1`` pads) for member inputs ``bool [G, m, I]``: the
        evaluation's two phases (``score``, then ``aggregate`` with the union of the inputs excluded)."""
        device = torch.device(self.device)
        out = []
        for start in range(0, len(inputs), batch_groups):
            chunk = np.asarray(inputs[start : start + batch_groups], dtype=bool)
            with torch.inference_mode():
                x = torch.from_numpy(chunk).to(device=device, dtype=torch.float32)
                seen = torch.from_numpy(chunk.any(axis=1)).to(device)
                out.append(recommender.aggregate(recommender.score(x), seen, k).items.cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)

    def _frame(self, lists: np.ndarray, group_ids: np.ndarray | None, strategy: str) -> pd.DataFrame:
        g, k = lists.shape
        frame = pd.DataFrame({"rank": np.tile(np.arange(k), g), "item": lists.reshape(-1)})
        if group_ids is not None:
            frame.insert(0, "group", np.repeat(group_ids, k))
        frame = self._with_metadata(frame[frame["item"] >= 0].reset_index(drop=True))
        frame.attrs.update(strategy=strategy, dataset=self.dataset, replicate=self.rep)
        return frame

    def recommend(
        self, users: Sequence = (), strategy: str = "sagea:average", k: int = 20, *,
        new_users: Sequence[Sequence] = (), inputs: Any = None, elsa: str | None = None, sae: str | None = None,
        topk_inference: bool = True, normalize_users_embeddings: bool = False, zero_fallback: str = "relax",
        popularity_with_targets: bool = False, elsa_seen_at_zero: bool = False, aggregation_seen_at_zero: bool = False,
    ) -> pd.DataFrame:  # fmt: skip
        """Top-``k`` items for one group: ``rank``, ``item`` (index), ``original_id`` and item metadata.

        Members: existing ``users`` (original ids; their full rows), ``new_users`` (lists of original
        item ids), or ``inputs`` (``[m, I]`` rows, e.g. the evaluation's member inputs). Options as
        in the evaluation config: ``topk_inference`` / ``normalize_users_embeddings`` (SAGEA option
        ``ti*-nu*``), ``zero_fallback`` (``evaluation.sagea.zero_fallback``), and the research
        switches ``popularity_with_targets``, ``elsa_seen_at_zero``, ``aggregation_seen_at_zero``.
        """
        if isinstance(users, (str, int)):
            users = [users]
        rows = self.member_rows(users, new_users, inputs)
        recommender = self.recommender(
            strategy, elsa, sae, topk_inference=topk_inference, normalize_users_embeddings=normalize_users_embeddings,
            zero_fallback=zero_fallback, popularity_with_targets=popularity_with_targets,
            elsa_seen_at_zero=elsa_seen_at_zero, aggregation_seen_at_zero=aggregation_seen_at_zero,
        )  # fmt: skip
        return self._frame(self.lists(recommender, rows[None], k), None, strategy)

    def recommend_group_set(
        self, pool: str, groupset: str, group: int | Sequence[int] | None = None, strategy: str = "sagea:average",
        k: int = 20, *, elsa: str | None = None, sae: str | None = None, topk_inference: bool = True,
        normalize_users_embeddings: bool = False, zero_fallback: str = "relax", popularity_with_targets: bool = False,
        elsa_seen_at_zero: bool = False, aggregation_seen_at_zero: bool = False, target_ratio: float | None = None,
        split_seed: int | None = None, shared_mask: bool | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """Lists for groups of a group set from the evaluation's member inputs (``group`` column
        added): with the evaluation's options, the same lists as its ``recommendations.parquet``."""
        ids, inputs = self.group_inputs(
            pool, groupset, None if group is None else group,
            target_ratio=target_ratio, split_seed=split_seed, shared_mask=shared_mask,
        )  # fmt: skip
        recommender = self.recommender(
            strategy, elsa, sae, topk_inference=topk_inference, normalize_users_embeddings=normalize_users_embeddings,
            zero_fallback=zero_fallback, popularity_with_targets=popularity_with_targets,
            elsa_seen_at_zero=elsa_seen_at_zero, aggregation_seen_at_zero=aggregation_seen_at_zero,
        )  # fmt: skip
        return self._frame(self.lists(recommender, inputs, k), ids, strategy)

    # ---------------------------------------------------------------- explain
    def feature_labels(self, elsa: str | None = None, sae: str | None = None) -> pd.DataFrame | None:
        """The SAE's feature labels: ``feature_labels.parquet`` (rule ``label_features``: labels from
        the item metadata), else ``features.parquet`` (top items only), or None where neither exists."""
        from sagea.io import read_parquet

        e = self.default_elsa(elsa)
        folder = self.path / "sae" / e / self.default_sae(e, sae)
        for name in ("feature_labels.parquet", "features.parquet"):
            if (folder / name).is_file():
                return read_parquet(folder / name)
        return None

    def explain(
        self, users: Sequence = (), strategy: str = "sagea:average", *, new_users: Sequence[Sequence] = (),
        inputs: Any = None, elsa: str | None = None, sae: str | None = None, topk_inference: bool = True,
        normalize_users_embeddings: bool = False, zero_fallback: str = "relax", n: int = 20, n_features: int = 10,
    ):  # fmt: skip
        """Why a SAGEA fusion gives this group its list: ``sagea.explain.explain_group`` on the
        members' inputs (as in :meth:`recommend`); returns its result (``.features``, ``.items``)."""
        from sagea.explain import explain_group

        kind, fusion = parse_strategy(strategy)
        if kind != "sagea":
            raise StudyError(f"explanations need a SAGEA strategy ({SAGEA_PREFIX}<fusion>), got {strategy!r}; "
                             f"available: {', '.join(SAGEA_PREFIX + f for f in registry.fusion_names())}")  # fmt: skip
        if isinstance(users, (str, int)):
            users = [users]
        rows = torch.from_numpy(self.member_rows(users, new_users, inputs).astype(np.float32)).to(self.device)
        model = self.sae_model(elsa, sae)
        result = explain_group(
            self.elsa_model(elsa), model, rows, fusion, int(model.k), topk_inference=topk_inference,
            normalize_users_embeddings=normalize_users_embeddings, zero_fallback=zero_fallback, n=n,
            n_features=n_features, items=self.items(), feature_labels=self.feature_labels(elsa, sae),
        )  # fmt: skip
        if inputs is None and hasattr(result, "features") and "members" in getattr(result.features, "columns", ()):
            # member positions -> who they are: original user ids, then new users as new:<i>
            names = [str(u) for u in users] + [f"new:{i}" for i in range(len(new_users))]
            result.features["member_ids"] = [[names[int(p)] for p in held] for held in result.features["members"]]
        return result


# ============================================================================ a results folder
class Study:
    """The replicates found under a results folder; methods act on one replicate.

    With one replicate under the folder, the ``dataset`` / ``replicate`` arguments can be left out;
    otherwise they pick one (an error lists the choices).
    """

    def __init__(self, root: Path, replicates: list[Replicate]) -> None:
        self.root = root
        self.replicates = replicates

    @classmethod
    def open(cls, path: str | os.PathLike = "results", device: str = "cpu") -> "Study":
        """A results folder (``results/``), a dataset folder (``results/<dataset>/``) or a replicate
        (``results/<dataset>/s42/``). ``device``: where models run (``cpu``, ``cuda``, ...)."""
        root = Path(path).expanduser()
        if not root.is_dir():
            raise StudyError(f"{root}: no such folder; give a results folder (results/, results/<dataset>/ or "
                             "results/<dataset>/s<seed>/)")  # fmt: skip
        if _is_replicate(root):
            found = [root]
        else:
            found = [p for p in sorted(root.glob("*")) if p.is_dir() and _is_replicate(p)]
            found += [p for p in sorted(root.glob("*/*")) if p.is_dir() and _is_replicate(p)]
        if not found:
            raise StudyError(f"{root}: no trained replicate found (a folder with split.parquet or elsa/, e.g. "
                             "results/<dataset>/s42/); run the workflow first (`snakemake`)")  # fmt: skip
        reps = [Replicate(p.resolve().parent.name, p.name, p.resolve(), device) for p in found]
        return cls(root, reps)

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.replicates})

    def replicate(self, dataset: str | None = None, replicate: str | None = None) -> Replicate:
        """The replicate of ``dataset`` / ``replicate`` (each may be left out when unambiguous)."""
        reps = [r for r in self.replicates if dataset in (None, r.dataset) and replicate in (None, r.rep)]
        if len(reps) == 1:
            return reps[0]
        known = _listing(f"{r.dataset}/{r.rep}" for r in self.replicates)
        if not reps:
            raise StudyError(f"no replicate {dataset or '*'}/{replicate or '*'} under {self.root}; available: {known}")
        raise StudyError(f"{self.root} holds several replicates ({known}); choose one with dataset=/replicate= "
                         "(command line: --dataset/--replicate)")  # fmt: skip

    def summary(self) -> list[dict]:
        """Every replicate's :meth:`Replicate.summary`."""
        return [r.summary() for r in self.replicates]

    # the replicate methods, with dataset= / replicate= to pick the replicate
    def _on(self, name: str, args, kwargs):
        rep = self.replicate(kwargs.pop("dataset", None), kwargs.pop("replicate", None))
        return getattr(rep, name)(*args, **kwargs)

    def elsa_runs(self, *args, **kwargs) -> pd.DataFrame:
        return self._on("elsa_runs", args, kwargs)

    def sae_runs(self, *args, **kwargs) -> pd.DataFrame:
        return self._on("sae_runs", args, kwargs)

    def group_sets(self, *args, **kwargs) -> pd.DataFrame:
        return self._on("group_sets", args, kwargs)

    def evaluations(self, *args, **kwargs) -> pd.DataFrame:
        return self._on("evaluations", args, kwargs)

    def group_members(self, *args, **kwargs) -> pd.DataFrame:
        return self._on("group_members", args, kwargs)

    def group_inputs(self, *args, **kwargs):
        return self._on("group_inputs", args, kwargs)

    def evaluation_lists(self, *args, **kwargs) -> pd.DataFrame:
        return self._on("evaluation_lists", args, kwargs)

    def recommend(self, *args, **kwargs) -> pd.DataFrame:
        """:meth:`Replicate.recommend` on the chosen replicate."""
        return self._on("recommend", args, kwargs)

    def recommend_group_set(self, *args, **kwargs) -> pd.DataFrame:
        """:meth:`Replicate.recommend_group_set` on the chosen replicate."""
        return self._on("recommend_group_set", args, kwargs)

    def explain(self, *args, **kwargs):
        """:meth:`Replicate.explain` on the chosen replicate."""
        return self._on("explain", args, kwargs)
