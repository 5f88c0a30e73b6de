"""exp3 and exp3E/F/G claims C6-C9 (science.md sections 4, 5, 16) on semphase's own stimuli,
parametrized over --model and --device, plus the cross-model universality of g when more than
one --model is given.

The evidence reuses exp1's cached residuals: per word and layer, the OLS response f(i) of σ_i
to h = level/4 (independent of σ; the original's circular h = σ_L/max|σ_L| is measured and
reported too), g = f/max f, their cross-word statistics against random-direction and
shuffled-sense nulls (no new forward pass), fits of g's form, and bootstrap intervals over
prompts. The decision rules live in :mod:`semphase.experiments.exp3.claims`. At the smoke
budget everything is measured and only sanity is asserted.

Exact-number reproduction of the original's exp3 tables needs the original stimuli and is out
of scope; there are no R-tests here.
"""
import pytest

from semphase.pytest_plugin import claim, get_evidence, get_model

pytestmark = [pytest.mark.exp3, pytest.mark.claims]
EXPERIMENT = "exp3"


def test_c6_circular_h_fixes_the_final_layer(check_claim):
    check_claim()


def test_c6_linearity_rises_with_depth(check_claim):
    check_claim()


def test_c6_h_effect_survives_position_control(check_claim):
    check_claim()


def test_c7_response_shape_universal_beats_nulls(check_claim):
    check_claim()


def test_c8_g_universal_across_words_beats_null(check_claim):
    check_claim()


def test_c9_g_form_erf_or_sigmoid(check_claim):
    check_claim()


def test_c9_truncated_g_nearly_linear(check_claim):
    check_claim()


@pytest.mark.xdist_group(name="semphase-cross-model")
def test_c8_g_universal_across_models(request, semphase_session, record_claim):
    """Needs two or more --model: loads each in turn on this worker (residuals come from the
    evidence cache when the model's own worker measured them) and compares their g(l/L)."""
    from semphase.experiments.exp3.measure import cross_model

    s = semphase_session.settings
    if len(s.models) < 2:
        pytest.skip("the cross-model test needs at least two --model options (e.g. --model smollm2-135m --model gpt2)")
    evs = [get_evidence(semphase_session, EXPERIMENT, get_model(request, name, s.devices[0])) for name in s.models]
    claim(semphase_session, record_claim, EXPERIMENT, cross_model(evs), "test_c8_g_universal_across_models")
