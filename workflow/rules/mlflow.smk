# MLflow stage (docs/mlflow.md), only with mlflow.deferred: the jobs that make runs (train_elsa,
# train_sae / train_sae_grid, evaluate_sagea, evaluate_baselines) write them to spool files, and
# one job logs every spool of the study (sagea.tracking.log_spooled). Logging again logs only
# the runs whose record changed (a rerun job's), replacing that output's earlier run.

# What `rule all` needs: the table of logged runs (nothing when runs are logged by each job).
mlflow_targets = lambda: [MLFLOW_LOGGED] if MLFLOW_DEFERRED else []


localrules:
    mlflow_log,


rule mlflow_log:
    """Log every spooled run of the study to MLflow (mlflow.deferred); list them in mlflow_runs.parquet."""
    input:
        lambda wc: mlflow_spools(),
    output:
        MLFLOW_LOGGED,
    log:
        f"{LOGS}/{config['study']}/mlflow_log.log",
    benchmark:
        f"{BENCH}/{config['study']}/mlflow_log.tsv"
    conda:
        "../envs/sagea.yaml"
    script:
        "../scripts/mlflow_log.py"
