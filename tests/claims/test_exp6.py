"""exp6 claims C10, C11 (science.md sections 6, 16), one test per claim test of the registry,
parametrized over --model and --device.

Reproduction (R) tests compare with the original's GPT-2 small numbers (PCA thresholds from the
weights; PPL ratios on WikiText-2 test; clustering ratios) and skip, saying why, on other models.
Hypothesis (H) tests scale the spec's K and k (given for 144 heads) to the model's head count,
measure perplexity on the held-out range (intervals resample chunks) and assert the original's
conclusion, or report "inconclusive" where an interval straddles the bound. The sanity (S) test
checks the machinery's invariants on the real model (K = all reproduces the baseline, the injected
W_Q'^T W_K equals the reconstruction, the weights are restored) at every budget; at the smoke
budget nothing else is asserted.

The decision rules live in :mod:`semphase.experiments.exp6.claims`. C10's per-head error test
reads exp10's single-head zero-ablation ΔPPL (part a, rank range only) through the session.
"""
import pytest

pytestmark = [pytest.mark.exp6, pytest.mark.claims]
EXPERIMENT = "exp6"


def test_exp6_machinery_invariants(check_claim):
    check_claim()


def test_c10_reproduce_pca_thresholds(check_claim):
    check_claim()


def test_c10_reproduce_ppl_ratios(check_claim):
    check_claim()


def test_c10_k90_exceeds_uws_bases(check_claim):
    check_claim()


def test_c10_k90_exceeds_uws_bases_gauge_invariant(check_claim):
    check_claim()


def test_c10_high_variance_reconstructions_degrade(check_claim):
    check_claim()


def test_c10_low_variance_components_do_more_damage_per_variance(check_claim):
    check_claim()


def test_c10_error_concentrated_in_few_heads(check_claim):
    check_claim()


def test_c11_clustering_destroys_perplexity(check_claim):
    check_claim()


def test_c11_reproduce_clustering_fails(check_claim):
    check_claim()


def test_every_registry_claim_has_a_test():
    from semphase import registry

    names = set(registry.get(EXPERIMENT).claims.order)
    assert names <= set(globals()), names - set(globals())
