"""Experiment 10's measurement (science.md sections 10-14): head ablation (phases 1 and 1.5),
softmax linearisation and the validation on more data (phase 2), compute recovery (phase 3).

:func:`measure` computes the evidence (a JSON-ready dict) for the selected parts, one function
per part (:data:`PART_FUNCTIONS`; the letters and what each measures are declared in
``semphase/experiments/exp10/__init__.py``). Parts a-h live here, i, j, k, l and v in
:mod:`.linearise`, p in :mod:`.recovery`.

Two disjoint token ranges: heads are ranked, means estimated and the in-sample (original
protocol) curves measured on the *rank* range (the original's first 2,048 validation tokens at
the quick budget); held-out curves and effects are measured on the *eval* range after it (8,192
tokens, 8 chunks, at quick; the rest of the split at full), with intervals that resample chunks.
"""
from __future__ import annotations

import time

import numpy as np

from ... import sweeps
from ...cache import EvidenceStore
from ...data import TokenSet
from ...errors import SemphaseError
from ...provenance import run_provenance
from ...stats import (N_BOOT, correlation, heavy_tail_comparison, heavy_tail_powerlaw, ppl, zipf_fit)
from ...budgets import Budget
from .run import (JACKKNIFE, ORIGINAL_DELTA_DIGITS, ORIGINAL_GRID, ORIGINAL_L0P_GRID, PAIRED_DIFFERENCE, PART_NEEDS, PARTS,
                  Exp10Run, _ascending_order, _distribution_stats, _jk, _label, _ranking, expand_parts, grid,
                  kept_captures, paired_difference_ci, run_parts)

def reusable_parts() -> dict:
    """Parts an earlier run's evidence can stand in for (``--reuse-evidence``): part -> a function
    ``restore(run, ev, prev)`` that puts on ``run`` and into ``ev`` what the part would have."""
    from . import linearise

    return dict(linearise.RESTORE)


def reuse_mismatch(prev: dict, ev: dict, run: "Exp10Run") -> str | None:
    """Why ``prev`` (an earlier run's exp10 evidence) cannot stand in for parts of this run, or
    None when it can: the same model weights, processing, dtype and device type, measurement
    version, budget, seed and rank-range tokens (the reusable parts read only the rank range)."""
    from ... import MEASUREMENT_VERSION

    prov = prev.get("provenance") or {}
    theirs, mine = prov.get("model") or {}, run.lm.provenance()
    checks = [
        ("experiment", prev.get("experiment"), "exp10"),
        ("model", prev.get("model"), ev["model"]),
        ("weights sha256", theirs.get("weights_sha256"), mine.get("weights_sha256")),
        ("processing", theirs.get("processing"), mine.get("processing")),
        ("dtype", theirs.get("dtype"), mine.get("dtype")),
        ("device type", str(theirs.get("device", "")).split(":")[0], str(mine.get("device")).split(":")[0]),
        ("measurement version", prov.get("measurement_version"), MEASUREMENT_VERSION),
        ("budget", prev.get("budget"), ev["budget"]),
        ("seed", prev.get("seed"), run.seed),
        ("rank-range tokens sha256", (prev.get("data") or {}).get("tokens_sha256"), run.ts.fingerprint),
        ("chunk length", (prev.get("data") or {}).get("ctx"), run.ts.ctx),
    ]
    for what, was, now in checks:
        if was != now:
            return f"its {what} is {was!r}, this run's is {now!r}"
    return None


def _reuse(run: "Exp10Run", ev: dict, part: str, prev: dict | None) -> bool:
    """Restore ``part`` from ``prev`` when it holds the part and matches this run (True), else
    False (the part is measured). A file that holds the part but does not match stops the run:
    the user asked for reuse, and a silent re-measurement could cost hours."""
    restore = reusable_parts().get(part)
    if prev is None or restore is None or part not in prev.get("parts", ""):
        return False
    why = reuse_mismatch(prev, ev, run)
    if why:
        raise SemphaseError(f"--reuse-evidence: the file's part {part} cannot stand in for this run's: {why}. "
                            "Drop the option to measure it.")
    if restore(run, ev, prev) == "measured":  # the file held more than this part (C23's every-layer relu ΔPPL)
        return True
    prov = prev["provenance"]
    ev.setdefault("reused", {})[part] = {
        "source": prev.get("_reuse_path"), "git_commit": prov.get("git_commit"),
        "finished_utc": prov.get("finished_utc"), "device": prov["model"].get("device"),
        "wall_seconds": prov.get("wall_seconds")}
    run.progress.say(f"part {part}: reused from {prev.get('_reuse_path')} (measured {prov.get('finished_utc')})")
    return True


def load_reuse(path: str | None) -> dict | None:
    """An earlier run's exp10 evidence file (``data/exp10_MODEL.json`` as a run writes it, or its
    ``evidence``), or a clear error."""
    import json
    from pathlib import Path

    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise SemphaseError(f"--reuse-evidence {path!r}: no such file; give an exp10 data file an earlier run wrote "
                            "(OUTPUT/data/exp10_MODEL.json).")
    try:
        obj = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise SemphaseError(f"--reuse-evidence {path!r}: not readable JSON ({exc}).") from None
    ev = obj.get("evidence", obj) if isinstance(obj, dict) else None
    if not isinstance(ev, dict) or ev.get("experiment") != "exp10" or "provenance" not in ev:
        raise SemphaseError(f"--reuse-evidence {path!r}: not exp10 evidence with its provenance.")
    return dict(ev, _reuse_path=str(p))


def all_parts() -> tuple[dict, dict]:
    """Every part's function and needs: a-h from this module, i, j, k, l, v from
    :mod:`.linearise` and p from :mod:`.recovery` (imported when asked for, so that importing this module loads
    no phase 2-3 code; they import :mod:`.run`, not this module)."""
    from . import linearise, recovery

    functions = {**PART_FUNCTIONS, **linearise.PART_FUNCTIONS, **recovery.PART_FUNCTIONS}
    needs = PART_NEEDS
    missing = set(PARTS) ^ set(functions)
    if missing:
        raise SemphaseError(f"exp10's declared parts and part functions differ: {''.join(sorted(missing))}")
    return functions, needs


def part_a(run: Exp10Run, ev: dict) -> None:
    """Single-head zero-ablation of every head (of the swept layers) on the rank range. Its
    held-out sweep (every head on the held-out range, 4x the rank range's forwards at quick) is
    measured by :func:`_zero_eval` for the parts that read it (b), not for those that need only
    the ranking (e, f, ...)."""
    H = run.lm.n_heads
    run.zero = sweeps.single_sweep(run.engine, run.ts, "zero", run.store, run.layers, progress=run.progress)
    zero_ppl = run.P(run.zero)
    run.zero_delta = zero_ppl / run.base - 1
    ev["zero"] = {"heads": _ranking(zero_ppl, run.zero_delta, "zero")}
    ranked = sorted(((float(run.zero_delta[l, h]), l, h) for l in ev["layers"] for h in range(H)), reverse=True)
    ev["zero"]["top10"] = [{"layer": l, "head": h, "delta_ppl": d, "ppl": float(zero_ppl[l, h])}
                           for d, l, h in ranked[:10]]


def _zero_eval(run: Exp10Run, ev: dict) -> None:
    """Part a's held-out sweep: every head zero-ablated alone on the held-out range (once per run)."""
    if run.zero_eval is None and run.heldout and ev["all_layers"]:
        run.zero_eval = sweeps.single_sweep(run.engine, run.eval_ts, "zero", run.store, None,
                                            progress=run.progress)
        ev["zero"]["delta_eval"] = (run.P(run.zero_eval) / run.base_eval - 1).tolist()


def part_b(run: Exp10Run, ev: dict) -> None:
    """The zero ΔPPL distribution: the original's statistics and Zipf fit on the rank range;
    the layer-0 share (interval over chunks) and the heavy-tail comparison (``powerlaw``) on the
    held-out range when there is one."""
    _zero_eval(run, ev)
    zero_delta = run.zero_delta
    layer_means = zero_delta.mean(axis=1)
    fit = zipf_fit(zero_delta)
    ev["stats"] = {
        **_distribution_stats(zero_delta),
        "zipf_fit": None if fit is None else {"C": fit.C, "alpha": fit.alpha, "n_positive": fit.n_positive},
        "heavy_tail_in_sample": heavy_tail_powerlaw(zero_delta.ravel()),
        "heavy_tail_mle_xmin_smallest": heavy_tail_comparison(zero_delta.ravel()),
        "layer0_mean_over_rest_mean": float(layer_means[0] / layer_means[1:].mean())
        if layer_means[1:].mean() != 0 else float("inf"),
        "top10_in_layer0": sum(1 for r in ev["zero"]["top10"] if r["layer"] == 0),
    }
    # the layer-0 share, on the held-out range when there is one (else in-sample)
    if run.heldout:
        blocks, base_blocks, w, unit, where = run.zero_eval, run.base_eval_blocks, run.eval_loo, run.eval_unit, "eval"
        delta = np.asarray(ev["zero"]["delta_eval"])
    else:
        blocks, base_blocks, w, unit, where = run.zero, run.base_blocks, run.in_loo, run.in_unit, "rank"
        delta = zero_delta
    pos = np.clip(delta, 0, None)
    bpos = np.clip(run.boot_delta(blocks, base_blocks, w), 0, None)  # [chunk left out, L, H]
    bshare = bpos[:, 0].sum(axis=1) / np.maximum(bpos.sum(axis=(1, 2)), 1e-300)
    share = float(pos[0].sum() / pos.sum()) if pos.sum() > 0 else float("nan")
    ev["stats"].update({
        "layer0_share": share,
        "layer0_share_ci95": _jk(share, bshare),
        "layer0_share_tokens": where,
        "layer0_share_unit": f"chunks ({w.shape[0]} {'held-out' if run.heldout else 'rank-range'} chunks; {JACKKNIFE})",
        "heavy_tail": heavy_tail_powerlaw(delta.ravel()),
        "heavy_tail_tokens": where,
    })


def part_c(run: Exp10Run, ev: dict) -> None:
    """Cumulative zero-ablation: in-sample on the original grid (the original's rounding), and
    ranked on the rank range, evaluated on the held-out range (refined at every crossing)."""
    curves = ev.setdefault("curves", {})
    curves["zero_all"] = run.curve_record(
        "zero_all", "zero", _ascending_order(run.zero_delta, digits=ORIGINAL_DELTA_DIGITS),
        grid(run.n_total, ORIGINAL_GRID, 144, run.budget.grid_step), run.ts, run.base_blocks, original=True,
        description="zero-ablation, all heads, ranked and evaluated on the rank range (original protocol)")
    if run.heldout:
        curves["zero_all_heldout"] = run.curve_record(
            "zero_all_heldout", "zero", _ascending_order(run.zero_delta), grid(run.n_total, step=run.budget.grid_step), run.eval_ts,
            run.base_eval_blocks, fine=run.budget.refine, weights=run.eval_w, unit=run.eval_unit,
            description="zero-ablation, all heads, ranked on the rank range, evaluated on the held-out range")


def part_d(run: Exp10Run, ev: dict) -> None:
    """Per-layer importance; C19's correlation with exp3's dg/dx is attached when C19 is asked
    (:func:`attach_g`)."""
    ev["layer"] = {"mean_delta_ppl": run.zero_delta.mean(axis=1).tolist(),
                   "max_delta_ppl": run.zero_delta.max(axis=1).tolist(), "g_correlation": None,
                   "g_missing_reason": "C19 was not evaluated in this run, so exp3's g(l/L) was not asked for"}


def part_e(run: Exp10Run, ev: dict) -> None:
    """Single-head mean-ablation with means from the rank range; the top head's constant-bias
    test on the held-out range."""
    ts, store, progress = run.ts, run.store, run.progress
    zero_delta = run.zero_delta
    run.means_all = sweeps.head_means(run.engine, ts, store, progress)
    mean = sweeps.single_sweep(run.engine, ts, "mean", store, None, run.means_all, ts.fingerprint, progress)
    mean_ppl = run.P(mean)
    run.mean_delta = mean_delta = mean_ppl / run.base - 1
    flips = (np.sign(mean_delta) != np.sign(zero_delta)) & (zero_delta != 0)
    ev["mean"] = {
        "means_tokens": "the rank range (in-sample for the original's protocol; held out from the eval range)",
        "heads": _ranking(mean_ppl, mean_delta, "mean"),
        "stats": _distribution_stats(mean_delta),
        "zero_stats": _distribution_stats(zero_delta),
        "mean_over_zero_mean_delta": float(mean_delta.mean() / zero_delta.mean()) if zero_delta.mean() else None,
        "n_sign_flips": int(flips.sum()),
        "layer_mean_delta_ppl": mean_delta.mean(axis=1).tolist(),
    }
    if not run.heldout:
        return
    # The model's own top head (largest zero ΔPPL on the rank range): is it a constant bias?
    tl, th = map(int, np.unravel_index(np.argmax(zero_delta), zero_delta.shape))
    top_mean = sweeps.joint(run.engine, run.eval_ts, "mean", [(tl, th)], store, run.means_all, ts.fingerprint,
                            name=f"L{tl}H{th} mean (eval)", progress=progress)
    if run.zero_eval is not None:
        eval_zero = run.zero_eval[tl, th]
    else:  # part b did not run: that one head alone, not the whole held-out sweep
        eval_zero = sweeps.joint(run.engine, run.eval_ts, "zero", [(tl, th)], store, name=f"L{tl}H{th} zero (eval)",
                                 progress=progress)
    bzero = run.boot_delta(eval_zero, run.base_eval_blocks, run.eval_loo)  # [chunk left out]
    bmean = run.boot_delta(top_mean, run.base_eval_blocks, run.eval_loo)
    with np.errstate(divide="ignore", invalid="ignore"):
        bratio = np.where(bmean > 0, bzero / bmean, np.inf)
        bshare = 1 - bmean / bzero
    z_eval = float(ppl(eval_zero, run.cnt) / run.base_eval - 1)
    m_eval = float(ppl(top_mean, run.cnt) / run.base_eval - 1)
    ev["top_head"] = {
        "head": [tl, th], "label": _label(tl, th),
        "zero_delta_rank": float(zero_delta[tl, th]),
        "zero_delta_eval": z_eval, "zero_delta_eval_ci95": _jk(z_eval, bzero),
        "mean_delta_eval": m_eval, "mean_delta_eval_ci95": _jk(m_eval, bmean),
        "ratio_zero_over_mean": z_eval / m_eval if m_eval > 0 else float("inf"),
        "ratio_ci95": _jk(z_eval / m_eval if m_eval > 0 else float("inf"), bratio),
        "bias_share": 1 - m_eval / z_eval if z_eval else None,
        "bias_share_ci95": _jk(1 - m_eval / z_eval if z_eval else float("nan"), bshare),
        "interval_unit": f"chunks ({run.eval_ts.n_chunks}; {JACKKNIFE})",
    }


def part_f(run: Exp10Run, ev: dict) -> None:
    """Layer-0-protected cumulative mean-ablation, in-sample and held-out."""
    H = run.lm.n_heads
    curves = ev.setdefault("curves", {})
    curves["mean_l0p"] = run.curve_record(
        "mean_l0p", "mean", _ascending_order(run.mean_delta, 1, ORIGINAL_DELTA_DIGITS),
        grid(run.n_total - H, ORIGINAL_L0P_GRID, 132, run.budget.grid_step), run.ts, run.base_blocks, run.means_all, run.ts.fingerprint,
        original=True,
        description="mean-ablation (in-sample means), layer 0 protected, in-sample ranking (original protocol)")
    if run.heldout:
        curves["mean_l0p_heldout"] = run.curve_record(
            "mean_l0p_heldout", "mean", _ascending_order(run.mean_delta, 1), grid(run.n_total - H, step=run.budget.grid_step), run.eval_ts,
            run.base_eval_blocks, run.means_all, run.ts.fingerprint, fine=run.budget.refine, weights=run.eval_w,
            unit=run.eval_unit,
            description="mean-ablation with means and ranking from the rank range, layer 0 protected, evaluated "
                        "on the held-out range")


def part_g(run: Exp10Run, ev: dict) -> None:
    """The layer-0-protected zero curves beside the mean ones (the three curves), in-sample and
    held-out, and the held-out mean-minus-zero difference at 1.1x with its interval."""
    H = run.lm.n_heads
    curves = ev.setdefault("curves", {})
    curves["zero_l0p"] = run.curve_record(
        "zero_l0p", "zero", _ascending_order(run.zero_delta, 1, ORIGINAL_DELTA_DIGITS),
        grid(run.n_total - H, ORIGINAL_L0P_GRID, 132, run.budget.grid_step), run.ts, run.base_blocks, original=True,
        description="zero-ablation, layer 0 protected, in-sample ranking (original protocol)")
    if run.heldout:
        curves["zero_l0p_heldout"] = run.curve_record(
            "zero_l0p_heldout", "zero", _ascending_order(run.zero_delta, 1), grid(run.n_total - H, step=run.budget.grid_step), run.eval_ts,
            run.base_eval_blocks, fine=run.budget.refine, weights=run.eval_w, unit=run.eval_unit,
            description="zero-ablation, layer 0 protected, ranked on the rank range, evaluated on the held-out range")
        reps = getattr(run, "_replicates", {})
        if "mean_l0p_heldout" in reps:
            diff = reps["mean_l0p_heldout"]["1.1"] - reps["zero_l0p_heldout"]["1.1"]  # paired: same resamples
            value = curves["mean_l0p_heldout"]["thresholds"]["1.1"] - curves["zero_l0p_heldout"]["thresholds"]["1.1"]
            ev["mean_minus_zero_l0p_heldout"] = {
                "at": "1.1", "value": value, "ci95": paired_difference_ci(diff, value),
                "unit": run.eval_unit, "interval_method": PAIRED_DIFFERENCE}


def _interaction(run: Exp10Run, heads: list[tuple[int, int]], name: str, captures: dict | None = None) -> dict:
    """Joint zero-ablation of ``heads`` on the held-out range against the sum of their
    individual effects there (relative ΔPPL and log-PPL), with paired intervals. ``captures``: the
    held-out chunks' captures, shared by the joints of one part (each chunk captured once)."""
    jz = sweeps.joint(run.engine, run.eval_ts, "zero", heads, run.store, name=name, progress=run.progress,
                      captures=captures)
    idx_l = [l for l, _ in heads]
    idx_h = [h for _, h in heads]
    indiv = run.zero_eval[idx_l, idx_h]  # [k, chunk, block]
    base = run.base_eval
    ind = ppl(indiv, run.cnt) / base - 1
    joint_d = float(ppl(jz, run.cnt) / base - 1)
    bind = run.boot_delta(indiv, run.base_eval_blocks, run.eval_loo)  # [chunk left out, k]
    bjoint = run.boot_delta(jz, run.base_eval_blocks, run.eval_loo)
    log_ind = np.log1p(ind)
    return {
        "n": len(heads), "heads": [[l, h] for l, h in heads],
        "sum_individual_delta": float(ind.sum()), "sum_individual_delta_ci95": _jk(float(ind.sum()), bind.sum(axis=1)),
        "joint_delta": joint_d, "joint_delta_ci95": _jk(joint_d, bjoint),
        "interaction": joint_d - float(ind.sum()),
        "interaction_ci95": _jk(joint_d - float(ind.sum()), bjoint - bind.sum(axis=1)),
        "interaction_log_ppl": float(np.log1p(joint_d) - log_ind.sum()),
        "interaction_log_ppl_ci95": _jk(float(np.log1p(joint_d) - log_ind.sum()),
                                        np.log1p(bjoint) - np.log1p(bind).sum(axis=1)),
        "interval_method": JACKKNIFE,
    }


def part_h(run: Exp10Run, ev: dict) -> None:
    """Harmful heads (zero ΔPPL < 0 on the rank range): in-sample joint vs summed effects (the
    original's protocol); on the held-out range the sign flip, the interaction in ΔPPL and in
    log-PPL, and its null: same-size sets of random heads and the least-important heads."""
    L, H = run.lm.n_layers, run.lm.n_heads
    ts, store, progress, zero_delta = run.ts, run.store, run.progress, run.zero_delta
    rounded = np.round(zero_delta, ORIGINAL_DELTA_DIGITS)
    harmful = [(l, h) for l in range(L) for h in range(H) if rounded[l, h] < 0]
    hz = {"heads": [[l, h] for l, h in harmful],
          "individual_delta": [float(rounded[l, h]) for l, h in harmful],
          "sum_individual_delta": float(sum(rounded[l, h] for l, h in harmful))}
    if len(harmful) >= 1:
        jz = sweeps.joint(run.engine, ts, "zero", harmful, store, name="harmful joint zero", progress=progress)
        hz["joint_zero_ppl"] = float(ppl(jz, run.cnt))
        hz["joint_zero_delta"] = round(hz["joint_zero_ppl"] / run.base - 1, ORIGINAL_DELTA_DIGITS)
        if run.means_all is not None:
            jm = sweeps.joint(run.engine, ts, "mean", harmful, store, run.means_all, ts.fingerprint,
                              name="harmful joint mean", progress=progress)
            hz["joint_mean_ppl"] = float(ppl(jm, run.cnt))
            hz["joint_mean_delta"] = hz["joint_mean_ppl"] / run.base - 1
    ev["harmful"] = hz
    if not run.heldout:
        return
    _zero_eval(run, ev)  # the held-out effects of each head alone (part b measures them too, once per run)
    harm = [(l, h) for l in range(L) for h in range(H) if zero_delta[l, h] < 0]
    hh: dict = {"heads": [[l, h] for l, h in harm], "n": len(harm), "interval_unit": f"chunks ({run.eval_ts.n_chunks}; {JACKKNIFE})"}
    if len(harm) >= 2:
        # the 2 + null_sets joints below run on the same held-out chunks: each chunk is captured once for all of
        # them (identical losses; about half of each joint's forwards saved) where that fits in memory
        caps = kept_captures(run.eval_ts)
        hh.update(_interaction(run, harm, "harmful joint zero (eval)", caps))
        k = len(harm)
        harm_set = set(harm)
        least = [tuple(x) for x in _ascending_order(zero_delta) if tuple(x) not in harm_set][:k]
        hh["least_important"] = _interaction(run, sorted(least), "least-important joint zero (eval)", caps)
        rng = np.random.default_rng([run.seed, 22])
        all_heads = [(l, h) for l in range(L) for h in range(H)]
        null = []
        n_sets = run.budget.null_sets
        with run.progress.bar(n_sets, "C22 null: random head sets") as bar:
            for i in range(n_sets):
                pick = sorted(all_heads[j] for j in rng.choice(len(all_heads), size=k, replace=False))
                r = _interaction(run, pick, f"random set {i} joint zero (eval)", caps)
                null.append({"interaction": r["interaction"], "interaction_log_ppl": r["interaction_log_ppl"]})
                bar.update()
        vals = np.array([x["interaction"] for x in null])
        logs = np.array([x["interaction_log_ppl"] for x in null])
        hh["null_random_sets"] = {
            "n": n_sets, "set_size": k, "interaction": vals.tolist(), "q95": float(np.quantile(vals, 0.95)),
            "median": float(np.median(vals)), "interaction_log_ppl_q95": float(np.quantile(logs, 0.95)),
            "p_value": float((1 + np.sum(vals >= hh["interaction"])) / (1 + n_sets))}
    ev["harmful_heldout"] = hh


PART_FUNCTIONS = {"a": part_a, "b": part_b, "c": part_c, "d": part_d, "e": part_e, "f": part_f, "g": part_g,
                  "h": part_h}
# timing keys of the evidence
_TIMING = {"a": "a_zero_sweep", "b": "a_zero_sweep", "c": "c_curves", "e": "e_mean", "f": "fg_curves", "g": "fg_curves", "h": "h_harmful",
           "i": "i_single_replacement", "j": "i_single_replacement", "k": "k_curves", "v": "v_validation",
           "p": "p_recovery"}


def _baseline(run: Exp10Run, ev: dict) -> None:
    run.base_blocks = sweeps.baseline(run.engine, run.ts, run.store, run.progress)
    run.base = float(run.P(run.base_blocks))
    if run.heldout:
        run.base_eval_blocks = sweeps.baseline(run.engine, run.eval_ts, run.store, run.progress)
        run.base_eval = float(run.P(run.base_eval_blocks))
        ev["heldout"] = {"rank": run.ts.describe(), "eval": run.eval_ts.describe(),
                         "baseline_ppl_rank": run.base, "baseline_ppl_eval": run.base_eval,
                         "interval_unit": run.eval_unit,
                         "design": "rankings, means and harmful sets from the rank range (the original's tokens at "
                                   "the quick budget); held-out curves and effects on the disjoint eval range"}
    else:
        ev["heldout"] = None


def measure(ctx) -> dict:
    """The registry's entry point: exp10 on the session's model and budget."""
    from ...session import parse_layers
    from .recovery import prompt_source

    layers = parse_layers(ctx.layers, ctx.lm.n_layers)
    ts = ctx.tokens()
    eval_ts = ctx.eval_tokens(ts)
    ev = measure_tokens(ctx.lm, ts, ctx.budget, ctx.store, run_parts(ctx), layers,
                        sweeps.Progress(ctx.progress), ctx.head_batch, ctx.seed, ctx.asserts_claims,
                        eval_ts=eval_ts, reuse=load_reuse(ctx.reuse_evidence),
                        cross_ts=crossfit_tokens(ctx, ts, eval_ts), prompt_ts=prompt_source(ctx, ts, eval_ts))
    if not ctx.parts and ctx.budget.exp10_parts:  # the budget, not the user, left these parts out
        ev["parts_left_out_by_budget"] = "".join(p for p in PARTS if p not in ev["parts"])
    return ev


def crossfit_tokens(ctx, rank: TokenSet, eval_ts: TokenSet | None) -> TokenSet | None:
    """C26's second rank range B (part v, cross-fitted optimism): as many tokens as the rank range
    A, right after the held-out range, so that it overlaps neither; None when the budget asks for
    none, there is no held-out range, or the data hold less than A's size after it (the full
    budget's held-out range takes the rest of the split: C26 then skips and says so)."""
    from ...data import load_eval_tokens

    if not ctx.budget.crossfit or eval_ts is None or "v" not in expand_parts(run_parts(ctx)):
        return None
    s = ctx.session.settings
    start = eval_ts.meta.get("token_range", [0, 0])[1]
    if eval_ts.meta.get("tokens_available", 0) - start < rank.n_tokens:
        return None
    return load_eval_tokens(ctx.lm.tokenizer, rank.n_tokens, rank.ctx, s.split or ctx.experiment.data.split,
                            s.data_dir, s.text_file, start=start)


def measure_tokens(lm, ts: TokenSet, budget: Budget, store: EvidenceStore, parts: str = PARTS,
                   layers: list[int] | None = None, progress: sweeps.Progress | None = None,
                   head_batch: int = 1, seed: int = 0, asserts_claims: bool | None = None,
                   eval_ts: TokenSet | None = None, reuse: dict | None = None,
                   cross_ts: TokenSet | None = None, prompt_ts: TokenSet | None = None) -> dict:
    """Measure exp10 on ``lm``: rankings on ``ts``, held-out effects on ``eval_ts`` (disjoint;
    None: no held-out evidence). ``reuse``: an earlier run's evidence (:func:`load_reuse`) whose
    reusable parts (:func:`reusable_parts`) stand in for measuring them again. Returns the
    evidence (JSON-ready). ``cross_ts``: C26's second rank range B, disjoint from both (part v's
    cross-fitted optimism; None: C26's cross-fitted test skips). ``prompt_ts``: the chunks part p's
    judged best-of-N draws its prompts from (every chunk after the rank range; None: the held-out
    range)."""
    from ...device import seed_everything

    seed_everything(seed)
    parts = expand_parts(parts)
    functions = all_parts()[0]
    if eval_ts is not None:
        ts.meta.setdefault("subset", "rank")
        eval_ts.meta.setdefault("subset", "eval")
    if cross_ts is not None:
        cross_ts.meta.setdefault("subset", "rank B")
    run = Exp10Run(lm, ts, budget, store, progress or sweeps.Progress(False), head_batch, seed, layers, eval_ts)
    run.cross_ts = cross_ts
    run.prompt_ts = prompt_ts
    L, H = lm.n_layers, lm.n_heads
    all_layers = layers is None or sorted(set(layers)) == list(range(L))
    wall = time.perf_counter()
    t = time.perf_counter()
    ev: dict = {
        "experiment": "exp10", "model": lm.name, "tag": lm.tag, "parts": parts, "head_batch": int(head_batch),
        "layers": list(range(L)) if all_layers else sorted(set(layers)), "all_layers": all_layers,
        "budget": budget.name, "budget_description": budget.description,
        "asserts_claims": budget.asserts_claims if asserts_claims is None else asserts_claims,
        "data": ts.describe(), "n_tokens": ts.n_tokens, "n_predicted": ts.n_predicted,
        "n_layers": L, "n_heads": H, "n_heads_total": L * H,
    }
    _baseline(run, ev)
    fwd_start = time.perf_counter()
    run.engine.forward_nll(ts.chunks[0])
    forward_seconds = time.perf_counter() - fwd_start
    run.timing["baseline"] = time.perf_counter() - t
    ev.update({"baseline_ppl": run.base, "forward_seconds_per_chunk": forward_seconds, "seed": seed,
               "bootstrap": {"unit_heldout": run.eval_unit if run.heldout else None, "unit_in_sample": run.in_unit,
                             "n_boot": N_BOOT}})
    for part in parts:
        if part != "a" and not all_layers:
            ev["note"] = ("only layers " + ",".join(map(str, ev["layers"])) + " were swept; the parts that "
                          "need every head (b-h) were not run")
            break
        t = time.perf_counter()
        if not _reuse(run, ev, part, reuse):
            functions[part](run, ev)
        if part in _TIMING:
            key = _TIMING[part]
            run.timing[key] = run.timing.get(key, 0.0) + time.perf_counter() - t
    ev["timing"] = dict(run.timing, total=time.perf_counter() - wall)
    if all_layers:
        ev["engine_forwards"] = run.engine.forwards
    ev["provenance"] = run_provenance(lm, ts, seed, ev["timing"]["total"], store)
    if eval_ts is not None:
        ev["provenance"]["eval_data"] = eval_ts.describe()
    return ev


def attach_g(ev: dict, fetch) -> None:
    """The session's hand-off for C19 (the registry's ``Need``): exp3's g(l/L) on the same model,
    measured through the session, correlated with part d's per-layer importance."""
    if ev.get("layer") is None:
        return
    exp3, why = fetch()
    if exp3 is None or "g_mean" not in exp3:
        attach_g_correlation(ev, None, why or "exp3 measured no g(l/L) on this model (fewer than 3 usable words)")
        return
    g_curve = {"g_mean": exp3["g_mean"], "source": f"exp3 on {exp3['model']}, measured through the session "
                                                     f"(stimuli sha256 {exp3['stimuli']['sha256'][:16]})"}
    attach_g_correlation(ev, g_curve)


def attach_g_correlation(ev: dict, g_curve: dict | None, why: str | None = None) -> None:
    """C19's evidence (part d): the correlation of each layer's mean zero-ablation ΔPPL with
    dg/dx of exp3's g(l/L), or the reason it is missing."""
    L = ev["n_layers"]
    layer = ev["layer"]
    layer.pop("g_missing_reason", None)
    if g_curve is not None and len(g_curve.get("g_mean", [])) == L + 1:
        g = np.asarray(g_curve["g_mean"], dtype=float)
        x = np.linspace(0, 1, L + 1)
        dg = np.diff(g) / np.diff(x)
        layer["g_correlation"] = {"source": g_curve.get("source"), "dg_dx": dg.tolist(),
                                  **correlation(dg, np.asarray(layer["mean_delta_ppl"], dtype=float))}
    else:
        layer["g_correlation"] = None
        layer["g_missing_reason"] = (why or "no g(l/L) for this model") if g_curve is None else \
            f"g(l/L) has {len(g_curve.get('g_mean', []))} points, expected {L + 1}"

