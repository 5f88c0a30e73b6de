"""A researcher's own claims (`pytest --claims FILE`): one test per @rule of the file, over every
--model and --device like the built-in claim tests, on the evidence of the file's experiment (the
same measurement and cache as the built-in claims; with the file's PARTS, only those parts are measured). Without --claims there is nothing to run here."""
import pytest

from semphase.pytest_plugin import assert_claim, get_evidence

pytestmark = [pytest.mark.claims]


def test_user_claim(user_claim_test, lm, semphase_session, record_claim):
    """Asserts the user's claim ``user_claim_test`` as its own rule states it (its conditions, with
    their intervals: a straddled bound is inconclusive)."""
    user = semphase_session.user_claims()
    evidence = get_evidence(semphase_session, user.experiment, lm, user.parts)
    result = user.evaluate_one(evidence, user_claim_test)
    record_claim(user.experiment, evidence, result)
    assert_claim(result)
