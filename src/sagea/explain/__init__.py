"""Explanations of SAGEA group recommendations through the SAE's sparse features (docs/explanations.md).

- :mod:`~sagea.explain.contributions`: the exact split of an item's score into per-feature terms;
- :mod:`~sagea.explain.group`: :func:`explain_group` for one group (list, features, members);
- :mod:`~sagea.explain.labels`: feature labels from item metadata (lift over the catalogue);
- :mod:`~sagea.explain.quality`: deletion curves and planted-cluster recovery;
- :mod:`~sagea.explain.cards`: report cards and tables; :mod:`~sagea.explain.jobs`: the rules' jobs;
- :mod:`~sagea.plan_explain`: what the ``explain`` config section asks for (pure, no torch).

``explain_group`` and ``GroupExplanation`` load on first use, so jobs that only label features
or write the report start without importing torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GroupExplanation", "explain_group"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sagea.explain import group

        return getattr(group, name)
    raise AttributeError(f"module 'sagea.explain' has no attribute {name!r}")
