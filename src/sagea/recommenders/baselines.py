"""The baselines by name: one factory per baseline of :mod:`sagea.registry`.

A factory takes the ELSA model, the item popularity and the options of the evaluation stage and
returns a group recommender. ``elsa_seen_at_zero`` / ``aggregation_seen_at_zero`` reproduce the
research code's defects 6 / 7 (seen items as candidates with score 0 in ELSA / ADD, MUL, LMS, MPL);
a factory ignores the options it does not use.
"""

from __future__ import annotations

from typing import Any

from sagea import registry
from sagea.recommenders.aggregation import ElsaMean, ElsaUnion, ScoreAggregation
from sagea.recommenders.epfuzzda import EPFuzzDA
from sagea.recommenders.gfar import GFAR
from sagea.recommenders.popular import Popular


@registry.baseline("ELSA")
def elsa_mean(elsa: Any, popularity: Any, elsa_seen_at_zero: bool = False, **_: Any) -> ElsaMean:
    return ElsaMean(elsa, seen_at_zero=elsa_seen_at_zero)


@registry.baseline("ELSA_INT")
def elsa_union(elsa: Any, popularity: Any, **_: Any) -> ElsaUnion:
    return ElsaUnion(elsa)


@registry.baseline("ADD")
def additive(elsa: Any, popularity: Any, aggregation_seen_at_zero: bool = False, **_: Any) -> ScoreAggregation:
    return ScoreAggregation(elsa, "ADD", seen_at_zero=aggregation_seen_at_zero)


@registry.baseline("MUL")
def multiplicative(elsa: Any, popularity: Any, aggregation_seen_at_zero: bool = False, **_: Any) -> ScoreAggregation:
    return ScoreAggregation(elsa, "MUL", seen_at_zero=aggregation_seen_at_zero)


@registry.baseline("LMS")
def least_misery(elsa: Any, popularity: Any, aggregation_seen_at_zero: bool = False, **_: Any) -> ScoreAggregation:
    return ScoreAggregation(elsa, "LMS", seen_at_zero=aggregation_seen_at_zero)


@registry.baseline("MPL")
def most_pleasure(elsa: Any, popularity: Any, aggregation_seen_at_zero: bool = False, **_: Any) -> ScoreAggregation:
    return ScoreAggregation(elsa, "MPL", seen_at_zero=aggregation_seen_at_zero)


@registry.baseline("GFAR")
def gfar(elsa: Any, popularity: Any, **_: Any) -> GFAR:
    return GFAR(elsa)


@registry.baseline("EPFuzzDA")
def epfuzzda(elsa: Any, popularity: Any, **_: Any) -> EPFuzzDA:
    return EPFuzzDA(elsa)


@registry.baseline("POPULAR")
def popular(elsa: Any, popularity: Any, **_: Any) -> Popular:
    return Popular(popularity)
