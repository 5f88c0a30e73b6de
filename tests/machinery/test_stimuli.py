"""The semantic experiments' machinery: the packaged stimuli, the stimuli checker, σ and
directions on synthetic vectors, the claim rules' boundaries, and one end-to-end exp1 run on
a tiny random-weight model (measure, claims, data, figures, report)."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from semphase.errors import SemphaseError
from semphase.semantic import measure as M
from semphase.semantic.stimuli import (check_stimuli, find_token_position, load_stimuli, packaged_path,
                                       parse_stimuli)

pytestmark = pytest.mark.machinery

ORIGINAL = {"bank": ("finance", "river"), "bat": ("animal", "sports"), "crane": ("bird", "machine"),
            "spring": ("season", "coil"), "rock": ("stone", "music"), "match": ("fire", "competition"),
            "light": ("illumination", "weight"), "pitcher": ("container", "baseball"), "bass": ("fish", "music")}


# -- the packaged file -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def packaged():
    return load_stimuli()


def test_packaged_file_has_the_promised_design(packaged):
    raw = json.loads(packaged_path().read_text())
    assert isinstance(raw.get("format"), dict) and raw["format"]["graded"]
    words = packaged.words
    assert len(words) >= 24
    for w, (a, b) in ORIGINAL.items():
        assert w in words and words[w].in_original
        assert (words[w].senses["A"], words[w].senses["B"]) == (a, b)
    for w, ws in words.items():
        for s in "AB":
            assert len(ws.direction[s]) >= 8, (w, s)
            for k in "1234":
                assert len(ws.graded[s][k]) >= 3, (w, s, k)
        assert len(ws.graded["0"]) >= 3, w
        graded = [p.text for p in ws.graded_prompts()]
        assert len({len(t.split()) for t in graded}) == 1, f"{w}: graded prompts differ in word count"
        assert sorted({p.level for p in ws.graded_prompts()}) == list(range(-4, 5))
        everything = [p.text for p in ws.direction_prompts()] + graded
        for t in everything:
            assert t.split()[-1] == w and t == t.strip(), t
        lowered = [t.lower() for t in everything]
        assert len(set(lowered)) == len(lowered), f"{w}: a prompt is in two sets"
    assert len(packaged.controls) >= 8 and all(len(v) >= 3 for v in packaged.controls.values())
    assert len(packaged.v1_pairs) >= 4
    for p in packaged.v1_pairs:
        assert p["target_last"].split()[-1] == p["word"] and p["word"] in words


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    import time

    from transformers import AutoTokenizer

    import semphase.models as models

    try:
        folder = models._smollm2_folder()
    except SemphaseError as exc:
        pytest.skip(str(exc))
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=models.SMOLLM2_GGUF)
    return tok, time.perf_counter() - start


def test_packaged_file_passes_the_check_under_smollm2(packaged, smollm2_tokenizer):
    tok, load_seconds = smollm2_tokenizer
    assert load_seconds < 60
    check = check_stimuli(packaged, tok)
    assert check.tokenization["bos_prepended"] and check.tokenization["bos_token_id"] == tok.bos_token_id
    assert {w: p for w, p in check.word_problems.items() if p} == {}
    assert {w: d for w, d in check.dropped.items() if d} == {}  # nothing dropped: the measured prompts are the file's
    assert all(check.length_matched(w) for w in packaged.words)
    assert {w: p for w, p in check.control_problems.items() if p} == {}
    assert {i: p for i, p in check.pair_problems.items() if p} == {}
    # equal token counts within a word: each word of a graded prompt is one token
    for w, ws in packaged.words.items():
        n_words = len(ws.graded["0"][0].split())
        assert all(len(check.encoded[p.text].ids) == n_words + 1 for p in ws.graded_prompts()), w


# -- the checker, on a tiny tokenizer --------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    from conftest import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def _tiny_doc() -> dict:
    """A two-word stimuli document whose graded prompts are three one-token words under the tiny
    tokenizer (so token counts are equal)."""
    firsts, seconds = ["X", "Q", "Z"], ["y", "j", "k"]
    def graded(word):
        combos = [f"{a} {b} {word}" for a in firsts for b in seconds]
        return {"0": combos[:1], "A": {str(k): [combos[k]] for k in range(1, 5)},
                "B": {str(k): [combos[4 + k]] for k in range(1, 5)}}
    return {
        "format": "test", "name": "tiny", "version": 1,
        "words": {
            "bank": {"senses": {"A": "finance", "B": "river"}, "in_original": True,
                     "direction": {"A": ["She went to the bank", "The money in the bank"],
                                   "B": ["The river bank", "A steep bank"]},
                     "graded": graded("bank")},
            "bat": {"senses": {"A": "animal", "B": "sports"}, "in_original": True,
                    "direction": {"A": ["At dusk out of the cave flew a bat", "The cave bat"],
                                  "B": ["He swung the bat", "He hit the ball with the bat"]},
                    "graded": graded("bat")},
        },
        "controls": {"crane": ["The crane", "A crane"]},
        "v1_pairs": [{"word": "bank", "target_last": "The bank", "context_after": "of the river"}],
    }


def _problems(doc, tok, word="bank"):
    return check_stimuli(parse_stimuli(doc), tok).word_problems[word]


def test_checker_accepts_a_clean_file(tiny_tokenizer):
    check = check_stimuli(parse_stimuli(_tiny_doc()), tiny_tokenizer)
    assert check.word_problems == {"bank": [], "bat": []}
    assert check.control_problems == {"crane": []} and check.pair_problems == {0: []}
    assert check.tokenization["bos_prepended"] is False  # the tiny tokenizer has no BOS
    assert check.usable_words(parse_stimuli(_tiny_doc())) == ["bank", "bat"]


def test_checker_flags_a_word_after_the_target(tiny_tokenizer):
    doc = _tiny_doc()
    doc["words"]["bank"]["graded"]["A"]["2"] = ["The bank the"]
    probs = _problems(doc, tiny_tokenizer)
    assert any("does not end with its target" in p and "The bank the" in p for p in probs), probs
    assert _problems(doc, tiny_tokenizer, "bat") == []


def test_checker_drops_a_direction_prompt_from_the_graded_set(tiny_tokenizer):
    doc = _tiny_doc()
    doc["words"]["bank"]["graded"]["B"]["3"] = ["the RIVER bank"]  # a direction prompt, other case
    stim = parse_stimuli(doc)
    check = check_stimuli(stim, tiny_tokenizer)
    assert check.word_problems["bank"] == [] and check.usable_words(stim) == ["bank", "bat"]
    [line] = [d.describe() for d in check.dropped["bank"]]
    assert line.startswith("graded B3 prompt 'the RIVER bank'") and "direction B prompt 'The river bank'" in line
    assert "dropped from the test set, kept for the direction" in line
    assert "the RIVER bank" not in [p.text for p in check.graded_prompts("bank")]
    assert [p.text for p in check.direction_prompts("bank")] == ["She went to the bank", "The money in the bank",
                                                                 "The river bank", "A steep bank"]
    assert check.to_json()["prompts_dropped"] == {"bank": [line]}


def test_checker_drops_prompts_at_two_levels_and_repeats(tiny_tokenizer):
    doc = _tiny_doc()
    g = doc["words"]["bank"]["graded"]
    g["A"]["1"] = ["Z y bank"]  # also at B2 (as the original's step 1 in both senses): its level is ambiguous
    g["A"]["2"] = g["A"]["2"] + g["A"]["2"]  # repeated at one level
    doc["words"]["bank"]["direction"]["A"] = ["She went to the bank", "The money in the bank", "A steep bank"]
    doc["words"]["bank"]["direction"]["B"] = ["The river bank", "A steep bank", "The water by the bank"]
    stim = parse_stimuli(doc)
    check = check_stimuli(stim, tiny_tokenizer)
    assert check.word_problems["bank"] == [] and check.usable_words(stim) == ["bank", "bat"]
    lines = [d.describe() for d in check.dropped["bank"]]
    assert lines[0].startswith("direction A prompt 'A steep bank'") and "both senses" in lines[0]
    assert lines[1].startswith("direction B prompt 'A steep bank'")
    assert sum("at 2 levels (-2, +1)" in x for x in lines) == 2
    assert sum("repeats a prompt of the same level" in x for x in lines) == 1 and len(lines) == 5
    assert {p.level for p in check.graded_prompts("bank")} == {-4, -3, -1, 0, 2, 3, 4}
    assert check.direction["bank"] == {"A": ["She went to the bank", "The money in the bank"],
                                       "B": ["The river bank", "The water by the bank"]}
    # with one direction B prompt left a leave-one-out direction is impossible: the word is not measured
    doc["words"]["bank"]["direction"]["B"] = ["The river bank", "A steep bank"]
    check = check_stimuli(parse_stimuli(doc), tiny_tokenizer)
    assert check.usable_words(parse_stimuli(doc)) == ["bat"]
    assert check.word_problems["bank"][0].startswith("direction B has 1 prompt(s) left")


def test_checker_needs_two_levels(tiny_tokenizer):
    doc = _tiny_doc()
    g = doc["words"]["bat"]["graded"]
    direction = doc["words"]["bat"]["direction"]["A"][1]  # 'The cave bat'
    g["0"] = [direction]
    for s in "AB":
        for k in "1234":
            g[s][k] = [direction] if (s, k) != ("A", "4") else g[s][k]
    check = check_stimuli(parse_stimuli(doc), tiny_tokenizer)
    assert check.word_problems["bat"] and "left at 1 level(s) (+4)" in check.word_problems["bat"][0]
    assert check.word_problems["bank"] == []


def test_checker_accepts_unequal_token_counts(tiny_tokenizer):
    doc = _tiny_doc()
    doc["words"]["bank"]["graded"]["A"]["4"] = ["She paid the money into the bank"]  # longer than the others
    stim = parse_stimuli(doc)
    check = check_stimuli(stim, tiny_tokenizer)
    assert check.word_problems["bank"] == [] and check.usable_words(stim) == ["bank", "bat"]
    assert not check.length_matched("bank") and check.length_matched("bat")
    counts = check.graded_tokens("bank")
    assert counts[-1] > counts[0] and len(set(counts[:-1])) == 1


def test_checker_flags_a_target_that_is_not_one_token(tiny_tokenizer):
    doc = _tiny_doc()
    doc["controls"] = {"cat": ["The cat", "A cat"]}  # ' cat' is split by the tiny tokenizer
    check = check_stimuli(parse_stimuli(doc), tiny_tokenizer)
    assert check.control_problems["cat"] and "not found" in check.control_problems["cat"][0]


def test_checker_flags_bad_v1_pairs(tiny_tokenizer):
    doc = _tiny_doc()
    doc["v1_pairs"] = [{"word": "bank", "target_last": "The bank", "context_after": "by the bank"},
                       {"word": "bank", "target_last": "The bank the", "context_after": "of the river"}]
    check = check_stimuli(parse_stimuli(doc), tiny_tokenizer)
    assert "repeats" in check.pair_problems[0][0]
    assert "does not end" in check.pair_problems[1][0]


def test_find_token_position_scans_from_the_end():
    assert find_token_position(["<s>", "The", " bank", " banker", " bank"], "bank") == (4, "exact")
    assert find_token_position(["The", " Bank", " banks"], "bank") == (1, "exact")
    assert find_token_position(["The", " banks"], "bank") == (1, "substring")
    with pytest.raises(ValueError):
        find_token_position(["The", " river"], "bank")


def test_load_stimuli_errors_are_one_sentence(tmp_path):
    with pytest.raises(SemphaseError, match="cannot be read"):
        load_stimuli(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SemphaseError, match="not valid UTF-8 JSON"):
        load_stimuli(bad)
    doc = _tiny_doc()
    del doc["words"]["bank"]["graded"]["A"]["3"]
    bad.write_text(json.dumps(doc))
    with pytest.raises(SemphaseError, match=r"graded\.A must be an object with keys '1' to '4'"):
        load_stimuli(bad)
    doc = _tiny_doc()
    doc["words"]["bat"]["direction"]["A"] = ["The cave bat"]
    bad.write_text(json.dumps(doc))
    with pytest.raises(SemphaseError, match="at least 2"):
        load_stimuli(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_tiny_doc()))
    st = load_stimuli(good)
    assert st.source == str(good) and len(st.sha256) == 64 and list(st.words) == ["bank", "bat"]


# -- σ, directions, jumps on synthetic vectors ------------------------------------------------------

def test_sigma_v2_and_v1_equal_a_hand_computation():
    a = np.array([[2.0, 0, 0], [4.0, 0, 0]])  # mean (3, 0, 0)
    b = np.array([[0, 2.0, 0], [0, 4.0, 0]])  # mean (0, 3, 0)
    d = M.contrastive_direction(a, b)
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(d["e_diff"], [r, -r, 0], atol=1e-12)
    assert d["cos_ab"] == pytest.approx(0.0)
    phi = np.array([[3.0, 4.0, 0.0],  # |φ| = 5: σ = (3 - 4) / 5 / √2
                    [0.0, 0.0, 2.0],  # orthogonal: σ = 0
                    [1.0, 0.0, 0.0]])  # σ = 1/√2
    np.testing.assert_allclose(M.sigma_v2(phi, d["e_diff"]), [-0.2 * r, 0.0, r], atol=1e-12)
    # v1: cos(φ, ê_A) - cos(φ, ê_B)
    np.testing.assert_allclose(M.sigma_v1(phi, d["e_a"], d["e_b"]), [0.6 - 0.8, 0.0, 1.0], atol=1e-12)
    # jumps and the biggest one
    s = np.array([[0.0, 0.1, 0.05, 0.4], [0.0, -0.2, -0.1, -0.1]])
    np.testing.assert_allclose(M.jumps(s), [[0.1, -0.05, 0.35], [-0.2, 0.1, 0.0]], atol=1e-12)
    assert M.biggest_jump(M.jumps(s)) == (2, pytest.approx(0.35))
    summ = M.prompt_summary(s[0])
    assert summ["max_jump_layer"] == 2 and summ["sigma_final"] == 0.4 and summ["sigma_range"] == pytest.approx(0.4)


def test_loo_directions_exclude_the_left_out_prompt():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 6)), rng.normal(size=(3, 6))
    loo = M.loo_directions(a, b)
    assert loo.shape == (7, 6)
    for k in range(4):
        ref = M.contrastive_direction(np.delete(a, k, 0), b)["e_diff"]
        np.testing.assert_allclose(loo[k], ref, atol=1e-12)
    for k in range(3):
        ref = M.contrastive_direction(a, np.delete(b, k, 0))["e_diff"]
        np.testing.assert_allclose(loo[4 + k], ref, atol=1e-12)
    # changing a left-out prompt leaves its own direction alone and moves the others
    a2 = a.copy()
    a2[1] += 10.0
    loo2 = M.loo_directions(a2, b)
    np.testing.assert_allclose(loo2[1], loo[1], atol=1e-12)
    assert np.abs(loo2[0] - loo[0]).max() > 1e-3


def test_null_directions_are_seeded_and_shaped():
    masks = M.shuffled_splits(8, 8, 50, np.random.default_rng(1))
    assert masks.shape == (50, 16) and (masks.sum(1) == 8).all()
    assert (masks == M.shuffled_splits(8, 8, 50, np.random.default_rng(1))).all()
    u = M.random_unit_directions(32, 10, np.random.default_rng(2))
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0)
    x = np.random.default_rng(3).normal(size=(10, 5))
    truth = np.arange(10) < 4
    np.testing.assert_allclose(M.split_direction(x, truth), M.contrastive_direction(x[:4], x[4:])["e_diff"], atol=1e-12)


def test_kendall_tau_b_matches_scipy():
    from scipy.stats import kendalltau

    from semphase.experiments.exp1.measure import kendall_tau_b

    rng = np.random.default_rng(0)
    levels = np.repeat(np.arange(-4, 5), 3).astype(float)
    ys = rng.normal(size=(27, 5)) + levels[:, None] * np.array([0, 0.1, 0.5, 1, -1])
    got = kendall_tau_b(levels, ys)
    for k in range(5):
        assert got[k] == pytest.approx(kendalltau(levels, ys[:, k]).statistic, abs=1e-12)
    assert kendall_tau_b(levels, ys[:, 2]) == pytest.approx(got[2])


# -- claim rules at their boundaries -------------------------------------------------------------------

def _ev(model="smollm2-135m", n_words=24, mean_tau=0.5, q95_tau=0.3, frac=0.3, q95_frac=0.3):
    words = [f"w{i}" for i in range(n_words)]
    return {
        "model": model, "n_layers": 30, "words_used": words, "words_skipped": {"zz": ["not one token"]},
        "stimuli": {"n_words": n_words + 1}, "tokenization": {},
        "words": {w: {"in_original": i < 9} for i, w in enumerate(words)},
        "v1_pairs_skipped": {},
        "c1": {"n_pairs": 2, "max_abs_diff_sigma_v1": 2e-7, "max_abs_diff_sigma_v2": 3e-6, "max_rel_diff_residual": 1e-7},
        "c2": {"mean_tau": mean_tau, "frac_tau_positive": 1.0, "n_tau_positive": n_words,
               "original_words": {}, "null": {"n": 200, "q95": q95_tau, "mean": 0.0, "p_value": 0.01}},
        "c3": {"frac_last_block": frac, "n_last_block": 0, "n_block0": 0, "j_star": {},
               "variant_mean_abs_jump": {}, "last_block_share_of_abs_jumps": {},
               "shuffled_sense_directions": {"frac_last_block_q95": q95_frac, "frac_last_block_mean": 0.2},
               "null": {"n": 200, "q95": q95_frac, "mean": 0.2, "p_value_real_exceeds": 0.3}},
    }


def test_claim_rules_at_their_boundaries():
    from semphase import registry

    evaluate_claim = registry.get("exp1").claims.evaluate

    assert evaluate_claim(_ev(), "test_c1_context_after_target_has_no_effect").passed
    ev = _ev()
    ev["c1"]["max_abs_diff_sigma_v2"] = 2e-5
    assert not evaluate_claim(ev, "test_c1_context_after_target_has_no_effect").passed
    ev["c1"]["n_pairs"] = 0
    assert not evaluate_claim(ev, "test_c1_context_after_target_has_no_effect").applicable
    assert evaluate_claim(_ev(mean_tau=0.31), "test_c2_fan_ordering_beats_shuffled_sense_null").passed
    assert not evaluate_claim(_ev(mean_tau=0.3), "test_c2_fan_ordering_beats_shuffled_sense_null").passed  # strict
    gpt2 = evaluate_claim(_ev("gpt2", mean_tau=0.5), "test_c2_fan_ordering_beats_shuffled_sense_null")
    assert not gpt2.passed and len(gpt2.conditions) == 3  # the original's 0.6 bar applies to gpt2 only
    c3 = "test_c3_last_block_jump_beats_random_direction_null"
    assert evaluate_claim(_ev(frac=0.7, q95_frac=0.3), c3).passed  # >= 2/3 and above the null
    assert not evaluate_claim(_ev(frac=0.7, q95_frac=0.7), c3).passed  # strict: not above the null
    assert not evaluate_claim(_ev(frac=0.6, q95_frac=0.3), c3).passed  # fewer than 2/3 of the words
    assert not evaluate_claim(_ev(n_words=1), c3).applicable
    tok = evaluate_claim(_ev(n_words=19), "test_exp1_every_target_single_token_for_this_model")
    assert not tok.passed and tok.conditions[1].value == 19
    assert evaluate_claim(_ev(n_words=20), "test_exp1_every_target_single_token_for_this_model").passed


# -- end to end on a tiny random-weight model ------------------------------------------------------

def test_exp1_end_to_end_on_a_tiny_model(tiny_llama, tmp_path):
    from semphase.cache import EvidenceStore
    from semphase.models import load_model
    from semphase import registry
    from semphase.experiments.exp1.measure import measure_stimuli
    from semphase.report import OutputLayout
    from semphase.report import publish as publish_any

    exp1 = registry.get("exp1")

    def publish(layout, ev, claims):
        return publish_any(exp1, layout, ev, claims)

    lm = load_model(str(tiny_llama), "cpu")
    stim = parse_stimuli(_tiny_doc())
    store = EvidenceStore(tmp_path / "cache")
    ev = measure_stimuli(lm, stim, store, seed=0, n_null=30)
    assert ev["words_used"] == ["bank", "bat"] and ev["words_skipped"] == {}
    assert ev["timing"]["forward_prompts"] == 4 + 4 + 9 + 9 + 2 + 2  # directions, graded, controls, one pair
    prompts = ev["words"]["bank"]["prompts"]
    assert [p["level"] for p in prompts] == list(range(-4, 5))
    assert all(len(p["sigma"]) == lm.n_layers + 1 for p in prompts)
    # causal mask on a random model: context after the target changes nothing
    assert ev["c1"]["n_pairs"] == 1 and ev["c1"]["max_abs_diff_sigma_v2"] < 1e-5
    assert len(ev["c2"]["null"]["mean_tau"]) == 30 and len(ev["c3"]["null"]["frac_last_block"]) == 30
    json.dumps(ev, allow_nan=True)
    # a second run reads every residual back from the cache and gives the same evidence
    again = measure_stimuli(lm, stim, EvidenceStore(tmp_path / "cache"), seed=0, n_null=30)
    assert again["timing"]["forward_prompts"] == 0
    assert again["c2"]["null"]["mean_tau"] == ev["c2"]["null"]["mean_tau"]
    assert again["words"]["bat"]["prompts"][0]["sigma"] == ev["words"]["bat"]["prompts"][0]["sigma"]
    claims = [c.to_json() for c in exp1.claims.evaluate_all(ev)]
    assert {c["test"] for c in claims} == set(exp1.claims.rules)
    layout = OutputLayout.make(tmp_path / "out")
    layout.ensure_writable()
    written = publish(layout, ev, claims)
    names = {p.rsplit("/", 1)[-1] for p in written}
    tag = ev["tag"]
    assert {f"exp1_{tag}.json", f"exp1_sigma_fans_{tag}.png", f"exp1_jump_bars_{tag}.png",
            f"exp1_nulls_{tag}.png", "exp1_results.md"} <= names
    report = (layout.reports / "exp1_results.md").read_text()
    assert "out of scope" in report and f"## {ev['model']}" in report and "test_c3_last_block_jump_beats_random_direction_null" in report
    # the report is rebuilt from every data file: a second model appears next to the first
    other = copy.deepcopy(ev)
    other["model"], other["tag"] = "other-model", "other-model"
    publish(layout, other, claims)
    report = (layout.reports / "exp1_results.md").read_text()
    assert f"## {ev['model']}" in report and "## other-model" in report
