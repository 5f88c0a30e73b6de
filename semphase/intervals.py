"""Confidence intervals over clusters, with coverage measured by simulation.

Every claim's interval is built here. A cluster is the independent unit a test resamples:
a chunk of evaluation text (exp6, exp7, exp10), a word (exp1-exp3), a prompt. The suite uses
few clusters (8, 16 or 32 chunks; 28 words), where a percentile bootstrap is too narrow and a
bootstrap of a rank or a count is biased; ``tests/machinery/test_interval_coverage.py``
measures, on seeded simulated data with a known truth at those cluster counts, how often each
method below covers the truth, and asserts that the nominal 95 % intervals cover it at least
90 % of the time.

The API (pure numpy/scipy; nothing here imports an experiment):

* :func:`cluster_mean`, :func:`cluster_difference`: the mean of per-cluster values with a
  cluster t interval on G - 1 degrees of freedom.
* :func:`ppl_ratio`: PPL_mod / PPL_base from per-chunk summed NLLs and predicted-token counts
  (a ratio of sums), a linearised ratio estimator with a cluster t interval on the log scale.
* :func:`threshold`, :func:`threshold_difference`: "k heads removable at t x" (science.md 0.5)
  with an interval by test inversion of the per-step ratio bounds; the difference of two
  thresholds on the same chunks by :func:`threshold_difference_paired` (a paired cluster
  bootstrap: the Bonferroni one is valid but too wide to decide anything).
* :func:`jackknife` (with :func:`leave_one_out` weights): a smooth statistic of per-cluster sums
  (shares, ratios of ΔPPLs, sums of effects), delete-one-cluster jackknife with a t on G - 1 df.
* :func:`bias_corrected`, :func:`bias_corrected_from_percentile`: a bootstrap bias correction
  and the basic interval for rank statistics (K(90 %), a smallest K over blocks, a maximum of
  differences).
* :func:`percentile_bootstrap_mean`: the plain percentile cluster bootstrap, kept only so that
  the coverage test can show why it is not used.

Each function returns an :class:`Interval`: the point estimate, the interval, the method's
name, the number of clusters and what was resampled. The mean and ratio functions are
vectorised: values of shape [..., G] give an Interval whose fields have shape [...].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95

__all__ = ["Interval", "cluster_mean", "cluster_difference", "ppl_ratio", "threshold", "threshold_difference",
           "threshold_difference_paired", "jackknife", "leave_one_out",
           "bias_corrected", "bias_corrected_from_percentile", "percentile_bootstrap_mean", "LEVEL"]


@dataclass(frozen=True, eq=False)
class Interval:
    """A point estimate with its two-sided interval.

    ``estimate``, ``low`` and ``high`` are floats (ints for thresholds) or, from the vectorised
    functions, arrays of one shape. ``method`` names how the interval was built, ``n_clusters``
    how many independent clusters it rests on and ``unit`` what a cluster is ("chunks",
    "words", "prompts"); ``level`` is the nominal two-sided coverage. ``raw_estimate`` is the
    statistic before a bias correction (:func:`bias_corrected`), else None."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    method: str
    n_clusters: int
    unit: str
    level: float = LEVEL
    raw_estimate: float | np.ndarray | None = None

    @property
    def pair(self) -> tuple:
        """(low, high)."""
        return (self.low, self.high)

    def contains(self, x) -> bool | np.ndarray:
        """Whether low <= x <= high (elementwise for vectorised intervals)."""
        out = (np.asarray(self.low) <= x) & (np.asarray(x) <= np.asarray(self.high))
        return bool(out) if np.ndim(out) == 0 else out

    def as_dict(self) -> dict:
        """A JSON-ready record of a scalar interval."""
        if np.ndim(self.estimate) != 0:
            raise ValueError("as_dict needs a scalar interval; index the vectorised one first")
        out = {"estimate": _py(self.estimate), "ci": [_py(self.low), _py(self.high)], "method": self.method,
               "n_clusters": int(self.n_clusters), "unit": self.unit, "level": float(self.level)}
        if self.raw_estimate is not None:
            out["raw_estimate"] = _py(self.raw_estimate)
        return out

    def __getitem__(self, index) -> "Interval":
        """One element (or a slice) of a vectorised interval."""
        raw = None if self.raw_estimate is None else _out(np.asarray(self.raw_estimate)[index])
        return Interval(_out(np.asarray(self.estimate)[index]), _out(np.asarray(self.low)[index]),
                        _out(np.asarray(self.high)[index]), self.method, self.n_clusters, self.unit, self.level, raw)


def _py(x):
    x = np.asarray(x).item()
    return int(x) if isinstance(x, (int, np.integer)) else float(x)


def _out(x):
    """Arrays of dimension 0 become Python scalars."""
    x = np.asarray(x)
    if x.ndim:
        return x
    return int(x) if np.issubdtype(x.dtype, np.integer) else float(x)


def _t_quantile(level: float, n_clusters: int) -> float:
    """The two-sided cluster t quantile on G - 1 degrees of freedom (inf with fewer than two
    clusters: no interval)."""
    if n_clusters < 2:
        return float("inf")
    return float(stats.t.ppf(1 - (1 - level) / 2, n_clusters - 1))


def cluster_mean(values, unit: str = "chunks", level: float = LEVEL) -> Interval:
    """The mean of per-cluster values [..., G] (one value per chunk, word or prompt; the last
    axis is the cluster axis) with the cluster t interval mean +- t_{G-1} s / sqrt(G), s the
    sample standard deviation over clusters (ddof 1). The simulation in
    ``tests/machinery/test_interval_coverage.py`` measures it at G = 8, 16, 28, 32 on
    skewed values: it holds 95 % within a few points where the percentile bootstrap does not.
    With fewer than two clusters the interval is (-inf, inf)."""
    x = np.asarray(values, dtype=np.float64)
    g = x.shape[-1]
    m = x.mean(axis=-1)
    tq = _t_quantile(level, g)
    if g < 2:
        low, high = np.full_like(m, -np.inf), np.full_like(m, np.inf)
    else:
        half = tq * x.std(axis=-1, ddof=1) / np.sqrt(g)
        low, high = m - half, m + half
    return Interval(_out(m), _out(low), _out(high), f"cluster t interval on {g - 1} df", g, unit, level)


def cluster_difference(a, b, unit: str = "chunks", level: float = LEVEL) -> Interval:
    """The mean of paired per-cluster differences a - b ([..., G] each, cluster g of ``a``
    paired with cluster g of ``b``) with the cluster t interval of :func:`cluster_mean`."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iv = cluster_mean(a - b, unit, level)
    return Interval(iv.estimate, iv.low, iv.high, f"paired {iv.method}", iv.n_clusters, unit, level)


def _log_ratio(mod_nll_sums, base_nll_sums, counts):
    """The log PPL ratio r = sum_g (mod_g - base_g) / sum_g n_g over the last axis and its
    linearised (delta-method) standard error sqrt(G / (G - 1) * sum_g e_g^2) / sum_g n_g with
    residuals e_g = (mod_g - base_g) - r n_g; returns (r, se, G)."""
    mod = np.asarray(mod_nll_sums, dtype=np.float64)
    base = np.asarray(base_nll_sums, dtype=np.float64)
    d = mod - base
    n = np.broadcast_to(np.asarray(counts, dtype=np.float64), d.shape)
    g = d.shape[-1]
    total = n.sum(axis=-1)
    r = d.sum(axis=-1) / total
    e = d - r[..., None] * n
    if g < 2:
        se = np.full_like(r, np.inf)
    else:
        se = np.sqrt(g / (g - 1) * (e ** 2).sum(axis=-1)) / total
    return r, se, g


def ppl_ratio(mod_nll_sums, base_nll_sums, counts, unit: str = "chunks", level: float = LEVEL) -> Interval:
    """PPL_mod / PPL_base from per-chunk summed NLLs and per-chunk predicted-token counts.

    ``mod_nll_sums`` [..., G] (a leading axis of items or steps is allowed), ``base_nll_sums``
    and ``counts`` broadcastable to it ([G] for a shared baseline). The estimate is the ratio
    of sums exp(sum(mod - base) / sum(counts)) = PPL_mod / PPL_base over all chunks
    (science.md 0.5). The interval is the linearised ratio estimator: the log ratio's
    standard error from the per-chunk residuals (mod_g - base_g) - r n_g, a cluster t quantile
    on G - 1 df on the log scale, exponentiated (so it is never negative and contains the
    estimate)."""
    r, se, g = _log_ratio(mod_nll_sums, base_nll_sums, counts)
    tq = _t_quantile(level, g)
    with np.errstate(invalid="ignore", over="ignore"):
        low, high = np.exp(r - tq * se), np.exp(r + tq * se)
    return Interval(_out(np.exp(r)), _out(low), _out(high),
                    f"linearised ratio of sums, cluster t on {g - 1} df on the log scale", g, unit, level)


def _largest_step(steps: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The largest step (last axis of ``ok``) where ``ok`` holds; 0 where none does."""
    return np.where(ok, steps, 0).max(axis=-1)


def threshold(steps: Sequence[int], mod_nll_sums, base_nll_sums, counts, t: float, unit: str = "chunks",
              level: float = LEVEL) -> Interval:
    """"k heads removable at t x": the largest measured step whose PPL ratio is <= t (no
    monotonicity, science.md 0.5; 0 when none), with an interval by test inversion.

    ``mod_nll_sums`` [..., step, G] (one curve, or a leading axis of curves), ``base_nll_sums``
    [..., G], ``counts`` [G] or [..., G]. For every step the ratio gets the two-sided ``level``
    interval of :func:`ppl_ratio`, whose ends are one-sided bounds at 1 - (1 - level) / 2.
    low = the largest step whose upper bound is <= t (the ratio is below t with confidence);
    high = the largest step whose lower bound is <= t (every later step is above t with
    confidence); 0 when none. Because lower bound <= ratio <= upper bound, low <= estimate <=
    high always.

    Error rates: the interval misses high (the true threshold T is above ``high``) only when
    step T's lower bound exceeds t although its ratio is <= t, a one-sided error of at most
    (1 - level) / 2 at one step. It misses low when some step above T has its upper bound <= t;
    for a curve that rises past t that is, in practice, the steps just above T, and their bounds
    move together (the same chunks), so the error stays near (1 - level) / 2; a curve that
    hovers around t over many steps could raise it (the coverage test measures a monotone one)."""
    steps_arr = np.asarray(steps)
    mod = np.asarray(mod_nll_sums, dtype=np.float64)
    base = np.asarray(base_nll_sums, dtype=np.float64)
    cnt = np.asarray(counts, dtype=np.float64)
    if mod.shape[-2] != steps_arr.size:
        raise ValueError(f"mod_nll_sums has {mod.shape[-2]} steps on its second-last axis, steps has {steps_arr.size}")
    r, se, g = _log_ratio(mod, base[..., None, :], cnt[..., None, :] if cnt.ndim > 1 else cnt)
    tq = _t_quantile(level, g)
    log_t = np.log(t)
    with np.errstate(invalid="ignore"):
        estimate = _largest_step(steps_arr, r <= log_t)
        low = _largest_step(steps_arr, r + tq * se <= log_t)
        high = _largest_step(steps_arr, r - tq * se <= log_t)
    return Interval(_out(estimate.astype(np.int64)), _out(low.astype(np.int64)), _out(high.astype(np.int64)),
                    f"test inversion of per-step cluster t bounds of the PPL ratio ({g - 1} df)", g, unit, level)


def threshold_difference(steps_a: Sequence[int], mod_a, steps_b: Sequence[int] | None, mod_b, base_nll_sums, counts,
                         t: float, base_b=None, unit: str = "chunks", level: float = LEVEL) -> Interval:
    """The difference T_a - T_b of two removable-head thresholds (:func:`threshold`) measured on
    the same chunks (C20 mean-minus-zero, C23 relu-minus-mean, C24 pure-minus-mixed).

    ``mod_a`` [..., step_a, G], ``mod_b`` [..., step_b, G]; ``steps_b`` None means the steps of
    ``a``; ``base_b`` None means the same baseline. The interval is conservative (Bonferroni):
    each threshold gets its interval at level 1 - (1 - level) / 2, and the difference's is
    [low_a - high_b, high_a - low_b], which holds whenever both thresholds' intervals hold, so
    with probability at least ``level`` whatever the dependence between the curves; it is wider
    than needed when the curves move together (the coverage test measures how much)."""
    steps_b = steps_a if steps_b is None else steps_b
    base_b = base_nll_sums if base_b is None else base_b
    each = 1 - (1 - level) / 2
    ia = threshold(steps_a, mod_a, base_nll_sums, counts, t, unit, each)
    ib = threshold(steps_b, mod_b, base_b, counts, t, unit, each)
    est = np.asarray(ia.estimate) - np.asarray(ib.estimate)
    low = np.asarray(ia.low) - np.asarray(ib.high)
    high = np.asarray(ia.high) - np.asarray(ib.low)
    return Interval(_out(est), _out(low), _out(high),
                    f"difference of two test-inversion threshold intervals, each at {each:g} (Bonferroni, "
                    f"conservative; {ia.n_clusters - 1} df)", ia.n_clusters, unit, level)


def threshold_difference_paired(steps_a: Sequence[int], mod_a, steps_b: Sequence[int] | None, mod_b, base_nll_sums,
                                counts, t: float, base_b=None, n_boot: int = 2000, seed: int = 0,
                                unit: str = "chunks", level: float = LEVEL) -> Interval:
    """The difference T_a - T_b of two removable-head thresholds measured on the same chunks, with a
    paired cluster bootstrap: whole chunks drawn with replacement, the same draw for both curves
    and their baselines, each threshold re-read on the drawn chunks, the percentile interval of the
    differences, widened where needed so that it holds the estimate.

    Chosen by the coverage test over :func:`threshold_difference` (Bonferroni), which covers 1.000
    at a mean width of about 52 heads at 8 chunks and so decides nothing: the paired draw keeps
    what the two curves share (the same text), and its measured coverage at 8, 16 and 32 chunks is
    at or above 0.90 (``tests/machinery/test_interval_coverage.py``). ``mod_a`` [step_a, G] and
    ``mod_b`` [step_b, G] (one pair of curves; no leading axis)."""
    steps_b = steps_a if steps_b is None else steps_b
    base_a = np.asarray(base_nll_sums, dtype=np.float64)
    base_b = base_a if base_b is None else np.asarray(base_b, dtype=np.float64)
    cnt = np.asarray(counts, dtype=np.float64)
    sa, sb = np.asarray(steps_a), np.asarray(steps_b)
    mod_a = np.asarray(mod_a, dtype=np.float64)
    mod_b = np.asarray(mod_b, dtype=np.float64)
    g = mod_a.shape[-1]
    log_t = np.log(t)

    def read(steps, mod, base, w):  # thresholds for each row of chunk weights w [n, G]
        num = (mod - base[None, :]) @ w.T  # [step, n]
        den = w @ cnt  # [n]
        return _largest_step(steps, (num / den[None, :] <= log_t).T)

    ones = np.ones((1, g))
    est = int(read(sa, mod_a, base_a, ones)[0] - read(sb, mod_b, base_b, ones)[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, g, size=(n_boot, g))
    w = np.zeros((n_boot, g))
    np.add.at(w, (np.repeat(np.arange(n_boot), g), idx.ravel()), 1.0)
    diff = read(sa, mod_a, base_a, w) - read(sb, mod_b, base_b, w)
    a = (1 - level) / 2
    low, high = np.quantile(diff, [a, 1 - a], method="nearest")
    return Interval(est, int(min(low, est)), int(max(high, est)),
                    f"paired cluster bootstrap of the threshold difference ({n_boot} draws of {g} chunks, percentile, "
                    "widened to hold the estimate)", g, unit, level)


def leave_one_out(n_clusters: int) -> np.ndarray:
    """[G, G] cluster weights of the delete-one jackknife: row i drops cluster i (0), keeps the others (1)."""
    return 1.0 - np.eye(int(n_clusters))


def jackknife(point, loo_replicates, *, unit: str = "chunks", level: float = LEVEL) -> Interval:
    """A smooth statistic of per-cluster sums (a share of summed ΔPPL, a ratio of two ΔPPLs, a sum of
    effects, an interaction) with the delete-one-cluster jackknife: ``loo_replicates`` [G, ...] holds the
    statistic recomputed without each cluster (e.g. from :func:`leave_one_out` weights), the standard
    error is sqrt((G - 1) / G * sum_i (theta_i - mean)^2), and the interval point +- t_{G-1} se (it
    always holds the point). For a smooth function of means this is the linearised (delta-method) cluster
    t interval; its coverage at 8, 16 and 32 clusters is measured in the coverage test."""
    p = np.asarray(point, dtype=np.float64)
    reps = np.asarray(loo_replicates, dtype=np.float64)
    g = reps.shape[0]
    finite = np.isfinite(reps).all(axis=0)
    with np.errstate(all="ignore"):  # a replicate of a ratio over a zero denominator is inf: no interval
        se = np.sqrt((g - 1) / g * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0))
        half = np.where(finite, _t_quantile(level, g) * se, np.inf)
        low, high = p - half, p + half
    return Interval(_out(p), _out(low), _out(high),
                    f"delete-one-cluster jackknife, t on {g - 1} df", g, unit, level)


def bias_corrected(point, replicates, *, n_clusters: int, unit: str = "chunks", level: float = LEVEL) -> Interval:
    """Bootstrap bias correction for a rank statistic (K(90 %), a smallest K over blocks, a
    maximum of differences) from its point value and its cluster-bootstrap replicates
    ([..., n_boot], the replicate axis last).

    A bootstrap of such a statistic is biased (resampling clusters with repeats lowers a PCA
    rank again, as drawing a finite sample lowered it from the population's), so the percentile
    interval of the replicates carries the bias twice and can exclude the point. The bias is
    estimated as median(replicates) - point; the corrected estimate is 2 point -
    median(replicates) and the interval is the basic (reverse-percentile) one
    [2 point - q_hi, 2 point - q_lo], which always contains the corrected estimate (it need not
    contain the raw point, kept as ``raw_estimate``). Its coverage is measured, not assumed:
    the coverage test reports what it achieves on a PCA-rank analog."""
    p = np.asarray(point, dtype=np.float64)
    reps = np.asarray(replicates, dtype=np.float64)
    a = (1 - level) / 2
    q_lo, med, q_hi = np.quantile(reps, [a, 0.5, 1 - a], axis=-1)
    return Interval(_out(2 * p - med), _out(2 * p - q_hi), _out(2 * p - q_lo),
                    "bias-corrected (2 point - median of cluster-bootstrap replicates), basic interval",
                    int(n_clusters), unit, level, raw_estimate=_out(p))


def bias_corrected_from_percentile(point, q_lo, q_hi, *, n_clusters: int, unit: str = "chunks",
                                   level: float = LEVEL) -> Interval:
    """:func:`bias_corrected` recomputed from a stored point and a stored percentile interval
    (q_lo, q_hi) when the replicates were not kept. The basic interval [2 point - q_hi,
    2 point - q_lo] is exact; the median of the replicates is unknown, so the corrected
    estimate uses the percentile interval's midpoint in its place:
    corrected = 2 point - (q_lo + q_hi) / 2 (equal to the replicate-based one when the
    replicates are symmetric about their median). It lies inside the basic interval."""
    p = np.asarray(point, dtype=np.float64)
    lo = np.asarray(q_lo, dtype=np.float64)
    hi = np.asarray(q_hi, dtype=np.float64)
    return Interval(_out(2 * p - (lo + hi) / 2), _out(2 * p - hi), _out(2 * p - lo),
                    "bias-corrected from a stored percentile interval (2 point - its midpoint), basic interval",
                    int(n_clusters), unit, level, raw_estimate=_out(p))


def percentile_bootstrap_mean(values, n_boot: int = 2000, seed: int = 0, unit: str = "chunks",
                              level: float = LEVEL) -> Interval:
    """The plain percentile cluster bootstrap of a mean of per-cluster values [..., G]
    (clusters drawn with replacement, ``n_boot`` replicates from ``seed``).

    NOT for claims: with 8 clusters it under-covers (its spread uses the plug-in standard
    deviation and normal-like quantiles, about mean +- 1.83 s / sqrt(G) against the t
    interval's 2.36). It is kept only so that ``tests/machinery/test_interval_coverage.py``
    can show the shortfall."""
    x = np.asarray(values, dtype=np.float64)
    g = x.shape[-1]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, g, size=(n_boot, g))
    w = np.zeros((n_boot, g))
    np.add.at(w, (np.repeat(np.arange(n_boot), g), idx.ravel()), 1.0 / g)
    reps = x @ w.T  # [..., n_boot]
    a = (1 - level) / 2
    low, high = np.quantile(reps, [a, 1 - a], axis=-1)
    return Interval(_out(x.mean(axis=-1)), _out(low), _out(high),
                    f"percentile cluster bootstrap ({n_boot} replicates, seed {seed})", g, unit, level)
