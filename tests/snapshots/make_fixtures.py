"""Regenerate the evidence files the report snapshot tests render (tests/snapshots/fixtures/).

    OMP_NUM_THREADS=1 .venv/bin/python tests/snapshots/make_fixtures.py [exp ...]   # default: every one

Each file is one real record (``{"evidence", "claims"}``) measured at the smoke budget on the tiny
random-weight model of ``tests/conftest.py`` (3 layers, 4 heads): exp1-exp3 on the three-word
stimuli of ``tests/machinery/test_permeation.py`` with crane rewritten in the original study's style
(:func:`stimuli_doc`: not length-matched, one test prompt that is also a direction prompt), so the
reports show both a length-matched word and the position control of one that is not, exp10 on the tiny corpus, exp8 on both (exp3's g
through the session, rotation angles on the corpus) and exp9 on exp8. Machine-specific
strings (the model's temporary folder, file paths) are replaced by stable names, and arrays that no
report section prints (per-draw null samples, bootstrap replicates, per-prompt σ curves) are cut
to their first few entries, so that each file stays a few tens of KB. After regenerating, update
the snapshots: ``pytest tests/machinery/test_report_snapshots.py --snapshot-update``.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path[:0] = [str(TESTS), str(TESTS / "machinery")]

from conftest import CORPUS, make_tiny_model  # noqa: E402
from test_permeation import _three_word_doc  # noqa: E402

from semphase.session import Session, Settings  # noqa: E402

EXPERIMENTS = ("exp1", "exp2", "exp3", "exp6", "exp7", "exp8", "exp9", "exp10")
MODEL = "tiny-llama"
KEEP = 3  # entries kept of a list that no report prints


def _rename(obj, old: str, new: str):
    """Replace the string ``old`` by ``new`` everywhere in a JSON object."""
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, list):
        return [_rename(x, old, new) for x in obj]
    if isinstance(obj, dict):
        return {_rename(k, old, new): _rename(v, old, new) for k, v in obj.items()}
    return obj


def _cut(obj, path: tuple[str, ...]):
    """Shorten the list at ``path`` (keys; ``*`` walks every value of a dict) to KEEP entries."""
    if not path:
        return obj[:KEEP] if isinstance(obj, list) else obj
    head, rest = path[0], path[1:]
    if not isinstance(obj, dict):
        return obj
    keys = list(obj) if head == "*" else [head] if head in obj else []
    for k in keys:
        obj[k] = _cut(obj[k], rest)
    return obj


# Lists no report section prints (figures draw them; the snapshot tests draw no figure).
CUTS = {
    "exp1": [("c2", "null", "mean_tau"), ("c3", "null", "frac_last_block"),
             ("c3", "shuffled_sense_directions", "frac_last_block"), ("words", "*", "prompts")],
    "exp2": [("words", "*", "prompts")],
    "exp3": [("g_mean_boot",), ("null_g_mean_random",), ("nulls", "*", "*", "mean_corr"),
             ("nulls", "*", "*", "mean_rmse"), ("words", "*", "prompts")],
    "exp6": [("chunk_nll", "items", "*")],
    "exp7": [],
    "exp8": [],
    "exp9": [],
    "exp10": [("curves", "*", "order"), ("curves", "*", "ppl"), ("curves", "*", "ratio"), ("curves", "*", "steps"), ("recovery", "best_of_n", "*", "per_prompt"), ("recovery", "prompts", "windows"),
              ("linear", "best", "best_ranking"), ("linear", "best", "mixed_ranking"),
              ("linear", "per_method", "*", "delta_ppl"), ("zero", "delta_eval"), ("curves", "*", "chunk_nll", "steps"),
              ("recovery", "judged", "per_prompt"), ("recovery", "judged", "prompts", "windows"),
              ("recovery", "judged", "reference_nll_per_prompt")],
}


def stimuli_doc() -> dict:
    """The three-word stimuli; crane's graded prompts grow longer with the level (not length-matched)
    and its A3 prompt is also a direction A prompt (dropped from the test set, kept for the direction)."""
    doc = _three_word_doc()
    graded = {"0": ["The crane"], "A": {}, "B": {}}
    for sense, cue in (("A", "feathers"), ("B", "lifting")):
        for k in range(1, 5):
            graded[sense][str(k)] = [f"The {' '.join([cue] * k)} crane"]
    graded["A"]["3"].append(doc["words"]["crane"]["direction"]["A"][0])
    doc["words"]["crane"]["graded"] = graded
    return doc


def main(only: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_tiny_model(tmp / MODEL)
        stimuli = tmp / "stimuli.json"
        stimuli.write_text(json.dumps(stimuli_doc()))
        corpus = tmp / "corpus.txt"
        corpus.write_text(CORPUS, encoding="utf-8")
        session = Session(Settings(models=(str(model),), devices=("cpu",), budget="smoke", stimuli=str(stimuli),
                                   text_file=str(corpus), output_dir=str(tmp / "out"), no_cache=True, seed=0))
        for exp in EXPERIMENTS:
            if only and exp not in only:
                continue
            ev, claims, _ = session.run(exp)
            record = {"evidence": ev, "claims": claims}
            record = _rename(record, str(model), MODEL)
            record = _rename(record, str(tmp), "/fixture")
            for path in CUTS[exp]:
                _cut(record["evidence"], path)
            out = HERE / "fixtures" / f"{exp}.json"
            out.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")
            print(f"{out.relative_to(TESTS.parent)}: {out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
