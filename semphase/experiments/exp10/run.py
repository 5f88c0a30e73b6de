"""What exp10's parts share: the part letters and what each needs first, the thresholds and step grids, the
run record (:class:`Exp10Run`: the model's engine, the token ranges, the rankings so far) and the small helpers
that turn sweeps into rankings and intervals. :mod:`.measure` (parts a-h), :mod:`.linearise` (i, j, k, l, v) and
:mod:`.recovery` (p) import it; it imports none of them.
"""
from __future__ import annotations

import math

import numpy as np

from ... import intervals, sweeps
from ...ablation import BLOCK, AblationEngine
from ...budgets import Budget
from ...cache import EvidenceStore
from ...data import TokenSet
from ...errors import SemphaseError
from ...stats import boot_ppl, interval, ppl, removable, removable_replicates, resampling, threshold_bracket
from . import EXPERIMENT

PARTS = "".join(EXPERIMENT.parts)
# What each part needs measured first (part p also reads part i's kernel sweep, for its kernel condition).
PART_NEEDS = {"b": "a", "c": "a", "d": "a", "e": "a", "h": "a", "f": "e", "g": "aef",
              "j": "i", "k": "j", "v": "k", "p": "j"}
THRESHOLDS = (1.1, 1.5, 2.0)
ORIGINAL_GRID = sorted(set(range(0, 141, 10)) | {5, 15, 25, 35, 43, 50, 144})
ORIGINAL_L0P_GRID = sorted(set(range(0, 131, 10)) | {5, 15, 25, 30, 35, 40, 50, 132})


def run_parts(ctx) -> str:
    """The exp10 parts a session measures: ``--parts`` where given, else the budget's (``Budget.exp10_parts``),
    else every part (before their needs are added: :func:`expand_parts`)."""
    return ctx.parts or ctx.budget.exp10_parts or PARTS


def budget_parts(budget_name: str) -> str | None:
    """The exp10 parts a budget limits a run to when ``--parts`` is not given (``Budget.exp10_parts``), or None."""
    from ...budgets import BUDGETS

    return getattr(BUDGETS.get(budget_name), "exp10_parts", None)


def unused_phase23_options(parts: str | None, budget_name: str, replace_layers=None, reuse_evidence=None) -> str | None:
    """Why ``--replace-layers`` / ``--reuse-evidence`` would be ignored (the parts measured, ``--parts`` or else the
    budget's, reach no phase 2-3 part), or None: the one check the command line and the pytest options share."""
    given = [o for o, v in (("--replace-layers", replace_layers), ("--reuse-evidence", reuse_evidence)) if v]
    limited = budget_parts(budget_name)
    if not given or "i" in expand_parts(parts or limited or ""):
        return None
    measured = f"--parts {parts}" if parts else f"--budget {budget_name} (parts {limited})"
    return (f"{', '.join(given)}: only exp10's phases 2-3 (parts i, j, k, v, p, which start from part i) use "
            f"{'it' if len(given) == 1 else 'them'}, and {measured} measures none of them; add part i (or j, k, v, p), "
            "or drop the option.")


def expand_parts(parts: str) -> str:
    chosen = set(parts.replace(",", "").strip().lower() or PARTS)
    unknown = chosen - set(PARTS)
    if unknown:
        raise SemphaseError(f"--parts {parts!r}: unknown part(s) {''.join(sorted(unknown))}; use letters from {PARTS}.")
    needs = PART_NEEDS
    while True:  # needs of needs, to the fixpoint
        more = {need for part in chosen for need in needs.get(part, "")} - chosen
        if not more:
            break
        chosen |= more
    return "".join(p for p in PARTS if p in chosen)



def grid(n_total: int, original: list[int] | None = None, original_n: int | None = None, step: int = 10) -> list[int]:
    """The cumulative step grid: the original's for GPT-2 small's head count, else steps of
    ``step`` (10; the smoke budget's 40) plus 5/15/25/35, 30 % of the heads, and all heads."""
    if original is not None and n_total == original_n:
        return list(original)
    steps = set(range(0, n_total + 1, step)) | {5, 15, 25, 35, math.ceil(0.3 * n_total), n_total}
    return sorted(s for s in steps if 0 <= s <= n_total)


def refine(steps: list[int], ratios: list[float], n_total: int) -> list[int]:
    """Every integer step inside each grid interval that crosses a threshold (the curves are not
    monotone, so an interval may cross one threshold more than once along the grid): thresholds
    are then resolved to one head wherever the curve crosses them."""
    extra: set[int] = set()
    for t in THRESHOLDS:
        for (a, ra), (b, rb) in zip(zip(steps, ratios), zip(steps[1:], ratios[1:])):
            if (ra <= t) != (rb <= t) and b - a > 1:
                extra |= set(range(a + 1, min(b, n_total + 1)))
    return sorted(set(steps) | extra)


def bisect_midpoints(steps: list[int], judged: list[float], thresholds=THRESHOLDS) -> list[int]:
    """One bisection round: for each threshold, the middle of the gap between the step it is read
    at (:func:`removable`) and the next measured step, where that gap hides more than one head.
    Repeated until it returns nothing, it resolves every threshold's point estimate to one head with
    about log2(gap) steps per threshold instead of :func:`refine`'s whole gap; between the step read
    and the next one it finds the last step within the threshold, not every crossing (a curve that
    dips back below inside the gap after rising above may be missed, as on the grid itself)."""
    mids: set[int] = set()
    for t in thresholds:
        lo, hi = threshold_bracket(steps, removable(steps, judged, t))
        if hi > lo:  # the next measured step is hi + 1
            mids.add((lo + hi + 1) // 2)
    return sorted(mids)


KEEP_CAPTURES_CHUNKS = 16  # sweeps that share captures (a bisection's rounds, part h's joints, C26's control orders)
# keep up to this many chunks' captures in memory between them


def kept_captures(ts) -> dict | None:
    """A dict in which sweeps of ``ts`` share each chunk's capture (:func:`sweeps.chunk_units`), or None where ``ts``
    has more than ``KEEP_CAPTURES_CHUNKS`` chunks (each sweep then captures its own, one chunk in memory at a time)."""
    return {} if ts.n_chunks <= KEEP_CAPTURES_CHUNKS else None
ORIGINAL_RATIO_DIGITS = 4  # the original printed and compared ratios to 4 decimals
ORIGINAL_DELTA_DIGITS = 6  # and ΔPPL to 6: reproduction curves round as it did before sorting


def _label(l: int, h: int) -> str:
    return f"L{l}H{h}"


def _distribution_stats(delta: np.ndarray) -> dict:
    flat = delta.ravel()
    return {
        "n_heads": int(flat.size),
        "n_negligible_1pct": int((np.abs(flat) < 0.01).sum()),
        "n_small_10pct": int((np.abs(flat) < 0.10).sum()),
        "n_negative": int((flat < 0).sum()),
        "mean_delta_ppl": float(flat.mean()),
        "median_delta_ppl": float(np.median(flat)),
        "max_delta_ppl": float(flat.max()),
        "min_delta_ppl": float(flat.min()),
    }


def _ranking(ppl_lh: np.ndarray, delta: np.ndarray, kind: str) -> list[dict]:
    L, H = delta.shape
    rows = [{"layer": l, "head": h, "ablation": kind, "ppl": float(ppl_lh[l, h]),
             "delta_ppl": float(delta[l, h])} for l in range(L) for h in range(H)]
    return rows


def _ascending_order(delta: np.ndarray, min_layer: int = 0, digits: int | None = None) -> list[list[int]]:
    """Heads ordered by |ΔPPL| ascending (least important first), ties by (layer, head); with
    ``digits``, ΔPPL rounded first (as the original did)."""
    if digits is not None:
        delta = np.round(delta, digits)
    L, H = delta.shape
    heads = [(l, h) for l in range(min_layer, L) for h in range(H)]
    heads.sort(key=lambda lh: (abs(delta[lh]), lh))
    return [[l, h] for l, h in heads]



PAIRED_DIFFERENCE = ("paired cluster bootstrap of the threshold difference (the same chunk draws for both curves), "
                     "percentile, widened to hold the estimate (semphase.intervals.threshold_difference_paired; "
                     "coverage measured by simulation)")


JACKKNIFE = "delete-one-chunk jackknife, t on G - 1 df (semphase.intervals.jackknife; coverage measured by simulation)"


def _jk(value: float, loo_replicates: np.ndarray) -> list[float]:
    """The jackknife interval of ``value`` from its delete-one-chunk replicates (semphase.intervals.jackknife)."""
    iv = intervals.jackknife(value, loo_replicates)
    return [float(iv.low), float(iv.high)]


def paired_difference_ci(diff_replicates: np.ndarray, value: float) -> list[float]:
    """The interval of a difference of two thresholds from paired bootstrap replicates (same chunk draws):
    the percentile interval, widened where needed so that it holds the estimate ``value``
    (:func:`semphase.intervals.threshold_difference_paired` is the same method on per-chunk sums)."""
    lo, hi = interval(diff_replicates)
    return [float(min(lo, value)), float(max(hi, value))]

class Exp10Run:
    """State shared by the parts of one measurement.

    ``ts`` is the rank range (the original's data at the quick budget): rankings, means and the
    in-sample curves come from it. ``eval_ts`` is the held-out range after it: held-out curves and
    effects are measured there, with intervals that resample chunks (a cluster bootstrap) when
    it has at least 8, else blocks (said in the evidence).
    """

    def __init__(self, lm, ts: TokenSet, budget: Budget, store: EvidenceStore,
                 progress: sweeps.Progress, head_batch: int = 1, seed: int = 0,
                 layers: list[int] | None = None, eval_ts: TokenSet | None = None):
        self.lm = lm
        self.layers = layers
        self.ts = ts
        self.eval_ts = eval_ts
        self.budget = budget
        self.store = store
        self.progress = progress
        self.engine = AblationEngine(lm, head_batch=head_batch)
        self.seed = seed
        self.cnt = sweeps.counts(ts)
        self.heldout = eval_ts is not None
        self.n_total = lm.n_heads_total
        if self.heldout:
            self.eval_w, self.eval_unit = resampling(eval_ts.n_chunks, len(self.cnt), BLOCK, seed=seed)
            self.eval_loo = np.repeat(intervals.leave_one_out(eval_ts.n_chunks), len(self.cnt), axis=1)
        self.in_w, self.in_unit = resampling(ts.n_chunks, len(self.cnt), BLOCK, seed=seed)
        # delete-one-chunk weights [G, G * blocks] for the jackknife intervals of smooth statistics
        self.in_loo = np.repeat(intervals.leave_one_out(ts.n_chunks), len(self.cnt), axis=1)
        # filled in by the parts, in order
        self.base_blocks = self.base_eval_blocks = self.zero = self.zero_eval = self.zero_delta = None
        self.base = self.base_eval = None
        self.means_all = self.mean_delta = None
        # phase 2 (linearise.py): per-method ΔPPL of single-head replacement, the best method and its rankings
        self.lin_delta: dict[str, np.ndarray] = {}
        self.best_method = self.best_order = None
        self.mixed_order = self.mixed_order_heldout = None
        self.timing: dict[str, float] = {}
        self.cross_ts: TokenSet | None = None  # C26's second rank range B (part v), when the data hold one
        self.lin_delta_every: dict | None = None  # C23 on a layer sample: relu ΔPPL of every layer and its source
        self._blocks: dict[str, tuple[list[int], np.ndarray]] = {}  # curve name -> (steps, loss sums [step, chunk, block])

    def P(self, blocks: np.ndarray) -> np.ndarray:
        return ppl(blocks, self.cnt)

    def boot_delta(self, blocks: np.ndarray, base_blocks: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Bootstrap replicates of ΔPPL = PPL(blocks)/PPL(base) - 1, paired (same resample):
        blocks [..., chunk, block] -> [n_boot, ...]."""
        b = boot_ppl(blocks, self.cnt, w)
        base = boot_ppl(base_blocks, self.cnt, w)
        return b / base.reshape((-1,) + (1,) * (b.ndim - 1)) - 1

    def curve_record(self, name: str, kind: str, order, steps, ts: TokenSet, base_blocks: np.ndarray,
                     means=None, means_tokens=None, fine: bool | str = False, description: str = "",
                     original: bool = False, weights: np.ndarray | None = None, unit: str = "",
                     measure_curve=None, refine_at=THRESHOLDS) -> dict:
        """A cumulative curve: ratios to the baseline of the same tokens, thresholds, and (with
        ``weights``) bootstrap intervals of each threshold's head count. ``fine``: True resolves
        every crossing to one head (:func:`refine`, the whole gap); ``"bisect"`` the point estimate
        of each threshold of ``refine_at`` (:func:`bisect_midpoints`: about log2 of the gap, each
        round measuring only its midpoints, with the chunks captured once for all rounds where
        there are at most ``KEEP_CAPTURES_CHUNKS``). ``original``: the original's protocol (ratios
        rounded to 4 decimals before the thresholds). ``measure_curve(steps, name, captures)``
        measures the per-block loss sums of the steps (default: :func:`sweeps.curve` with ``kind``;
        exp10's mixed curves give each head its own kind)."""
        if measure_curve is None:
            def measure_curve(st, label, captures=None):
                return sweeps.curve(self.engine, ts, kind, order, st, self.store, means, means_tokens,
                                    name=label, progress=self.progress, captures=captures)
        base_ppl = float(self.P(base_blocks))

        def judge(blocks):  # ratios to the baseline, and the ones thresholds are read from
            ratios = [float(x) / base_ppl for x in ppl(blocks, self.cnt)]
            return ratios, ([round(r, ORIGINAL_RATIO_DIGITS) for r in ratios] if original else ratios)

        captures = kept_captures(ts) if fine == "bisect" else None
        blocks = measure_curve(steps, name, captures)
        ratios, judged = judge(blocks)
        coarse = {str(t): removable(steps, judged, t) for t in THRESHOLDS}
        if fine == "bisect":
            by_step = dict(zip(steps, blocks))
            while mids := bisect_midpoints(steps, judged, refine_at):
                by_step.update(zip(mids, measure_curve(mids, name + " (bisection)", captures)))
                steps = sorted(by_step)
                blocks = np.stack([by_step[s] for s in steps])
                ratios, judged = judge(blocks)
            captures = None
        elif fine:
            fine_steps = refine(steps, ratios, len(order))
            if fine_steps != steps:
                blocks = measure_curve(fine_steps, name + " (fine)")
                steps = fine_steps
                ratios, judged = judge(blocks)
        thresholds = {str(t): removable(steps, judged, t) for t in THRESHOLDS}
        self._blocks[name] = (list(steps), blocks)
        rec = {
            "name": name,
            "description": description,
            "ablation": kind,
            "tokens": ts.meta.get("subset", "all"),
            "token_range": ts.meta.get("token_range"),
            "n_candidates": len(order),
            "order": order,
            "steps": list(steps),
            "ppl": [r * base_ppl for r in ratios],
            "ratio": ratios,
            "baseline_ppl": base_ppl,
            "thresholds": thresholds,
            "thresholds_coarse_grid": coarse,
            "thresholds_bracket": {t: threshold_bracket(steps, th) for t, th in thresholds.items()},
            "refinement": {False: "none", True: "every step of each crossing gap"}.get(
                fine, "bisection of the gap of threshold(s) " + ", ".join(f"{t}x" for t in refine_at)),
            "ratios_rounded_as_original": original,
        }
        if weights is not None:
            # Each threshold's interval: test inversion of per-step cluster t bounds over chunks
            # (semphase.intervals.threshold; coverage measured by simulation). The paired bootstrap
            # replicates are kept for differences of two curves on the same chunks (paired_difference).
            chunk_nll = np.asarray(blocks).sum(axis=-1)  # [step, chunk]
            base_nll = np.asarray(base_blocks).sum(axis=-1)  # [chunk]
            chunk_cnt = np.full(base_nll.shape[-1], float(np.sum(self.cnt)))
            ivs = {str(t): intervals.threshold(steps, chunk_nll, base_nll, chunk_cnt, t, unit="chunks")
                   for t in THRESHOLDS}
            rec["thresholds_ci95"] = {t: [int(iv.low), int(iv.high)] for t, iv in ivs.items()}
            rec["interval_method"] = next(iter(ivs.values())).method
            rec["chunk_nll"] = {"baseline": base_nll.tolist(), "counts": chunk_cnt.tolist(), "steps": chunk_nll.tolist()}
            bratio = boot_ppl(blocks, self.cnt, weights) / boot_ppl(base_blocks, self.cnt, weights)[:, None]
            reps = {str(t): removable_replicates(steps, bratio, t) for t in THRESHOLDS}
            rec["interval_unit"] = f"chunks ({base_nll.shape[-1]} chunks; {rec['interval_method']})"
            self._replicates = getattr(self, "_replicates", {})
            self._replicates[name] = reps
        return rec


# -- the parts, in order; each reads what earlier parts left on ``run`` and writes into ``ev`` ------
