"""Stimuli in the original study's style (issue 13): graded sentences that grow longer with the context
level (not length-matched) and a test sentence that also builds a direction.

* the position control on synthetic σ: the within-word regression adjustment removes a planted
  position effect, keeps h's coefficient, leaves a length-matched word (and a flat layer) exactly as
  measured, and refuses a position that is a linear function of the level;
* exp1 -> exp2 -> exp3 on a tiny random-weight model with such a file: every word measured, the
  duplicate dropped with its line, every level comparison on the position-adjusted σ, C6's
  regression with the position identified, the reports saying per word how position was controlled;
* a file with no measurable word: one sentence and exit 2 for ``run exp1``, ``exp2``, ``exp3`` and
  ``exp8``, a skip in pytest, and exp10's C19 gets the reason through the session.
"""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from semphase import registry
from semphase.semantic import measure as M
from semphase.semantic.stimuli import parse_stimuli
from test_permeation import _three_word_doc

pytestmark = pytest.mark.machinery


def _original_style_doc() -> dict:
    """Three words whose graded prompts grow longer with the level (one or two prompts a level, so
    the position varies within levels too), and one graded prompt per word that is also one of its
    direction prompts (other case for bat)."""
    doc = _three_word_doc()
    cues = {"bank": ("money", "water"), "bat": ("night", "wooden"), "crane": ("feathers", "lifting")}
    for word, (a, b) in cues.items():
        ws = doc["words"][word]
        graded = {"0": [f"The {word}"], "A": {}, "B": {}}
        for sense, cue in (("A", a), ("B", b)):
            for k in range(1, 5):
                long = " ".join([cue] * k)
                graded[sense][str(k)] = [f"The {long} {word}"] + ([f"A {long} and {cue} {word}"] if k % 2 else [])
        graded["A"]["3"].append(ws["direction"]["A"][0].upper() if word == "bat" else ws["direction"]["A"][0])
        ws["graded"] = graded
    return doc


def _no_word_doc() -> dict:
    """Every word has a graded prompt with final punctuation: no word can be measured."""
    doc = _original_style_doc()
    for ws in doc["words"].values():
        ws["graded"]["B"]["2"] = [t + "." for t in ws["graded"]["B"]["2"]]
    return doc


# -- the position control on synthetic σ -------------------------------------------------------------

def _design(rng, n_per_level=3):
    levels = np.repeat(np.arange(-4, 5), n_per_level).astype(float)
    pos = 3 + 2 * np.abs(levels) + rng.integers(0, 3, levels.size)  # grows with |level|, varies within levels
    return levels, M.design_h(levels), pos.astype(float)


def test_adjustment_removes_a_planted_position_effect_and_keeps_h():
    rng = np.random.default_rng(0)
    levels, h, pos = _design(rng)
    L1 = 6
    b = np.linspace(0.0, 0.5, L1)  # h's effect per layer
    c = np.linspace(0.0, 0.03, L1)  # position effect per layer
    sigma = 0.1 + np.outer(h, b) + np.outer(pos, c) + rng.normal(0, 0.01, (h.size, L1))
    sigma[:, 0] = 0.25  # a layer that does not vary (i = 0 without positional embeddings)
    fit = M.position_fit(h, pos)
    assert fit is not None
    adj = M.adjust_for_position(sigma, fit)
    Z = np.column_stack([np.ones_like(h), h, pos])
    raw_coef = np.linalg.lstsq(Z, sigma, rcond=None)[0]
    adj_coef = np.linalg.lstsq(Z, adj, rcond=None)[0]
    np.testing.assert_allclose(adj_coef[2], 0.0, atol=1e-12)  # no position left
    np.testing.assert_allclose(adj_coef[1], raw_coef[1], atol=1e-12)  # h's coefficient kept
    np.testing.assert_allclose(adj.mean(0), sigma.mean(0), atol=1e-12)  # moved to the mean position
    assert np.all(adj[:, 0] == 0.25)  # the flat layer exactly as measured
    # the slope of the adjusted σ on h is h's coefficient with the position beside it (what exp3's f is)
    slope = np.array([stats.linregress(h, adj[:, i]).slope for i in range(1, L1)])
    np.testing.assert_allclose(slope, raw_coef[1, 1:], atol=1e-10)
    assert abs(raw_coef[2, -1] - c[-1]) < 0.005 and abs(raw_coef[1, -1] - b[-1]) < 0.03
    # batched over null directions: the same as one at a time
    batch = np.stack([sigma, 2 * sigma])
    np.testing.assert_allclose(M.adjust_for_position(batch, fit)[1], M.adjust_for_position(2 * sigma, fit), atol=1e-12)


def test_length_matched_or_inseparable_positions_are_not_adjusted():
    rng = np.random.default_rng(1)
    levels, h, _ = _design(rng)
    sigma = rng.normal(size=(h.size, 4))
    assert M.position_fit(h, np.full(h.size, 7.0)) is None  # length-matched: nothing to control
    assert M.adjust_for_position(sigma, None) is sigma
    assert M.position_fit(h, 5 + 2 * levels) is None  # the position is a linear function of the level


def _word(levels, pos, phi) -> M.WordData:
    ws = SimpleNamespace(direction={"A": ["a", "b"], "B": ["c", "d"]}, senses={"A": "x", "B": "y"}, in_original=False)
    graded = [SimpleNamespace(level=int(lv)) for lv in levels]
    encoded = [SimpleNamespace(position=int(p), ids=list(range(int(p) + 1))) for p in pos]
    final = np.random.default_rng(5).normal(size=(4, phi.shape[-1]))
    return M.WordData("w", ws, graded, encoded, final, phi)


def test_word_data_uses_the_adjusted_sigma_everywhere():
    rng = np.random.default_rng(2)
    levels, h, pos = _design(rng)
    phi = rng.normal(size=(h.size, 5, 8)) + pos[:, None, None] * 0.3
    wd = _word(levels, pos, phi)
    assert not wd.length_matched and wd.position_fit is not None
    np.testing.assert_allclose(wd.sigma, M.adjust_for_position(wd.sigma_raw, M.position_fit(h, pos)))
    dirs = wd.null_directions("random", 3, np.random.default_rng(0))
    raw_null = np.einsum("pld,rd->rpl", M.unit(phi), dirs)
    np.testing.assert_allclose(wd.null_sigma(dirs), M.adjust_for_position(raw_null, wd.position_fit))
    rows = M.stratified_rows(wd.levels, np.random.default_rng(3))
    np.testing.assert_allclose(wd.sigma_rows(rows),
                               M.adjust_for_position(wd.sigma_raw[rows], M.position_fit(h[rows], pos[rows])))
    rec = M.position_record(wd)
    assert rec["control"] == "adjusted" and not rec["length_matched"] and rec["n_layers"] == 5
    # the per-word check: h's coefficient with the position beside it is the slope of the adjusted σ
    slope = [stats.linregress(h, wd.sigma[:, i]).slope for i in range(5)]
    np.testing.assert_allclose(rec["h_coef_adjusted"], slope, atol=1e-10)
    # a length-matched word: σ as measured, the same object
    same = _word(levels, np.full(h.size, 6), phi)
    assert same.length_matched and same.sigma is same.sigma_raw and same.sigma_rows(rows) is not None
    assert M.position_record(same) == {"length_matched": True, "n_tokens": [7, 7], "target_position": [6, 6],
                                       "n_positions": 1, "control": "none", "method": M.POSITION_NONE}


# -- exp1 -> exp2 -> exp3 on a tiny model ------------------------------------------------------------

def test_original_style_stimuli_measure_every_word(tiny_llama, tmp_path):
    from semphase.cache import EvidenceStore
    from semphase.experiments.exp1.measure import measure_stimuli as measure1
    from semphase.experiments.exp2.measure import measure_stimuli as measure2
    from semphase.experiments.exp3 import measure as exp3
    from semphase.models import load_model
    from semphase.report import OutputLayout, publish

    lm = load_model(str(tiny_llama), "cpu")
    stim = parse_stimuli(_original_style_doc())
    e1 = measure1(lm, stim, EvidenceStore(tmp_path / "cache"), n_null=20)
    e2 = measure2(lm, stim, EvidenceStore(tmp_path / "cache"), n_boot=20, n_boot_words=20)
    e3 = exp3.measure_stimuli(lm, stim, EvidenceStore(tmp_path / "cache"), n_null=20, n_boot=20)
    words = ["bank", "bat", "crane"]
    for ev in (e1, e2, e3):
        # every word measured; each duplicate dropped from the test set with one line
        assert ev["words_used"] == words and ev["words_skipped"] == {}
        assert {w: len(v) for w, v in ev["prompts_dropped"].items()} == {w: 1 for w in words}
        assert ev["prompts_dropped"]["bat"][0].startswith("graded A3 prompt 'AT DUSK OUT OF THE CAVE FLEW A BAT': it "
                                                          "is also a direction A prompt 'At dusk out of the cave flew "
                                                          "a bat'")
        assert ev["position_control"]["words_not_length_matched"] == words
        for w in words:
            rec = ev["words"][w]["position"]
            assert rec["control"] == "adjusted" and not rec["length_matched"] and rec["n_tokens"][1] > rec["n_tokens"][0]
    # the measured prompts: 13 graded per word (14 in the file, one dropped)
    assert all(len(e1["words"][w]["prompts"]) == 13 for w in words)
    assert all(e3["words"][w]["n_prompts"] == 13 for w in words)
    # exp1's τ is on the adjusted final-layer σ; the record keeps σ as measured beside it
    for w in words:
        pr = e1["words"][w]["prompts"]
        final = np.array([p["sigma"][-1] for p in pr])
        assert e1["words"][w]["kendall_tau"] == pytest.approx(stats.kendalltau([p["level"] for p in pr], final).statistic)
        assert all("sigma_raw" in p for p in pr) and e1["words"][w]["n_tokens_graded"] is None
    # exp3's f is h's coefficient with the position beside it (the per-word check's number)
    for w in words:
        np.testing.assert_allclose(e3["words"][w]["design"]["f"], e3["words"][w]["position"]["h_coef_adjusted"],
                                   atol=1e-9)
    # C6: the position varies within every word, so its coefficient is identified and estimated
    pos = e3["c6"]["position"]
    assert pos["position_identified"] and pos["n_words_position_varies"] == 3
    assert all(r["pos_coef"] is not None for r in pos["per_layer"][1:])  # i = 0: the same token embedding
    # every claim applies; the statements of the level comparisons name the position control
    for exp_id, ev in (("exp1", e1), ("exp2", e2), ("exp3", e3)):
        claims = registry.get(exp_id).claims.evaluate_all(ev)
        assert all(c.applicable for c in claims if c.claim != "C1"), [(c.test, c.reason) for c in claims]
        if exp_id != "exp1":
            assert all("not length-matched" in c.statement for c in claims if c.test != "test_c6_circular_h_fixes_the_final_layer"
                       and c.test != "test_c6_h_effect_survives_position_control")
    c2 = registry.get("exp1").claims.evaluate(e1, "test_c2_fan_ordering_beats_shuffled_sense_null")
    assert "for the 3 measured words not length-matched, σ is first moved to the word's mean target position" in c2.statement
    c6 = registry.get("exp3").claims.evaluate(e3, "test_c6_h_effect_survives_position_control")
    assert "the position varies within 3 word(s)" in c6.statement
    # the reports: per word "not length-matched" and how position was controlled; the dropped prompt's line
    layout = OutputLayout.make(tmp_path / "out")
    layout.ensure_writable()
    for exp_id, ev in (("exp1", e1), ("exp2", e2), ("exp3", e3)):
        exp = registry.get(exp_id)
        publish(exp, layout, ev, [c.to_json() for c in exp.claims.evaluate_all(ev)])
        report = (layout.reports / f"{exp_id}_results.md").read_text()
        assert "Position: 3 of 3 measured words are not length-matched" in report, exp_id
        for w in words:
            line = next(l for l in report.splitlines() if l.startswith(f"- {w}: not length-matched"))
            assert "position controlled by the within-word regression adjustment" in line
            assert "with the position covariate" in line and "the level effect" in line
        assert "Prompts dropped (3; each word is measured without them)" in report
        assert "- bank: graded A3 prompt 'She went to the bank': it is also a direction A prompt" in report
    assert "(not length-matched)" in (layout.reports / "exp1_results.md").read_text()  # the tokens column
    assert "which identify the position coefficient" in (layout.reports / "exp3_results.md").read_text()


def test_exp3_cli_measures_an_original_style_file(tiny_llama, tmp_path, capsys):
    from semphase.cli import main

    path = tmp_path / "stim.json"
    path.write_text(json.dumps(_original_style_doc()))
    rc = main(["run", "exp3", "--model", str(tiny_llama), "--device", "cpu", "--stimuli", str(path),
               "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    assert "test_c6_h_effect_survives_position_control" in capsys.readouterr().out
    ev = json.loads((tmp_path / "out" / "data" / f"exp3_{tiny_llama.name}.json").read_text())["evidence"]
    assert ev["words_used"] == ["bank", "bat", "crane"] and ev["c6"]["position"]["position_identified"]


# -- no measurable word --------------------------------------------------------------------------------

@pytest.mark.parametrize("experiment", ["exp1", "exp2", "exp3", "exp8"])
def test_no_measurable_word_is_one_sentence_and_exit_2(tiny_llama, tmp_path, capsys, experiment):
    from semphase.cli import main

    path = tmp_path / "stim.json"
    path.write_text(json.dumps(_no_word_doc()))
    rc = main(["run", experiment, "--model", str(tiny_llama), "--device", "cpu", "--stimuli", str(path),
               "--output-dir", str(tmp_path / "out"), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err
    errors = [l for l in err.splitlines() if l.startswith("semphase: error:")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"semphase: error: no word of the stimuli {str(path)!r} can be measured on")
    assert "does not end with its target" in errors[0] and "stimuli check" in errors[0]
    assert not list((tmp_path / "out" / "reports").glob("*.md")) and not list((tmp_path / "out" / "data").glob("*"))


def test_no_measurable_word_through_the_session(tiny_llama, tmp_path):
    """exp8 (a measurement need) stops with the sentence; exp10's C19 (a claim need) gets it as the
    reason g is missing."""
    from semphase.errors import NoMeasurableWords
    from semphase.session import Session, Settings

    path = tmp_path / "stim.json"
    path.write_text(json.dumps(_no_word_doc()))
    session = Session(Settings(models=(str(tiny_llama),), devices=("cpu",), stimuli=str(path), no_cache=True,
                               no_report=True, parts="ab"))
    lm = session.model(str(tiny_llama))
    ev, why = session.fetch("exp3", lm, registry.get("exp10").needs[0])
    assert ev is None and why.startswith("no word of the stimuli")
    with pytest.raises(NoMeasurableWords, match="no word of the stimuli"):
        session.evidence("exp8", lm)


def test_no_measurable_word_skips_the_claim_tests(tiny_llama, tmp_path):
    path = tmp_path / "stim.json"
    path.write_text(json.dumps(_no_word_doc()))
    claims = [f"tests/claims/test_{e}.py" for e in ("exp1", "exp2", "exp3", "exp8")]
    res = subprocess.run([sys.executable, "-m", "pytest", *claims, "--model", str(tiny_llama), "--device", "cpu",
                          "--stimuli", str(path), "--no-report", "-n", "0", "-q", "-rs", "-p", "no:cacheprovider"],
                         capture_output=True, text=True, timeout=600, cwd=registry.__file__.rsplit("/semphase/", 1)[0])
    tail = res.stdout.strip().splitlines()[-1]
    assert res.returncode == 0 and "skipped" in tail and "passed" not in tail and "failed" not in tail, res.stdout[-3000:]
    assert "Traceback" not in res.stdout
    # -rs groups the skips by reason: every claim test skips with the sentence, except the cross-model
    # test (one --model)
    import re

    reasons: dict[str, int] = {}
    for line in res.stdout.splitlines():
        if line.startswith("SKIPPED ["):
            reason = line.split(": ", 1)[1]
            reasons[reason] = reasons.get(reason, 0) + int(re.match(r"SKIPPED \[(\d+)\]", line).group(1))
    no_word = sum(n for r, n in reasons.items() if r.startswith("semphase: no word of the stimuli"))
    cross = sum(n for r, n in reasons.items() if "cross-model" in r)
    total = int(re.match(r"(\d+) skipped", tail).group(1))
    assert no_word == total - cross >= 20 and cross == 1, reasons
