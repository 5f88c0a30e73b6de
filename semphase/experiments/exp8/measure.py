"""exp8A/B/C (science.md section 8; claims C13-C15): is π in g(l/L) or in the residual stream?

* **8A** (part a): the erf width σ of exp3's g_mean(l/L) (erf(x/(σ√2)), p0 0.5, σ in [0.01, 10]),
  the original's likelihood-ratio test of σ = 1/√π (χ² = n ln(RSS_fixed/RSS_free), df 1), the
  profile-likelihood interval, and a bootstrap interval from exp3's two-stage replicates of g_mean
  (words with replacement, then prompts within levels): σ is refitted to each replicate. Which
  constants (1/√π and its competitors 0.5, 0.55, 1/√3, 0.6) each interval contains.
* **8B** (part b): the four π-shaped curves (two with 0 parameters) and exp3ef's five models fitted
  to g_mean and ranked by BIC (n ln(RSS/n) + k ln n, parameters counted as fitted); the share of
  bootstrap replicates whose BIC winner is a 0-parameter π model; ΔBIC(cos_pi_0p − erf) for exp9.
* **8C** (part c): per token position, θ(l) = arccos(cos(v_l, v_{l+1})) with v_0 =
  resid_pre(block 0), v_{l+1} = resid_post(block l), and the path length Θ = Σ_l θ(l), on WikiText
  tokens (the test split, as the original, unless --split). The original's sample (positions 0-499
  of the first chunk) for the reproduction test; the held-out range after the rank range for the
  hypothesis test, with cluster t intervals over chunks (semphase.intervals). Every
  statistic is given with and without each chunk's position 0 (its first token has an outlier
  norm): the control.

g_mean and its replicates come from exp3 on the same model, measured through the session.
"""
from __future__ import annotations

import math
import time

import numpy as np
from ... import fits
from ...data import TokenSet
from ...errors import SemphaseError
from ...provenance import base_provenance
from ...rotation import rotation_angles
from ... import intervals
from ...stats import N_BOOT, interval
from ...sweeps import Progress, base_key

SIGMA_PI = fits.SIGMA_PI
COMPETITORS = {"0.5": 0.5, "0.55": 0.55, "1/sqrt(3)": 1 / math.sqrt(3), "0.6": 0.6}
CONSTANTS = {"1/sqrt(pi)": SIGMA_PI, **COMPETITORS}
ZERO_PARAM_PI = ("cos_pi_0p", "sin_pi_0p")
BIC_REPLICATES = 200  # at most this many replicates refitted with all nine models for the winner's share (9 fits each)
ORIGINAL_POSITIONS = 500  # the original's 8C sample: positions 0-499 of test chunk 0
WITHIN = 0.1  # "Θ/π within 0.1 of an integer" (the original's criterion 3)


# -- 8A and 8B: fits of exp3's g(l/L) ----------------------------------------------------------------

def erf_sigma(x: np.ndarray, g: np.ndarray) -> float:
    res = fits.fit_model(fits.ERF_8A, x, g)
    return res.params["sigma"] if res.success else math.nan


def sigma_part(x: np.ndarray, g_mean: np.ndarray, g_boot: np.ndarray, unit: str) -> dict:
    """8A on g_mean, with the profile and bootstrap intervals of σ and the constants inside each."""
    lr = fits.lr_test_fixed_sigma(x, g_mean)
    prof = fits.erf_sigma_profile_ci(x, g_mean)
    boot = np.array([erf_sigma(x, gb) for gb in g_boot])
    ok = np.isfinite(boot)
    ci = interval(boot[ok]) if ok.any() else (math.nan, math.nan)

    def inside(iv):
        return {name: bool(iv[0] <= c <= iv[1]) for name, c in CONSTANTS.items()}

    in_boot, in_prof = inside(ci), inside(prof)
    return {
        "sigma_free": lr.sigma_free, "sigma_pi": SIGMA_PI, "diff_pct": lr.diff_pct,
        "rss_free": lr.rss_free, "rss_fixed": lr.rss_fixed, "chi2": lr.statistic, "p_value": lr.p_value,
        "r2_free": lr.r2_free, "r2_fixed": lr.r2_fixed, "n_points": lr.n, "lr_rejects_pi": lr.reject,
        "sigma_on_bound": bool(not fits.ERF_8A.lower[0] * 1.001 < lr.sigma_free < fits.ERF_8A.upper[0] * 0.999),
        "profile_ci95": list(prof), "boot_ci95": list(ci), "boot_unit": unit,
        "n_boot": int(len(boot)), "n_boot_failed": int((~ok).sum()),
        "boot_sigma_mean": float(np.nanmean(boot)) if ok.any() else math.nan,
        "boot_sigma_sd": float(np.nanstd(boot)) if ok.any() else math.nan,
        "constants": CONSTANTS, "inside_boot_ci": in_boot, "inside_profile_ci": in_prof,
        "pi_identified": bool(in_boot["1/sqrt(pi)"] and not any(in_boot[c] for c in COMPETITORS)),
        "rule": "1/√π is identified when it lies inside the bootstrap 95 % interval of σ and every "
                "competitor (0.5, 0.55, 1/√3, 0.6) lies outside",
    }


def _ranked(x: np.ndarray, g: np.ndarray) -> list:
    return fits.fit_all(x, g, {**fits.G_MODELS, **fits.PI_MODELS})


def pi_models_part(x: np.ndarray, g_mean: np.ndarray, g_boot: np.ndarray, unit: str) -> dict:
    """8B: nine models by BIC on g_mean, the winner's robustness over replicates, ΔBIC(cos − erf)."""
    ranked = _ranked(x, g_mean)
    by = {r.model: r for r in ranked}
    winners = [_ranked(x, gb)[0].model for gb in g_boot[:BIC_REPLICATES]]
    share = float(np.mean([w in ZERO_PARAM_PI for w in winners])) if winners else math.nan
    counts: dict[str, int] = {}
    for w in winners:
        counts[w] = counts.get(w, 0) + 1
    return {
        "ranking": [{"rank": i + 1, **r.as_dict(), "pi_model": r.model in fits.PI_MODELS} for i, r in enumerate(ranked)],
        "best": ranked[0].model, "best_is_pi_model": ranked[0].model in fits.PI_MODELS,
        "best_is_zero_param_pi": ranked[0].model in ZERO_PARAM_PI,
        "bic_formula": "n ln(RSS/n) + k ln n, k = the fitted parameters (0 for cos_pi_0p and sin_pi_0p)",
        "n_points": int(len(g_mean)),
        "replicate_winners": counts, "n_replicates": len(winners),
        "share_zero_param_pi_wins": share, "replicate_unit": unit + f" (the first {len(winners)} replicates)",
        "delta_bic_cos_pi_0p_minus_erf": float(by["cos_pi_0p"].bic - by["erf"].bic),
        "sin_pi_1p_alpha": by["sin_pi_1p"].params.get("alpha"),
    }


def attach_exp3(ev: dict, exp3: dict | None, why: str | None, parts: str, refits: int | None = None) -> None:
    """Parts a and b from exp3's evidence (or the reason they cannot be measured)."""
    if exp3 is None or "g_mean" not in exp3 or "g_mean_boot" not in exp3:
        reason = why or ("exp3 measured no g(l/L) on this model (fewer than 3 usable words)" if exp3 is not None
                         and "g_mean" not in exp3 else "exp3's evidence has no bootstrap replicates of g_mean")
        ev["g_missing_reason"] = reason
        return
    x = np.asarray(exp3["x"], dtype=float)
    g_mean = np.asarray(exp3["g_mean"], dtype=float)
    g_boot = np.asarray(exp3["g_mean_boot"], dtype=float)[:refits]
    unit = exp3.get("g_mean_ci_unit", "exp3's bootstrap")
    ev["g"] = {"x": x.tolist(), "g_mean": g_mean.tolist(), "g_mean_ci95": exp3.get("g_mean_ci95"),
               "source": f"exp3 on {exp3['model']}, measured through the session", "stimuli": exp3.get("stimuli"),
               "n_words": len(exp3.get("words_used", [])), "n_boot": int(len(g_boot)), "unit": unit,
               # C9's shape evidence: C13 and C14 are decided only where it holds (claims.shape_gate)
               "shape": exp3.get("shape"),
               "best_shape_model": (exp3.get("c9") or {}).get("best_full")}
    if "a" in parts:
        ev["sigma_erf"] = sigma_part(x, g_mean, g_boot, unit)
    if "b" in parts:
        ev["pi_models"] = pi_models_part(x, g_mean, g_boot, unit)


# -- 8C: rotation angles ---------------------------------------------------------------------------

def chunk_angles(lm, ts: TokenSet, store, progress: Progress) -> list[np.ndarray]:
    """θ [L, ctx] per chunk of ``ts``, each chunk a cached, resumable unit."""
    entry = store.entry("rotation-angles", base_key(lm, ts))
    out = []
    with entry.lock(), progress.bar(ts.n_chunks, "rotation angles") as bar:
        for c in range(ts.n_chunks):
            data = entry.get_or_compute(f"c{c}", lambda c=c: np.round(rotation_angles(lm, ts.chunks[c]), 7).tolist())
            out.append(np.asarray(data, dtype=float))
            bar.update()
    return out


def theta_stats(thetas: list[np.ndarray], skip_first: bool, seed: int = 0, n_boot: int = N_BOOT,
                bootstrap: bool = True) -> dict:
    """Statistics of Θ/π over positions of chunks ``thetas`` ([L, ctx] each), position 0 of each
    chunk left out when ``skip_first``. Intervals are cluster t intervals over chunks
    (:func:`semphase.intervals.cluster_mean`; with one chunk, none)."""
    th = np.stack([t[:, 1:] if skip_first else t for t in thetas])  # [C, L, P]
    C, L, P = th.shape
    big = th.sum(1)  # Θ [C, P]
    r = big / math.pi
    rb = (big - th[:, 0]) / math.pi  # Θ' without block 0
    n_star = int(round(float(r.mean())))
    own = np.abs(r - np.round(r)) < WITHIN
    out = {
        "n_chunks": C, "n_positions": int(C * P), "position_0": "excluded" if skip_first else "included",
        "theta_layer_mean": th.mean((0, 2)).tolist(), "theta_layer_std": th.std((0, 2)).tolist(),
        "Theta_mean": float(big.mean()), "Theta_std": float(big.std()),
        "Theta_over_pi_mean": float(r.mean()), "Theta_over_pi_std": float(r.std()),
        "nearest_integer": n_star, "deviation_from_nearest_integer": float(abs(r.mean() - n_star)),
        "frac_within_of_mean_integer": float(np.mean(np.abs(r - n_star) < WITHIN)),
        "frac_within_own_integer": float(own.mean()),
        "Theta_over_pi_without_block0_mean": float(rb.mean()),
        "Theta_over_half_pi_squared_mean": float(big.mean() / (math.pi ** 2 / 2)),
    }
    edges_h = np.arange(0.0, math.ceil(float(r.max()) * 20 + 1) / 20 + 1e-9, 0.05)
    counts_h, _ = np.histogram(r, bins=edges_h)
    out["hist_Theta_over_pi"] = {"edges": np.round(edges_h, 4).tolist(), "counts": counts_h.tolist()}
    if not bootstrap:
        return out
    # intervals over chunks (semphase.intervals: a cluster t on C - 1 df; every chunk has P positions, so the
    # mean of per-chunk means is the mean over positions)
    per_chunk_mean = r.mean(axis=1)
    per_chunk_frac = own.mean(axis=1)
    mean_iv = intervals.cluster_mean(per_chunk_mean, unit="chunks")
    frac_iv = intervals.cluster_mean(per_chunk_frac, unit="chunks")
    out.update({
        "Theta_over_pi_mean_ci95": [float(mean_iv.low), float(mean_iv.high)],
        "deviation_ci95": list(_distance_to_integer_range(float(mean_iv.low), float(mean_iv.high))),
        "frac_within_own_integer_ci95": [float(frac_iv.low), float(frac_iv.high)],
        "per_chunk": {"Theta_over_pi_mean": per_chunk_mean.tolist(), "frac_within_own_integer": per_chunk_frac.tolist()},
        "unit": f"chunks ({C} chunks; {mean_iv.method})", "interval_method": mean_iv.method, "seed": seed,
    })
    return out


def _distance_to_integer_range(lo: float, hi: float) -> tuple[float, float]:
    """The range of |x - round(x)| over x in [lo, hi]: the interval of the mean's distance to its nearest
    integer, from the mean's interval (0 when the interval holds an integer, 0.5 when it holds a half)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 0.5
    d = lambda x: abs(x - round(x))
    low = 0.0 if math.floor(hi) >= math.ceil(lo) else min(d(lo), d(hi))
    high = 0.5 if math.floor(hi - 0.5) >= math.ceil(lo - 0.5) else max(d(lo), d(hi))
    return float(low), float(high)


def rotation_part(ctx, progress: Progress) -> dict:
    """8C on the rank range (the original's sample: its first chunk's positions 0-499) and on the
    held-out range after it."""
    lm = ctx.lm
    rank = ctx.tokens()
    heldout = ctx.eval_tokens(rank)
    rank_angles = chunk_angles(lm, rank, ctx.store, progress)
    first = rank_angles[0][:, :ORIGINAL_POSITIONS]
    out = {
        "definition": "θ(l) = arccos(cos(v_l, v_{l+1})), v_0 = resid_pre(block 0), v_{l+1} = resid_post(block l); "
                      "Θ = Σ_l θ(l) per token position (a path length on the unit sphere)",
        "rank_data": rank.describe(),
        "original_sample": {"positions": f"0-{first.shape[1] - 1} of the rank range's first chunk",
                            **theta_stats([first], False, bootstrap=False)},
        "rank": {"all": theta_stats(rank_angles, False, ctx.seed), "without_position_0": theta_stats(rank_angles, True, ctx.seed)},
    }
    if heldout is None:
        out["heldout"] = None
        out["heldout_missing_reason"] = ("the data hold less than one chunk after the rank range; lower --tokens or "
                                         "--ctx, or raise --eval-tokens")
    else:
        ho = chunk_angles(lm, heldout, ctx.store, progress)
        out["heldout_data"] = heldout.describe()
        out["heldout"] = {"all": theta_stats(ho, False, ctx.seed), "without_position_0": theta_stats(ho, True, ctx.seed)}
    return out


# -- the registry's entry point ---------------------------------------------------------------------

def measure(ctx) -> dict:
    from ...device import seed_everything

    seed_everything(ctx.seed)
    wall = time.perf_counter()
    lm = ctx.lm
    parts = "".join(p for p in "abc" if p in (ctx.parts or "abc").lower())
    progress = Progress(ctx.progress)
    ev: dict = {"experiment": "exp8", "model": lm.name, "tag": lm.tag, "budget": ctx.budget.name,
                "budget_description": ctx.budget.description, "asserts_claims": ctx.asserts_claims,
                "n_layers": lm.n_layers, "d_model": lm.d_model, "seed": ctx.seed, "parts": parts}
    if "a" in parts or "b" in parts:
        ctx.say(f"exp8 on {lm.name}: parts a/b fit exp3's g(l/L) (exp3 measured through the session)")
        exp3, why = ctx.need("exp3")
        attach_exp3(ev, exp3, why, parts, ctx.budget.refits)
    if "c" in parts:
        try:
            ev["rotation"] = rotation_part(ctx, progress)
        except SemphaseError as exc:  # data missing: parts a and b stand, C15 says why
            ev["rotation"] = None
            ev["rotation_missing_reason"] = str(exc)
    ev["provenance"] = dict(base_provenance(lm, ctx.seed, time.perf_counter() - wall, ctx.store),
                            data=(ev.get("rotation") or {}).get("rank_data"))
    return ev
