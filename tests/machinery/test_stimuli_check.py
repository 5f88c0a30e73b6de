"""``python -m semphase stimuli check FILE --model M``: one line per item, the checker's own verdict
per word, dropped prompts and why, token counts per level, length-matching and the position control,
near-duplicates, exit 0 when something can be measured, one sentence and exit 2 otherwise."""
from __future__ import annotations

import json

import pytest

from semphase.cli import main
from semphase.semantic.stimuli import check_stimuli, overlapping_pairs, parse_stimuli
from test_permeation import _three_word_doc

pytestmark = pytest.mark.machinery

PREFIXES = ("stimuli: ", "model: ", "word ", "control ", "v1 pair ", "summary: ")


def _original_style_doc() -> dict:
    """A prompt set in the original study's style: bank's graded sentences grow longer with the
    context level (not length-matched), and one test sentence also builds a direction (it is
    dropped from the test set; the word is measured)."""
    doc = _three_word_doc()
    doc["words"]["bank"]["graded"] = {
        "0": ["The bank"],
        "A": {"1": ["The money bank"], "2": ["She went to the bank"],  # a direction A prompt
              "3": ["She paid the money into the bank"], "4": ["She paid the money and the cheque into the bank"]},
        "B": {"1": ["The steep bank"], "2": ["The water by the bank"], "3": ["The water of the river by the bank"],
              "4": ["The fish swam in the water of the river by the bank"]},
    }
    return doc


def _check(tiny_llama, tmp_path, capsys, doc, model=None):
    path = tmp_path / "stimuli.json"
    path.write_text(json.dumps(doc) if isinstance(doc, dict) else doc, encoding="utf-8")
    rc = main(["stimuli", "check", str(path), "--model", model or str(tiny_llama)])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


def test_original_style_file_reports_every_word(tiny_llama, tmp_path, capsys):
    doc = _original_style_doc()
    rc, lines, err = _check(tiny_llama, tmp_path, capsys, doc)
    assert rc == 0 and err == ""
    assert all(line.startswith(PREFIXES) for line in lines), lines
    # one status line per word, and it agrees with the checker that exp1-exp3 use
    from transformers import AutoTokenizer

    stim = parse_stimuli(doc)
    check = check_stimuli(stim, AutoTokenizer.from_pretrained(str(tiny_llama)))
    for word in stim.words:
        status = [l for l in lines if l.startswith(f"word {word} (")]
        assert len(status) == 1, status
        assert ("measured:" in status[0]) == (word in check.usable_words(stim)), status
    # not length-matched and a test prompt that is also a direction prompt: bank is measured all the same
    assert check.usable_words(stim) == ["bank", "bat", "crane"]
    bank = [l for l in lines if l.startswith("word bank")]
    assert "measured: 4 direction prompts" in bank[0] and "8 graded prompts" in bank[0] and "1 prompt dropped" in bank[0]
    # the dropped prompt, with why, one line
    assert [l for l in bank if "dropped prompt" in l] == [
        "word bank: dropped prompt: graded A2 prompt 'She went to the bank': it is also a direction A prompt "
        "(compared case-insensitively): dropped from the test set, kept for the direction"]
    # token counts per level of the measured prompts, length-matching stated as a fact
    tokens = next(l for l in bank if "graded tokens per level" in l)
    assert all(f"{lv}:" in tokens for lv in ("-4", "-1", " 0", "+1", "+4")) and "+2:" not in tokens
    assert "length-matched: no" in tokens
    assert any("graded tokens per level" in l and "length-matched: yes" in l for l in lines if l.startswith("word bat"))
    # the position control exp1-exp3 will apply
    assert any(l.startswith("word bank: position control: regression adjustment within the word") for l in bank)
    assert "word bat: position control: none needed: the word is length-matched" in "\n".join(lines)
    # the near-duplicates are the checker's own rule, one line per pair (reported, kept)
    near = [l for l in bank if l.startswith("word bank: near-duplicate: ")]
    assert len(near) == len(overlapping_pairs(stim.words["bank"])) >= 1
    assert any("'She went to the bank'" in l and "(1.00 > 0.5)" in l for l in near)
    assert not any(l.startswith("word bank: problem:") for l in bank)
    # the v1 pair of bank is measured, and the summary counts
    assert any(l.startswith("v1 pair 0 (bank") and l.endswith(": measured") for l in lines)
    assert lines[-1].startswith("summary: 3 of 3 words measured") and "dropped:" not in lines[-1]
    assert "1 prompt of measured words dropped" in lines[-1] and "1 measured word(s) not length-matched (bank)" in lines[-1]


def test_nothing_measurable_is_one_sentence_and_exit_2(tiny_llama, tmp_path, capsys):
    doc = _original_style_doc()
    for word in doc["words"]:  # final punctuation in one graded prompt of every word: the target is not last
        doc["words"][word]["graded"]["A"]["1"] = [t + "." for t in doc["words"][word]["graded"]["A"]["1"]]
    rc, lines, err = _check(tiny_llama, tmp_path, capsys, doc)
    assert rc == 2
    errors = err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("semphase: error: no word of") and "Traceback" not in err
    assert lines[-1].startswith("summary: 0 of 3 words measured")
    assert any(l.startswith("word bank: problem: prompt 'The money bank.' does not end with its target") for l in lines)


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid UTF-8 JSON"),
    (json.dumps({"words": {}}), "non-empty 'words'"),
    (None, "graded.A must be an object with keys '1' to '4'"),
])
def test_bad_files_are_one_sentence(tiny_llama, tmp_path, capsys, content, needle):
    if content is None:
        doc = _original_style_doc()
        del doc["words"]["bat"]["graded"]["A"]["3"]
        content = json.dumps(doc)
    rc, lines, err = _check(tiny_llama, tmp_path, capsys, content)
    assert rc == 2 and lines == []
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_missing_file_and_unknown_model(tiny_llama, tmp_path, capsys):
    assert main(["stimuli", "check", str(tmp_path / "none.json"), "--model", str(tiny_llama)]) == 2
    assert "cannot be read" in capsys.readouterr().err
    rc, lines, err = _check(tiny_llama, tmp_path, capsys, _original_style_doc(), model="gpt5")
    assert rc == 2 and lines == [] and "unknown model 'gpt5'" in err


def test_a_prompt_with_a_line_break_stays_on_one_line(tiny_llama, tmp_path, capsys):
    doc = _original_style_doc()
    doc["words"]["crane"]["graded"]["B"]["2"] = ["The steel\ncrane"]
    rc, lines, _ = _check(tiny_llama, tmp_path, capsys, doc)
    assert rc == 0 and all(line.startswith(PREFIXES) for line in lines), lines
    assert any("'The steel\\ncrane'" in l for l in lines if l.startswith("word crane"))


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    import semphase.models as models
    from semphase.errors import SemphaseError

    try:
        return models.load_tokenizer("smollm2-135m")
    except SemphaseError as exc:
        pytest.skip(str(exc))


def _lines(stim, tokenizer):
    from semphase.semantic.stimuli_report import check_lines

    return check_lines(stim, check_stimuli(stim, tokenizer), tokenizer, "smollm2-135m")


def test_the_packaged_file_under_smollm2(smollm2_tokenizer):
    from semphase.semantic.stimuli import load_stimuli

    lines, usable = _lines(load_stimuli(), smollm2_tokenizer)
    assert len(usable) == 28 and lines[-1].startswith("summary: 28 of 28 words measured on smollm2-135m")
    assert sum("length-matched: yes" in l for l in lines) == 28 and not any("near-duplicate" in l for l in lines)


def test_the_readme_template_parses_and_is_measured(smollm2_tokenizer):
    """The README's one-word template is a valid file, measured on SmolLM2 as the README says."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- stimuli-template -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    stim = parse_stimuli(json.loads(block), "README template")
    assert list(stim.words) == ["bank"]
    lines, usable = _lines(stim, smollm2_tokenizer)
    assert usable == ["bank"], lines
