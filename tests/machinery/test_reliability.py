"""Reliability: a killed sweep resumes without recomputing finished units and ends equal to an
uninterrupted run; two workers that need the same evidence compute it once; a non-finite loss
is named with its step."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]

SWEEP_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from semphase import cache, sweeps
    from semphase.ablation import AblationEngine
    from semphase.data import load_eval_tokens
    from semphase.models import load_model

    model, text, cache_dir, out, delay = sys.argv[1:6]
    if float(delay) > 0:  # slow each unit down, so that the test can kill the sweep partway
        put = cache.CacheEntry.put
        def slow_put(self, unit, data, seconds=None):
            put(self, unit, data, seconds)
            time.sleep(float(delay))
        cache.CacheEntry.put = slow_put
    lm = load_model(model, "cpu")
    ts = load_eval_tokens(lm.tokenizer, 192, 64, text_file=text)
    store = cache.EvidenceStore(cache_dir)
    arr = sweeps.single_sweep(AblationEngine(lm), ts, "zero", store)
    json.dump({"sweep": arr.tolist(), "stats": store.stats}, open(out, "w"))
""")


def _units(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("single-zero/*/L*_c*.json"))


def test_killed_sweep_resumes_and_matches_an_uninterrupted_run(tmp_path, tiny_llama, tiny_text):
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP_SCRIPT)
    run = lambda cache_dir, out, delay: [sys.executable, str(script), str(tiny_llama), str(tiny_text),
                                         str(cache_dir), str(out), str(delay)]
    # uninterrupted reference
    subprocess.run(run(tmp_path / "ref-cache", tmp_path / "ref.json", 0), check=True, timeout=300)
    reference = json.loads((tmp_path / "ref.json").read_text())
    total = reference["stats"]["computed"]  # baseline units + sweep units
    n_sweep_units = len(_units(tmp_path / "ref-cache"))
    assert n_sweep_units == 3 * 3  # 3 layers x 3 chunks

    cache_dir = tmp_path / "cache"
    proc = subprocess.Popen(run(cache_dir, tmp_path / "killed.json", 0.4))
    deadline = time.time() + 240
    while len(_units(cache_dir)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.read_bytes() for p in _units(cache_dir)}
    assert 3 <= len(done_before) < n_sweep_units, "the sweep was not killed partway"
    assert not (tmp_path / "killed.json").exists()

    subprocess.run(run(cache_dir, tmp_path / "resumed.json", 0), check=True, timeout=300)
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    # finished units were read back, not recomputed (and not rewritten)
    assert resumed["stats"]["corrupt"] == 0
    assert resumed["stats"]["hits"] >= len(done_before)
    assert resumed["stats"]["computed"] <= total - len(done_before)
    for name, raw in done_before.items():
        assert (next(cache_dir.glob(f"single-zero/*/{name}"))).read_bytes() == raw
    assert resumed["sweep"] == reference["sweep"]


def test_two_workers_compute_a_shared_measurement_once(tmp_path, tiny_llama, tiny_text):
    tests = tmp_path / "test_shared.py"
    tests.write_text(textwrap.dedent("""
        import json, os, pytest

        EXPERIMENT = "exp10"

        @pytest.mark.parametrize("i", range(4))
        def test_needs_evidence(evidence, i, semphase_settings):
            out = os.path.join(semphase_settings.output_dir, f"w{i}.json")
            json.dump({"worker": os.environ.get("PYTEST_XDIST_WORKER"),
                       "cache": evidence["provenance"]["cache"]}, open(out, "w"))
    """))
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "pytest", str(tests), "-p", "semphase.pytest_plugin", "-p", "no:cacheprovider", "-n", "2",
                          "--dist", "load", "--model", str(tiny_llama), "--text-file", str(tiny_text),
                          "--budget", "smoke", "--tokens", "128", "--ctx", "64", "--output-dir", str(out),
                          "-q", "-c", os.devnull, "--rootdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    records = [json.loads((out / f"w{i}.json").read_text()) for i in range(4)]
    by_worker = {r["worker"]: r["cache"] for r in records}
    assert len(by_worker) == 2, f"the tests did not spread over two workers: {by_worker}"
    # every unit is computed exactly once over both workers (whichever worker gets an entry's lock
    # first computes it, the other reads it): the computations add up to the units stored
    units = [p for p in (out / "cache").rglob("*.json")]
    assert units and sum(c["computed"] for c in by_worker.values()) == len(units), (by_worker, len(units))
    assert all(c["corrupt"] == 0 for c in by_worker.values())


def test_non_finite_loss_names_its_step(tiny_llama, tiny_text):
    from semphase.ablation import AblationEngine
    from semphase.data import load_eval_tokens
    from semphase.errors import NonFiniteLoss
    from semphase.models import load_model

    lm = load_model(str(tiny_llama), "cpu")
    ts = load_eval_tokens(lm.tokenizer, 64, 64, text_file=str(tiny_text))
    engine = AblationEngine(lm)
    cap = engine.capture(ts.chunks[0])
    means = torch.zeros(lm.n_layers, lm.n_heads, lm.d_head)
    means[1, 2] = float("inf")
    with pytest.raises(NonFiniteLoss, match="mean-ablation of L1H2"):
        engine.layer_single_nll(cap, 1, "mean", means)


def test_one_models_tests_share_one_worker(tmp_path):
    """--dist loadgroup (set in pytest.ini) keeps every test of a model on one xdist worker."""
    tests = tmp_path / "test_group.py"
    tests.write_text(textwrap.dedent("""
        import os, pytest

        @pytest.mark.parametrize("i", range(6))
        def test_where(model_name, i, tmp_path_factory):
            out = os.path.join(os.environ["GROUP_OUT"], f"{model_name.replace('/', '_')}-{i}")
            open(out, "w").write(os.environ.get("PYTEST_XDIST_WORKER", "none"))
    """))
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run([sys.executable, "-m", "pytest", str(tests), "-p", "semphase.pytest_plugin", "-p", "no:cacheprovider", "-n", "2",
                          "--dist", "loadgroup", "--model", "alpha/one", "--model", "beta/two", "-q",
                          "-c", os.devnull, "--rootdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ, GROUP_OUT=str(out)))
    assert res.returncode == 0, res.stdout[-2000:]
    for model in ("alpha_one", "beta_two"):
        workers = {p.read_text() for p in out.glob(f"{model}-*")}
        assert len(workers) == 1, f"{model} ran on {workers}"


def test_one_model_on_two_workers_is_split_by_experiment(tmp_path):
    """With fewer models than workers, one model's experiments go to different workers (each
    experiment's tests stay together); with as many models as workers, one model per worker."""
    for name, exp in (("test_ea.py", "expA"), ("test_eb.py", "expB")):
        (tmp_path / name).write_text(textwrap.dedent(f"""
            import os, pytest
            EXPERIMENT = "{exp}"

            @pytest.mark.parametrize("i", range(4))
            def test_where(model_name, i):
                import time; time.sleep(0.2)
                out = os.path.join(os.environ["GROUP_OUT"], f"{{EXPERIMENT}}-{{i}}")
                open(out, "w").write(os.environ.get("PYTEST_XDIST_WORKER", "none"))
        """))
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-p", "semphase.pytest_plugin", "-p", "no:cacheprovider", "-n", "2",
                          "--dist", "loadgroup", "--model", "alpha/one", "-q", "-c", os.devnull,
                          "--rootdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=dict(os.environ, GROUP_OUT=str(out)))
    assert res.returncode == 0, res.stdout[-2000:]
    by_exp = {e: {p.read_text() for p in out.glob(f"{e}-*")} for e in ("expA", "expB")}
    assert all(len(w) == 1 for w in by_exp.values()), by_exp
    assert by_exp["expA"] != by_exp["expB"], f"both experiments ran on {by_exp}"


def test_xdist_workers_share_the_cpu_cores(monkeypatch):
    """n workers get cpu_count // n torch threads each (oversubscription made -n 2 slower)."""
    import torch

    from semphase.pytest_plugin import _share_cpu_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("os.cpu_count", lambda: 8)
        _share_cpu_threads(4)
        assert torch.get_num_threads() == 2
        _share_cpu_threads(16)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
