"""The ablation engine against the plain hook loop, and the laws an ablation must obey."""
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semphase.ablation import (BLOCK, AblationEngine, ablation_hook, block_counts, block_sums, hook_z_name,
                               token_nll)
from semphase.data import load_eval_tokens
from semphase.models import load_model

pytestmark = pytest.mark.machinery


@pytest.fixture(scope="module", params=["tiny_llama", "tiny_gpt2"])
def setup(request, tiny_text):
    lm = load_model(str(request.getfixturevalue(request.param)), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 192, 96, text_file=str(tiny_text))
    return lm, ts


def _plain(engine, chunk, hooks):
    return float(engine.forward_nll(chunk, hooks).sum())


def test_hook_z_has_one_slice_per_head(setup):
    lm, ts = setup
    seen = {}

    def look(z, hook):
        seen["s"] = z.shape

    lm.bridge.run_with_hooks(ts.chunks[0].view(1, -1), fwd_hooks=[(hook_z_name(1), look)])
    assert tuple(seen["s"]) == (1, ts.ctx, lm.n_heads, lm.d_head)


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_engine_equals_plain_loop_for_every_head(setup, kind):
    lm, ts = setup
    engine = AblationEngine(lm)
    means = torch.randn(lm.n_layers, lm.n_heads, lm.d_head) if kind == "mean" else None
    cap = engine.capture(ts.chunks[1])
    for layer in range(lm.n_layers):
        fast = engine.layer_single_nll(cap, layer, kind, means)
        for h in range(lm.n_heads):
            hook = ablation_hook(kind, [h], None if means is None else means[layer])
            plain = _plain(engine, ts.chunks[1], [(hook_z_name(layer), hook)])
            assert abs(float(fast[h].sum()) - plain) / plain <= 1e-5


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_gpt2", "tiny_neox"])
def test_unguarded_softmax_gives_identical_losses_and_is_undone(request, tiny_text, arch):
    """The engine's unguarded attention softmax gives losses bit-identical to TransformerLens's guarded one (the
    baseline, every head ablated alone, relu replacement), replaces every attention's softmax while inside, and
    leaves the model as it was after."""
    from semphase.ablation import unguarded_softmax

    lm = load_model(str(request.getfixturevalue(arch)), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 192, 96, text_file=str(tiny_text))
    guarded, fast = AblationEngine(lm, guarded_softmax=True), AblationEngine(lm)
    cap_g, cap_f = guarded.capture(ts.chunks[0]), fast.capture(ts.chunks[0])
    assert torch.equal(cap_g.baseline_nll, cap_f.baseline_nll)
    for layer in range(lm.n_layers):
        for kind in ("zero", "relu"):
            a, b = guarded.layer_single_nll(cap_g, layer, kind), fast.layer_single_nll(cap_f, layer, kind)
            assert len(a) == len(b) == lm.n_heads and all(torch.equal(x, y) for x, y in zip(a, b))
    attn = lm.bridge.blocks[0].attn
    with unguarded_softmax(lm.bridge) as n:
        assert n == lm.n_layers and "_masked_softmax" in vars(attn)
        with unguarded_softmax(lm.bridge) as inner:
            assert inner == 0  # already replaced: the enclosing call undoes it
        assert "_masked_softmax" in vars(attn)
    assert "_masked_softmax" not in vars(attn) and "_scrub_compatibility_pattern_nans" not in vars(attn)


def test_batched_heads_equal_one_at_a_time(setup):
    lm, ts = setup
    one, many = AblationEngine(lm, head_batch=1), AblationEngine(lm, head_batch=lm.n_heads)
    cap = one.capture(ts.chunks[0])
    a = [float(x.sum()) for x in one.layer_single_nll(cap, 1, "zero")]
    b = [float(x.sum()) for x in many.layer_single_nll(cap, 1, "zero")]
    assert np.allclose(a, b, rtol=1e-5)


def test_joint_ablation_across_layers_equals_plain(setup):
    lm, ts = setup
    engine = AblationEngine(lm)
    cap = engine.capture(ts.chunks[0])
    heads = [(0, 1), (2, 0), (2, 3)]
    fast = float(engine.ablated_nll(cap, heads, "zero").sum())
    hooks = [(hook_z_name(0), ablation_hook("zero", [1])), (hook_z_name(2), ablation_hook("zero", [0, 3]))]
    assert abs(fast - _plain(engine, ts.chunks[0], hooks)) / fast <= 1e-5


def test_no_ablation_is_the_baseline(setup):
    lm, ts = setup
    engine = AblationEngine(lm)
    cap = engine.capture(ts.chunks[0])
    assert torch.equal(engine.ablated_nll(cap, [], "zero"), cap.baseline_nll)
    assert math.isclose(float(cap.baseline_nll.sum()), _plain(engine, ts.chunks[0], []), rel_tol=1e-6)


def test_mean_ablation_with_the_heads_own_mean_on_a_constant_head_changes_little(setup):
    """Mean-ablation replaces the head by its average output: the PPL must move less than a
    zero-ablation of the same head does on average (a weak but real law for random models)."""
    lm, ts = setup
    engine = AblationEngine(lm)
    sums, n = engine.hook_z_sums(ts.chunks[0])
    means = (sums / n).float()
    cap = engine.capture(ts.chunks[0])
    base = float(cap.baseline_nll.sum())
    zero = [abs(float(x.sum()) - base) for x in engine.layer_single_nll(cap, 0, "zero")]
    mean = [abs(float(x.sum()) - base) for x in engine.layer_single_nll(cap, 0, "mean", means)]
    assert np.mean(mean) < np.mean(zero)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_ablating_a_head_whose_output_weights_are_zero_changes_nothing(tmp_path, tiny_text, arch):
    from conftest import make_tiny_model

    folder = make_tiny_model(tmp_path / arch, arch, seed=3, zero_head=(1, 2))
    lm = load_model(str(folder), "cpu", reuse=False)
    ts = load_eval_tokens(lm.tokenizer, 96, 96, text_file=str(tiny_text))
    engine = AblationEngine(lm)
    cap = engine.capture(ts.chunks[0])
    nll = engine.layer_single_nll(cap, 1, "zero")
    assert torch.allclose(nll[2], cap.baseline_nll, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(nll[0], cap.baseline_nll, rtol=1e-4)  # a live head does change it


@given(vocab=st.integers(2, 500), length=st.integers(2, 40), seed=st.integers(0, 10**6))
@settings(max_examples=25, deadline=None)
def test_uniform_prediction_has_perplexity_equal_to_vocabulary_size(vocab, length, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (1, length), generator=g)
    nll = token_nll(torch.zeros(1, length, vocab), tokens)
    assert math.isclose(math.exp(float(nll.mean())), vocab, rel_tol=1e-5)


@given(n=st.integers(1, 1100))
def test_blocks_partition_the_tokens(n):
    values = torch.rand(n, dtype=torch.float64)
    sums = block_sums(values)
    counts = block_counts(n)
    assert sum(counts) == n and all(0 < c <= BLOCK for c in counts)
    assert math.isclose(sum(sums), float(values.sum()), rel_tol=1e-12)


@pytest.mark.parametrize("what", ["softmax", "joints"])
def test_bench_prints_its_ratio_and_identical_losses(tiny_llama, tiny_text, capsys, what):
    """`bench softmax` (guarded against unguarded softmax) and `bench joints` (each joint capturing its chunks
    against captures shared by all joints) time both ways in one run and print the ratio and whether the losses
    are identical (they are); the shared captures take fewer forwards."""
    from semphase.cli import main

    assert main(["bench", what, "--model", str(tiny_llama), "--device", "cpu", "--text-file", str(tiny_text),
                 "--tokens", "192", "--ctx", "96"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "identical losses: True" in out
    if what == "joints":  # 4 sets on 2 chunks: 8 captures against 2, the same ablated forwards
        plain, shared = (float(x) for x in re.findall(r"\(([0-9.]+) forwards\)", out))
        assert plain - shared == pytest.approx((4 - 1) * 2)
