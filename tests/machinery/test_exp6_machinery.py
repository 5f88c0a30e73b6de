"""exp6's machinery on tiny random-weight models and synthetic data: the PCA thresholds agree with
a direct eigen-decomposition, the additive injection rebuilds any W_Q^T W_K (grouped-query heads
included) and is the identity at delta = 0, the edit is live in the forward pass and restored
bit for bit, K = all components reproduces the baseline perplexity, a resumed forward equals a full
one, the bilinear-form Gram matrix is gauge-invariant, the error-concentration null, the decision
rules at their bounds, and the need that reads exp10's rank-range sweep without the rest."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semphase import pca as pca_mod
from semphase import registry, sweeps
from semphase.ablation import AblationEngine
from semphase.cache import EvidenceStore
from semphase.claims import Verdict
from semphase.data import load_eval_tokens
from semphase.experiments.exp6.measure import Exp6Weights, error_null, scaled
from semphase.models import load_model
from semphase.stats import ppl
from semphase.weights import QueryWeights, bilinear_gram, inject, keys_per_head, qk_weights, random_gauge, w_qk

pytestmark = pytest.mark.machinery
CLAIMS = registry.get("exp6").claims


@pytest.fixture(scope="module", params=["tiny_llama", "tiny_gpt2"])
def setup(request, tiny_text):
    lm = load_model(str(request.getfixturevalue(request.param)), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 192, 96, text_file=str(tiny_text))
    return lm, ts


# -- PCA: one threshold function, three routes to the spectrum ---------------------------------------

def test_components_for_is_the_smallest_k_reaching_t():
    cum = np.array([0.5, 0.9, 0.97, 1.0])
    assert [pca_mod.components_for(cum, t) for t in (0.5, 0.8, 0.9, 0.95)] == [1, 2, 2, 3]
    assert pca_mod.thresholds([0.5, 0.4, 0.07, 0.03]) == {"0.5": 1, "0.8": 2, "0.9": 2, "0.95": 3}


@settings(max_examples=25, deadline=None)
@given(n=st.integers(4, 30), d=st.integers(3, 40), rank=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_thresholds_agree_with_a_direct_eigendecomposition(n, d, rank, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) * 3 + 0.1 * rng.standard_normal((n, d))
    p = pca_mod.pca(X)
    Xc = X - X.mean(0)
    direct = pca_mod.ratio_from_variances(np.linalg.eigvalsh(Xc.T @ Xc / (n - 1)))  # the covariance's eigenvalues
    gram, _ = pca_mod.pca_gram(X @ X.T)
    moments = pca_mod.Moments.of(X, np.arange(n) % 3).ratio()
    m = min(n, d)
    for other in (direct, gram, moments):
        assert np.allclose(p.ratio[:m], other[:m], atol=1e-10)
        assert p.thresholds() == pca_mod.thresholds(other)
    assert np.allclose(p.reconstruct(m), X, atol=1e-9)


# -- the injection ----------------------------------------------------------------------------------

def test_injection_rebuilds_any_target_and_is_the_identity_at_delta_zero(setup):
    lm, _ = setup
    W_Q, W_K, kv_of = qk_weights(lm)
    Kh = keys_per_head(W_K, kv_of)
    target = torch.randn(W_Q.shape[0], W_Q.shape[1], lm.d_head, lm.d_head, dtype=torch.float64)
    got = w_qk(inject(W_Q, Kh, target), W_K, kv_of)
    rel = torch.linalg.matrix_norm(got - target) / torch.linalg.matrix_norm(target)
    assert float(rel.max()) < 1e-3
    same = inject(W_Q, Kh, w_qk(W_Q, W_K, kv_of))
    assert float((same - W_Q).abs().max()) < 1e-5
    if "llama" in lm.name:  # grouped-query: two query heads per key/value head
        assert kv_of == [0, 0, 1, 1]


def test_the_edit_is_live_in_the_forward_and_restored_bit_for_bit(setup):
    lm, ts = setup
    qw = QueryWeights(lm)
    engine = AblationEngine(lm)
    base = engine.forward_nll(ts.chunks[0])
    W_Q, W_K, kv_of = qk_weights(lm)
    new = inject(W_Q[1], keys_per_head(W_K, kv_of)[1], torch.randn(lm.n_heads, lm.d_head, lm.d_head, dtype=torch.float64))
    seen = {}

    def grab(name):
        def hook(x, hook=None):
            seen[name] = x.detach().clone()
            return x
        return hook

    with qw.edited({1: new}):
        assert torch.allclose(lm.bridge.blocks[1].attn.W_Q.double(), new, atol=1e-5)
        lm.bridge.run_with_hooks(ts.chunks[0].view(1, -1), fwd_hooks=[
            ("blocks.1.attn.q.hook_in", grab("in")), ("blocks.1.attn.q.hook_out", grab("out"))])
        edited = engine.forward_nll(ts.chunks[0])
    # the query projection used the injected weights: q = x W_Q' (+ b_Q)
    bq = lm.bridge.blocks[1].attn.b_Q
    expect = torch.einsum("bpm,hmd->bphd", seen["in"].double(), new)
    if bq is not None:
        expect = expect + bq.detach().double()
    assert torch.allclose(seen["out"].double().reshape(expect.shape), expect, atol=1e-4)
    assert not torch.allclose(edited, base)
    assert qw.is_original()
    assert torch.equal(engine.forward_nll(ts.chunks[0]), base)


def test_k_all_reproduces_the_baseline_and_a_resumed_forward_equals_a_full_one(setup):
    lm, ts = setup
    W = Exp6Weights(lm)
    qw = QueryWeights(lm)
    engine = AblationEngine(lm)
    store = EvidenceStore(None)
    targets = {"all": W.reconstruction(W.N), "k2": W.reconstruction(2)}
    late = W.W_QK.clone()
    late[2] = torch.randn_like(late[2])  # an edit of the last layer only: resumed from layer 2
    targets["late"] = late

    def edit(item):
        start, new = W.new_queries(targets[item])
        return start, qw.edited(new)

    blocks = sweeps.edited(engine, ts, store, "t", {}, list(targets), edit)
    base = sweeps.baseline(engine, ts, store)
    cnt = sweeps.counts(ts)
    assert W.new_queries(late)[0] == 2
    assert abs(float(ppl(blocks[0], cnt) / ppl(base, cnt)) - 1) < 1e-5
    for i, item in enumerate(targets):
        start, new = W.new_queries(targets[item])
        with qw.edited(new):
            full = [sweeps.block_sums(engine.forward_nll(ts.chunks[c])) for c in range(ts.n_chunks)]
        assert np.allclose(blocks[i], np.asarray(full), rtol=1e-5)
    assert qw.is_original()


# -- the gauge ---------------------------------------------------------------------------------------

def test_bilinear_gram_equals_explicit_forms_and_ignores_the_gauge(setup):
    lm, _ = setup
    W_Q, W_K, kv_of = qk_weights(lm)
    Kh = keys_per_head(W_K, kv_of)
    forms = (W_Q @ Kh.transpose(-1, -2)).reshape(-1, lm.d_model * lm.d_model)
    G = bilinear_gram(W_Q, W_K, kv_of)
    assert np.allclose(G, (forms @ forms.T).numpy(), rtol=1e-9, atol=1e-9)
    gq, gk = random_gauge(W_Q, W_K, kv_of, seed=3)
    assert np.allclose(bilinear_gram(gq, gk, kv_of), G, rtol=1e-9, atol=1e-9)
    # the original's object is not invariant
    assert not torch.allclose(w_qk(gq, gk, kv_of), w_qk(W_Q, W_K, kv_of), atol=1e-3)


# -- the error-concentration null -----------------------------------------------------------------------

def test_error_concentration_beats_the_null_only_with_idiosyncratic_heads():
    rng = np.random.default_rng(0)
    n, d, m = 60, 50, 4
    iid = pca_mod.pca(rng.standard_normal((n, d)))
    k = 40
    e2 = ((iid.scores[:, k:]) ** 2).sum(1)
    share = np.sort(e2)[::-1][:m].sum() / e2.sum()
    assert share < np.quantile(error_null(iid, k, m, 300, 0), 0.95)
    X = rng.standard_normal((n, 3)) @ rng.standard_normal((3, d)) + 0.01 * rng.standard_normal((n, d))
    X[:m] += 5 * rng.standard_normal((m, d))  # four heads with their own directions
    planted = pca_mod.pca(X)
    e2 = ((planted.scores[:, 3:]) ** 2).sum(1)
    share = np.sort(e2)[::-1][:m].sum() / e2.sum()
    assert share > np.quantile(error_null(planted, 3, m, 300, 0), 0.95)


# -- the rules at their bounds -----------------------------------------------------------------------------

def _ev(**extra) -> dict:
    ev = {"model": "m", "n_heads_total": 144, "asserts_claims": True, "interval_unit": "chunks", "data": {},
          "scaled_points": {"100": 100, "130": 130, "140": 140}}
    ev.update(extra)
    return ev


def test_damage_per_variance_rule_decides_only_outside_its_interval():
    name = "test_c10_low_variance_components_do_more_damage_per_variance"
    d = {"points": [100, 130, 140], "cumvar": [0.95, 0.99, 0.997], "slope_low": 120, "slope_low_ci95": [100, 140],
         "slope_high": 17, "slope_high_ci95": [15, 19], "slope_ratio": 7, "margin": 69, "margin_ci95": [40, 90]}
    assert CLAIMS.evaluate(_ev(damage_per_variance=d), name).value is Verdict.REPLICATES
    assert CLAIMS.evaluate(_ev(damage_per_variance=dict(d, margin_ci95=[-5, 90])), name).value is Verdict.INCONCLUSIVE
    assert CLAIMS.evaluate(_ev(damage_per_variance=dict(d, margin=-10, margin_ci95=[-30, -1])), name).value \
        is Verdict.REFUTED
    assert CLAIMS.evaluate(_ev(damage_per_variance={"note": "x"}), name).value is Verdict.SKIPPED


def test_ratio_and_clustering_rules():
    kv = {str(k): {"ratio": r, "ratio_ci95": ci, "cumvar": 0.9} for k, r, ci in
          ((100, 4.2, [3.5, 5.0]), (130, 2.2, [1.9, 2.6]), (140, 1.07, [1.05, 1.1]))}
    name = "test_c10_high_variance_reconstructions_degrade"
    assert CLAIMS.evaluate(_ev(K_values=kv), name).value is Verdict.REPLICATES
    bad = copy.deepcopy(kv)
    bad["140"].update(ratio=1.2, ratio_ci95=[1.16, 1.3])
    assert CLAIMS.evaluate(_ev(K_values=bad), name).value is Verdict.REFUTED
    km = {"k_values": {"4": {"ratio": 40, "ratio_ci95": [30, 50], "n_replaced": 140}}, "min_ratio": 12,
          "min_ratio_ci95": [8, 15]}
    assert CLAIMS.evaluate(_ev(kmeans=km), "test_c11_clustering_destroys_perplexity").value is Verdict.INCONCLUSIVE
    # K(90 %) bound scales with the head count: 32 of 144 is 60 of 270
    ev = _ev(n_heads_total=270, pca={"thresholds": {"0.9": 61}, "top3": [0.1, 0.1, 0.1]})
    r = CLAIMS.evaluate(ev, "test_c10_k90_exceeds_uws_bases")
    assert r.value is Verdict.REPLICATES and r.conditions[0].target == 60
    assert scaled(130, 270) == 244 and scaled(10, 270) == 19 and scaled(130, 144) == 130


def test_reproduction_rules_skip_on_other_models():
    ev = _ev(pca={"thresholds": {"0.5": 9}, "top3": [0.1] * 3})
    r = CLAIMS.evaluate(ev, "test_c10_reproduce_pca_thresholds")
    assert r.value is Verdict.SKIPPED and "GPT-2" in r.reason


# -- the need: exp10's rank-range sweep alone --------------------------------------------------------------

def test_exp6_reads_exp10_part_a_without_its_heldout_range(tiny_llama, tiny_text, tmp_path):
    from semphase.session import Session, Settings

    s = Settings(models=(str(tiny_llama),), devices=("cpu",), budget="smoke", text_file=str(tiny_text),
                 output_dir=str(tmp_path), tokens=192, ctx=96, eval_tokens=192)
    session = Session(s)
    ev, claims, written = session.run("exp6")
    exp10 = [v for k, v in session._evidence.items() if k[0] == "exp10"]
    assert len(exp10) == 1
    e10 = exp10[0]
    assert e10["parts"] == "a" and e10["heldout"] is None and "curves" not in e10 and "stats" not in e10
    assert "delta_eval" not in e10["zero"]  # no held-out sweep
    imp = ev["head_error"]["importance"]
    assert imp["n_heads"] == ev["n_heads_total"] and -1 <= imp["spearman_rho"] <= 1
    sane = next(c for c in claims if c["test"] == "test_exp6_machinery_invariants")
    assert sane["verdict_value"] == "replicates", sane
    assert any(w.endswith("exp6_results.md") for w in written)
    assert any("exp6b_ppl_vs_K" in w for w in written)
    # the need is keyed apart from a whole exp10 measurement: asking for all of it measures again
    need = registry.get("exp6").needs[0]
    assert (need.parts, need.heldout) == ("a", False)
    full = session.evidence("exp10", session.model(str(tiny_llama)))
    assert full is not e10 and full["heldout"] is not None
