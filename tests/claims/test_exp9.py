"""exp9A/B/C claim C16 (science.md sections 9, 15 item 9, 16): the π claims across model sizes,
and the device-consistency test of the original's collapsed CUDA run.

Per model, exp9 reads exp8's evidence through the session. The scaling tests need two or more
--model of one family (`pytest -m exp9 --model pythia-70m --model pythia-160m ... -n 4` online;
here random-weight models of those shapes exercise the code). The device test compares the CPU
with the accelerator given by --device: `pytest -m gpu --model smollm2-135m --device cuda`.
"""
import pytest

from semphase.pytest_plugin import claim, get_evidence, get_model

pytestmark = [pytest.mark.exp9, pytest.mark.claims]
EXPERIMENT = "exp9"


def test_exp9_evidence_sane(check_claim):
    check_claim()


def test_c16_reproduce_delta_bic(check_claim):
    check_claim()


def _across_models(request, session, record_claim, test: str) -> None:
    from semphase import registry

    s = session.settings
    if len(s.models) < 2:
        pytest.skip("the scaling tests need two or more --model of one family (e.g. --model pythia-70m "
                    "--model pythia-160m --model pythia-410m)")
    evs = [get_evidence(session, EXPERIMENT, get_model(request, name, s.devices[0])) for name in s.models]
    claim(session, record_claim, EXPERIMENT, registry.get(EXPERIMENT).across_models(evs), test)


@pytest.mark.xdist_group(name="semphase-cross-model")
def test_c16_sigma_converges_to_inverse_sqrt_pi(request, semphase_session, record_claim):
    _across_models(request, semphase_session, record_claim, "test_c16_sigma_converges_to_inverse_sqrt_pi")


@pytest.mark.xdist_group(name="semphase-cross-model")
def test_c16_theta_grows_with_depth(request, semphase_session, record_claim):
    _across_models(request, semphase_session, record_claim, "test_c16_theta_grows_with_depth")


@pytest.mark.gpu
def test_device_consistency(request, lm, semphase_session, record_claim):
    """σ curves and rotation angles of ``lm`` (on the --device accelerator) against the same model
    on the CPU, TF32 off and on."""
    from semphase import registry
    from semphase.errors import SemphaseError
    from semphase.experiments.exp9.measure import accelerator, device_consistency

    if lm.device.type == "cpu":
        _, why = accelerator("cuda")
        pytest.skip(f"--device resolved to the CPU here; {why}")
    cpu_lm = get_model(request, lm.name, "cpu")
    try:
        ids = semphase_session.tokens(cpu_lm, registry.get(EXPERIMENT).data).chunks[0]
    except SemphaseError:
        ids = None  # no WikiText here: the σ curves alone
    ev = device_consistency(cpu_lm, lm, semphase_session.stimuli(), ids)
    claim(semphase_session, record_claim, EXPERIMENT, ev, "test_device_consistency")
