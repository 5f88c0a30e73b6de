"""FLOP accounting: whole-model FLOPs per forward for any loaded architecture, beside the original's
attention-only formulas (science.md 12.2 10L, 14.2 P1/P3), which are kept as they were for the
reproduction tests of C25 and C29.

Conventions (whole model): 2 FLOPs per multiply-add in every matmul: the Q/K/V projections (with
grouped-query attention K and V have ``n_kv_heads`` heads), the attention scores and the weighted
sum, the output projection, the MLP (three matrices when gated, as in Llama: gate, up, down; two
otherwise) and the unembedding. Each softmax head also carries the original's elementwise terms
(scale n^2, softmax 5 n^2), so that its attention equals the original's per-head formula exactly.
The score matrix is counted in full (n x n), as a dense implementation computes it and as the
original counted it; embeddings, norms, activations and biases are not counted (each well under
1 % here). A replaced head's attention costs what its operator costs (:func:`head_attention_flops`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .errors import SemphaseError


@dataclass(frozen=True)
class ModelShapes:
    """What the FLOP count needs of a model."""

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    gated_mlp: bool
    name: str = field(default="", compare=False)

    @property
    def n_heads_total(self) -> int:
        return self.n_layers * self.n_heads

    def as_dict(self) -> dict:
        return asdict(self)


# GPT-2 small as science.md 0.1 gives it (the original's model).
GPT2_SMALL = ModelShapes(n_layers=12, d_model=768, n_heads=12, n_kv_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
                         gated_mlp=False, name="gpt2")


def _get(cfg, *names, default=None):
    for n in names:
        v = cfg.get(n) if isinstance(cfg, dict) else getattr(cfg, n, None)
        if v is not None:
            return v
    return default


def model_shapes(model) -> ModelShapes:
    """The shapes of a :class:`~semphase.models.LoadedModel`, a TransformerBridge, its ``cfg``, a
    Hugging Face config, or a dict with the TransformerLens field names."""
    cfg = getattr(model, "bridge", model)
    cfg = getattr(cfg, "cfg", cfg)
    name = str(getattr(model, "name", "") or _get(cfg, "model_name", default="") or "")
    n_layers = _get(cfg, "n_layers", "num_hidden_layers", "n_layer")
    d_model = _get(cfg, "d_model", "hidden_size", "n_embd")
    n_heads = _get(cfg, "n_heads", "num_attention_heads", "n_head")
    if n_layers is None or d_model is None or n_heads is None:
        raise SemphaseError("the model's config gives no layer count, width or head count, so its FLOPs cannot be "
                            "counted; pass a loaded model or its TransformerBridge cfg.")
    n_kv = _get(cfg, "n_key_value_heads", "num_key_value_heads", default=n_heads)
    d_head = _get(cfg, "d_head", "head_dim", default=int(d_model) // int(n_heads))
    d_mlp = _get(cfg, "d_mlp", "intermediate_size", "n_inner", default=4 * int(d_model))
    d_vocab = _get(cfg, "d_vocab", "vocab_size")
    if d_vocab is None:
        raise SemphaseError("the model's config gives no vocabulary size, so the unembedding cannot be counted.")
    gated = _get(cfg, "gated_mlp")
    if gated is None:  # a Hugging Face config: Llama-style MLPs have a gate projection
        gated = str(_get(cfg, "model_type", default="")) in ("llama", "mistral", "qwen2", "gemma", "gemma2", "olmo")
    return ModelShapes(int(n_layers), int(d_model), int(n_heads), int(n_kv), int(d_head), int(d_mlp), int(d_vocab),
                       bool(gated), name)


# -- the original's attention-only formulas (science.md 12.2 10L and 14.2) --------------------------

def original_head_flops(n: int, d: int = 64, method: str = "softmax") -> int:
    """The original's per-head attention FLOPs for one forward of n tokens (10L): ``softmax`` =
    2n^2 d (QK^T) + n^2 (scale) + 5n^2 (softmax) + 2n^2 d (AV); ``linear`` (its relu/l1/identity) =
    2n^2 d + n^2 + n^2 (activation) + 2n^2 (sum, divide) + 2n^2 d; ``kernel`` = 6 n d^2 (its assumed
    cost of a kernelised causal linear attention)."""
    if method == "softmax":
        return 2 * n * n * d + n * n + 5 * n * n + 2 * n * n * d
    if method == "linear":
        return 2 * n * n * d + n * n + n * n + 2 * n * n + 2 * n * n * d
    if method == "kernel":
        return 6 * n * d * d
    raise SemphaseError(f"unknown original attention method {method!r}; use softmax, linear or kernel.")


def original_attention_savings(n_replaced: int, n: int, method: str = "kernel", n_heads_total: int = 144,
                               d: int = 64) -> float:
    """10L: the attention-FLOP saving of ``n_replaced`` heads of ``n_heads_total`` run as ``method``:
    1 - [(N - k) softmax + k X] / (N softmax)."""
    soft = original_head_flops(n, d, "softmax")
    x = original_head_flops(n, d, method)
    return 1 - ((n_heads_total - n_replaced) * soft + n_replaced * x) / (n_heads_total * soft)


def original_p1_speedup(n: int, n_replaced: int, n_heads_total: int = 144, d: int = 64) -> float:
    """14.2 P1's theoretical kernel speed-up: total attention FLOPs with softmax heads (4n^2 d + 5n^2
    each) over the same with ``n_replaced`` heads at 6 n d^2."""
    soft = 4 * n * n * d + 5 * n * n
    kern = 6 * n * d * d
    return n_heads_total * soft / ((n_heads_total - n_replaced) * soft + n_replaced * kern)


def original_p3_token_ratio(n_replaced: int, avg_seq: int = 160, n_heads_total: int = 144, d: int = 64) -> float:
    """14.2 P3's FLOP ratio per generated token: softmax head 4 s d + 5 s at the mean context s
    (41,760 at s = 160), kernel head 6 d^2 (24,576): [(N - k) soft + k kern] / (N soft)."""
    soft = 4 * avg_seq * d + 5 * avg_seq
    kern = 6 * d * d
    return ((n_heads_total - n_replaced) * soft + n_replaced * kern) / (n_heads_total * soft)


def equal_flop_extra_tokens(ratio: float, tokens: int = 64) -> int:
    """14.2 P3: the extra tokens affordable at equal FLOPs, floor(tokens / ratio) - tokens."""
    if not ratio > 0:
        raise SemphaseError(f"a FLOP ratio must be positive, got {ratio}.")
    return int(math.floor(tokens / ratio + 1e-9)) - tokens


# -- whole-model accounting ---------------------------------------------------------------------

REPLACEMENT_COSTS = ("softmax", "relu", "l1", "identity", "kernel", "kernel_relu", "kernel_quadratic",
                     "original_kernel")


def kernel_head_flops(n: int, d: int, chunk: int = 64) -> int:
    """The factorised feature-map attention of :mod:`semphase.attention` over n tokens, one head
    (d_head = d, values of width d): feature maps on Q and K (one FLOP per element each), per
    chunk of ``chunk`` positions q S and the state update k^T v (2 n d^2 each), the intra-chunk
    q k^T and its product with v (2 n c d each, c = min(chunk, n)), the normaliser q u (2 n d), the
    intra-chunk row sums (n c), the running sum of k (n d) and the division (n d)."""
    c = min(int(chunk), n)
    return 2 * n * d + 4 * n * d * d + 4 * n * c * d + 2 * n * d + n * c + n * d + n * d


def head_attention_flops(n: int, d: int, replacement: str = "softmax", chunk: int = 64) -> int:
    """One head's attention FLOPs over a forward of n tokens: ``softmax`` and the score
    normalisations (relu, l1, identity: the original's "linear", still n^2) by the original's
    formulas; ``kernel`` / ``kernel_relu`` by :func:`kernel_head_flops`; ``kernel_quadratic`` as an
    n x n product (2n^2 d twice, plus 2n^2 for the sum and division, plus the feature maps);
    ``original_kernel`` the original's assumed 6 n d^2."""
    if replacement == "softmax":
        return original_head_flops(n, d, "softmax")
    if replacement in ("relu", "l1", "identity"):
        return original_head_flops(n, d, "linear")
    if replacement in ("kernel", "kernel_relu"):
        return kernel_head_flops(n, d, chunk)
    if replacement == "kernel_quadratic":
        return 4 * n * n * d + 2 * n * n + 2 * n * d
    if replacement == "original_kernel":
        return original_head_flops(n, d, "kernel")
    raise SemphaseError(f"unknown attention replacement {replacement!r} for the FLOP count; use one of "
                        f"{', '.join(REPLACEMENT_COSTS)}.")


def layer_dense_flops(s: ModelShapes, n: int) -> dict:
    """The matmuls of one block outside the attention operator, for n tokens."""
    return {
        "qkv": 2 * n * s.d_model * (s.n_heads + 2 * s.n_kv_heads) * s.d_head,
        "out_proj": 2 * n * s.n_heads * s.d_head * s.d_model,
        "mlp": 2 * n * s.d_model * s.d_mlp * (3 if s.gated_mlp else 2),
    }


def forward_flops(s: ModelShapes, n: int, n_replaced: int = 0, replacement: str = "kernel", chunk: int = 64) -> dict:
    """Whole-model FLOPs of one forward over n tokens, with ``n_replaced`` heads (anywhere; every
    head costs the same) running ``replacement`` instead of softmax. Returns the parts and their
    sum (``total``), the attention operator's share and the heads counted."""
    if n < 1:
        raise SemphaseError(f"a forward needs at least one token, got n = {n}.")
    if not 0 <= n_replaced <= s.n_heads_total:
        raise SemphaseError(f"{n_replaced} replaced heads is outside 0..{s.n_heads_total} for this model.")
    dense = layer_dense_flops(s, n)
    soft = head_attention_flops(n, s.d_head, "softmax")
    attention = (s.n_heads_total - n_replaced) * soft + n_replaced * head_attention_flops(n, s.d_head, replacement, chunk)
    out = {
        "n_tokens": n,
        "qkv": s.n_layers * dense["qkv"],
        "attention": attention,
        "out_proj": s.n_layers * dense["out_proj"],
        "mlp": s.n_layers * dense["mlp"],
        "unembed": 2 * n * s.d_model * s.d_vocab,
        "n_replaced": n_replaced,
        "replacement": replacement if n_replaced else None,
    }
    out["total"] = out["qkv"] + out["attention"] + out["out_proj"] + out["mlp"] + out["unembed"]
    out["attention_share"] = out["attention"] / out["total"]
    return out


def whole_model_savings(s: ModelShapes, n: int, n_replaced: int, replacement: str = "original_kernel",
                        chunk: int = 64) -> float:
    """The fraction of a whole forward's FLOPs saved by replacing ``n_replaced`` heads (C25's
    whole-model counterpart of :func:`original_attention_savings`)."""
    base = forward_flops(s, n)["total"]
    return 1 - forward_flops(s, n, n_replaced, replacement, chunk)["total"] / base


def token_flops(s: ModelShapes, context: int, n_replaced: int = 0, replacement: str = "original_kernel") -> dict:
    """Whole-model FLOPs of generating one token with a key/value cache at ``context`` positions:
    the projections, MLP and unembedding for one position, plus per softmax head the original's
    P3 per-token cost 4 t d + 5 t; a replaced head costs ``original_kernel`` 6 d^2 (the original's),
    ``kernel`` 4 d^2 + 5 d (this project's recurrent step: q S, the state update, q u, the
    feature maps and the division) or, for the score normalisations, 4 t d + 4 t."""
    d = s.d_head
    dense = layer_dense_flops(s, 1)
    soft = 4 * context * d + 5 * context
    if replacement == "original_kernel":
        rep = 6 * d * d
    elif replacement in ("kernel", "kernel_relu"):
        rep = 4 * d * d + 5 * d
    elif replacement in ("relu", "l1", "identity", "kernel_quadratic"):
        rep = 4 * context * d + 4 * context
    elif replacement == "softmax":
        rep = soft
    else:
        raise SemphaseError(f"unknown attention replacement {replacement!r} for the FLOP count; use one of "
                            f"{', '.join(REPLACEMENT_COSTS)}.")
    dense_total = s.n_layers * sum(dense.values()) + 2 * s.d_model * s.d_vocab
    attention = (s.n_heads_total - n_replaced) * soft + n_replaced * rep
    return {"context": context, "dense": dense_total, "attention": attention, "total": dense_total + attention}


def whole_model_token_ratio(s: ModelShapes, n_replaced: int, context: int = 160,
                            replacement: str = "original_kernel") -> float:
    """C29's whole-model counterpart of :func:`original_p3_token_ratio`: per generated token at the
    mean context, FLOPs with ``n_replaced`` heads replaced over FLOPs with none."""
    return token_flops(s, context, n_replaced, replacement)["total"] / token_flops(s, context)["total"]


def attention_only_savings(s: ModelShapes, n: int, n_replaced: int, replacement: str = "original_kernel",
                           chunk: int = 64) -> float:
    """The original's kind of saving (attention operator FLOPs only) for this model's head count and
    d_head; for GPT-2 small's shapes and ``original_kernel`` it is :func:`original_attention_savings`."""
    soft = head_attention_flops(n, s.d_head, "softmax")
    rep = head_attention_flops(n, s.d_head, replacement, chunk)
    return 1 - ((s.n_heads_total - n_replaced) * soft + n_replaced * rep) / (s.n_heads_total * soft)


def flop_table(s: ModelShapes, lengths=(128, 512, 1024, 2048), replaced=(30, 70), replacement: str = "original_kernel",
               chunk: int = 64) -> list[dict]:
    """Rows for a report: per sequence length and replaced-head count, the attention-only saving
    (the original's accounting) beside the whole-model saving and the attention operator's share of
    the whole forward."""
    rows = []
    for n in lengths:
        base = forward_flops(s, n)
        for k in replaced:
            if k > s.n_heads_total:
                continue
            rows.append({
                "n_tokens": n, "n_replaced": k, "replacement": replacement,
                "attention_only_saving": attention_only_savings(s, n, k, replacement, chunk),
                "whole_model_saving": whole_model_savings(s, n, k, replacement, chunk),
                "attention_share": base["attention_share"],
                "total_flops": base["total"],
            })
    return rows
