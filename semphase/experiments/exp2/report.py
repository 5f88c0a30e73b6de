"""exp2's part of the report: introduction, measurements, figures (the builder in
:mod:`semphase.report` writes the rest)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # no backend is chosen here: a notebook keeps its own
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
        ax.plot(x, f, "o", ms=2.5, color="k", label="f = σ/h, mean over levels (h = level/4)")
        ax.plot(x, wd["circular"]["f_mean"], "x", ms=2.5, color="0.6", label="f = σ/h, mean over levels (circular h)")
        pp = wd["power_law"]["params"]
        xf = np.linspace(0, (L - 1) / L, 200)
        ax.plot(xf, fits.EXP2_MODELS["power_law"](xf, pp["A"], pp["beta"]), color="tab:red", lw=1, label="power law A·x^β")
        best = next((t for t in wd["fits"] if t["model"] == "two_stage"), None)
        if best and best.get("success", True) and all(np.isfinite(list(best["params"].values()))):
            ax.plot(xf, fits.EXP2_MODELS["two_stage"](xf, *best["params"].values()), color="tab:blue", lw=1,
                    label="two-stage fit")
        ci = wd["power_law"]["beta_ci95"]
        ax.set_title(f"{w}: β={pp['beta']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=6)
    for ax in axes.ravel()[len(words):]:
        ax.axis("off")
    fig.suptitle(f"{ev['model']}: response f(l/L) per word with power-law and two-stage fits (final point not fitted)",
                 fontsize=10)
    return _save(fig, path)


def _exp2_beta(ev: dict, path: Path) -> str:
    words = ev["words_used"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    ax = axes[0]
    b = [ev["words"][w]["power_law"]["params"]["beta"] for w in words]
    ci = np.array([ev["words"][w]["power_law"]["beta_ci95"] for w in words])
    idx = np.arange(len(words))
    ax.vlines(idx, ci[:, 0], ci[:, 1], color="tab:red", lw=1)
    ax.plot(idx, b, "o", color="tab:red", ms=4)
    ax.axhline(0.5, color="k", ls="--", lw=1, label="mean field β = 0.5")
    ax.axhspan(0.2, 0.8, color="0.9", label="0.5 ± 0.3")
    ax.set_xticks(idx)
    ax.set_xticklabels(words, rotation=90, fontsize=7)
    ax.set_ylabel("power-law β (95 % CI over prompts)")
    ax.legend(fontsize=8)
    cv_ci = ev["c4"]["cv_ci95"]
    ax.set_title(f"C4: CV(β) = {ev['c4']['cv']:.3f} [{cv_ci[0]:.3f}, {cv_ci[1]:.3f}]")
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
length-matched prompts each in the packaged file (a word that is not length-matched is measured with its
σ moved to its mean target position, as each model's section says); σ_c is the mean σ v2 of a level's
prompts along ê_diff (directions from the disjoint direction prompts). **h = level/4** (independent of σ) is primary; the original's circular
h (from the final-layer σ) is measured beside it. f_mean(l/L) is fitted on i = 0..L-1 (the final point
excluded, as in the original) with the original's four models and, descriptively, with the Landau form
A(x - l_c)^β Θ(x - l_c) that the original stated but never fitted.

**Estimator of β**: the spec's (science.md 3.8), the **power law A·x^β** of the original's four models,
fitted per word with A solved exactly for every β (the profile RSS over β is exact; β in the model's
[0.01, 5]). The two_stage fit's β is reported beside it and not asserted. Intervals: β per word by a
bootstrap over prompts within levels; CV(β) by a two-stage bootstrap (words with replacement, then
prompts within levels inside each drawn word); the fraction of words below the C5 bar by a bootstrap
over words.

* **C4** - the original rejected Landau criticality. Two tests: the mean-field β = 0.5 ± 0.3 is not
  met (`test_c4_landau_mean_field_beta_rejected`), and β is not universal: CV(β) > 0.3 (inconclusive
  while its interval straddles 0.3) and a likelihood-ratio test of one common β rejects
  (`test_c4_landau_beta_not_universal`, the spec's rule).
* **C5** - linear response holds only partly: the original's pattern (rock, spring, bass below 0.01,
  light not) for those of its words we measure, and the fraction of all words below 0.01 in the
  declared band [0.1, 0.6] ("partial").

{note}
"""

def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    lines = words_measured(ev)
    if "c4" in ev and "estimator" not in ev["c4"]:
        return lines + ["", "### Measurements", "", "This evidence was measured before the current estimator and "
                        "rules (power-law β, two-stage intervals, C5's declared pattern): measure exp2 again."]
    if "c4" in ev:
        c4, c5, ll = ev["c4"], ev["c5"], ev["logit_lens"]
        lr, q = c4["lr_common_beta"], c4["cochran_q"]
        n_w = len(ev["words_used"])
        ts = c4["two_stage"]
        lines += ["", "### Measurements", "",
                  f"**C4.** β ({c4['estimator']}) over words: mean {fmt(c4['beta_mean'])}, range {fmt(c4['beta_min'])}-"
                  f"{fmt(c4['beta_max'])}, CV {fmt(c4['cv'])} (95 % interval {fmt(c4['cv_ci95'][0])}-"
                  f"{fmt(c4['cv_ci95'][1])} resampling {c4['cv_ci_unit']}, bootstrap mean {fmt(c4['cv_boot_mean'])}; "
                  f"resampling words alone {fmt(c4['cv_ci95_words_only'][0])}-{fmt(c4['cv_ci95_words_only'][1])}); "
                  f"β's interval contains 0.5 for {c4['n_ci_contains_mean_field']} of {n_w} words; β on a bound for "
                  f"{c4['n_beta_on_bound']}. Common β: LR = {fmt(lr['statistic'])} on {lr['df']} df, p = "
                  f"{fmt(lr['p_value'])} (best common β {fmt(lr['common_beta'])}; {lr['note']}); Cochran's Q with "
                  f"bootstrap standard errors = {fmt(q['statistic'])}, p = {fmt(q['p_value'])}. Beside it, not asserted: "
                  f"the two_stage fit's β has CV {fmt(ts['cv'])} over {ts['n_fitted']} fitted words. Best model by BIC "
                  f"(the original's four plus Landau): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(c4["best_model_counts"].items(), key=lambda t: -t[1])) + ".",
                  "", f"Note on the CV interval: {c4['cv_boot_note']}.",
                  "",
                  f"**C5.** Collapse variance < 0.01 for {c5['n_below_bar_design']} of {n_w} words with h = level/4 "
                  f"(fraction {fmt(c5['frac_below_bar_design'])}, 95 % interval {fmt(c5['frac_below_bar_design_ci95'][0])}-"
                  f"{fmt(c5['frac_below_bar_design_ci95'][1])} resampling {c5['frac_ci_unit']}; declared band "
                  f"[{c5['frac_band'][0]}, {c5['frac_band'][1]}]) and for {c5['n_below_bar_circular']} with the circular h "
                  f"(median variance relative to mean f², design h: {fmt(c5['median_relative_design'])}). The original's "
                  "pattern: " + (", ".join(f"{w} {p['collapse_variance']:.4f} (expected {p['expected']} 0.01)"
                                          for w, p in c5["pattern"].items()) or "none of its words measured")
                  + (f"; not in the stimuli: {', '.join(c5['pattern_missing'])}" if c5["pattern_missing"] else "") + ".",
                  "",
                  f"**Logit lens** (ln_final then W_U on the stored residuals, strong prompts): the top-1 token changes "
                  f"at the last block for {pct0(ll['frac_top1_change_last_block'])} of the prompts and at a middle block "
                  f"for {pct0(ll['frac_top1_change_mid_blocks'])} of (prompt, block) pairs; the block of a prompt's "
                  f"largest |Δσ| carries a top-1 change for {pct0(ll['frac_biggest_jump_block_has_top1_change'])}.",
                  "", "| word | senses A / B | collapse (design) | collapse (circular) | power-law β [95 % CI] | "
                      "two_stage β | Landau β, l_c | best model |",
                  "|---|---|---|---|---|---|---|---|"]
        for w in ev["words_used"]:
            wd = ev["words"][w]
            pl, la = wd["power_law"], wd["landau"]["params"]
            lines.append(f"| {w}{'*' if wd['in_original'] else ''} | {wd['senses']['A']} / {wd['senses']['B']} | "
                         f"{wd['design']['collapse_variance']:.4f} | {wd['circular']['collapse_variance']:.4f} | "
                         f"{pl['params']['beta']:.2f} [{pl['beta_ci95'][0]:.2f}, {pl['beta_ci95'][1]:.2f}] | "
                         f"{fmt(wd['two_stage_beta'])} | {la['beta']:.2f}, {la['l_c']:.2f} | {wd['best_model']} |")
        lines += ["", "\\* one of the original's nine words."]
    return lines


def intro(records: list[dict], layout: OutputLayout) -> str:
    return EXP2_INTRO.format(data=rel(layout.data, layout.reports), note=STIMULI_NOTE)


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance_rows, figures=figures,
                    figure_glob="exp2_*_{tag}.png")
