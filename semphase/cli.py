"""Command line: ``python -m semphase run exp10 ...`` and ``python -m semphase bench ...``.

Errors caused by the input or the machine print one sentence (no traceback) and exit 2.
"""
from __future__ import annotations

import argparse
import json
import os
import logging
import sys
import time

from .errors import SemphaseError


def parse_layers(text: str | None, n_layers: int) -> list[int] | None:
    if not text:
        return None
    try:
        given = [int(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise SemphaseError(f"--layers {text!r}: give layer numbers separated by commas, e.g. 0,5,29.") from None
    bad = [l for l in given if not -n_layers <= l < n_layers]
    layers = sorted({l % n_layers for l in given})
    if bad or not layers:
        raise SemphaseError(f"--layers {text!r}: this model has layers 0 to {n_layers - 1}; "
                            f"{', '.join(map(str, bad)) or 'none given'} out of range.")
    return layers


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m",
                   help="registry name (gpt2, gpt2-medium, gpt2-large, gpt2-xl, smollm2-135m), hub id or folder")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--tokens", type=int, default=None, help="evaluation tokens (default: the budget's)")
    p.add_argument("--ctx", type=int, default=None, help="chunk length in tokens (default: the budget's)")
    p.add_argument("--data-dir", default=None, help="folder holding wikitext-2-raw/ (else $SEMPHASE_DATA_DIR, else the hub)")
    p.add_argument("--text-file", default=None, help="evaluate on this UTF-8 text file instead of WikiText-2")
    p.add_argument("--split", default="validation", help="WikiText-2 split (default validation)")
    p.add_argument("--processing", default="tl-default", choices=["tl-default", "none"],
                   help="weight processing (default: HookedTransformer's, as the original)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m semphase", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment and write its data, figures and report")
    run.add_argument("experiment", choices=["exp10", "exp1", "exp2", "exp3"])
    _common(run)
    run.add_argument("--budget", default="quick", choices=["smoke", "quick", "full"])
    run.add_argument("--parts", default="abcdefgh", help="exp10 parts, e.g. a or abc (default all)")
    run.add_argument("--layers", default=None, help="only these layers for the single-head sweep, e.g. 0,5,29")
    run.add_argument("--output-dir", default=None,
                     help="write DIR/data, DIR/figures, DIR/reports (default: results/ and reports/ here)")
    run.add_argument("--cache-dir", default=None, help="evidence cache (default: OUTPUT/cache or results/cache)")
    run.add_argument("--no-cache", action="store_true", help="keep evidence in memory only")
    run.add_argument("--head-batch", type=int, default=None,
                     help="heads of one layer run as one batch (default: 1 on CPU, all heads on CUDA)")
    run.add_argument("--stimuli", default=None,
                     help="exp1-exp3: a stimuli file in the packaged file's format (default: the packaged set)")

    bench = sub.add_parser("bench", help="timings that back the project's speed claims")
    bench.add_argument("what", nargs="?", default="all",
                       choices=["all", "ablation", "cache", "workers", "memory", "memory-child"],
                       help="all (ablation, cache, workers), or one of them; memory is separate")
    _common(bench)
    bench.add_argument("--layers", default=None, help="layers to sweep (default all; memory: the last)")
    bench.add_argument("--head-batch", type=int, default=None)
    bench.add_argument("--bench-models", action="append", default=None,
                       help="workers: the models to test (repeat; default --model)")
    bench.add_argument("--token-counts", default=None, help="memory: token counts, default 2048,8192")

    sub.add_parser("models", help="list the model registry")

    rnd = sub.add_parser("random-model", help="save a random-weight model of a GPT-2 shape (for timings)")
    rnd.add_argument("--shape", default="gpt2", help="gpt2, gpt2-medium, gpt2-large or gpt2-xl")
    rnd.add_argument("--out", required=True, help="folder to write; use it as --model FOLDER")
    rnd.add_argument("--seed", type=int, default=0)
    return parser


def _setup(args):
    from .budgets import get_budget
    from .data import load_eval_tokens
    from .models import load_model

    lm = load_model(args.model, args.device, args.processing)
    budget = get_budget(getattr(args, "budget", "quick"), args.tokens, args.ctx)
    ts = load_eval_tokens(lm.tokenizer, budget.tokens, budget.ctx, args.split, args.data_dir, args.text_file)
    return lm, budget, ts


def _head_batch(args, lm) -> int:
    if args.head_batch:
        return args.head_batch
    return lm.n_heads if lm.device.type == "cuda" else 1


def cmd_run(args) -> int:
    if args.experiment != "exp10":
        try:
            from .semantic.runner import run_cli
        except ImportError:
            raise SemphaseError(f"{args.experiment} is not built yet in this version of semphase.") from None
        return run_cli(args)
    from . import exp10, sweeps
    from .cache import EvidenceStore
    from .report import OutputLayout, publish_exp10

    layout = OutputLayout.make(args.output_dir)
    layout.ensure_writable()
    parts = exp10.expand_parts(args.parts)
    lm, budget, ts = _setup(args)
    layers = parse_layers(args.layers, lm.n_layers)
    store = EvidenceStore(None if args.no_cache else (args.cache_dir or layout.cache))
    print(f"exp10 on {lm.name} ({lm.device}): {ts.n_tokens} tokens in {ts.n_chunks} chunk(s) of {ts.ctx}, "
          f"budget {budget.name}, parts {parts}", file=sys.stderr)
    ev = exp10.measure(lm, ts, budget, store, parts, layers, sweeps.Progress(not args.quiet),
                       head_batch=_head_batch(args, lm), seed=args.seed,
                       g_curve=exp10.load_g_curve(layout.data.parent if args.output_dir else "results", lm.tag))
    claims = [c.to_json() for c in exp10.evaluate_claims(ev)] if ev["all_layers"] else \
        [exp10.evaluate_claim(ev, "test_exp10_evidence_sane").to_json()]
    written = publish_exp10(layout, ev, claims)
    print(f"baseline PPL {ev['baseline_ppl']:.4f}; wall {ev['timing']['total']:.1f} s", file=sys.stderr)
    for c in claims:
        print(f"  {c['claim']:>3} {c['test']}: {c['verdict']}")
    print("wrote:\n  " + "\n  ".join(written))
    return 0


def cmd_bench(args) -> int:
    """Speed and memory benchmarks; each prints its ratio, measured in this one run."""
    from . import bench

    args.budget = "quick"
    what = args.what
    if what == "memory":
        return _bench_memory(args)
    lm, _, ts = _setup(args)
    layers = parse_layers(args.layers, lm.n_layers) or list(range(lm.n_layers))
    print(f"bench on {lm.name} ({lm.device}), {ts.n_tokens} tokens ({ts.n_chunks} x {ts.ctx}), "
          f"layers {layers[0]}..{layers[-1]} ({len(layers)})", file=sys.stderr)
    if what == "memory-child":
        print(json.dumps(bench.memory_child(lm, ts, layers)))
        return 0
    if what in ("ablation", "all"):
        r = bench.bench_ablation(lm, ts, layers, _head_batch(args, lm))
        print(f"ablation sweep, {r['heads']} heads: plain loop (one full run_with_hooks forward per head and "
              f"chunk) {r['plain_s']:.2f} s; engine (capture once per chunk, resume from the ablated layer) "
              f"{r['engine_s']:.2f} s; speed-up {r['ratio']:.2f}x; largest relative PPL difference "
              f"{r['max_rel_ppl_diff']:.2e}")
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
        r = bench.bench_workers(models, extra)
        print(f"exp10 smoke tests for {', '.join(models)}: pytest -n 0 {r['n0_s']:.1f} s; -n 2 {r['n2_s']:.1f} s; "
              f"speed-up {r['ratio']:.2f}x (pytest said: -n 0 '{r['outcomes'][0]}', -n 2 '{r['outcomes'][2]}')")
    return 0


def _bench_memory(args) -> int:
    from . import bench

    base = ["--model", args.model, "--device", args.device, "--layers", args.layers or "-1"]
    for flag, value in (("--data-dir", args.data_dir), ("--text-file", args.text_file), ("--ctx", args.ctx)):
        if value:
            base += [flag, str(value)]
    counts = [int(x) for x in (args.token_counts or "2048,8192").split(",")]
    rows = bench.bench_memory(base, counts)
    from .models import load_model

    lm = load_model(args.model, args.device)
    per_chunk = bench.chunk_bytes(lm, args.ctx or 1024)
    mib = 2 ** 20
    for r in rows:
        print(f"{r['tokens']:>7} tokens ({r['chunks']} chunks): RSS before sweep {r['rss_before'] / mib:.0f} MiB, "
              f"peak during sweep {r['peak_during_sweep'] / mib:.0f} MiB")
    growth = rows[-1]["peak_during_sweep"] - rows[0]["peak_during_sweep"]
    print(f"growth {growth / mib:.0f} MiB from {rows[0]['tokens']} to {rows[-1]['tokens']} tokens; one chunk's "
          f"activations {per_chunk / mib:.0f} MiB: {'within' if growth <= per_chunk else 'EXCEEDS'} one chunk")
    return 0 if growth <= per_chunk else 1


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
        return cmd_models(args)
    except SemphaseError as exc:
        print(f"semphase: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semphase: interrupted; finished units are cached, rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
