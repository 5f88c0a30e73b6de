"""exp7 claim C12 (science.md sections 7, 16), one test per claim test of the registry,
parametrized over --model and --device.

Reproduction (R) tests compare the original protocol (positions 0-999 of the first chunk of
WikiText-2 test) with the original's GPT-2 small norms and K(90 %) per block, and skip, saying why,
on other models. Hypothesis (H) tests use the robust protocol (positions drawn at random in chunks
drawn at random, position 0 excluded and reported as a control), scale GPT-2's block ranges and
rank bounds to the model, and decide with intervals that resample the drawn chunks
("inconclusive" where an interval straddles the bound). At the smoke budget only the sanity test
is asserted.

The decision rules live in :mod:`semphase.experiments.exp7.claims`.
"""
import pytest

pytestmark = [pytest.mark.exp7, pytest.mark.claims]
EXPERIMENT = "exp7"


def test_exp7_evidence_sane(check_claim):
    check_claim()


def test_c12_reproduce_delta_phi_norms(check_claim):
    check_claim()


def test_c12_reproduce_k90_per_layer(check_claim):
    check_claim()


def test_c12_delta_phi_not_lowrank(check_claim):
    check_claim()


def test_c12_singular_blocks_are_position0_artefacts(check_claim):
    check_claim()


def test_c12_attention_lower_rank_than_mlp(check_claim):
    check_claim()


def test_every_registry_claim_has_a_test():
    from semphase import registry

    names = set(registry.get(EXPERIMENT).claims.order)
    assert names <= set(globals()), names - set(globals())
