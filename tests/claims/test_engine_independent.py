"""The engine's per-head perplexities agree with an independent implementation: plain
transformers (no TransformerLens), zeroing the head's slice of the input to the attention
output projection with a PyTorch pre-hook, one full forward per head.

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


def test_engine_matches_independent_implementation(lm, semphase_settings):
    arch = type(lm.bridge.original_model).__name__
    if arch != "LlamaForCausalLM":
        pytest.skip("the independent check zeroes o_proj inputs, which equals hook_z zeroing only for "
                    f"bias-free Llama-family models, not {arch}")
    from transformers import AutoModelForCausalLM

    from semphase.models import _smollm2_folder

    spec = lm.spec
    if spec.source == "smollm2-wheel":
        hf = AutoModelForCausalLM.from_pretrained(_smollm2_folder(), gguf_file=spec.gguf_file,
                                                  dtype=torch.float32, attn_implementation="eager")
    else:
        hf = AutoModelForCausalLM.from_pretrained(spec.path or spec.hub_id, dtype=torch.float32,
                                                  attn_implementation="eager")
    hf.eval()
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
