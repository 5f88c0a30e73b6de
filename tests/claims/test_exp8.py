"""exp8A/B/C claims C13-C15 (science.md sections 8, 16), parametrized over --model and --device.

Parts a and b fit exp3's g(l/L) and its two-stage bootstrap replicates, measured through the
session on the same model (from exp1's cached residuals); part c measures the residual stream's
rotation angles on WikiText tokens (the test split, as the original; `--split validation` where
only that split is at hand). The decision rules live in :mod:`semphase.experiments.exp8.claims`.
Reproduction tests need GPT-2 (and, for 8A/8B, the original's gradient prompts) and skip here.
"""
import pytest

pytestmark = [pytest.mark.exp8, pytest.mark.claims]
EXPERIMENT = "exp8"


def test_exp8_evidence_sane(check_claim):
    check_claim()


def test_c13_reproduce_sigma_lr(check_claim):
    check_claim()


def test_c13_sigma_pi_not_singled_out(check_claim):
    check_claim()


def test_c13_inverse_sqrt_pi_rejected(check_claim):
    check_claim()


def test_c14_reproduce_bic_ranking(check_claim):
    check_claim()


def test_c14_zero_parameter_pi_model_not_best(check_claim):
    check_claim()


def test_c15_reproduce_theta_profile(check_claim):
    check_claim()


def test_c15_theta_not_integer_multiple_of_pi(check_claim):
    check_claim()
