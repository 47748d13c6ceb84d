"""Synthetic groups of users (docs/method.md §4), one concept per module:

* ``similarity`` — user similarity ``(cos + 1) / 2`` and the thresholds Td / Ts;
* ``grow`` — the research code's acceptance loop for one kind, vectorised over groups;
* ``filters`` — distinct sets, common held-out items, the overlap cap;
* ``diagnostics`` — overlapping pairs, small-data flags and the figures of a group set;
* ``sampling`` — the orchestration: every group set of a pool, in rounds, within a budget;
* ``io`` — :class:`~sagea.groups.io.GroupSet` and its Parquet file; ``errors`` — GroupSamplingError.

The package imports only downward: ``sagea.io``, ``sagea.runtime``, ``sagea.plan`` and the group
split (the scoring/splits module shared with the evaluation); never the models, recommenders,
evaluation stages or reports.
"""
