"""Curve fits and model selection (semphase.fits; science.md §0.6, §3, §4, §5, §8).

Recovery tests generate curves from a model with small gaussian noise and check that the fit
returns the parameters. They cannot catch a wrong formula (generation and fit share it), so
``test_formula_at_hand_points`` pins each formula to values computed by hand.
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from scipy import special, stats

from semphase import fits
from semphase.fits import (ALL_MODELS, ERF_8A, EXP2_MODELS, G_MODELS, LANDAU_MODELS, LINEAR_MODELS, PI_MODELS,
                           SIGMA_PI, Model, bootstrap_params, collapse_variance, erf_sigma_profile_ci, exp2_h,
                           exp3_h, fit_all, fit_model, information_criteria, layer_linear_response, lr_statistic,
                           lr_test_fixed_sigma, normalise_g, r2, truncate_g)

pytestmark = pytest.mark.machinery

# ---------------------------------------------------------------------------------------------
# Recovery: per model, parameter ranges well inside the bounds, the grid size, the restarts.
# Spec models are fitted as the original did (spec p0 only, restarts 0), except two_stage:
# from its spec p0 alone it lands in a wrong local optimum for ~2 % of clean curves, which is
# the fragility §3.7 warns about, so its recovery test uses 8 extra starts. The Landau forms
# (ours, §3.7) need extra starts too: (x - l_c)^beta has an infinite slope at l_c for beta < 1.
# ---------------------------------------------------------------------------------------------

LOC = {"l_c", "x_c", "l_s"}  # locations in x: absolute tolerance 0.03 (grid spacing 0.02-0.08)
RATE = {"kappa", "w"}  # steepness: relative 30 % (weakly identified from a few points)
REL = 0.15  # amplitudes, exponents, widths: relative 15 % (of max(|p|, 0.1))

# key: (grid points, restarts, signed amplitude, per-parameter (lo, hi))
RECOVERY = {
    "exp2.power_law": (25, 0, True, [(0.3, 2.0), (0.3, 3.0)]),
    "exp2.tanh": (25, 0, True, [(0.3, 2.0), (2.0, 8.0), (0.3, 0.7)]),
    "exp2.sigmoid": (25, 0, True, [(0.5, 2.0), (6.0, 20.0), (0.3, 0.7)]),
    "exp2.two_stage": (49, 8, False, [(0.3, 1.0), (0.5, 2.0), (0.3, 0.6), (0.65, 0.85), (15.0, 40.0)]),
    "landau.landau": (25, 8, True, [(0.8, 2.0), (0.3, 1.2), (0.15, 0.5)]),
    "landau.landau_step": (49, 8, False, [(0.8, 1.5), (0.5, 1.0), (0.15, 0.4), (0.3, 0.8), (0.7, 0.85),
                                          (25.0, 60.0)]),
    "g.power_law": (13, 0, False, [(0.3, 3.0)]),
    "g.exponential": (13, 0, False, [(0.1, 2.0)]),
    "g.sigmoid": (13, 0, False, [(3.0, 20.0), (0.3, 0.7)]),
    "g.erf": (13, 0, False, [(0.2, 2.0)]),
    "g.log": (13, 0, False, [(0.05, 2.0)]),
    "exp8a.erf": (13, 0, False, [(0.2, 2.0)]),
    "pi.cos_pi_1p": (13, 0, False, [(0.5, 2.0)]),
    "pi.sin_pi_1p": (13, 0, False, [(0.5, 2.0)]),
    "linear.linear": (13, 0, False, [(-1.0, 1.0), (-2.0, 2.0)]),
    "linear.proportional": (13, 0, False, [(-2.0, 2.0)]),
}
NOISE_SD = 0.003


def _param_error(model: Model, true, est) -> dict:
    """Error of each parameter in units of its tolerance (> 1 fails)."""
    out = {}
    for name, a, b in zip(model.param_names, true, est):
        if name in LOC:
            out[name] = abs(a - b) / 0.03
        elif name in RATE:
            out[name] = abs(a - b) / abs(a) / 0.3
        else:
            out[name] = abs(a - b) / max(abs(a), 0.1) / REL
    return out


def test_every_fitted_model_has_a_recovery_case():
    fitted = {k for k, m in ALL_MODELS.items() if m.n_params > 0}
    assert fitted == set(RECOVERY)


@pytest.mark.parametrize("key", sorted(RECOVERY))
@settings(deadline=None, max_examples=12)
@given(data=st.data())
def test_fit_recovers_generating_parameters(key, data):
    model = ALL_MODELS[key]
    n, restarts, signed, ranges = RECOVERY[key]
    true = [data.draw(st.floats(lo, hi), label=name) for name, (lo, hi) in zip(model.param_names, ranges)]
    if signed and data.draw(st.booleans(), label="negative"):
        true[0] = -true[0]
    seed = data.draw(st.integers(0, 2**32 - 1), label="noise seed")
    x = np.linspace(0, 1, n)
    y = model(x, *true) + np.random.default_rng(seed).normal(0, NOISE_SD, n)
    res = fit_model(model, x, y, restarts=restarts)
    assert res.success, res.message
    est = [res.params[p] for p in model.param_names]
    err = _param_error(model, true, est)
    assert max(err.values()) <= 1.0, (dict(zip(model.param_names, true)), res.params, err)
    # The optimum is at least about as good as the generating parameters.
    rss_true = float(np.sum((y - model(x, *true)) ** 2))
    assert res.rss <= 1.5 * rss_true
    assert 0.0 < res.rss < 4 * n * NOISE_SD ** 2


# Hand values: formulas written out independently of the module.
E = math.e
HAND = [
    ("exp2.power_law", (2.0, 0.5), 0.25, 2.0 * 0.5),
    ("exp2.tanh", (0.5, 4.0, 0.25), 0.75, 0.5 * math.tanh(2.0)),
    ("exp2.sigmoid", (2.0, 10.0, 0.4), 0.4, 1.0),
    ("exp2.sigmoid", (1.0, 10.0, 0.4), 0.5, 1 / (1 + math.exp(-1.0))),
    ("exp2.two_stage", (1.0, 2.0, 0.5, 0.9, 20.0), 0.5, 0.25 + 0.5 / (1 + math.exp(8.0))),
    ("landau.landau", (2.0, 0.5, 0.36), 0.2, 0.0),
    ("landau.landau", (2.0, 0.5, 0.36), 0.61, 2.0 * 0.5),
    ("landau.landau_step", (2.0, 0.5, 0.36, 1.0, 0.61, 30.0), 0.61, 2.0 * 0.5 + 0.5),
    ("g.power_law", (2.0,), 0.5, 0.25),
    ("g.exponential", (0.5,), 1.0, 1 - E ** -2),
    ("g.sigmoid", (6.0, 0.3), 0.3, 0.5),
    ("g.erf", (0.5,), 0.5, math.erf(1 / math.sqrt(2))),  # = 0.6827
    ("g.log", (0.5,), 1.0, 1.0),
    ("g.log", (1.0,), 0.5, math.log(1.5) / math.log(2.0)),
    ("exp8a.erf", (SIGMA_PI,), 0.2, math.erf(0.2 * math.sqrt(math.pi / 2))),
    ("pi.cos_pi_0p", (), 0.5, 0.5),
    ("pi.cos_pi_1p", (2.0,), 0.5, (1 - math.cos(math.pi / 4)) / 2),
    ("pi.sin_pi_0p", (), 1 / 3, 0.5),
    ("pi.sin_pi_1p", (0.5,), 0.25, math.sin(math.pi / 4)),
    ("linear.linear", (0.5, -2.0), 0.25, 0.0),
    ("linear.proportional", (3.0,), 0.5, 1.5),
]


@pytest.mark.parametrize("key, params, x, expected", HAND)
def test_formula_at_hand_points(key, params, x, expected):
    assert ALL_MODELS[key](np.array([x]), *params)[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_power_models_clip_x_at_zero():
    """x^beta with x clipped at 1e-10 (§3.4, §5.4): finite at x = 0 even for tiny exponents."""
    for key in ("exp2.power_law", "g.power_law", "pi.cos_pi_1p", "pi.sin_pi_1p"):
        m = ALL_MODELS[key]
        v = m(np.array([0.0]), *m.p0)
        assert np.all(np.isfinite(v))
    assert G_MODELS["power_law"](np.array([0.0]), 0.01)[0] == pytest.approx(1e-10 ** 0.01)


def test_registry_starts_inside_bounds_and_is_finite_on_the_grids():
    for key, m in ALL_MODELS.items():
        assert len(m.p0) == len(m.lower) == len(m.upper) == m.n_params, key
        assert all(lo <= p <= hi for p, lo, hi in zip(m.p0, m.lower, m.upper)), key
        for n in (13, 25):
            assert np.all(np.isfinite(m(np.linspace(0, 1, n), *m.p0))), key


def test_exp2_amplitude_start_is_flipped_for_negative_data():
    m = EXP2_MODELS["two_stage"]
    assert m.start(np.array([-1.0, -2.0]))[0] == -m.p0[0]
    assert m.start(np.array([1.0, 2.0]))[0] == m.p0[0]
    assert G_MODELS["erf"].start(np.array([-1.0]))[0] == G_MODELS["erf"].p0[0]


def test_zero_parameter_model_is_scored_directly():
    x = np.linspace(0, 1, 13)
    y = np.sin(np.pi * x / 2) + np.linspace(-0.02, 0.02, 13)
    res = fit_model(PI_MODELS["sin_pi_0p"], x, y)
    rss = float(np.sum(np.linspace(-0.02, 0.02, 13) ** 2))
    assert res.success and res.n_params == 0 and res.params == {}
    assert res.rss == pytest.approx(rss)
    assert res.bic == pytest.approx(13 * math.log(rss / 13))  # k = 0: no penalty


# ---------------------------------------------------------------------------------------------
# §0.6 formulas
# ---------------------------------------------------------------------------------------------

@settings(deadline=None, max_examples=40)
@given(rss=st.floats(1e-6, 1e3), n=st.integers(3, 200), data=st.data())
def test_information_criteria_match_hand_formulas(rss, n, data):
    k = data.draw(st.integers(0, n - 2))
    ic = information_criteria(rss, n, k)
    s = 0.0
    for _ in range(n):  # n * ln(RSS/n) written as a sum
        s += math.log(rss / n)
    assert ic["ll"] == pytest.approx(-s / 2, rel=1e-9, abs=1e-9)
    assert ic["aic"] == pytest.approx(s + 2 * k, rel=1e-9, abs=1e-9)
    assert ic["bic"] == pytest.approx(s + k * math.log(n), rel=1e-9, abs=1e-9)
    assert ic["bic"] - ic["aic"] == pytest.approx(k * (math.log(n) - 2), abs=1e-7)


@pytest.mark.parametrize("rss, n, k, aic, bic", [
    (0.0664, 13, 1, -66.6, -66.03),  # exp8A / exp3ef small erf (§5.5, §8.5)
    (0.1497, 25, 1, -126.0, -124.74),  # medium erf
])
def test_information_criteria_reproduce_reported_numbers(rss, n, k, aic, bic):
    ic = information_criteria(rss, n, k)
    assert ic["aic"] == pytest.approx(aic, abs=0.06)  # reported RSS has 3 significant digits
    assert ic["bic"] == pytest.approx(bic, abs=0.06)


def test_information_criteria_guards():
    assert information_criteria(1.0, 3, 2)["bic"] == math.inf  # n <= k + 1
    assert information_criteria(1.0, 4, 2)["bic"] < math.inf
    assert information_criteria(1.0, 3, 2, small_n_guard=False)["bic"] < math.inf  # exp8/exp9
    for rss in (0.0, -1.0, math.nan, math.inf):
        ic = information_criteria(rss, 20, 1)
        assert ic["aic"] == ic["bic"] == math.inf and ic["ll"] == -math.inf
        assert information_criteria(rss, 20, 1, small_n_guard=False)["bic"] == math.inf


def test_r2_by_hand():
    assert r2([1, 2, 3], [1, 2, 4]) == pytest.approx(0.5)
    assert r2([1, 2, 3], [1, 2, 3]) == 1.0
    assert math.isnan(r2([2, 2, 2], [1, 2, 3]))


def test_fit_result_fields_are_consistent():
    x = np.linspace(0, 1, 13)
    y = G_MODELS["erf"](x, 0.55) + np.random.default_rng(0).normal(0, 0.02, 13)
    res = fit_model(G_MODELS["erf"], x, y)
    assert res.rss == pytest.approx(float(np.sum((y - res.y_fit) ** 2)))
    assert res.y_fit == pytest.approx(G_MODELS["erf"](x, res.params["sigma"]))
    assert res.r2 == pytest.approx(1 - res.rss / float(np.sum((y - y.mean()) ** 2)))
    ic = information_criteria(res.rss, 13, 1)
    assert (res.aic, res.bic, res.ll) == pytest.approx((ic["aic"], ic["bic"], ic["ll"]))
    assert res.n == 13 and res.n_params == 1 and res.on_bound == ()


def test_parameters_on_a_bound_are_flagged():
    x = np.linspace(0, 1, 13)
    res = fit_model(G_MODELS["power_law"], x, np.full(13, 1.0))  # alpha -> lower bound 0.01
    assert res.params["alpha"] == pytest.approx(0.01, abs=1e-6)
    assert res.on_bound == ("alpha",)


# ---------------------------------------------------------------------------------------------
# Failures never raise
# ---------------------------------------------------------------------------------------------

def test_failures_return_infinite_criteria():
    x = np.linspace(0, 1, 13)
    nan_y = np.where(x > 0.5, np.nan, x)
    res = fit_model(G_MODELS["erf"], x, nan_y)
    assert not res.success and res.bic == math.inf and math.isnan(res.params["sigma"])

    broken = Model("broken", lambda x, a: np.full_like(x, np.nan) * a, ("a",), (1.0,), (0.0,), (2.0,), "nan", "test")
    res = fit_model(broken, x, x)
    assert not res.success and res.aic == res.bic == math.inf and res.message

    ranked = fit_all(x, x + 0.01 * np.cos(5 * x), [broken, LINEAR_MODELS["proportional"]])
    assert [r.model for r in ranked] == ["proportional", "broken"]

    with pytest.raises(ValueError):
        fit_model(G_MODELS["erf"], x, x[:-1])  # a programming error, not a failed fit


# ---------------------------------------------------------------------------------------------
# BIC prefers the true model over a clearly different alternative on clean data
# ---------------------------------------------------------------------------------------------

SELECTION = {
    # name: (true, alternative, grid, restarts for the true model, parameter ranges)
    "two_stage_vs_power_law": (EXP2_MODELS["two_stage"], EXP2_MODELS["power_law"], 25, 8,
                               [(0.3, 1.0), (0.5, 2.0), (0.3, 0.6), (0.65, 0.85), (15.0, 40.0)]),
    "landau_vs_power_law": (LANDAU_MODELS["landau"], EXP2_MODELS["power_law"], 25, 8,
                            [(0.5, 2.0), (0.3, 1.5), (0.25, 0.5)]),
    "g_sigmoid_vs_g_power_law": (G_MODELS["sigmoid"], G_MODELS["power_law"], 13, 0, [(8.0, 20.0), (0.35, 0.65)]),
    "erf_vs_exponential": (G_MODELS["erf"], G_MODELS["exponential"], 13, 0, [(0.2, 0.6)]),
    "power_law_vs_log": (G_MODELS["power_law"], G_MODELS["log"], 13, 0, [(1.5, 3.0)]),
    "linear_vs_proportional": (LINEAR_MODELS["linear"], LINEAR_MODELS["proportional"], 13, 0,
                               [(0.2, 1.0), (-2.0, 2.0)]),
}


@pytest.mark.parametrize("case", sorted(SELECTION))
@settings(deadline=None, max_examples=8)
@given(data=st.data())
def test_bic_prefers_the_true_model(case, data):
    true_m, alt_m, n, restarts, ranges = SELECTION[case]
    p = [data.draw(st.floats(lo, hi), label=name) for name, (lo, hi) in zip(true_m.param_names, ranges)]
    seed = data.draw(st.integers(0, 2**32 - 1), label="noise seed")
    x = np.linspace(0, 1, n)
    y = true_m(x, *p) + np.random.default_rng(seed).normal(0, 0.002, n)
    ranked = fit_all(x, y, {"alt": alt_m, "true": true_m}, restarts=restarts)
    assert [r.model for r in ranked] == [true_m.name, alt_m.name]
    assert ranked[1].bic - ranked[0].bic > 10  # "very strong" evidence, not a coin flip


def test_ranking_uses_bic_where_aic_disagrees():
    """Data built so that the intercept lowers n ln(RSS) by exactly 3.3: AIC (penalty 2 per
    parameter) prefers linear, BIC (ln 100 = 4.6) prefers proportional, and fit_all must
    follow BIC."""
    n = 100
    x = np.linspace(0, 1, n)
    basis = np.column_stack([np.ones(n), x])
    e = np.random.default_rng(0).normal(0, 0.1, n)
    e -= basis @ np.linalg.lstsq(basis, e, rcond=None)[0]  # residual orthogonal to [1, x]
    ones_perp = np.ones(n) - x * (x.sum() / (x @ x))
    b = math.sqrt((e @ e) * (math.exp(3.3 / n) - 1) / (ones_perp @ ones_perp))
    y = b + 1.5 * x + e
    lin, prop = fit_model(LINEAR_MODELS["linear"], x, y), fit_model(LINEAR_MODELS["proportional"], x, y)
    assert n * math.log(prop.rss / lin.rss) == pytest.approx(3.3, abs=1e-6)
    assert lin.aic < prop.aic and prop.bic < lin.bic
    assert [r.model for r in fit_all(x, y, LINEAR_MODELS)] == ["proportional", "linear"]


def test_fit_all_ranks_by_bic_and_keeps_every_model():
    x = np.linspace(0, 1, 25)
    y = G_MODELS["sigmoid"](x, 6.16, 0.453) + np.random.default_rng(1).normal(0, 0.01, 25)
    ranked = fit_all(x, y, G_MODELS)
    assert sorted(r.model for r in ranked) == sorted(G_MODELS)
    bics = [r.bic for r in ranked]
    assert bics == sorted(bics)
    assert ranked[0].model == "sigmoid"


# ---------------------------------------------------------------------------------------------
# Bootstrap over prompts
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, true", [("exp8a.erf", (0.55,)), ("exp2.sigmoid", (-0.8, 8.0, 0.45))])
@settings(deadline=None, max_examples=5)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(8, 20))
def test_bootstrap_interval_contains_truth_when_the_mean_curve_is_exact(key, true, seed, m):
    """Per-prompt noise centred across prompts: the full mean curve is the true curve, so the
    bootstrap distribution of the fit is centred on the truth and its interval must hold it."""
    model = ALL_MODELS[key]
    x = np.linspace(0, 1, 13)
    noise = np.random.default_rng(seed).normal(0, 0.05, (m, 13))
    y = model(x, *true) + noise - noise.mean(axis=0)
    b = bootstrap_params(model, x, y, n_boot=60, seed=seed)
    assert b.n_failed == 0 and b.samples.shape == (60, model.n_params)
    for name, t in zip(model.param_names, true):
        lo, hi = b.intervals[name]
        assert lo <= t <= hi, (name, t, lo, hi)
        assert 0 < hi - lo < 0.5 * abs(t)
        assert b.point.params[name] == pytest.approx(t, rel=1e-3)


def test_bootstrap_coverage_and_resolution_on_noisy_prompts():
    """Honest noisy case (20 prompts, sd 0.05 per point, uncentred): the 95 % interval holds
    sigma = 0.55 in most data sets (true coverage measured at ~0.94 over 200 sets) and is far
    narrower than the gap to 0.5 or 0.6."""
    x = np.linspace(0, 1, 13)
    rng = np.random.default_rng(0)
    hits, widths = 0, []
    for d in range(30):
        y = G_MODELS["erf"](x, 0.55) + rng.normal(0, 0.05, (20, 13))
        lo, hi = bootstrap_params(ERF_8A, x, y, n_boot=80, seed=d).intervals["sigma"]
        hits += lo <= 0.55 <= hi
        widths.append(hi - lo)
    assert hits >= 23  # P(< 23 | coverage 0.94) ~ 1e-3
    assert max(widths) < 0.05


def test_bootstrap_resamples_rows_and_is_reproducible():
    x = np.linspace(0, 1, 13)
    curve = G_MODELS["erf"](x, 0.6) + np.random.default_rng(0).normal(0, 0.03, 13)
    same = bootstrap_params(ERF_8A, x, np.tile(curve, (10, 1)), n_boot=20, seed=0)
    lo, hi = same.intervals["sigma"]  # identical prompts: every replicate is the same curve
    assert hi - lo < 1e-9 and lo == pytest.approx(same.point.params["sigma"])
    y = G_MODELS["erf"](x, 0.6) + np.random.default_rng(1).normal(0, 0.05, (10, 13))
    a = bootstrap_params(ERF_8A, x, y, n_boot=20, seed=3)
    b = bootstrap_params(ERF_8A, x, y, n_boot=20, seed=3)
    assert np.array_equal(a.samples, b.samples)
    assert a.intervals["sigma"][1] - a.intervals["sigma"][0] > 1e-4


# ---------------------------------------------------------------------------------------------
# Linear response and collapse variance (§3.2, §4.2, §5.2)
# ---------------------------------------------------------------------------------------------

floats_1 = st.floats(-1.0, 1.0)


@settings(deadline=None, max_examples=30)
@given(f=st.lists(floats_1, min_size=3, max_size=13), h_in=st.lists(st.floats(0.1, 2.0), min_size=2, max_size=5),
       junk=floats_1)
def test_collapse_is_exact_for_a_linear_response(f, h_in, junk):
    f = np.array(f)
    h = np.array(h_in + [0.04, -0.03])  # |h| <= 0.05: excluded, whatever their sigma
    sigma = np.vstack([np.outer(h_in, f), np.full((2, f.size), junk)])
    c = collapse_variance(sigma, h)
    assert c.variance == pytest.approx(0.0, abs=1e-20)
    assert c.f_mean == pytest.approx(f, abs=1e-12)
    assert c.included.tolist() == [True] * len(h_in) + [False, False]


@settings(deadline=None, max_examples=30)
@given(a=st.lists(floats_1, min_size=2, max_size=13), data=st.data())
def test_collapse_variance_by_hand_for_two_conditions(a, data):
    b = data.draw(st.lists(floats_1, min_size=len(a), max_size=len(a)))
    c = collapse_variance(np.array([a, b]), [1.0, -1.0])
    # f rows: a and -b; population variance of two values u, v is ((u - v)/2)^2
    expected = sum(((ai + bi) / 2) ** 2 for ai, bi in zip(a, b)) / len(a)
    assert c.variance == pytest.approx(expected, abs=1e-12)


@settings(deadline=None, max_examples=30)
@given(s=st.lists(floats_1, min_size=5, max_size=5), scale=st.floats(0.1, 10), shift=floats_1)
def test_exp2_h_is_pinned_and_affine_invariant(s, scale, shift):
    s = np.array(s)
    assume(abs(s[1] - s[3]) > 1e-3)
    h = exp2_h(s, 1, 3)
    assert h[1] == pytest.approx(1.0) and h[3] == pytest.approx(-1.0)
    assert exp2_h(scale * s + shift, 1, 3) == pytest.approx(h, rel=1e-6, abs=1e-6)


def test_exp2_h_skips_a_word_without_contrast():
    assert exp2_h([0.3, 0.2, 0.1, 0.2, 0.5], 1, 3) is None


def test_layer_linear_response_and_the_exp3_circularity():
    rng = np.random.default_rng(0)
    sigma_final = rng.uniform(-0.4, 0.8, 20)
    h = exp3_h(sigma_final)
    assert np.max(np.abs(h)) == pytest.approx(1.0)
    slopes = np.array([0.0, 0.1, 0.2, 0.3])
    sigma = np.column_stack([0.05 + slopes[i] * h for i in range(4)] + [sigma_final])
    sigma[:, 0] += rng.normal(0, 0.01, 20)  # layer 0: noise only
    sigma[7, 2] += 0.05  # one non-linear prompt at layer 2
    lr = layer_linear_response(h, sigma)
    assert lr.r2[-1] == pytest.approx(1.0, abs=1e-9)  # §4.8 invariant: R^2_L = 1
    assert lr.slope[-1] == pytest.approx(np.max(np.abs(sigma_final)))
    assert lr.slope[1] == pytest.approx(0.1) and lr.r2[1] == pytest.approx(1.0)
    assert lr.r2[0] < 0.5
    assert lr.h_star[1] is None and lr.h_star[3] is None
    assert lr.h_star[2] == pytest.approx(abs(h[7]))


def test_normalise_and_truncate_g():
    g = normalise_g([0.1, 0.2, 0.4, 0.3])
    assert g.tolist() == pytest.approx([0.25, 0.5, 1.0, 0.75])
    x, gt = truncate_g(np.linspace(0, 1, 5), [0.1, 0.2, 0.25, 0.4, 0.3])
    assert x.tolist() == pytest.approx([0, 0.25, 0.5]) and gt.tolist() == pytest.approx([0.4, 0.8, 1.0])


# ---------------------------------------------------------------------------------------------
# exp8A likelihood-ratio test (§8.2)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rss_fixed, rss_free, n, stat, p", [(0.0684, 0.0664, 13, 0.385, 0.535),
                                                             (0.1580, 0.1497, 25, 1.349, 0.245)])
def test_lr_statistic_reproduces_reported_numbers(rss_fixed, rss_free, n, stat, p):
    chi2 = lr_statistic(rss_fixed, rss_free, n)
    assert chi2 == pytest.approx(stat, abs=0.03)  # RSS rounded to 4 decimals
    assert stats.chi2.sf(chi2, 1) == pytest.approx(p, abs=0.01)
    assert lr_statistic(rss_free, rss_fixed, n) == 0.0


def test_lr_test_on_an_exact_pi_curve():
    x = np.linspace(0, 1, 13)
    t = lr_test_fixed_sigma(x, special.erf(x / (SIGMA_PI * math.sqrt(2))) + 1e-4 * np.cos(7 * x))
    assert t.success and not t.reject and t.p_value > 0.5
    assert t.sigma_free == pytest.approx(SIGMA_PI, rel=1e-3) and t.diff_pct < 0.1


@settings(deadline=None, max_examples=6)
@given(n=st.sampled_from([13, 25]), sd=st.floats(0.005, 0.05), seed=st.integers(0, 2**32 - 1))
def test_lr_test_keeps_its_size_under_h0(n, sd, seed):
    """Data from sigma = 1/sqrt(pi): the test rejects at about its nominal 5 % rate (any single
    data set is rejected 5 % of the time, so the rate over 100 sets is what is tested)."""
    x = np.linspace(0, 1, n)
    rng = np.random.default_rng(seed)
    clean = special.erf(x / (SIGMA_PI * math.sqrt(2)))
    tests = [lr_test_fixed_sigma(x, clean + rng.normal(0, sd, n)) for _ in range(100)]
    assert all(t.success for t in tests)
    rate = np.mean([t.reject for t in tests])
    assert rate <= 0.15  # P(>= 16 of 100 | 5-7 %) < 1e-3
    assert np.median([t.p_value for t in tests]) > 0.2


@settings(deadline=None, max_examples=20)
@given(sigma=st.one_of(st.floats(0.2, 0.4), st.floats(0.8, 1.5)), n=st.sampled_from([13, 25]),
       sd=st.floats(0.005, 0.02), seed=st.integers(0, 2**32 - 1))
def test_lr_test_rejects_a_distant_sigma(sigma, n, sd, seed):
    x = np.linspace(0, 1, n)
    y = special.erf(x / (sigma * math.sqrt(2))) + np.random.default_rng(seed).normal(0, sd, n)
    t = lr_test_fixed_sigma(x, y)
    assert t.reject and t.p_value < 1e-3
    assert t.sigma_free == pytest.approx(sigma, rel=0.1)


@settings(deadline=None, max_examples=30)
@given(sigma=st.floats(0.45, 0.7), sd=st.floats(0.005, 0.05), seed=st.integers(0, 2**32 - 1))
def test_profile_interval_agrees_with_the_lr_test(sigma, sd, seed):
    """sigma0 lies in the 95 % profile-likelihood interval (§8.7) exactly when the LR test of
    sigma = sigma0 does not reject."""
    x = np.linspace(0, 1, 13)
    y = special.erf(x / (sigma * math.sqrt(2))) + np.random.default_rng(seed).normal(0, sd, 13)
    lo, hi = erf_sigma_profile_ci(x, y)
    t = lr_test_fixed_sigma(x, y)
    assert lo < t.sigma_free < hi
    if abs(t.p_value - 0.05) > 1e-6:
        assert (lo <= SIGMA_PI <= hi) == (not t.reject)
    for c in (0.5, 0.55, 1 / math.sqrt(3), 0.6):
        tc = lr_test_fixed_sigma(x, y, sigma0=c)
        if abs(tc.p_value - 0.05) > 1e-6:
            assert (lo <= c <= hi) == (not tc.reject)


def test_fits_module_imports_no_pytest():
    import subprocess
    import sys

    code = "import sys, semphase.fits; sys.exit('pytest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert fits.MAXFEV == 20000


# ---------------------------------------------------------------------------------------------
# exp2's power law A*x^beta profiled exactly over beta (C4's estimator)
# ---------------------------------------------------------------------------------------------

@settings(deadline=None, max_examples=25)
@given(beta=st.floats(0.2, 3.0), amp=st.floats(-2.0, 2.0).filter(lambda a: abs(a) > 0.2),
       seed=st.integers(0, 1000))
def test_power_law_profile_recovers_beta_and_beats_curve_fit(beta, amp, seed):
    x = np.arange(30) / 30
    y = amp * x ** beta + np.random.default_rng(seed).normal(0, 0.003, x.size)
    p = fits.power_law_profile(x, y[None])
    assert abs(p.beta[0] - beta) / beta < 0.1 and abs(p.amplitude[0] - amp) / abs(amp) < 0.1
    # the refined optimum is the least-squares fit of the model: at least as good as curve_fit
    cf = fit_model(EXP2_MODELS["power_law"], x, y)
    assert p.rss[0] <= cf.rss * (1 + 1e-9) + 1e-15
    assert p.rss[0] == pytest.approx(float(np.sum((y - EXP2_MODELS["power_law"](x, p.amplitude[0], p.beta[0])) ** 2)))


def test_power_law_profile_is_exact_at_every_grid_beta():
    x = np.arange(12) / 12
    rng = np.random.default_rng(4)
    y = np.stack([0.8 * x ** 1.3 + rng.normal(0, 0.01, 12), -0.4 * x ** 0.5 + rng.normal(0, 0.01, 12)])
    p = fits.power_law_profile(x, y, refine=False)
    for j in (0, 60, 120, 240):
        b = p.beta_grid[j]
        v = np.clip(x, fits.X_CLIP, None) ** b
        for r in range(2):
            a = np.clip((v @ y[r]) / (v @ v), -5, 5)
            assert p.profile_rss[r, j] == pytest.approx(float(np.sum((y[r] - a * v) ** 2)), rel=1e-9, abs=1e-15)
    assert np.all(p.rss == p.profile_rss.min(1)) and np.all(np.isin(p.beta, p.beta_grid))
    assert p.profile_rss.shape == (2, fits.BETA_GRID.size) and p.bic().shape == (2,)
    assert p.amplitude[1] < 0  # a negative response keeps its sign
    refined = fits.power_law_profile(x, y)
    assert np.all(refined.rss <= p.rss)


def test_power_law_profile_flags_beta_on_a_bound_and_clips_the_amplitude():
    x = np.arange(12) / 12
    flat = np.full(12, 0.3)  # wants beta -> 0: the bound 0.01
    steep = 4.0 * x ** 4.99 * 3  # amplitude 12 is clipped to 5
    p = fits.power_law_profile(x, np.stack([flat, steep]))
    assert p.on_bound()[0] and p.beta[0] == pytest.approx(0.01)
    assert p.amplitude[1] == pytest.approx(5.0)


def test_common_power_law_beta_is_accepted_when_shared_and_rejected_when_not():
    x = np.arange(24) / 24
    rng = np.random.default_rng(5)
    shared = np.stack([a * x ** 1.2 + rng.normal(0, 0.005, 24) for a in (0.4, 0.8, 1.1)])
    mixed = np.stack([0.8 * x ** b + rng.normal(0, 0.005, 24) for b in (0.4, 1.2, 3.0)])
    ps = fits.common_parameter_lr(fits.power_law_profile(x, shared).profile_rss, [24] * 3)
    pm = fits.common_parameter_lr(fits.power_law_profile(x, mixed).profile_rss, [24] * 3)
    assert ps["p_value"] > 0.05 and pm["p_value"] < 1e-6
    assert fits.BETA_GRID[ps["common_index"]] == pytest.approx(1.2, rel=0.05)
