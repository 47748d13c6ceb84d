"""The report stage: tables, figures and statistics from the per-group evaluation outputs.

``inputs`` (which upstream files a study reads) -> ``collect`` (long tables) -> ``tables`` /
``figures`` (builders) with ``stats`` (tests, corrections, bootstrap), rendered by ``latex`` and
``writers`` (Markdown, CSV). The workflow entry points are in :mod:`sagea.stages.report`.
"""
