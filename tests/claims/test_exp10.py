"""exp10 claims C17-C22 (science.md sections 10, 11, 16), one test per claim test of the
registry, parametrized over --model and --device.

Reproduction (R) tests compare a fresh measurement on the original protocol (gpt2, WikiText-2
validation, first 2,048 tokens) with the original's numbers and skip, saying why, elsewhere.
Hypothesis (H) tests rank heads and estimate means on the rank range (the original's 2,048 tokens at
the quick budget) and measure on the disjoint held-out range after it (8,192 tokens, 8 chunks),
with intervals that resample chunks; they use the model's own head count and assert the
original's conclusion, or report "inconclusive" where an interval straddles the bound. At the smoke budget the numbers are computed and checked
for sanity, and no claim is asserted.

The decision rules live in :mod:`semphase.experiments.exp10.claims` (the CLI's report uses the
same ones); ``check_claim`` evaluates the rule named after the test on evidence measured in this
run (or read from the evidence cache of such a run) and asserts it. C19 needs exp3's g(l/L): the
session measures exp3 on the same model when C19 is evaluated.
"""
import pytest

pytestmark = [pytest.mark.exp10, pytest.mark.claims]
EXPERIMENT = "exp10"


def test_exp10_evidence_sane(check_claim):
    check_claim()


def test_c17_reproduce_top10_and_stats(check_claim):
    check_claim()


def test_c17_importance_concentrated_in_layer0(check_claim):
    check_claim()


def test_c17_importance_heavy_tailed(check_claim):
    check_claim()


def test_c18_reproduce_thresholds(check_claim):
    check_claim()


def test_c18_heldout_removable_below_30pct(check_claim):
    check_claim()


def test_c18_heldout_at_most_50_per_144_within_2x(check_claim):
    check_claim()


def test_c19_no_correlation_with_dg_dx(check_claim):
    check_claim()


def test_c20_reproduce_mean_ablation(check_claim):
    check_claim()


def test_c20_mean_beats_zero_heldout(check_claim):
    check_claim()


def test_c21_reproduce_l0h8_bias(check_claim):
    check_claim()


def test_c21_top_head_magnitude_heldout(check_claim):
    check_claim()


def test_c21_top_head_is_constant_bias_heldout(check_claim):
    check_claim()


def test_c22_reproduce_harmful_sign_flip(check_claim):
    check_claim()


def test_c22_harmful_heads_non_additive_heldout(check_claim):
    check_claim()
