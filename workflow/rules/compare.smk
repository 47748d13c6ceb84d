# compare rules (see docs/ARCHITECTURE.md, docs/compare.md): how much do ELSA runs and SAE
# dictionaries differ? Pairwise scores with noise floors and random baselines, a table, figures.


from sagea.analysis import compare_plan

# Run ids -> hyperparameters (first = reference), and "<elsa>/<sae>" -> (elsa, sae, hyperparameters).
compare_elsa_runs = lambda dataset: compare_plan.elsa_runs(config, dataset)
compare_sae_members = lambda dataset: compare_plan.sae_members(config, dataset)
# What `rule all` needs from this stage.
compare_targets = lambda: compare_plan.targets(config, RESULTS)


localrules:
    compare_table,
    compare_sae_pairs_figure,


rule compare_elsa:
    """Compare the item embedding spaces of the ELSA runs (kNN overlap, CKA, noise floors)."""
    input:
        embeddings=lambda wc: [
            f"{RESULTS}/{wc.dataset}/elsa/{e}/item_embeddings.parquet"
            for e in compare_elsa_runs(wc.dataset)
        ],
    output:
        scores=f"{RESULTS}/{{dataset}}/compare/elsa.parquet",
    log:
        f"{LOGS}/{{dataset}}/compare/elsa.log",
    benchmark:
        f"{BENCH}/{{dataset}}/compare/elsa.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        runs=lambda wc: compare_elsa_runs(wc.dataset),
        knn_k=config["compare"]["knn_k"],
        knn_queries=config["compare"]["knn_queries"],
        chunk_size=config["compare"]["chunk_size"],
        seed=config["compare"]["seed"],
    script:
        "../scripts/compare_elsa.py"


rule compare_sae:
    """Compare the SAE dictionaries pairwise (feature matching, code overlap, random baselines)."""
    input:
        models=lambda wc: [
            f"{RESULTS}/{wc.dataset}/sae/{e}/{s}/model.pt"
            for e, s, _ in compare_sae_members(wc.dataset).values()
        ],
        codes=lambda wc: [
            f"{RESULTS}/{wc.dataset}/sae/{e}/{s}/codes_topk.parquet"
            for e, s, _ in compare_sae_members(wc.dataset).values()
        ],
        user_embeddings=lambda wc: [
            f"{RESULTS}/{wc.dataset}/elsa/{e}/user_embeddings.parquet"
            for e in dict.fromkeys(
                e for e, _, _ in compare_sae_members(wc.dataset).values()
            )
        ],
    output:
        scores=f"{RESULTS}/{{dataset}}/compare/sae.parquet",
    log:
        f"{LOGS}/{{dataset}}/compare/sae.log",
    benchmark:
        f"{BENCH}/{{dataset}}/compare/sae.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        members=lambda wc: compare_sae_members(wc.dataset),
        match_threshold=config["compare"]["match_threshold"],
        seed=config["compare"]["seed"],
    script:
        "../scripts/compare_sae.py"


rule compare_table:
    """Table and figure of one comparison (ELSA runs or SAE dictionaries)."""
    input:
        scores=f"{RESULTS}/{{dataset}}/compare/{{kind}}.parquet",
    output:
        csv=f"{RESULTS}/{{dataset}}/compare/{{kind}}.csv",
        md=f"{RESULTS}/{{dataset}}/compare/{{kind}}.md",
        figure=report(
            f"{RESULTS}/{{dataset}}/compare/{{kind}}.png",
            caption="../report/compare.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "{kind} similarity"},
        ),
    log:
        f"{LOGS}/{{dataset}}/compare/{{kind}}_table.log",
    benchmark:
        f"{BENCH}/{{dataset}}/compare/{{kind}}_table.tsv"
    wildcard_constraints:
        kind="elsa|sae",
    conda:
        "../envs/sagea.yaml"
    params:
        title=lambda wc: f"{wc.dataset}: {'ELSA item embeddings' if wc.kind == 'elsa' else 'SAE dictionaries'}",
    script:
        "../scripts/compare_table.py"


rule compare_sae_pairs_figure:
    """Heat maps of every SAE dictionary pair."""
    input:
        scores=f"{RESULTS}/{{dataset}}/compare/sae.parquet",
    output:
        figure=report(
            f"{RESULTS}/{{dataset}}/compare/sae_pairs.png",
            caption="../report/compare_sae_pairs.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "SAE pairwise heat maps"},
        ),
    log:
        f"{LOGS}/{{dataset}}/compare/sae_pairs.log",
    benchmark:
        f"{BENCH}/{{dataset}}/compare/sae_pairs.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        title=lambda wc: f"{wc.dataset}: SAE dictionaries, every pair",
    script:
        "../scripts/compare_pairs_figure.py"
