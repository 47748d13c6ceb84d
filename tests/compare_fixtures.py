"""Fixture files for the compare stage in the formats of docs/ARCHITECTURE.md.

ELSA runs share a planted low-rank item structure (so they are related but not identical);
SAE dictionaries share planted atoms, rotated into each ELSA run's space, with noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from sagea import plan
from sagea.io import write_embeddings, write_parquet, write_torch


def validated_config(path: Path, overrides: dict | None = None) -> dict:
    """The YAML config at ``path`` merged with ``overrides`` and validated (defaults filled in)."""
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text())
    for key, value in (overrides or {}).items():
        config[key] = value
    schema = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    validate(config, str(schema))
    return config


def planted_codes(n_users: int, h: int, k: int, seed: int) -> pd.DataFrame:
    """Long-form TopK codes: ``k`` random active features per user with positive values."""
    rng = np.random.default_rng(seed)
    feats = np.argsort(rng.random((n_users, h)), axis=1)[:, :k]
    return pd.DataFrame(
        {
            "user": np.repeat(np.arange(n_users, dtype=np.int32), k),
            "feature": feats.reshape(-1).astype(np.int32),
            "value": rng.gamma(2.0, 1.0, n_users * k).astype(np.float32),
        }
    )


def write_compare_fixtures(
    root: Path, config: dict, dataset: str, n_items: int = 300, n_users: int = 200, seed: int = 0
) -> dict[str, np.ndarray]:
    """Write item/user embeddings of every ELSA run and model.pt/codes_topk.parquet of every SAE compared."""
    rng = np.random.default_rng(seed)
    latent_items = rng.standard_normal((n_items, 8))
    latent_users = rng.standard_normal((n_users, 8))
    results = Path(plan.rep_dir(config, dataset, str(Path(root) / "results")))
    runs = plan.elsa_runs(config, dataset)
    rotations: dict[str, np.ndarray] = {}
    for i, (run, hp) in enumerate(runs.items()):
        d = hp["factors"]
        mix = np.random.default_rng(100 + i).standard_normal((8, d))
        items = latent_items @ mix + 0.1 * np.random.default_rng(200 + i).standard_normal((n_items, d))
        users = latent_users @ mix + 0.1 * np.random.default_rng(300 + i).standard_normal((n_users, d))
        write_embeddings(items, "item", results / "elsa" / run / "item_embeddings.parquet")
        write_embeddings(users, "user", results / "elsa" / run / "user_embeddings.parquet")
        rotations[run] = np.linalg.qr(np.random.default_rng(400 + i).standard_normal((d, d)))[0]
    elsas = [plan.main_elsa(config, dataset), *config["compare"]["sae_elsa_runs"]]
    for elsa in elsas:
        d = runs[elsa]["factors"]
        for j, (sae, hp) in enumerate(plan.sae_runs(config).items()):
            h = hp["width"]
            atoms = np.random.default_rng(7).standard_normal((h, d))
            dec = atoms + 0.3 * np.random.default_rng(500 + j).standard_normal((h, d))
            dec /= np.linalg.norm(dec, axis=1, keepdims=True)
            state = {
                "encoder_w": torch.tensor(dec.T, dtype=torch.float32),
                "encoder_b": torch.zeros(h),
                "decoder_w": torch.tensor(dec, dtype=torch.float32),
                "decoder_b": torch.zeros(d),
            }
            folder = results / "sae" / elsa / sae
            write_torch({"model_state_dict": state, "hyperparameters": hp, "version": "test"}, folder / "model.pt")
            write_parquet(planted_codes(n_users, h, hp["k"], 600 + j), folder / "codes_topk.parquet")
    return rotations
