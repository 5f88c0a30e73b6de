"""exp2/exp3 machinery: the vectorised statistics against plain computations, the Landau grid
fit and the tests of a common parameter, the claim rules at their boundaries, and one end-to-end
run of exp1 -> exp2 -> exp3 on a tiny random-weight model (shared residual cache, claims, data,
figures, reports, g(l/L) for exp10, the cross-model comparison, the CLI with --stimuli)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from scipy import stats

from semphase import fits
from semphase import registry
from semphase.experiments.exp3 import measure as exp3
from semphase.semantic.stimuli import parse_stimuli
from test_stimuli import _tiny_doc

pytestmark = pytest.mark.machinery


def _graded(word: str) -> dict:
    """Nine graded prompts "<X> <y> <word>" whose fillers are in no direction prompt of the tiny
    documents (so no graded prompt repeats most of a direction prompt) and tokenize alike under the
    tiny tokenizer (one token, then a space and a letter, then the target)."""
    combos = [f"{a} {b} {word}" for a in ("X", "Q", "Z") for b in ("y", "j", "k")]
    return {"0": combos[:1], "A": {str(k): [combos[k]] for k in range(1, 5)},
            "B": {str(k): [combos[4 + k]] for k in range(1, 5)}}


def _three_word_doc() -> dict:
    doc = _tiny_doc()
    doc["words"]["crane"] = copy.deepcopy(doc["words"]["bat"])
    w = doc["words"]["crane"]
    w["senses"] = {"A": "bird", "B": "machine"}
    w["direction"] = {"A": ["A tall crane", "The bird crane"], "B": ["The steel crane", "He drove the crane"]}
    for word in ("bank", "bat", "crane"):
        doc["words"][word]["graded"] = _graded(word)
    doc["controls"] = {"spring": ["The spring", "A spring"]}
    return doc


# -- statistics -------------------------------------------------------------------------------------

def test_slopes_equal_linregress_per_layer():
    rng = np.random.default_rng(0)
    h = rng.normal(size=12)
    sigma = rng.normal(size=(12, 5)) + np.outer(h, np.linspace(0, 2, 5))
    got = exp3.slopes(h, sigma)
    want = [stats.linregress(h, sigma[:, i]).slope for i in range(5)]
    assert np.allclose(got, want, rtol=1e-12)
    # batched over null draws
    batch = exp3.slopes(np.stack([h, -h]), np.stack([sigma, sigma]))
    assert np.allclose(batch[0], want) and np.allclose(batch[1], -np.array(want))


def test_universality_statistics():
    x = np.linspace(0, 1, 13)
    same_shape = np.stack([a * x ** 1.5 for a in (0.3, 0.7, 1.2)])  # scale differs, shape the same
    u = exp3.universality(same_shape)
    assert np.isclose(u["mean_corr"], 1.0) and np.isclose(u["mean_rmse"], 0.0, atol=1e-12)
    assert np.allclose(u["g_mean"], x ** 1.5)
    different = np.stack([x, x ** 4, np.sin(3 * np.pi * x) + 1])
    v = exp3.universality(different)
    assert v["mean_corr"] < 0.8 and v["mean_rmse"] > 0.1
    # a null curve of either sign counts with its sign made positive
    assert np.all(exp3._orient(-same_shape).sum(-1) > 0)


def test_circular_h_makes_the_final_layer_exact():
    rng = np.random.default_rng(1)
    sigma = rng.normal(size=(20, 7))
    h = exp3.circular_h(sigma)
    assert np.isclose(np.abs(h).max(), 1.0)
    lr = fits.layer_linear_response(h, sigma)
    assert abs(lr.r2[-1] - 1) < 1e-12 and lr.r2[:-1].max() < 0.9


@pytest.mark.parametrize("beta,l_c", [(0.5, 0.2), (1.5, 0.4), (2.5, 0.0)])
def test_landau_grid_fit_recovers_parameters(beta, l_c):
    x = np.arange(24) / 24
    rng = np.random.default_rng(2)
    y = fits.LANDAU_MODELS["landau"](x, 0.8, beta, l_c) + rng.normal(0, 0.003, x.size)
    g = fits.landau_grid_fit(x, y[None])
    assert abs(g.beta[0] - beta) / beta < 0.1 and abs(g.l_c[0] - l_c) < 0.03 and abs(g.amplitude[0] - 0.8) < 0.05
    # polished from the grid optimum, at least as good as curve_fit from the spec's start
    cf = fits.fit_model(fits.LANDAU_MODELS["landau"], x, y)
    assert fits.landau_grid_fit(x, y[None], refine=True).rss[0] <= cf.rss * (1 + 1e-6)


def test_common_beta_tests_accept_a_shared_beta_and_reject_different_ones():
    x = np.arange(30) / 30
    rng = np.random.default_rng(3)
    landau = fits.LANDAU_MODELS["landau"]
    shared = np.stack([landau(x, a, 1.2, c) + rng.normal(0, 0.005, 30) for a, c in ((0.5, 0.1), (0.8, 0.3), (1.0, 0.2))])
    mixed = np.stack([landau(x, 0.8, b, 0.2) + rng.normal(0, 0.005, 30) for b in (0.4, 1.2, 3.0)])
    p_shared = fits.common_parameter_lr(fits.landau_grid_fit(x, shared).profile_rss, [30] * 3)["p_value"]
    p_mixed = fits.common_parameter_lr(fits.landau_grid_fit(x, mixed).profile_rss, [30] * 3)["p_value"]
    assert p_shared > 0.05 and p_mixed < 1e-6
    assert fits.cochran_q([1.0, 1.01, 0.99], [0.05] * 3)["p_value"] > 0.5
    assert fits.cochran_q([0.5, 1.0, 2.0], [0.05] * 3)["p_value"] < 1e-6


# -- claim rules --------------------------------------------------------------------------------------

def test_exp3_claim_rules_at_their_boundaries():
    """C9's truncated exponent and C8 across models (the rules of issue 9 are in test_semantic_rules.py)."""
    words = ["a", "b", "c"]
    ev3 = {"words_used": words, "c9": {"alpha_truncated_ci95": [0.95, 1.3], "alpha_truncated": 1.1, "best_truncated": "x"}}
    name = "test_c9_truncated_g_nearly_linear"
    assert registry.get("exp3").claims.evaluate(ev3, name).passed
    ev3["c9"]["alpha_truncated_ci95"] = [1.01, 1.3]
    assert not registry.get("exp3").claims.evaluate(ev3, name).passed
    ev3["c9"]["alpha_truncated_ci95"] = [0.5, 0.89]
    assert not registry.get("exp3").claims.evaluate(ev3, name).passed
    cross = {"kind": "cross-model", "pairs": [{"models": ["m1", "m2"], "corr": 0.975, "null_corr_q95": 0.9}]}
    assert registry.get("exp3").claims.evaluate(cross, "test_c8_g_universal_across_models").passed
    cross["pairs"][0]["corr"] = 0.96
    assert not registry.get("exp3").claims.evaluate(cross, "test_c8_g_universal_across_models").passed


# -- end to end ---------------------------------------------------------------------------------------

def test_exp1_exp2_exp3_share_residuals_end_to_end_on_a_tiny_model(tiny_llama, tmp_path):
    from semphase.cache import EvidenceStore
    from semphase.experiments.exp1.measure import measure_stimuli as measure1
    from semphase.experiments.exp2.measure import measure_stimuli as measure2
    from semphase.experiments.exp10.measure import attach_g, attach_g_correlation
    from semphase.models import load_model
    from semphase.report import OutputLayout, publish

    lm = load_model(str(tiny_llama), "cpu")
    stim = parse_stimuli(_three_word_doc())
    store = EvidenceStore(tmp_path / "cache")
    e1 = measure1(lm, stim, store, n_null=20)
    assert e1["words_used"] == ["bank", "bat", "crane"] and e1["timing"]["forward_prompts"] > 0
    e2 = measure2(lm, stim, EvidenceStore(tmp_path / "cache"), n_boot=20)
    e3 = exp3.measure_stimuli(lm, stim, EvidenceStore(tmp_path / "cache"), n_null=20, n_boot=20)
    assert e2["timing"]["forward_prompts"] == 0 and e3["timing"]["forward_prompts"] == 0  # exp1's residuals
    L = lm.n_layers
    assert len(e3["g_mean"]) == L + 1 and len(e3["null_g_mean_random"]) == 20
    assert len(e2["words"]["bank"]["logit_lens"]["prompts"][0]["top1"]) == L + 1
    assert e3["c6"]["circular_r2_final_max_dev"] < 1e-9
    # issue 9: the estimator and every interval's resampling unit are in the evidence
    assert "power_law" in e2["c4"]["estimator"] and e2["c4"]["cv_ci_unit"].startswith("words")
    assert e2["c5"]["frac_ci_unit"].startswith("words") and e2["c5"]["pattern_missing"] == ["rock", "spring", "bass", "light"]
    assert e3["c7"]["unit"].startswith("words") and e3["c8"]["unit"].startswith("words")
    assert e3["shape"]["drop_ci_unit"].startswith("words") and len(e3["c6"]["position"]["per_layer"]) == L + 1
    assert e1["c3"]["shuffled_sense_directions"]["n"] == 20 and len(e1["c3"]["shuffled_sense_directions"]["frac_last_block"]) == 20
    c3 = registry.get("exp1").claims.evaluate(e1, "test_c3_last_block_jump_beats_random_direction_null")
    assert any("shuffled-sense" in c.name for c in c3.conditions)
    c5 = registry.get("exp2").claims.evaluate(e2, "test_c5_linear_response_holds_only_partly")
    assert "skipped: rock, spring, bass, light" in c5.reason and len(c5.conditions) == 2
    exps = {"exp2": registry.get("exp2"), "exp3": registry.get("exp3")}
    for name, ev in (("exp2", e2), ("exp3", e3)):
        claims = exps[name].claims.evaluate_all(ev)
        assert {c.test for c in claims} == set(exps[name].claims.rules) and all(c.applicable for c in claims)
        json.dumps(ev, allow_nan=True)
    layout = OutputLayout.make(tmp_path / "out")
    layout.ensure_writable()
    for name, ev in (("exp2", e2), ("exp3", e3)):
        publish(exps[name], layout, ev, [c.to_json() for c in exps[name].claims.evaluate_all(ev)])
    tag = e3["tag"]
    for name in (f"data/exp2_{tag}.json", f"data/exp3_{tag}.json", f"data/exp3ef_{tag}.json",
                 f"figures/exp2_fits_{tag}.png", f"figures/exp3ef_universal_g_{tag}.png", f"figures/exp3_nulls_{tag}.png",
                 "reports/exp2_results.md", "reports/exp3_results.md", "reports/README.md"):
        assert (tmp_path / "out" / name).is_file(), name
    summary = (tmp_path / "out" / "reports" / "README.md").read_text()
    assert "test_c4_landau_beta_not_universal" in summary and "test_c9_g_form_erf_or_sigmoid" in summary
    # exp10's C19 gets g from exp3's evidence through the session's hand-off (no file is read)
    ev10 = {"n_layers": L, "layer": {"mean_delta_ppl": list(np.linspace(1.0, 0.1, L))}}
    attach_g(ev10, lambda: (e3, None))
    dg = np.diff(e3["g_mean"]) * L
    assert ev10["layer"]["g_correlation"]["dg_dx"] == pytest.approx(dg)
    attach_g(ev10, lambda: (None, "exp3 cannot be measured here"))
    assert ev10["layer"]["g_correlation"] is None and "cannot be measured" in ev10["layer"]["g_missing_reason"]
    attach_g_correlation(ev10, {"g_mean": e3["g_mean"][:-1]})
    assert ev10["layer"]["g_correlation"] is None and "expected" in ev10["layer"]["g_missing_reason"]
    # across models: a second "model" (the same evidence under another name) compares exactly
    other = copy.deepcopy(e3)
    other["model"], other["tag"] = "other", "other"
    cross = exp3.cross_model([e3, other])
    assert cross["pairs"][0]["corr"] == pytest.approx(1.0)
    publish(exps["exp3"], layout, cross, [c.to_json() for c in exps["exp3"].claims.evaluate_all(cross)])
    report = (tmp_path / "out" / "reports" / "exp3_results.md").read_text()
    assert "## Across models" in report and "test_c8_g_universal_across_models" in report and "out of scope" in report


def test_run_exp3_cli_with_a_stimuli_file(tiny_llama, tmp_path, capsys):
    from semphase.cli import main

    path = tmp_path / "stim.json"
    path.write_text(json.dumps(_three_word_doc()))
    rc = main(["run", "exp3", "--model", str(tiny_llama), "--device", "cpu", "--stimuli", str(path),
               "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "test_c7_response_shape_universal_beats_nulls" in out
    assert (tmp_path / "out" / "reports" / "exp3_results.md").is_file()
