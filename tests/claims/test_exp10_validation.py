"""exp10V (science.md section 13, part v): do the 2K-token findings survive on more data? Claim C26.

The ranking of the best linearisation chosen on the rank range (the original's first 2,048
validation tokens) is evaluated on the held-out range (8,192 tokens in 8 chunks at the quick
budget, the rest of the validation split at full). The reproduction test needs the original's
whole-split protocol on GPT-2 (``--budget full``); the hypothesis test asks whether in-sample
selection is optimistic (in-sample minus held-out 1.1x threshold > 0), with an interval that
combines the two ranges' independent bootstraps (blocks of the rank range, chunks of the
held-out range).
"""
import pytest

pytestmark = [pytest.mark.exp10, pytest.mark.claims]
EXPERIMENT = "exp10"


def test_c26_reproduce_full_split(check_claim):
    check_claim()


def test_c26_small_sample_optimism(check_claim):
    check_claim()
