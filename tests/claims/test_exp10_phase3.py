"""exp10P (science.md section 14, part p): can extra inference buy back what replaced heads cost?
Claims C27-C29.

Prompts and their true continuations come from the held-out range (no token of it ranked the
heads). Generation uses the key/value cache where the model offers one; sampling is seeded.
Best-of-N is judged by the original's selection measure and by measures it did not select on
(bigram F1 with the true continuation; each condition's loss on it; an independent judge model
when one is named), at scale for C27's hypothesis tests (at quick 100 prompts from 100 chunks,
3 seeds; intervals over chunks), against the baseline's first sample (the original's comparison)
and against the baseline's best-of-N (equal samples, its own row); self-refinement reports
distinct-2 beside the perplexity; the equal-FLOP arithmetic uses whole-model FLOPs beside the
original's attention-only ones. Reproduction tests need GPT-2 (the arithmetic ones, C29's R test,
hold for any model).
"""
import pytest

pytestmark = [pytest.mark.exp10, pytest.mark.claims]
EXPERIMENT = "exp10"


def test_c27_reproduce_best_of_n(check_claim):
    check_claim()


def test_c27_best_of_n_with_an_independent_judge(check_claim):
    check_claim()


def test_c27_best_of_n_at_equal_compute(check_claim):
    check_claim()


def test_c28_reproduce_refinement(check_claim):
    check_claim()


def test_c28_refinement_is_repetition(check_claim):
    check_claim()


def test_c29_reproduce_equal_flop_arithmetic(check_claim):
    check_claim()


def test_c29_whole_model_extra_tokens_below_one(check_claim):
    check_claim()

