"""Curve fits and model selection for the semantic-permeation experiments (science.md §0.6,
§3 exp2, §4 exp3, §5 exp3E/F/G, §8 exp8A/B).

All fits follow §0.6: ``scipy.optimize.curve_fit`` with box bounds (trust-region-reflective),
maxfev 20,000, the p0 the spec lists, models ranked by BIC ascending. Every model is a
:class:`Model` in a registry (``EXP2_MODELS``, ``LANDAU_MODELS``, ``G_MODELS``, ``PI_MODELS``,
``LINEAR_MODELS``, ``ERF_8A``); :data:`ALL_MODELS` holds them all under ``"family.name"``.
Model names inside a family are the original result keys (``power_law``, ``two_stage`` ...).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import optimize, special, stats

MAXFEV = 20000
SIGMA_PI = 1.0 / math.sqrt(math.pi)  # §8.2: 0.56419
X_CLIP = 1e-10  # §3.4, §5.4, §8.2: x clipped at 1e-10 inside x**power


# ---------------------------------------------------------------------------------------------
# §0.6 model-selection formulas
# ---------------------------------------------------------------------------------------------

def information_criteria(rss: float, n: int, k: int, small_n_guard: bool = True) -> dict:
    """LL, AIC, BIC of §0.6: LL = -(n/2) ln(RSS/n), AIC = n ln(RSS/n) + 2k,
    BIC = n ln(RSS/n) + k ln n.

    AIC = BIC = +inf (and LL = -inf) when RSS <= 0 or is not finite, or, with
    ``small_n_guard`` (src/fitting.py, exp3ef), when n <= k + 1. exp8/exp9 only guard RSS <= 0:
    pass ``small_n_guard=False`` to re-score as they did.
    """
    bad = (not np.isfinite(rss)) or rss <= 0 or n <= 0 or (small_n_guard and n <= k + 1)
    if bad:
        return {"ll": -math.inf, "aic": math.inf, "bic": math.inf}
    ll = -(n / 2.0) * math.log(rss / n)
    return {"ll": ll, "aic": 2 * k - 2 * ll, "bic": k * math.log(n) - 2 * ll}


def r2(y: Sequence[float], y_fit: Sequence[float]) -> float:
    """R^2 = 1 - RSS/SS_tot with SS_tot about the mean of y (§0.6); nan if SS_tot == 0."""
    y = np.asarray(y, dtype=float)
    y_fit = np.asarray(y_fit, dtype=float)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0:
        return math.nan
    return 1.0 - float(np.sum((y - y_fit) ** 2)) / ss_tot


# ---------------------------------------------------------------------------------------------
# Candidate models
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Model:
    """A candidate curve f(x, *params) with its parameter names, p0 and box bounds.

    ``flip_amplitude``: negate p0[0] when mean(y) < 0 (the exp2 rule, §3.4).
    ``threshold``: a parameter where the curve has a kink (the Landau l_c); with restarts,
    :func:`fit_model` also fits once per grid cell with it bounded to the cell, because the
    least-squares surface has a cusp at every x value there and a local optimum in each cell.
    ``source``: where the spec defines it.
    """

    name: str
    func: Callable[..., np.ndarray]
    param_names: tuple[str, ...]
    p0: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    formula: str
    source: str
    flip_amplitude: bool = False
    threshold: str | None = None

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def __call__(self, x, *params) -> np.ndarray:
        return np.asarray(self.func(np.asarray(x, dtype=float), *params), dtype=float)

    def start(self, y: np.ndarray) -> np.ndarray:
        p0 = np.array(self.p0, dtype=float)
        if self.flip_amplitude and p0.size and np.mean(y) < 0:
            p0[0] = -p0[0]
        return p0


def _xc(x):
    return np.clip(x, X_CLIP, None)


# exp2 (§3.4): amplitude models in x = l/L, fitted to f_mean at i = 0..L-1.
def _power_law_amp(x, A, beta):
    return A * _xc(x) ** beta


def _tanh(x, A, kappa, l_c):
    return A * np.tanh(kappa * (x - l_c))


def _sigmoid_amp(x, A, kappa, l_c):
    return A * special.expit(kappa * (x - l_c))


def _two_stage(x, A, beta, B, l_c, w):
    return A * _xc(x) ** beta + B * special.expit(w * (x - l_c))


# The proper Landau form of §3.7 (README form, never fitted by the original).
def _landau(x, A, beta, l_c):
    return A * np.clip(x - l_c, 0.0, None) ** beta


def _landau_step(x, A, beta, l_c, B, l_s, w):
    return _landau(x, A, beta, l_c) + B * special.expit(w * (x - l_s))


# exp3E/F/G (§5.4): shape models of g(l/L), no amplitude.
def _g_power_law(x, alpha):
    return _xc(x) ** alpha


def _g_exponential(x, tau):
    return 1.0 - np.exp(-x / tau)


def _g_sigmoid(x, kappa, x_c):
    return special.expit(kappa * (x - x_c))


def _g_erf(x, sigma):
    return special.erf(x / (sigma * math.sqrt(2.0)))


def _g_log(x, tau):
    return np.log1p(x / tau) / np.log1p(1.0 / tau)


# exp8B (§8.2): pi-shaped curves.
def _cos_pi_0p(x):
    return (1.0 - np.cos(np.pi * x)) / 2.0


def _cos_pi_1p(x, alpha):
    return (1.0 - np.cos(np.pi * _xc(x) ** alpha)) / 2.0


def _sin_pi_0p(x):
    return np.sin(np.pi * x / 2.0)


def _sin_pi_1p(x, alpha):
    return np.sin(np.pi * _xc(x) ** alpha / 2.0)


# Linear response (§3.1 A, §4.2): sigma = h * f, or with an intercept as linregress does.
def _linear(x, intercept, slope):
    return intercept + slope * x


def _proportional(x, slope):
    return slope * x


_INF = math.inf

EXP2_MODELS: dict[str, Model] = {
    "power_law": Model("power_law", _power_law_amp, ("A", "beta"), (0.5, 1.0), (-5, 0.01), (5, 5),
                       "A*x^beta", "§3.4", flip_amplitude=True),
    "tanh": Model("tanh", _tanh, ("A", "kappa", "l_c"), (0.3, 5.0, 0.5), (-5, 0.1, 0.0), (5, 50, 1.0),
                  "A*tanh(kappa*(x-l_c))", "§3.4", flip_amplitude=True),
    "sigmoid": Model("sigmoid", _sigmoid_amp, ("A", "kappa", "l_c"), (0.5, 10.0, 0.5), (-5, 0.1, 0.0),
                     (5, 50, 1.0), "A/(1+exp(-kappa*(x-l_c)))", "§3.4", flip_amplitude=True),
    "two_stage": Model("two_stage", _two_stage, ("A", "beta", "B", "l_c", "w"), (0.3, 1.0, 0.1, 0.9, 20.0),
                       (-5, 0.01, -5, 0.5, 1.0), (5, 5, 5, 1.0, 100.0),
                       "A*x^beta + B/(1+exp(-w*(x-l_c)))", "§3.4", flip_amplitude=True),
}

# Bounds and p0 are ours (the spec gives none): the exp2 amplitude/exponent bounds, the
# mean-field beta = 0.5 as start, and the two_stage step bounds for the final step.
LANDAU_MODELS: dict[str, Model] = {
    "landau": Model("landau", _landau, ("A", "beta", "l_c"), (0.5, 0.5, 0.3), (-5, 0.01, 0.0), (5, 5, 1.0),
                    "A*(x-l_c)^beta*Theta(x-l_c)", "§3.7 (README form)", flip_amplitude=True, threshold="l_c"),
    "landau_step": Model("landau_step", _landau_step, ("A", "beta", "l_c", "B", "l_s", "w"),
                         (0.5, 0.5, 0.3, 0.1, 0.9, 20.0), (-5, 0.01, 0.0, -5, 0.5, 1.0), (5, 5, 1.0, 5, 1.0, 100.0),
                         "A*(x-l_c)^beta*Theta(x-l_c) + B/(1+exp(-w*(x-l_s)))", "§3.7 (Landau + final step)",
                         flip_amplitude=True, threshold="l_c"),
}

G_MODELS: dict[str, Model] = {
    "power_law": Model("power_law", _g_power_law, ("alpha",), (1.0,), (0.01,), (10.0,), "x^alpha", "§5.4"),
    "exponential": Model("exponential", _g_exponential, ("tau",), (0.3,), (0.01,), (10.0,), "1-exp(-x/tau)",
                         "§5.4"),
    "sigmoid": Model("sigmoid", _g_sigmoid, ("kappa", "x_c"), (10.0, 0.5), (0.1, 0.0), (100.0, 1.0),
                     "1/(1+exp(-kappa*(x-x_c)))", "§5.4"),
    "erf": Model("erf", _g_erf, ("sigma",), (0.4,), (0.01,), (10.0,), "erf(x/(sigma*sqrt2))", "§5.4"),
    "log": Model("log", _g_log, ("tau",), (0.3,), (0.001,), (10.0,), "ln(1+x/tau)/ln(1+1/tau)", "§5.4"),
}

# exp8A fits the same erf with p0 0.5 instead of exp3ef's 0.4 (§8.2).
ERF_8A = Model("erf", _g_erf, ("sigma",), (0.5,), (0.01,), (10.0,), "erf(x/(sigma*sqrt2))", "§8.2 (8A)")

PI_MODELS: dict[str, Model] = {
    "cos_pi_0p": Model("cos_pi_0p", _cos_pi_0p, (), (), (), (), "[1-cos(pi*x)]/2", "§8.2 (8B)"),
    "cos_pi_1p": Model("cos_pi_1p", _cos_pi_1p, ("alpha",), (1.0,), (0.01,), (10.0,), "[1-cos(pi*x^alpha)]/2",
                       "§8.2 (8B)"),
    "sin_pi_0p": Model("sin_pi_0p", _sin_pi_0p, (), (), (), (), "sin(pi*x/2)", "§8.2 (8B)"),
    "sin_pi_1p": Model("sin_pi_1p", _sin_pi_1p, ("alpha",), (1.0,), (0.01,), (10.0,), "sin(pi*x^alpha/2)",
                       "§8.2 (8B)"),
}

LINEAR_MODELS: dict[str, Model] = {
    "linear": Model("linear", _linear, ("intercept", "slope"), (0.0, 1.0), (-_INF, -_INF), (_INF, _INF),
                    "intercept + slope*x", "§4.2 (per-layer OLS)"),
    "proportional": Model("proportional", _proportional, ("slope",), (1.0,), (-_INF,), (_INF,), "slope*x",
                          "§3.1 A (sigma = h*f)"),
}

ALL_MODELS: dict[str, Model] = {
    **{f"exp2.{k}": m for k, m in EXP2_MODELS.items()},
    **{f"landau.{k}": m for k, m in LANDAU_MODELS.items()},
    **{f"g.{k}": m for k, m in G_MODELS.items()},
    "exp8a.erf": ERF_8A,
    **{f"pi.{k}": m for k, m in PI_MODELS.items()},
    **{f"linear.{k}": m for k, m in LINEAR_MODELS.items()},
}


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------

@dataclass
class FitResult:
    """One fit (§0.6). Failed fits have success False, nan parameters and inf AIC/BIC."""

    model: str
    params: dict[str, float]
    rss: float
    r2: float
    aic: float
    bic: float
    ll: float
    n: int
    n_params: int
    y_fit: np.ndarray
    success: bool
    on_bound: tuple[str, ...] = ()
    message: str = ""

    def as_dict(self) -> dict:
        return {"model": self.model, "params": dict(self.params), "rss": self.rss, "r2": self.r2,
                "aic": self.aic, "bic": self.bic, "ll": self.ll, "n": self.n, "n_params": self.n_params,
                "success": self.success, "on_bound": list(self.on_bound), "message": self.message}


def _failed(model: Model, n: int, message: str) -> FitResult:
    return FitResult(model.name, {p: math.nan for p in model.param_names}, math.inf, math.nan, math.inf,
                     math.inf, -math.inf, n, model.n_params, np.full(n, np.nan), False, (), message)


def _starts(model: Model, x: np.ndarray, y: np.ndarray, restarts: int,
            seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(p0, lower, upper) triples: the spec's p0 with the model's bounds first; then
    ``restarts`` deterministic random starts inside the bounds (log-uniform where a positive
    range spans more than two decades); then, for a model with a threshold parameter, one fit
    per grid cell: the threshold bounded to the cell between neighbouring x values (and the
    end cells), started at its midpoint, the others at p0."""
    lo, hi = np.array(model.lower, float), np.array(model.upper, float)
    p_first = model.start(y)
    starts = [(p_first, lo, hi)]
    rng = np.random.default_rng(seed)
    for _ in range(restarts):
        p = np.empty(model.n_params)
        for j in range(model.n_params):
            if np.isfinite(lo[j]) and np.isfinite(hi[j]):
                if lo[j] > 0 and hi[j] / lo[j] > 100:
                    p[j] = math.exp(rng.uniform(math.log(lo[j]), math.log(hi[j])))
                else:
                    p[j] = rng.uniform(lo[j], hi[j])
            else:
                p[j] = p_first[j] + rng.normal() * max(1.0, abs(p_first[j]))
        starts.append((p, lo, hi))
    if restarts > 0 and model.threshold is not None:
        j = model.param_names.index(model.threshold)
        edges = np.unique(np.concatenate([[lo[j], hi[j]], x[(x > lo[j]) & (x < hi[j])]]))
        for a, b in zip(edges[:-1], edges[1:]):
            p, cell_lo, cell_hi = p_first.copy(), lo.copy(), hi.copy()
            p[j], cell_lo[j], cell_hi[j] = (a + b) / 2, a, b
            starts.append((p, cell_lo, cell_hi))
    return starts


def _on_bound(model: Model, popt: np.ndarray) -> tuple[str, ...]:
    out = []
    for name, v, lo, hi in zip(model.param_names, popt, model.lower, model.upper):
        span = (hi - lo) if np.isfinite(hi - lo) else 1.0
        tol = 1e-6 * span + 1e-12
        if (np.isfinite(lo) and v - lo <= tol) or (np.isfinite(hi) and hi - v <= tol):
            out.append(name)
    return tuple(out)


def fit_model(model: Model, x: Sequence[float], y: Sequence[float], *, restarts: int = 0, seed: int = 0,
              maxfev: int = MAXFEV, small_n_guard: bool = True) -> FitResult:
    """Least-squares fit of ``model`` to (x, y) as in §0.6: curve_fit with the model's bounds
    and p0 (sign-flipped for exp2 models when mean(y) < 0, §3.4), maxfev 20,000.

    ``restarts`` > 0 adds deterministic random starts (and one fit per grid cell of a
    threshold parameter, see :class:`Model`) and keeps the lowest RSS; this is not in the
    original, restarts 0 reproduces it. Zero-parameter models (§8.2) are evaluated directly.
    Never raises on a failed fit: it returns success False with inf criteria.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    n, k = y.size, model.n_params
    if x.size != n:
        raise ValueError(f"x has {x.size} points and y {n}")
    if n == 0 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return _failed(model, n, "empty or non-finite data")
    best: tuple[float, np.ndarray] | None = None
    message = ""
    if k == 0:
        best = (float(np.sum((y - model(x)) ** 2)), np.empty(0))
    else:
        bounded = np.any(np.isfinite(model.lower)) or np.any(np.isfinite(model.upper))
        for p0, lower, upper in _starts(model, x, y, restarts, seed):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kwargs = {"bounds": (lower, upper)} if bounded else {}
                    popt, _ = optimize.curve_fit(model.func, x, y, p0=p0, maxfev=maxfev, **kwargs)
                    rss = float(np.sum((y - model(x, *popt)) ** 2))
            except Exception as exc:  # noqa: BLE001 - any optimiser failure is a failed fit
                message = f"{type(exc).__name__}: {exc}"
                continue
            if np.isfinite(rss) and np.all(np.isfinite(popt)) and (best is None or rss < best[0]):
                best = (rss, popt)
    if best is None:
        return _failed(model, n, message or "no finite fit")
    rss, popt = best
    y_fit = model(x, *popt)
    crit = information_criteria(rss, n, k, small_n_guard)
    return FitResult(model.name, {p: float(v) for p, v in zip(model.param_names, popt)}, rss, r2(y, y_fit),
                     crit["aic"], crit["bic"], crit["ll"], n, k, y_fit, True, _on_bound(model, popt), message)


def fit_all(x: Sequence[float], y: Sequence[float], models: Iterable[Model] | dict[str, Model],
            **kwargs) -> list[FitResult]:
    """Fit every model and rank by BIC ascending (§0.6); ties keep the given order. Failed
    fits come last, and so, by the §0.6 guard, do exact fits (RSS = 0) and fits with
    n <= k + 1 (BIC = inf). Keyword arguments go to :func:`fit_model`."""
    ms = list(models.values()) if isinstance(models, dict) else list(models)
    results = [fit_model(m, x, y, **kwargs) for m in ms]
    return sorted(results, key=lambda r: r.bic)


# ---------------------------------------------------------------------------------------------
# Bootstrap over prompts (§3.7, §5.7, §8.7 "stronger tests")
# ---------------------------------------------------------------------------------------------

@dataclass
class BootstrapResult:
    """Percentile intervals of the parameters of fits to resampled mean curves."""

    model: str
    point: FitResult
    samples: np.ndarray  # [n_boot, n_params], nan rows for failed fits
    intervals: dict[str, tuple[float, float]]
    level: float
    n_failed: int = 0
    param_names: tuple[str, ...] = field(default_factory=tuple)


def bootstrap_params(model: Model, x: Sequence[float], y_matrix: np.ndarray, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95, **fit_kwargs) -> BootstrapResult:
    """Bootstrap over prompts: rows of ``y_matrix`` are per-prompt curves on ``x``; each
    replicate resamples rows with replacement and fits the mean curve. Returns the fit of the
    full mean curve and percentile intervals (default 95 %) from the successful replicates."""
    y_matrix = np.asarray(y_matrix, dtype=float)
    if y_matrix.ndim != 2:
        raise ValueError("y_matrix must be [n_prompts, n_points]")
    m = y_matrix.shape[0]
    point = fit_model(model, x, y_matrix.mean(axis=0), **fit_kwargs)
    rng = np.random.default_rng(seed)
    samples = np.full((n_boot, model.n_params), np.nan)
    for b in range(n_boot):
        rows = rng.integers(0, m, size=m)
        res = fit_model(model, x, y_matrix[rows].mean(axis=0), **fit_kwargs)
        if res.success:
            samples[b] = [res.params[p] for p in model.param_names]
    ok = ~np.any(np.isnan(samples), axis=1) if model.n_params else np.ones(n_boot, bool)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    intervals = {}
    for j, p in enumerate(model.param_names):
        if ok.any():
            lo, hi = np.quantile(samples[ok, j], q)
            intervals[p] = (float(lo), float(hi))
        else:
            intervals[p] = (math.nan, math.nan)
    return BootstrapResult(model.name, point, samples, intervals, level, int((~ok).sum()), model.param_names)


# ---------------------------------------------------------------------------------------------
# Linear response (§3.2 exp2, §4.2 exp3) and g(l/L) (§5.2)
# ---------------------------------------------------------------------------------------------

def exp2_h(sigma_final: Sequence[float], idx_a: int, idx_b: int) -> np.ndarray | None:
    """h per condition from the final-layer sigma (§3.2): m, r from the strong_A / strong_B
    conditions, h(c) = (sigma_L(c) - m)/r. None when |r| < 1e-8 (word skipped)."""
    s = np.asarray(sigma_final, dtype=float)
    m = (s[idx_a] + s[idx_b]) / 2.0
    r = (s[idx_a] - s[idx_b]) / 2.0
    if abs(r) < 1e-8:
        return None
    return (s - m) / r


def exp3_h(sigma_final: Sequence[float]) -> np.ndarray:
    """h(p) = sigma_L(p)/max_p |sigma_L(p)| (§4.2)."""
    s = np.asarray(sigma_final, dtype=float)
    return s / np.max(np.abs(s))


@dataclass
class Collapse:
    """f_c(i) = sigma_c(i)/h(c) for the conditions with |h| > h_min, their mean and the
    collapse variance (mean over layers of the across-condition population variance)."""

    variance: float
    f_mean: np.ndarray
    f: np.ndarray  # [n_included, n_layers]
    included: np.ndarray  # bool per condition


def collapse_variance(sigma: np.ndarray, h: Sequence[float], h_min: float = 0.05) -> Collapse:
    """Collapse variance of §3.2: sigma is [condition, layer] (i = 0..L), h per condition.
    f_c = sigma_c/h(c) (sigma not offset by m) for |h(c)| > h_min; variance = mean over i of
    np.var over conditions (ddof 0). Works for the graded prompts of exp3 as well."""
    sigma = np.asarray(sigma, dtype=float)
    h = np.asarray(h, dtype=float)
    if sigma.ndim != 2 or sigma.shape[0] != h.size:
        raise ValueError("sigma must be [condition, layer] with one h per condition")
    keep = np.abs(h) > h_min
    if not keep.any():
        nan = np.full(sigma.shape[1], np.nan)
        return Collapse(math.nan, nan, np.empty((0, sigma.shape[1])), keep)
    f = sigma[keep] / h[keep, None]
    return Collapse(float(np.mean(np.var(f, axis=0))), f.mean(axis=0), f, keep)


@dataclass
class LayerResponse:
    """Per-layer OLS of sigma_i on h (§4.2): arrays over layers i = 0..L."""

    slope: np.ndarray
    intercept: np.ndarray
    r2: np.ndarray
    p_value: np.ndarray
    stderr: np.ndarray
    residuals: np.ndarray  # [layer, prompt]
    h_star: list[float | None]


def layer_linear_response(h: Sequence[float], sigma: np.ndarray, threshold: float = 0.05) -> LayerResponse:
    """exp3 linear response (§4.2): ``scipy.stats.linregress`` of sigma[:, i] on h per layer
    (sigma is [prompt, layer]); h*(i) = min |h| among prompts whose |residual|/range_i exceeds
    ``threshold`` (None if none, or range_i < 1e-8)."""
    h = np.asarray(h, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    n_layers = sigma.shape[1]
    out = {k: np.empty(n_layers) for k in ("slope", "intercept", "r2", "p_value", "stderr")}
    resid = np.empty((n_layers, h.size))
    h_star: list[float | None] = []
    for i in range(n_layers):
        s = sigma[:, i]
        lr = stats.linregress(h, s)
        out["slope"][i], out["intercept"][i] = lr.slope, lr.intercept
        out["r2"][i], out["p_value"][i], out["stderr"][i] = lr.rvalue ** 2, lr.pvalue, lr.stderr
        e = s - (lr.intercept + lr.slope * h)
        resid[i] = e
        rng_i = float(s.max() - s.min())
        bad = np.abs(e) / rng_i > threshold if rng_i >= 1e-8 else np.zeros(h.size, bool)
        h_star.append(float(np.min(np.abs(h[bad]))) if bad.any() else None)
    return LayerResponse(out["slope"], out["intercept"], out["r2"], out["p_value"], out["stderr"], resid, h_star)


def normalise_g(f: Sequence[float]) -> np.ndarray:
    """g = f/max(f) (§5.2; the maximum, not the maximum absolute value)."""
    f = np.asarray(f, dtype=float)
    return f / np.max(f)


def truncate_g(x: Sequence[float], g: Sequence[float], drop: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The report's "truncated" fit data (§5.4, not in the original code): drop the last
    ``drop`` points and re-normalise g to max 1 over the rest."""
    x = np.asarray(x, dtype=float)[:-drop]
    return x, normalise_g(np.asarray(g, dtype=float)[:-drop])


# ---------------------------------------------------------------------------------------------
# exp8A: erf with sigma fixed at 1/sqrt(pi) (§8.2)
# ---------------------------------------------------------------------------------------------

def lr_statistic(rss_fixed: float, rss_free: float, n: int) -> float:
    """chi^2 = n ln(RSS_fixed/RSS_free), 0 if RSS_fixed < RSS_free (§8.2)."""
    if rss_fixed < rss_free:
        return 0.0
    return float(n * math.log(rss_fixed / rss_free))


@dataclass
class LRTest:
    sigma_free: float
    sigma_fixed: float
    rss_free: float
    rss_fixed: float
    statistic: float
    p_value: float
    r2_free: float
    r2_fixed: float
    diff_pct: float  # |sigma_free - sigma_fixed| / sigma_fixed * 100
    n: int
    reject: bool  # p < alpha
    success: bool


def lr_test_fixed_sigma(x: Sequence[float], y: Sequence[float], sigma0: float = SIGMA_PI,
                        alpha: float = 0.05) -> LRTest:
    """exp8A (§8.2): fit erf(x/(sigma sqrt2)) with sigma free (p0 0.5, [0.01, 10]) and compare
    with sigma fixed at ``sigma0`` (default 1/sqrt(pi)) by chi^2 = n ln(RSS_fixed/RSS_free),
    df 1, p = 1 - F_chi2(1); reject iff p < alpha."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    free = fit_model(ERF_8A, x, y)
    y_fixed = _g_erf(x, sigma0)
    rss_fixed = float(np.sum((y - y_fixed) ** 2))
    if not free.success or free.rss <= 0:
        return LRTest(free.params["sigma"], sigma0, free.rss, rss_fixed, math.nan, math.nan, free.r2,
                      r2(y, y_fixed), math.nan, y.size, False, False)
    stat = lr_statistic(rss_fixed, free.rss, y.size)
    p = float(stats.chi2.sf(stat, 1))
    s = free.params["sigma"]
    return LRTest(s, sigma0, free.rss, rss_fixed, stat, p, free.r2, r2(y, y_fixed), abs(s - sigma0) / sigma0 * 100,
                  y.size, bool(p < alpha), True)


def erf_sigma_profile_ci(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Profile-likelihood interval of the erf width (§8.7):
    {sigma : RSS(sigma) <= RSS_min * exp(chi2_1(level)/n)}, clipped to the bounds [0.01, 10]."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    free = fit_model(ERF_8A, x, y)
    if not free.success or free.rss <= 0:
        return math.nan, math.nan
    s_hat = free.params["sigma"]
    cut = free.rss * math.exp(stats.chi2.ppf(level, 1) / y.size)

    def excess(s):
        return float(np.sum((y - _g_erf(x, s)) ** 2)) - cut

    lo_b, hi_b = ERF_8A.lower[0], ERF_8A.upper[0]
    lo = lo_b if excess(lo_b) <= 0 else optimize.brentq(excess, lo_b, s_hat, xtol=1e-10)
    hi = hi_b if excess(hi_b) <= 0 else optimize.brentq(excess, s_hat, hi_b, xtol=1e-10)
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# Landau form on a grid: many curves at once (§3.7 "stronger test", bootstrap over prompts)
# ---------------------------------------------------------------------------------------------

BETA_GRID = np.geomspace(0.01, 5.0, 241)


@dataclass
class LandauGrid:
    """Least-squares fits of A*(x-l_c)^beta*Theta(x-l_c) to each row of a curve matrix, with A
    solved exactly for every (beta, l_c) of the grid and clipped to the model's [-5, 5]."""

    beta: np.ndarray  # [m]
    l_c: np.ndarray  # [m]
    amplitude: np.ndarray  # [m]
    rss: np.ndarray  # [m]
    beta_grid: np.ndarray  # [n_beta]
    profile_rss: np.ndarray  # [m, n_beta]: min over l_c and A of the RSS at each beta
    n: int

    def bic(self) -> np.ndarray:
        return np.array([information_criteria(r, self.n, 3)["bic"] for r in self.rss])


def landau_grid_fit(x: Sequence[float], curves: np.ndarray, beta_grid: np.ndarray | None = None,
                    n_lc: int = 161, refine: bool = False) -> LandauGrid:
    """Fit the Landau form (``LANDAU_MODELS['landau']``) to every row of ``curves`` [m, n] on
    ``x`` [n] by exhaustive search over beta (``beta_grid``, default 241 log-spaced values in
    [0.01, 5]) and l_c (``n_lc`` values in [0, max x)), the amplitude solved in closed form.
    Deterministic and global on the grid (curve_fit with its p0 often stops at a bound here);
    the profile RSS over beta serves likelihood-ratio tests of a common beta. ``refine`` polishes
    each row's optimum with curve_fit started there (kept only where it lowers the RSS)."""
    x = np.asarray(x, float)
    y = np.atleast_2d(np.asarray(curves, float))
    bg = BETA_GRID if beta_grid is None else np.asarray(beta_grid, float)
    lc = np.linspace(0.0, x.max(), n_lc, endpoint=False)
    lo, hi = LANDAU_MODELS["landau"].lower[0], LANDAU_MODELS["landau"].upper[0]
    d = np.clip(x[None, :] - lc[:, None], 0.0, None)  # [n_lc, n]
    with np.errstate(divide="ignore"):
        logd = np.where(d > 0, np.log(np.where(d > 0, d, 1.0)), -np.inf)
    basis = np.exp(bg[:, None, None] * logd[None])  # [n_beta, n_lc, n]; 0 where x <= l_c
    bb = (basis ** 2).sum(-1)  # [n_beta, n_lc]
    by = np.einsum("bln,mn->mbl", basis, y)  # [m, n_beta, n_lc]
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(bb > 0, by / np.where(bb > 0, bb, 1.0), 0.0)
    a = np.clip(a, lo, hi)
    yy = (y ** 2).sum(-1)[:, None, None]
    rss = yy - 2 * a * by + a ** 2 * bb  # [m, n_beta, n_lc]
    profile = rss.min(-1)  # [m, n_beta]
    flat = rss.reshape(len(y), -1).argmin(1)
    ib, il = np.unravel_index(flat, rss.shape[1:])
    rows = np.arange(len(y))
    beta, l_c, amp, best = bg[ib].copy(), lc[il].copy(), a[rows, ib, il].copy(), np.maximum(rss[rows, ib, il], 0.0)
    if refine:
        model = LANDAU_MODELS["landau"]
        for r in rows:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    p, _ = optimize.curve_fit(model.func, x, y[r], p0=[amp[r], beta[r], l_c[r]], maxfev=MAXFEV,
                                              bounds=(model.lower, model.upper))
            except Exception:  # noqa: BLE001 - keep the grid optimum
                continue
            new = float(np.sum((y[r] - model(x, *p)) ** 2))
            if np.isfinite(new) and new < best[r]:
                amp[r], beta[r], l_c[r], best[r] = p[0], p[1], p[2], new
    return LandauGrid(beta, l_c, amp, best, bg, np.maximum(profile, 0.0), x.size)


def common_parameter_lr(profiles: Sequence[np.ndarray], n: Sequence[int]) -> dict:
    """Likelihood-ratio test that several curves share one value of a parameter, from each
    curve's profile RSS over a common grid of that parameter (Gaussian errors, a variance per
    curve): LR = min over the grid of sum_w n_w ln(RSS_w(value)/min RSS_w), df = k - 1."""
    prof = np.asarray(profiles, float)
    n_arr = np.asarray(n, float)
    floor = np.maximum(prof.min(1, keepdims=True), 1e-300)
    total = (n_arr[:, None] * np.log(np.maximum(prof, 1e-300) / floor)).sum(0)
    j = int(np.argmin(total))
    k = prof.shape[0]
    stat = float(total[j])
    return {"statistic": stat, "df": k - 1, "p_value": float(stats.chi2.sf(stat, k - 1)) if k > 1 else math.nan,
            "common_index": j}


def cochran_q(estimates: Sequence[float], standard_errors: Sequence[float], se_floor: float = 1e-3) -> dict:
    """Heterogeneity of estimates with standard errors (e.g. from a bootstrap): Q = sum
    ((b_w - b_bar)/se_w)^2 with the inverse-variance weighted mean b_bar, df = k - 1."""
    b = np.asarray(estimates, float)
    se = np.maximum(np.asarray(standard_errors, float), se_floor)
    w = 1.0 / se ** 2
    mean = float((w * b).sum() / w.sum())
    q = float((((b - mean) / se) ** 2).sum())
    k = b.size
    return {"statistic": q, "df": k - 1, "p_value": float(stats.chi2.sf(q, k - 1)) if k > 1 else math.nan,
            "weighted_mean": mean, "se_floor": se_floor}


# ---------------------------------------------------------------------------------------------
# exp2's power law A*x^beta, profiled exactly over beta (§3.8: beta from the power_law fit)
# ---------------------------------------------------------------------------------------------

@dataclass
class PowerLawProfile:
    """Least-squares fits of ``EXP2_MODELS['power_law']`` (A*x^beta, x clipped at 1e-10) to each
    row of a curve matrix. For a fixed beta the model is linear in A, so A is solved exactly
    (and clipped to the model's [-5, 5]): the profile RSS over beta is exact, not a search."""

    beta: np.ndarray  # [m]
    amplitude: np.ndarray  # [m]
    rss: np.ndarray  # [m]
    beta_grid: np.ndarray  # [n_beta]
    profile_rss: np.ndarray  # [m, n_beta]: min over A of the RSS at each beta of the grid
    n: int

    def bic(self) -> np.ndarray:
        return np.array([information_criteria(r, self.n, 2)["bic"] for r in self.rss])

    def on_bound(self) -> np.ndarray:
        """Rows whose beta sits on a bound of the model ([0.01, 5])."""
        lo, hi = EXP2_MODELS["power_law"].lower[1], EXP2_MODELS["power_law"].upper[1]
        return (self.beta <= lo * (1 + 1e-6)) | (self.beta >= hi * (1 - 1e-6))


def power_law_profile(x: Sequence[float], curves: np.ndarray, beta_grid: np.ndarray | None = None,
                      refine: bool = True) -> PowerLawProfile:
    """Fit A*x^beta (``EXP2_MODELS['power_law']``, the spec's estimator of beta, §3.8) to every row
    of ``curves`` [m, n] on ``x`` [n]: the exact profile RSS over ``beta_grid`` (default
    :data:`BETA_GRID`, 241 log-spaced values in the model's [0.01, 5]) and, with ``refine``, each
    row's optimum polished by a bounded scalar minimisation of the exact profile between the grid
    neighbours of its grid minimum. Global on the grid, deterministic, vectorised over rows; the
    profile serves :func:`common_parameter_lr`."""
    x = np.asarray(x, float)
    y = np.atleast_2d(np.asarray(curves, float))
    bg = BETA_GRID if beta_grid is None else np.asarray(beta_grid, float)
    lo, hi = EXP2_MODELS["power_law"].lower[0], EXP2_MODELS["power_law"].upper[0]
    basis = _xc(x)[None, :] ** bg[:, None]  # [n_beta, n]
    bb = (basis ** 2).sum(-1)  # [n_beta]
    by = y @ basis.T  # [m, n_beta]
    a = np.clip(by / bb[None, :], lo, hi)
    yy = (y ** 2).sum(-1)[:, None]
    profile = np.maximum(yy - 2 * a * by + a ** 2 * bb[None, :], 0.0)
    ib = profile.argmin(1)
    rows = np.arange(len(y))
    beta, amp, best = bg[ib].copy(), a[rows, ib].copy(), profile[rows, ib].copy()
    if refine:
        def rss_at(b: float, yr: np.ndarray) -> tuple[float, float]:
            v = _xc(x) ** b
            amp_b = float(np.clip((v @ yr) / (v @ v), lo, hi))
            return float(np.sum((yr - amp_b * v) ** 2)), amp_b

        for r in rows:
            j = ib[r]
            left, right = bg[max(j - 1, 0)], bg[min(j + 1, len(bg) - 1)]
            if right <= left:
                continue
            res = optimize.minimize_scalar(lambda b: rss_at(b, y[r])[0], bounds=(left, right), method="bounded",
                                           options={"xatol": 1e-8})
            new, amp_b = rss_at(float(res.x), y[r])
            if np.isfinite(new) and new < best[r]:
                beta[r], amp[r], best[r] = float(res.x), amp_b, new
    return PowerLawProfile(beta, amp, best, bg, profile, x.size)
