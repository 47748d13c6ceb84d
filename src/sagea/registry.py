"""The group strategies by name: every SAGEA fusion and every baseline, in one place.

The workflow reads the names while it parses, where only Snakemake is installed, so this module
imports nothing but the standard library: an entry holds the name, a one-line summary and where
the implementation lives (``"package.module:attribute"``), imported on first use.

- The config's allowed names (``evaluation.sagea.fusions``, ``evaluation.baselines``,
  ``reports.comparisons[].fusion``) and the wildcard constraints are :func:`fusion_names` /
  :func:`baseline_names` (:func:`sagea.plan.check_strategies`).
- Implementations register themselves with the decorators :func:`fusion` and :func:`baseline`;
  for a declared name the decorator checks that it decorates the declared target.
- The evaluation builds strategies with :func:`build_fusion` and :func:`build_baseline`.

A fusion is ``fn(codes, k=None) -> fused``: member codes ``[B, m, h]`` (torch) to one group code
``[B, h]``; ``k`` is the SAE's k. A baseline is a factory ``fn(elsa, popularity, **options)``
returning a group recommender (:class:`sagea.recommenders.base.GroupRecommender`). How to add
one: docs/extending.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("fusion", "baseline")
#: The config key that lists the strategies of each kind (for error messages).
CONFIG_KEYS = {"fusion": "evaluation.sagea.fusions", "baseline": "evaluation.baselines"}


@dataclass(frozen=True)
class Strategy:
    """One registered strategy: ``kind`` (fusion or baseline), ``name`` (the config's and the
    output folder's name), ``target`` (``"module:attribute"`` of the implementation)."""

    kind: str
    name: str
    target: str
    summary: str = ""
    #: Fusions only: keeps only features shared by (enough) members, so may fuse to an all-zero
    #: code on its own; the ``relax`` zero fallback then uses the most-shared features.
    shared_features: bool = False


_DECLARED: dict[str, dict[str, Strategy]] = {kind: {} for kind in KINDS}
_LOADED: dict[tuple[str, str], Callable[..., Any]] = {}


def declare(kind: str, name: str, target: str, summary: str = "", shared_features: bool = False) -> Strategy:
    """Declare ``name`` with its implementation's ``"module:attribute"``; declaring the same
    name again with another target is an error (two implementations would share a name)."""
    if kind not in KINDS:
        raise ValueError(f"unknown strategy kind {kind!r}; expected one of {KINDS}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{kind} name {name!r}: use a plain folder name (letters, digits, _ and -)")
    if ":" not in target:
        raise ValueError(f"{kind} {name!r}: target {target!r} must be 'package.module:attribute'")
    entry = Strategy(kind, name, target, summary, shared_features)
    old = _DECLARED[kind].get(name)
    if old is not None and old.target != target:
        raise ValueError(f"{kind} {name!r} is already registered by {old.target}; cannot register {target} under it")
    _DECLARED[kind][name] = entry if old is None else old
    return _DECLARED[kind][name]


def _register(kind: str, name: str, summary: str, shared_features: bool) -> Callable[[Callable], Callable]:
    def decorate(fn: Callable) -> Callable:
        target = f"{fn.__module__}:{fn.__qualname__}"
        entry = _DECLARED[kind].get(name) or declare(kind, name, target, summary or _first_line(fn), shared_features)
        if entry.target != target:
            raise ValueError(f"{kind} {name!r} is declared with target {entry.target}, not {target}")
        _LOADED[(kind, name)] = fn
        return fn

    return decorate


def fusion(name: str, summary: str = "", shared_features: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(codes [B, m, h], k=None) -> [B, h]`` as the fusion ``name``."""
    return _register("fusion", name, summary, shared_features)


def baseline(name: str, summary: str = "") -> Callable[[Callable], Callable]:
    """Decorator: register the factory ``fn(elsa, popularity, **options)`` as the baseline ``name``."""
    return _register("baseline", name, summary, False)


def _first_line(fn: Callable) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""


def names(kind: str) -> tuple[str, ...]:
    """Every registered name of ``kind``, in registration order (built-ins first)."""
    return tuple(_DECLARED[kind])


def fusion_names() -> tuple[str, ...]:
    return names("fusion")


def baseline_names() -> tuple[str, ...]:
    return names("baseline")


def shared_feature_fusions() -> tuple[str, ...]:
    """The fusions that keep only features shared by (enough) members (see :class:`Strategy`)."""
    return tuple(n for n, e in _DECLARED["fusion"].items() if e.shared_features)


def entry(kind: str, name: str) -> Strategy:
    """The entry of ``name``; an unknown name raises naming the config key and the known names."""
    try:
        return _DECLARED[kind][name]
    except KeyError:
        raise ValueError(
            f"unknown {kind} {name!r} (config {CONFIG_KEYS[kind]}); registered: {list(_DECLARED[kind])}. "
            "A new one is registered with the sagea.registry decorators (docs/extending.md)"
        ) from None


def implementation(kind: str, name: str) -> Callable[..., Any]:
    """The registered function of ``name``, importing its module on first use."""
    key = (kind, name)
    if key not in _LOADED:
        module, _, attribute = entry(kind, name).target.partition(":")
        importlib.import_module(module)  # its decorators register the implementation
        if key not in _LOADED:
            raise ValueError(
                f"{kind} {name!r}: {module} was imported but {attribute} is not decorated with "
                f"@sagea.registry.{kind}({name!r})"
            )
    return _LOADED[key]


def build_fusion(name: str, **options: Any) -> Callable[..., Any]:
    """The fusion ``name`` as ``fn(codes, k=None)`` (``options`` bound as keywords)."""
    fn = implementation("fusion", name)
    if not options:
        return fn
    return lambda codes, k=None: fn(codes, k, **options)


def build_baseline(name: str, elsa: Any, popularity: Any, **options: Any) -> Any:
    """The baseline ``name`` built by its factory from the ELSA model, the item popularity and
    ``options`` (e.g. the research-mode flags ``elsa_seen_at_zero``, ``aggregation_seen_at_zero``;
    a factory ignores the options it does not use)."""
    return implementation("baseline", name)(elsa, popularity, **options)


# ----------------------------------------------------------------------------- built-ins
# The paper's fusions (docs/method.md) and baselines, in the order of the config defaults.
_FUSION_MODULE = "sagea.recommenders.fusion"
for _name, _attr, _summary, _shared in (
    ("average", "average", "mean of the members' codes", False),
    ("square_average", "square_average", "square of the mean code", False),
    ("topk", "topk", "mean code keeping its k largest features", False),
    ("max", "maximum", "element-wise maximum over members", False),
    ("min", "minimum", "element-wise minimum over members", True),
    ("common_features", "common_features", "mean over the features active in every member", True),
    ("at_least_2_common_features", "at_least_2_common_features", "mean over the features active in two members or more", True),
    ("wcom", "wcom", "mean weighted by the number of members holding the feature", False),
):  # fmt: skip
    declare("fusion", _name, f"{_FUSION_MODULE}:{_attr}", _summary, _shared)

_BASELINE_MODULE = "sagea.recommenders.baselines"
for _name, _attr, _summary in (
    ("ELSA", "elsa_mean", "ELSA scores of the members' mean embedding"),
    ("ELSA_INT", "elsa_union", "ELSA scores of the union of the members' items"),
    ("ADD", "additive", "sum of the members' ELSA scores"),
    ("MUL", "multiplicative", "product of the members' ELSA scores"),
    ("LMS", "least_misery", "minimum of the members' ELSA scores"),
    ("MPL", "most_pleasure", "maximum of the members' ELSA scores"),
    ("GFAR", "gfar", "fairness-aware re-ranking of the members' ELSA lists"),
    ("EPFuzzDA", "epfuzzda", "proportional fairness aggregation of the members' ELSA scores"),
    ("POPULAR", "popular", "the most popular unseen items"),
):
    declare("baseline", _name, f"{_BASELINE_MODULE}:{_attr}", _summary)
del _name, _attr, _summary, _shared
