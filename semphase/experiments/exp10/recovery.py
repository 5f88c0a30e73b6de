"""exp10 phase 3 (science.md 14, exp10P): can extra inference buy back what replaced heads cost?
A part function in the shape of ``measure.py``'s (``part_p(run, ev)``), merged into its parts.

Conditions: ``baseline``; ``relu_a`` and ``relu_b``, the first 30/132 and 70/132 of the candidate
heads (every head of the swept layers; 30 and 70 for GPT-2 small) of the best method's ranking (part j of :mod:`.linearise`; relu for the
original) replaced by that method; and ``kernel_a``, the first 30/132 of the kernelisable
attention's ranking replaced by it (the operator whose compute saving is real). Prompts are cut
from the held-out range (no token of it ranked the heads): ``prompt_tokens`` tokens, then the true
continuation (``new_tokens``), several windows per chunk when the range has fewer chunks than
prompts (windows of one chunk are not independent documents; the evidence says how many chunks).

* P1 speed: greedy generation with and without the key/value cache, tokens/s per condition.
* P2 self-refinement: 3 greedy iterations; the baseline model's perplexity of everything after the
  prompt and distinct-2 after each (:func:`semphase.generation.self_refine`).
* P3 best-of-N, the original's protocol (the reproduction test's evidence): 20 prompts, seeded
  sampling at temperature 0.8; the original's selection and score (baseline perplexity of the
  candidate) beside independent measures (:func:`semphase.generation.best_of_n`): bigram F1 with
  the true continuation and the condition's loss on the true continuation.
* P3 judged (C27's hypothesis tests; science.md 14.7's stronger test, issue 21): best-of-N of
  ``baseline`` and ``relu_a`` on many prompts, one per held-out chunk where the data hold enough
  chunks (``JUDGED_BUDGETS``: at quick 100 prompts from 100 chunks of the split after the rank
  range), several sampling seeds. The picked sample (the original's rule: the lowest baseline
  perplexity among the first N) is judged by measures it was not selected on: the bigram F1 with
  the true continuation, and the loss under each independent judge model named
  (``SEMPHASE_JUDGE_MODEL``; none is available offline here, which the evidence says). Two
  comparisons: the original's relu_a@N against baseline@1, and the equal-compute relu_a@N against
  baseline@N; each difference is averaged over the seeds and prompts of a chunk, and its interval
  is the cluster t interval over chunks (:func:`semphase.intervals.cluster_mean`); the spread of
  the difference across seeds is reported. Each condition's loss on the true continuation (the
  likelihood of the real text, which no selection changes) is compared the same way.
* The equal-FLOP arithmetic: the original's attention-only ratio and extra tokens, and the
  whole-model ones for GPT-2 small and this model.

P4 (perplexity at context lengths 128-1,024) needs token sets chunked at each length; it is not
built here (the engine's curves on such sets would measure it).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ...flops import (GPT2_SMALL, equal_flop_extra_tokens, model_shapes, original_p1_speedup, original_p3_token_ratio,
                      whole_model_token_ratio)
from ... import sweeps
from ...cache import key_hash
from ...errors import SemphaseError
from ...generation import LOGITS_BYTES, _vocab, best_of_n, continuation_nll, generate, self_refine
from ...intervals import cluster_mean
from .linearise import KERNEL
from .run import Exp10Run



@dataclass(frozen=True)
class RecoveryBudget:
    prompts: int
    prompt_tokens: int
    new_tokens: int
    candidates: int
    ns: tuple[int, ...]
    iterations: int
    speed_new_tokens: int
    n_boot: int = 2000


RECOVERY_BUDGETS = {
    "smoke": RecoveryBudget(prompts=2, prompt_tokens=16, new_tokens=8, candidates=2, ns=(1, 2), iterations=2,
                            speed_new_tokens=8, n_boot=200),
    "quick": RecoveryBudget(prompts=20, prompt_tokens=128, new_tokens=64, candidates=5, ns=(1, 2, 3, 5), iterations=3,
                            speed_new_tokens=32),
    "full": RecoveryBudget(prompts=200, prompt_tokens=128, new_tokens=64, candidates=5, ns=(1, 2, 3, 5), iterations=3,
                           speed_new_tokens=128),
}


@dataclass(frozen=True)
class JudgedBudget:
    """Best-of-N judged at scale: ``prompts`` prompts of ``prompt_tokens`` tokens with their true
    ``new_tokens``-token continuations, one per chunk where the prompt source holds that many chunks
    (else several windows per chunk, at least ``min_chunks`` chunks asked for); ``candidates``
    samples per prompt and seed, best-of-N at ``ns``, ``seeds`` sampling seeds (offsets to the
    run's seed)."""
    prompts: int
    min_chunks: int
    prompt_tokens: int
    new_tokens: int
    candidates: int
    ns: tuple[int, ...]
    seeds: int
    temperature: float = 0.8


# quick fits about 40 minutes of two CPU cores for the two conditions (one 1,024-token forward ~4.6 s,
# batched sampling with the key/value cache): prompts of 64 tokens and samples of 32 (the original's
# 128 and 64, kept by the 20-prompt protocol above) buy 100 chunks and 3 seeds of 5 candidates.
JUDGED_BUDGETS = {
    "smoke": JudgedBudget(prompts=4, min_chunks=2, prompt_tokens=16, new_tokens=8, candidates=2, ns=(1, 2), seeds=2),
    "quick": JudgedBudget(prompts=100, min_chunks=50, prompt_tokens=64, new_tokens=32, candidates=5, ns=(1, 2, 3, 5),
                          seeds=3),
    "full": JudgedBudget(prompts=200, min_chunks=100, prompt_tokens=128, new_tokens=64, candidates=5, ns=(1, 2, 3, 5),
                         seeds=5),
}

JUDGE_ENV = "SEMPHASE_JUDGE_MODEL"  # comma-separated model names (semphase.models) of independent judges


def spread_windows(ts, n: int, prompt_tokens: int, cont_tokens: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Up to ``n`` (prompt, true continuation) pairs spread over the chunks of ``ts``: one window
    (at the chunk's start) in each of ``n`` evenly spaced chunks when ``ts`` holds ``n`` chunks or
    more, else every chunk with as many windows as it takes (window w of a chunk starts at
    w * (prompt + continuation); chunks first, then windows). Returns prompts, continuations and
    ``[chunk, start]`` per pair."""
    span = prompt_tokens + cont_tokens
    per_chunk = ts.ctx // span
    if per_chunk < 1:
        raise SemphaseError(f"chunks of {ts.ctx} tokens hold no prompt of {prompt_tokens} tokens plus its {cont_tokens}-token "
                            "continuation; use longer chunks (--ctx) or a smaller recovery budget.")
    n_use = min(ts.n_chunks, n)
    chunks = sorted({int(round(x)) for x in np.linspace(0, ts.n_chunks - 1, n_use)}) if n_use > 1 else [0]
    where = [(c, w) for w in range(per_chunk) for c in chunks][:n]
    P = torch.stack([ts.chunks[c, w * span: w * span + prompt_tokens] for c, w in where])
    R = torch.stack([ts.chunks[c, w * span + prompt_tokens: (w + 1) * span] for c, w in where])
    return P, R, [[c, w * span] for c, w in where]


def prompt_source(ctx, rank, eval_ts):
    """Where the judged best-of-N draws its prompts: every chunk of the split (or text file) after
    the rank range ``rank`` (none of it ranked the heads part p replaces), in chunks of the rank
    range's length; None (the held-out range is used) when part p is not asked for or there is no
    held-out range."""
    from ...data import load_eval_tokens
    from .run import expand_parts, run_parts

    if eval_ts is None or "p" not in expand_parts(run_parts(ctx)):
        return None
    s = ctx.session.settings
    start = rank.meta.get("token_range", [0, rank.n_tokens])[1]
    ts = load_eval_tokens(ctx.lm.tokenizer, None, rank.ctx, s.split or ctx.experiment.data.split, s.data_dir,
                          s.text_file, start=start)
    ts.meta.setdefault("subset", "prompts (after the rank range)")
    return ts


def prompt_windows(ts, n: int, prompt_tokens: int, cont_tokens: int) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Up to ``n`` (prompt, true continuation) pairs cut from the chunks of ``ts``: window w of
    chunk c starts at w * (prompt + continuation); chunks first, then windows."""
    span = prompt_tokens + cont_tokens
    per_chunk = ts.ctx // span
    if per_chunk < 1:
        raise SemphaseError(f"chunks of {ts.ctx} tokens hold no prompt of {prompt_tokens} tokens plus its {cont_tokens}-token "
                            "continuation; use longer chunks (--ctx) or a smaller recovery budget.")
    where = [(c, w) for w in range(per_chunk) for c in range(ts.n_chunks)][:n]
    P = torch.stack([ts.chunks[c, w * span: w * span + prompt_tokens] for c, w in where])
    R = torch.stack([ts.chunks[c, w * span + prompt_tokens: (w + 1) * span] for c, w in where])
    return P, R, [[c, w * span] for c, w in where]


def _scaled(k: int, n_candidates: int) -> int:
    """The original's k of its 132 candidate heads (GPT-2 small's layers 1-11), scaled to this run's
    candidates (every head of the swept layers)."""
    return max(1, min(n_candidates, round(k / 132 * n_candidates)))


def conditions(run: Exp10Run, ev: dict) -> dict[str, list]:
    n_cand = len(run.best_order)
    a, b = _scaled(30, n_cand), _scaled(70, n_cand)
    method = run.best_method
    out = {"baseline": [],
           f"{method}_{a}": [(l, h, method) for l, h in run.best_order[:a]],
           f"{method}_{b}": [(l, h, method) for l, h in run.best_order[:b]]}
    if KERNEL in getattr(run, "lin_delta", {}):
        from .linearise import _order_of

        out[f"{KERNEL}_{a}"] = [(l, h, KERNEL) for l, h in _order_of(run.lin_delta[KERNEL])[:a]]
    return out


def _strip(res: dict) -> dict:
    """A best-of-N or refinement result without the generated token ids (they are not evidence)."""
    out = dict(res)
    out.pop("final_text", None)
    if "per_prompt" in out:
        out["per_prompt"] = [{k: v for k, v in p.items() if k != "candidates"} for p in out["per_prompt"]]
    return out


# -- best-of-N judged at scale (C27's hypothesis tests) -----------------------------------------------

def picked_values(res: dict, n: int, measure: str) -> np.ndarray:
    """Per prompt, ``measure`` of the candidate that best-of-``n`` picks (the lowest scorer
    perplexity among the first ``n``: the original's rule); ``judge_nll:NAME`` reads judge NAME's loss."""
    rows = res["per_prompt"]
    picks = [int(np.argmin(p["scorer_ppl"][:n])) for p in rows]
    if measure.startswith("judge_nll:"):
        name = measure.split(":", 1)[1]
        return np.array([p["judge_nll"][name][k] for p, k in zip(rows, picks)], dtype=float)
    return np.array([p[measure][k] for p, k in zip(rows, picks)], dtype=float)


def chunk_means(values: np.ndarray, chunks: Sequence[int]) -> np.ndarray:
    """``values`` [..., prompt] averaged over the prompts of each chunk (NaNs left out): [..., G],
    chunks in ascending order."""
    idx = np.asarray(chunks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a chunk whose values are all NaN gives NaN
        return np.stack([np.nanmean(values[..., idx == c], axis=-1) for c in sorted(set(chunks))], axis=-1)


def cluster_difference(diff: np.ndarray, chunks: Sequence[int], n_prompts: int | None = None) -> dict:
    """A per-prompt difference ``diff`` [seed, prompt] averaged over the seeds and prompts of each
    chunk, with the cluster t interval over chunks (:func:`semphase.intervals.cluster_mean`; a chunk
    is the independent unit: windows of one chunk are not independent documents, and the seeds
    share the prompts); each seed's mean difference over prompts beside it."""
    diff = np.atleast_2d(np.asarray(diff, dtype=float))
    s = diff.shape[0]
    per_chunk = chunk_means(diff.reshape(-1), list(chunks) * s)  # seeds and prompts of a chunk together
    per_chunk = per_chunk[np.isfinite(per_chunk)]
    g = int(per_chunk.size)
    iv = cluster_mean(per_chunk, unit="chunks") if g else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_seed = [float(np.nanmean(row)) for row in diff]
    return {
        "value": float(iv.estimate) if iv else float("nan"),
        "ci95": [float(iv.low), float(iv.high)] if iv else [float("nan"), float("nan")],
        "method": iv.method if iv else "no chunk", "n_clusters": g,
        "unit": f"chunks ({g} chunks; {n_prompts if n_prompts is not None else diff.shape[1]} prompts x {s} "
                f"seed{'s' * (s != 1)} averaged within each)",
        "per_seed": per_seed,
        "seed_spread": {"min": float(np.min(per_seed)), "max": float(np.max(per_seed)),
                        "sd": float(np.std(per_seed, ddof=1)) if s > 1 else 0.0},
    }


MEASURE_BETTER = {"reference_f1": "higher", "scorer_ppl": "lower", "distinct2": "higher"}


def compare_best_of(a_runs: list[dict], b_runs: list[dict], n_a: int, n_b: int, measure: str,
                    chunks: Sequence[int]) -> dict:
    """``measure`` of ``a``'s best-of-``n_a`` pick minus ``b``'s best-of-``n_b`` pick, per prompt and
    seed (run k of ``a`` paired with run k of ``b``: the same seed, so the same per-prompt sampling
    streams), with :func:`cluster_difference`'s interval over chunks."""
    a = np.stack([picked_values(r, n_a, measure) for r in a_runs])
    b = np.stack([picked_values(r, n_b, measure) for r in b_runs])
    out = cluster_difference(a - b, chunks)
    out.update({"measure": measure, "n_a": int(n_a), "n_b": int(n_b),
                "better": MEASURE_BETTER.get(measure, "lower" if measure.startswith("judge_nll:") else "higher"),
                "a_mean": float(np.nanmean(a)), "b_mean": float(np.nanmean(b))})
    return out


def load_judges(run: Exp10Run) -> tuple[dict, str]:
    """The independent judge models named in ``$SEMPHASE_JUDGE_MODEL`` (comma-separated), loaded on
    the run's device (``run.judges``, when set, is used as it is), and a note on what judged."""
    judges = getattr(run, "judges", None)
    if judges is None:
        names = [x.strip() for x in os.environ.get(JUDGE_ENV, "").split(",") if x.strip()]
        from ...models import load_model

        judges = {}
        for name in names:
            lm = load_model(name, run.lm.device)
            if lm.weights_sha256 == run.lm.weights_sha256:
                raise SemphaseError(f"{JUDGE_ENV}={name}: the judge is the model that generates and selects; name "
                                    "another model (an independent judge), or unset it.")
            judges[name] = lm
    if judges:
        return judges, "independent judge model(s): " + ", ".join(judges)
    return {}, (f"no independent judge model: only {run.lm.name} is available offline here; name one with "
                f"{JUDGE_ENV}=NAME (any model semphase loads; its tokenizer may differ: the text is re-encoded)")


def reference_nll(lm, P: torch.Tensor, R: torch.Tensor, replaced) -> list[float]:
    """Each prompt's true continuation: the mean loss per token under ``lm`` with ``replaced`` heads,
    in batches that keep the logits under :data:`semphase.generation.LOGITS_BYTES`."""
    group = max(1, int(LOGITS_BYTES // ((P.shape[1] + R.shape[1]) * 4 * max(1, _vocab(lm)))))
    out: list[float] = []
    for g0 in range(0, P.shape[0], group):
        out += continuation_nll(lm, P[g0:g0 + group], R[g0:g0 + group], replaced).double().mean(dim=1).tolist()
    return out


def judged_best_of_n(run: Exp10Run, conds: dict, jb: JudgedBudget, prompt_ts) -> dict:
    """C27's measurement (see the module docstring): ``baseline`` and the first relu condition,
    best-of-N on ``jb.prompts`` prompts spread over the chunks of ``prompt_ts``, ``jb.seeds`` seeds;
    each (condition, seed) and each condition's reference loss is a cache unit."""
    lm = run.lm
    P, R, where = spread_windows(prompt_ts, jb.prompts, jb.prompt_tokens, jb.new_tokens)
    chunks = [c for c, _ in where]
    names = list(conds)[:2]  # baseline, relu_a
    seeds = [run.seed + k for k in range(jb.seeds)]
    judges, judge_note = load_judges(run)
    entry = run.store.entry("recovery-judged", dict(
        sweeps.base_key(lm, prompt_ts), budget=jb.__dict__, seed=run.seed, windows=where,
        judges={k: v.weights_sha256 for k, v in sorted(judges.items())}))
    runs: dict[str, list[dict]] = {}
    ref: dict[str, list[float]] = {}
    with entry.lock(), run.progress.bar(len(names) * (len(seeds) + 1), "exp10P: best-of-N judged") as bar:
        for name in names:
            replaced = conds[name]
            unit = f"{name}-{key_hash({'replaced': [list(x) for x in replaced]})[:16]}"
            ref[name] = entry.get_or_compute(f"{unit}-reference", lambda: reference_nll(lm, P, R, replaced))
            bar.update()
            runs[name] = []
            for s in seeds:
                runs[name].append(entry.get_or_compute(f"{unit}-seed{s}", lambda: _strip(best_of_n(
                    lm, lm, P, R, jb.candidates, jb.ns, jb.new_tokens, temperature=jb.temperature, seed=s,
                    replaced=replaced, own_scores=True, with_reference=False, judges=judges))))
                bar.update()
    base, relu = names
    n_max = max(jb.ns)
    measures = ["reference_f1", "scorer_ppl"] + [f"judge_nll:{j}" for j in sorted(judges)]
    comparisons = {
        "original": {m: compare_best_of(runs[relu], runs[base], n_max, 1, m, chunks) for m in measures},
        "equal_compute": {m: compare_best_of(runs[relu], runs[base], n_max, n_max, m, chunks) for m in measures},
    }
    by_n = {name: {str(n): {m: float(np.nanmean(np.stack([picked_values(r, n, m) for r in runs[name]])))
                            for m in measures + ["distinct2"]} for n in jb.ns} for name in names}
    ref_diff = cluster_difference(np.asarray(ref[relu]) - np.asarray(ref[base]), chunks)
    ref_diff.update({"measure": "reference_nll", "better": "lower"})
    n_chunks = len(set(chunks))
    return {
        "budget": jb.__dict__, "conditions": {k: [list(x) for x in conds[k]] for k in names},
        "compared": {"a": relu, "b": base}, "n": n_max, "seeds": seeds,
        "prompts": {"n": int(P.shape[0]), "n_chunks": n_chunks, "min_chunks": jb.min_chunks,
                    "enough_chunks": n_chunks >= jb.min_chunks, "prompt_tokens": jb.prompt_tokens,
                    "generated_tokens": jb.new_tokens, "windows": where, "source": prompt_ts.describe()},
        "selection": "lowest baseline perplexity among the first N candidates (the original's rule); the baseline's "
                     "own scores come from its generation steps (cached forward)",
        "judges": sorted(judges), "judge_note": judge_note,
        "comparisons": comparisons, "by_n": by_n,
        "reference_nll": {"per_condition": {k: float(np.mean(v)) for k, v in ref.items()}, "difference": ref_diff,
                          "note": "each condition's mean loss per token on the true continuation of its prompt (the "
                                  "baseline's is the unablated model's); the same for every N and seed"},
        "per_seed": {name: [{k: v for k, v in r.items() if k != "per_prompt"} for r in runs[name]] for name in names},
        "per_prompt": {name: [r["per_prompt"] for r in runs[name]] for name in names},
        "reference_nll_per_prompt": ref,
        "generation_seconds": {name: float(sum(r["generation_seconds"] for r in runs[name])) for name in names},
    }


def part_p(run: Exp10Run, ev: dict, budget: RecoveryBudget | None = None,
           judged_budget: JudgedBudget | None = None) -> None:
    """Compute recovery (14, exp10P) on the held-out range; see the module docstring."""
    if not run.heldout:
        ev["recovery"] = None
        return
    rb = budget or RECOVERY_BUDGETS.get(run.budget.name, RECOVERY_BUDGETS["quick"])
    lm = run.lm
    P, R, where = prompt_windows(run.eval_ts, rb.prompts, rb.prompt_tokens, rb.new_tokens)
    conds = conditions(run, ev)
    speed, refine_res, bon = {}, {}, {}
    # each condition's three steps are cache units (keyed by the model, the held-out tokens, the
    # recovery budget, the seed and the replaced heads): an interrupted part p resumes at the next step;
    entry = run.store.entry("recovery", dict(sweeps.base_key(lm, run.eval_ts), budget=rb.__dict__, seed=run.seed,
                                             windows=where))

    def _speed(replaced):
        sp = P[:1, : min(64, rb.prompt_tokens)]
        cached = generate(lm, sp, rb.speed_new_tokens, replaced=replaced, use_cache=True)
        plain = generate(lm, sp, rb.speed_new_tokens, replaced=replaced, use_cache=False)
        return {"cache_tok_s": cached.tokens_per_second, "nocache_tok_s": plain.tokens_per_second,
                "cache_used": cached.used_cache, "cache_note": cached.cache_note,
                "same_tokens": bool(torch.equal(cached.tokens, plain.tokens))}

    # the entry's lock: with several workers on one cache, one measures and the others read
    with entry.lock(), run.progress.bar(len(conds) * 3, "exp10P: speed, refinement, best-of-N") as bar:
        for name, replaced in conds.items():
            unit = f"{name}-{key_hash({'replaced': [list(x) for x in replaced]})[:16]}"
            speed[name] = entry.get_or_compute(f"{unit}-speed", lambda: _speed(replaced))
            bar.update()
            refine_res[name] = entry.get_or_compute(f"{unit}-refine", lambda: _strip(
                self_refine(lm, lm, P, rb.iterations, rb.new_tokens, replaced=replaced)))
            bar.update()
            bon[name] = entry.get_or_compute(f"{unit}-best-of-n", lambda: _strip(
                best_of_n(lm, lm, P, R, rb.candidates, rb.ns, rb.new_tokens, temperature=0.8, seed=run.seed,
                          replaced=replaced)))
            bar.update()
    names = list(conds)
    relu_a = names[1]
    n_max = max(rb.ns)
    comparison = {}
    for measure in ("scorer_ppl", "reference_f1"):  # the 20-prompt protocol's relu_a@N against baseline@1
        c = compare_best_of([bon[relu_a]], [bon["baseline"]], n_max, 1, measure, [c for c, _ in where])
        comparison[measure] = dict(c, condition=relu_a, n=n_max)
    jb = judged_budget or JUDGED_BUDGETS.get(run.budget.name, JUDGED_BUDGETS["quick"])
    judged = judged_best_of_n(run, conds, jb, getattr(run, "prompt_ts", None) or run.eval_ts)
    ref = {name: bon[name]["reference_nll"]["mean"] for name in names}
    s = model_shapes(lm)
    a_heads = len(conds[relu_a])
    ctx_mean = rb.prompt_tokens + rb.new_tokens // 2
    flops = {
        "original": {"p3_ratio_30": original_p3_token_ratio(30), "p3_ratio_70": original_p3_token_ratio(70),
                     "extra_tokens_30": equal_flop_extra_tokens(original_p3_token_ratio(30)),
                     "extra_tokens_70": equal_flop_extra_tokens(original_p3_token_ratio(70)),
                     "p1_speedup_1024": {"30": original_p1_speedup(1024, 30), "70": original_p1_speedup(1024, 70)}},
        "gpt2_whole_model": {k: {"ratio": whole_model_token_ratio(GPT2_SMALL, k, 160),
                                 "extra_tokens": equal_flop_extra_tokens(whole_model_token_ratio(GPT2_SMALL, k, 160))}
                             for k in (30, 70)},
        "model_whole_model": {name: {
            "n_heads": len(r),
            **{f"ratio_{cost}": whole_model_token_ratio(s, len(r), ctx_mean, cost) for cost in ("original_kernel", "kernel")},
            **{f"extra_tokens_{cost}": equal_flop_extra_tokens(whole_model_token_ratio(s, len(r), ctx_mean, cost),
                                                               rb.new_tokens) for cost in ("original_kernel", "kernel")}}
            for name, r in conds.items() if r},
        "mean_context": ctx_mean,
    }
    ev["recovery"] = {
        "budget": rb.__dict__, "conditions": {k: [list(x) for x in v] for k, v in conds.items()},
        "prompts": {"n": int(P.shape[0]), "windows": where, "source": run.eval_ts.describe()},
        "speed": speed, "refinement": refine_res, "best_of_n": bon, "best_of_n_vs_baseline": comparison,
        "reference_nll": ref, "flops": flops, "relu_heads": a_heads, "seed": run.seed, "judged": judged,
        "p4": "not measured (needs token sets chunked at 128-1,024 tokens)",
    }


PART_FUNCTIONS = {"p": part_p}
