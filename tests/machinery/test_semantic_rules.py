"""The decision rules of issue 9 (C3, C4, C5, C6, C8, C9) at their boundaries, on small hand-made
evidence: each passes just inside its bound, fails just outside, and is inconclusive where its
interval straddles the bound; and the measurement helpers they rest on (the two-stage bootstrap,
the clustered position regression, the drop of g, the bootstrap of cross-word statistics)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from semphase import registry
from semphase.claims import Verdict
from semphase.experiments.exp2.measure import coefficient_of_variation
from semphase.experiments.exp3 import measure as exp3
from semphase.semantic.measure import two_stage_rows

pytestmark = pytest.mark.machinery

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]


def _verdict(exp: str, ev: dict, test: str):
    return registry.get(exp).claims.evaluate(ev, test)


# -- C3 (exp1): both nulls ----------------------------------------------------------------------

def _ev1(frac=0.9, random_q95=0.5, shuffled_q95=0.8) -> dict:
    return {"model": "m", "n_layers": 12, "words_used": WORDS,
            "c3": {"frac_last_block": frac, "n_last_block": 9, "n_block0": 0, "j_star": {}, "variant_mean_abs_jump": {},
                   "last_block_share_of_abs_jumps": {},
                   "null": {"n": 200, "q95": random_q95, "mean": 0.3, "p_value_real_exceeds": 0.005},
                   "shuffled_sense_directions": {"n": 200, "frac_last_block_q95": shuffled_q95,
                                                 "frac_last_block_mean": 0.6, "p_value_real_exceeds": 0.01}}}


C3 = "test_c3_last_block_jump_beats_random_direction_null"


def test_c3_asserts_the_shuffled_sense_null_as_well_as_the_random_one():
    r = _verdict("exp1", _ev1(), C3)
    assert r.value is Verdict.REPLICATES and len(r.conditions) == 3
    assert "shuffled-sense" in r.statement and "random unit directions" in r.statement
    assert _verdict("exp1", _ev1(shuffled_q95=0.89), C3).value is Verdict.REPLICATES  # just inside
    assert _verdict("exp1", _ev1(shuffled_q95=0.9), C3).value is Verdict.REFUTED  # strict: equal fails
    assert _verdict("exp1", _ev1(random_q95=0.9), C3).value is Verdict.REFUTED
    assert _verdict("exp1", _ev1(frac=0.66, random_q95=0.1, shuffled_q95=0.1), C3).value is Verdict.REFUTED  # < 2/3
    ev = _ev1()
    ev["c3"]["null"]["n"] = 10
    assert _verdict("exp1", ev, C3).value is Verdict.SKIPPED


# -- C4 (exp2): CV(β) with its two-stage interval, the LR test ------------------------------------------

def _ev2(cv=0.5, cv_ci=(0.35, 0.7), lr_p=0.001, n_mf=0, beta_mean=1.7) -> dict:
    return {"words_used": WORDS,
            "c4": {"estimator": "power_law A*x^beta", "cv": cv, "cv_ci95": list(cv_ci),
                   "cv_ci_unit": "words (with replacement), then prompts within levels inside each drawn word",
                   "cv_boot_mean": cv, "cv_ci95_words_only": list(cv_ci), "lr_common_beta": {"p_value": lr_p},
                   "beta_mean": beta_mean, "beta_min": 1.0, "beta_max": 2.0, "cochran_q": {},
                   "two_stage": {"cv": 1.2}, "n_ci_contains_mean_field": n_mf, "n_beta_on_bound": 0,
                   "best_model_counts": {}},
            "c5": _c5()}


C4 = "test_c4_landau_beta_not_universal"
C4_MF = "test_c4_landau_mean_field_beta_rejected"


def test_c4_beta_not_universal_at_its_boundaries():
    r = _verdict("exp2", _ev2(), C4)
    assert r.value is Verdict.REPLICATES
    assert "power law" in r.statement and "two-stage bootstrap" in r.statement and "two_stage" in r.statement
    assert r.conditions[0].interval == (0.35, 0.7) and r.conditions[0].unit.startswith("words")
    # just inside: the whole interval above 0.3
    assert _verdict("exp2", _ev2(cv=0.32, cv_ci=(0.301, 0.4)), C4).value is Verdict.REPLICATES
    # just outside: the whole interval at or below 0.3 (strict)
    assert _verdict("exp2", _ev2(cv=0.29, cv_ci=(0.2, 0.3)), C4).value is Verdict.REFUTED
    # the interval straddles 0.3: inconclusive, whichever side the point is on
    for cv in (0.28, 0.32):
        r = _verdict("exp2", _ev2(cv=cv, cv_ci=(0.25, 0.35)), C4)
        assert r.value is Verdict.INCONCLUSIVE and r.conditions[0].inconclusive
    # the LR test of one common β is its own decided condition
    assert _verdict("exp2", _ev2(lr_p=0.049), C4).value is Verdict.REPLICATES
    assert _verdict("exp2", _ev2(lr_p=0.05), C4).value is Verdict.REFUTED
    # a failed LR beats an inconclusive CV: the claim is refuted
    assert _verdict("exp2", _ev2(cv_ci=(0.25, 0.35), lr_p=0.2), C4).value is Verdict.REFUTED
    assert _verdict("exp2", {"words_used": ["a", "b"]}, C4).value is Verdict.SKIPPED


def test_c4_mean_field_rule_uses_the_power_law_beta():
    n = len(WORDS)
    r = _verdict("exp2", _ev2(n_mf=n - 7), C4_MF)  # 7 of 10 intervals exclude 0.5
    assert r.value is Verdict.REPLICATES and "power law" in r.statement
    assert _verdict("exp2", _ev2(n_mf=n - 6), C4_MF).value is Verdict.REFUTED  # 6 of 10 < 2/3
    assert _verdict("exp2", _ev2(beta_mean=0.79), C4_MF).value is Verdict.REFUTED  # inside 0.5 ± 0.3
    assert _verdict("exp2", _ev2(beta_mean=0.81), C4_MF).value is Verdict.REPLICATES


def test_coefficient_of_variation_is_the_population_one():
    b = np.array([1.0, 2.0, 3.0])
    assert coefficient_of_variation(b) == pytest.approx(np.std(b) / 2.0)
    assert coefficient_of_variation([0.0, 0.0]) == float("inf")


# -- C5 (exp2): the original's pattern and the "partial" band --------------------------------------

def _c5(pattern=None, frac=0.3, ci=(0.15, 0.45), missing=()) -> dict:
    if pattern is None:
        pattern = {"rock": 0.005, "spring": 0.002, "bass": 0.003, "light": 0.2}
    ops = {"rock": "<", "spring": "<", "bass": "<", "light": ">="}
    return {"pattern": {w: {"collapse_variance": v, "expected": ops[w]} for w, v in pattern.items()},
            "pattern_missing": list(missing), "n_below_bar_design": 3, "frac_below_bar_design": frac,
            "frac_below_bar_design_ci95": list(ci), "frac_ci_unit": "words (with replacement)",
            "frac_below_bar_circular": 0.4, "median_relative_design": 1.0}


C5 = "test_c5_linear_response_holds_only_partly"


def _ev5(**kw) -> dict:
    ev = _ev2()
    ev["c5"] = _c5(**kw)
    return ev


def test_c5_pattern_words_at_the_bar():
    r = _verdict("exp2", _ev5(), C5)
    assert r.value is Verdict.REPLICATES and len(r.conditions) == 6
    assert "rock, spring, bass" in r.statement and "[0.1, 0.6]" in r.statement
    base = {"rock": 0.005, "spring": 0.002, "bass": 0.003, "light": 0.2}
    for word in ("rock", "spring", "bass"):
        assert _verdict("exp2", _ev5(pattern={**base, word: 0.0099}), C5).value is Verdict.REPLICATES
        assert _verdict("exp2", _ev5(pattern={**base, word: 0.01}), C5).value is Verdict.REFUTED
    assert _verdict("exp2", _ev5(pattern={**base, "light": 0.01}), C5).value is Verdict.REPLICATES
    assert _verdict("exp2", _ev5(pattern={**base, "light": 0.0099}), C5).value is Verdict.REFUTED


def test_c5_missing_pattern_words_are_skipped_with_a_line():
    r = _verdict("exp2", _ev5(pattern={"rock": 0.005}, missing=("spring", "bass", "light")), C5)
    assert r.value is Verdict.REPLICATES and r.applicable
    assert [c.name for c in r.conditions][0] == "collapse variance of rock" and len(r.conditions) == 3
    assert "skipped: spring, bass, light" in r.reason
    r = _verdict("exp2", _ev5(pattern={}, missing=("rock", "spring", "bass", "light")), C5)
    assert r.value is Verdict.REPLICATES and len(r.conditions) == 2  # the band alone


def test_c5_partial_band_with_its_interval_over_words():
    ok = {"rock": 0.005, "spring": 0.002, "bass": 0.003, "light": 0.2}
    v = lambda frac, ci: _verdict("exp2", _ev5(pattern=ok, frac=frac, ci=ci), C5)  # noqa: E731
    assert v(0.3, (0.1, 0.6)).value is Verdict.REPLICATES  # both edges inclusive
    assert v(0.3, (0.099, 0.5)).value is Verdict.INCONCLUSIVE  # straddles the lower edge
    assert v(0.5, (0.4, 0.61)).value is Verdict.INCONCLUSIVE  # straddles the upper edge
    assert v(0.05, (0.0, 0.099)).value is Verdict.REFUTED  # almost none
    assert v(0.8, (0.61, 0.9)).value is Verdict.REFUTED  # most
    r = v(0.3, (0.099, 0.5))
    assert [c.inconclusive for c in r.conditions[-2:]] == [True, False] and r.conditions[-1].unit.startswith("words")
    # a decided pattern failure outranks an inconclusive band
    bad = _verdict("exp2", _ev5(pattern={**ok, "rock": 0.05}, frac=0.3, ci=(0.05, 0.5)), C5)
    assert bad.value is Verdict.REFUTED


# -- C6 (exp3): position control with word fixed effects, clustered SE --------------------------------

def _ev6(p=0.001) -> dict:
    return {"words_used": WORDS, "c6": {"position": {"max_h_p_deep": p, "deep_from_layer": 6, "n_positions": 10,
                                                      "position_identified": False, "n_clusters": 10}}}


def test_c6_position_rule_at_its_boundary():
    name = "test_c6_h_effect_survives_position_control"
    r = _verdict("exp3", _ev6(0.0099), name)
    assert r.value is Verdict.REPLICATES and "fixed effects" in r.statement and "clustered by word" in r.statement
    assert _verdict("exp3", _ev6(0.01), name).value is Verdict.REFUTED


def _panel(n_words=12, per_word=27, seed=0, h_effect=0.5, pos_effect=0.0, pos_varies=False):
    rng = np.random.default_rng(seed)
    word = np.repeat(np.arange(n_words), per_word).astype(str)
    h = np.tile(np.repeat(np.arange(-4, 5) / 4, per_word // 9), n_words)
    base_pos = np.repeat(rng.integers(3, 12, n_words), per_word).astype(float)
    pos = base_pos + (rng.integers(0, 3, word.size) if pos_varies else 0)
    fe = np.repeat(rng.normal(0, 1, n_words), per_word)
    y = fe + h_effect * h + pos_effect * pos + rng.normal(0, 0.1, word.size)
    return y, h, pos, word


def test_position_regression_is_the_within_word_estimator_with_clustered_errors():
    import statsmodels.api as sm

    y, h, pos, word = _panel()
    out = exp3.position_regression(y, h, pos, word)
    assert not out["position_identified"] and out["pos_coef"] is None and out["n_clusters"] == 12
    # the fixed-effects slope of h is the slope on within-word demeaned data
    yd = y - np.array([y[word == w].mean() for w in word])
    hd = h - np.array([h[word == w].mean() for w in word])
    assert out["h_coef"] == pytest.approx(float(hd @ yd / (hd @ hd)), rel=1e-9)
    assert out["h_p"] < 1e-6
    # against statsmodels' own cluster-robust fit with the same design
    dummies = np.column_stack([(word == w).astype(float) for w in dict.fromkeys(word.tolist())])
    ref = sm.OLS(y, np.column_stack([h, dummies])).fit(cov_type="cluster", cov_kwds={"groups": np.unique(
        word, return_inverse=True)[1]}, use_t=True)
    assert out["h_se"] == pytest.approx(float(ref.bse[0]), rel=1e-9)
    # no h effect: not significant
    y0, h0, pos0, word0 = _panel(h_effect=0.0, seed=1)
    assert exp3.position_regression(y0, h0, pos0, word0)["h_p"] > 0.01


def test_position_regression_separates_h_from_a_position_that_varies_within_words():
    y, h, pos, word = _panel(h_effect=0.0, pos_effect=0.3, pos_varies=True, seed=2)
    out = exp3.position_regression(y, h, pos, word)
    assert out["position_identified"] and out["pos_p"] < 1e-6 and out["pos_coef"] == pytest.approx(0.3, abs=0.02)
    assert out["h_p"] > 0.01


def test_position_regression_at_a_layer_without_within_word_variation():
    _, h, pos, word = _panel()
    y = np.repeat(np.arange(12.0), 27)  # i = 0: one value per word
    out = exp3.position_regression(y, h, pos, word)
    assert out["h_p"] == 1.0 and np.isnan(out["h_coef"])


# -- C8 (exp3): the absolute bar on its two-stage interval ---------------------------------------------

def _ev8(rmse=0.05, ci=(0.04, 0.07)) -> dict:
    null = {"design": {"rmse_q05": 0.2, "corr_q95": 0.9}, "circular": {"rmse_median": 0.1, "corr_median": 0.9}}
    return {"words_used": WORDS, "c8": {"mean_rmse": rmse, "boot_ci95": list(ci), "unit": "words, then prompts",
                                        "circular": {"mean_rmse": 0.03}},
            "nulls": {"random": copy.deepcopy(null), "shuffled": copy.deepcopy(null)}}


def test_c8_rmse_bar_on_its_two_stage_interval():
    name = "test_c8_g_universal_across_words_beats_null"
    r = _verdict("exp3", _ev8(), name)
    assert r.value is Verdict.REPLICATES and r.conditions[0].unit == "words, then prompts"
    assert _verdict("exp3", _ev8(ci=(0.04, 0.0799)), name).value is Verdict.REPLICATES
    assert _verdict("exp3", _ev8(ci=(0.04, 0.081)), name).value is Verdict.INCONCLUSIVE
    assert _verdict("exp3", _ev8(rmse=0.09, ci=(0.08, 0.1)), name).value is Verdict.REFUTED


# -- C9 (exp3): best model by BIC, and the shape class -------------------------------------------------

def _ev9(best="erf", peak_x=0.83, drop=0.2, ci=(0.1, 0.3)) -> dict:
    return {"words_used": WORDS,
            "c9": {"best_full": best, "best_full_bic_margin": 3.0, "delta_bic_erf_or_sigmoid": 0.0, "full_fits": []},
            "shape": {"peak_x": peak_x, "g_peak": 1.0, "g_final": 1.0 - drop, "drop_before_last": drop,
                      "drop_before_last_ci95": list(ci), "drop_ci_unit": "words, then prompts"}}


C9 = "test_c9_g_form_erf_or_sigmoid"


def test_c9_best_model_is_its_own_condition():
    r = _verdict("exp3", _ev9(), C9)
    assert r.value is Verdict.REPLICATES and len(r.conditions) == 3
    assert _verdict("exp3", _ev9(best="sigmoid"), C9).value is Verdict.REPLICATES
    for other in ("power_law", "exponential", "log"):  # within 2 BIC of the best is no longer enough
        r = _verdict("exp3", _ev9(best=other), C9)
        assert r.value is Verdict.REFUTED and [c.ok for c in r.conditions] == [False, True, True]


def test_c9_shape_class_rise_then_drop_before_the_last_layer():
    assert _verdict("exp3", _ev9(peak_x=11 / 12), C9).value is Verdict.REPLICATES
    r = _verdict("exp3", _ev9(peak_x=1.0, drop=-0.05, ci=(-0.1, -0.01)), C9)  # a convex g peaking at the end
    assert r.value is Verdict.REFUTED and [c.ok for c in r.conditions] == [True, False, False]
    r = _verdict("exp3", _ev9(drop=0.02, ci=(-0.01, 0.05)), C9)  # a drop within the bootstrap noise
    assert r.value is Verdict.INCONCLUSIVE and r.conditions[2].inconclusive
    assert _verdict("exp3", _ev9(drop=0.02, ci=(0.001, 0.05)), C9).value is Verdict.REPLICATES
    assert _verdict("exp3", _ev9(drop=0.0, ci=(-0.02, 0.0)), C9).value is Verdict.REFUTED  # strict at 0
    assert _verdict("exp3", _ev9(drop=0.01, ci=(0.0, 0.05)), C9).value is Verdict.INCONCLUSIVE


def test_drop_before_last():
    g = np.array([[0.0, 0.5, 1.0, 0.7], [0.0, 0.3, 0.6, 1.0]])
    assert exp3.drop_before_last(g) == pytest.approx([0.3, -0.4])


# -- the two-stage bootstrap -----------------------------------------------------------------------

def test_two_stage_rows_resamples_words_then_prompts_within_levels():
    levels = [np.array([-1, -1, 0, 0, 1, 1]), np.array([-2, 2, 2]), np.array([0, 0, 0, 0])]
    draws = [two_stage_rows(levels, np.random.default_rng([5, r])) for r in range(300)]
    counts = np.zeros(3)
    for draw in draws:
        assert len(draw) == 3
        for w, rows in draw:
            counts[w] += 1
            lv = levels[w]
            assert len(rows) == len(lv) and sorted(lv[rows].tolist()) == sorted(lv.tolist())  # within levels
    assert counts.min() > 200  # every word is drawn, with replacement
    assert any(len({w for w, _ in d}) < 3 for d in draws)
    # a word drawn twice gets two independent prompt resamples
    twice = [d for d in draws if d[0][0] == d[1][0] == 0]
    assert any(not np.array_equal(d[0][1], d[1][1]) for d in twice)
    # reproducible from the seed
    again = two_stage_rows(levels, np.random.default_rng([5, 0]))
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(again, draws[0]))


def test_boot_universality_leaves_out_pairs_of_one_word():
    x = np.linspace(0, 1, 9)
    F = np.stack([x, x ** 3, np.sin(3 * x)])
    idx_distinct = np.array([[0, 1, 2]])
    idx_dup = np.array([[0, 0, 2]])
    Fb = np.stack([F])
    plain = exp3.universality(Fb)
    assert exp3.boot_universality(Fb, idx_distinct)["mean_corr"][0] == pytest.approx(plain["mean_corr"][0])
    dup = np.stack([np.stack([x, x + 0.0, np.sin(3 * x)])])  # slot 1 repeats word 0
    got = exp3.boot_universality(dup, idx_dup)["mean_corr"][0]
    c = exp3.universality(dup)["pairs"][0]  # pairs (0,1), (0,2), (1,2)
    assert got == pytest.approx((c[1] + c[2]) / 2) and got < exp3.universality(dup)["mean_corr"][0]
    assert np.isnan(exp3.boot_universality(dup[:, :2], np.array([[0, 0]]))["mean_corr"][0])


def test_evidence_from_before_these_rules_is_skipped_with_the_reason():
    old2 = {"experiment": "exp2", "words_used": WORDS, "c4": {"cv": 0.5, "lr_common_beta": {"p_value": 0.01}},
            "c5": {"n_below_bar_design": 3}}
    for test in (C4, C4_MF, C5):
        r = _verdict("exp2", old2, test)
        assert r.value is Verdict.SKIPPED and "measure exp2 again" in r.reason
    old3 = {"words_used": WORDS, "c6": {"position": {"max_h_p_deep": 0.001}}, "c8": {"mean_rmse": 0.05},
            "c9": {"best_full": "erf"}, "shape": {"peak_x": 0.8}}
    for test in ("test_c6_h_effect_survives_position_control", "test_c8_g_universal_across_words_beats_null", C9):
        r = _verdict("exp3", old3, test)
        assert r.value is Verdict.SKIPPED and "measure exp3 again" in r.reason
