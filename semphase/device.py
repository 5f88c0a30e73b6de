"""Device selection, numerical settings and seeding."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from .errors import DeviceUnavailable

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"


def resolve_device(spec: str | None) -> torch.device:
    """Turn a user's device string into a torch device that exists here.

    ``auto`` picks CUDA, then MPS, then the CPU. An unavailable device raises
    :class:`DeviceUnavailable` with a sentence that says what to use instead.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"--device {spec}: there is no CUDA device on this machine "
                "(torch.cuda.is_available() is False); use --device cpu or --device auto."
            )
        index = 0
        if ":" in spec:
            try:
                index = int(spec.split(":", 1)[1])
            except ValueError:
                raise DeviceUnavailable(
                    f"--device {spec}: the CUDA index must be a whole number, e.g. cuda:0."
                ) from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise DeviceUnavailable(
                f"--device {spec}: this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1}); pick one of those."
            )
        return torch.device("cuda", index)
    if spec == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceUnavailable(
                "--device mps: there is no Apple MPS device on this machine; "
                "use --device cpu or --device auto."
            )
        return torch.device("mps")
    raise DeviceUnavailable(f"--device {spec}: unknown device; use one of {DEVICE_CHOICES}.")


def worker_device(spec: str, worker_index: int | None, device_count: int | None = None) -> str:
    """The device string for one xdist worker: worker i takes cuda:(i mod count).

    A bare ``cuda`` (and ``auto`` where CUDA exists) is spread over the visible devices; an
    explicit ``cuda:N`` or any other device is kept as given.
    """
    name = spec.strip().lower()
    if name not in ("cuda", "auto") or worker_index is None:
        return spec
    count = (torch.cuda.device_count() if torch.cuda.is_available() else 0) if device_count is None else device_count
    if count <= 0:
        return spec
    return f"cuda:{worker_index % count}"


def set_numerics(device: torch.device, dtype: str = "float32") -> dict:
    """The model in ``dtype`` (fp32 unless asked otherwise); TF32 off for matmul and cuDNN. Returns the settings
    for provenance."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return {
        "dtype": dtype,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


def seed_everything(seed: int = 0) -> int:
    """Seed Python's random, numpy and torch (all devices). Returns the seed."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    return seed
