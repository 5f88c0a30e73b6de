"""exp10's decision rules at their boundaries, the statistics behind its intervals, and the weight
processing the reproduction tests rely on (issue 9): a planted sign error in C22 fails, C18's
limit is 43 of 144, intervals that straddle a bound are inconclusive, curves are refined at every
threshold crossing, chunks are resampled whole, the powerlaw estimator tells a power law from an
exponential, and hook_z excludes b_V after fold_value_biases."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from semphase import registry
from semphase.claims import Verdict
from semphase.stats import chunk_weights, heavy_tail_powerlaw, removable, removable_replicates, resampling

pytestmark = pytest.mark.machinery
CLAIMS = registry.get("exp10").claims


def _ev(n_heads_total=144, **extra) -> dict:
    ev = {"model": "m", "n_heads_total": n_heads_total, "n_heads": 12, "asserts_claims": True,
          "heldout": {"interval_unit": "chunks"}, "data": {}, "n_tokens": 2048}
    ev.update(extra)
    return ev


def _harmful(sum_ind=-0.014, joint=0.016, q95=0.01) -> dict:
    return {"n": 6, "heads": [[0, 0]] * 6, "interval_unit": "chunks",
            "sum_individual_delta": sum_ind, "sum_individual_delta_ci95": [sum_ind - 0.004, sum_ind + 0.004],
            "joint_delta": joint, "joint_delta_ci95": [joint - 0.004, joint + 0.004],
            "interaction": joint - sum_ind, "interaction_ci95": [0.0, 0.1],
            "null_random_sets": {"q95": q95, "n": 40}}


def test_c22_sign_flip_with_null_and_a_planted_sign_error_fails():
    name = "test_c22_harmful_heads_non_additive_heldout"
    assert CLAIMS.evaluate(_ev(harmful_heldout=_harmful()), name).value is Verdict.REPLICATES
    # a planted sign error: the joint and summed effects swapped (the rule written the wrong way round)
    planted = _harmful(sum_ind=0.016, joint=-0.014)
    assert CLAIMS.evaluate(_ev(harmful_heldout=planted), name).value is Verdict.REFUTED
    # an interaction inside the null of random head sets does not replicate
    assert CLAIMS.evaluate(_ev(harmful_heldout=_harmful(q95=0.05)), name).value is Verdict.REFUTED
    # a sum whose interval straddles 0 decides nothing
    wide = _harmful()
    wide["sum_individual_delta_ci95"] = [-0.03, 0.01]
    assert CLAIMS.evaluate(_ev(harmful_heldout=wide), name).value is Verdict.INCONCLUSIVE


def _curve(th11, ci=None, th20=40):
    c = {"thresholds": {"1.1": th11, "1.5": th11, "2.0": th20}, "interval_unit": "chunks"}
    if ci:
        c["thresholds_ci95"] = {"1.1": ci, "1.5": ci, "2.0": [th20, th20]}
    return c


def test_c18_limit_is_43_of_144_and_intervals_can_leave_it_open():
    name = "test_c18_heldout_removable_below_30pct"
    ev = _ev(curves={"zero_all": _curve(10), "zero_all_heldout": _curve(42)})
    assert CLAIMS.evaluate(ev, name).value is Verdict.REPLICATES
    assert "43 of 144" in CLAIMS.evaluate(ev, name).statement
    ev["curves"]["zero_all_heldout"] = _curve(43)
    assert CLAIMS.evaluate(ev, name).value is Verdict.REFUTED
    ev["curves"]["zero_all_heldout"] = _curve(40, ci=[35, 46])
    assert CLAIMS.evaluate(ev, name).value is Verdict.INCONCLUSIVE
    # the 2.0x bound is its own row
    two = CLAIMS.evaluate(_ev(curves={"zero_all": _curve(10), "zero_all_heldout": _curve(10, th20=51)}),
                          "test_c18_heldout_at_most_50_per_144_within_2x")
    assert two.value is Verdict.REFUTED and len(two.conditions) == 1


def test_c21_magnitude_and_bias_share_are_separate_rows():
    top = {"label": "L0H8", "zero_delta_eval": 2.4, "zero_delta_eval_ci95": [2.0, 2.8], "mean_delta_eval": 0.01,
           "mean_delta_eval_ci95": [0.0, 0.02], "ratio_zero_over_mean": 240.0, "ratio_ci95": [100.0, 1e9],
           "interval_unit": "chunks"}
    ev = _ev(top_head=top)
    assert CLAIMS.evaluate(ev, "test_c21_top_head_magnitude_heldout").value is Verdict.REPLICATES
    assert CLAIMS.evaluate(ev, "test_c21_top_head_is_constant_bias_heldout").value is Verdict.REPLICATES
    small = copy.deepcopy(top)
    small.update(zero_delta_eval=0.25, zero_delta_eval_ci95=[0.2, 0.3])
    ev = _ev(top_head=small)
    assert CLAIMS.evaluate(ev, "test_c21_top_head_magnitude_heldout").value is Verdict.REFUTED
    assert CLAIMS.evaluate(ev, "test_c21_top_head_is_constant_bias_heldout").value is Verdict.REPLICATES


def test_refine_resolves_every_crossing_of_a_non_monotone_curve():
    from semphase.experiments.exp10.run import refine

    steps = [0, 10, 20, 30, 40]
    ratios = [1.0, 1.09, 1.12, 1.08, 1.3]  # crosses 1.1 three times
    fine = refine(steps, ratios, 40)
    assert set(range(11, 20)) <= set(fine) and set(range(21, 30)) <= set(fine) and set(range(31, 40)) <= set(fine)
    assert set(range(1, 10)).isdisjoint(fine)  # no crossing between 0 and 10


def test_threshold_replicates_match_the_point_rule():
    steps = [0, 5, 10, 15]
    ratios = np.array([[1.0, 1.05, 1.2, 1.09], [1.0, 1.2, 1.3, 1.4]])
    got = removable_replicates(steps, ratios, 1.1)
    assert got.tolist() == [removable(steps, r, 1.1) for r in ratios] == [15, 0]


def test_cluster_bootstrap_draws_whole_chunks():
    w = chunk_weights(8, 4, n_boot=50, seed=1)
    per_chunk = w.reshape(50, 8, 4)
    assert np.all(per_chunk == per_chunk[:, :, :1]) and np.all(w.sum(axis=1) == 8 * 4)
    assert resampling(8, 4, 64)[1].startswith("chunks")
    assert resampling(2, 4, 64)[1].startswith("blocks")


def test_powerlaw_estimator_tells_a_power_law_from_an_exponential():
    rng = np.random.default_rng(0)
    pareto = (rng.pareto(1.5, 3000) + 1) * 0.01  # density exponent alpha = 2.5
    fit = heavy_tail_powerlaw(pareto)
    assert fit["powerlaw_vs_exponential"]["R"] > 0 and fit["powerlaw_vs_exponential"]["p"] < 0.05
    assert abs(fit["alpha"] - 2.5) < 0.2 and fit["n_tail"] <= fit["n_positive"]
    expo = rng.exponential(0.05, 3000)
    assert heavy_tail_powerlaw(expo)["powerlaw_vs_exponential"]["R"] < 0
    assert "note" in heavy_tail_powerlaw(np.array([0.1, -0.2, 0.3]))


def test_hook_z_excludes_b_v_after_fold_value_biases(tmp_path):
    """With HookedTransformer's processing (fold_value_biases), hook_z carries no value bias: two
    GPT-2-shaped models that differ only in b_V give the same hook_z, and the biased model's logits
    are unchanged by the processing (the bias moved into b_O); without processing their hook_z
    differ by b_V."""
    from conftest import make_tiny_model
    from transformers import GPT2LMHeadModel

    from semphase.hooks import attn_z
    from semphase.models import load_model

    plain = make_tiny_model(tmp_path / "plain", "gpt2", seed=3)
    biased = make_tiny_model(tmp_path / "biased", "gpt2", seed=3)
    model = GPT2LMHeadModel.from_pretrained(biased)
    d = model.config.n_embd
    with torch.no_grad():
        model.transformer.h[0].attn.c_attn.bias[2 * d:] = torch.linspace(-1.0, 1.0, d)
        model.transformer.h[0].attn.c_attn.bias[:2 * d] = 0.0
    model.save_pretrained(biased)
    with torch.no_grad():
        ref = GPT2LMHeadModel.from_pretrained(plain)
        ref.transformer.h[0].attn.c_attn.bias.zero_()
    ref.save_pretrained(plain)

    def run(folder, processing):
        lm = load_model(str(folder), "cpu", processing, reuse=False)
        tokens = torch.tensor([[3, 7, 11, 5, 9, 2]])
        seen = {}

        def grab(z, hook=None):
            seen["z"] = z.detach().clone()
            return z

        with torch.no_grad():
            logits = lm.bridge.run_with_hooks(tokens, fwd_hooks=[(attn_z(0), grab)])
        return seen["z"], logits

    z_plain, _ = run(plain, "tl-default")
    z_biased, logits_biased = run(biased, "tl-default")
    assert torch.allclose(z_plain, z_biased, atol=1e-5)
    z_plain_raw, _ = run(plain, "none")
    z_biased_raw, logits_biased_raw = run(biased, "none")
    assert not torch.allclose(z_plain_raw, z_biased_raw, atol=1e-3)
    # the model's function is kept (center_unembed shifts each position's logits by a constant)
    assert torch.allclose(logits_biased.log_softmax(-1), logits_biased_raw.log_softmax(-1), atol=1e-4)


def test_phase23_rows_name_their_layer_protocol():
    """The summary's protocol of exp10's phase 2-3 rows says whether every layer or a sample was
    replaced; phase-1 rows carry the budget alone."""
    from semphase import registry
    from semphase.report import protocol_of

    exp = registry.get("exp10")
    sample = {"budget": "quick", "n_layers": 30, "linear": {"layers": [1, 7, 12, 18, 23, 29]}}
    every = {"budget": "quick", "n_layers": 30, "linear": {"layers": list(range(1, 30))}}
    assert protocol_of(exp, sample, "C24") == "quick; phases 2-3 on a 6-layer sample"
    assert protocol_of(exp, every, "C24") == "quick; phases 2-3 on every layer"
    assert protocol_of(exp, sample, "C17") == "quick"
    assert protocol_of(exp, dict(sample, c23_every_layer={"x": 1}), "C23").endswith("C23's pair on every layer")


def test_exp10_modules_import_no_circle():
    """exp10's phase 2-3 modules import the shared run module, not measure.py: loading them loads no part a-h
    code, and run.py loads none of the part modules."""
    import subprocess
    import sys

    code = ("import sys, semphase.experiments.exp10.linearise, semphase.experiments.exp10.recovery; "
            "print('semphase.experiments.exp10.measure' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    code = ("import sys, semphase.experiments.exp10.run; print(sorted(m for m in sys.modules if m.startswith("
            "'semphase.experiments.exp10.') and m.split('.')[-1] in ('measure', 'linearise', 'recovery')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
