"""exp8/exp9 machinery: the erf-width interval recovers a planted σ (and excludes 1/√π when 0.5 is
planted), rotation angles against a plain computation, the decision rules of C13-C16 at planted
values (each can fail), the device comparison on two CPU copies, and exp8 -> exp9 end to end on
tiny random-weight models of the Llama and GPT-NeoX (Pythia) architectures."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from semphase import fits, registry
from semphase.claims import Verdict
from semphase.experiments.exp8 import measure as m8
from semphase.experiments.exp9 import measure as m9
from semphase.rotation import rotation_angles

pytestmark = pytest.mark.machinery
CLAIMS8 = registry.get("exp8").claims
CLAIMS9 = registry.get("exp9").claims


def _synthetic_g(sigma: float, n_words: int, noise: float, n_points: int, rng, n_boot: int = 200):
    """g_mean of ``n_words`` noisy erf curves of width ``sigma`` and its bootstrap replicates over words."""
    x = np.linspace(0, 1, n_points)
    curves = fits._g_erf(x, sigma)[None] + rng.normal(0, noise, size=(n_words, n_points))
    idx = rng.integers(0, n_words, size=(n_boot, n_words))
    return x, curves.mean(0), curves[idx].mean(1)


@settings(derandomize=True, max_examples=5, deadline=None)
@given(noise=st.floats(0.005, 0.03), n_words=st.integers(15, 30), n_points=st.sampled_from([13, 25, 31]))
def test_planted_inverse_sqrt_pi_is_recovered_inside_its_interval(noise, n_words, n_points):
    """Coverage over 25 synthetic data sets: the bootstrap interval of σ_erf contains the planted
    1/√π in at least 72 % of them (nominal 95 %; a binomial failure below that has probability < 1 %
    for a true coverage of 0.93)."""
    rng = np.random.default_rng([n_words, n_points, int(noise * 1e6)])
    hits = 0
    for _ in range(25):
        x, g, boot = _synthetic_g(fits.SIGMA_PI, n_words, noise, n_points, rng, n_boot=100)
        part = m8.sigma_part(x, g, boot, "words")
        lo, hi = part["boot_ci95"]
        hits += lo <= fits.SIGMA_PI <= hi
        assert part["inside_boot_ci"]["1/sqrt(pi)"] == (lo <= fits.SIGMA_PI <= hi)
    assert hits >= 18, hits


@settings(derandomize=True, max_examples=5, deadline=None)
@given(noise=st.floats(0.002, 0.02), seed=st.integers(0, 10 ** 6))
def test_planted_one_half_excludes_inverse_sqrt_pi(noise, seed):
    rng = np.random.default_rng(seed)
    x, g, boot = _synthetic_g(0.5, 25, noise, 13, rng)
    part = m8.sigma_part(x, g, boot, "words")
    assert not part["inside_boot_ci"]["1/sqrt(pi)"] and part["inside_boot_ci"]["0.5"]
    assert not part["pi_identified"]


SHAPE_OK = {"shape": {"peak_x": 0.9, "drop_before_last": 0.1, "drop_before_last_ci95": [0.05, 0.15]},
            "best_shape_model": "erf"}  # C9's shape test holds: the gate of C13/C14 is open
SHAPE_BAD = {"shape": {"peak_x": 1.0, "drop_before_last": -0.38, "drop_before_last_ci95": [-0.41, -0.35]},
             "best_shape_model": "sigmoid"}  # SmolLM2's g: no drop before the last layer


def _ev8(part: dict, g: dict | None = None, key: str = "sigma_erf") -> dict:
    return {"model": "m", "asserts_claims": True, key: part, "g": SHAPE_OK if g is None else g}


def test_c13_rule_fails_when_only_inverse_sqrt_pi_is_inside():
    rng = np.random.default_rng(1)
    x, g, boot = _synthetic_g(fits.SIGMA_PI, 30, 0.002, 31, rng)
    part = m8.sigma_part(x, g, boot, "words")
    assert part["pi_identified"]  # a narrow interval around 0.5642 holds no competitor
    assert CLAIMS8.evaluate(_ev8(part), "test_c13_sigma_pi_not_singled_out").value is Verdict.REFUTED
    x, g, boot = _synthetic_g(0.5, 30, 0.002, 31, rng)
    part = m8.sigma_part(x, g, boot, "words")
    assert CLAIMS8.evaluate(_ev8(part), "test_c13_sigma_pi_not_singled_out").value is Verdict.REPLICATES


def test_c14_rule_fails_when_a_zero_parameter_pi_curve_is_the_data():
    x = np.linspace(0, 1, 25)
    rng = np.random.default_rng(2)
    g = (1 - np.cos(np.pi * x)) / 2
    curves = g[None] + rng.normal(0, 0.002, size=(20, 25))
    boot = curves[rng.integers(0, 20, size=(50, 20))].mean(1)
    part = m8.pi_models_part(x, curves.mean(0), boot, "words")
    assert part["best"] == "cos_pi_0p"
    assert CLAIMS8.evaluate(_ev8(part, key="pi_models"), "test_c14_zero_parameter_pi_model_not_best").value \
        is Verdict.REFUTED
    x2, g2, boot2 = _synthetic_g(0.4, 20, 0.002, 25, rng)
    part2 = m8.pi_models_part(x2, g2, boot2, "words")
    assert CLAIMS8.evaluate(_ev8(part2, key="pi_models"),
                            "test_c14_zero_parameter_pi_model_not_best").value is Verdict.REPLICATES
    # where g lacks the shape the π models describe (C9's shape test fails), C14 is undecided either way
    for p in (part, part2):
        assert CLAIMS8.evaluate(_ev8(p, SHAPE_BAD, key="pi_models"),
                                "test_c14_zero_parameter_pi_model_not_best").value is Verdict.INCONCLUSIVE


def test_c13_rules_follow_the_spec_and_the_shape_gate():
    """C13 by science.md 8.8's rule: a competitor inside the σ interval replicates, none inside does not; the LR
    row replicates when 1/√π is rejected; both are inconclusive where C9's shape test fails; an interval holding
    no constant at all leaves the original's claim undecided by the first row."""
    rng = np.random.default_rng(3)
    far = m8.sigma_part(*_synthetic_g(1.4, 30, 0.002, 31, rng), "words")  # σ far from every constant
    assert not any(far["inside_boot_ci"].values())
    r = CLAIMS8.evaluate(_ev8(far), "test_c13_sigma_pi_not_singled_out")
    assert r.value is Verdict.REFUTED and r.original_verdict() == "undecided"
    rej = CLAIMS8.evaluate(_ev8(far), "test_c13_inverse_sqrt_pi_rejected")
    assert rej.value is Verdict.REPLICATES and rej.original_verdict() == "contradicted"
    pi = m8.sigma_part(*_synthetic_g(fits.SIGMA_PI, 30, 0.002, 31, rng), "words")
    assert CLAIMS8.evaluate(_ev8(pi), "test_c13_inverse_sqrt_pi_rejected").value is Verdict.REFUTED
    for part in (far, pi):
        for test in ("test_c13_sigma_pi_not_singled_out", "test_c13_inverse_sqrt_pi_rejected"):
            res = CLAIMS8.evaluate(_ev8(part, SHAPE_BAD), test)
            assert res.value is Verdict.INCONCLUSIVE and "C9's shape test" in res.reason


def _theta(theta_over_pi: float, n_chunks: int = 8, L: int = 4, ctx: int = 128, jitter: float = 0.01, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [np.full((L, ctx), theta_over_pi * math.pi / L) + rng.normal(0, jitter, size=(L, ctx)) for _ in range(n_chunks)]


def _ev_rot(stats: dict) -> dict:
    return {"model": "m", "rotation": {"rank": {"all": stats, "without_position_0": stats},
                                       "heldout": {"all": stats, "without_position_0": stats}}}


def test_theta_statistics_and_the_c15_rule_at_planted_values():
    s = m8.theta_stats(_theta(1.5), False, n_boot=200)
    assert s["Theta_over_pi_mean"] == pytest.approx(1.5, abs=0.01) and s["nearest_integer"] in (1, 2)
    assert s["unit"].startswith("chunks (8 chunks")
    assert CLAIMS8.evaluate(_ev_rot(s), "test_c15_theta_not_integer_multiple_of_pi").value is Verdict.REPLICATES
    s2 = m8.theta_stats(_theta(2.0), False, n_boot=200)  # an integer multiple of π: the rule must fail
    assert s2["frac_within_own_integer"] > 0.9
    assert CLAIMS8.evaluate(_ev_rot(s2), "test_c15_theta_not_integer_multiple_of_pi").value is Verdict.REFUTED
    s3 = m8.theta_stats(_theta(1.9, jitter=0.0), True, n_boot=50)  # 0.1 from 2: on the bound
    assert s3["n_positions"] == 8 * 127


def test_c15_uniform_null_catches_concentration_below_the_original_bar():
    """Half the positions at Θ/π = 2 (an integer), half at 1.5: fewer than 90 % lie within 0.1 of an integer, so
    the original's criterion passes, but the fraction (about 0.5) is far above a uniform Θ/π's 0.2, and the rule
    fails; the row names the uniform control."""
    rng = np.random.default_rng(5)
    L, ctx = 4, 128
    chunks = []
    for _ in range(8):
        per_pos = np.where(np.arange(ctx) % 2 == 0, 2.0, 1.5) * math.pi / L
        chunks.append(np.tile(per_pos, (L, 1)) + rng.normal(0, 0.005, size=(L, ctx)))
    s = m8.theta_stats(chunks, False)
    assert 0.4 < s["frac_within_own_integer"] < 0.9
    assert s["frac_within_own_integer_ci95"][0] > 0.2
    r = CLAIMS8.evaluate(_ev_rot(s), "test_c15_theta_not_integer_multiple_of_pi")
    assert r.value is Verdict.REFUTED and "uniform" in r.reason
    assert [c.status for c in r.conditions][1:] == ["ok", "fails"]


def test_rotation_angles_match_a_plain_computation(tiny_neox):
    from semphase import hooks
    from semphase.models import load_model

    lm = load_model(str(tiny_neox), "cpu")
    ids = torch.tensor(lm.tokenizer.encode("The bank of the river was steep . A bat flew out"))
    theta = rotation_angles(lm, ids)
    _, cache = lm.bridge.run_with_cache(ids[None])
    v = [cache[n][0].double() for n in hooks.depth_residuals(lm.n_layers)]
    for l in range(lm.n_layers):
        cos = torch.nn.functional.cosine_similarity(v[l], v[l + 1], dim=-1).clamp(-1, 1)
        assert np.allclose(theta[l], torch.arccos(cos).numpy(), atol=1e-6)
    assert theta.shape == (lm.n_layers, ids.numel()) and (theta >= 0).all() and (theta <= math.pi).all()


def _row(name: str, n_layers: int, sigma: float, sd: float = 0.002, theta: float = 5.0, theta_half: float = 0.05):
    return {"model": name, "tag": name, "asserts_claims": True,
            "row": {"model": name, "n_layers": n_layers, "sigma_free": sigma, "sigma_sd": sd,
                    "Theta_mean": theta, "Theta_ci95": [theta - theta_half, theta + theta_half], "Theta_unit": "chunks",
                    "delta_bic_cos_minus_erf": 10.0 - n_layers / 4, "n_points": n_layers + 1}}


@pytest.mark.parametrize("sigma_inf, want", [(fits.SIGMA_PI, Verdict.REPLICATES), (0.5, Verdict.REFUTED)])
def test_c16_sigma_scaling_rule_at_planted_limits(sigma_inf, want):
    rng = np.random.default_rng(3)
    evs = [_row(f"m{n}", n, sigma_inf + 0.3 / n + rng.normal(0, 0.001), theta=2 + n / 6) for n in (6, 12, 24, 32, 48)]
    ev = m9.cross_model(evs)
    assert ev["sigma_scaling"]["width"] < m9.WIDTH_BAR
    assert CLAIMS9.evaluate(ev, "test_c16_sigma_converges_to_inverse_sqrt_pi").value is want
    assert CLAIMS9.evaluate(ev, "test_c16_theta_grows_with_depth").value is Verdict.REPLICATES


def test_c16_two_models_are_underpowered_and_flat_theta_fails():
    ev = m9.cross_model([_row("a", 12, 0.55), _row("b", 24, 0.56)])
    assert math.isinf(ev["sigma_scaling"]["width"])
    assert CLAIMS9.evaluate(ev, "test_c16_sigma_converges_to_inverse_sqrt_pi").value is Verdict.INCONCLUSIVE
    assert CLAIMS9.evaluate(ev, "test_c16_theta_grows_with_depth").value is Verdict.REFUTED  # Θ equal at both depths
    one = m9.cross_model([_row("a", 12, 0.55)])
    assert CLAIMS9.evaluate(one, "test_c16_theta_grows_with_depth").value is Verdict.SKIPPED


def test_device_consistency_of_two_cpu_copies_and_a_planted_collapse(tiny_llama, tmp_path):
    from semphase.models import load_model
    from semphase.semantic.stimuli import parse_stimuli
    from test_permeation import _three_word_doc

    stim = parse_stimuli(_three_word_doc())
    a = load_model(str(tiny_llama), "cpu", reuse=False)
    b = load_model(str(tiny_llama), "cpu", reuse=False)
    ids = torch.tensor(a.tokenizer.encode("The bank of the river was steep ."))
    ev = m9.device_consistency(a, b, stim, ids)
    assert ev["settings"]["off"]["max_abs_diff_sigma"] == 0.0 and ev["settings"]["off"]["max_abs_diff_theta"] == 0.0
    assert "matmul_allow_tf32" in ev["tf32_defaults"] and ev["torch"] == torch.__version__
    result = CLAIMS9.evaluate(ev, "test_device_consistency")
    ranges_ok = min(ev["sigma_final_range"]["cpu"].values()) > m9.COLLAPSE_BAR
    assert result.value is (Verdict.REPLICATES if ranges_ok else Verdict.REFUTED)
    collapsed = dict(ev, settings={"off": dict(ev["settings"]["off"], sigma_final_range={w: 0.0 for w in ev["words"]})})
    assert CLAIMS9.evaluate(collapsed, "test_device_consistency").value is Verdict.REFUTED
    drift = dict(ev, settings={"off": dict(ev["settings"]["off"], max_abs_diff_sigma=1e-3)})
    assert CLAIMS9.evaluate(drift, "test_device_consistency").value is Verdict.REFUTED


def _two_models_and_stimuli(tmp_path, first, arch: str):
    import json

    from conftest import make_tiny_model
    from test_permeation import _three_word_doc

    path = tmp_path / "stimuli.json"
    path.write_text(json.dumps(_three_word_doc()))
    other = make_tiny_model(tmp_path / "second", arch, seed=1)
    return str(first), str(other), str(path)


def test_exp8_then_exp9_through_the_session(tiny_llama, tmp_path, tiny_text):
    """exp8 asks the session for exp3 (measured once), exp9 for exp8; two models give the
    comparison across sizes, and the reports are written."""
    from semphase.session import Session, Settings

    folder, other, path = _two_models_and_stimuli(tmp_path, tiny_llama, "llama")
    s = Settings(models=(folder, other), devices=("cpu",), budget="smoke", text_file=str(tiny_text),
                 tokens=128, ctx=32, eval_tokens=256, stimuli=path, output_dir=str(tmp_path / "out"))
    session = Session(s)
    ev8, claims8, _ = session.run("exp8", folder)
    assert ev8["sigma_erf"]["n_boot"] == 100 and ev8["rotation"]["heldout"]["all"]["n_chunks"] == 8
    assert {c["test"] for c in claims8} == set(CLAIMS8.order)
    for name in s.models:
        session.run("exp9", name)
    cross, claims9, written = session.run_across("exp9")
    assert [c["test"] for c in claims9] == ["test_c16_sigma_converges_to_inverse_sqrt_pi", "test_c16_theta_grows_with_depth"]
    assert len(cross["rows"]) == 2 and any(p.endswith("exp9_results.md") for p in written)
    text = (tmp_path / "out" / "reports" / "exp9_results.md").read_text()
    assert "## Across models" in text and "σ(∞)" in text


def test_cli_runs_exp8_and_exp9_on_two_pythia_shaped_models(tiny_neox, tmp_path, tiny_text, capsys):
    """``run exp8 exp9 --model A --model B``: both experiments on both models (the GPT-NeoX
    architecture: rotary embeddings, parallel attention), then exp9's comparison across them."""
    from semphase.cli import main

    a, b, path = _two_models_and_stimuli(tmp_path, tiny_neox, "neox")
    out = tmp_path / "out"
    rc = main(["run", "exp8", "exp9", "--model", a, "--model", b, "--device", "cpu", "--budget", "smoke",
               "--stimuli", path, "--text-file", str(tiny_text), "--tokens", "128", "--ctx", "32",
               "--eval-tokens", "256", "--output-dir", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert printed.count("C13 test_c13_sigma_pi_not_singled_out:") == 2  # once per model
    assert "C16 test_c16_theta_grows_with_depth:" in printed and "Claims summary" in printed
    assert len(list((out / "data").glob("exp9_*.json"))) == 3  # two models and the comparison
