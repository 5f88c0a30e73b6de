"""exp7's measurement (science.md section 7): the blocks' residual updates
delta-phi(l) = resid_post(l) - resid_pre(l), per token position, and their attention and MLP parts
(hook_attn_out, hook_mlp_out; delta-phi is their sum, checked).

Two samples of positions:

* the robust protocol (science.md 7.7): ``budget.pca_chunks`` chunks drawn at random (seeded) from
  the whole split, ``budget.pca_positions`` positions drawn at random in each from positions
  1..ctx-1; position 0 of every drawn chunk is kept apart, so that every statistic exists with it
  excluded (the default) and added back (the control);
* the original protocol (science.md 7.3): positions 0-999 of the split's first chunk, position 0
  included, as the original collected them (the reproduction tests read it).

For each block, each quantity (delta-phi, attention, MLP) and each sample: the norms, a centred
PCA and its thresholds K(50/80/90/95 %) (:mod:`semphase.pca`). Intervals of the robust
thresholds resample the drawn chunks (a cluster bootstrap over per-chunk moments; each replicate
is one eigen-decomposition), for the blocks the claims read. The shared basis (7C): the PCA of all
blocks' delta-phi stacked, raw (the original's, dominated by the largest-norm block) and with each
block scaled to unit mean squared norm (the spec's fix), and how well it rebuilds each block
against the block's own PCA at equal K.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ... import hooks
from ... import pca as pca_mod
from ...errors import SemphaseError
from ...provenance import run_provenance
from ...stats import MIN_CLUSTERS, basic_interval, bootstrap_weights, interval

QUANTITIES = ("delta_phi", "attn", "mlp")
ORIGINAL_POSITIONS = 1000  # the original's max_samples: positions 0-999 of the first chunk
SHARED_K = (8, 16, 32, 64, 128, 256)
CUMVAR_KEEP = 256  # components of each cumulative-variance curve kept in the evidence


def mid_layers(L: int) -> list[int]:
    """Blocks 3-8 of GPT-2's 12 (science.md 7.8), as fractions of depth: 3/12 <= l/L <= 8/12."""
    return [l for l in range(L) if 12 * l >= 3 * L and 12 * l <= 8 * L]


def attn_layers(L: int) -> list[int]:
    """Blocks 3-10 of GPT-2's 12 (science.md 7.8): 3/12 <= l/L <= 10/12."""
    return [l for l in range(L) if 12 * l >= 3 * L and 12 * l <= 10 * L]


def rank_bound(d_model: int, k: int) -> int:
    """The spec's bound ``k`` of 768 dimensions, for this width."""
    return math.ceil(k * d_model / 768)


class Collector:
    """The three quantities of every block at chosen positions of one chunk, float32, layer-major."""

    def __init__(self, lm):
        self.lm = lm

    def run(self, chunk: torch.Tensor, positions: torch.Tensor) -> tuple[dict[str, torch.Tensor], float]:
        """({quantity: [L, len(positions), d]}, max |delta-phi - attn - mlp| / mean |delta-phi|)."""
        L = self.lm.n_layers
        got: dict[str, list] = {k: [None] * L for k in ("pre", "post", "attn", "mlp")}
        pos = positions.to(self.lm.device)

        def keep(kind, layer):
            def hook(x, hook=None):
                got[kind][layer] = x[0, pos].detach().to("cpu", torch.float32)
                return x
            return hook

        fwd = []
        for l in range(L):
            fwd += [(hooks.resid_pre(l), keep("pre", l)), (hooks.resid_post(l), keep("post", l)),
                    (hooks.attn_out(l), keep("attn", l)), (hooks.mlp_out(l), keep("mlp", l))]
        with torch.no_grad():
            self.lm.bridge.run_with_hooks(chunk.view(1, -1).to(self.lm.device), fwd_hooks=fwd, use_cache=False)
        dphi = torch.stack(got["post"]) - torch.stack(got["pre"])
        attn, mlp = torch.stack(got["attn"]), torch.stack(got["mlp"])
        err = float((dphi - attn - mlp).abs().max() / dphi.norm(dim=-1).mean().clamp_min(1e-30))
        return {"delta_phi": dphi, "attn": attn, "mlp": mlp}, err


def _norms(X: torch.Tensor) -> dict:
    n = X.norm(dim=-1).to(torch.float64)
    return {"mean": float(n.mean()), "std": float(n.std()) if n.numel() > 1 else 0.0}


def _cum(ratio: np.ndarray) -> list[float]:
    return np.cumsum(ratio)[:CUMVAR_KEEP].tolist()


def _reconstruction(X: torch.Tensor, mean: torch.Tensor, U: torch.Tensor, ks: list[int]) -> dict[str, dict]:
    """How well the first K columns of the orthonormal basis ``U`` (descending variance) and the
    mean rebuild each sample: mean cosine(original, rebuilt), mean |error| and relative L2 =
    mean |error| / mean |original| (the original's 7C metrics), for each K."""
    X = X.to(torch.float64)
    y = (X - mean) @ U  # centred coordinates [n, d]
    m = mean @ U  # the mean's coordinates [d]
    orig_norm = X.norm(dim=1)
    y2 = y ** 2
    tail = y2.flip(1).cumsum(1).flip(1)  # sum_{j >= k} y_j^2, [n, d]
    head_my = (m * y).cumsum(1)  # sum_{j < k} m_j y_j
    all_my = (m * y).sum(1)
    head_y2 = y2.cumsum(1)
    m2 = float((m ** 2).sum())
    head_m2 = (m ** 2).cumsum(0)
    mp = (m[None, :] + y) ** 2
    head_mp = mp.cumsum(1)
    out = {}
    d = y.shape[1]
    for k in ks:
        k = min(k, d)
        err = tail[:, k].sqrt() if k < d else torch.zeros_like(orig_norm)
        dot = m2 + head_my[:, k - 1] + all_my + head_y2[:, k - 1]
        rec_norm = (head_mp[:, k - 1] + (m2 - float(head_m2[k - 1]))).clamp_min(0).sqrt()
        cos = dot / (orig_norm * rec_norm).clamp_min(1e-30)
        out[str(k)] = {"cos_sim": float(cos.mean()), "l2_error": float(err.mean()),
                       "relative_l2": float(err.mean() / orig_norm.mean().clamp_min(1e-30))}
    return out


def _eig(cov: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    c = torch.as_tensor(cov, dtype=torch.float64)
    lam, U = torch.linalg.eigh((c + c.T) / 2)
    order = torch.argsort(lam, descending=True)
    return pca_mod.ratio_from_variances(lam.numpy()), U[:, order]


def measure(ctx) -> dict:
    """The registry's entry point: exp7 on the session's model and budget."""
    from ... import sweeps

    split = ctx.split_tokens()
    return measure_tokens(ctx.lm, split, ctx.budget, ctx.seed, ctx.asserts_claims, sweeps.Progress(ctx.progress),
                          store=ctx.store)


def measure_tokens(lm, split, budget, seed: int = 0, asserts_claims: bool | None = None, progress=None,
                   store=None) -> dict:
    """exp7 on ``lm`` over ``split`` (every chunk of the split at the budget's length). ``store``: the evidence
    cache, where each PCA rank's bootstrap (the costly step: one eigen-decomposition per replicate) is kept per
    quantity and block as it finishes, so that an interrupted exp7 resumes with them (its forwards, about a
    quarter of its time, are measured again: a chunk's samples are about 100 MB)."""
    from ... import sweeps
    from ...cache import EvidenceStore
    from ...cores import rebalance
    from ...device import seed_everything

    seed_everything(seed)
    progress = progress or sweeps.Progress(False)
    wall = time.perf_counter()
    L, d, T = lm.n_layers, lm.d_model, split.ctx
    if T < 3:
        raise SemphaseError(f"exp7 samples positions 1..ctx-1 of each chunk; --ctx {T} leaves too few, use 128 or more.")
    rng = np.random.default_rng([seed, 7])
    n_chunks = min(budget.pca_chunks, split.n_chunks)
    chunk_ids = sorted(int(c) for c in rng.choice(split.n_chunks, size=n_chunks, replace=False))
    P = min(budget.pca_positions, T - 1)
    positions = [np.sort(rng.choice(np.arange(1, T), size=P, replace=False)) for _ in chunk_ids]
    col = Collector(lm)
    samples = {q: torch.empty(L, n_chunks * P, d) for q in QUANTITIES}
    first = {q: torch.empty(L, n_chunks, d) for q in QUANTITIES}  # position 0 of each drawn chunk
    identity = 0.0
    t = time.perf_counter()
    with progress.bar(n_chunks + 1, "exp7 residual updates") as bar:
        for i, c in enumerate(chunk_ids):
            rebalance()
            pos = torch.as_tensor(np.concatenate([[0], positions[i]]))
            got, err = col.run(split.chunks[c], pos)
            identity = max(identity, err)
            for q in QUANTITIES:
                samples[q][:, i * P:(i + 1) * P] = got[q][:, 1:]
                first[q][:, i] = got[q][:, 0]
            bar.update()
        n_orig = min(ORIGINAL_POSITIONS, T)
        orig, err = col.run(split.chunks[0], torch.arange(n_orig))
        identity = max(identity, err)
        bar.update()
    forward_seconds = (time.perf_counter() - t) / (n_chunks + 1)
    units = np.repeat(np.arange(n_chunks), P)
    timing = {"forwards": time.perf_counter() - t}

    t = time.perf_counter()
    mids, attn_range = mid_layers(L), attn_layers(L)
    weights = bootstrap_weights(n_chunks, budget.pca_boot, seed)
    unit = (f"chunks ({n_chunks} drawn chunks, cluster bootstrap; basic interval)" if n_chunks >= MIN_CLUSTERS else
            f"chunks (only {n_chunks}: fewer than {MIN_CLUSTERS}, the interval is not meaningful)")
    robust: dict = {q: {"norms": [], "norms_position0": [], "thresholds": [], "thresholds_with_position0": [],
                        "cumvar": []} for q in QUANTITIES}
    orig_ev: dict = {q: {"norms": [], "thresholds": [], "cumvar": []} for q in QUANTITIES}
    layer_moments = []  # delta-phi's moments per block, summed over chunks (the shared basis reads them)
    one = np.zeros(n_chunks * P, dtype=int)
    for l in range(L):
        for q in QUANTITIES:
            X = samples[q][l]
            M = pca_mod.Moments.of(X, one)
            ratio = M.ratio()
            r = robust[q]
            r["norms"].append(_norms(X))
            r["norms_position0"].append(_norms(first[q][l]))
            r["thresholds"].append(pca_mod.thresholds(ratio))
            r["cumvar"].append(_cum(ratio))
            M0 = pca_mod.Moments.of(first[q][l], np.zeros(n_chunks, dtype=int))
            r["thresholds_with_position0"].append(pca_mod.thresholds(M.plus(M0).ratio()))
            if q == "delta_phi":
                layer_moments.append(M)
            o = orig_ev[q]
            Xo = orig[q][l]
            o["norms"].append(_norms(Xo))
            o_ratio = pca_mod.Moments.of(Xo, np.zeros(Xo.shape[0], dtype=int)).ratio()
            o["thresholds"].append(pca_mod.thresholds(o_ratio))
            o["cumvar"].append(_cum(o_ratio))
    bound_small = rank_bound(d, 20)
    singular = [l for l in range(L - 1) if orig_ev["delta_phi"]["thresholds"][l]["0.9"] <= bound_small]
    boot_layers = {"delta_phi": sorted(set(mids) | set(singular)), "attn": attn_range, "mlp": attn_range}
    reps: dict[str, dict[int, np.ndarray]] = {q: {} for q in QUANTITIES}
    entry = (store or EvidenceStore(None)).entry("exp7-pca-bootstrap", dict(
        sweeps.base_key(lm, split), chunk_ids=chunk_ids, positions=[p.tolist() for p in positions],
        pca_boot=int(budget.pca_boot), seed=int(seed)))
    n_boot_units = sum(len(v) for v in boot_layers.values())
    have = sum(1 for q, layers in boot_layers.items() for l in layers if entry.has(f"{q}_L{l}"))
    if have:
        progress.say(f"exp7 bootstrap of PCA ranks: {have} of {n_boot_units} units cached (read back), "
                     f"{n_boot_units - have} to compute; the forwards before them are measured again")
    with entry.lock(), progress.bar(n_boot_units, "exp7 bootstrap of PCA ranks") as bar:
        for q, layers in boot_layers.items():
            for l in layers:
                def replicates(q=q, l=l):
                    M = pca_mod.Moments.of(samples[q][l], units)  # per chunk, for the resampling
                    return M.threshold_replicates(weights)[:, pca_mod.LEVELS.index(0.9)].tolist()
                reps[q][l] = np.asarray(entry.get_or_compute(f"{q}_L{l}", replicates), dtype=np.int64)
                rebalance()
                bar.update()
    for q in QUANTITIES:
        robust[q]["k90_ci95"] = {str(l): list(basic_interval(robust[q]["thresholds"][l]["0.9"], v))
                                 for l, v in reps[q].items()}
        robust[q]["k90_ci95_percentile"] = {str(l): list(interval(v)) for l, v in reps[q].items()}
    timing["pca"] = time.perf_counter() - t

    # the claims' statistics, with paired intervals (every layer resampled with the same chunks)
    def k90(q, l):
        return robust[q]["thresholds"][l]["0.9"]

    stats: dict = {}
    if mids:
        vals = [k90("delta_phi", l) for l in mids]
        stats["not_lowrank"] = {
            "layers": mids, "bound": rank_bound(d, 150), "min_k90": int(min(vals)),
            "argmin": mids[int(np.argmin(vals))],
            "min_k90_ci95": list(basic_interval(min(vals), np.min([reps["delta_phi"][l] for l in mids], axis=0))),
            "min_k90_with_position0": int(min(robust["delta_phi"]["thresholds_with_position0"][l]["0.9"] for l in mids)),
            "min_k90_original_protocol": int(min(orig_ev["delta_phi"]["thresholds"][l]["0.9"] for l in mids))}
    stats["position0"] = {"bound": bound_small, "singular_original": singular,
                          "k90_original": {str(l): orig_ev["delta_phi"]["thresholds"][l]["0.9"] for l in singular},
                          "k90_excluded": {str(l): k90("delta_phi", l) for l in singular},
                          "k90_with_position0": {str(l): robust["delta_phi"]["thresholds_with_position0"][l]["0.9"]
                                                 for l in singular}}
    if singular:
        vals = [k90("delta_phi", l) for l in singular]
        stats["position0"].update({"min_k90_excluded": int(min(vals)), "min_k90_excluded_ci95": list(basic_interval(
            min(vals), np.min([reps["delta_phi"][l] for l in singular], axis=0)))})
    if attn_range:
        diff = [k90("attn", l) - k90("mlp", l) for l in attn_range]
        stats["attn_vs_mlp"] = {
            "layers": attn_range, "max_diff": int(max(diff)), "argmax": attn_range[int(np.argmax(diff))],
            "max_diff_ci95": list(basic_interval(max(diff), np.max([reps["attn"][l] - reps["mlp"][l] for l in attn_range],
                                                                   axis=0))),
            "n_lower": int(sum(x < 0 for x in diff)),
            "ratio_attn_over_mlp": [k90("attn", l) / max(k90("mlp", l), 1) for l in range(L)]}

    # the shared basis (7C): raw and with each block scaled to unit mean squared norm
    t = time.perf_counter()
    shared: dict = {"K": [k for k in SHARED_K if k <= d] or [d]}
    ms = [layer_moments[l] for l in range(L)]
    msq = [float(np.trace(m.s2.sum(0)) / m.n.sum()) for m in ms]  # mean squared norm per block
    for variant, scale in (("raw", [1.0] * L), ("normalised", [1 / math.sqrt(max(x, 1e-30)) for x in msq])):
        n = sum(float(m.n.sum()) for m in ms)
        s1 = sum(a * m.s1.sum(0) for a, m in zip(scale, ms))
        s2 = sum(a * a * m.s2.sum(0) for a, m in zip(scale, ms))
        cov = (s2 - np.outer(s1, s1) / n) / (n - 1)
        ratio, U = _eig(cov)
        mean = torch.as_tensor(s1 / n)
        shared[variant] = {"thresholds": pca_mod.thresholds(ratio), "cumvar": _cum(ratio),
                           "eval": {str(l): _reconstruction(samples["delta_phi"][l] * scale[l], mean, U, shared["K"])
                                    for l in range(L)}}
    own = {}
    for l in range(L):
        M = ms[l]
        ratio, U = _eig(M.cov())
        own[str(l)] = _reconstruction(samples["delta_phi"][l], torch.as_tensor(M.s1.sum(0) / M.n.sum()), U, shared["K"])
    shared["individual"] = {"eval": own}
    for variant in ("raw", "normalised", "individual"):
        ev_ = shared[variant]["eval"]
        shared[variant]["mean_over_layers"] = {
            str(k): {m: float(np.mean([ev_[str(l)][str(k)][m] for l in range(L)])) for m in ("cos_sim", "relative_l2")}
            for k in shared["K"]}
    timing["shared"] = time.perf_counter() - t

    ev = {
        "experiment": "exp7", "model": lm.name, "tag": lm.tag, "budget": budget.name,
        "budget_description": budget.description,
        "asserts_claims": budget.asserts_claims if asserts_claims is None else asserts_claims, "seed": seed,
        "n_layers": L, "d_model": d, "data": split.describe(), "n_tokens": (n_chunks + 1) * T,  # tokens run
        "split_tokens": split.n_tokens,
        "sampling": {"robust": {"n_chunks": n_chunks, "chunk_ids": chunk_ids, "positions_per_chunk": P,
                                "n_samples": n_chunks * P, "position0": "kept apart: excluded from every robust "
                                "statistic, added back in the *_with_position0 control", "seed": seed},
                     "original": {"chunk": 0, "positions": [0, n_orig - 1], "n_samples": n_orig}},
        "identity_max_rel_error": identity, "interval_unit": unit, "n_boot": int(budget.pca_boot),
        "robust": robust, "original": orig_ev, "stats": stats, "shared": shared, "mean_sq_norm": msq,
        "forward_seconds_per_chunk": forward_seconds,
    }
    ev["timing"] = dict(timing, total=time.perf_counter() - wall)
    ev["provenance"] = run_provenance(lm, split, seed, ev["timing"]["total"])
    return ev
