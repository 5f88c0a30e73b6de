"""exp9's part of the report: one section per model, one for each comparison across models and one
for each device-consistency check (the builder in :mod:`semphase.report` writes the rest)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt  # no backend is chosen here: a notebook keeps its own
import numpy as np  # noqa: E402

from ... import fits  # noqa: E402
from ...report import OutputLayout, ReportSpec, budget_row, fmt, label_axes, rel  # noqa: E402
from ...semantic.reporting import save  # noqa: E402
from .measure import HALF_PI_SQUARED  # noqa: E402


def _fig_cross(ev: dict, path: Path) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    s = ev["sigma_scaling"]
    pts = s["points"]
    x = [1 / p["n_layers"] for p in pts]
    if pts:
        ax.errorbar(x, [p["sigma"] for p in pts], yerr=[p["sd"] or 0 for p in pts], fmt="o", capsize=3)
        for p, xi in zip(pts, x):
            ax.annotate(p["model"], (xi, p["sigma"]), fontsize=7)
    if math.isfinite(s.get("sigma_inf", math.nan)):
        xf = np.linspace(0, max(x), 50)
        ax.plot(xf, s["sigma_inf"] + s["slope"] * xf, color="tab:blue", lw=1)
        ax.errorbar([0], [s["sigma_inf"]], yerr=[[s["sigma_inf"] - s["ci95"][0]], [s["ci95"][1] - s["sigma_inf"]]],
                    fmt="s", color="tab:blue", capsize=3, label="σ(∞) 95 % CI")
    ax.axhline(fits.SIGMA_PI, color="tab:red", ls="--", label="1/√π")
    label_axes(ax, "1/n_layers", "σ_free (± bootstrap SD)", "9A: σ_free against depth")
    ax = axes[1]
    t = ev["theta_scaling"]
    if t["points"]:
        n = [p["n_layers"] for p in t["points"]]
        y = [p["Theta"] for p in t["points"]]
        lo = [p["Theta"] - p["ci95"][0] for p in t["points"]]
        hi = [p["ci95"][1] - p["Theta"] for p in t["points"]]
        ax.errorbar(n, y, yerr=[lo, hi], fmt="o", capsize=3)
    ax.axhline(HALF_PI_SQUARED, color="tab:red", ls="--", label="π²/2")
    label_axes(ax, "n_layers", "Θ (rad)", "9B: Θ against depth" + (f" (best law {t['best_law']})" if t.get("best_law") else ""))
    ax = axes[2]
    d = ev["delta_bic_trend"]["points"]
    if d:
        ax.plot([p["n_points"] for p in d], [p["delta_bic"] for p in d], "o-")
        for p in d:
            ax.annotate(p["model"], (p["n_points"], p["delta_bic"]), fontsize=7)
    for v in (0, -2, -6):
        ax.axhline(v, color="0.6", ls=":", lw=1)
    label_axes(ax, "points of g (n_layers + 1)", "ΔBIC(cos_pi_0p − erf)", "9C: < 0 favours cos_pi_0p", legend=None)
    fig.suptitle(f"exp9 across models: {ev['model']}", fontsize=10)
    return save(fig, path)


def _fig_device(ev: dict, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(7, 4))
    for setting, rec in ev["settings"].items():
        ax.semilogy(np.maximum(rec["max_abs_diff_sigma_per_layer"], 1e-12), "o-", ms=3, label=f"TF32 {setting}")
        ax.axhline(ev["bars"][setting], ls="--", lw=1, color="0.5")
    label_axes(ax, "layer i", "max |Δσ| CPU vs accelerator", f"{ev['model']}")
    return save(fig, path)


def figures(ev: dict, folder: Path) -> list[str]:
    if ev.get("kind") == "cross-model":
        return [_fig_cross(ev, folder / f"exp9_{ev['tag']}.png")]
    if ev.get("kind") == "device-consistency":
        return [_fig_device(ev, folder / f"exp9_{ev['tag']}.png")]
    return []


INTRO = """# exp9 results: the π claims across model sizes and devices, claim C16 (science.md section 9)

Written by the semphase report plugin (or `python -m semphase run exp9`) from `{data}/exp9_*.json`.

The original's exp9 was abandoned: on CUDA its σ curves collapsed (no variation of σ_final across
prompts), which it blamed on TF32 without checking; matmul TF32 has been off by default since PyTorch
1.12, and its ~1e-3 error is far too small to erase σ differences of 0.1-0.5. Here:

* **per model** (exp8's evidence on that model, measured through the session): σ_free of g(l/L) with its
  bootstrap interval and SD (two-stage: words, then prompts within levels), Θ on held-out tokens with its
  interval (chunks resampled), ΔBIC(cos_pi_0p − erf). h is the design level for every model, so σ_free
  means the same thing at every size (the original switched definitions between sizes).
* **across models** (two or more `--model`, one family: GPT-2 or the Pythia suite): σ(∞) from a weighted
  fit in 1/n_layers, decided only when its 95 % interval is narrower than 0.05 (otherwise inconclusive:
  underpowered, as a 4-point extrapolation is); Θ must grow with depth (Θ(deepest) − Θ(shallowest) > 1
  rad), which rejects a constant π²/2; the four scaling laws of 9B by BIC and ΔBIC against the number of
  points are reported.
* **devices** (`pytest -m gpu --device cuda`): the same σ curves and rotation angles on the CPU and on the
  accelerator, TF32 off and on, with the largest difference per layer, torch's TF32 defaults and the
  spread of σ_final on every device and setting.
"""


def intro(records: list[dict], layout: OutputLayout) -> str:
    return INTRO.format(data=rel(layout.data, layout.reports))


def header(rec: dict) -> str:
    ev = rec["evidence"]
    if ev.get("kind") == "cross-model":
        return f"## Across models: {ev['model']}"
    if ev.get("kind") == "device-consistency":
        return f"## Devices: {ev['model']}"
    return f"## {ev['model']}"


def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    lines = ["", "### Measurements", ""]
    if ev.get("kind") == "cross-model":
        s, t = ev["sigma_scaling"], ev["theta_scaling"]
        lines += ["| model | layers | σ_free [95 % CI] (SD) | Θ (rad) [95 % CI] | Θ/π | ΔBIC(cos − erf) | points |",
                  "|---|---|---|---|---|---|---|"]
        for r in ev["rows"]:
            lines.append(f"| {r['model']} | {r['n_layers']} | {fmt(r.get('sigma_free'))} {fmt(r.get('sigma_ci95'))} "
                         f"({fmt(r.get('sigma_sd'), 3)}) | {fmt(r.get('Theta_mean'))} {fmt(r.get('Theta_ci95'))} | "
                         f"{fmt(r.get('Theta_over_pi_mean'))} | {fmt(r.get('delta_bic_cos_minus_erf'))} | {r.get('n_points', 'n/a')} |")
        lines += ["", f"**9A.** σ(∞) = {fmt(s.get('sigma_inf'))}, 95 % interval {fmt(s['ci95'])} (width {fmt(s['width'])}; "
                      f"weights {s['weights']})" + (f"; {s['note']}" if s.get("note") else "") + "."]
        if t.get("growth"):
            g = t["growth"]
            lines += ["", f"**9B.** Θ({g['deep']}) − Θ({g['shallow']}) = {fmt(g['diff'])} rad, 95 % interval {fmt(g['ci95'])} "
                          f"({g['unit']}). Laws by BIC: " + ", ".join(f"{k} {fmt(v['bic'])}" for k, v in t["laws"].items())
                      + f"; best {t['best_law']}."]
        elif t.get("note"):
            lines += ["", f"**9B.** {t['note']}."]
        d = ev["delta_bic_trend"]
        lines += ["", "**9C.** ΔBIC(cos_pi_0p − erf) by number of points: "
                  + ", ".join(f"{p['model']} ({p['n_points']}) {fmt(p['delta_bic'])}" for p in d["points"])
                  + (f"; Spearman ρ {fmt(d['spearman_rho'])}" if "spearman_rho" in d else "") + "."]
        if ev.get("missing"):
            lines += ["", "Not measured: " + "; ".join(f"{k}: {v}" for k, v in ev["missing"].items()) + "."]
        return lines
    if ev.get("kind") == "device-consistency":
        lines += [f"torch {ev['torch']}; torch's TF32 defaults (fresh interpreter): {ev['tf32_defaults']}; accelerator "
                  f"{ev['accelerator']} ({ev.get('accelerator_name') or 'n/a'}); words {', '.join(ev['words'])} "
                  f"({ev['n_prompts']} graded prompts); {fmt(ev['seconds'])} s.", "",
                  "| setting | max abs Δσ | largest at layer | max abs Δθ (rad) | smallest σ_final range |", "|---|---|---|---|---|"]
        for setting, rec2 in ev["settings"].items():
            per = rec2["max_abs_diff_sigma_per_layer"]
            lines.append(f"| TF32 {setting} | {fmt(rec2['max_abs_diff_sigma'])} | {int(np.argmax(per))} | "
                         f"{fmt(rec2.get('max_abs_diff_theta'))} | {fmt(min(rec2['sigma_final_range'].values()))} |")
        lines.append(f"| CPU | - | - | - | {fmt(min(ev['sigma_final_range']['cpu'].values()))} |")
        return lines
    if ev.get("missing_reason"):
        return lines + [f"Not measured: {ev['missing_reason']}."]
    r = ev["row"]
    lines.append(f"σ_free {fmt(r.get('sigma_free'))} {fmt(r.get('sigma_ci95'))}; Θ {fmt(r.get('Theta_mean'))} rad "
                 f"{fmt(r.get('Theta_ci95'))} ({r.get('Theta_range', 'n/a')} range); ΔBIC(cos − erf) "
                 f"{fmt(r.get('delta_bic_cos_minus_erf'))} on {r.get('n_points', 'n/a')} points. Give two or more "
                 "--model to compare sizes (the C16 scaling tests).")
    return lines


def provenance(ev: dict) -> list[tuple[str, object]]:
    return [budget_row(ev), ("from", "exp8 on this model, through the session")]


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance, figures=figures,
                    figure_glob="exp9_{tag}.png", header=header)
