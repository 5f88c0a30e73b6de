"""exp6's measurement (science.md section 6): is W_Q^T W_K of every head built from a few shared
components, and does keeping variance keep the model working?

From the processed weights (no data):

* W_QK = W_Q[l,h]^T W_K[l,h] (d_head x d_head) per head; grouped-query models give a query head
  the key matrix of its group. Flattened and stacked over the N heads: X [N, d_head^2].
* A centred PCA of X (:mod:`semphase.pca`, the one threshold function), checked against a direct
  eigen-decomposition of the centred Gram matrix.
* The gauge question (science.md 6.7 i): the same PCA of the d_model x d_model forms
  W_Q W_K^T (unchanged by any change of basis of a head's query/key space), through their Gram
  matrix; and the original representation again after a random orthogonal change of basis per
  key/value group, to show how much its thresholds depend on the basis.
* Per-head reconstruction error at each K, its concentration in a few heads against a null of
  the same spectrum with random head loadings.

With forward passes on the held-out range (the budget's eval tokens after its first tokens,
disjoint from exp10's rank range), each a W_Q edit restored afterwards (:mod:`semphase.weights`,
:func:`semphase.sweeps.edited`):

* the reconstruction from K components for a grid of K (thresholds, the spec's points 100/130/140
  of 144 scaled to the model's head count, 1 and all);
* a random-subspace control: random K-dimensional subspaces of the span of the centred heads, at
  K(90 %) and the scaled 130;
* k-means (the original's: first 20 PCA coefficients, random_state 42, n_init 10) with every
  member's W_QK replaced by its cluster representative's, and a random partition of the same sizes
  as a control.

Intervals resample whole chunks of the held-out range (blocks when it has fewer than 8 chunks).
"""
from __future__ import annotations

import hashlib
import math
import time

import numpy as np
import torch

from ... import pca as pca_mod
from ... import sweeps
from ...ablation import BLOCK, AblationEngine
from ...errors import SemphaseError
from ...provenance import run_provenance
from ... import intervals
from ...stats import correlation, ppl
from ...weights import QueryWeights, bilinear_gram, inject, keys_per_head, qk_weights, random_gauge, w_qk

SPEC_HEADS = 144  # GPT-2 small's head count: the spec's K and k values are given for it
SPEC_POINTS = (100, 130, 140)  # the K of the spec's H test (science.md 6.8)
ORIGINAL_K_GRID = (1, 2, 3, 5, 8, 10, 16, 32, 64, 80, 100, 110, 120, 130, 140, 144)
ORIGINAL_KMEANS = (4, 8, 12, 16, 32, 64)
def _ci(per_chunk: np.ndarray) -> list[float]:
    """The cluster t interval of the mean of per-chunk values (semphase.intervals)."""
    iv = intervals.cluster_mean(per_chunk, unit="chunks")
    return [float(iv.low), float(iv.high)]


KMEANS_SEED = 42  # the original's random_state (science.md 0.8a)
KMEANS_INIT = 10
KMEANS_PCS = 20
TOP_HEADS = 10  # the spec's "10 worst heads" of 144
NULL_DRAWS = 1000
EDIT_KEY = {"edit": "additive W_Q injection W_Q + W_K (W_K^T W_K)^-1 delta^T, float64 solve", "version": 1}


def scaled(k: int, n: int, lo: int = 1) -> int:
    """The spec's ``k`` (given for 144 heads) for a model with ``n`` heads, within [lo, n]."""
    return int(min(n, max(lo, round(k * n / SPEC_HEADS))))


def _fingerprint(target: torch.Tensor) -> str:
    return hashlib.sha256(target.detach().to(torch.float64).contiguous().numpy().tobytes()).hexdigest()[:12]


class Exp6Weights:
    """The heads' W_Q, W_K and W_QK, the PCA and the targets of every edit."""

    def __init__(self, lm):
        self.lm = lm
        self.W_Q, self.W_K, self.kv_of = qk_weights(lm)
        self.L, self.H, self.dm, self.dh = self.W_Q.shape
        self.N = self.L * self.H
        self.K_head = keys_per_head(self.W_K, self.kv_of)
        self.W_QK = w_qk(self.W_Q, self.W_K, self.kv_of)  # [L, H, dh, dh]
        self.X = self.W_QK.reshape(self.N, self.dh * self.dh).numpy()
        self.pca = pca_mod.pca(self.X)

    def as_heads(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(X, dtype=torch.float64).reshape(self.L, self.H, self.dh, self.dh)

    def reconstruction(self, k: int) -> torch.Tensor:
        return self.as_heads(self.pca.reconstruct(k))

    def new_queries(self, target: torch.Tensor) -> tuple[int, dict[int, torch.Tensor]]:
        """(first changed layer, {layer: W_Q'}) for a target W_QK [L, H, dh, dh]."""
        changed = [l for l in range(self.L) if not torch.equal(target[l], self.W_QK[l])]
        if not changed:
            return self.L, {}
        Wq = inject(self.W_Q[changed], self.K_head[changed], target[changed])
        return changed[0], {l: Wq[i] for i, l in enumerate(changed)}


def _head_label(i: int, H: int) -> str:
    return f"L{i // H}H{i % H}"


def _top_share(err2: np.ndarray, m: int) -> float:
    total = err2.sum()
    return float(np.sort(err2)[::-1][:m].sum() / total) if total > 0 else float("nan")


def error_null(pca: pca_mod.PCA, k: int, m: int, draws: int, seed: int) -> np.ndarray:
    """The top-``m`` share of the reconstruction error at ``k`` when the discarded components keep
    their variances but load on the heads at random (orthonormal loadings, orthogonal to the mean,
    as a centred PCA's are): how concentrated the error is without idiosyncratic heads."""
    n = pca.scores.shape[0]
    s2 = pca.variance[k:] * (n - 1)  # squared singular values of the discarded components
    s2 = s2[s2 > 0]
    rng = np.random.default_rng([seed, 6])
    out = np.empty(draws)
    for d in range(draws):
        Z = rng.standard_normal((n, s2.size))
        Z -= Z.mean(axis=0)
        U = np.linalg.qr(Z)[0]
        out[d] = _top_share((U ** 2) @ s2, m)
    return out


def _kmeans(scores: np.ndarray, k: int) -> tuple[np.ndarray, list[int]]:
    """Labels and one representative per cluster (the member nearest to the centroid)."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, random_state=KMEANS_SEED, n_init=KMEANS_INIT).fit(scores)
    reps = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        dist = np.linalg.norm(scores[members] - km.cluster_centers_[c], axis=1)
        reps.append(int(members[np.argmin(dist)]))
    return km.labels_.astype(int), reps


def _replaced(X: np.ndarray, labels: np.ndarray, reps: list[int]) -> np.ndarray:
    """Every head's W_QK replaced by its cluster representative's."""
    return X[np.asarray(reps)[labels]]


def measure(ctx) -> dict:
    """The registry's entry point: exp6 on the session's model and budget."""
    rank = ctx.tokens()
    eval_ts = ctx.eval_tokens(rank)
    if eval_ts is None:
        raise SemphaseError(f"exp6 measures perplexity on the held-out range after the first {rank.n_tokens} tokens, but "
                            "the data hold less than one chunk after them; lower --tokens or --ctx, or use a longer text.")
    return measure_tokens(ctx.lm, eval_ts, ctx.budget, ctx.store, sweeps.Progress(ctx.progress), ctx.seed,
                          ctx.asserts_claims, rank)


def measure_tokens(lm, ts, budget, store, progress=None, seed: int = 0, asserts_claims: bool | None = None,
                   rank=None) -> dict:
    """exp6 on ``lm``: the weights' PCA, and perplexities on ``ts`` (the held-out range)."""
    from ...device import seed_everything

    seed_everything(seed)
    progress = progress or sweeps.Progress(False)
    wall = time.perf_counter()
    timing: dict[str, float] = {}
    t = time.perf_counter()
    W = Exp6Weights(lm)
    N, p = W.N, W.pca
    ratio = p.ratio
    th = p.thresholds()
    # the same thresholds by a direct eigen-decomposition (of the centred Gram matrix of the heads)
    direct_ratio, _ = pca_mod.pca_gram(W.X @ W.X.T)
    m = min(len(ratio), len(direct_ratio))
    direct = {"method": "eigenvalues of the centred Gram matrix X_c X_c^T (numpy eigh)",
              "thresholds": pca_mod.thresholds(direct_ratio),
              "max_abs_ratio_diff": float(np.abs(ratio[:m] - direct_ratio[:m]).max())}
    # the gauge question
    G = bilinear_gram(W.W_Q, W.W_K, W.kv_of)
    inv_ratio, _ = pca_mod.pca_gram(G)
    gq, gk = random_gauge(W.W_Q, W.W_K, W.kv_of, seed)
    gauged = pca_mod.pca(w_qk(gq, gk, W.kv_of).reshape(N, -1).numpy())
    timing["pca"] = time.perf_counter() - t

    pts = {str(k): scaled(k, N) for k in SPEC_POINTS}
    k130, k90 = pts["130"], th["0.9"]
    grid = set(th.values()) | set(pts.values()) | {1, N}
    if budget.original_grids:
        grid |= {scaled(k, N) for k in ORIGINAL_K_GRID}
    grid = sorted(grid)
    kvals = sorted({scaled(k, N) for k in ORIGINAL_KMEANS} - {N})
    scores20 = p.scores[:, :min(KMEANS_PCS, p.scores.shape[1])]

    # the edits, each with its target W_QK; ids carry a hash of the target
    targets: dict[str, object] = {}
    meta: dict[str, dict] = {}

    def add(label: str, make, info: dict) -> None:
        target = make()
        item = f"{label}-{_fingerprint(target)}"
        targets[item] = make
        meta[item] = dict(info, label=label)

    for k in grid:
        add(f"pca-K{k}", lambda k=k: W.reconstruction(k), {"kind": "pca", "K": k})
    rng = np.random.default_rng([seed, 61])
    n_span = max(1, N - 1)  # a centred PCA of N heads has at most N-1 components with variance
    span = p.components[:n_span]
    span_var = p.variance[:n_span]
    for k in sorted({min(k90, n_span), min(k130, n_span)}):
        for d in range(budget.weight_draws):
            Q = np.linalg.qr(rng.standard_normal((n_span, k)))[0]  # a random k-dim subspace of the span
            basis = Q.T @ span
            kept = float(((Q ** 2) * span_var[:, None]).sum())  # the variance this subspace keeps
            add(f"rand-K{k}-d{d}", lambda basis=basis: W.as_heads(p.project(basis)),
                {"kind": "random_subspace", "K": k, "draw": d, "variance_retained": kept / float(p.variance.sum())})
    clusters = {}
    for k in kvals:
        labels, reps = _kmeans(scores20, k)
        clusters[k] = (labels, reps)
        add(f"kmeans-k{k}", lambda labels=labels, reps=reps: W.as_heads(_replaced(W.X, labels, reps)),
            {"kind": "kmeans", "k": k, "n_replaced": int(N - k), "cluster_sizes": np.bincount(labels, minlength=k).tolist()})
    if kvals:
        kmax = kvals[-1]
        labels, _ = clusters[kmax]
        for d in range(budget.weight_draws):
            perm = rng.permutation(labels)
            reps = [int(rng.choice(np.flatnonzero(perm == c))) for c in range(kmax)]
            add(f"partition-k{kmax}-d{d}", lambda perm=perm, reps=reps: W.as_heads(_replaced(W.X, perm, reps)),
                {"kind": "random_partition", "k": kmax, "draw": d})

    qw = QueryWeights(lm)
    check: dict = {}

    def edit(item: str):
        target = targets[item]()
        start, new = W.new_queries(target)
        return start, qw.edited(new)

    engine = AblationEngine(lm)
    t = time.perf_counter()
    base_blocks = sweeps.baseline(engine, ts, store, progress)
    fwd = time.perf_counter()
    engine.forward_nll(ts.chunks[0])
    forward_seconds = time.perf_counter() - fwd
    items = list(targets)
    blocks = sweeps.edited(engine, ts, store, "exp6-wq", EDIT_KEY, items, edit, "exp6 W_Q edits", progress)
    timing["forwards"] = time.perf_counter() - t
    restored = qw.is_original()

    # the injection, read back from the live weights: W_Q'^T W_K against the target
    for item in items:
        if meta[item]["kind"] == "pca" and meta[item]["K"] in (k130, N):
            target = targets[item]()
            start, new = W.new_queries(target)
            with qw.edited(new):
                live = torch.stack([lm.bridge.blocks[l].attn.W_Q.detach().to("cpu", torch.float64) for l in range(W.L)])
            got = w_qk(live, W.W_K, W.kv_of)
            rel = (torch.linalg.matrix_norm(got - target) / torch.linalg.matrix_norm(target).clamp_min(1e-300)).max()
            check[f"K{meta[item]['K']}"] = {"injected_qk_rel_error_max": float(rel),
                                            "max_abs_wq_change_over_max_abs_wq": float((live - W.W_Q).abs().max()
                                                                                       / W.W_Q.abs().max())}
    restored = restored and qw.is_original()

    cnt = sweeps.counts(ts)
    base = float(ppl(base_blocks, cnt))
    item_ppl = ppl(blocks, cnt)
    # intervals over chunks (semphase.intervals: a cluster t on G - 1 df, coverage measured by simulation)
    chunk_nll = np.asarray(blocks).sum(axis=-1)  # [item, chunk]
    base_nll = np.asarray(base_blocks).sum(axis=-1)  # [chunk]
    chunk_cnt = np.full(ts.n_chunks, float(np.sum(cnt)))
    ratio_iv = intervals.ppl_ratio(chunk_nll, base_nll, chunk_cnt, unit="chunks")
    unit = f"chunks ({ts.n_chunks} chunks; {ratio_iv.method})"
    col = {item: i for i, item in enumerate(items)}
    ratio_lo, ratio_hi = np.atleast_1d(ratio_iv.low), np.atleast_1d(ratio_iv.high)

    def rec(item: str) -> dict:
        i = col[item]
        return {"perplexity": float(item_ppl[i]), "ratio": float(item_ppl[i] / base),
                "ratio_ci95": [float(ratio_lo[i]), float(ratio_hi[i])]}

    cum = p.cumvar
    def cv(k: int) -> float:
        return float(cum[min(k, len(cum)) - 1])

    ev: dict = {
        "experiment": "exp6", "model": lm.name, "tag": lm.tag, "budget": budget.name,
        "budget_description": budget.description,
        "asserts_claims": budget.asserts_claims if asserts_claims is None else asserts_claims, "seed": seed,
        "n_layers": W.L, "n_heads": W.H, "n_kv_heads": int(W.W_K.shape[1]), "d_model": W.dm, "d_head": W.dh,
        "n_heads_total": N, "kv_of": W.kv_of, "grouped_query": int(W.W_K.shape[1]) != W.H,
        "representation": ("W_QK = W_Q[l,h]^T W_K[l,h] (d_head x d_head) from the processed weights"
                           + ("; grouped-query attention: query head h uses the key matrix of its group h // "
                              f"{W.H // int(W.W_K.shape[1])} ({int(W.W_K.shape[1])} key/value heads per layer)"
                              if int(W.W_K.shape[1]) != W.H else "")),
        "data": ts.describe(), "rank_range": rank.describe() if rank is not None else None,
        "n_tokens": ts.n_tokens, "n_predicted": ts.n_predicted,
        "pca": {"W_flat_shape": [N, W.dh * W.dh], "method": "centred PCA by the SVD of the centred data, float64",
                "explained_variance_ratio": ratio.tolist(), "cumulative_variance": cum.tolist(), "thresholds": th,
                "top3": ratio[:3].tolist(), "direct_eigen": direct},
        "gauge": {
            "invariant": {"representation": "W_Q W_K^T (d_model x d_model) per head, flattened; PCA through the Gram "
                                            "matrix of the heads' bilinear forms",
                          "explained_variance_ratio": inv_ratio.tolist(), "thresholds": pca_mod.thresholds(inv_ratio),
                          "top3": inv_ratio[:3].tolist()},
            "random_gauge": {"seed": seed, "thresholds": gauged.thresholds(), "top3": gauged.ratio[:3].tolist(),
                             "what": "the original representation W_Q^T W_K after W_Q -> W_Q R, W_K -> W_K R with R a "
                                     "random orthogonal matrix per (layer, key/value group)"},
        },
        "scaled_points": pts, "scaling": f"the spec's K for 144 heads times {N}/144, rounded",
        "baseline_ppl": base, "interval_unit": unit, "interval_method": ratio_iv.method,
        # per-chunk summed NLLs, so that a changed interval rule re-evaluates without measuring
        "chunk_nll": {"counts": chunk_cnt.tolist(), "baseline": base_nll.tolist(),
                      "items": {item: chunk_nll[col[item]].tolist() for item in items}},
        "forward_seconds_per_chunk": forward_seconds,
    }
    ev["K_values"] = {}
    for item in items:
        if meta[item]["kind"] == "pca":
            k = meta[item]["K"]
            ev["K_values"][str(k)] = dict(rec(item), cumvar=cv(k), item=item)
    kall = ev["K_values"][str(N)]
    ev["K_all_verification"] = {"perplexity": kall["perplexity"], "abs_rel_diff": abs(kall["ratio"] - 1.0)}

    rs: dict = {}
    for item in items:
        if meta[item]["kind"] == "random_subspace":
            k = meta[item]["K"]
            rs.setdefault(str(k), {"K": k, "pca_ratio": ev["K_values"].get(str(k), {}).get("ratio"),
                                   "pca_cumvar": cv(k), "draws": []})
            rs[str(k)]["draws"].append(dict(rec(item), variance_retained=meta[item]["variance_retained"]))
    ev["random_subspace"] = rs

    # damage per unit of discarded variance: low-variance (130 -> 140) vs high-variance (100 -> 130) components
    def lnr(k: int):
        i = col[next(it for it in items if meta[it]["kind"] == "pca" and meta[it]["K"] == k)]
        # per chunk: the log PPL ratio of that chunk (equal predicted tokens per chunk, so their mean is the
        # log ratio of sums); slopes and margins are linear in them, their intervals a cluster t over chunks
        return float(np.log(item_ppl[i] / base)), (chunk_nll[i] - base_nll) / chunk_cnt

    k100, k140 = pts["100"], pts["140"]
    if len({k100, k130, k140}) == 3 and cv(k140) > cv(k130) > cv(k100):
        (l100, b100), (l130, b130), (l140, b140) = lnr(k100), lnr(k130), lnr(k140)
        dv_low, dv_high = cv(k140) - cv(k130), cv(k130) - cv(k100)
        low, high = (l130 - l140) / dv_low, (l100 - l130) / dv_high
        blow, bhigh = (b130 - b140) / dv_low, (b100 - b130) / dv_high
        ev["damage_per_variance"] = {
            "points": [k100, k130, k140], "cumvar": [cv(k100), cv(k130), cv(k140)],
            "slope_low": low, "slope_low_ci95": _ci(blow),
            "slope_high": high, "slope_high_ci95": _ci(bhigh),
            "margin": low - 3 * high, "margin_ci95": _ci(blow - 3 * bhigh),
            "slope_ratio": low / high if high != 0 else float("inf"),
            "definition": "slope = drop of ln(PPL ratio) per unit of cumulative variance fraction added; low: "
                          f"K {k130} -> {k140}, high: K {k100} -> {k130}; margin = low - 3 x high"}
    else:
        ev["damage_per_variance"] = {"points": [k100, k130, k140], "cumvar": [cv(k100), cv(k130), cv(k140)],
                                     "note": "the three points do not add variance in order on this model"}

    # per-head reconstruction error
    Xn = np.linalg.norm(W.X, axis=1)
    per_k = {}
    for k in grid:
        err = W.X - p.reconstruct(k)
        e2 = (err ** 2).sum(axis=1)
        per_k[str(k)] = {"relative": (np.sqrt(e2) / np.maximum(Xn, 1e-300)).tolist(), "squared": e2.tolist()}
    mtop = scaled(TOP_HEADS, N)
    e2 = np.asarray(per_k[str(k130)]["squared"])
    share = _top_share(e2, mtop)
    null = error_null(p, k130, mtop, NULL_DRAWS if budget.asserts_claims else 200, seed)
    order = np.argsort(e2)[::-1]
    ev["head_error"] = {
        "K": k130, "top_m": mtop, "top_share": share,
        "null": {"q95": float(np.quantile(null, 0.95)), "median": float(np.median(null)), "draws": int(null.size),
                 "p_value": float((1 + np.sum(null >= share)) / (1 + null.size)),
                 "what": "the discarded components' variances with random orthonormal head loadings"},
        "worst": [{"head": _head_label(int(i), W.H), "layer": int(i // W.H), "relative": per_k[str(k130)]["relative"][i],
                   "share": float(e2[i] / e2.sum())} for i in order[:mtop]],
        "layer_share": [float(e2[l * W.H:(l + 1) * W.H].sum() / e2.sum()) for l in range(W.L)],
        "per_K": per_k,
    }

    # clustering
    km = {}
    for item in items:
        if meta[item]["kind"] == "kmeans":
            k = meta[item]["k"]
            km[str(k)] = dict(rec(item), n_clusters=k, n_replaced=meta[item]["n_replaced"],
                              cluster_sizes=meta[item]["cluster_sizes"])
    cl_cols = [col[it] for it in items if meta[it]["kind"] == "kmeans"]
    import sklearn

    ev["kmeans"] = {"package": f"scikit-learn {sklearn.__version__}", "n_pcs": int(scores20.shape[1]),
                    "random_state": KMEANS_SEED, "n_init": KMEANS_INIT,
                    "k_values": km, "k_grid_scaled_from": list(ORIGINAL_KMEANS)}
    if cl_cols:
        ev["kmeans"]["min_ratio"] = float(min(item_ppl[cl_cols]) / base)
        # the interval of a minimum over k: from the smallest lower end to the smallest upper end (it holds
        # whenever every k's interval does)
        ev["kmeans"]["min_ratio_ci95"] = [float(ratio_lo[cl_cols].min()), float(ratio_hi[cl_cols].min())]
        kmax = kvals[-1]
        ev["kmeans"]["view"] = {"k": kmax, "pc1": p.scores[:, 0].tolist(),
                                "pc2": p.scores[:, 1].tolist() if p.scores.shape[1] > 1 else [0.0] * N,
                                "labels": clusters[kmax][0].tolist(), "representatives": clusters[kmax][1]}
        ev["random_partition"] = {"k": kmax, "draws": [rec(it) for it in items if meta[it]["kind"] == "random_partition"],
                                  "what": "heads assigned at random to clusters of the k-means sizes, a random member "
                                          "as representative"}
    ratios_all = [float(x) / base for x in item_ppl]
    ev["invariants"] = {
        "K_all_abs_rel_diff": ev["K_all_verification"]["abs_rel_diff"],
        "injection": check,
        "injected_qk_rel_error_max": max((c["injected_qk_rel_error_max"] for c in check.values()), default=float("nan")),
        "wq_change_at_K_all": check.get(f"K{N}", {}).get("max_abs_wq_change_over_max_abs_wq"),
        "weights_restored": bool(restored),
        "thresholds_agree_with_eigen": th == direct["thresholds"],
        "n_items": len(items), "n_finite_ratios": int(sum(math.isfinite(r) for r in ratios_all)),
    }
    ev["items"] = [dict(meta[it], item=it) for it in items]
    ev["timing"] = dict(timing, total=time.perf_counter() - wall)
    ev["engine_forwards"] = engine.forwards
    ev["provenance"] = run_provenance(lm, ts, seed, ev["timing"]["total"], store)
    return ev


def attach_importance(ev: dict, fetch) -> None:
    """The session's hand-off for C10 (the registry's ``Need``): exp10's single-head zero-ablation
    ΔPPL on its rank range (part a alone, no held-out range), correlated with each head's
    reconstruction error. Informative: the spec sets no threshold (science.md 6.8)."""
    he = ev.get("head_error")
    if he is None:
        return
    exp10, why = fetch()
    if exp10 is None or not (exp10.get("zero") or {}).get("heads"):
        he["importance"] = {"missing": why or "exp10 measured no single-head zero-ablation on this model"}
        return
    H = ev["n_heads"]
    delta = np.full(ev["n_heads_total"], np.nan)
    for row in exp10["zero"]["heads"]:
        delta[row["layer"] * H + row["head"]] = row["delta_ppl"]
    ok = np.isfinite(delta)
    out = {"source": f"exp10 part a on {exp10['model']}: single-head zero-ablation ΔPPL on its rank range "
                     f"(tokens {exp10['data'].get('token_range')}), measured through the session",
           "n_heads": int(ok.sum()), "delta_ppl": [float(x) if np.isfinite(x) else None for x in delta]}
    if ok.sum() >= 3:
        for k, e in he["per_K"].items():
            rel = np.asarray(e["relative"])[ok]
            out.setdefault("per_K", {})[k] = correlation(rel, delta[ok])
        out.update(out["per_K"][str(he["K"])])
        out["worst_heads_delta_ppl"] = {w["head"]: float(delta[w["layer"] * H + int(w["head"].split("H")[1])])
                                        for w in he["worst"]}
        top = np.argsort(np.where(ok, delta, -np.inf))[::-1][:he["top_m"]]
        worst = {w["layer"] * H + int(w["head"].split("H")[1]) for w in he["worst"]}
        out["overlap_worst_and_most_important"] = int(len(worst & set(int(i) for i in top)))
    he["importance"] = out
