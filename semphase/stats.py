"""Statistics for the claim tests: perplexities from block sums, bootstrap intervals over
blocks, grid thresholds, the original's Zipf fit and maximum-likelihood comparisons of
heavy-tailed distributions.

The percentile bootstraps here (:func:`boot_ppl` with :func:`interval`) under-cover with 8
chunks; new claim intervals come from :mod:`semphase.intervals` (cluster t, linearised PPL ratio,
threshold by test inversion, bias-corrected ranks), whose coverage
``tests/machinery/test_interval_coverage.py`` measures."""
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


def chunk_weights(n_chunks: int, n_blocks: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """[n_boot, n_chunks * n_blocks] resampling counts of a cluster bootstrap: whole chunks are
    drawn with replacement (every block of a drawn chunk counts once per draw)."""
    per_chunk = bootstrap_weights(n_chunks, n_boot, seed)  # [n_boot, n_chunks]
    return np.repeat(per_chunk, n_blocks, axis=1)


MIN_CLUSTERS = 8  # chunks needed before the bootstrap resamples chunks rather than blocks


def resampling(n_chunks: int, n_blocks: int, block: int, n_boot: int = N_BOOT, seed: int = 0) -> tuple[np.ndarray, str]:
    """Bootstrap weights for per-block sums [chunk, block] and the name of the resampling unit:
    whole chunks (a cluster bootstrap) with at least :data:`MIN_CLUSTERS` chunks, else blocks of
    ``block`` predicted tokens (which are not independent documents: the report says so)."""
    if n_chunks >= MIN_CLUSTERS:
        return chunk_weights(n_chunks, n_blocks, n_boot, seed), f"chunks ({n_chunks} chunks, cluster bootstrap)"
    return (bootstrap_weights(n_chunks * n_blocks, n_boot, seed),
            f"blocks of {block} predicted tokens within {n_chunks} chunk(s) (fewer than {MIN_CLUSTERS} chunks: "
            "blocks of one chunk are not independent documents, so this interval is optimistic)")


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


def basic_interval(point: float, samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The basic (reverse-percentile) bootstrap interval [2 point - q_hi, 2 point - q_lo]. For a
    statistic biased by the sample size (a PCA rank from n samples in d dimensions is below the
    population's, and resampling with repeats lowers it again), the percentile interval carries the
    bias twice and can miss the population's value; the basic interval reflects the replicates about
    the point, corrects for it, and need not contain the point itself (a machinery test shows it)."""
    lo, hi = interval(samples, level)
    return float(2 * point - hi), float(2 * point - lo)


def removable_replicates(steps: Sequence[int], ratios: np.ndarray, threshold: float) -> np.ndarray:
    """:func:`removable` for each row of ``ratios`` [n_boot, step]."""
    steps_arr = np.asarray(steps)
    ok = np.asarray(ratios) <= threshold
    return np.where(ok, steps_arr[None, :], 0).max(axis=1)


def removable(steps: Sequence[int], ratios: Sequence[float], threshold: float) -> int:
    """The largest measured step whose PPL ratio is <= threshold (no monotonicity), as the
    original defined "k heads removable at t x"."""
    ok = [s for s, r in zip(steps, ratios) if r <= threshold]
    return int(max(ok)) if ok else 0


def threshold_bracket(steps: Sequence[int], threshold: int) -> list[int]:
    """Where a threshold read off measured steps (:func:`removable`) can lie: from the step it is
    read at to the step before the next measured one (equal ends: resolved to one head, or the
    last step)."""
    later = [s for s in steps if s > threshold]
    return [int(threshold), int(later[0] - 1 if later else threshold)]


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


def heavy_tail_powerlaw(values: np.ndarray) -> dict:
    """The field's estimator for a heavy tail (Clauset, Shalizi & Newman 2009, through the
    maintained ``powerlaw`` package): a continuous power law fitted by maximum likelihood above
    x_min chosen by the Kolmogorov-Smirnov distance, and likelihood-ratio comparisons (normalised
    R, and its p-value) of the power law with the exponential and the lognormal over the same tail.
    R > 0 favours the power law; p < 0.05 makes the sign significant."""
    import warnings

    import powerlaw

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    if x.size < 10:
        return {"n_positive": int(x.size), "note": "fewer than 10 positive values; no fit"}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fit = powerlaw.Fit(x, discrete=False, verbose=False)
        r_exp, p_exp = fit.distribution_compare("power_law", "exponential", normalized_ratio=True)
        r_ln, p_ln = fit.distribution_compare("power_law", "lognormal", normalized_ratio=True)
    return {
        "package": f"powerlaw {powerlaw.__version__}" if hasattr(powerlaw, "__version__") else "powerlaw",
        "method": "Clauset-Shalizi-Newman: continuous power law by ML above x_min chosen by the KS distance; "
                  "normalised log-likelihood ratios",
        "n_positive": int(x.size), "xmin": float(fit.xmin), "n_tail": int(np.sum(x >= fit.xmin)),
        "alpha": float(fit.power_law.alpha), "alpha_se": float(fit.power_law.sigma), "ks_distance": float(fit.power_law.D),
        "powerlaw_vs_exponential": {"R": float(r_exp), "p": float(p_exp)},
        "powerlaw_vs_lognormal": {"R": float(r_ln), "p": float(p_ln)},
    }


def correlation(x: Sequence[float], y: Sequence[float]) -> dict:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    pr, pp = stats.pearsonr(x, y)
    sr, sp = stats.spearmanr(x, y)
    return {"pearson_r": float(pr), "pearson_p": float(pp), "spearman_rho": float(sr),
            "spearman_p": float(sp), "n": int(x.size)}
