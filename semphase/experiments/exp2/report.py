"""exp2's part of the report: introduction, measurements, figures (the builder in
:mod:`semphase.report` writes the rest)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ... import fits  # noqa: E402
from ...report import OutputLayout, ReportSpec, fmt, rel  # noqa: E402
from ...semantic.reporting import STIMULI_NOTE, pct0, provenance_rows, words_measured  # noqa: E402
from ...semantic.reporting import save as _save  # noqa: E402

# -- figures ---

def _exp2_fits(ev: dict, path: Path) -> str:
    words = ev["words_used"]
    L = ev["n_layers"]
    x = np.arange(L + 1) / L
    cols = 4
    rows = max(1, -(-len(words) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows), sharex=True, squeeze=False)
    for ax, w in zip(axes.ravel(), words):
        wd = ev["words"][w]
        f = np.array(wd["design"]["f_mean"])
        ax.plot(x, f, "o", ms=2.5, color="k", label="f_mean (h = level/4)")
        ax.plot(x, wd["circular"]["f_mean"], "x", ms=2.5, color="0.6", label="f_mean (circular h)")
        lp = wd["landau"]["params"]
        xf = np.linspace(0, (L - 1) / L, 200)
        ax.plot(xf, fits.LANDAU_MODELS["landau"](xf, lp["A"], lp["beta"], lp["l_c"]), color="tab:red", lw=1,
                label="Landau")
        best = next((t for t in wd["fits"] if t["model"] == "two_stage"), None)
        if best and best.get("success", True) and all(np.isfinite(list(best["params"].values()))):
            ax.plot(xf, fits.EXP2_MODELS["two_stage"](xf, *best["params"].values()), color="tab:blue", lw=1,
                    label="two_stage")
        ci = wd["landau"]["beta_ci95"]
        ax.set_title(f"{w}: β={lp['beta']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=6)
    for ax in axes.ravel()[len(words):]:
        ax.axis("off")
    fig.suptitle(f"{ev['model']}: response f(l/L) per word with Landau and two-stage fits (final point not fitted)",
                 fontsize=10)
    return _save(fig, path)


def _exp2_beta(ev: dict, path: Path) -> str:
    words = ev["words_used"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    ax = axes[0]
    b = [ev["words"][w]["landau"]["params"]["beta"] for w in words]
    ci = np.array([ev["words"][w]["landau"]["beta_ci95"] for w in words])
    idx = np.arange(len(words))
    ax.vlines(idx, ci[:, 0], ci[:, 1], color="tab:red", lw=1)
    ax.plot(idx, b, "o", color="tab:red", ms=4)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="mean field β = 0.5")
    ax.axhspan(0.2, 0.8, color="0.9", label="0.5 ± 0.3")
    ax.set_xticks(idx)
    ax.set_xticklabels(words, rotation=90, fontsize=7)
    ax.set_ylabel("Landau β (bootstrap 95 % CI)")
    ax.legend(fontsize=8)
    ax.set_title(f"C4: CV(β) = {ev['c4']['cv']:.3f}")
    ax = axes[1]
    cd = [ev["c5"]["collapse_variance_design"][w] for w in words]
    cc = [ev["c5"]["collapse_variance_circular"][w] for w in words]
    ax.bar(idx - 0.2, cd, width=0.4, color="tab:red", label="h = level/4")
    ax.bar(idx + 0.2, cc, width=0.4, color="0.6", label="circular h")
    ax.axhline(0.01, color="k", ls="--", lw=1, label="0.01")
    ax.set_yscale("log")
    ax.set_xticks(idx)
    ax.set_xticklabels(words, rotation=90, fontsize=7)
    ax.set_ylabel("collapse variance")
    ax.legend(fontsize=8)
    ax.set_title("C5: linear-response collapse")
    fig.suptitle(f"{ev['model']}: exp2", fontsize=10)
    return _save(fig, path)


def figures(ev: dict, folder: Path) -> list[str]:
    if "c4" not in ev:
        return []
    tag = ev["tag"]
    return [_exp2_fits(ev, folder / f"exp2_fits_{tag}.png"), _exp2_beta(ev, folder / f"exp2_beta_collapse_{tag}.png")]


# -- Markdown ---

EXP2_INTRO = """# exp2 results: Landau criticality and linear response, claims C4-C5 (science.md section 3)

Written by the semphase report plugin (or `python -m semphase run exp2`) from `{data}/exp2_*.json`;
every number was measured in the run named in its provenance, from the same cached residuals as exp1.

Design (our own stimuli): the original's five conditions become nine graded levels -4..+4 with three
length-matched prompts each; σ_c is the mean σ v2 of a level's prompts along ê_diff (directions from
the disjoint direction prompts). **h = level/4** (independent of σ) is primary; the original's circular
h (from the final-layer σ) is measured beside it. f_mean(l/L) is fitted on i = 0..L-1 (the final point
excluded, as in the original) with the original's four models and with the Landau form
A(x - l_c)^β Θ(x - l_c) that the original stated but never fitted (grid search, amplitude exact);
β's intervals come from a bootstrap over prompts within levels.

* **C4** - the original rejected Landau criticality. Two tests: the mean-field β = 0.5 ± 0.3 is not
  met (`test_c4_landau_mean_field_beta_rejected`), and β is not universal: CV(β) > 0.3 and a
  likelihood-ratio test of one common β rejects (`test_c4_landau_beta_not_universal`, the spec's rule).
* **C5** - linear response holds only partly: some words' collapse variance is below 0.01, some not.

{note}
"""

def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    lines = words_measured(ev)
    if "c4" in ev:
        c4, c5, ll = ev["c4"], ev["c5"], ev["logit_lens"]
        lr, q = c4["lr_common_beta"], c4["cochran_q"]
        lines += ["", "### Measurements", "",
                  f"**C4.** Landau β over words: mean {fmt(c4['beta_mean'])}, range {fmt(c4['beta_min'])}-"
                  f"{fmt(c4['beta_max'])}, CV {fmt(c4['cv'])} (95 % interval over words "
                  f"{fmt(c4['cv_ci95_over_words'][0])}-{fmt(c4['cv_ci95_over_words'][1])}); β's interval contains "
                  f"0.5 for {c4['n_ci_contains_mean_field']} of {len(ev['words_used'])} words; β on the grid's edge for "
                  f"{c4['n_beta_on_grid_edge']}. Common β: LR = {fmt(lr['statistic'])} on {lr['df']} df, p = "
                  f"{fmt(lr['p_value'])} (best common β {fmt(lr['common_beta'])}; {lr['note']}); Cochran's Q with "
                  f"bootstrap standard errors = {fmt(q['statistic'])}, p = {fmt(q['p_value'])}. Best model by BIC "
                  f"(the original's four plus Landau): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(c4["best_model_counts"].items(), key=lambda t: -t[1])) + ".",
                  "",
                  f"**C5.** Collapse variance < 0.01 for {c5['n_below_bar_design']} of {len(ev['words_used'])} words "
                  f"with h = level/4 and for {c5['n_below_bar_circular']} with the circular h (median variance relative "
                  f"to mean f², design h: {fmt(c5['median_relative_design'])}).",
                  "",
                  f"**Logit lens** (ln_final then W_U on the stored residuals, strong prompts): the top-1 token changes "
                  f"at the last block for {pct0(ll['frac_top1_change_last_block'])} of the prompts and at a middle block "
                  f"for {pct0(ll['frac_top1_change_mid_blocks'])} of (prompt, block) pairs; the block of a prompt's "
                  f"largest |Δσ| carries a top-1 change for {pct0(ll['frac_biggest_jump_block_has_top1_change'])}.",
                  "", "| word | senses A / B | collapse (design) | collapse (circular) | Landau β [95 % CI] | l_c | best model |",
                  "|---|---|---|---|---|---|---|"]
        for w in ev["words_used"]:
            wd = ev["words"][w]
            la = wd["landau"]
            lines.append(f"| {w}{'*' if wd['in_original'] else ''} | {wd['senses']['A']} / {wd['senses']['B']} | "
                         f"{wd['design']['collapse_variance']:.4f} | {wd['circular']['collapse_variance']:.4f} | "
                         f"{la['params']['beta']:.2f} [{la['beta_ci95'][0]:.2f}, {la['beta_ci95'][1]:.2f}] | "
                         f"{la['params']['l_c']:.2f} | {wd['best_model']} |")
        lines += ["", "\\* one of the original's nine words."]
    return lines


def intro(records: list[dict], layout: OutputLayout) -> str:
    return EXP2_INTRO.format(data=rel(layout.data, layout.reports), note=STIMULI_NOTE)


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance_rows, figures=figures,
                    figure_glob="exp2_*_{tag}.png")
