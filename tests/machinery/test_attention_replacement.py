"""Replaced attention (science.md 12): the original's score normalisations and the kernelisable
feature-map attention, as operators and as intervention kinds of the ablation engine."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semphase import sweeps
from semphase.ablation import (INTERVENTIONS, REPLACEMENTS, AblationEngine, ablation_hook, intervention_hooks,
                               token_nll)
from semphase.attention import (FEATURE_MAPS, NORMALISATIONS, feature_attention_factorised,
                                feature_attention_quadratic, normalise_scores)
from semphase.cache import EvidenceStore
from semphase.data import load_eval_tokens
from semphase.errors import SemphaseError
from semphase.hooks import attn_pattern, attn_scores, attn_z
from semphase.models import load_model

pytestmark = pytest.mark.machinery

ARCHS = ["tiny_llama", "tiny_gpt2", "tiny_neox"]
PATTERN_KINDS = ["relu", "l1", "identity"]
KERNEL_KINDS = ["kernel", "kernel_relu"]


@pytest.fixture(scope="module", params=ARCHS)
def arch(request, tiny_text):
    lm = load_model(str(request.getfixturevalue(request.param)), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 192, 96, text_file=str(tiny_text))
    return lm, ts


@pytest.fixture(scope="module")
def llama(tiny_llama, tiny_text):
    lm = load_model(str(tiny_llama), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 192, 96, text_file=str(tiny_text))
    return lm, ts


def _masked_scores(gen: torch.Generator, n: int, heads: int = 3, sentinel: float = float("-inf"), scale: float = 1.0):
    s = torch.randn(2, heads, n, n, generator=gen) * scale
    return s.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), sentinel)


def _full_logits(lm, tokens: torch.Tensor, hooks=()) -> torch.Tensor:
    with torch.no_grad():
        return lm.bridge.run_with_hooks(tokens.view(1, -1), fwd_hooks=list(hooks), use_cache=False)


def _all_heads_hooks(lm, kind):
    return [h for layer in range(lm.n_layers) for h in intervention_hooks(lm.bridge, kind, layer, range(lm.n_heads))]


# -- the operators --------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 24), seed=st.integers(0, 2 ** 16), sentinel=st.sampled_from(["-inf", "min"]),
       method=st.sampled_from(NORMALISATIONS))
def test_normalised_pattern_is_causal_and_rows_normalised(n, seed, sentinel, method):
    fill = float("-inf") if sentinel == "-inf" else torch.finfo(torch.float32).min
    s = _masked_scores(torch.Generator().manual_seed(seed), n, sentinel=fill)
    w = normalise_scores(s, method)
    assert torch.isfinite(w).all()
    assert (w.triu(diagonal=1) == 0).all(), "weight above the diagonal"
    visible = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), 0.0)
    if method == "softmax":
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6)
        assert (w >= 0).all()
    elif method == "relu":
        assert (w >= 0).all()
        has_pos = (visible > 0).any(-1)
        sums = w.sum(-1)
        assert torch.allclose(sums[has_pos], torch.ones(()), atol=1e-5)
        assert (sums[~has_pos] == 0).all()
    elif method == "l1":
        assert (w >= 0).all()
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)
    else:  # identity: signed, sum |w| = 1
        assert torch.allclose(w.abs().sum(-1), torch.ones(()), atol=1e-5)
        assert torch.equal(torch.sign(w), torch.sign(visible))


def test_relu_row_without_a_positive_score_is_all_zero_and_finite():
    s = torch.tensor([[-0.5, float("-inf"), float("-inf")],
                      [-1.0, -2.0, float("-inf")],
                      [-0.1, 0.4, -0.3]])
    w = normalise_scores(s, "relu")
    assert torch.isfinite(w).all()
    assert (w[0] == 0).all() and (w[1] == 0).all()
    assert torch.allclose(w[2], torch.tensor([0.0, 1.0, 0.0]))
    # identity of an all-zero row, relu features meeting no key: zero, not NaN
    assert (normalise_scores(torch.zeros(2, 2).masked_fill(torch.ones(2, 2, dtype=torch.bool).triu(1), float("-inf")),
                             "identity") == 0).all()
    fq, fk = torch.zeros(1, 4, 3), torch.zeros(1, 4, 3)
    v = torch.randn(1, 4, 3)
    assert (feature_attention_factorised(fq, fk, v)[0] == 0).all()
    assert (feature_attention_quadratic(fq, fk, v) == 0).all()


def test_relu_replaced_head_writes_nothing_where_no_score_is_positive(llama):
    lm, ts = llama
    tokens = ts.chunks[0].view(1, -1)
    seen = {}

    def grab(key):
        def hook(x, hook=None):
            seen[key] = x.detach().clone()
        return hook

    hooks = [(attn_scores(l), grab(("s", l))) for l in range(lm.n_layers)]
    hooks += [h for l in range(lm.n_layers) for h in intervention_hooks(lm.bridge, "relu", l, range(lm.n_heads))]
    hooks += [(attn_z(l), grab(("z", l))) for l in range(lm.n_layers)]
    lm.bridge.run_with_hooks(tokens, fwd_hooks=hooks)
    found = 0
    for l in range(lm.n_layers):
        s, z = seen[("s", l)][0], seen[("z", l)][0]  # [H, q, k], [pos, H, d]
        none_pos = ~(torch.nan_to_num(s, neginf=0.0) > 0).any(-1)  # [H, q]
        for h, q in none_pos.nonzero().tolist():
            assert (z[q, h] == 0).all()
            found += 1
        assert torch.isfinite(z).all()
    assert found > 0, "the tiny model should have a query with no positive score (position 0 of some head)"


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 70), d=st.integers(1, 9), dv=st.integers(1, 9), chunk=st.sampled_from([1, 3, 16, 64]),
       fmap=st.sampled_from(sorted(FEATURE_MAPS)), seed=st.integers(0, 2 ** 16))
def test_kernelised_form_equals_its_quadratic_form(n, d, dv, chunk, fmap, seed):
    g = torch.Generator().manual_seed(seed)
    phi = FEATURE_MAPS[fmap]
    q, k, v = torch.randn(2, 3, n, d, generator=g), torch.randn(2, 3, n, d, generator=g), torch.randn(2, 3, n, dv, generator=g)
    fq, fk = phi(q), phi(k)
    quad = feature_attention_quadratic(fq, fk, v)
    fact, _ = feature_attention_factorised(fq, fk, v, chunk=chunk)
    assert torch.isfinite(fact).all()
    assert torch.allclose(fact, quad, atol=1e-5, rtol=1e-5)
    # float64: the two forms agree to rounding
    fact64, _ = feature_attention_factorised(fq.double(), fk.double(), v.double(), chunk=chunk)
    assert torch.allclose(fact64, feature_attention_quadratic(fq.double(), fk.double(), v.double()), atol=1e-10)


def test_kernelised_state_carries_earlier_positions():
    g = torch.Generator().manual_seed(0)
    phi = FEATURE_MAPS["elu1"]
    fq, fk, v = phi(torch.randn(1, 2, 50, 8, generator=g)), phi(torch.randn(1, 2, 50, 8, generator=g)), torch.randn(1, 2, 50, 8, generator=g)
    whole, _ = feature_attention_factorised(fq, fk, v)
    first, state = feature_attention_factorised(fq[..., :31, :], fk[..., :31, :], v[..., :31, :])
    parts = [first]
    for t in range(31, 50):  # one position at a time, as in cached generation
        out, state = feature_attention_factorised(fq[..., t:t + 1, :], fk[..., t:t + 1, :], v[..., t:t + 1, :], state)
        parts.append(out)
    assert torch.allclose(torch.cat(parts, dim=-2), whole, atol=1e-5)
    # the quadratic form of the last queries against every key equals the same rows
    assert torch.allclose(feature_attention_quadratic(fq[..., 40:, :], fk, v), whole[..., 40:, :], atol=1e-5)


# -- through the model ------------------------------------------------------------------------------

def test_softmax_through_the_replacement_path_reproduces_the_baseline(arch):
    lm, ts = arch
    tokens = ts.chunks[0]
    base = _full_logits(lm, tokens)
    same = _full_logits(lm, tokens, _all_heads_hooks(lm, "softmax"))
    assert (same - base).abs().max().item() <= 1e-5
    changed = _full_logits(lm, tokens, _all_heads_hooks(lm, "relu"))
    assert (changed - base).abs().max().item() > 1e-3  # the path does replace something


def test_kernelised_replacement_equals_its_quadratic_form_in_the_model(arch):
    lm, ts = arch
    tokens = ts.chunks[1]
    fact = _full_logits(lm, tokens, _all_heads_hooks(lm, "kernel"))
    quad = _full_logits(lm, tokens, _all_heads_hooks(lm, "kernel_quadratic"))
    assert torch.isfinite(fact).all()
    assert (fact - quad).abs().max().item() <= 1e-5
    assert (fact - _full_logits(lm, tokens)).abs().max().item() > 1e-3


@pytest.mark.parametrize("kind", PATTERN_KINDS + KERNEL_KINDS)
def test_replaced_heads_see_no_future_token(arch, kind):
    lm, ts = arch
    tokens = ts.chunks[0].clone()
    hooks = _all_heads_hooks(lm, kind)
    before = _full_logits(lm, tokens, hooks)
    cut = 40
    changed = tokens.clone()
    changed[cut:] = torch.roll(changed[cut:], 7)
    after = _full_logits(lm, changed, hooks)
    assert torch.isfinite(before).all() and torch.isfinite(after).all()
    assert (before[0, :cut] - after[0, :cut]).abs().max().item() <= 1e-5
    assert (before[0, cut:] - after[0, cut:]).abs().max().item() > 1e-4


@pytest.mark.parametrize("kind", PATTERN_KINDS)
def test_pattern_in_the_model_is_causal_and_normalised(arch, kind):
    lm, ts = arch
    layer, heads = 1, [0, 2]
    seen = {}
    hooks = intervention_hooks(lm.bridge, kind, layer, heads)
    hooks.append((attn_pattern(layer), lambda p, hook: seen.update(p=p.detach().clone())))
    hooks.append((attn_scores(layer), lambda s, hook: seen.update(s=s.detach().clone())))
    lm.bridge.run_with_hooks(ts.chunks[0].view(1, -1), fwd_hooks=hooks)
    p, s = seen["p"][0], seen["s"][0]
    assert (p.triu(1) == 0).all() and torch.isfinite(p).all()
    assert torch.allclose(p[heads], normalise_scores(s[heads], kind), atol=1e-6)
    untouched = [h for h in range(lm.n_heads) if h not in heads]
    assert torch.allclose(p[untouched], torch.softmax(s[untouched], dim=-1), atol=1e-6)
    sums = p[heads].abs().sum(-1)
    assert ((sums - 1).abs() < 1e-5).logical_or(sums == 0).all()


@pytest.mark.parametrize("kind", ["relu", "kernel"])
def test_each_query_head_is_replaced_alone_under_grouped_query_attention(llama, kind):
    lm, ts = llama
    cfg = lm.bridge.cfg
    assert cfg.n_key_value_heads < cfg.n_heads  # the tiny Llama shares each key/value head between two query heads
    group = cfg.n_heads // cfg.n_key_value_heads
    layer = 1
    tokens = ts.chunks[0].view(1, -1)
    seen = {}

    def grab(z, hook=None):
        seen["z"] = z.detach().clone()

    lm.bridge.run_with_hooks(tokens, fwd_hooks=[(attn_z(layer), grab)])
    base = seen["z"][0]
    for h in range(cfg.n_heads):
        hooks = intervention_hooks(lm.bridge, kind, layer, [h]) + [(attn_z(layer), grab)]
        lm.bridge.run_with_hooks(tokens, fwd_hooks=hooks)
        z = seen["z"][0]
        partner = h + 1 if h % group == 0 else h - 1  # shares h's key/value head
        assert (z[:, h] - base[:, h]).abs().max().item() > 1e-4
        others = [x for x in range(cfg.n_heads) if x != h]
        assert torch.equal(z[:, others], base[:, others]), f"replacing query head {h} changed another head"
        assert partner in others


def _plain_relu_ppl(lm, ts, layer: int, head: int) -> float:
    """An independent implementation of the original's relu attention: a full forward per head,
    one hook keeping the scores and one overwriting the head's pattern."""
    total, count = 0.0, 0
    for chunk in ts.chunks:
        keep = {}

        def scores(s, hook):
            keep["s"] = s.clone()
            return s

        def pattern(p, hook):
            s = keep["s"][:, head]
            s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
            r = torch.relu(s)
            p = p.clone()
            p[:, head] = r / torch.clamp(r.sum(-1, keepdim=True), min=1e-8)
            return p

        with torch.no_grad():
            logits = lm.bridge.run_with_hooks(chunk.view(1, -1), fwd_hooks=[(attn_scores(layer), scores),
                                                                             (attn_pattern(layer), pattern)])
        logp = torch.log_softmax(logits[0, :-1].double(), -1)
        total += float(-logp.gather(-1, chunk[1:].view(-1, 1)).sum())
        count += chunk.numel() - 1
    return math.exp(total / count)


def test_engine_relu_ppl_equals_an_independent_plain_implementation(arch, tmp_path):
    lm, ts = arch
    engine = AblationEngine(lm)
    store = EvidenceStore(tmp_path / "cache")
    sweep = sweeps.single_sweep(engine, ts, "relu", store, layers=[0, 2])
    cnt = sweeps.counts(ts)
    ppl = np.exp(sweep.sum(axis=(2, 3)) / (cnt.sum() * ts.n_chunks))
    for layer in (0, 2):
        for head in range(lm.n_heads):
            plain = _plain_relu_ppl(lm, ts, layer, head)
            assert abs(ppl[layer, head] - plain) / plain <= 1e-5, (layer, head, ppl[layer, head], plain)
    assert np.isnan(ppl[1]).all()
    # cached and resumable: a second sweep reads every unit back
    forwards = engine.forwards
    again = sweeps.single_sweep(engine, ts, "relu", store, layers=[0, 2])
    assert engine.forwards == forwards
    assert np.array_equal(again, sweep, equal_nan=True)


def test_batched_replacements_equal_one_at_a_time(llama):
    lm, ts = llama
    one, many = AblationEngine(lm, head_batch=1), AblationEngine(lm, head_batch=lm.n_heads)
    cap = one.capture(ts.chunks[0])
    for kind in ("relu", "kernel"):
        a = [float(x.sum()) for x in one.layer_single_nll(cap, 2, kind)]
        b = [float(x.sum()) for x in many.layer_single_nll(cap, 2, kind)]
        assert np.allclose(a, b, rtol=1e-5)


def test_cumulative_and_mixed_curves_equal_full_forwards(arch):
    lm, ts = arch
    engine = AblationEngine(lm)
    store = EvidenceStore(None)
    order = [(2, 1), (0, 3), (1, 0), (2, 2)]
    steps = [0, 1, 3, 4]
    blocks = sweeps.curve(engine, ts, "relu", order, steps, store)
    assigned = [(2, 1, "relu"), (0, 3, "kernel"), (1, 0, "l1"), (1, 2, "identity"), (1, 1, "zero")]
    mixed = sweeps.assigned_curve(engine, ts, assigned, [0, 2, 5], store)
    for c, chunk in enumerate(ts.chunks):
        for i, n in enumerate(steps):
            hooks = [h for l, hd in order[:n] for h in intervention_hooks(lm.bridge, "relu", l, [hd])]
            plain = float(token_nll(_full_logits(lm, chunk, hooks), chunk.view(1, -1)).sum())
            assert abs(blocks[i, c].sum() - plain) / plain <= 1e-5
        for i, n in enumerate([0, 2, 5]):
            hooks = [h for l, hd, k in assigned[:n] for h in intervention_hooks(lm.bridge, k, l, [hd])]
            plain = float(token_nll(_full_logits(lm, chunk, hooks), chunk.view(1, -1)).sum())
            assert abs(mixed[i, c].sum() - plain) / plain <= 1e-5


def test_replacement_kinds_are_registered_and_bad_input_is_explained(llama):
    lm, _ = llama
    assert set(REPLACEMENTS) == {"softmax", "relu", "l1", "identity", "kernel", "kernel_relu", "kernel_quadratic"}
    assert {"zero", "mean"} <= set(INTERVENTIONS)
    with pytest.raises(SemphaseError, match="unknown intervention kind"):
        intervention_hooks(lm.bridge, "cosine", 0, [0])
    with pytest.raises(SemphaseError, match="unknown score normalisation"):
        normalise_scores(torch.zeros(2, 2), "tanh")
    with pytest.raises(ValueError, match="replaces a head's attention"):
        ablation_hook("relu", [0])
    with pytest.raises(SemphaseError, match="one head per batch element"):
        hooks = intervention_hooks(lm.bridge, "relu", 0, [0, 1], batched=True)
        lm.bridge.run_with_hooks(torch.arange(2, 10).view(1, -1), fwd_hooks=hooks)
