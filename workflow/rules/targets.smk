# Per-stage target rules: `snakemake data`, `snakemake elsa`, ... build one stage (and what it
# needs) for the current config; `snakemake --list-rules` explains each. `all` builds everything.


rule data:
    """Stage target: download, prepare and split every dataset (with its card)."""
    input:
        lambda wc: data_targets(),


rule elsa:
    """Stage target: train every ELSA run, extract its embeddings, and the POP/EASE baselines."""
    input:
        lambda wc: elsa_targets(),


rule sae:
    """Stage target: train every SAE of the grid and extract its sparse codes and features."""
    input:
        lambda wc: sae_targets(),


rule groups:
    """Stage target: sample every group set of every pool (with diagnostics)."""
    input:
        lambda wc: groups_targets(),


rule evaluate:
    """Stage target: evaluate every SAGEA fusion and baseline on every group set."""
    input:
        lambda wc: evaluation_targets(),


rule report:
    """Stage target: every table, figure and the landing page of the study."""
    input:
        lambda wc: report_targets(),


rule compare:
    """Stage target: compare ELSA runs and SAE dictionaries (when compare.elsa / compare.sae)."""
    input:
        lambda wc: compare_targets(),


rule explain:
    """Stage target: feature labels of every SAE, deletion curves, cluster recovery and example cards."""
    input:
        lambda wc: explain_targets(),


localrules:
    all,
    data,
    elsa,
    sae,
    groups,
    evaluate,
    report,
    compare,
    explain,
