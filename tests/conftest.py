"""Shared test helpers: tiny random-weight models saved as local model folders, so that the
machinery tests exercise the real loader, Bridge and hooks in seconds."""
from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = (
    "The bank of the river was steep . She went to the bank to deposit money . "
    "A bat flew out of the cave at dusk . He swung the bat and hit the ball . "
    "The crane lifted steel beams . A crane stood in the shallow water . "
    "In spring the flowers bloom . The spring in the clock was broken . "
) * 20


def make_tokenizer(folder: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS], trainer)
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>")
    fast.save_pretrained(folder)
    return fast


def make_tiny_model(folder: Path, arch: str = "llama", seed: int = 0, zero_head: tuple[int, int] | None = None) -> Path:
    """A random-weight causal LM (3 layers, 4 heads, d_model 32) with its tokenizer in ``folder``.

    ``zero_head=(layer, head)`` zeroes that head's slice of the output projection, so its
    ablation cannot change anything.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(folder)
    torch.manual_seed(seed)
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=3, n_head=4,
                         bos_token_id=1, eos_token_id=1)
        model = GPT2LMHeadModel(cfg)
    elif arch == "neox":  # Pythia's architecture: rotary on a quarter of each head, parallel attention and MLP
        cfg = GPTNeoXConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=128, num_hidden_layers=3,
                            num_attention_heads=4, rotary_pct=0.25, use_parallel_residual=True,
                            max_position_embeddings=256, bos_token_id=1, eos_token_id=1)
        model = GPTNeoXForCausalLM(cfg)
    else:
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                          bos_token_id=1, eos_token_id=1, tie_word_embeddings=False)
        model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # larger random weights, so that heads matter
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(4.0)
        if zero_head is not None:
            layer, head = zero_head
            d_head = 32 // 4
            if arch == "gpt2":
                model.transformer.h[layer].attn.c_proj.weight[head * d_head:(head + 1) * d_head, :] = 0
            else:
                model.model.layers[layer].self_attn.o_proj.weight[:, head * d_head:(head + 1) * d_head] = 0
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def tiny_neox(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-neox"), "neox")


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path
