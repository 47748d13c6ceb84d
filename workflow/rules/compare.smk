# compare rules (see docs/ARCHITECTURE.md, docs/compare.md): how much do ELSA runs and SAE
# dictionaries differ? Pairwise scores with noise floors and random baselines, a table, figures.


from sagea import plan_compare

# Run ids -> hyperparameters (first = reference), and "<elsa>/<sae>" -> (elsa, sae, hyperparameters).
compare_elsa_runs = lambda wc: plan_compare.elsa_runs(rep_config(wc), wc.dataset)
compare_sae_members = lambda wc: plan_compare.sae_members(rep_config(wc), wc.dataset)
# What `rule all` needs from this stage (every replicate).
compare_targets = lambda: [
    f for rep in REPLICATES for f in plan_compare.targets(rep, RESULTS)
]


localrules:
    compare_table,
    compare_sae_pairs_figure,


rule compare_elsa:
    """Compare the item embedding spaces of the ELSA runs (kNN overlap, CKA, noise floors)."""
    input:
        embeddings=lambda wc: [
            f"{RESULTS}/{wc.dataset}/{wc.rep}/elsa/{e}/item_embeddings.parquet"
            for e in compare_elsa_runs(wc)
        ],
    output:
        scores=f"{RESULTS}/{{dataset}}/{{rep}}/compare/elsa.parquet",
    log:
        f"{LOGS}/{{dataset}}/{{rep}}/compare/elsa.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{rep}}/compare/elsa.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        runs=lambda wc: compare_elsa_runs(wc),
        knn_k=config["compare"]["knn_k"],
        knn_queries=config["compare"]["knn_queries"],
        chunk_size=config["compare"]["chunk_size"],
        seed=lambda wc: rep_config(wc)["compare"]["seed"],
    script:
        "../scripts/compare_elsa.py"


rule compare_sae:
    """Compare the SAE dictionaries pairwise (feature matching, code overlap, random baselines)."""
    input:
        models=lambda wc: [
            f"{RESULTS}/{wc.dataset}/{wc.rep}/sae/{e}/{s}/model.pt"
            for e, s, _ in compare_sae_members(wc).values()
        ],
        codes=lambda wc: [
            f"{RESULTS}/{wc.dataset}/{wc.rep}/sae/{e}/{s}/codes_topk.parquet"
            for e, s, _ in compare_sae_members(wc).values()
        ],
        user_embeddings=lambda wc: [
            f"{RESULTS}/{wc.dataset}/{wc.rep}/elsa/{e}/user_embeddings.parquet"
            for e in dict.fromkeys(e for e, _, _ in compare_sae_members(wc).values())
        ],
    output:
        scores=f"{RESULTS}/{{dataset}}/{{rep}}/compare/sae.parquet",
    log:
        f"{LOGS}/{{dataset}}/{{rep}}/compare/sae.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{rep}}/compare/sae.tsv"
    conda:
        "../envs/sagea.yaml"
    threads: config["resources"]["threads"]
    resources:
        **heavy_resources(),
    params:
        members=lambda wc: compare_sae_members(wc),
        match_threshold=config["compare"]["match_threshold"],
        seed=lambda wc: rep_config(wc)["compare"]["seed"],
    script:
        "../scripts/compare_sae.py"


rule compare_table:
    """Table and figure of one comparison (ELSA runs or SAE dictionaries)."""
    input:
        scores=f"{RESULTS}/{{dataset}}/{{rep}}/compare/{{kind}}.parquet",
    output:
        csv=f"{RESULTS}/{{dataset}}/{{rep}}/compare/{{kind}}.csv",
        md=f"{RESULTS}/{{dataset}}/{{rep}}/compare/{{kind}}.md",
        figure=report(
            f"{RESULTS}/{{dataset}}/{{rep}}/compare/{{kind}}.png",
            caption="../report/compare.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "{kind} similarity"},
        ),
    log:
        f"{LOGS}/{{dataset}}/{{rep}}/compare/{{kind}}_table.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{rep}}/compare/{{kind}}_table.tsv"
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
        scores=f"{RESULTS}/{{dataset}}/{{rep}}/compare/sae.parquet",
    output:
        figure=report(
            f"{RESULTS}/{{dataset}}/{{rep}}/compare/sae_pairs.png",
            caption="../report/compare_sae_pairs.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}", "figure": "SAE pairwise heat maps"},
        ),
    log:
        f"{LOGS}/{{dataset}}/{{rep}}/compare/sae_pairs.log",
    benchmark:
        f"{BENCH}/{{dataset}}/{{rep}}/compare/sae_pairs.tsv"
    conda:
        "../envs/sagea.yaml"
    params:
        title=lambda wc: f"{wc.dataset}: SAE dictionaries, every pair",
    script:
        "../scripts/compare_pairs_figure.py"
