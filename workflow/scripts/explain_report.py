"""Rule explain_report: the explanations' tables (CSV, LaTeX, Markdown, HTML) and example cards of one dataset."""

from sagea.explain.jobs import explain_report_job
from sagea.plan_explain import EXPLAIN_TABLES
from sagea.runtime import setup_logging

snakemake = globals()["snakemake"]  # injected by Snakemake
setup_logging(snakemake.log[0])
out = dict(snakemake.output.items())
explain_report_job(
    dict(snakemake.input.items()),
    {**{t: {ext: out[f"{t}_{ext}"] for ext in ("csv", "tex", "md", "html")} for t in EXPLAIN_TABLES}, "cards": out["cards"]},
    dataset=snakemake.wildcards.dataset,
    sae_run=snakemake.params.sae_run,
    top_shared=snakemake.params.top_shared,
)
