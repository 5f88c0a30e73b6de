"""Experiments 3 and 3E/F/G (science.md sections 4, 5; claims C6-C9) on our own stimuli.

Per word, the graded prompts (levels -4..+4; three each, length-matched, in the packaged file) give
σ_i(p) along ê_diff for i = 0..L. A word that is not length-matched is measured with its σ moved to
its mean target position (:data:`semphase.semantic.measure.POSITION_CONTROL`), so its f(i) is h's
coefficient with the position beside it; every statistic below, nulls and bootstrap replicates
included, uses that σ. Two definitions of h:

* **design** (primary, independent of σ): h = level/4;
* **circular** (the original's): h = σ_L/max|σ_L| (:func:`semphase.fits.exp3_h`), which makes
  R²_L = 1 and f(L) = max|σ_L| by construction.

Per layer, OLS of σ_i on h gives the response f(i) (slope), R²_i and h*(i)
(:func:`semphase.fits.layer_linear_response`); g_w = f_w/max f_w; g_mean over words, per-word
RMSE from g_mean; the original's five shape models fitted to g_mean on all L+1 points, and the
"truncated" fit (last two points dropped, re-normalised: a rule fixed before seeing our data).

Nulls, all without new forward passes (the residuals are cached): per word a random unit
direction, or ê_diff of shuffled sense labels of the direction prompts, in place of ê_diff;
each null direction is oriented so that its response sums positive (a null direction has no
meaningful sign). The same statistics under each null, for design and circular h, show how much
of the "universality" smooth depth profiles and the circular h give by themselves. A two-stage
bootstrap (words with replacement, then prompts within levels inside each drawn word) gives the
intervals of the across-word statistics (C7's mean correlation, C8's mean RMSE, g_mean, the drop
of g before the last layer, the truncated exponent). C6's position control: σ_i as measured on h
and the target position with word fixed effects and word-clustered standard errors (statsmodels);
the position coefficient is identified by the words that are not length-matched.

``g_mean`` and the random-direction null's g curves are part of the evidence, for exp10's C19
(``data/exp3ef_{tag}.json``) and for the cross-model test (:func:`cross_model`).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import interpolate
from scipy import stats as sps

from ... import fits
from ...cache import EvidenceStore
from ...semantic.measure import (TWO_STAGE_UNIT, begin, design_h, entry_point, finish, position_record,
                                 position_summary, say, two_stage_rows)
from ...semantic.stimuli import Stimuli

N_NULL = 200
N_BOOT = 1000  # two-stage replicates (science.md 8.8 asks 1000 for exp8's σ_erf interval, which reads them)
ORIGINAL_CORR_BAR = 0.96  # "all pairs > 0.96"
ORIGINAL_RMSE_BAR = 0.08  # "RMSE < 0.08"
CROSS_MODEL_BAR = 0.97  # science.md 5.8 test_g_cross_model: corr >= 0.97
ALPHA_BAND = (0.9, 1.0)  # "g ∝ (l/L)^0.9 ... α ≈ 0.9-1"


# -- vectorised pieces ----------------------------------------------------------------------------

def slopes(h: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """OLS slope of σ_i on h per layer: h [..., n], σ [..., n, L+1] -> [..., L+1]."""
    hc = h - h.mean(-1, keepdims=True)
    sc = sigma - sigma.mean(-2, keepdims=True)
    return np.einsum("...n,...nl->...l", hc, sc) / (hc ** 2).sum(-1)[..., None]


def circular_h(sigma: np.ndarray) -> np.ndarray:
    """h = σ_L/max|σ_L| over the prompts: σ [..., n, L+1] -> [..., n]."""
    s = sigma[..., -1]
    return s / np.abs(s).max(-1, keepdims=True)


def normalise(f: np.ndarray) -> np.ndarray:
    """g = f/max_i f (the original's normalisation) over the last axis; a curve whose maximum
    is not positive (no response in the sense direction) is divided by max |f| instead, and an
    all-zero curve stays zero."""
    top = f.max(-1, keepdims=True)
    mag = np.abs(f).max(-1, keepdims=True)
    denom = np.where(top > 0, top, np.where(mag > 0, mag, 1.0))
    return f / denom


def universality(F: np.ndarray) -> dict:
    """Cross-word statistics of response curves F [..., W, L+1]: mean pairwise Pearson
    correlation of f, fraction of pairs above 0.96, mean per-word RMSE of g from g_mean."""
    Fc = F - F.mean(-1, keepdims=True)
    norm = np.linalg.norm(Fc, axis=-1, keepdims=True)
    Fn = Fc / np.where(norm > 0, norm, 1.0)
    C = np.einsum("...wl,...vl->...wv", Fn, Fn)
    W = F.shape[-2]
    iu = np.triu_indices(W, 1)
    pairs = C[..., iu[0], iu[1]]
    g = normalise(F)
    g_mean = g.mean(-2, keepdims=True)
    rmse = np.sqrt(((g - g_mean) ** 2).mean(-1))
    return {"mean_corr": pairs.mean(-1), "min_corr": pairs.min(-1), "frac_pairs_above": (pairs > ORIGINAL_CORR_BAR).mean(-1),
            "mean_rmse": rmse.mean(-1), "g_mean": g_mean[..., 0, :], "pairs": pairs, "rmse": rmse}


def _orient(F: np.ndarray) -> np.ndarray:
    """Flip each null curve so that its sum is positive (a null direction has no sign)."""
    return F * np.where(F.sum(-1, keepdims=True) < 0, -1.0, 1.0)


def _q(a, q) -> float:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(np.quantile(a, q)) if a.size else float("nan")


def position_regression(y: np.ndarray, h: np.ndarray, position: np.ndarray, word: np.ndarray) -> dict:
    """OLS of σ_i on h and the target position with word fixed effects, standard errors clustered
    by word (statsmodels, ``cov_type="cluster"``, t with G - 1 degrees of freedom). Where the
    position is constant within every word it is absorbed by the fixed effects and left out
    (``position_identified`` False). A layer where σ_i does not vary within words (i = 0: the
    same token at the same position) has no h effect to test: p = 1."""
    import statsmodels.api as sm

    y, h, position = (np.asarray(a, float) for a in (y, h, position))
    word = np.asarray(word)
    uniq = list(dict.fromkeys(word.tolist()))
    fe = np.column_stack([(word == w).astype(float) for w in uniq])  # one dummy per word, no intercept
    varies = any(np.ptp(position[word == w]) > 0 for w in uniq)
    X = np.column_stack([h, position, fe]) if varies else np.column_stack([h, fe])
    out = {"h_coef": float("nan"), "h_se": float("nan"), "h_p": 1.0, "pos_coef": None, "pos_p": None,
           "position_identified": bool(varies), "n_clusters": len(uniq), "n": int(y.size)}
    within = y - np.array([y[word == w].mean() for w in word])
    if not np.any(np.abs(within) > 1e-12 * max(1.0, float(np.abs(y).max()))):
        return out
    res = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": np.unique(word, return_inverse=True)[1]},
                           use_t=True)
    p = np.nan_to_num(np.asarray(res.pvalues, float), nan=1.0)
    out.update(h_coef=float(res.params[0]), h_se=float(res.bse[0]), h_p=float(p[0]))
    if varies:
        out.update(pos_coef=float(res.params[1]), pos_p=float(p[1]))
    return out


def boot_universality(Fb: np.ndarray, idx: np.ndarray) -> dict:
    """:func:`universality` of two-stage bootstrap replicates Fb [n_boot, W, L+1] whose slots come
    from the words ``idx`` [n_boot, W]: the mean correlation over pairs of slots from two
    different words (a word drawn twice would correlate with itself), the mean RMSE over slots."""
    u = universality(Fb)
    iu = np.triu_indices(Fb.shape[1], 1)
    distinct = idx[:, iu[0]] != idx[:, iu[1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(distinct.any(1), (u["pairs"] * distinct).sum(1) / distinct.sum(1), np.nan)
    return {"mean_corr": corr, "mean_rmse": u["mean_rmse"], "g_mean": u["g_mean"]}


def drop_before_last(g: np.ndarray) -> np.ndarray:
    """How far the final point of g [..., L+1] lies below the peak of the earlier points:
    max_{i<L} g(i) - g(L) (> 0 exactly when g peaks before l/L = 1)."""
    g = np.asarray(g, float)
    return g[..., :-1].max(-1) - g[..., -1]


# -- measurement ----------------------------------------------------------------------------------

def measure_stimuli(lm, stimuli: Stimuli, store: EvidenceStore, seed: int = 0, n_null: int = N_NULL,
                    n_boot: int = N_BOOT, asserts_claims: bool = True, progress: bool = False) -> dict:
    """Measure exp3 and exp3E/F/G on ``lm`` with ``stimuli``; returns the evidence (JSON-ready)."""
    wall, check, data, rs, n_tokens = begin(lm, stimuli, store, seed)
    L = lm.n_layers
    words = list(data)
    say(progress, f"exp3 on {lm.name} ({lm.device}): {len(words)} words")
    x = np.arange(L + 1) / L
    per_word: dict[str, dict] = {}
    F = {"design": [], "circular": []}
    for w in words:
        wd = data[w]
        sig = wd.sigma
        out: dict = {"senses": wd.ws.senses, "in_original": wd.ws.in_original,
                     "target_position": int(wd.positions[0]) if wd.length_matched else None,
                     "n_prompts": int(len(sig)), "position": position_record(wd)}
        for kind, h in (("design", design_h(wd.levels)), ("circular", circular_h(sig))):
            lr = fits.layer_linear_response(h, sig)
            r2 = np.nan_to_num(lr.r2, nan=0.0)  # constant σ_i (i = 0: same token, same position): nothing explained
            rho = sps.spearmanr(np.arange(L), r2[:L]).statistic if np.ptp(r2[:L]) > 0 else 0.0
            f = lr.slope
            out[kind] = {"h": h.tolist(), "f": f.tolist(), "r2": r2.tolist(), "p_value": np.nan_to_num(lr.p_value, nan=1.0).tolist(),
                         "h_star": lr.h_star, "f_max": float(f.max()), "argmax_f": int(f.argmax()),
                         "g": normalise(f).tolist(), "spearman_depth_r2": float(rho),
                         "n_layers_r2_above_095": int(np.sum(r2 > 0.95))}
            F[kind].append(f)
        per_word[w] = out
    ev: dict = {
        "experiment": "exp3", "model": lm.name, "tag": lm.tag, "budget": "all stimuli", "asserts_claims": asserts_claims,
        "n_layers": L, "d_model": lm.d_model, "seed": seed, "n_null": n_null, "n_boot": n_boot,
        "stimuli": stimuli.describe(), "tokenization": check.tokenization, "words_used": words,
        "words_skipped": check.to_json()["words_skipped"], "prompts_dropped": check.to_json()["prompts_dropped"],
        "near_duplicates_kept": check.to_json()["near_duplicates_kept"],
        "position_control": position_summary(data), "x": x.tolist(), "words": per_word,
    }
    if len(words) < 3:
        return finish(ev, lm, stimuli, check, rs, store, seed, wall, n_tokens)
    Fd, Fc = np.stack(F["design"]), np.stack(F["circular"])
    real = {"design": universality(Fd), "circular": universality(Fc)}

    # -- nulls ---------------------------------------------------------------------------------
    nulls = {}
    null_g_random = None
    for kind in ("random", "shuffled"):
        rng = np.random.default_rng([seed, 30 if kind == "random" else 31])
        Fn = {"design": np.zeros((n_null, len(words), L + 1)), "circular": np.zeros((n_null, len(words), L + 1))}
        for k, w in enumerate(words):
            wd = data[w]
            s = wd.null_sigma(wd.null_directions(kind, n_null, rng))  # [n_null, nG, L+1]
            Fn["design"][:, k] = _orient(slopes(design_h(wd.levels)[None], s))
            Fn["circular"][:, k] = _orient(slopes(circular_h(s), s))
        nulls[kind] = {}
        for hk in ("design", "circular"):
            u = universality(Fn[hk])
            nulls[kind][hk] = {"mean_corr": u["mean_corr"].tolist(), "mean_rmse": u["mean_rmse"].tolist(),
                               "corr_q95": _q(u["mean_corr"], 0.95), "corr_median": _q(u["mean_corr"], 0.5),
                               "rmse_q05": _q(u["mean_rmse"], 0.05), "rmse_median": _q(u["mean_rmse"], 0.5),
                               "frac_draws_corr_above_bar": float(np.mean(u["mean_corr"] > ORIGINAL_CORR_BAR)),
                               "frac_draws_rmse_below_bar": float(np.mean(u["mean_rmse"] < ORIGINAL_RMSE_BAR))}
            if kind == "random" and hk == "design":
                null_g_random = u["g_mean"]
    # -- two-stage bootstrap: words with replacement, then prompts within levels inside each word -----
    rng_b = np.random.default_rng([seed, 32])
    Fb = np.zeros((n_boot, len(words), L + 1))
    idx = np.zeros((n_boot, len(words)), dtype=int)
    levels = [data[w].levels for w in words]
    for b in range(n_boot):
        for k, (wi, rows) in enumerate(two_stage_rows(levels, rng_b)):
            wd = data[words[wi]]
            idx[b, k] = wi
            Fb[b, k] = slopes(design_h(wd.levels)[rows], wd.sigma_rows(rows))
    ub = boot_universality(Fb, idx)
    g_mean = real["design"]["g_mean"]
    xt, gt = x[:-2], normalise(g_mean[:-2])  # the original report's truncation (fits.truncate_g)
    alpha_boot = []
    for gb in ub["g_mean"]:
        res = fits.fit_model(fits.G_MODELS["power_law"], xt, normalise(gb[:-2]))
        alpha_boot.append(res.params["alpha"] if res.success else np.nan)
    alpha_boot = np.array(alpha_boot)
    full = fits.fit_all(x, g_mean, fits.G_MODELS)
    trunc = fits.fit_all(xt, gt, fits.G_MODELS)
    peak = int(np.argmax(g_mean))
    drop_boot = drop_before_last(ub["g_mean"])
    g_std = normalise(Fd).std(0)

    # -- C6: linearity with depth, position ----------------------------------------------------
    rho = np.array([per_word[w]["design"]["spearman_depth_r2"] for w in words])
    pos_rows = []
    hs = np.concatenate([design_h(data[w].levels) for w in words])
    ps = np.concatenate([[e.position for e in data[w].encoded] for w in words]).astype(float)
    ws = np.concatenate([[w] * len(data[w].levels) for w in words])
    for i in range(L + 1):
        y = np.concatenate([data[w].sigma_raw[:, i] for w in words])  # as measured: position is a covariate here
        pos_rows.append({"layer": i, **position_regression(y, hs, ps, ws)})
    deep = [r for r in pos_rows if r["layer"] >= math.ceil(L / 2)]

    r2_final_circ = np.array([per_word[w]["circular"]["r2"][-1] for w in words])
    ev.update({
        "c6": {
            "spearman_depth_r2": dict(zip(words, rho.tolist())),
            "median_spearman": float(np.median(rho)), "frac_spearman_above_05": float(np.mean(rho > 0.5)),
            "mean_r2_by_layer_design": np.mean([per_word[w]["design"]["r2"] for w in words], 0).tolist(),
            "mean_r2_by_layer_circular": np.mean([per_word[w]["circular"]["r2"] for w in words], 0).tolist(),
            "circular_r2_final_max_dev": float(np.max(np.abs(r2_final_circ - 1.0))),
            "position": {"design": "sigma_i ~ h + target position + word fixed effects, OLS pooled over words' "
                                   "graded prompts, standard errors clustered by word (statsmodels cov_type='cluster', "
                                   "t with G - 1 df); where each word's prompts share one target position, position "
                                   "is absorbed by the word fixed effects and left out of the design",
                         "per_layer": pos_rows, "max_h_p_deep": float(max(r["h_p"] for r in deep)),
                         "deep_from_layer": math.ceil(L / 2),
                         "position_identified": bool(pos_rows[0]["position_identified"]),
                         "n_clusters": len(words), "se_unit": "words (clusters)",
                         "n_positions": int(len(set(ps.tolist()))),
                         "n_words_position_varies": int(sum(not data[w].length_matched for w in words)),
                         "sigma": "as measured (not position-adjusted): the target position is the covariate"},
        },
        "c7": {
            "statistic": "mean pairwise Pearson correlation across words of f(i) (OLS slope of sigma_i on h = level/4)",
            "mean_corr": float(real["design"]["mean_corr"]), "min_corr": float(real["design"]["min_corr"]),
            "frac_pairs_above_bar": float(real["design"]["frac_pairs_above"]),
            "circular": {"mean_corr": float(real["circular"]["mean_corr"]), "min_corr": float(real["circular"]["min_corr"])},
            "boot_ci95": [_q(ub["mean_corr"], 0.025), _q(ub["mean_corr"], 0.975)],
            "unit": TWO_STAGE_UNIT + "; pairs of slots from the same word are left out of a replicate's mean",
        },
        "c8": {
            "statistic": "mean over words of the RMSE of g_w = f_w/max f_w from g_mean",
            "mean_rmse": float(real["design"]["mean_rmse"]),
            "rmse": dict(zip(words, real["design"]["rmse"].tolist())),
            "circular": {"mean_rmse": float(real["circular"]["mean_rmse"])},
            "boot_ci95": [_q(ub["mean_rmse"], 0.025), _q(ub["mean_rmse"], 0.975)],
            "unit": TWO_STAGE_UNIT,
        },
        "nulls": {"n": n_null, **nulls},
        "g_mean": g_mean.tolist(), "g_std": g_std.tolist(),
        "g_mean_ci95": [np.quantile(ub["g_mean"], 0.025, 0).tolist(), np.quantile(ub["g_mean"], 0.975, 0).tolist()],
        "g_mean_ci_unit": TWO_STAGE_UNIT,
        "g_mean_boot": np.round(ub["g_mean"], 5).tolist(),  # the replicates: exp8 fits σ_erf to each
        "null_g_mean_random": null_g_random.tolist(),
        "f_max": {w: per_word[w]["design"]["f_max"] for w in words},
        "n_words_no_positive_response": int(sum(per_word[w]["design"]["f_max"] <= 0 for w in words)),
        "shape": {"peak_index": peak, "peak_x": float(x[peak]), "g_peak": float(g_mean[peak]), "g_final": float(g_mean[-1]),
                  "drop": float(g_mean[peak] - g_mean[-1]),
                  "drop_before_last": float(drop_before_last(g_mean)),
                  "drop_before_last_ci95": [_q(drop_boot, 0.025), _q(drop_boot, 0.975)],
                  "drop_ci_unit": TWO_STAGE_UNIT,
                  "definition": ("rise then drop before the last layer: g_mean peaks at l/L < 1 (argmax over i = 0..L "
                                 "below L) and the drop max_{i<L} g_mean(i) - g_mean(L) is positive beyond the bootstrap "
                                 "noise (its 95 % interval lies above 0); the rise is g_mean(0) = 0 (same token at the "
                                 "same position across a word's prompts) up to the peak")},
        "c9": {
            "full_fits": [r.as_dict() for r in full], "best_full": full[0].model,
            "best_full_bic_margin": float(full[1].bic - full[0].bic) if len(full) > 1 else None,
            "delta_bic_erf_or_sigmoid": float(min(r.bic for r in full if r.model in ("erf", "sigmoid")) - full[0].bic),
            "truncated_fits": [r.as_dict() for r in trunc], "best_truncated": trunc[0].model,
            "truncation_rule": "drop the last 2 points, re-normalise to max 1 (the original report's rule)",
            "alpha_truncated": float(next(r for r in trunc if r.model == "power_law").params["alpha"]),
            "alpha_truncated_ci95": [_q(alpha_boot, 0.025), _q(alpha_boot, 0.975)],
            "alpha_ci_unit": TWO_STAGE_UNIT,
            "alpha_boot_failed": int(np.sum(~np.isfinite(alpha_boot))),
            "alpha_band": list(ALPHA_BAND),
        },
    })
    ev["g_fits"] = ev["c9"]["full_fits"]
    return finish(ev, lm, stimuli, check, rs, store, seed, wall, n_tokens)


measure = entry_point(measure_stimuli)


# -- across models --------------------------------------------------------------------------------

def _on_grid(g: np.ndarray, grid: np.ndarray) -> np.ndarray:
    g = np.asarray(g, float)
    xs = np.arange(g.shape[-1]) / (g.shape[-1] - 1)
    return interpolate.interp1d(xs, g, kind="cubic", axis=-1, fill_value="extrapolate")(grid)


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a ** 2).sum(-1) * (b ** 2).sum(-1))


def cross_model(evs: list[dict]) -> dict:
    """g_mean of every pair of models on the coarser model's grid (cubic interpolation, as the
    original): Pearson correlation, RMSE, max |diff|, and the null: the correlation of one
    model's real g_mean with the other's random-direction g_means (both ways)."""
    pairs = []
    for a in range(len(evs)):
        for b in range(a + 1, len(evs)):
            ea, eb = evs[a], evs[b]
            n = min(ea["n_layers"], eb["n_layers"])
            grid = np.arange(n + 1) / n
            ga, gb = _on_grid(ea["g_mean"], grid), _on_grid(eb["g_mean"], grid)
            na, nb = _on_grid(ea["null_g_mean_random"], grid), _on_grid(eb["null_g_mean_random"], grid)
            null = np.concatenate([_corr(ga[None], nb), _corr(gb[None], na)])
            corr = float(_corr(ga, gb))
            pairs.append({"models": [ea["model"], eb["model"]], "grid_points": n + 1, "corr": corr,
                          "rmse": float(np.sqrt(np.mean((ga - gb) ** 2))), "max_abs_diff": float(np.max(np.abs(ga - gb))),
                          "null_corr_q95": _q(null, 0.95), "null_corr_median": _q(null, 0.5), "null_n": int(null.size),
                          "p_value": float((1 + np.sum(null >= corr)) / (1 + null.size))})
    return {"experiment": "exp3", "kind": "cross-model", "model": " + ".join(e["model"] for e in evs),
            "models": [e["model"] for e in evs], "tag": "cross_" + "_".join(e["tag"] for e in evs),
            "asserts_claims": all(e.get("asserts_claims", True) for e in evs), "pairs": pairs,
            "budget": "all stimuli", "n_tokens": sum(e.get("n_tokens", 0) for e in evs),
            "g_mean": {e["model"]: e["g_mean"] for e in evs}}
