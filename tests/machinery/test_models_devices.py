"""Model names, devices and numerics: clear words for bad input."""
import pytest
import torch

from semphase import models
from semphase.device import resolve_device, set_numerics, worker_device
from semphase.errors import DeviceUnavailable, ModelUnavailable, SemphaseError

pytestmark = pytest.mark.machinery


def test_unknown_model_names_the_choices():
    with pytest.raises(SemphaseError, match="unknown model 'gpt3'.*smollm2-135m"):
        models.resolve_spec("gpt3")


def test_registry_names():
    assert models.resolve_spec("gpt2").hub_id == "openai-community/gpt2"
    assert models.resolve_spec("gpt2-xl").source == "hub"
    assert models.resolve_spec("smollm2-135m").source == "smollm2-wheel"
    assert models.resolve_spec("EleutherAI/pythia-70m").source == "hub"


def test_hub_model_offline_and_not_cached_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="not in the local Hugging Face cache"):
        models.load_model("gpt2", "cpu", reuse=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1"])
def test_cuda_absent_is_a_clear_error(spec):
    with pytest.raises(DeviceUnavailable, match="no CUDA device"):
        resolve_device(spec)


def test_bad_device_names():
    with pytest.raises(DeviceUnavailable, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")


def test_worker_i_takes_cuda_i_mod_count():
    assert [worker_device("cuda", i, device_count=3) for i in range(5)] == \
        ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert worker_device("cuda:1", 4, device_count=3) == "cuda:1"
    assert worker_device("cpu", 4, device_count=3) == "cpu"
    assert worker_device("cuda", None, device_count=3) == "cuda"
    assert worker_device("auto", 4, device_count=2) == "cuda:0"
    assert worker_device("auto", 1, device_count=0) == "auto"


def test_tf32_is_off():
    settings = set_numerics(torch.device("cpu"))
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert settings["tf32_matmul"] is False and settings["dtype"] == "float32"


def test_local_folder_loads_with_processing_recorded(tiny_gpt2):
    lm = models.load_model(str(tiny_gpt2), "cpu")
    assert (lm.n_layers, lm.n_heads, lm.d_head) == (3, 4, 8)
    assert lm.processing["fold_ln"] and lm.processing["fold_value_biases"]
    assert len(lm.weights_sha256) == 64
    assert models.load_model(str(tiny_gpt2), "cpu") is lm  # loaded once per process


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(SemphaseError, match="no config.json"):
        models.resolve_spec(str(tmp_path))


def test_registry_name_maps_hub_ids_to_the_registry():
    from semphase.models import registry_name

    assert registry_name("gpt2") == "gpt2" and registry_name("openai-community/gpt2") == "gpt2"
    assert registry_name("openai-community/gpt2-medium") == "gpt2-medium"
    assert registry_name("EleutherAI/pythia-160m") == "pythia-160m"
    assert registry_name("/tmp/some-folder") is None and registry_name("org/other") is None


def test_untrained_twin_has_the_models_shape_and_seeded_random_weights(tiny_llama):
    """``random:NAME`` is NAME's configuration and tokenizer with weights drawn by the architecture's
    initialiser: same shape, other weights, the same weights on every load (seeded), recorded."""
    from semphase.models import load_model, resolve_spec

    trained = load_model(str(tiny_llama), "cpu", reuse=False)
    twin = load_model(f"random:{tiny_llama}", "cpu", reuse=False)
    again = load_model(f"random:{tiny_llama}", "cpu", reuse=False)
    assert (twin.n_layers, twin.n_heads, twin.d_model) == (trained.n_layers, trained.n_heads, trained.d_model)
    assert twin.weights_sha256 != trained.weights_sha256 and twin.weights_sha256 == again.weights_sha256
    prov = twin.provenance()
    assert prov["random_weights_seed"] == 0 and "untrained twin" in prov["description"]
    assert twin.tag.startswith("random_") and twin.tokenizer.vocab_size == trained.tokenizer.vocab_size
    with pytest.raises(SemphaseError, match="after 'random:'"):
        resolve_spec("random:")
