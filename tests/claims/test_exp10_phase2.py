"""exp10 phase 2 (science.md section 12, parts i, j, k, l): can heads run without softmax? Claims
C23-C25, one test per claim test of the registry, parametrized over --model and --device.

Each head of layers 1..L-1 is replaced alone by the original's relu, l1 and identity
normalisations of the scores and by a genuinely kernelisable feature-map attention (elu+1 on Q
and K, factorised). Reproduction (R) tests compare with the original's GPT-2 small numbers on its
protocol (first 2,048 validation tokens) and skip elsewhere; the FLOP-arithmetic ones (C25's R
test) hold for any model. Hypothesis (H) tests rank heads on the rank range and evaluate the
cumulative curves on the disjoint held-out range, with paired intervals that resample chunks;
"inconclusive" where an interval straddles the bound. The rules live in
:mod:`semphase.experiments.exp10.claims_phases23`.
"""
import pytest

pytestmark = [pytest.mark.exp10, pytest.mark.claims]
EXPERIMENT = "exp10"


def test_c23_reproduce_relu_stats(check_claim):
    check_claim()


def test_c23_relu_beats_mean_heldout(check_claim):
    check_claim()


def test_c24_reproduce_thresholds(check_claim):
    check_claim()


def test_c24_pure_beats_mixed_heldout(check_claim):
    check_claim()


def test_c25_reproduce_flop_arithmetic(check_claim):
    check_claim()


def test_c25_whole_model_saving_below_5pct(check_claim):
    check_claim()


def test_c25_kernelisable_attention_keeps_heads_heldout(check_claim):
    check_claim()
