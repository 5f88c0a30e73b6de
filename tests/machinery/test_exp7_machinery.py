"""exp7's machinery: per-chunk moments give the PCA of the pooled samples and resample whole chunks,
the reconstruction metrics of the shared basis match an explicit computation, delta-phi is the sum
of the attention and MLP writes, one outlier row (position 0) makes a block look rank 1, GPT-2's
block ranges scale with depth, the decision rules at their bounds, and a run on a tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from semphase import pca as pca_mod
from semphase import registry
from semphase.claims import Verdict
from semphase.data import load_eval_tokens
from semphase.experiments.exp7.measure import Collector, _reconstruction, attn_layers, mid_layers, rank_bound
from semphase.models import load_model

pytestmark = pytest.mark.machinery
CLAIMS = registry.get("exp7").claims


def test_chunk_moments_give_the_pooled_pca_and_resample_whole_chunks():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((90, 12)) * np.linspace(3, 0.1, 12)
    units = np.repeat(np.arange(3), 30)
    M = pca_mod.Moments.of(X, units)
    assert np.allclose(M.ratio(), pca_mod.pca(X).ratio, atol=1e-12)
    # a replicate that draws chunk 0 twice and chunk 2 once is the PCA of those rows
    dup = np.concatenate([X[:30], X[:30], X[60:]])
    assert np.allclose(M.ratio(np.array([2.0, 0.0, 1.0])), pca_mod.pca(dup).ratio, atol=1e-12)
    reps = M.threshold_replicates(np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]]))
    assert list(reps[0]) == list(pca_mod.pca(X).thresholds().values())


def test_one_outlier_row_makes_a_block_look_rank_one():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 40))
    outlier = np.zeros((1, 40))
    outlier[0, 3] = 2000.0  # a massive activation at position 0
    units = np.zeros(500, dtype=int)
    M = pca_mod.Moments.of(X, units)
    M0 = pca_mod.Moments.of(outlier, np.zeros(1, dtype=int))
    assert pca_mod.thresholds(M.plus(M0).ratio())["0.9"] == 1
    assert pca_mod.thresholds(M.ratio())["0.9"] > 20


def test_reconstruction_metrics_match_an_explicit_computation():
    rng = np.random.default_rng(3)
    X = torch.as_tensor(rng.standard_normal((50, 8)) + 2.0)
    mean = torch.as_tensor(rng.standard_normal(8))
    U = torch.linalg.qr(torch.as_tensor(rng.standard_normal((8, 8))))[0]
    got = _reconstruction(X, mean, U, [1, 3, 8])
    for k in (1, 3, 8):
        rec = mean + (X - mean) @ U[:, :k] @ U[:, :k].T
        err = (X - rec).norm(dim=1)
        cos = torch.nn.functional.cosine_similarity(X, rec, dim=1)
        assert abs(got[str(k)]["cos_sim"] - float(cos.mean())) < 1e-9
        assert abs(got[str(k)]["relative_l2"] - float(err.mean() / X.norm(dim=1).mean())) < 1e-9


def test_block_ranges_and_bounds_scale_gpt2s():
    assert mid_layers(12) == [3, 4, 5, 6, 7, 8] and attn_layers(12) == list(range(3, 11))
    assert mid_layers(30) == list(range(8, 21)) and attn_layers(30) == list(range(8, 26))
    assert rank_bound(768, 150) == 150 and rank_bound(576, 150) == 113 and rank_bound(768, 20) == 20


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_delta_phi_is_attention_plus_mlp(request, fixture, tiny_text):
    lm = load_model(str(request.getfixturevalue(fixture)), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 96, 96, text_file=str(tiny_text))
    got, err = Collector(lm).run(ts.chunks[0], torch.tensor([0, 5, 7]))
    assert err < 1e-5
    assert tuple(got["delta_phi"].shape) == (lm.n_layers, 3, lm.d_model)


def _stats(**extra) -> dict:
    ev = {"model": "m", "asserts_claims": True, "interval_unit": "chunks", "data": {}, "stats": {}}
    ev["stats"].update(extra)
    return ev


def test_exp7_rules_at_their_bounds():
    nl = {"layers": [3, 4, 5, 6, 7, 8], "bound": 150, "min_k90": 198, "min_k90_ci95": [180, 210], "argmin": 3}
    name = "test_c12_delta_phi_not_lowrank"
    assert CLAIMS.evaluate(_stats(not_lowrank=nl), name).value is Verdict.REPLICATES
    assert CLAIMS.evaluate(_stats(not_lowrank=dict(nl, min_k90_ci95=[140, 210])), name).value is Verdict.INCONCLUSIVE
    assert CLAIMS.evaluate(_stats(not_lowrank=dict(nl, min_k90=100, min_k90_ci95=[90, 120])), name).value \
        is Verdict.REFUTED
    av = {"layers": [3, 4], "max_diff": -5, "max_diff_ci95": [-9, -1], "argmax": 3, "n_lower": 2}
    assert CLAIMS.evaluate(_stats(attn_vs_mlp=av), "test_c12_attention_lower_rank_than_mlp").value is Verdict.REPLICATES
    av2 = dict(av, max_diff=-1, max_diff_ci95=[-3, 2])
    assert CLAIMS.evaluate(_stats(attn_vs_mlp=av2), "test_c12_attention_lower_rank_than_mlp").value \
        is Verdict.INCONCLUSIVE
    p0 = {"bound": 20, "singular_original": []}
    assert CLAIMS.evaluate(_stats(position0=p0), "test_c12_singular_blocks_are_position0_artefacts").value \
        is Verdict.SKIPPED
    p1 = {"bound": 20, "singular_original": [2], "min_k90_excluded": 60, "min_k90_excluded_ci95": [40, 70]}
    assert CLAIMS.evaluate(_stats(position0=p1), "test_c12_singular_blocks_are_position0_artefacts").value \
        is Verdict.REPLICATES


def test_exp7_run_on_a_tiny_model(tiny_gpt2, tiny_text, tmp_path):
    from semphase.session import Session, Settings

    s = Settings(models=(str(tiny_gpt2),), devices=("cpu",), budget="smoke", text_file=str(tiny_text),
                 output_dir=str(tmp_path), ctx=96)
    ev, claims, written = Session(s).run("exp7")
    sane = next(c for c in claims if c["test"] == "test_exp7_evidence_sane")
    assert sane["verdict_value"] == "replicates", sane
    samp = ev["sampling"]["robust"]
    assert samp["n_samples"] == samp["n_chunks"] * samp["positions_per_chunk"]
    assert ev["original"]["delta_phi"]["norms"][0]["mean"] > 0
    assert set(ev["robust"]["delta_phi"]["k90_ci95"]) >= {str(l) for l in mid_layers(ev["n_layers"])}
    assert any(w.endswith("exp7_results.md") for w in written)
    # a second session on the same cache reads every bootstrap unit back and measures the same ranks and intervals
    assert ev["cost"]["units_computed"] > 0
    again, _, _ = Session(s).run("exp7")
    assert again["cost"]["units_computed"] == 0 and again["cost"]["units_read"] == ev["cost"]["units_computed"]
    assert again["robust"]["delta_phi"]["k90_ci95"] == ev["robust"]["delta_phi"]["k90_ci95"]


def test_an_interrupted_exp7_keeps_its_finished_bootstrap_units_and_says_so(tiny_gpt2, tiny_text, tmp_path, capsys,
                                                                           monkeypatch):
    """Ctrl-C during exp7's bootstrap: the run says how many finished units are cached, and they are there."""
    from semphase import cache, cli

    put = cache.CacheEntry.put
    calls = {"n": 0}

    def put_then_interrupt(self, unit, data, seconds=None):
        put(self, unit, data, seconds)
        if self.kind == "exp7-pca-bootstrap":
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(cache.CacheEntry, "put", put_then_interrupt)
    rc = cli.main(["run", "exp7", "--model", str(tiny_gpt2), "--device", "cpu", "--budget", "smoke", "--text-file",
                   str(tiny_text), "--ctx", "96", "--quiet", "--output-dir", str(tmp_path / "out")])
    assert rc == 130
    err = capsys.readouterr().err
    assert "interrupted during exp7" in err and "2 finished unit(s) of it are cached" in err, err[-500:]
    assert len(list((tmp_path / "out" / "cache" / "exp7-pca-bootstrap").rglob("*.json"))) == 2
    monkeypatch.setattr(cache.CacheEntry, "put", put)
    rc = cli.main(["run", "exp7", "--model", str(tiny_gpt2), "--device", "cpu", "--budget", "smoke", "--text-file",
                   str(tiny_text), "--ctx", "96", "--output-dir", str(tmp_path / "out")])
    assert rc == 0
    assert "exp7 bootstrap of PCA ranks: 2 of" in capsys.readouterr().err  # the resumed run says what it kept


def test_resampling_chunks_lowers_a_pca_rank_and_the_basic_interval_corrects_it():
    from semphase.stats import basic_interval, bootstrap_weights, interval

    rng = np.random.default_rng(0)
    d, chunks, per = 100, 20, 20  # few samples per dimension, as exp7's 10,000 positions in 576 dimensions
    scale = np.linspace(1.0, 0.5, d)  # a slowly decaying spectrum
    X = rng.standard_normal((chunks * per, d)) * scale
    truth = pca_mod.thresholds(pca_mod.ratio_from_variances(scale ** 2))["0.9"]  # the population's K(90 %)
    M = pca_mod.Moments.of(X, np.repeat(np.arange(chunks), per))
    point = pca_mod.thresholds(M.ratio())["0.9"]
    reps = M.threshold_replicates(bootstrap_weights(chunks, 200, 0))[:, pca_mod.LEVELS.index(0.9)]
    assert point < truth  # a finite sample underestimates the rank ...
    assert np.median(reps) < point  # ... and resampling with repeats underestimates it again
    assert interval(reps)[1] < truth  # so the percentile interval misses the population's rank
    lo, hi = basic_interval(point, reps)
    assert lo <= truth <= hi  # the basic interval, reflected about the point, covers it
