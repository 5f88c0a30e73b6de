"""Command line: ``python -m semphase run exp10 ...`` and ``python -m semphase bench ...``.

Errors caused by the input or the machine print one sentence (no traceback) and exit 2.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from .errors import SemphaseError


def parse_layers(text: str | None, n_layers: int) -> list[int] | None:
    if not text:
        return None
    try:
        layers = sorted({int(x) for x in text.replace(" ", "").split(",") if x != ""})
    except ValueError:
        raise SemphaseError(f"--layers {text!r}: give layer numbers separated by commas, e.g. 0,5,29.") from None
    bad = [l for l in layers if not 0 <= l < n_layers]
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
    run.add_argument("experiment", choices=["exp10"])
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

    bench = sub.add_parser("bench", help="timings that back the project's speed claims")
    bench.add_argument("what", choices=["ablation"])
    _common(bench)
    bench.add_argument("--layers", default=None, help="layers to sweep (default all)")
    bench.add_argument("--head-batch", type=int, default=None)

    sub.add_parser("models", help="list the model registry")
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
    """Time the engine's single-head zero sweep against the plain loop on the same tokens."""
    import numpy as np
    import torch

    from .ablation import AblationEngine, ablation_hook, hook_z_name

    args.budget = "quick"
    lm, _, ts = _setup(args)
    layers = parse_layers(args.layers, lm.n_layers) or list(range(lm.n_layers))
    heads = [(l, h) for l in layers for h in range(lm.n_heads)]
    print(f"bench ablation: {lm.name} on {lm.device}, {ts.n_tokens} tokens ({ts.n_chunks} x {ts.ctx}), "
          f"{len(heads)} heads", file=sys.stderr)
    engine = AblationEngine(lm, head_batch=_head_batch(args, lm))
    # warm-up (first-call allocations) outside both timings
    engine.forward_nll(ts.chunks[0][: min(ts.ctx, 16)])

    def sync():
        if lm.device.type == "cuda":
            torch.cuda.synchronize()

    sync()
    t0 = time.perf_counter()
    plain = np.zeros(len(heads))
    for i, (l, h) in enumerate(heads):
        total = 0.0
        for c in range(ts.n_chunks):
            total += float(engine.forward_nll(ts.chunks[c], [(hook_z_name(l), ablation_hook("zero", [h]))]).sum())
        plain[i] = total
    sync()
    t_plain = time.perf_counter() - t0

    t0 = time.perf_counter()
    fast = np.zeros((lm.n_layers, lm.n_heads))
    for c in range(ts.n_chunks):
        cap = engine.capture(ts.chunks[c])
        for l in layers:
            for h, nll in enumerate(engine.layer_single_nll(cap, l, "zero")):
                fast[l, h] += float(nll.sum())
        del cap
    sync()
    t_fast = time.perf_counter() - t0
    n = ts.n_predicted
    ppl_plain = np.exp(plain / n)
    ppl_fast = np.exp(np.array([fast[l, h] for l, h in heads]) / n)
    rel = float(np.max(np.abs(ppl_fast - ppl_plain) / ppl_plain))
    print(f"plain loop (one full run_with_hooks forward per head and chunk): {t_plain:.2f} s")
    print(f"engine (capture once per chunk, resume from the ablated layer):   {t_fast:.2f} s")
    print(f"speed-up: {t_plain / t_fast:.2f}x")
    print(f"largest relative PPL difference: {rel:.2e}")
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
        return cmd_models(args)
    except SemphaseError as exc:
        print(f"semphase: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semphase: interrupted; finished units are cached, rerun the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
