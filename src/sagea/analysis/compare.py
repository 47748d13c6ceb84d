"""How similar are two embedding spaces, or two SAE dictionaries?

Dense spaces (ELSA item or user embeddings; row ``i`` of both matrices is the same item/user):

* kNN Jaccard overlap@k — cosine neighbours of each row in both spaces,
  ``J_i = |N_a(i) ∩ N_b(i)| / |N_a(i) ∪ N_b(i)|``; mean and standard deviation over rows.
* linear CKA — ``||Bcᵀ Ac||²_F / (||Acᵀ Ac||_F ||Bcᵀ Bc||_F)`` with column-centred ``Ac, Bc``.
* Procrustes residual — both spaces centred and scaled to unit Frobenius norm, ``b`` fitted by
  ``s · a R`` with ``R`` orthogonal: ``1 - (Σ σ(Aᵀ B))²`` (scipy's "disparity"), in [0, 1].
* CCA mean correlation — canonical directions fitted on one half of the rows, mean correlation
  of the canonical variates on the held-out half (in-sample CCA is inflated towards 1).

ELSA's axes are only defined up to rotation (the loss depends on ``A Aᵀ`` only), so every dense
measure here is rotation invariant; matching individual axes of two ELSA runs is meaningless.

SAE dictionaries (decoder rows ``[h, d]``, unit norm; codes of the same users):

* mean max cosine between decoder rows, both directions (``a → b`` and ``b → a``);
* one-to-one Hungarian matching of decoder rows (max total cosine): mean matched cosine and the
  share of features (of the smaller dictionary) matched with cosine ``>= threshold``;
* the same two statistics on the Pearson correlation of feature activations over the same users.

When two dictionaries sit on different ELSA runs, the first one's decoder rows are mapped into
the second's space by the orthogonal map aligning the two runs' standardised user embeddings.

Every comparison comes with a noise floor (the same measure between runs that differ only in
their seed) and a random baseline (a seeded random space / dictionary of the same shape, codes
with shuffled users).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.stats import hypergeom

from sagea.runtime import progress

log = logging.getLogger(__name__)

#: Dense-space measures: name -> True when higher means more similar.
DENSE_MEASURES = {
    "knn_jaccard": True,
    "knn_jaccard_std": False,
    "cka": True,
    "procrustes_residual": False,
    "cca": True,
}
#: Dictionary measures: name -> True when higher means more similar.
DICTIONARY_MEASURES = {
    "decoder_mmcs_ab": True,
    "decoder_mmcs_ba": True,
    "decoder_hungarian": True,
    "decoder_matched_share": True,
    "activation_mmc_ab": True,
    "activation_mmc_ba": True,
    "activation_hungarian": True,
    "activation_matched_share": True,
}
#: Hyperparameters that only pick a seed: runs differing only in these form a noise-floor pair.
SEED_KEYS = frozenset({"seed", "elsa_seed"})

RESULT_COLUMNS = [
    "a",
    "b",
    "kind",
    "measure",
    "value",
    "noise_floor",
    "random_baseline",
    "chance",
    "higher_is_better",
    "varied",
]


# ============================================================================ dense spaces
def _float(x: np.ndarray) -> np.ndarray:
    """float32 stays float32 (memory), everything else becomes float64."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    x = _float(x)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)


def knn_indices(
    x: np.ndarray, k: int, queries: np.ndarray | None = None, chunk_size: int = 2048
) -> np.ndarray:
    """Indices ``[q, k]`` of the ``k`` cosine nearest neighbours of each query row (self excluded).

    Similarities are computed ``chunk_size`` query rows at a time (memory ``chunk_size × n``).
    The order within a row is unspecified (sets are what the overlap needs).
    """
    n = len(x)
    if not 0 < k < n:
        raise ValueError(f"knn k={k} must be between 1 and the number of rows minus one ({n - 1}); lower compare.knn_k")
    xn = unit_rows(x)
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    out = np.empty((len(queries), k), dtype=np.int64)
    starts = range(0, len(queries), chunk_size)
    for start in progress(starts, desc="kNN", total=len(starts), leave=False):
        rows = queries[start : start + chunk_size]
        sims = xn[rows] @ xn.T
        sims[np.arange(len(rows)), rows] = -np.inf
        out[start : start + len(rows)] = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return out


def neighbour_jaccard(na: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """Per-row Jaccard overlap ``|A ∩ B| / |A ∪ B|`` of two ``[q, k]`` neighbour index arrays."""
    q, k = na.shape
    # Offset every row into its own id range so one isin() intersects all rows at once.
    offset = (np.arange(q, dtype=np.int64) * (max(na.max(), nb.max()) + 1))[:, None]
    inter = np.isin(na + offset, nb + offset).sum(axis=1)
    return inter / (na.shape[1] + nb.shape[1] - inter)


def knn_overlap(
    a: np.ndarray,
    b: np.ndarray,
    k: int,
    queries: np.ndarray | None = None,
    chunk_size: int = 2048,
) -> np.ndarray:
    """Per-row kNN Jaccard overlap@k of two spaces over the same rows (cosine neighbours)."""
    _check_rows(a, b)
    return neighbour_jaccard(knn_indices(a, k, queries, chunk_size), knn_indices(b, k, queries, chunk_size))


def knn_overlap_chance(n: int, k: int) -> float:
    """Expected Jaccard@k of two independent uniformly random ``k``-subsets of the ``n - 1`` others.

    The intersection ``i`` is hypergeometric (population ``n-1``, ``k`` marked, ``k`` drawn);
    ``E[J] = Σ_i P(i) · i / (2k - i)``.
    """
    i = np.arange(k + 1)
    return float((hypergeom.pmf(i, n - 1, k, k) * i / (2 * k - i)).sum())


def _centred64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA ``||Bcᵀ Ac||²_F / (||Acᵀ Ac||_F ||Bcᵀ Bc||_F)`` (Kornblith et al. 2019); 1 = same up to rotation and scale."""
    _check_rows(a, b)
    ac, bc = _centred64(a), _centred64(b)
    cross = np.linalg.norm(bc.T @ ac) ** 2
    denom = np.linalg.norm(ac.T @ ac) * np.linalg.norm(bc.T @ bc)
    return float(cross / denom) if denom > 0 else float("nan")


def cka_chance(n: int, d_a: int, d_b: int) -> float:
    """Approximate linear CKA of two independent Gaussian spaces ``[n, d_a]``, ``[n, d_b]``.

    ``E||BᵀA||²_F = n d_a d_b`` and ``E||AᵀA||²_F = d_a (n² + 2n) + d_a (d_a - 1) n``, so
    ``CKA ≈ sqrt(d_a d_b / ((n + d_a + 1)(n + d_b + 1)))`` (centring: ``n`` → ``n - 1``).
    """
    m = n - 1
    return float(np.sqrt(d_a * d_b / ((m + d_a + 1) * (m + d_b + 1))))


def _standardised(x: np.ndarray) -> np.ndarray:
    xc = _centred64(x)
    norm = np.linalg.norm(xc)
    return xc / norm if norm > 0 else xc


def procrustes_residual(a: np.ndarray, b: np.ndarray) -> float:
    """Orthogonal Procrustes disparity ``min_{R orthogonal, s} ||B - s A R||²_F = 1 - (Σσ(AᵀB))²``.

    ``A, B`` are the spaces centred and scaled to unit Frobenius norm; spaces of different
    widths are compared as if the narrower one were padded with zero columns. 0 = identical up
    to rotation, translation and scale; 1 = nothing in common.
    """
    _check_rows(a, b)
    sigma = np.linalg.svd(_standardised(a).T @ _standardised(b), compute_uv=False)
    return float(np.clip(1.0 - sigma.sum() ** 2, 0.0, 1.0))


def orthogonal_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (semi-)orthogonal ``R [d_a, d_b]`` minimising ``||a R - b||_F`` (no centring, no scale).

    ``R = U Vᵀ`` from ``aᵀ b = U Σ Vᵀ``; with ``d_a ≠ d_b`` its columns (or rows) are orthonormal.
    """
    _check_rows(a, b)
    u, _, vt = np.linalg.svd(np.asarray(a, np.float64).T @ np.asarray(b, np.float64), full_matrices=False)
    return u @ vt


def cca_heldout(a: np.ndarray, b: np.ndarray, seed: int, tol: float = 1e-8) -> float:
    """Mean canonical correlation, directions fitted on a random half of the rows, evaluated on the other.

    Fit: whiten each centred half-space by its SVD ``X = U S Vᵀ`` (directions with
    ``s > tol · s_max``), then ``U_aᵀ U_b = P Σ Qᵀ`` gives the canonical weights
    ``V_a S_a⁻¹ P`` and ``V_b S_b⁻¹ Q``. Evaluate: Pearson correlation of each pair of canonical
    variates on the held-out rows, averaged over the ``min(rank_a, rank_b)`` components.
    NaN when the fitting half has no more rows than columns.
    """
    _check_rows(a, b)
    n = len(a)
    perm = np.random.default_rng(seed).permutation(n)
    fit, held = perm[: n // 2], perm[n // 2 :]
    if len(fit) <= max(a.shape[1], b.shape[1]) + 1:
        log.warning("CCA needs more rows (%d) than twice the width (%d); reporting NaN", n, max(a.shape[1], b.shape[1]))
        return float("nan")

    def whiten(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = x.mean(axis=0)
        u, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        keep = s > tol * s[0]
        return mean, vt[keep].T / s[keep], u[:, keep]

    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mean_a, w_a, u_a = whiten(a64[fit])
    mean_b, w_b, u_b = whiten(b64[fit])
    p, _, qt = np.linalg.svd(u_a.T @ u_b, full_matrices=False)
    va = (a64[held] - mean_a) @ (w_a @ p)
    vb = (b64[held] - mean_b) @ (w_b @ qt.T)
    va -= va.mean(axis=0)
    vb -= vb.mean(axis=0)
    denom = np.linalg.norm(va, axis=0) * np.linalg.norm(vb, axis=0)
    corr = np.where(denom > 0, (va * vb).sum(axis=0) / np.where(denom > 0, denom, 1), 0.0)
    return float(corr.mean())


def _check_rows(a: np.ndarray, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise ValueError(
            f"the two spaces have different row counts ({len(a)} vs {len(b)}); "
            "compare embeddings of the same dataset (row i = the same item/user in both)"
        )


def _dense_measures(
    a: np.ndarray, b: np.ndarray, na: np.ndarray, nb: np.ndarray, seed: int
) -> dict[str, float]:
    jac = neighbour_jaccard(na, nb)
    return {
        "knn_jaccard": float(jac.mean()),
        "knn_jaccard_std": float(jac.std()),
        "cka": linear_cka(a, b),
        "procrustes_residual": procrustes_residual(a, b),
        # Mean canonical correlation only between spaces of equal width (see module docs).
        "cca": cca_heldout(a, b, seed) if a.shape[1] == b.shape[1] else float("nan"),
    }


def compare_spaces(
    a: np.ndarray,
    b: np.ndarray,
    k: int = 10,
    seed: int = 42,
    chunk_size: int = 2048,
    queries: np.ndarray | None = None,
) -> dict[str, float]:
    """All dense measures between two spaces over the same rows (``queries``: kNN query rows, default all)."""
    _check_rows(a, b)
    return _dense_measures(a, b, knn_indices(a, k, queries, chunk_size), knn_indices(b, k, queries, chunk_size), seed)


def random_space(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A seeded standard-Gaussian space of the given shape (random baseline)."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def dense_chance(n: int, d_a: int, d_b: int, k: int) -> dict[str, float]:
    """Analytic chance levels of the dense measures between independent random spaces."""
    return {
        "knn_jaccard": knn_overlap_chance(n, k),
        "cka": cka_chance(n, d_a, d_b),
        "cca": 0.0 if d_a == d_b else float("nan"),
    }


# ============================================================================ dictionaries
def cosine_matrix(da: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Cosine similarity ``[h_a, h_b]`` between the rows of two decoder matrices."""
    if da.shape[1] != db.shape[1]:
        raise ValueError(f"decoder widths differ ({da.shape[1]} vs {db.shape[1]}); align the ELSA spaces first")
    return unit_rows(da) @ unit_rows(db).T


def mean_max(sim: np.ndarray) -> tuple[float, float]:
    """``(mean_i max_j S_ij, mean_j max_i S_ij)``: best partner of each feature, both directions."""
    return float(sim.max(axis=1).mean()), float(sim.max(axis=0).mean())


def hungarian_match(sim: np.ndarray, threshold: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """One-to-one matching maximising ``Σ S_ij`` (Hungarian / Jonker-Volgenant).

    Returns the mean matched similarity, the share of the ``min(h_a, h_b)`` matched pairs with
    ``S >= threshold``, and the matched row and column indices.
    """
    rows, cols = linear_sum_assignment(sim, maximize=True)
    matched = sim[rows, cols]
    return float(matched.mean()), float((matched >= threshold).mean()), rows, cols


def codes_matrix(codes: pd.DataFrame, users: np.ndarray, width: int) -> sp.csr_matrix:
    """Long-form codes (``user``, ``feature``, ``value``) as CSR ``[len(users), width]`` (rows = ``users`` order)."""
    users = np.asarray(users)
    frame = codes[np.isin(codes["user"].to_numpy(), users)]
    order = np.argsort(users)
    rows = order[np.searchsorted(users, frame["user"].to_numpy(), sorter=order)]
    feats = frame["feature"].to_numpy()
    if len(feats) and (feats.max() >= width or feats.min() < 0):
        raise ValueError(f"codes mention feature {feats.max()} but the dictionary has {width} rows")
    return sp.csr_matrix(
        (frame["value"].to_numpy(np.float64), (rows, feats)), shape=(len(users), width)
    )


def activation_correlation(ca: sp.spmatrix, cb: sp.spmatrix) -> np.ndarray:
    """Pearson correlation ``[h_a, h_b]`` between the feature activations of the same users.

    ``corr_ij = (E[a_i b_j] - E[a_i] E[b_j]) / (σ_i σ_j)`` from one sparse product; a feature
    that never varies (dead) correlates 0 with everything.
    """
    if ca.shape[0] != cb.shape[0]:
        raise ValueError("activation correlation needs codes of the same users in both dictionaries")
    n = ca.shape[0]
    ca, cb = sp.csr_matrix(ca, dtype=np.float64), sp.csr_matrix(cb, dtype=np.float64)
    mean_a = np.asarray(ca.mean(axis=0)).ravel()
    mean_b = np.asarray(cb.mean(axis=0)).ravel()
    std_a = np.sqrt(np.maximum(np.asarray(ca.multiply(ca).mean(axis=0)).ravel() - mean_a**2, 0))
    std_b = np.sqrt(np.maximum(np.asarray(cb.multiply(cb).mean(axis=0)).ravel() - mean_b**2, 0))
    cov = (ca.T @ cb).toarray() / n - np.outer(mean_a, mean_b)
    denom = np.outer(std_a, std_b)
    return np.where(denom > 1e-12, cov / np.where(denom > 1e-12, denom, 1), 0.0)


def standardise_rows(x: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The SAE's per-vector standardisation ``(x - mean(x)) / (std(x) + eps)`` (the space decoder rows live in)."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(axis=1, keepdims=True)) / (x.std(axis=1, keepdims=True) + eps)


def compare_dictionaries(
    decoder_a: np.ndarray,
    decoder_b: np.ndarray,
    codes_a: sp.spmatrix | None = None,
    codes_b: sp.spmatrix | None = None,
    threshold: float = 0.7,
    rotation: np.ndarray | None = None,
) -> dict[str, float]:
    """All dictionary measures; ``rotation [d_a, d_b]`` maps ``a``'s decoder rows into ``b``'s space first.

    Activation measures need codes of the same users (rows) for both; NaN without codes.
    """
    da = np.asarray(decoder_a, np.float64)
    if rotation is not None:
        da = da @ rotation
    cos = cosine_matrix(da, np.asarray(decoder_b, np.float64))
    out: dict[str, float] = {}
    out["decoder_mmcs_ab"], out["decoder_mmcs_ba"] = mean_max(cos)
    out["decoder_hungarian"], out["decoder_matched_share"], _, _ = hungarian_match(cos, threshold)
    if codes_a is None or codes_b is None:
        out.update({m: float("nan") for m in DICTIONARY_MEASURES if m.startswith("activation")})
        return out
    corr = activation_correlation(codes_a, codes_b)
    out["activation_mmc_ab"], out["activation_mmc_ba"] = mean_max(corr)
    out["activation_hungarian"], out["activation_matched_share"], _, _ = hungarian_match(corr, threshold)
    return out


def random_dictionary(h: int, d: int, seed: int) -> np.ndarray:
    """``h`` seeded random unit vectors in ``R^d`` (uniform on the sphere): the random baseline."""
    return unit_rows(np.random.default_rng(seed).standard_normal((h, d)))


def shuffle_users(codes: sp.spmatrix, seed: int) -> sp.csr_matrix:
    """Codes with their rows (users) permuted: same activation statistics, no shared users."""
    perm = np.random.default_rng(seed).permutation(codes.shape[0])
    return sp.csr_matrix(codes)[perm]


# ============================================================================ run bookkeeping
def seed_pairs(hps: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of runs (in declaration order) whose hyperparameters differ only in seed keys."""
    def family(hp: Mapping[str, Any]) -> tuple:
        return tuple(sorted((k, repr(v)) for k, v in hp.items() if k not in SEED_KEYS))

    ids = list(hps)
    return [(x, y) for x, y in itertools.combinations(ids, 2) if family(hps[x]) == family(hps[y])]


def varied_label(hp_a: Mapping[str, Any], hp_b: Mapping[str, Any]) -> str:
    """``"factors=32, seed=43"``: the hyperparameters of ``b`` that differ from ``a``."""
    keys = [k for k in hp_b if hp_a.get(k) != hp_b[k]]
    return ", ".join(f"{k}={hp_b[k]}" for k in keys) or "identical"


def _family_pairs(
    pair: tuple[str, str], pairs: Sequence[tuple[str, str]], hps: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """Seed pairs whose runs share the non-seed hyperparameters of ``pair[0]`` or ``pair[1]``."""
    def family(run: str) -> tuple:
        return tuple(sorted((k, repr(v)) for k, v in hps[run].items() if k not in SEED_KEYS))

    fams = {family(pair[0]), family(pair[1])}
    return [p for p in pairs if family(p[0]) in fams]


def _assemble(
    compared: Sequence[tuple[str, str]],
    noise: Sequence[tuple[str, str]],
    scores: Mapping[tuple[str, str], dict[str, float]],
    random_scores: Mapping[tuple[str, str], dict[str, float]],
    chance: Mapping[tuple[str, str], dict[str, float]],
    hps: Mapping[str, Mapping[str, Any]],
    higher: Mapping[str, bool],
) -> pd.DataFrame:
    """Long table: one row per (pair, measure) for compared pairs, seed pairs and random baselines."""
    rows = []
    for pair in compared:
        fam = _family_pairs(pair, noise, hps) or list(noise)
        floor = {m: float(np.nanmean([scores[p][m] for p in fam])) if fam else float("nan") for m in higher}
        for m in higher:
            rows.append(
                (pair[0], pair[1], "compared", m, scores[pair][m], floor[m], random_scores[pair][m],
                 chance[pair].get(m, float("nan")), higher[m], varied_label(hps[pair[0]], hps[pair[1]]))
            )
    for pair in noise:
        for m in higher:
            rows.append((pair[0], pair[1], "seed", m, scores[pair][m], float("nan"), float("nan"),
                         float("nan"), higher[m], varied_label(hps[pair[0]], hps[pair[1]])))
    for pair in compared:
        for m in higher:
            rows.append((pair[0], f"random({pair[1]})", "random", m, random_scores[pair][m], float("nan"),
                         float("nan"), chance[pair].get(m, float("nan")), higher[m], "random"))
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for col in ("value", "noise_floor", "random_baseline", "chance"):
        frame[col] = frame[col].astype(np.float64)
    return frame


def _subseed(seed: int, *parts: int) -> int:
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1)[0])


# ============================================================================ studies
def compare_elsa_runs(
    embeddings: Mapping[str, np.ndarray],
    hps: Mapping[str, Mapping[str, Any]],
    k: int = 10,
    seed: int = 42,
    chunk_size: int = 2048,
    knn_queries: int | None = None,
) -> pd.DataFrame:
    """Compare every run with the first (the reference) on the same rows, plus seed pairs and random baselines.

    ``embeddings``: run id -> ``[n, d]`` (e.g. item embeddings); ``hps``: run id -> hyperparameters
    (seed pairs and the varied-parameter labels come from them). ``knn_queries``: number of
    seeded random query rows for the kNN overlap (None = every row; neighbours are always
    searched among all rows). Returns the long table described by :data:`RESULT_COLUMNS`.
    """
    ids = list(embeddings)
    if len(ids) < 2:
        raise ValueError(f"need at least two ELSA runs to compare, got {ids}; add elsa.extra_runs")
    ref = ids[0]
    n = len(embeddings[ref])
    for run in ids:
        _check_rows(embeddings[ref], embeddings[run])
    queries = None
    if knn_queries is not None and knn_queries < n:
        queries = np.sort(np.random.default_rng(seed).choice(n, knn_queries, replace=False))
    compared = [(ref, run) for run in ids[1:]]
    noise = seed_pairs({r: hps[r] for r in ids})
    knn = {}
    for run in progress(ids, desc="kNN per run"):
        log.info("kNN@%d of %s %s", k, run, embeddings[run].shape)
        knn[run] = knn_indices(embeddings[run], k, queries, chunk_size)
    scores = {}
    for pair in dict.fromkeys([*compared, *noise]):
        log.info("comparing %s with %s", *pair)
        scores[pair] = _dense_measures(embeddings[pair[0]], embeddings[pair[1]], knn[pair[0]], knn[pair[1]], seed)
    random_scores, chance = {}, {}
    for i, pair in enumerate(compared):
        rand = random_space(embeddings[pair[1]].shape, _subseed(seed, i))
        random_scores[pair] = _dense_measures(
            embeddings[pair[0]], rand, knn[pair[0]], knn_indices(rand, k, queries, chunk_size), seed
        )
        chance[pair] = dense_chance(n, embeddings[pair[0]].shape[1], embeddings[pair[1]].shape[1], k)
    return _assemble(compared, noise, scores, random_scores, chance, hps, DENSE_MEASURES)


def compare_sae_dictionaries(
    decoders: Mapping[str, np.ndarray],
    codes: Mapping[str, pd.DataFrame],
    hps: Mapping[str, Mapping[str, Any]],
    elsa_of: Mapping[str, str],
    user_embeddings: Mapping[str, np.ndarray] | None = None,
    threshold: float = 0.7,
    seed: int = 42,
) -> pd.DataFrame:
    """Compare every pair of SAE dictionaries, plus seed pairs and random baselines.

    ``decoders``: id -> ``decoder_w [h, d]``; ``codes``: id -> long-form codes (``user``,
    ``feature``, ``value``); ``elsa_of``: id -> the ELSA run it was trained on; pairs on different
    ELSA runs are aligned through ``user_embeddings`` (ELSA run -> ``[users, d]``) by
    :func:`orthogonal_map` on the SAE-standardised embeddings. Activations are compared over the
    users of either code table (codes of all users; a user missing from one table has a zero code).
    """
    ids = list(decoders)
    if len(ids) < 2:
        raise ValueError(f"need at least two SAE dictionaries to compare, got {ids}; widen the sae grid")
    compared = list(itertools.combinations(ids, 2))
    noise = seed_pairs({r: hps[r] for r in ids})
    rotations: dict[tuple[str, str], np.ndarray] = {}
    standardised = {}

    def rotation(a: str, b: str) -> np.ndarray | None:
        ea, eb = elsa_of[a], elsa_of[b]
        if ea == eb:
            return None
        if (ea, eb) not in rotations:
            if user_embeddings is None or ea not in user_embeddings or eb not in user_embeddings:
                raise ValueError(f"SAEs {a} and {b} sit on different ELSA runs; their user embeddings are needed to align them")
            for e in (ea, eb):
                if e not in standardised:
                    standardised[e] = standardise_rows(user_embeddings[e])
            log.info("aligning ELSA %s to %s (orthogonal Procrustes on standardised user embeddings)", ea, eb)
            rotations[(ea, eb)] = orthogonal_map(standardised[ea], standardised[eb])
        return rotations[(ea, eb)]

    def code_pair(a: str, b: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        # Every user is coded by both SAEs; one absent from a table has an all-zero code there.
        users = np.union1d(codes[a]["user"].to_numpy(), codes[b]["user"].to_numpy())
        return (codes_matrix(codes[a], users, len(decoders[a])), codes_matrix(codes[b], users, len(decoders[b])))

    scores, random_scores, chance = {}, {}, {}
    for i, pair in enumerate(progress(compared, desc="SAE pairs")):
        a, b = pair
        log.info("comparing dictionaries %s and %s", a, b)
        ca, cb = code_pair(a, b)
        rot = rotation(a, b)
        scores[pair] = compare_dictionaries(decoders[a], decoders[b], ca, cb, threshold, rot)
        sub = _subseed(seed, i)
        random_scores[pair] = compare_dictionaries(
            decoders[a], random_dictionary(*decoders[b].shape, sub), ca, shuffle_users(cb, sub), threshold, rot
        )
        chance[pair] = {}
    return _assemble(compared, noise, scores, random_scores, chance, hps, DICTIONARY_MEASURES)
