"""exp10 claims C17-C22 (science.md sections 10, 11, 16), one test per claim test of the
registry, parametrized over --model and --device.

Reproduction (R) tests compare a fresh measurement on the original protocol (gpt2, WikiText-2
validation, first 2,048 tokens) with the original's numbers and skip, saying why, elsewhere.
Hypothesis (H) tests use held-out tokens (rank / estimate means on the first half of the
chunks, evaluate on the second), bootstrap intervals over token blocks and the model's own
head count; each asserts the original's conclusion. At the smoke budget the numbers are
computed and checked for sanity, and no claim is asserted.

The decision rules live in :mod:`semphase.exp10` (the CLI's report uses the same ones); each
test evaluates its rule on evidence measured in this run (or read from the evidence cache of
such a run) and asserts every condition.
"""
import pytest

from semphase.exp10 import evaluate_claim
from semphase.pytest_plugin import assert_claim

pytestmark = [pytest.mark.exp10, pytest.mark.claims]


def check(name: str, evidence: dict, record_claim) -> None:
    result = evaluate_claim(evidence, name)
    record_claim("exp10", evidence, result)
    assert_claim(result)


def test_exp10_evidence_sane(exp10_evidence, record_claim):
    check("test_exp10_evidence_sane", exp10_evidence, record_claim)


def test_c17_reproduce_top10_and_stats(exp10_evidence, record_claim):
    check("test_c17_reproduce_top10_and_stats", exp10_evidence, record_claim)


def test_c17_importance_concentrated_in_layer0(exp10_evidence, record_claim):
    check("test_c17_importance_concentrated_in_layer0", exp10_evidence, record_claim)


def test_c17_importance_heavy_tailed(exp10_evidence, record_claim):
    check("test_c17_importance_heavy_tailed", exp10_evidence, record_claim)


def test_c18_reproduce_thresholds(exp10_evidence, record_claim):
    check("test_c18_reproduce_thresholds", exp10_evidence, record_claim)


def test_c18_heldout_removable_below_30pct(exp10_evidence, record_claim):
    check("test_c18_heldout_removable_below_30pct", exp10_evidence, record_claim)


def test_c19_no_correlation_with_dg_dx(exp10_evidence_with_g, record_claim):
    check("test_c19_no_correlation_with_dg_dx", exp10_evidence_with_g, record_claim)


def test_c20_reproduce_mean_ablation(exp10_evidence, record_claim):
    check("test_c20_reproduce_mean_ablation", exp10_evidence, record_claim)


def test_c20_mean_beats_zero_heldout(exp10_evidence, record_claim):
    check("test_c20_mean_beats_zero_heldout", exp10_evidence, record_claim)


def test_c21_reproduce_l0h8_bias(exp10_evidence, record_claim):
    check("test_c21_reproduce_l0h8_bias", exp10_evidence, record_claim)


def test_c21_top_head_is_constant_bias_heldout(exp10_evidence, record_claim):
    check("test_c21_top_head_is_constant_bias_heldout", exp10_evidence, record_claim)


def test_c22_reproduce_harmful_sign_flip(exp10_evidence, record_claim):
    check("test_c22_reproduce_harmful_sign_flip", exp10_evidence, record_claim)


def test_c22_harmful_heads_non_additive_heldout(exp10_evidence, record_claim):
    check("test_c22_harmful_heads_non_additive_heldout", exp10_evidence, record_claim)


def test_every_registry_claim_has_a_test():
    from semphase.exp10 import CLAIMS

    assert set(CLAIMS) <= set(globals()), set(CLAIMS) - set(globals())
