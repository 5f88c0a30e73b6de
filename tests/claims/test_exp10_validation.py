"""exp10V (science.md section 13, part v): do the 2K-token findings survive on more data? Claim C26.

The ranking of the best linearisation chosen on the rank range (the original's first 2,048
validation tokens) is evaluated on the held-out range (8,192 tokens in 8 chunks at the quick
budget, the rest of the validation split at full). The reproduction test needs the original's
whole-split protocol on GPT-2 (``--budget full``); the hypothesis test asks whether in-sample
selection is optimistic, cross-fitted (issue 21): rankings chosen on range A (the first 2,048
tokens) and on range B (as many tokens after the held-out range) are each evaluated on both, the
optimism within a range is its own ranking's 1.1x threshold minus the other's on the same tokens
(a change of text cancels), with a cluster t interval over the two folds and a control of random
head orders; the in-sample-against-held-out comparison is reported beside it.
"""
import pytest

pytestmark = [pytest.mark.exp10, pytest.mark.claims]
EXPERIMENT = "exp10"


def test_c26_reproduce_full_split(check_claim):
    check_claim()


def test_c26_small_sample_optimism(check_claim):
    check_claim()
