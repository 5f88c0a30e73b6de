"""Statistics for the claim tests: perplexities from block sums, bootstrap intervals over
blocks, grid thresholds, the original's Zipf fit and maximum-likelihood comparisons of
heavy-tailed distributions."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import optimize, stats

N_BOOT = 2000


def ppl(blocks: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Perplexity from per-block loss sums [..., chunk, block] and block counts [block]."""
    n_chunks = blocks.shape[-2]
    return np.exp(blocks.sum(axis=(-1, -2)) / (n_chunks * cnt.sum()))


def bootstrap_weights(n_units: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """[n_boot, n_units] resampling counts (blocks drawn with replacement)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_units, size=(n_boot, n_units))
    weights = np.zeros((n_boot, n_units))
    rows = np.repeat(np.arange(n_boot), n_units)
    np.add.at(weights, (rows, idx.ravel()), 1.0)
    return weights


def boot_ppl(blocks: np.ndarray, cnt: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bootstrap replicates of perplexity: blocks [..., chunk, block] -> [n_boot, ...]."""
    lead = blocks.shape[:-2]
    flat = blocks.reshape(-1, blocks.shape[-2] * blocks.shape[-1])  # [k, units]
    unit_cnt = np.tile(cnt, blocks.shape[-2]).astype(np.float64)
    num = weights @ flat.T  # [n_boot, k]
    den = weights @ unit_cnt  # [n_boot]
    return np.exp(num / den[:, None]).reshape((weights.shape[0],) + lead)


def interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval; with infinite replicates (a ratio over a zero denominator) the
    nearest order statistics are used, so that the bounds are never NaN."""
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    samples = np.asarray(samples, dtype=float)
    if np.isinf(samples).any():
        lo, hi = np.nanquantile(samples, q, method="nearest")
    else:
        lo, hi = np.nanquantile(samples, q)
    return float(lo), float(hi)


def removable(steps: Sequence[int], ratios: Sequence[float], threshold: float) -> int:
    """The largest measured step whose PPL ratio is <= threshold (no monotonicity), as the
    original defined "k heads removable at t x"."""
    ok = [s for s, r in zip(steps, ratios) if r <= threshold]
    return int(max(ok)) if ok else 0


@dataclass
class ZipfFit:
    C: float
    alpha: float
    n_positive: int


def zipf_fit(values: np.ndarray) -> ZipfFit | None:
    """Least-squares fit of C * r^-alpha to |values| sorted descending (the original's 10B fit,
    in linear space, p0 = (max, 1), alpha in [0.01, 5]); None with 5 or fewer positive values."""
    mags = np.sort(np.abs(np.asarray(values, dtype=float).ravel()))[::-1]
    ranks = np.arange(1, mags.size + 1, dtype=float)
    keep = mags > 0
    if keep.sum() <= 5:
        return None
    x, y = ranks[keep], mags[keep]

    def model(r, C, alpha):
        return C * r ** (-alpha)

    popt, _ = optimize.curve_fit(model, x, y, p0=(y.max(), 1.0), bounds=([0, 0.01], [np.inf, 5]),
                                 maxfev=20000)
    return ZipfFit(float(popt[0]), float(popt[1]), int(keep.sum()))


def heavy_tail_comparison(values: np.ndarray) -> dict:
    """Maximum-likelihood fits of a power law, a lognormal and an exponential to the positive
    values at or above x_min = the smallest positive value (all truncated there), with
    log-likelihoods, AIC and Vuong's normalised log-likelihood ratio of the power law
    against each alternative (positive favours the power law)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if x.size < 6:
        return {"n": int(x.size), "note": "fewer than 6 positive values; no fit"}
    xmin = float(x.min())
    n = x.size
    logs = np.log(x / xmin)
    alpha = 1.0 + n / max(logs.sum(), 1e-300)
    ll_pl = np.log((alpha - 1) / xmin) - alpha * logs

    lam = 1.0 / max(np.mean(x - xmin), 1e-300)
    ll_exp = np.log(lam) - lam * (x - xmin)

    def neg_ll_lognorm(params):
        mu, log_s = params
        s = math.exp(log_s)
        logpdf = stats.norm.logpdf(np.log(x), mu, s) - np.log(x)
        tail = stats.norm.logsf(np.log(xmin), mu, s)
        return -(logpdf - tail).sum()

    res = optimize.minimize(neg_ll_lognorm, x0=[np.log(x).mean(), math.log(max(np.log(x).std(), 1e-3))],
                            method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-8, "fatol": 1e-10})
    mu, s = float(res.x[0]), float(math.exp(res.x[1]))
    ll_ln = stats.norm.logpdf(np.log(x), mu, s) - np.log(x) - stats.norm.logsf(np.log(xmin), mu, s)

    def vuong(a, b):
        d = a - b
        sd = d.std(ddof=1)
        if sd == 0:
            return 0.0, 1.0
        R = d.sum() / (sd * math.sqrt(n))
        return float(R), float(2 * stats.norm.sf(abs(R)))

    r_ln, p_ln = vuong(ll_pl, ll_ln)
    r_exp, p_exp = vuong(ll_pl, ll_exp)
    fits = {
        "power_law": {"alpha": float(alpha), "loglik": float(ll_pl.sum()), "k": 1},
        "lognormal": {"mu": mu, "sigma": s, "loglik": float(ll_ln.sum()), "k": 2},
        "exponential": {"lambda": float(lam), "loglik": float(ll_exp.sum()), "k": 1},
    }
    for fit in fits.values():
        fit["aic"] = 2 * fit["k"] - 2 * fit["loglik"]
    best = min(fits, key=lambda name: fits[name]["aic"])
    return {"n": int(n), "xmin": xmin, "fits": fits, "best_by_aic": best,
            "vuong_powerlaw_vs_lognormal": {"R": r_ln, "p": p_ln},
            "vuong_powerlaw_vs_exponential": {"R": r_exp, "p": p_exp}}


def correlation(x: Sequence[float], y: Sequence[float]) -> dict:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    pr, pp = stats.pearsonr(x, y)
    sr, sp = stats.spearmanr(x, y)
    return {"pearson_r": float(pr), "pearson_p": float(pp), "spearman_rho": float(sr),
            "spearman_p": float(sp), "n": int(x.size)}
