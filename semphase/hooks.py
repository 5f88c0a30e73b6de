"""Hook names, made in one place (TransformerLens names, kept as aliases by TransformerLens 4's
TransformerBridge). Every module that hooks a model asks here.

``resid_pre(l)`` / ``resid_post(l)``: the residual stream entering / leaving block l;
``attn_z(l)``: per-head attention output before W_O [batch, pos, head, d_head];
``attn_pattern(l)`` / ``attn_scores(l)``: attention probabilities / scores before the softmax
[batch, head, query, key]; ``attn_out(l)`` / ``mlp_out(l)``: what each sublayer writes.
"""
from __future__ import annotations

from functools import partial

TEMPLATES = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "attn_z": "blocks.{layer}.attn.hook_z",
    "attn_pattern": "blocks.{layer}.attn.hook_pattern",
    "attn_scores": "blocks.{layer}.attn.hook_attn_scores",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
}


def name(kind: str, layer: int) -> str:
    """The hook name of ``kind`` (a key of :data:`TEMPLATES`) in block ``layer``."""
    return TEMPLATES[kind].format(layer=int(layer))


resid_pre = partial(name, "resid_pre")
resid_post = partial(name, "resid_post")
attn_z = partial(name, "attn_z")
attn_pattern = partial(name, "attn_pattern")
attn_scores = partial(name, "attn_scores")
attn_out = partial(name, "attn_out")
mlp_out = partial(name, "mlp_out")


def depth_residuals(n_layers: int) -> list[str]:
    """The L+1 residual points of science.md 0.2, i = 0..L: what enters block 0, then what
    leaves each block."""
    return [resid_pre(0)] + [resid_post(i) for i in range(n_layers)]
