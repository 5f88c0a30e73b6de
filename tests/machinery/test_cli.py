"""The command line and the pytest options: bad input gets one clear sentence and a
non-zero exit, and nothing earlier is lost."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "semphase", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=600)


def one_sentence_error(res, *needles):
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [l for l in res.stderr.splitlines() if l.startswith("semphase: error:")]
    assert len(lines) == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unknown_model():
    one_sentence_error(cli("run", "exp10", "--model", "gpt5", "--budget", "smoke", "--output-dir", "/tmp/x-semphase"),
                       "unknown model 'gpt5'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_no_cuda():
    one_sentence_error(cli("run", "exp10", "--model", "smollm2-135m", "--device", "cuda", "--output-dir",
                           "/tmp/x-semphase"), "no CUDA device")


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_sentence_error(cli("run", "exp10", "--model", "smollm2-135m", "--output-dir", str(blocker / "out")),
                       "not writable")


def test_run_all_is_every_experiment_after_what_it_needs():
    """`run all` expands to every registered experiment, each after the experiments it needs."""
    from semphase import registry

    order = registry.dependency_order()
    assert sorted(order) == sorted(registry.EXPERIMENTS)
    for exp in registry.all_experiments():
        for need in exp.needs:
            assert order.index(need.experiment) < order.index(exp.id), (exp.id, need.experiment)


def test_run_all_refuses_options_of_one_experiment():
    one_sentence_error(cli("run", "all", "--model", "smollm2-135m", "--parts", "a", "--output-dir", "/tmp/x-semphase"),
                       "--parts", "run all")


@pytest.fixture
def tiny_run(tiny_llama, tiny_text, tmp_path):
    def run(*extra):
        return cli("run", "exp10", "--model", str(tiny_llama), "--text-file", str(tiny_text), "--quiet",
                   "--output-dir", str(tmp_path / "out"), *extra)
    return run


@pytest.mark.parametrize("args, needle", [
    (("--tokens", "0"), "--tokens 0"),
    (("--tokens", "-3"), "--tokens -3"),
    (("--tokens", "99999999"), "the data has only"),
    (("--layers", "0,7"), "--layers"),
    (("--parts", "az"), "--parts"),
    (("--replace-layers", "some"), "--replace-layers"),
    (("--replace-layers", "0"), "--replace-layers"),
])
def test_bad_numbers(tiny_run, args, needle):
    one_sentence_error(tiny_run(*args), needle)


def test_bad_text_files(tiny_llama, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00abc")
    for path, needle in ((empty, "is empty"), (binary, "not UTF-8"), (tmp_path / "none.txt", "does not exist")):
        one_sentence_error(cli("run", "exp10", "--model", str(tiny_llama), "--text-file", str(path),
                               "--output-dir", str(tmp_path / "o")), needle)


def test_data_dir_without_the_file(tiny_llama, tmp_path):
    one_sentence_error(cli("run", "exp10", "--model", str(tiny_llama), "--data-dir", str(tmp_path),
                           "--output-dir", str(tmp_path / "o")), "has no wikitext-2-raw")


def test_run_writes_exp10a_and_a_failed_rerun_keeps_it(tiny_run, tmp_path):
    res = tiny_run("--parts", "a", "--tokens", "128", "--ctx", "64", "--layers", "0,2")
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "out"
    data = json.loads(next((out / "data").glob("exp10a_*.json")).read_text())
    assert {"model", "n_tokens", "baseline_ppl", "heads"} <= set(data)
    assert data["n_tokens"] == 128
    assert {h["layer"] for h in data["heads"]} == {0, 2} and len(data["heads"]) == 8
    for h in data["heads"]:
        assert h["ablation"] == "zero"
        assert abs(h["delta_ppl"] - (h["ppl"] - data["baseline_ppl"]) / data["baseline_ppl"]) < 1e-12
    before = {p: p.read_bytes() for p in (out / "data").glob("*.json")}
    bad = tiny_run("--parts", "a", "--tokens", "0")
    assert bad.returncode == 2
    assert before == {p: p.read_bytes() for p in (out / "data").glob("*.json")}
    assert (out / "reports" / "exp10_results.md").is_file()


def test_pytest_device_cuda_is_a_usage_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = subprocess.run([sys.executable, "-m", "pytest", "-m", "exp10", "--model", "smollm2-135m", "--device",
                          "cuda", "-p", "no:cacheprovider", str(ROOT / "tests" / "claims")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 4
    assert "no CUDA device" in res.stderr + res.stdout


def test_pytest_unknown_model_is_a_usage_error():
    res = subprocess.run([sys.executable, "-m", "pytest", "--model", "nonsense-model", "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "claims")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 4
    assert "unknown model 'nonsense-model'" in res.stderr + res.stdout


def test_pytest_gpt2_offline_skips_with_the_reason(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    res = subprocess.run([sys.executable, "-m", "pytest", "-m", "exp10", "--model", "gpt2", "-rs", "--no-report",
                          "-p", "no:cacheprovider", str(ROOT / "tests" / "claims")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    assert "error" not in res.stdout.splitlines()[-1]
    assert "not in the local Hugging Face cache and the hub cannot be reached" in res.stdout


def test_full_run_writes_a_coherent_report(tiny_run, tmp_path):
    res = tiny_run("--budget", "smoke", "--tokens", "256", "--ctx", "64")
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "out"
    report = (out / "reports" / "exp10_results.md").read_text()
    record = json.loads(next((out / "data").glob("exp10_*.json")).read_text())
    ev, claims = record["evidence"], record["claims"]
    from semphase import registry

    assert [c["test"] for c in claims] == registry.get("exp10").claims.order
    for c in claims:
        assert f"`{c['test']}`" in report
    assert "budget | smoke" in report and ev["budget"] == "smoke"
    prov = ev["provenance"]
    for field in ("packages", "git_commit", "seed", "wall_seconds", "model", "data"):
        assert field in prov
    assert len(prov["model"]["weights_sha256"]) == 64 and prov["data"]["tokens_sha256"]
    assert prov["model"]["tf32_matmul"] is False
    cost = ev["cost"]  # what the measurement cost: units computed in this (fresh) run, with their seconds
    assert cost["units_computed"] > 0 and cost["units_computed_seconds"] > 0 and cost["units_read_untimed"] == 0
    assert "## What the measurements cost" in (out / "reports" / "README.md").read_text()
    figures = {p.name.split("_")[0] for p in (out / "figures").glob("*.png")}
    assert {"exp10b", "exp10c", "exp10d", "exp10e", "exp10f", "exp10g"} <= figures
    for name in ("zero_all", "zero_all_heldout", "mean_l0p", "mean_l0p_heldout", "zero_l0p", "zero_l0p_heldout"):
        curve = ev["curves"][name]
        assert curve["steps"][0] == 0 and curve["ratio"][0] == pytest.approx(1.0)
        assert curve["steps"] == sorted(curve["steps"])
    # held-out curves are evaluated on the other half of the chunks
    assert ev["curves"]["zero_all_heldout"]["tokens"] == "eval"
    assert ev["heldout"]["rank"]["tokens_sha256"] != ev["heldout"]["eval"]["tokens_sha256"]


# -- issue 27: refuse up front, say what is cached, never promise a cache that is not there ---------

def test_missing_split_is_refused_before_measuring(tiny_llama, tmp_path):
    """exp8 reads the test split: a data folder with only validation is refused in one sentence
    that names the experiment and the split, before any measurement (seconds, not minutes)."""
    import time

    data = tmp_path / "data" / "wikitext-2-raw"
    data.mkdir(parents=True)
    (data / "wiki.valid.raw").write_text(" \n = A = \n" + "word " * 500 + "\n")
    start = time.perf_counter()
    line = one_sentence_error(cli("run", "exp8", "--model", str(tiny_llama), "--data-dir", str(tmp_path / "data"),
                                  "--output-dir", str(tmp_path / "o")), "wiki.test.raw", "exp8")
    assert "test split" in line and time.perf_counter() - start < 60
    assert not (tmp_path / "o" / "data").exists() or not list((tmp_path / "o" / "data").iterdir())


def test_reuse_evidence_of_another_experiment_is_refused_before_measuring(tiny_llama, tiny_text, tmp_path):
    other = tmp_path / "exp7_m.json"
    other.write_text(json.dumps({"evidence": {"experiment": "exp7", "model": "m", "provenance": {}}}))
    one_sentence_error(cli("run", "exp10", "--model", str(tiny_llama), "--text-file", str(tiny_text),
                           "--reuse-evidence", str(other), "--output-dir", str(tmp_path / "o")),
                       "not exp10 evidence")
    assert not (tmp_path / "o" / "cache").exists() or not any((tmp_path / "o" / "cache").rglob("*.json"))


def test_interrupt_message_says_what_the_cache_holds(tmp_path):
    """The message after Ctrl-C names the experiment and says whether finished units are cached
    (and where) or a rerun starts it again: never a resume the cache cannot give."""
    from semphase.cache import EvidenceStore
    from semphase.cli import interrupt_message

    class _Session:
        store = EvidenceStore(tmp_path)

    s = _Session()
    before = dict(s.store.stats)
    assert "no unit of it had finished" in interrupt_message(s, ("exp7", "m", before), [])
    s.store.entry("k", {"a": 1}).put("u", 1)
    msg = interrupt_message(s, ("exp10", "m", before), [str(tmp_path / "data" / "exp1_m.json")])
    assert "1 finished unit(s) of it are cached" in msg and str(tmp_path) in msg and "exp1_m.json" in msg
    s.store = EvidenceStore(None)
    assert "keeps nothing" in interrupt_message(s, ("exp6", "m", dict(s.store.stats)), [])
    assert "before any measurement" in interrupt_message(s, None, [])


def test_strict_exits_3_when_a_claim_does_not_hold(tmp_path, monkeypatch, capsys):
    """`run` exits 0 when it measured and reported everything, whatever the verdicts; with
    --strict a claim test that does not hold makes it exit 3, naming the test."""
    from semphase import cli as C

    claims = [{"claim": "C1", "test": "test_c1_x", "kind": "H", "verdict": "does NOT replicate",
               "verdict_value": "does NOT replicate"}]
    monkeypatch.setattr(C.Session, "run", lambda self, exp_id, model=None: ({"model": model}, claims, []))
    args = ["run", "exp7", "--model", "smollm2-135m", "--output-dir", str(tmp_path / "o"), "--quiet"]
    assert C.main(args) == 0
    assert C.main(args + ["--strict"]) == 3
    assert "test_c1_x on smollm2-135m" in capsys.readouterr().err


def test_layers_with_parts_that_need_every_head_is_refused(tiny_run):
    one_sentence_error(tiny_run("--parts", "ai", "--layers", "0,1"), "only part a's single-head sweep", "--parts a")


def test_compare_names_the_verdicts_that_differ_and_exits_3(tmp_path, capsys):
    """`semphase compare A B` exits 0 on two tables with the same rows and verdicts, 3 naming the row whose verdict
    differs and the row only one side holds (0 with --common when the rows both hold agree), 2 in one sentence on a
    folder without a claims table."""
    from semphase.cli import main

    rows = [json.loads(l) for l in (ROOT / "reports" / "claims.jsonl").read_text().splitlines() if l.strip()]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    rows[0]["deciding_value"] = float("nan")  # NaN on both sides is no move
    a.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["compare", str(a), str(a)]) == 0
    out = capsys.readouterr().out
    assert "0 differ; 0 only in A, 0 only in B" in out and "every deciding value equal" in out
    flip = next(i for i, r in enumerate(rows) if r["verdict"] == "replicates")
    changed = [dict(r) for r in rows]
    changed[flip]["verdict"] = "does NOT replicate"
    dropped = changed.pop()
    moved = next(r for r in changed if isinstance(r["deciding_value"], float) and r["deciding_value"] == r["deciding_value"]
                 and r["deciding_value"] != 0 and r is not changed[flip])
    moved["deciding_value"] *= 1.5
    b.write_text("".join(json.dumps(r) + "\n" for r in changed))
    assert main(["compare", str(a), str(b)]) == 3
    out = capsys.readouterr().out
    assert f"verdict differs: {rows[flip]['experiment']} {rows[flip]['model']} {rows[flip]['test']}" in out
    assert "A replicates" in out and "B does NOT replicate" in out
    assert f"only in A: {dropped['experiment']} {dropped['model']} {dropped['test']}" in out
    assert f"the most, {moved['experiment']} {moved['model']} {moved['test']}" in out
    b.write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))  # a run of fewer tests, the same verdicts
    assert main(["compare", str(b), str(a)]) == 3
    assert main(["compare", "--common", str(b), str(a)]) == 0
    one_sentence_error(cli("compare", str(a), str(tmp_path)), "holds no claims table")
