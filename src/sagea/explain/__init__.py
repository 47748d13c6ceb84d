"""Explanations of SAGEA group recommendations through the SAE's sparse features (docs/explanations.md).

- :mod:`~sagea.explain.contributions`: the exact split of an item's score into per-feature terms;
- :mod:`~sagea.explain.group`: :func:`explain_group` for one group (list, features, members);
- :mod:`~sagea.explain.labels`: feature labels from item metadata (lift over the catalogue);
- :mod:`~sagea.explain.quality`: deletion curves and planted-cluster recovery;
- :mod:`~sagea.explain.cards`: report cards and tables; :mod:`~sagea.explain.jobs`: the rules' jobs.
"""

from sagea.explain.group import GroupExplanation, explain_group

__all__ = ["GroupExplanation", "explain_group"]
