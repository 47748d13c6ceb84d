"""The scoring primitives (sagea.scoring) against hand-worked values, and the import rules of the
bottom layers: scoring is a leaf, sagea.data has no import cycle and imports no upper package."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from sagea import scoring

SRC = Path(__file__).resolve().parents[1] / "src" / "sagea"


class Linear:
    """ELSA-like: encode x A, decode e Aᵀ with a fixed A."""

    def __init__(self, a):
        self.a = torch.as_tensor(a, dtype=torch.float32)

    def encode(self, x):
        return x @ self.a

    def decode(self, e):
        return e @ self.a.T


def test_elsa_and_sae_scores_by_hand():
    elsa = Linear([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # A: 3 items x 2 factors
    x = torch.tensor([[1.0, 0.0, 1.0]])  # x A = [2, 1]; (x A) Aᵀ = [2, 1, 3]
    assert scoring.elsa_scores(elsa, x).tolist() == [[1.0, 1.0, 2.0]]
    halve = lambda e, topk_inference: e / 2 if topk_inference else e  # noqa: E731 — an "SAE"
    assert scoring.sae_scores(elsa, halve, x, True).tolist() == [[0.0, 0.5, 0.5]]  # [1, .5, 1.5] - x
    assert scoring.sae_scores(elsa, halve, x, False).tolist() == [[1.0, 1.0, 2.0]]
    members = torch.stack([x, torch.tensor([[0.0, 1.0, 0.0]])], dim=1)  # [1 group, 2 members, 3 items]
    assert scoring.member_elsa_scores(elsa, members).tolist() == [[[1.0, 1.0, 2.0], [0.0, 0.0, 1.0]]]
    assert scoring.member_relevance(elsa, members).tolist() == [[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]]


def test_unit_rows_and_exclusion():
    out = scoring.unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(out, [[0.6, 0.8], [0.0, 0.0]])
    s = scoring.exclude(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[False, True, False]]))
    assert s.tolist() == [[1.0, float("-inf"), 3.0]]


def test_top_k_items_excludes_inputs():
    scores = torch.tensor([[0.5, 0.9, 0.1, 0.7]])
    inputs = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    assert scoring.top_k_items(scores, inputs, 2).tolist() == [[3, 0]]


def test_item_popularity_rows_users_and_research_switch():
    rows = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 1], [1, 1, 0]], dtype=np.float32))
    np.testing.assert_array_equal(scoring.item_popularity(rows), [2, 1, 2])  # every row
    np.testing.assert_array_equal(scoring.item_popularity(rows, np.array([1, 2])), [1, 1, 1])
    np.testing.assert_array_equal(scoring.item_popularity(rows, np.array([1, 2]), with_targets=True), [2, 1, 2])
    assert scoring.item_popularity(rows).dtype == np.float64


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_scoring_is_a_leaf():
    top = {name.split(".")[0] for name in _imports(SRC / "scoring.py")}
    assert top <= {"__future__", "typing", "numpy", "torch"}, top


def test_data_has_no_cycle_and_imports_no_upper_package():
    modules = {f"sagea.data.{p.stem}": p for p in (SRC / "data").glob("*.py") if p.stem != "__init__"}
    graph = {m: {t for t in _imports(p) if t in modules and t != m} for m, p in modules.items()}
    upper = ("sagea.models", "sagea.groups", "sagea.recommenders", "sagea.evaluation", "sagea.reports",
             "sagea.analysis", "sagea.stages")  # fmt: skip
    for m, p in modules.items():
        assert not [t for t in _imports(p) if t.startswith(upper)], m
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            assert state.get(t) != 1, f"import cycle: {' -> '.join(path + [m, t])}"
            if t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m, [])
