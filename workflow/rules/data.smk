# data rules (see docs/ARCHITECTURE.md): download -> prepare -> split.
# Parameters come from sagea.plan (prepare_params, split_params, ...); the logic is in sagea.data.


localrules:
    download,
    split,


rule download:
    """Download a dataset's raw archive (resumable, checksummed) and unpack it under results/<dataset>/raw/."""
    output:
        files=directory(f"{RESULTS}/{{dataset}}/raw/files"),
    log:
        f"{LOGS}/{{dataset}}/download.log",
    # no benchmark: Snakemake forbids it on rules eligible for between-workflow caching
    cache: "omit-software"
    conda:
        "../envs/sagea.yaml"
    params:
        spec=lambda wc: plan.download_params(config, wc.dataset),
        raw_dir=lambda wc: f"{RESULTS}/{wc.dataset}/raw",
    script:
        "../scripts/download.py"


rule prepare:
    """Parse, binarise and filter a dataset into interactions/users/items Parquet files and its card."""
    input:
        unpack(lambda wc: plan.raw_input(config, wc.dataset, RESULTS)),
    output:
        interactions=f"{RESULTS}/{{dataset}}/data/interactions.parquet",
        user_table=f"{RESULTS}/{{dataset}}/data/users.parquet",
        item_table=f"{RESULTS}/{{dataset}}/data/items.parquet",
        card=f"{RESULTS}/{{dataset}}/data/card.json",
        card_md=report(
            f"{RESULTS}/{{dataset}}/data/card.md",
            category="Data",
            caption="../report/data_card.rst",
            labels={"dataset": "{dataset}", "file": "dataset card"},
        ),
    log:
        f"{LOGS}/{{dataset}}/prepare.log",
    benchmark:
        f"{BENCH}/{{dataset}}/prepare.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: 1
    resources:
        **{**heavy_resources(), "gpu": 0},
    params:
        spec=lambda wc: plan.prepare_params(config, wc.dataset),
    script:
        "../scripts/prepare.py"


rule generate:
    """Generate a synthetic dataset (its seed makes it part of a replicate) with its card."""
    output:
        interactions=f"{RESULTS}/{{dataset}}/{{rep}}/data/interactions.parquet",
        user_table=f"{RESULTS}/{{dataset}}/{{rep}}/data/users.parquet",
        item_table=f"{RESULTS}/{{dataset}}/{{rep}}/data/items.parquet",
        card=f"{RESULTS}/{{dataset}}/{{rep}}/data/card.json",
        card_md=report(
            f"{RESULTS}/{{dataset}}/{{rep}}/data/card.md",
            category="Data",
            caption="../report/data_card.rst",
            labels={
                "dataset": "{dataset}",
                "replicate": "{rep}",
                "file": "dataset card",
            },
        ),
    log:
        f"{LOGS}/{{dataset}}/{{rep}}/generate.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{rep}}/generate.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: 1
    resources:
        **{**heavy_resources(), "gpu": 0},
    params:
        spec=lambda wc: plan.prepare_params(rep_config(wc), wc.dataset),
    script:
        "../scripts/prepare.py"


rule split:
    """Split users into train/valid/test (seeded)."""
    input:
        user_table=data_file("users.parquet"),
    output:
        split=f"{RESULTS}/{{dataset}}/{{rep}}/split.parquet",
    log:
        f"{LOGS}/{{dataset}}/{{rep}}/split.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{rep}}/split.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        split=lambda wc: plan.split_params(rep_config(wc), wc.dataset),
    script:
        "../scripts/split.py"


# what `rule all` needs from this stage (collected by common.smk)
data_targets = lambda: [
    f for rep in REPLICATES for f in plan.data_files(rep, RESULTS)
]  # noqa: E731
