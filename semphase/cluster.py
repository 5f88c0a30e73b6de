"""Past one machine: one run's units dealt over SLURM array tasks, through submitit.

``python -m semphase run EXP ... --executor slurm --shards N`` submits a job array of N tasks with
submitit (``map_array``; ``--array-parallelism`` is SLURM's ``%N``). Every task runs the same
experiments as a single-machine run, into the one evidence cache on a filesystem every node sees,
with a :class:`Shard` on its store: each sweep's units (:func:`semphase.sweeps.chunk_units`, the
baselines and head means) are dealt so that task i starts on the i-th contiguous share and then
takes any unit that no other task holds. A unit is computed by whoever holds its lock (a file lock
in the cache, which goes with a process that dies), so no unit is computed twice, and a task that
waits for another's unit reads it once it is written. Measurements that keep an entry's lock
(semantic residuals, exp8's angles, exp10's generation) are computed by the first task that reaches
them while the others wait and read them back. When every task has finished, one final job runs the
run as a single machine would: it finds every unit cached and writes the data files and reports,
with each task's count of units computed in each data file's provenance (``provenance.cluster``).

A task that is preempted or reaches its time limit is requeued by submitit (the task is
``Checkpointable``) and resumes from the cache; the attempt is recorded as requeued. ``--executor
local`` runs the same tasks as subprocesses of this machine, with the same requeue path.

No scheduler, queue or RPC of ours: SLURM schedules (through submitit), the cache coordinates.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .cache import atomic_write_text, held_if_free
from .errors import SemphaseError

try:  # optional: ``pip install 'semphase[cluster]'``
    import submitit
    from submitit.helpers import Checkpointable
except ImportError:  # pragma: no cover - exercised where submitit is absent
    submitit = None
    Checkpointable = object

# What a process says about its own work, not about the model: a cluster run's data files (written by a final job
# that reads every unit back) differ from a single-machine run's in these fields only, as a resumed run's do.
PROCESS_FIELDS = ("provenance", "cost", "timing", "wall_seconds", "forward_seconds_per_chunk", "engine_forwards")


def measured(obj):
    """A data file's content without what a process says about its own work (:data:`PROCESS_FIELDS`): what two
    runs of the same measurement (sharded or not, concurrent or alone) must agree on."""
    if isinstance(obj, dict):
        return {k: measured(v) for k, v in obj.items() if k not in PROCESS_FIELDS}
    if isinstance(obj, list):
        return [measured(v) for v in obj]
    return obj

# For tests of the requeue path only: seconds a task sleeps after each unit it computes, so that a test can
# interrupt it in the middle of its share.
PAUSE_ENV = "SEMPHASE_CLUSTER_TEST_PAUSE_S"


@dataclass(frozen=True)
class Shard:
    """Task ``index`` of ``count``: its preferred share of each list of units."""

    index: int
    count: int

    def order(self, n: int) -> list[int]:
        """This task's contiguous share first, then every other unit from the end backwards (so that helpers
        meet the owner of a share in its middle rather than on its first unit)."""
        lo, hi = self.index * n // self.count, (self.index + 1) * n // self.count
        return list(range(lo, hi)) + [k for k in range(n - 1, -1, -1) if not lo <= k < hi]

    def run_units(self, entry, names: Sequence[str], compute: Callable[[int], Any], bar=None) -> list:
        """Every unit ``names[k]`` of ``entry``: read back when cached, else computed as ``compute(k)`` by this
        task when it can take the unit's lock, else waited for (the holder writes it; a holder that died
        leaves the lock free and the unit missing, and this task computes it). Returns the units' data in
        the order of ``names``."""
        out: list = [None] * len(names)
        pending = []
        pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
        from .cores import rebalance

        for k in self.order(len(names)):
            rebalance()
            data = entry.get(names[k])
            if data is None:
                with held_if_free(entry.unit_lock(names[k])) as mine:
                    if not mine:  # another task computes it now
                        pending.append(k)
                        continue
                    data = self._compute(entry, names[k], k, compute, pause)
            out[k] = data
            if bar is not None:
                bar.update()
        for k in pending:
            with entry.unit_lock(names[k]):
                out[k] = self._compute(entry, names[k], k, compute, pause)
            if bar is not None:
                bar.update()
        return out

    @staticmethod
    def _compute(entry, name: str, k: int, compute, pause: float):
        data = entry.get(name)  # written meanwhile by the task that held it
        if data is None:
            start = time.perf_counter()
            data = compute(k)
            entry.put(name, data, seconds=time.perf_counter() - start)
            if pause:
                time.sleep(pause)
        return data

    def put_if_free(self, entry, name: str, make: Callable[[], Any]) -> None:
        """Store a by-product unit (a chunk's baseline, made by its capture) unless it is cached or another
        task is storing it."""
        if entry.get(name) is not None:
            return
        with held_if_free(entry.unit_lock(name)) as mine:
            if mine and entry.get(name) is None:
                entry.put(name, make())


# -- what a task records ------------------------------------------------------------------------------------

def _record_path(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / f"task-{index}.json"


def read_records(run_dir: Path) -> list[dict]:
    """Every task's record of a cluster run (one per task, each with its attempts), by task index."""
    out = []
    for path in sorted(Path(run_dir).glob("task-*.json"), key=lambda p: int(p.stem.split("-")[1])):
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def provenance_for(cluster: dict, exp_id: str, model: str) -> dict:
    """What ``provenance.cluster`` of one experiment's data file says: the executor, the shards, and per task
    and attempt the units it computed for this experiment on this model (the final job's own count is the data
    file's ``cost.units_computed``)."""
    key = f"{exp_id} on {model}"
    tasks = []
    for rec in cluster.get("tasks", []):
        tasks.append({"task": rec["task"], "attempts": [
            {"attempt": a["attempt"], "status": a["status"], "host": a["host"],
             "units_computed": a.get("by_experiment", {}).get(key, {}).get("computed", 0),
             "units_read": a.get("by_experiment", {}).get(key, {}).get("read", 0)} for a in rec["attempts"]]})
    total = sum(a["units_computed"] for t in tasks for a in t["attempts"])
    return {"executor": cluster["executor"], "shards": cluster["shards"], "run": cluster["run"],
            "units_computed_by_tasks": total, "tasks": tasks}


class _Attempt:
    """One attempt of one task, in the task's record: written as running when it starts (with its host and
    process id), then with its counts when it ends or is requeued."""

    def __init__(self, run_dir: Path, index: int, store):
        self.path = _record_path(run_dir, index)
        self.index = index
        self.store = store
        self.by_experiment: dict[str, dict] = {}
        self.current: tuple[str, dict] | None = None
        record = self._read()
        self.number = len(record["attempts"]) + 1
        self.entry = {"attempt": self.number, "status": "running", "host": socket.gethostname(), "pid": os.getpid(),
                      "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "started": _iso(time.time())}
        record["attempts"].append(self.entry)
        atomic_write_text(self.path, json.dumps(record, indent=1))

    def _read(self) -> dict:
        if self.path.exists():
            return json.loads(self.path.read_text(encoding="utf-8"))
        return {"task": self.index, "attempts": []}

    def begin(self, key: str) -> None:
        self.current = (key, dict(self.store.stats))

    def end(self) -> None:
        if self.current is None:
            return
        key, before = self.current
        now = self.store.stats
        done = self.by_experiment.setdefault(key, {"computed": 0, "read": 0})
        done["computed"] += now["computed"] - before["computed"]
        done["read"] += now["hits"] - before["hits"]
        self.current = None

    def write(self, status: str) -> None:
        self.end()
        self.entry.update(status=status, ended=_iso(time.time()), units_computed=self.store.stats["computed"],
                          units_read=self.store.stats["hits"],
                          computed_seconds=round(self.store.stats["computed_seconds"], 3),
                          by_experiment=self.by_experiment)
        record = self._read()
        record["attempts"][self.number - 1] = self.entry
        atomic_write_text(self.path, json.dumps(record, indent=1))


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_ACTIVE: dict[int, _Attempt] = {}  # this process's attempt, for checkpoint() (called from submitit's signal handler)


class ShardTask(Checkpointable):
    """One array task: the run's measurements with this task's :class:`Shard` on the shared cache; no data
    file or report (the final job writes them). Requeued by submitit on preemption or time limit."""

    def __init__(self, args: argparse.Namespace, cwd: str, count: int, run_dir: str):
        self.args, self.cwd, self.count, self.run_dir = args, cwd, count, run_dir

    def __call__(self, index: int) -> dict:
        from .cli import prepare_run

        os.chdir(self.cwd)
        args = copy.copy(self.args)
        args.output_dir = str(Path(self.run_dir) / f"task-{index}")
        session, exps = prepare_run(args)
        session.store.shard = Shard(index, self.count)
        from . import cores

        cores.join()  # tasks of a local executor share this machine's cores
        attempt = _ACTIVE[index] = _Attempt(Path(self.run_dir), index, session.store)
        for exp in exps:
            for model in session.settings.models:
                lm = session.model(model)
                attempt.begin(f"{exp.id} on {lm.name}")
                ev = session.evidence(exp.id, lm)
                session.evaluate_all(exp.id, ev, lm)  # what its claims need of other experiments is measured too
                attempt.end()
        attempt.write("finished")
        return {"task": index, "units_computed": session.store.stats["computed"]}

    def checkpoint(self, index: int):
        attempt = _ACTIVE.get(index)
        if attempt is not None:
            attempt.write("requeued (preempted or timed out)")
        return super().checkpoint(index)


class FinalTask(Checkpointable):
    """The run as one machine makes it, after the array: every unit is read back from the cache; it writes the
    data files (with the tasks' records in their provenance), figures, reports and the summary."""

    def __init__(self, args: argparse.Namespace, cwd: str, run_dir: str, meta: dict):
        self.args, self.cwd, self.run_dir, self.meta = args, cwd, run_dir, meta

    def __call__(self) -> dict:
        from .cli import execute_run, prepare_run

        os.chdir(self.cwd)
        args = copy.copy(self.args)
        session, exps = prepare_run(args)
        session.settings = replace(session.settings, cluster=dict(self.meta, tasks=read_records(Path(self.run_dir))))
        rc = execute_run(session, exps, args)
        return {"rc": rc, "units_computed": session.store.stats["computed"]}


# -- the launcher -------------------------------------------------------------------------------------------

def parse_time(text: str) -> int:
    """A SLURM time limit (``--time``: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in whole minutes."""
    t = str(text).strip()
    try:
        days = 0
        if "-" in t:
            d, t = t.split("-", 1)
            days = int(d)
            parts = [int(x) for x in t.split(":")]
            h, m, s = (parts + [0, 0])[:3]
        else:
            parts = [int(x) for x in t.split(":")]
            if len(parts) == 1:
                h, m, s = 0, parts[0], 0
            elif len(parts) == 2:
                h, m, s = 0, parts[0], parts[1]
            elif len(parts) == 3:
                h, m, s = parts
            else:
                raise ValueError
        if min(days, h, m, s) < 0:
            raise ValueError
    except ValueError:
        raise SemphaseError(f"--time {text!r}: give a SLURM time limit, e.g. 240, 4:00:00 or 1-00:00:00.") from None
    minutes = days * 1440 + h * 60 + m + (1 if s else 0)
    if minutes < 1:
        raise SemphaseError(f"--time {text!r}: the limit must be at least one minute.")
    return minutes


def node_local(path: Path) -> str | None:
    """Why ``path`` is a node's own folder (a temporary folder every node has its own of), or None."""
    path = Path(path).resolve()
    roots = {"/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()}
    for var in ("TMPDIR", "SLURM_TMPDIR", "LOCAL_SCRATCH"):
        if os.environ.get(var):
            roots.add(os.environ[var])
    for root in sorted(roots):
        r = Path(root).resolve()
        if path == r or r in path.parents:
            return f"it is under {r}, a node's own temporary folder"
    return None


def _filesystem(path: Path) -> int:
    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return os.stat(path).st_dev


def executor_parameters(args, shards: int, minutes: int, extra: dict, name: str) -> dict:
    """submitit's parameters for the array: sbatch's --time, --partition, --gres/--gpus-per-node, -c, --mem, the
    array's %N, and any other sbatch option given as --slurm KEY=VALUE."""
    params: dict[str, Any] = {"timeout_min": minutes, "name": name}
    if args.executor == "slurm":
        params.update(tasks_per_node=1, nodes=1, gpus_per_node=args.gpus_per_task,
                      slurm_array_parallelism=args.array_parallelism or shards)
        if args.partition:
            params["slurm_partition"] = args.partition
        if args.cpus_per_task:
            params["cpus_per_task"] = args.cpus_per_task
        if args.mem_gb:
            params["mem_gb"] = args.mem_gb
        if extra:
            params["slurm_additional_parameters"] = extra
    return params


def make_executor(kind: str, log_dir: Path, params: dict):
    """submitit's executor of ``kind`` (slurm or local) writing to ``log_dir``, with ``params``."""
    try:
        executor = submitit.AutoExecutor(folder=str(log_dir), cluster=kind)
    except RuntimeError as exc:  # submitit: no srun on this machine
        raise SemphaseError(f"--executor {kind}: this machine is not a SLURM login node ({exc}); run the command "
                            "where sbatch works, or use --executor local to run the tasks here.") from None
    try:
        executor.update_parameters(**params)
    except ValueError as exc:
        raise SemphaseError(f"--slurm: submitit refuses an option ({str(exc).splitlines()[0]}).") from None
    return executor


def launch(args) -> int:
    """``run ... --executor slurm|local --shards N``: submit the array, wait for it, then the final job; print
    what it wrote and the claims summary."""
    from .cli import prepare_run

    if not args.executor:
        raise SemphaseError("--shards N deals a run's units to N cluster tasks; add --executor slurm (or local, "
                            "to run them as processes of this machine).")
    if submitit is None:
        raise SemphaseError("--executor needs submitit, which is not installed: pip install 'semphase[cluster]'.")
    shards = 2 if args.shards is None else args.shards
    if shards < 1:
        raise SemphaseError(f"--shards {shards}: give one task or more.")
    if args.no_cache:
        raise SemphaseError("--no-cache: a cluster run's tasks meet in the evidence cache, on a filesystem every "
                            "node sees; drop --no-cache.")
    minutes = parse_time(args.time)
    if args.array_parallelism is not None and args.array_parallelism < 1:
        raise SemphaseError(f"--array-parallelism {args.array_parallelism}: give 1 or more.")
    extra = {}
    for item in args.slurm or []:
        if "=" not in item:
            raise SemphaseError(f"--slurm {item!r}: give sbatch options as KEY=VALUE, e.g. --slurm account=myproj.")
        key, value = item.split("=", 1)
        extra[key.strip().lstrip("-").replace("-", "_")] = value
    session, exps = prepare_run(args, check_devices=False)
    cache = session.store.root.resolve()
    log_dir = Path(args.log_dir or session.layout.data.parent / "submitit").expanduser().resolve()
    if _filesystem(cache) != _filesystem(log_dir):
        print(f"semphase: the cache ({cache}) and submitit's logs ({log_dir}) are on different filesystems; both "
              "must be visible from every node that runs a task.", file=sys.stderr)
    names = "-".join(e.id for e in exps) if len(exps) < 4 else "all"
    executor = make_executor(args.executor, log_dir, executor_parameters(args, shards, minutes, extra,
                                                                         f"semphase-{names}"))
    if args.executor == "slurm":
        for what, path, option in (("cache", cache, "--cache-dir" if args.cache_dir else "--output-dir (its cache)"),
                                   ("log folder", log_dir, "--log-dir" if args.log_dir else "its log folder")):
            why = node_local(path)
            if why:
                raise SemphaseError(f"{option} {path}: the {what} of a SLURM run must be on a filesystem every node "
                                    f"sees, and {why}; give a folder on the shared filesystem.")
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
    run_dir = log_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)

    cwd = os.getcwd()
    task_args = copy.copy(args)
    task_args.executor, task_args.shards, task_args.cache_dir = None, None, str(cache)
    meta = {"executor": args.executor, "shards": shards, "run": run_id}
    jobs = executor.map_array(ShardTask(task_args, cwd, shards, str(run_dir)), range(shards))
    print(f"semphase: submitted {shards} task(s) through submitit ({args.executor}): job {jobs[0].job_id.split('_')[0]}"
          f", logs in {log_dir}; each computes its share of the units into {cache}.", file=sys.stderr)
    if _LAUNCH_HOOK is not None:
        _LAUNCH_HOOK(jobs, run_dir, cache)
    try:
        for job in jobs:
            try:
                job.result()
            except Exception as exc:  # submitit raises the task's own error, with its traceback, as text
                last = [l for l in str(exc).strip().splitlines() if l.strip()]
                raise SemphaseError(f"cluster task {job.job_id} failed ({last[-1].strip() if last else exc}); its "
                                    f"log: {job.paths.stderr}.") from None
        records = read_records(run_dir)
        computed = sum(a["units_computed"] for r in records for a in r["attempts"])
        print(f"semphase: {shards} task(s) finished, {computed} unit(s) computed over all of them; the final job "
              "writes the data files and reports.", file=sys.stderr)
        executor.update_parameters(name=f"semphase-{names}-final")
        final = executor.submit(FinalTask(copy.copy(task_args), cwd, str(run_dir), meta))
        try:
            res = final.result()
        except Exception as exc:
            last = [l for l in str(exc).strip().splitlines() if l.strip()]
            raise SemphaseError(f"the final job {final.job_id} failed ({last[-1].strip() if last else exc}); its log: "
                                f"{final.paths.stderr}.") from None
    except KeyboardInterrupt:
        print(f"semphase: interrupted; the submitted tasks keep running (scancel them to stop: job "
              f"{jobs[0].job_id.split('_')[0]}); every unit they finish is cached in {cache}, and the same command "
              "resumes from it.", file=sys.stderr)
        return 130
    # the final job's table and list of files (submitit's own log lines left out)
    print("\n".join(l for l in (final.stdout() or "").splitlines() if not l.startswith("submitit ")))
    return int(res.get("rc", 0))


_LAUNCH_HOOK = None  # tests: called with (jobs, run_dir, cache) once the array is submitted
