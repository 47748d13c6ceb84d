"""The shared training machinery (sagea.models.training): early stopping, restore, resumable state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sagea.models.training import (
    EarlyStopping,
    FitResult,
    ResumableState,
    load_training_state,
    snapshot,
    state_path,
    train_epochs,
)


class Counter(nn.Module):
    """One weight that training sets to the epoch number, so restored weights name their epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long), persistent=False)


def _run(scores, *, patience=2, unit="validations", mode="min", validate_every=1, epochs=None, state=None,
         stop_after=None, model=None):  # fmt: skip
    """Train a Counter whose validation after epoch e scores ``scores[e]``."""
    model = model or Counter()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    seen = []

    def train_epoch(epoch):
        with torch.no_grad():
            model.w.fill_(float(epoch))
        model.steps += 1
        return {"loss": float(epoch)}

    def validate(epoch, record):
        seen.append(epoch)
        return scores[epoch], {"epoch": epoch, "score": scores[epoch]}, {"score": scores[epoch]}

    result = train_epochs(
        model, optimizer, epochs=epochs or max(scores), train_epoch=train_epoch, validate=validate,
        stopping=EarlyStopping(patience, unit, mode),
        state=state or ResumableState(None, {}), validate_every=validate_every, checkpoint_every=validate_every,
        stop_after_epochs=stop_after,
    )  # fmt: skip
    return model, result, seen


def test_stops_after_patience_validations_and_restores_the_best():
    # validations at epochs 1..6; best (lowest) at 2, then two worse ones -> stop after epoch 4
    scores = {1: 5.0, 2: 3.0, 3: 4.0, 4: 3.5, 5: 1.0, 6: 0.5}
    model, result, seen = _run(scores, patience=2)
    assert seen == [1, 2, 3, 4]
    assert result.stopped_early and result.epochs_run == 4
    assert result.best_epoch == 2 and result.best_score == 3.0 and result.best_valid == {"score": 3.0}
    assert model.w.item() == 2.0  # the weights of epoch 2 are back
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert not model.training


def test_patience_in_epochs_counts_epochs_since_the_best_validation():
    # validations every 3 epochs (3, 6, 9, 12) and after the last (13); best at 3
    scores = {e: (1.0 if e == 3 else 2.0) for e in range(1, 14)}
    _, by_validations, seen_v = _run(scores, patience=3, validate_every=3, epochs=13)
    assert seen_v == [3, 6, 9, 12] and by_validations.epochs_run == 12  # 3 validations without improvement
    _, by_epochs, seen_e = _run(scores, patience=3, unit="epochs", validate_every=3, epochs=13)
    assert seen_e == [3, 6] and by_epochs.epochs_run == 6  # 6 - 3 = 3 epochs without improvement


def test_max_mode_and_never_stopping_without_patience():
    scores = {1: 0.1, 2: 0.3, 3: 0.2, 4: 0.2}
    model, result, seen = _run(scores, patience=None, mode="max")
    assert seen == [1, 2, 3, 4] and not result.stopped_early
    assert result.best_epoch == 2 and model.w.item() == 2.0


def test_no_improvement_keeps_the_initial_snapshot_or_the_last_weights():
    model = Counter()
    stopping = EarlyStopping(1, initial=snapshot(model))
    stopping.update(math.nan, 1, model)  # NaN never improves
    with torch.no_grad():
        model.w.fill_(7.0)
    stopping.restore(model)
    assert model.w.item() == 0.0
    bare = EarlyStopping(1)
    bare.update(math.nan, 1, model)
    bare.restore(model)
    assert model.w.item() == 0.0 and bare.stopped


def test_resumed_run_equals_the_uninterrupted_one(tmp_path):
    scores = {1: 5.0, 2: 3.0, 3: 4.0, 4: 2.0, 5: 2.5, 6: 2.6, 7: 2.7, 8: 1.0}
    reference_model, reference, _ = _run(scores, patience=3)
    path = state_path(tmp_path)
    partial_model, partial, seen = _run(scores, patience=3, state=ResumableState(path, {"a": 1}, ("steps",)),
                                        stop_after=5)  # fmt: skip
    assert seen == [1, 2, 3, 4, 5] and partial.epochs_run == 5 and not partial.stopped_early
    assert partial_model.w.item() == 5.0  # an unfinished run restores nothing
    saved = load_training_state(path)
    assert saved["epoch"] == 5 and saved["fingerprint"]["a"] == 1 and int(saved["buffers"]["steps"]) == 5
    model, resumed, seen = _run(scores, patience=3, state=ResumableState(path, {"a": 1}, ("steps",)))
    assert seen == [6, 7]  # continues where it stopped: 5, 6, 7 without improvement on 4
    assert int(model.steps) == 7  # the buffer came back from the state
    assert resumed == reference and model.w.item() == reference_model.w.item() == 4.0
    # another fingerprint: the state is ignored and training starts afresh
    _, fresh, seen = _run(scores, patience=3, state=ResumableState(path, {"a": 2}))
    assert seen[0] == 1 and fresh == reference


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="early_stop_unit 'steps'"):
        EarlyStopping(3, unit="steps")
    assert FitResult().history == [] and math.isnan(FitResult().best_score)


def test_models_import_nothing_above_them():
    """models/ sits below evaluation, recommenders, groups, reports and stages: validation comes in as a callback."""
    import ast
    from pathlib import Path

    import sagea.models

    above = ("sagea.evaluation", "sagea.recommenders", "sagea.groups", "sagea.reports", "sagea.stages")
    for path in Path(sagea.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            assert not [n for n in names if n.startswith(above)], f"{path.name} imports {names}"
