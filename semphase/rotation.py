"""Rotation of the residual stream from block to block (science.md 8.2, 8C): the angle θ(l)
between what enters block l and what leaves it, at every token position. Used by exp8 (Θ = Σ θ)
and exp9 (Θ across sizes, and the same angles on two devices)."""
from __future__ import annotations

import numpy as np
import torch

from . import hooks


def rotation_angles(lm, ids: torch.Tensor) -> np.ndarray:
    """θ(l) for l = 0..L-1 at every position of one sequence ``ids`` [ctx]: [L, ctx] radians
    (0 where a norm is below 1e-10). Cosines in float64 on the CPU, whatever the model's device."""
    names = hooks.depth_residuals(lm.n_layers)
    theta = np.zeros((lm.n_layers, ids.shape[-1]))
    prev: dict[str, torch.Tensor] = {}

    def record(t: torch.Tensor, i: int) -> torch.Tensor:
        v = t[0].detach().to("cpu", torch.float64)  # float64 on the CPU: MPS has no float64
        if i > 0:
            u = prev["v"]
            nu, nv = u.norm(dim=-1), v.norm(dim=-1)
            ang = torch.arccos(((u * v).sum(-1) / (nu * nv).clamp_min(1e-300)).clamp(-1.0, 1.0))
            theta[i - 1] = torch.where((nu < 1e-10) | (nv < 1e-10), torch.zeros_like(ang), ang).numpy()
        prev["v"] = v
        return t

    fwd = [(name, lambda t, hook, i=i: record(t, i)) for i, name in enumerate(names)]
    with torch.inference_mode():
        lm.bridge.run_with_hooks(ids.reshape(1, -1).to(lm.device), fwd_hooks=fwd, return_type=None)
    return theta
