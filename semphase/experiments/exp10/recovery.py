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
* P3 best-of-N: seeded sampling at temperature 0.8; the original's selection and score (baseline
  perplexity of the candidate) beside independent measures (:func:`semphase.generation.best_of_n`):
  bigram F1 with the true continuation and the condition's loss on the true continuation; the
  difference relu_a@N=max minus baseline@N=1 with an interval that resamples prompts.
* The equal-FLOP arithmetic: the original's attention-only ratio and extra tokens, and the
  whole-model ones for GPT-2 small and this model.

P4 (perplexity at context lengths 128-1,024) needs token sets chunked at each length; it is not
built here (the engine's curves on such sets would measure it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...flops import (GPT2_SMALL, equal_flop_extra_tokens, model_shapes, original_p1_speedup, original_p3_token_ratio,
                      whole_model_token_ratio)
from ... import sweeps
from ...cache import key_hash
from ...errors import SemphaseError
from ...generation import best_of_n, generate, self_refine
from ...stats import interval
from .linearise import KERNEL
from .measure import Exp10Run

PART_NEEDS = {"p": "j"}  # plus part i's kernel sweep for the kernel condition


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


def part_p(run: Exp10Run, ev: dict, budget: RecoveryBudget | None = None) -> None:
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
    n_max = str(max(rb.ns))
    rng = np.random.default_rng([run.seed, 27])
    idx = rng.integers(0, P.shape[0], size=(rb.n_boot, P.shape[0]))
    comparison = {}
    for measure, better in (("scorer_ppl", "lower"), ("reference_f1", "higher")):
        a = np.array([p[measure][k] for p, k in zip(bon[relu_a]["per_prompt"], bon[relu_a]["best_of"][n_max]["picked"])])
        b = np.array([p[measure][0] for p in bon["baseline"]["per_prompt"]])  # N = 1: the first candidate
        diff = a - b
        comparison[measure] = {"condition": relu_a, "n": int(n_max), "better": better,
                               "value": float(diff.mean()), "ci95": list(interval(diff[idx].mean(axis=1))),
                               "unit": f"prompts ({P.shape[0]} windows from {len({c for c, _ in where})} chunks)"}
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
        "reference_nll": ref, "flops": flops, "relu_heads": a_heads, "seed": run.seed,
        "p4": "not measured (needs token sets chunked at 128-1,024 tokens)",
    }


PART_FUNCTIONS = {"p": part_p}
