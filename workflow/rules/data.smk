# data rules (see docs/ARCHITECTURE.md): download -> prepare -> split


localrules:
    download,
    split,


# spec keys that change the prepared data (ELSA / split settings must not re-trigger prepare)
PREPARE_KEYS = ("source", "release", "threshold", "custom", "synthetic", "filter")


def prepare_spec(wc):
    spec = dataset_spec(wc)
    return {key: spec[key] for key in PREPARE_KEYS if key in spec}


def download_spec(wc):
    spec = dataset_spec(wc)
    return {key: spec.get(key) for key in ("source", "release", "url", "sha256")}


def split_params(wc):
    split = dataset_spec(wc)["split"]
    return {key: split[key] for key in ("valid_fraction", "test_fraction", "seed")}


def prepare_raw_input(wc):
    """Nothing for synthetic, the configured `path`, or the download rule's folder."""
    spec = dataset_spec(wc)
    if spec["source"] == "synthetic":
        return {}
    if spec.get("path"):
        return {"raw": spec["path"]}
    return {"raw": f"{RESULTS}/{wc.dataset}/raw/files"}


rule download:
    output:
        files=directory(f"{RESULTS}/{{dataset}}/raw/files"),
    params:
        spec=download_spec,
        raw_dir=lambda wc: f"{RESULTS}/{wc.dataset}/raw",
    log:
        f"{LOGS}/{{dataset}}/download.log",
    # no benchmark: Snakemake forbids it on rules eligible for between-workflow caching
    cache: "omit-software"
    script:
        "../scripts/download.py"


rule prepare:
    input:
        unpack(prepare_raw_input),
    output:
        interactions=f"{RESULTS}/{{dataset}}/data/interactions.parquet",
        user_table=f"{RESULTS}/{{dataset}}/data/users.parquet",
        item_table=f"{RESULTS}/{{dataset}}/data/items.parquet",
        card=f"{RESULTS}/{{dataset}}/data/card.json",
        card_md=report(
            f"{RESULTS}/{{dataset}}/data/card.md",
            category="Data",
            caption="../report/data_card.rst",
        ),
    params:
        spec=prepare_spec,
    threads: 1
    resources:
        **{**heavy_resources(), "gpu": 0},
    log:
        f"{LOGS}/{{dataset}}/prepare.log",
    benchmark:
        f"{BENCH}/{{dataset}}/prepare.tsv"
    script:
        "../scripts/prepare.py"


rule split:
    input:
        user_table=f"{RESULTS}/{{dataset}}/data/users.parquet",
    output:
        split=f"{RESULTS}/{{dataset}}/data/split.parquet",
    params:
        split=split_params,
    log:
        f"{LOGS}/{{dataset}}/split.log",
    benchmark:
        f"{BENCH}/{{dataset}}/split.tsv"
    script:
        "../scripts/split.py"


def data_targets():
    """Prepared data, card and split of every configured dataset."""
    targets = []
    for dataset in plan.datasets(config):
        base = f"{RESULTS}/{dataset}/data"
        targets += [
            f"{base}/{name}"
            for name in (
                "interactions.parquet",
                "users.parquet",
                "items.parquet",
                "card.json",
                "card.md",
                "split.parquet",
            )
        ]
    return targets
