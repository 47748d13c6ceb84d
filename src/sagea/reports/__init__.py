"""The report stage: tables, figures and statistics from the per-group evaluation outputs.

:mod:`sagea.plan_report` (which upstream files a study reads; pure) -> ``collect`` (long tables)
-> ``selection`` (which SAE configuration each table shows) -> ``paper_tables`` /
``thesis_tables`` / ``figures`` (builders, by name through ``build``) with ``stats`` (tests,
corrections, bootstrap) and ``options`` (:class:`ReportOptions`), each returning a
``table_data.Table`` rendered by ``latex`` and ``writers`` (Markdown, CSV, HTML). The workflow
entry points are in :mod:`sagea.stages.report`.
"""
