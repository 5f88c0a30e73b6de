"""The overlap rule between graded (test) prompts and direction prompts: the measure on small
examples, the checker reporting a planted pair (kept in the test set; an exact copy is dropped)
on a tiny in-memory document, and the packaged stimuli holding no flagged pair (pure word sets:
no model, no tokenizer)."""
from __future__ import annotations

import copy
import json

import pytest

from semphase.semantic.stimuli import (OVERLAP_LIMIT, check_stimuli, load_stimuli, overlapping_pairs, packaged_path,
                                       parse_stimuli, word_overlap, word_set)
from test_stimuli import _tiny_doc

pytestmark = pytest.mark.machinery


# -- the measure ------------------------------------------------------------------------------------

def test_word_set_lowercases_and_strips_punctuation():
    assert word_set("The RIVER, bank!") == {"the", "river", "bank"}
    assert word_set("  'Quoted'  words... -- and (brackets) ") == {"quoted", "words", "and", "brackets"}
    assert word_set("the The THE") == {"the"}  # a set: repeats count once
    assert word_set("don't well-known") == {"don't", "well-known"}  # only the ends are stripped
    assert word_set("") == frozenset() and word_set("?! ...") == frozenset()


def test_word_overlap_above_and_below_one_half():
    # 4 of the 5 graded words are in the direction prompt: 0.8
    assert word_overlap("He sat on the rock", "He sat down on a rock") == pytest.approx(0.8)
    # 2 of 6 ('the', 'rock'): 1/3
    assert word_overlap("The lizard basked near a rock", "He sat on the rock") == pytest.approx(1 / 3)
    # a repeated word counts once: 2 of the 5 distinct words of 'The lizard basked near the rock'
    assert word_overlap("The lizard basked near the rock", "He sat on the rock") == pytest.approx(0.4)
    # exactly one half is not more than one half
    assert word_overlap("The old grey rock", "The rock") == pytest.approx(0.5)
    assert not word_overlap("The old grey rock", "The rock") > OVERLAP_LIMIT


def test_word_overlap_ignores_case_and_punctuation():
    assert word_overlap("the RIVER bank", "The river, bank.") == 1.0
    assert word_overlap("Then, the Prison CELL", "prison cell!") == pytest.approx(0.5)


def test_word_overlap_divides_by_the_graded_prompt():
    short, long = "the prison cell", "He spent ten years behind bars in the prison cell"
    assert word_overlap(short, long) == 1.0  # every graded word is in the direction prompt
    assert word_overlap(long, short) == pytest.approx(3 / 10)  # not symmetric
    assert word_overlap("", long) == 0.0


# -- the checker --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    from conftest import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("tok_overlap"))


def _graded(word: str) -> dict:
    """Nine three-word graded prompts of equal token count under the tiny tokenizer, set here (not
    taken from ``_tiny_doc``) so the pairs below stay known: level 0 'The the w', A1..A4 'The to w',
    'The of w', 'A the w', 'A to w', B1..B4 'A of w', 'He the w', 'He to w', 'He of w'."""
    combos = [f"{a} {b} {word}" for a in ("The", "A", "He") for b in ("the", "to", "of")]
    return {"0": combos[:1], "A": {str(k): [combos[k]] for k in range(1, 5)},
            "B": {str(k): [combos[4 + k]] for k in range(1, 5)}}


def _clean_doc() -> dict:
    """The tiny two-word document with direction prompts that share only the target with its
    three-word graded prompts ('The the bank' shares 1 of 2 words: exactly one half, not flagged)."""
    doc = _tiny_doc()
    for word in ("bank", "bat"):
        doc["words"][word]["graded"] = _graded(word)
    doc["words"]["bank"]["direction"] = {"A": ["Money deposits bank", "Cash loans bank"],
                                         "B": ["River shore bank", "Muddy grassy bank"]}
    doc["words"]["bat"]["direction"] = {"A": ["Cave dwelling bat", "Night flying bat"],
                                        "B": ["Baseball wooden bat", "Cricket swinging bat"]}
    return doc


def test_clean_tiny_document_has_no_overlap(tiny_tokenizer):
    stim = parse_stimuli(_clean_doc())
    assert all(overlapping_pairs(ws) == [] for ws in stim.words.values())
    check = check_stimuli(stim, tiny_tokenizer)
    assert check.word_problems == {"bank": [], "bat": []}
    assert check.usable_words(stim) == ["bank", "bat"]


def test_checker_flags_a_planted_overlapping_pair(tiny_tokenizer):
    doc = _clean_doc()
    doc["words"]["bank"]["direction"]["A"].append("He went to the bank")  # graded B3 is 'He to bank'
    stim = parse_stimuli(doc)
    pairs = overlapping_pairs(stim.words["bank"])
    planted = [p for p in pairs if p.graded == "He to bank"]
    assert len(planted) == 1
    p = planted[0]
    assert (p.level, p.direction, p.direction_sense, p.shared, p.n_graded_words) == (-3, "He went to the bank", "A", 3, 3)
    assert p.overlap == 1.0
    line = p.describe()
    assert "'He went to the bank'" in line and "direction A" in line and "3 of its 3 words" in line and "1.00" in line
    assert "level -3" in line
    # graded prompts sharing 'he' or 'to' besides the target: 2 of 3 words (0.67); 'A of bank' shares 1 of 3
    flagged = {x.graded for x in pairs}
    assert {"He the bank", "He of bank", "The to bank", "A to bank", "The the bank"} <= flagged
    assert "A of bank" not in flagged
    # a near-duplicate is reported, not dropped: the word is measured with every graded prompt
    check = check_stimuli(stim, tiny_tokenizer)
    assert check.word_problems == {"bank": [], "bat": []} and check.usable_words(stim) == ["bank", "bat"]
    assert check.dropped["bank"] == [] and len(check.graded_prompts("bank")) == 9
    assert set(check.near_duplicates["bank"]) == flagged and check.near_duplicates["bat"] == []
    assert check.to_json()["near_duplicates_kept"] == {"bank": check.near_duplicates["bank"]}


def test_a_copy_of_a_direction_prompt_is_dropped_not_kept_as_a_near_duplicate(tiny_tokenizer):
    doc = _clean_doc()
    doc["words"]["bank"]["graded"]["B"]["3"] = ["river SHORE bank"]  # a direction prompt, other case
    stim = parse_stimuli(doc)
    assert any(p.graded == "river SHORE bank" and p.overlap == 1.0 for p in overlapping_pairs(stim.words["bank"]))
    check = check_stimuli(stim, tiny_tokenizer)
    assert check.word_problems["bank"] == []
    [d] = check.dropped["bank"]
    assert d.where == "graded B3" and "direction B prompt 'River shore bank'" in d.reason
    assert "river SHORE bank" not in check.near_duplicates["bank"]


def test_a_flagged_pair_is_found_in_either_sense_and_at_level_zero():
    doc = _clean_doc()
    ws = copy.deepcopy(doc["words"]["bat"])
    ws["direction"]["B"].append("The the bat")  # also a graded level-0 prompt: overlap 1.0
    doc["words"]["bat"] = ws
    pairs = overlapping_pairs(parse_stimuli(doc).words["bat"])
    assert any(p.graded == "The the bat" and p.level == 0 and p.direction_sense == "B" for p in pairs)


# -- the packaged stimuli ---------------------------------------------------------------------------------

def test_packaged_stimuli_have_no_overlapping_pair():
    stim = load_stimuli()
    assert len(stim.words) == 28
    worst = {}
    for word, ws in stim.words.items():
        assert overlapping_pairs(ws) == [], word
        # the same, computed directly over the file's lists
        directions = [t for s in "AB" for t in ws.direction[s]]
        graded = list(ws.graded["0"]) + [t for s in "AB" for k in "1234" for t in ws.graded[s][k]]
        assert len(graded) == len(ws.graded_prompts())
        worst[word] = max(word_overlap(g, d) for g in graded for d in directions)
    assert max(worst.values()) <= OVERLAP_LIMIT, {w: v for w, v in worst.items() if v > OVERLAP_LIMIT}


def test_packaged_format_documents_the_overlap_rule():
    raw = json.loads(packaged_path().read_text())
    rules = raw["format"]["rules"]
    assert "|graded ∩ direction| / |graded words|" in rules and "> 0.5" in rules
    assert raw["version"] >= 2
