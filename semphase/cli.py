"""Command line: ``python -m semphase run exp10 ...`` and ``python -m semphase bench ...``.

Errors caused by the input or the machine print one sentence (no traceback) and exit 2.
"""
from __future__ import annotations

import argparse
import json
import os
import logging
import sys
from pathlib import Path

from . import __version__, options, registry
from .claims import Verdict
from .errors import SemphaseError
from .session import Session, Settings, parse_layers


DEFAULT_MODEL = options.DEFAULT_MODEL


COMMON = ("--model", "--device", "--tokens", "--ctx", "--eval-tokens", "--data-dir", "--text-file", "--split",
          "--processing", "--dtype", "--revision", "--seed")


def _common(p: argparse.ArgumentParser, several_models: bool = False) -> None:
    """The options every measuring command shares, from the one option table (semphase.options)."""
    options.add_to_argparse(p, COMMON, several_models=several_models)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m semphase", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"semphase {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run experiments and write their data, figures and reports",
                         description="Run registered experiments, in the order given, each on every --model (what one "
                                     "measures, the next reuses through the session): " + "; ".join(
                             f"{e.id} ({', '.join(e.claim_ids)}): {e.title}" for e in registry.all_experiments()))
    run.add_argument("experiment", nargs="+", choices=["all", *registry.EXPERIMENTS],
                     help="one or more experiments: " + ", ".join(registry.EXPERIMENTS)
                          + "; all: every registered experiment, in the order their needs set")
    _common(run, several_models=True)
    options.add_to_argparse(run, ("--claims", "--budget", "--replace-layers", "--output-dir", "--cache-dir", "--no-cache",
                                  "--head-batch", "--stimuli"))
    run.add_argument("--strict", action="store_true",
                     help="exit 3 when a claim test does not hold (does NOT replicate / NOT reproduced / NOT sane / "
                          "fails); without it a run that measured and reported everything exits 0 whatever the verdicts")
    run.add_argument("--parts", default=None, help="experiment parts, e.g. a or abc (default all); exp10: " + ", ".join(
        f"{k} {v.split(' (')[0]}" for k, v in registry.get("exp10").parts.items()))
    run.add_argument("--layers", default=None, help="only these layers for the single-head sweep, e.g. 0,5,29")
    run.add_argument("--reuse-evidence", default=None, metavar="FILE",
                     help="exp10: an earlier run's data file (OUTPUT/data/exp10_MODEL.json); its part i (the per-head "
                          "replacement sweep) stands in for measuring it again when it was measured on the same "
                          "weights, tokens, budget, seed and device type (checked; a mismatch stops the run)")
    cl = run.add_argument_group("past one machine (submitit; pip install 'semphase[cluster]')",
                                "deal the run's units to a SLURM job array whose tasks meet in the cache; the cache "
                                "and the log folder must be on a filesystem every node sees")
    cl.add_argument("--executor", default=None, choices=["slurm", "local"],
                    help="slurm: a job array through submitit; local: the same tasks as processes of this machine")
    cl.add_argument("--shards", type=int, default=None, help="array tasks the units are dealt to (default 2)")
    cl.add_argument("--partition", default=None, help="SLURM partition (sbatch -p; default: the cluster's)")
    cl.add_argument("--gpus-per-task", type=int, default=1, help="GPUs per array task (default 1)")
    cl.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per array task (sbatch -c; default: the "
                    "cluster's)")
    cl.add_argument("--mem-gb", type=int, default=None, help="memory per array task in GB (sbatch --mem)")
    cl.add_argument("--time", default="4:00:00", help="time limit of each task, as sbatch -t (default 4:00:00); a task "
                    "that reaches it is requeued and resumes from the cache")
    cl.add_argument("--array-parallelism", type=int, default=None,
                    help="tasks running at once (sbatch --array=...%%N; default: every shard)")
    cl.add_argument("--log-dir", default=None, help="submitit's job folder (default OUTPUT/submitit)")
    cl.add_argument("--slurm", action="append", default=None, metavar="KEY=VALUE",
                    help="another sbatch option, e.g. --slurm account=myproj --slurm qos=high (repeatable)")

    bench = sub.add_parser("bench", help="timings that back the project's speed claims")
    bench.add_argument("what", nargs="?", default="all",
                       choices=["all", "ablation", "head-batch", "softmax", "joints", "cache", "workers", "memory",
                                "memory-child", "attention"],
                       metavar="{all,ablation,head-batch,softmax,joints,cache,workers,memory,attention}",
                       help="all (ablation, head-batch, softmax, joints, cache, workers), or one of them; memory and "
                            "attention are separate")
    _common(bench)
    bench.add_argument("--layers", default=None, help="layers to sweep (default all; memory: the last)")
    bench.add_argument("--head-batch", type=int, default=None, help="heads per batched forward (default: as run)")
    bench.add_argument("--bench-models", action="append", default=None,
                       help="workers: the models to test (repeat; default --model)")
    bench.add_argument("--token-counts", default=None, help="memory: token counts, default 2048,8192")
    bench.add_argument("--attn-tokens", type=int, default=1024, help="attention: sequence length of the operator timing")
    bench.add_argument("--prompt-tokens", type=int, default=64, help="attention: prompt length for generation")
    bench.add_argument("--new-tokens", type=int, default=128, help="attention: tokens generated per timing")
    bench.add_argument("--repeats", type=int, default=3, help="attention: timed repeats of each operator (median)")

    sub.add_parser("models", help="list the model registry")
    sub.add_parser("experiments", help="list the experiment registry")

    rep = sub.add_parser("report", help="rebuild every report and the claims summary from the data files")
    rep.add_argument("--output-dir", default=None, help="the folder a run wrote to (default: results/ and reports/ here)")
    rep.add_argument("--reevaluate", action="store_true",
                     help="apply the current claim rules to the stored evidence first (no measurement)")
    rep.add_argument("--figures", action="store_true",
                     help="draw every figure again from the stored evidence (PNG, vector PDF, caption)")

    cmp_ = sub.add_parser("compare", help="two runs' claim tables row by row: verdicts that differ, rows only one "
                                          "holds, how far the deciding values moved; exit 3 when they differ",
                          description="Each side is an output folder (its reports/claims.jsonl; 'results' is the "
                                      "repository's committed run) or a claims.jsonl file. Exit 0 when both tables "
                                      "hold the same rows with the same verdicts, 3 when not, 2 on bad input.")
    cmp_.add_argument("a", help="the first run: an output folder, 'results', or a claims.jsonl")
    cmp_.add_argument("b", help="the second run, likewise")
    cmp_.add_argument("--show", type=int, default=10, help="rows listed per kind of difference (default 10)")
    cmp_.add_argument("--common", action="store_true", help="judge only the rows both tables hold (a run of some "
                      "experiments against a whole one): rows only one side holds are counted, not a difference")

    cache = sub.add_parser("cache", help="what a run's cache holds: units and the compute time they cost, per "
                                         "measurement, model and device (a run resumed across sittings, in progress)")
    cache.add_argument("--output-dir", default=None, help="the folder a run wrote to (its cache is OUTPUT/cache; "
                                                          "default: results/ here)")
    cache.add_argument("--cache-dir", default=None, help="a cache folder given to run with --cache-dir")

    rnd = sub.add_parser("random-model", help="save a random-weight model of a GPT-2 or Pythia shape (timings, code paths)")
    rnd.add_argument("--shape", default="gpt2", help="gpt2 ... gpt2-xl, or pythia-70m ... pythia-12b")
    rnd.add_argument("--out", required=True, help="folder to write; use it as --model FOLDER")
    rnd.add_argument("--seed", type=int, default=0)

    cl = sub.add_parser("claims", help="check a file of your own claims without measuring")
    cl_sub = cl.add_subparsers(dest="claims_command", required=True)
    cl_check = cl_sub.add_parser("check", help="the file runs, names a registered experiment, declares @rule claims "
                                               "with test names of their own; exit 2 with one sentence otherwise")
    cl_check.add_argument("file")

    stim = sub.add_parser("stimuli", help="check a stimuli file against a model's tokenizer")
    stim_sub = stim.add_subparsers(dest="stimuli_command", required=True)
    check = stim_sub.add_parser("check", help="per word: measured or dropped and why, token counts per level, "
                                              "near-duplicates between direction and test prompts",
                                description="One line per item; exit 0 when some word can be measured, else 2.")
    check.add_argument("file", help="the stimuli file (the packaged semphase/data/stimuli.json shows the format)")
    check.add_argument("--model", default="smollm2-135m", help="whose tokenizer to check with (registry name, hub id "
                                                               "or folder; only the tokenizer is loaded)")

    data = sub.add_parser("data", help="WikiText-2 raw at hand offline: fetch it into a local store, or say which "
                                       "copy a run reads")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="store WikiText-2 raw validation and test from the datasets hub, "
                                              "with sha256 checksums")
    fetch.add_argument("--store", default=None, help="folder to store into (default $SEMPHASE_CACHE, else "
                                                     "~/.cache/semphase); files go to STORE/wikitext-2-raw/")
    where = data_sub.add_parser("where", help="which copy of each split a run reads (one line per split)")
    where.add_argument("--data-dir", default=None, help="as for run: a folder holding wikitext-2-raw/")
    return parser


def _setup(args):
    """Model, budget and tokens of a bench command, through a session."""
    args.budget = "quick"
    session = Session(settings_from(args))
    lm = session.model(args.model)
    return session, lm, session.tokens(lm, registry.get("exp10").data)


def settings_from(args, **extra) -> Settings:
    """The session settings of a CLI command (explicit values; nothing downstream sees argparse)."""
    return Settings(
        models=tuple(args.model or [DEFAULT_MODEL]) if isinstance(args.model, (list, type(None))) else (args.model,),
        devices=(args.device,), budget=getattr(args, "budget", "quick"), tokens=args.tokens,
        ctx=args.ctx, eval_tokens=args.eval_tokens,
        replace_layers=getattr(args, "replace_layers", None), data_dir=args.data_dir, text_file=args.text_file, split=args.split,
        output_dir=getattr(args, "output_dir", None), cache_dir=getattr(args, "cache_dir", None),
        no_cache=getattr(args, "no_cache", False), seed=args.seed, head_batch=getattr(args, "head_batch", None),
        stimuli=getattr(args, "stimuli", None), processing=args.processing, dtype=args.dtype, revision=args.revision,
        progress=not args.quiet, **extra)


def prepare_run(args, check_devices: bool = True):
    """The checked session and experiments of a ``run`` command: every refusal happens here, before anything is
    measured (``check_devices`` False: a cluster launcher, whose devices are the nodes')"""
    if "all" in args.experiment:
        given = [o for o, v in (("--parts", args.parts), ("--layers", args.layers),
                                ("--reuse-evidence", args.reuse_evidence)) if v]
        if given:
            raise SemphaseError(f"{', '.join(given)}: options of one experiment; 'run all' runs every experiment as its "
                                "budget says. Name the experiments instead (e.g. run exp10 ...).")
        args.experiment = registry.dependency_order()
    exps = [registry.get(e) for e in dict.fromkeys(args.experiment)]
    for exp in exps:
        if args.parts and not exp.parts:
            raise SemphaseError(f"--parts: {exp.id} has no parts; drop the option.")
        chosen = set((args.parts or "").replace(",", "").strip().lower())
        unknown = sorted(chosen - set(exp.parts))
        if unknown:
            raise SemphaseError(f"--parts {args.parts!r}: unknown part(s) {''.join(unknown)} for {exp.id}; use letters "
                                f"from {''.join(exp.parts)}.")
        if args.reuse_evidence and exp.id != "exp10":
            raise SemphaseError(f"--reuse-evidence: only exp10 reuses an earlier run's evidence; drop the option for "
                                f"{exp.id}.")
        if args.layers and exp.id != "exp10":
            raise SemphaseError(f"--layers: only exp10's single-head sweep takes layers; drop the option for {exp.id}.")
        if exp.id == "exp10":
            from .experiments.exp10.run import budget_parts, unused_phase23_options

            why = unused_phase23_options(args.parts, args.budget, args.replace_layers, args.reuse_evidence)
            if why:
                raise SemphaseError(why)
        if args.layers and exp.id == "exp10":
            other = sorted((chosen or set(budget_parts(args.budget) or exp.parts)) - {"a"})
            if other:
                raise SemphaseError(f"--layers {args.layers}: only part a's single-head sweep takes a layer list; parts "
                                    f"{''.join(other)} need every head (phases 2-3 choose their layers with "
                                    "--replace-layers); add --parts a, or drop --layers.")
    if args.reuse_evidence:  # a file that cannot stand in is refused before anything is measured
        from .experiments.exp10.measure import load_reuse

        prev = load_reuse(args.reuse_evidence)
        if args.model and prev.get("model") not in args.model:
            raise SemphaseError(f"--reuse-evidence {args.reuse_evidence!r}: the file measured {prev.get('model')!r}, "
                                f"this run measures {', '.join(args.model)}; give that model's file or drop the option.")
        if prev.get("budget") != args.budget:
            raise SemphaseError(f"--reuse-evidence {args.reuse_evidence!r}: the file was measured at budget "
                                f"{prev.get('budget')!r}, this run's is {args.budget!r}.")
    session = Session(settings_from(args, parts=args.parts, layers=args.layers, reuse_evidence=args.reuse_evidence,
                                    claims_file=args.claims_file))
    session.check_options(devices=check_devices)
    user = session.user_claims()  # a bad claims file is refused before anything is measured
    if user is not None and user.experiment not in [e.id for e in exps]:
        raise SemphaseError(f"--claims {user.name}: its claims test {user.experiment}, which this run does not measure; "
                            f"add {user.experiment} to the experiments.")
    session.check_data([exp.id for exp in exps])
    models = session.settings.models
    for exp in exps:
        if exp.across and len(models) < 2:
            print(f"{exp.id}: one model, so its rows are per model; its comparisons across models "
                  f"({', '.join(dict.fromkeys(exp.claims.rule(t).claim for t in exp.claims.extra))}) need two or more --model and will be skipped.",
                  file=sys.stderr)
    return session, exps


def cmd_run(args) -> int:
    if getattr(args, "executor", None) or getattr(args, "shards", None) is not None:
        from .cluster import launch

        return launch(args)
    session, exps = prepare_run(args)
    return execute_run(session, exps, args)


def execute_run(session, exps, args) -> int:
    """Measure, evaluate and publish every experiment on every model; the summary table at the end."""
    from . import cores

    cores.join()  # share the machine's cores with other semphase processes running on it
    models = session.settings.models
    root = session.store.root
    held = sum(1 for _ in root.rglob("*.json")) if root is not None and root.is_dir() else 0
    if held:
        print(f"cache: {root} holds {held} unit(s) from earlier runs; the ones this run needs are read back, not "
              "measured again (each experiment says how many at its end).", file=sys.stderr)
    written: list[str] = []
    failed: list[str] = []
    current = None
    try:
        for exp in exps:
            for model in models:
                current = (exp.id, model, dict(session.store.stats))
                print(f"{exp.id} on {model}, budget {args.budget}"
                      + (f"; it needs {', '.join(n.experiment for n in exp.needs)} on the same model (measured through "
                         "the session, cached)" if exp.needs else ""), file=sys.stderr)
                ev, claims, out = session.run(exp.id, model)
                wall = ev.get("provenance", {}).get("wall_seconds")
                extra = f"baseline PPL {ev['baseline_ppl']:.4f}; " if "baseline_ppl" in ev else ""
                print(f"{extra}wall {wall:.1f} s" if wall is not None else extra, file=sys.stderr)
                cost = ev.get("cost") or {}
                if cost.get("units_computed") or cost.get("units_read"):
                    print(f"{exp.id}: {cost['units_computed']} cache unit(s) computed, {cost['units_read']} read back "
                          "from the cache (written earlier in this run or by an earlier one)", file=sys.stderr)
                _print_claims(claims)
                written += out
                failed += [f"{c['test']} on {model}" for c in claims if c.get("verdict_value") == Verdict.REFUTED.value]
            if len(models) > 1 and exp.across:
                print(f"{exp.id} across {', '.join(models)}", file=sys.stderr)
                _, claims, out = session.run_across(exp.id)
                _print_claims(claims)
                written += out
                failed += [f"{c['test']} across models" for c in claims if c.get("verdict_value") == Verdict.REFUTED.value]
    except KeyboardInterrupt:
        print(interrupt_message(session, current, written), file=sys.stderr)
        return 130
    print("wrote:\n  " + "\n  ".join(dict.fromkeys(written)))
    if not session.settings.no_report:
        from .report import summary_table

        print("\nClaims summary (" + str(session.layout.reports / "README.md") + "):\n" + summary_table(session.layout))
    if getattr(args, "strict", False) and failed:
        print(f"semphase: --strict: {len(failed)} claim test(s) do not hold: {', '.join(failed)}.", file=sys.stderr)
        return 3
    return 0


def interrupt_message(session, current, written: list[str]) -> str:
    """What an interrupted run keeps, as the cache says it (never a promise it cannot keep)."""
    if current is None:
        return "semphase: interrupted before any measurement; nothing to resume."
    exp_id, model, before = current
    done = sorted({Path(w).name for w in written if w.endswith(".json")})
    kept = ("; finished: " + ", ".join(done)) if done else ""
    computed = session.store.stats.get("computed", 0) - before.get("computed", 0)
    if session.store.root is None:
        return (f"semphase: interrupted during {exp_id} on {model}; --no-cache keeps nothing, a rerun measures it "
                f"again{kept}.")
    if computed > 0:
        return (f"semphase: interrupted during {exp_id} on {model}; {computed} finished unit(s) of it are cached in "
                f"{session.store.root}: rerun the same command to resume from them{kept}.")
    return (f"semphase: interrupted during {exp_id} on {model}; no unit of it had finished (or it keeps no cache), so "
            f"a rerun measures it from the start{kept}.")


def _print_claims(claims: list[dict]) -> None:
    for c in claims:
        print(f"  {c['claim']:>3} {c['test']}: {c['verdict']}")


def cmd_report(args) -> int:
    from .report import OutputLayout, rebuild

    layout = OutputLayout.make(args.output_dir)
    if not layout.data.is_dir():
        raise SemphaseError(f"there is no data folder {str(layout.data)!r}; run an experiment first or give "
                            "--output-dir DIR of a run.")
    written = rebuild(layout, reevaluate=args.reevaluate, figures=args.figures)
    print("wrote:\n  " + "\n  ".join(written))
    return 0


def cmd_compare(args) -> int:
    """Two runs' claim tables, row by row (experiment, model, test, protocol); exit 3 when they differ."""
    from .report import compare_claims

    c = compare_claims(args.a, args.b)
    name = lambda k: (f"{k[0]} {k[1]} {k[2]} [{k[3]}]" + (f" in {k[4]}" if k[4] else "")
                      + (f" (yours: {k[5]})" if k[5] else ""))
    print(f"A = {c['a']}\nB = {c['b']}")
    print(f"{c['both']} rows in both, {c['both'] - len(c['differ'])} with the same verdict; {len(c['differ'])} differ; "
          f"{len(c['only_a'])} only in A, {len(c['only_b'])} only in B")
    for k, ra, rb in c["differ"][:args.show]:
        print(f"  verdict differs: {name(k)}: A {ra['verdict']} ({ra.get('deciding_name')} = {ra.get('deciding_value')}), "
              f"B {rb['verdict']} ({rb.get('deciding_name')} = {rb.get('deciding_value')})")
    for label, keys in (("only in A", c["only_a"]), ("only in B", c["only_b"])):
        for k in keys[:0 if args.common else args.show]:
            print(f"  {label}: {name(k)}")
    if c["moved"]:
        rel, k, va, vb = c["moved"][0]
        print(f"same verdict, deciding value moved: {len(c['moved'])} rows; the most, {name(k)}: {va} -> {vb} "
              f"({rel:.2e} relative)")
    elif c["both"]:
        print("same verdict rows: every deciding value equal")
    return 3 if c["differ"] or (not args.common and (c["only_a"] or c["only_b"])) else 0


def cmd_cache(args) -> int:
    """The cache's units and their compute time per measurement kind, model, device and chunk count."""
    from .cache import summarize
    from .report import OutputLayout

    root = Path(args.cache_dir) if args.cache_dir else OutputLayout.make(args.output_dir).cache
    if not root.is_dir():
        raise SemphaseError(f"there is no cache folder {str(root)!r}; give --output-dir DIR of a run, or --cache-dir.")
    rows = summarize(root)
    if not rows:
        print(f"{root}: no cache units")
        return 0
    print(f"{root}: the units each measurement has stored and the compute time they took when computed (on the "
          "device named; a resumed run reads them back instead of measuring again)")
    print(f"{'measurement':22s} {'model':28s} {'device':6s} {'chunks':>6s} {'ctx':>5s} {'units':>6s} {'compute':>10s}")
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        for r in mine:
            untimed = f" ({r['untimed']} without a time)" if r["untimed"] else ""
            print(f"{r['kind']:22s} {model:28s} {r['device']:6s} {str(r['chunks'] or ''):>6s} {str(r['ctx'] or ''):>5s} "
                  f"{r['units']:6d} {r['seconds'] / 60:8.1f} min{untimed}")
        print(f"{'all':22s} {model:28s} {'':6s} {'':>6s} {'':>5s} {sum(r['units'] for r in mine):6d} "
              f"{sum(r['seconds'] for r in mine) / 60:8.1f} min")
    return 0


def cmd_experiments(args) -> int:
    for e in registry.all_experiments():
        needs = "; needs " + ", ".join(f"{n.experiment} for {', '.join(n.claims) or 'its measurement'}"
                                         for n in e.needs) if e.needs else ""
        print(f"{e.id:6s} {', '.join(e.claim_ids):28s} {e.title} (science.md {e.sections}); reads "
              f"{e.data.describe()}{needs}")
    return 0


def cmd_bench(args) -> int:
    """Speed and memory benchmarks; each prints its ratio, measured in this one run."""
    from . import bench

    what = args.what
    if what == "memory":
        return _bench_memory(args)
    if what == "attention":
        return _bench_attention(args)
    session, lm, ts = _setup(args)
    layers = parse_layers(args.layers, lm.n_layers) or list(range(lm.n_layers))
    print(f"bench on {lm.name} ({lm.device}), {ts.n_tokens} tokens ({ts.n_chunks} x {ts.ctx}), "
          f"layers {layers[0]}..{layers[-1]} ({len(layers)})", file=sys.stderr)
    if what == "memory-child":
        print(json.dumps(bench.memory_child(lm, ts, layers)))
        return 0
    if what in ("ablation", "all"):
        r = bench.bench_ablation(lm, ts, layers, session.head_batch(lm))
        print(f"ablation sweep, {r['heads']} heads: plain loop (one full run_with_hooks forward per head and "
              f"chunk) {r['plain_s']:.2f} s; engine (capture once per chunk, resume from the ablated layer) "
              f"{r['engine_s']:.2f} s; speed-up {r['ratio']:.2f}x; largest relative PPL difference "
              f"{r['max_rel_ppl_diff']:.2e}")
    if what in ("head-batch", "all"):
        batch = session.head_batch(lm) if session.head_batch(lm) > 1 else lm.n_heads
        r = bench.bench_head_batch(lm, ts, layers, batch)
        print(f"single-head sweep, {r['heads']} heads, {ts.n_chunks} x {r['ctx']} tokens: one head per forward "
              f"{r['one_s']:.2f} s; {r['head_batch']} heads per batched forward {r['batched_s']:.2f} s; speed-up "
              f"{r['ratio']:.2f}x; largest relative difference of a head's summed loss {r['max_rel_nll_diff']:.2e}")
    if what in ("softmax", "all"):
        r = bench.bench_softmax(lm, ts, layers)
        print(f"single-head sweep, {r['heads']} heads, {ts.n_chunks} x {r['ctx']} tokens: TransformerLens's guarded "
              f"attention softmax {r['guarded_s']:.2f} s; the engine's unguarded one {r['unguarded_s']:.2f} s; speed-up "
              f"{r['ratio']:.2f}x; identical losses: {r['identical']}")
    if what in ("joints", "all"):
        r = bench.bench_joints(lm, ts, seed=args.seed)
        print(f"joint zero-ablation of {r['sets']} random sets of {r['set_size']} heads, {ts.n_chunks} x {r['ctx']} "
              f"tokens: each joint capturing the chunks itself {r['plain_s']:.2f} s ({r['plain_forwards']:g} forwards); "
              f"chunks captured once for all joints {r['shared_s']:.2f} s ({r['shared_forwards']:g} forwards); speed-up "
              f"{r['ratio']:.2f}x; identical losses: {r['identical']}")
    if what in ("cache", "all"):
        r = bench.bench_cache(lm, ts, layers)
        print(f"evidence cache: first run (computed) {r['first_s']:.2f} s; second run (read back) "
              f"{r['second_s']:.3f} s; speed-up {r['ratio']:.0f}x; identical results: {r['identical']}")
    if what in ("workers", "all"):
        models = args.bench_models or [args.model]
        extra = []
        if args.data_dir:
            extra.append(f"--data-dir={os.path.abspath(args.data_dir)}")
        if args.text_file:
            extra.append(f"--text-file={os.path.abspath(args.text_file)}")
        if args.tokens:
            extra += ["--tokens", str(args.tokens)]
        if args.ctx:
            extra += ["--ctx", str(args.ctx)]
        extra += ["--dtype", args.dtype, "--processing", args.processing, "--seed", str(args.seed)]
        if args.revision:
            extra += ["--revision", args.revision]
        r = bench.bench_workers(models, extra)
        print(f"exp10 smoke tests for {', '.join(models)}: pytest -n 0 {r['n0_s']:.1f} s; -n 2 {r['n2_s']:.1f} s; "
              f"speed-up {r['ratio']:.2f}x (pytest said: -n 0 '{r['outcomes'][0]}', -n 2 '{r['outcomes'][2]}')")
    return 0


def _bench_attention(args) -> int:
    from . import bench

    for flag in ("attn_tokens", "prompt_tokens", "new_tokens", "repeats"):
        if getattr(args, flag) < 1:
            raise SemphaseError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}.")
    lm = Session(settings_from(args)).model(args.model)
    r = bench.bench_attention(lm, args.attn_tokens, args.prompt_tokens, args.new_tokens, args.repeats, args.seed)
    print(f"attention on {r['model']} ({r['device']}), one layer: {r['heads']} query heads, {r['kv_heads']} key/value "
          f"heads, d_head {r['d_head']}, {r['attn_tokens']} tokens, median of {r['repeats']}: softmax (eager, as the "
          f"Bridge) {r['softmax_eager_s'] * 1e3:.2f} ms; softmax (PyTorch fused) {r['softmax_fused_s'] * 1e3:.2f} ms; "
          f"kernelised elu+1 (factorised, chunks of 64) {r['kernel_s'] * 1e3:.2f} ms; ratio eager/kernel "
          f"{r['ratio_eager_over_kernel']:.2f}x, fused/kernel {r['ratio_fused_over_kernel']:.2f}x (FLOPs per head "
          f"{r['flops_softmax_per_head'] / 1e6:.1f}M vs {r['flops_kernel_per_head'] / 1e6:.1f}M)")
    print(f"generation, greedy, prompt {r['prompt_tokens']} + {r['new_tokens']} tokens: with the key/value cache "
          f"{r['gen_cache_tok_s']:.1f} tokens/s; without {r['gen_nocache_tok_s']:.1f} tokens/s; ratio "
          f"{r['gen_ratio']:.2f}x; same tokens: {r['same_tokens']}" + (f" ({r['gen_note']})" if r['gen_note'] else ""))
    print(f"best-of-N as exp10P samples it, {r['bon_prompts']} prompts x {r['bon_candidates']} candidates x "
          f"{r['bon_new_tokens']} tokens, with scoring: one prompt at a time {r['bon_one_prompt_at_a_time_s']:.2f} s; "
          f"every prompt in one batch {r['bon_batched_s']:.2f} s; ratio {r['bon_ratio']:.2f}x; same candidates: "
          f"{r['bon_same_candidates']}")
    return 0


def _bench_memory(args) -> int:
    from . import bench

    base = ["--model", args.model, "--device", args.device, "--layers", args.layers or "-1", "--dtype", args.dtype]
    for flag, value in (("--data-dir", args.data_dir), ("--text-file", args.text_file), ("--ctx", args.ctx),
                        ("--revision", args.revision)):
        if value:
            base += [flag, str(value)]
    counts = [int(x) for x in (args.token_counts or "2048,8192").split(",")]
    rows = bench.bench_memory(base, counts)
    from .models import load_model

    lm = load_model(args.model, args.device, dtype=args.dtype, revision=args.revision)
    per_chunk = bench.chunk_bytes(lm, args.ctx or 1024)
    mib = 2 ** 20
    for r in rows:
        print(f"{r['tokens']:>7} tokens ({r['chunks']} chunks): RSS before sweep {r['rss_before'] / mib:.0f} MiB, "
              f"peak during sweep {r['peak_during_sweep'] / mib:.0f} MiB")
    growth = rows[-1]["peak_during_sweep"] - rows[0]["peak_during_sweep"]
    print(f"growth {growth / mib:.0f} MiB from {rows[0]['tokens']} to {rows[-1]['tokens']} tokens; one chunk's "
          f"activations {per_chunk / mib:.0f} MiB: {'within' if growth <= per_chunk else 'EXCEEDS'} one chunk")
    return 0 if growth <= per_chunk else 1


def cmd_claims(args) -> int:
    """``claims check FILE``: load and check a researcher's claims file; nothing is measured."""
    from .user_claims import load

    user = load(args.file)
    print(f"{user.name} (sha256 {user.sha256[:16]}): {len(user.rules)} claim test(s) on {user.experiment}")
    for test, r in user.rules.items():
        print(f"  {r.claim} {test} ({r.kind}): {r.asserts or '(no sentence declared)'}")
    return 0


def cmd_stimuli(args) -> int:
    """``stimuli check FILE --model M``: the checker's verdict per word, one line per item."""
    from .models import load_tokenizer
    from .semantic.stimuli import check_stimuli, load_stimuli
    from .semantic.stimuli_report import check_lines

    stimuli = load_stimuli(args.file)
    tokenizer = load_tokenizer(args.model)
    lines, usable = check_lines(stimuli, check_stimuli(stimuli, tokenizer), tokenizer, args.model)
    print("\n".join(lines))
    if not usable:
        raise SemphaseError(f"no word of {stimuli.source!r} can be measured on {args.model}; fix the problems "
                            "listed above (one line each) and check again.")
    return 0


def cmd_data(args) -> int:
    """``data fetch``: WikiText-2 raw into the local store; ``data where``: the copy a run reads."""
    from . import data

    if args.data_command == "fetch":
        store = data.store_dir(args.store)
        for copy in data.fetch_wikitext(args.store):
            print(f"{copy.split}: stored {copy.path} (sha256 {copy.sha256[:16]}, in {data.CHECKSUMS})")
        default = data.store_dir(None).resolve() == store.resolve()
        print(f"runs read this store {'by default' if default else f'with --data-dir {store} or {data.STORE_ENV}={store}'}"
              f" (unless --data-dir or ${data.DATA_DIR_ENV} names another copy)")
        return 0
    failed = []
    for split in data.FETCH_SPLITS:
        try:
            copy = data.locate_wikitext(split, args.data_dir)
            if copy.path is not None:
                copy = data.read_local(copy)[1]
            print(copy.describe())
        except SemphaseError as exc:
            print(f"{split}: none: {exc}")
            failed.append(split)
    if len(failed) == len(data.FETCH_SPLITS):
        raise SemphaseError("a run can read no split of WikiText-2 (the lines above say why); fix the copy or the "
                            "option they name.")
    return 0


def cmd_models(args) -> int:
    from .models import REGISTRY

    for name, spec in REGISTRY.items():
        print(f"{name:14s} {spec.source:14s} {spec.hub_id:40s} {spec.description}")
    print("Also: any hub id 'org/name' (needs the hub or a cached copy) or a local model folder.")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for noisy in ("transformers", "transformer_lens", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "random-model":
            from .random_models import build_random_model

            print(build_random_model(args.out, args.shape, args.seed))
            return 0
        if args.command == "report":
            return cmd_report(args)
        if args.command == "experiments":
            return cmd_experiments(args)
        if args.command == "cache":
            return cmd_cache(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "claims":
            return cmd_claims(args)
        if args.command == "stimuli":
            return cmd_stimuli(args)
        if args.command == "data":
            return cmd_data(args)
        return cmd_models(args)
    except SemphaseError as exc:
        print(f"semphase: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semphase: interrupted; measurements keep the units they finished in their cache (exp7 its PCA "
              "bootstraps, not its forwards; exp9 none), rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
