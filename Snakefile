# sagea-workflow: dataset -> ELSA -> SAE grid -> groups -> evaluation -> tables, figures, report.
# Thin on purpose: configuration, validation and target functions live in workflow/rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default applies only when no --configfile is given: a --configfile *replaces* it
# (schema defaults fill the rest), so a paper config never inherits the default's datasets or
# values. --config key=value still overrides single keys either way.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/elsa.smk"
include: "workflow/rules/sae.smk"
include: "workflow/rules/groups.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/mlflow.smk"
include: "workflow/rules/targets.smk"


rule all:
    """Everything the config asks for: data, models, groups, evaluations, tables, figures."""
    default_target: True
    input:
        all_targets,
