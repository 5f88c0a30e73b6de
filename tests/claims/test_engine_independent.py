"""The engine's per-head perplexities agree with an independent implementation: plain
transformers (no TransformerLens), zeroing the head's slice of the input to the attention
output projection with a PyTorch pre-hook, one full forward per head; and exp10's relu
replacement of one query head's softmax, written on transformers' own eager Llama attention.

For Llama-family models (no attention biases) this is exactly zero-ablation at hook_z. For
GPT-2 it is not: the original's processing folds b_V into b_O, so hook_z excludes the value
bias; the test skips there and says so.
"""
import math

import pytest
import torch

from semphase.ablation import AblationEngine
from semphase.data import load_eval_tokens

pytestmark = [pytest.mark.exp10, pytest.mark.claims]
LAYERS_TO_CHECK = (0, -1)


def _independent_ppl(hf_model, tokens: torch.Tensor, layer: int, head: int, d_head: int) -> float:
    attn = hf_model.model.layers[layer].self_attn

    def pre(module, args):
        x = args[0].clone()
        x[..., head * d_head:(head + 1) * d_head] = 0
        return (x,)

    handle = attn.o_proj.register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            logits = hf_model(tokens.view(1, -1), use_cache=False).logits
    finally:
        handle.remove()
    logp = torch.log_softmax(logits[0, :-1].double(), -1)
    return math.exp(float(-logp.gather(-1, tokens[1:].view(-1, 1)).mean()))


_PLAIN: dict = {}  # one plain transformers copy per model for this module's tests


def _plain_model(lm):
    if lm.spec.name not in _PLAIN:
        _PLAIN.clear()
        _PLAIN[lm.spec.name] = _load_plain(lm)
    return _PLAIN[lm.spec.name]


def _load_plain(lm):
    from transformers import AutoModelForCausalLM

    from semphase.models import _smollm2_folder

    spec = lm.spec
    if spec.source == "smollm2-wheel":
        hf = AutoModelForCausalLM.from_pretrained(_smollm2_folder(), gguf_file=spec.gguf_file,
                                                  dtype=torch.float32, attn_implementation="eager")
    else:
        hf = AutoModelForCausalLM.from_pretrained(spec.path or spec.hub_id, dtype=torch.float32,
                                                  attn_implementation="eager")
    return hf.eval()


def _llama_only(lm, why: str) -> None:
    arch = type(lm.bridge.original_model).__name__
    if arch != "LlamaForCausalLM":
        pytest.skip(f"{why}, not {arch}")


def _relu_head_ppl(hf, tokens: torch.Tensor, layer: int, head: int) -> float:
    """Perplexity with one query head's softmax replaced by the original's relu normalisation
    (science.md 12.2: ReLU of the scaled scores, masked entries weightless, rows divided by their
    sum, at least 1e-8), written on transformers' own eager attention (no TransformerLens)."""
    from transformers.models.llama import modeling_llama as ml

    original = ml.eager_attention_forward

    def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        if module.layer_idx != layer:
            return original(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
        k = ml.repeat_kv(key, module.num_key_value_groups)
        v = ml.repeat_kv(value, module.num_key_value_groups)
        scores = torch.matmul(query, k.transpose(2, 3)) * scaling
        n_q, n_k = scores.shape[-2:]
        allowed = torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q)
        weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        r = torch.relu(scores[:, head]) * allowed
        weights[:, head] = r / r.sum(-1, keepdim=True).clamp_min(1e-8)
        return torch.matmul(weights, v).transpose(1, 2).contiguous(), weights

    ml.eager_attention_forward = attention
    try:
        with torch.no_grad():
            logits = hf(tokens.view(1, -1), use_cache=False).logits
    finally:
        ml.eager_attention_forward = original
    logp = torch.log_softmax(logits[0, :-1].double(), -1)
    return math.exp(float(-logp.gather(-1, tokens[1:].view(-1, 1)).mean()))


def test_relu_replacement_matches_independent_implementation(lm, semphase_settings):
    """exp10 part i's per-head relu replacement (the engine, hooks on TransformerLens' scores and
    pattern, prefix reuse) gives the perplexities of the same replacement written on transformers'
    Llama attention, for every query head of the second and the last layer."""
    _llama_only(lm, "the independent relu check rewrites transformers' Llama attention")
    hf = _plain_model(lm)
    ts = load_eval_tokens(lm.tokenizer, 128, 128, data_dir=semphase_settings.data_dir,
                          text_file=semphase_settings.text_file)
    engine = AblationEngine(lm)
    cap = engine.capture(ts.chunks[0])
    worst = 0.0
    for layer in (1, lm.n_layers - 1):
        nlls = engine.layer_single_nll(cap, layer, "relu")
        for head in range(lm.n_heads):
            ours = math.exp(float(nlls[head].double().mean()))
            theirs = _relu_head_ppl(hf, ts.chunks[0], layer, head)
            worst = max(worst, abs(ours - theirs) / theirs)
    assert worst <= 1e-4, f"largest relative PPL difference {worst:.2e}"


def test_engine_matches_independent_implementation(lm, semphase_settings):
    _llama_only(lm, "the independent check zeroes o_proj inputs, which equals hook_z zeroing only for bias-free "
                    "Llama-family models")
    hf = _plain_model(lm)
    ts = load_eval_tokens(lm.tokenizer, 128, 128, data_dir=semphase_settings.data_dir,
                          text_file=semphase_settings.text_file)
    engine = AblationEngine(lm)
    cap = engine.capture(ts.chunks[0])
    chunk = ts.chunks[0]
    worst = 0.0
    for layer in (l % lm.n_layers for l in LAYERS_TO_CHECK):
        nlls = engine.layer_single_nll(cap, layer, "zero")
        for head in range(lm.n_heads):
            ours = math.exp(float(nlls[head].double().mean()))
            theirs = _independent_ppl(hf, chunk, layer, head, lm.d_head)
            worst = max(worst, abs(ours - theirs) / theirs)
    assert worst <= 1e-4, f"largest relative PPL difference {worst:.2e}"
