"""Past one machine: a run dealt to submitit array tasks (its local executor, the same requeue path as SLURM's)
writes the data a single-machine run writes, and no unit is computed twice, even when a task is interrupted
and requeued."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from semphase import cli, cluster
from semphase.cluster import Shard, measured, parse_time

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]
RUN = ("run", "exp10", "--parts", "a", "--tokens", "256", "--ctx", "64", "--quiet")


def data_files(out: Path) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "data").glob("*.json"))}


def main_file(files: dict) -> dict:
    return next(v for k, v in files.items() if k.startswith("exp10_"))


def units(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.json")]


@pytest.fixture(scope="module")
def plain(tiny_llama, tiny_text, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    res = subprocess.run([sys.executable, "-m", "semphase", *RUN, "--model", str(tiny_llama), "--text-file",
                          str(tiny_text), "--output-dir", str(out)], capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def launch(tiny_llama, tiny_text, out, *extra, hook=None):
    cluster._LAUNCH_HOOK = hook
    try:
        return cli.main([*RUN, "--model", str(tiny_llama), "--text-file", str(tiny_text), "--output-dir", str(out),
                         "--executor", "local", "--time", "10", *extra])
    finally:
        cluster._LAUNCH_HOOK = None


def test_two_shards_write_the_data_of_one_unsharded_run(plain, tiny_llama, tiny_text, tmp_path, monkeypatch):
    """Two local array tasks share the sweep's units (each computes some) and, with the final job, write data files
    equal to one unsharded run's, field by field (the process's own timings and provenance aside); the units
    computed over both tasks are the units."""
    monkeypatch.setenv(cluster.PAUSE_ENV, "0.2")  # units slow enough that both tasks are at work together
    out = tmp_path / "sharded"
    assert launch(tiny_llama, tiny_text, out, "--shards", "2") == 0
    mine, theirs = data_files(out), data_files(plain)
    assert set(mine) == set(theirs) and mine
    for name in theirs:
        assert measured(mine[name]) == measured(theirs[name]), name
    ev = main_file(mine)["evidence"]
    record = ev["provenance"]["cluster"]
    assert record["executor"] == "local" and record["shards"] == 2 and len(record["tasks"]) == 2
    n_units = len(units(out / "cache"))
    assert n_units == main_file(theirs)["evidence"]["cost"]["units_computed"]
    assert record["units_computed_by_tasks"] == n_units
    assert all(t["attempts"][0]["units_computed"] > 0 for t in record["tasks"]), record["tasks"]
    assert ev["cost"]["units_computed"] == 0  # the final job computed nothing: it read every unit back


def test_an_interrupted_task_is_requeued_and_resumes_from_the_cache(plain, tiny_llama, tiny_text, tmp_path,
                                                                    monkeypatch):
    """A task interrupted by submitit's preemption signal is requeued, resumes from the cache, and the units
    computed over its two attempts are the units: none twice."""
    monkeypatch.setenv(cluster.PAUSE_ENV, "0.1")
    out = tmp_path / "interrupted"
    sent = {}

    def interrupt_after_some_units(jobs, run_dir, cache):
        def watch():
            deadline = time.time() + 300
            while time.time() < deadline and len(units(cache)) < 5:
                time.sleep(0.05)
            sent["units"] = len(units(cache))
            pid = json.loads((run_dir / "task-0.json").read_text())["attempts"][0]["pid"]
            # what SLURM sends a task it preempts (submitit's signal, USR2): submitit's handler checkpoints the
            # task and requeues it
            os.kill(pid, signal.SIGUSR2)
        threading.Thread(target=watch, daemon=True).start()

    assert launch(tiny_llama, tiny_text, out, "--shards", "1", hook=interrupt_after_some_units) == 0
    mine, theirs = data_files(out), data_files(plain)
    for name in theirs:
        assert measured(mine[name]) == measured(theirs[name]), name
    task = main_file(mine)["evidence"]["provenance"]["cluster"]["tasks"][0]
    first, *later = task["attempts"]
    assert first["status"].startswith("requeued") and later and later[-1]["status"] == "finished", task
    assert first["units_computed"] >= 5 > 0, (sent, task)
    total = sum(a["units_computed"] for a in task["attempts"])
    assert total == len(units(out / "cache")) == main_file(theirs)["evidence"]["cost"]["units_computed"]


@pytest.mark.parametrize("n, count", [(1, 1), (7, 2), (10, 3), (2, 5)])
def test_shares_cover_every_unit_once(n, count):
    """Each task's order visits every unit exactly once, its own contiguous share first; the shares partition
    the units."""
    shares = []
    for i in range(count):
        order = Shard(i, count).order(n)
        assert sorted(order) == list(range(n))
        lo, hi = i * n // count, (i + 1) * n // count
        assert order[:hi - lo] == list(range(lo, hi))
        shares += order[:hi - lo]
    assert sorted(shares) == list(range(n))


@pytest.mark.parametrize("text, minutes", [("90", 90), ("4:00:00", 240), ("1-00:00:00", 1440), ("2-6", 3240),
                                           ("30:30", 31), ("0:1:0", 1)])
def test_slurm_time_limits(text, minutes):
    assert parse_time(text) == minutes


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "semphase", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def one_error(res, *needles):
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [l for l in res.stderr.splitlines() if l.startswith("semphase: error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


def fake_srun(tmp_path, monkeypatch):
    """A stand-in srun on PATH: submitit then takes this machine for a SLURM login node (nothing is submitted)."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")


def test_a_slurm_run_whose_cache_is_node_local_is_refused(tmp_path, monkeypatch):
    """A SLURM run refuses a cache in a node's own temporary folder, before anything is submitted."""
    fake_srun(tmp_path, monkeypatch)
    res = run_cli("run", "exp10", "--model", "smollm2-135m", "--executor", "slurm", "--cache-dir", "/tmp/semphase-x",
                  "--output-dir", str(tmp_path / "out"))
    one_error(res, "--cache-dir", "every node sees")


@pytest.mark.parametrize("args, needle", [
    (("--shards", "2"), "--executor"),
    (("--executor", "local", "--shards", "0"), "--shards 0"),
    (("--executor", "local", "--no-cache"), "--no-cache"),
    (("--executor", "local", "--time", "soon"), "--time 'soon'"),
    (("--executor", "slurm", "--slurm", "account"), "KEY=VALUE"),
])
def test_bad_cluster_options(args, needle, tmp_path):
    one_error(run_cli("run", "exp10", "--model", "smollm2-135m", "--output-dir", str(tmp_path / "o"), *args), needle)


def test_slurm_without_slurm_is_refused(tmp_path, monkeypatch):
    """--executor slurm on a machine without SLURM says so in one sentence and points to the local executor."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if __import__("shutil").which("srun"):
        pytest.skip("this machine has srun")
    one_error(run_cli("run", "exp10", "--model", "smollm2-135m", "--executor", "slurm", "--output-dir",
                      str(tmp_path / "out")), "--executor slurm", "--executor local")


def test_the_sbatch_script_says_what_the_options_ask(tmp_path, monkeypatch):
    """The array's sbatch script (built by submitit from our options, with a stand-in srun) carries the partition,
    the GPUs, the time limit, the array's parallelism, the preemption signal and any other sbatch option."""
    fake_srun(tmp_path, monkeypatch)
    args = cli.build_parser().parse_args(["run", "exp10", "--executor", "slurm", "--shards", "16", "--partition", "gpu",
                                          "--gpus-per-task", "1", "--cpus-per-task", "8", "--mem-gb", "64", "--time",
                                          "2:00:00", "--array-parallelism", "8", "--slurm", "account=interp"])
    executor = cluster.make_executor("slurm", tmp_path / "logs",
                                     cluster.executor_parameters(args, 16, parse_time(args.time), {"account": "interp"},
                                                                 "semphase-exp10"))
    from submitit.slurm.slurm import _make_sbatch_string

    text = _make_sbatch_string(command="python -m submitit.core._submit", folder=str(tmp_path / "logs"),
                               map_count=16, **executor._executor.parameters)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=120",
                 "#SBATCH --array=0-15%8", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --account=interp",
                 "#SBATCH --signal=USR2@"):
        assert line in text, text
