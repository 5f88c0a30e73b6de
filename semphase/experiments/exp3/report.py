"""exp3's part of the report: introduction, measurements, figures and g(l/L) as its own data file
(the builder in :mod:`semphase.report` writes the rest)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # no backend is chosen here: a notebook keeps its own
import numpy as np  # noqa: E402

from ... import fits  # noqa: E402
from ...report import OutputLayout, ReportSpec, fmt, label_axes, rel  # noqa: E402
from ...semantic.reporting import STIMULI_NOTE, pct0, provenance_rows, words_measured  # noqa: E402
from ...semantic.reporting import save as _save  # noqa: E402

# -- figures ---

def _exp3_g(ev: dict, path: Path) -> str:
    L = ev["n_layers"]
    x = np.arange(L + 1) / L
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    ax = axes[0]
    for w in ev["words_used"]:
        ax.plot(x, ev["words"][w]["design"]["g"], color="tab:blue", lw=0.6, alpha=0.5)
    g, s = np.array(ev["g_mean"]), np.array(ev["g_std"])
    ax.plot(x, g, color="k", lw=2, label="g(l/L), mean over words")
    ax.fill_between(x, g - s, g + s, color="k", alpha=0.15, label="± std over words")
    ax.plot(x, np.mean(ev["null_g_mean_random"], 0), color="tab:gray", ls="--", label="random-direction null (mean)")
    ax.set_xlabel("l/L")
    ax.set_ylabel("g = f/max f")
    ax.set_title("C8: g per word (h = level/4)")
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(x, g, "o", ms=3, color="k", label="g(l/L), mean over words")
    xf = np.linspace(0, 1, 200)
    for f in ev["c9"]["full_fits"]:
        if f["success"]:
            ax.plot(xf, fits.G_MODELS[f["model"]](xf, *f["params"].values()), lw=1,
                    label=f"{f['model']} R²={f['r2']:.3f} BIC={f['bic']:.1f}")
    ax.set_xlabel("l/L")
    ax.set_title("C9: shape models on all layers")
    ax.legend(fontsize=6)
    ax = axes[2]
    ax.plot(x, ev["c6"]["mean_r2_by_layer_design"], color="tab:red", label="R²_i, h = level/4")
    ax.plot(x, ev["c6"]["mean_r2_by_layer_circular"], color="0.5", label="R²_i, circular h (R²_L = 1 by construction)")
    label_axes(ax, "l/L", "mean R² over words", "C6: linearity with depth", legend=7)
    fig.suptitle(f"{ev['model']}: exp3 / exp3E-F", fontsize=10)
    return _save(fig, path)


def _exp3_nulls(ev: dict, path: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, stat, obs, label in ((axes[0], "mean_corr", ev["c7"]["mean_corr"], "mean pairwise corr of f (C7)"),
                                 (axes[1], "mean_rmse", ev["c8"]["mean_rmse"], "mean RMSE of each word's g from the mean g (C8)")):
        for kind, color in (("random", "tab:gray"), ("shuffled", "tab:blue")):
            for hk, alpha in (("design", 0.7), ("circular", 0.3)):
                ax.hist(ev["nulls"][kind][hk][stat], bins=30, color=color, alpha=alpha, label=f"{kind} null, {hk} h")
        ax.axvline(obs, color="tab:red", lw=2, label=f"observed {obs:.3f} (h = level/4)")
        ax.set_xlabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{ev['model']}: null distributions ({ev['nulls']['n']} draws each), observed statistic in red",
                 fontsize=10)
    return _save(fig, path)


def _cross(ev: dict, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, g in ev["g_mean"].items():
        ax.plot(np.linspace(0, 1, len(g)), g, marker="o", ms=3, label=m)
    ax.set_xlabel("l/L")
    ax.set_ylabel("g(l/L), mean over words")
    ax.legend(fontsize=8)
    corr = ", ".join(f"{' vs '.join(p['models'])}: r={p['corr']:.3f}" for p in ev["pairs"])
    ax.set_title(corr, fontsize=8)
    return _save(fig, path)


# -- Markdown ------------------------------------------------------------------------------------

def figures(ev: dict, folder: Path) -> list[str]:
    tag = ev["tag"]
    if ev.get("kind") == "cross-model":
        return [_cross(ev, folder / f"exp3g_{tag}.png")]
    if "g_mean" not in ev:
        return []
    return [_exp3_g(ev, folder / f"exp3ef_universal_g_{tag}.png"), _exp3_nulls(ev, folder / f"exp3_nulls_{tag}.png")]


def data_files(ev: dict, claims: list[dict]) -> dict[str, object]:
    """g(l/L) alone (science.md 18's exp3ef file), for readers of the data; semphase's own
    experiments get it through the session."""
    if ev.get("kind") == "cross-model" or "g_mean" not in ev:
        return {}
    return {f"exp3ef_{ev['tag']}.json": {
        "model": ev["model"], "tag": ev["tag"], "x": ev["x"], "g_mean": ev["g_mean"], "g_std": ev["g_std"],
        "definition": "g = f/max f, f = OLS slope of sigma_i on h = level/4, mean over words",
        "provenance": ev["provenance"]}}


def header(rec: dict) -> str:
    ev = rec["evidence"]
    return f"## Across models: {ev['model']}" if ev.get("kind") == "cross-model" else f"## {ev['model']}"


# -- Markdown ---

EXP3_INTRO = """# exp3 results: linear response, universal g(l/L), claims C6-C9 (science.md sections 4, 5)

Written by the semphase report plugin (or `python -m semphase run exp3`) from `{data}/exp3_*.json`;
every number was measured in the run named in its provenance, from the same cached residuals as exp1.
g(l/L) per model is also written to `{data}/exp3ef_<model>.json` (`g_mean`), which exp10's C19 reads.

Design: per word, 27 graded prompts in the packaged file (levels -4..+4, three each, one token count per
word); per layer i = 0..L the OLS slope f(i) of σ_i on **h = level/4** (independent of σ) and R²_i;
g = f/max f. A word that is not length-matched is measured with σ moved to its mean target position (so
f(i) is h's coefficient with the position beside it), as each model's section says. The
original's circular h = σ_L/max|σ_L| is measured beside it (it makes R²_L = 1 by construction). Nulls
replace ê_diff by a random unit direction or by ê_diff of shuffled sense labels of the direction prompts
(no new forward pass), for both definitions of h: how often a null reaches the original's bars
(correlation > 0.96, RMSE < 0.08) shows how much of the "universality" smooth depth profiles and the
circular h give by themselves. Intervals of across-word statistics (C7, C8, g_mean, C9's drop, the
truncated α): a two-stage bootstrap, words with replacement, then prompts within levels inside each
drawn word.

* **C6** - linearity rises with depth (median Spearman(i, R²_i) > 0.5); the response is not a position
  effect (h significant, p < 0.01, at every i >= L/2 in a regression of σ_i on h and the target position
  with word fixed effects and word-clustered standard errors, statsmodels); an invariant documents the
  circularity (R²_L = 1 with the circular h).
* **C7** - f's shape is word-independent beyond the nulls (mean pairwise correlation > null q95).
* **C8** - one g across words (mean RMSE < 0.08 on its two-stage interval, and < null q05) and, with two
  or more models, across models (correlation >= 0.97 and > null q95).
* **C9** - g's form: the best of the five shape models by BIC is erf or sigmoid; the shape class of the
  original: g_mean peaks before l/L = 1 and its final point lies below that peak beyond the bootstrap
  noise (the drop's 95 % interval above 0); nearly linear before the drop (truncated power-law α interval
  overlaps [0.9, 1.0]). BIC on 20-30 autocorrelated points is a rough guide.

{note}
"""


def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    if ev.get("kind") == "cross-model":
        lines = [""]
        for p in ev["pairs"]:
            lines.append(f"- {' vs '.join(p['models'])} ({p['grid_points']} grid points): corr {p['corr']:.4f}, "
                         f"RMSE {p['rmse']:.4f}, max |diff| {p['max_abs_diff']:.4f}; random-direction null "
                         f"({p['null_n']}): median {p['null_corr_median']:.3f}, q95 {p['null_corr_q95']:.3f}, "
                         f"p = {fmt(p['p_value'])}.")
        return lines
    lines = words_measured(ev)
    if "c7" in ev:
        c6, c7, c8, c9, sh, nl = ev["c6"], ev["c7"], ev["c8"], ev["c9"], ev["shape"], ev["nulls"]
        r2 = c6["mean_r2_by_layer_design"]
        lines += ["", "### Measurements", "",
                  f"**C6.** Median Spearman(i, R²_i) = {fmt(c6['median_spearman'])} (> 0.5 for "
                  f"{pct0(c6['frac_spearman_above_05'])} of words); mean R² (h = level/4) at i = 0, 1, L/2, L-1, L: "
                  f"{fmt(r2[0])}, {fmt(r2[1])}, {fmt(r2[len(r2) // 2])}, {fmt(r2[-2])}, {fmt(r2[-1])}. Position: "
                  f"{c6['position']['design']}; {c6['position']['n_positions']} distinct target positions"
                  + ("" if c6['position'].get('position_identified', True) else
                     " (constant within each word: absorbed by the word fixed effects)")
                  + (f", varying within {c6['position']['n_words_position_varies']} word(s), which identify the "
                     "position coefficient (σ as measured)" if c6['position'].get('n_words_position_varies') else "")
                  + f"; largest p of h at i >= {c6['position']['deep_from_layer']}: "
                  f"{fmt(c6['position']['max_h_p_deep'])}. Circular h: "
                  f"max |R²_L - 1| = {fmt(c6['circular_r2_final_max_dev'])}.",
                  "",
                  f"**C7.** Mean pairwise correlation of f across words {fmt(c7['mean_corr'])} (95 % "
                  f"{fmt(c7['boot_ci95'][0])}-{fmt(c7['boot_ci95'][1])} resampling {c7.get('unit', 'prompts')}), min "
                  f"{fmt(c7['min_corr'])}, pairs > 0.96: {pct0(c7['frac_pairs_above_bar'])}; circular h: "
                  f"{fmt(c7['circular']['mean_corr'])}.",
                  "",
                  f"**C8.** Mean RMSE of g from g_mean {fmt(c8['mean_rmse'])} (95 % "
                  f"{fmt(c8['boot_ci95'][0])}-{fmt(c8['boot_ci95'][1])} resampling {c8.get('unit', 'prompts')}); "
                  f"circular h: {fmt(c8['circular']['mean_rmse'])}. Shape: g_mean peaks at l/L = {fmt(sh['peak_x'])} "
                  f"(g_final {fmt(sh['g_final'])}, drop {fmt(sh['drop'])}; drop of the final point below the peak of "
                  f"the earlier layers {fmt(sh.get('drop_before_last'))}, 95 % "
                  + (f"{fmt(sh['drop_before_last_ci95'][0])}-{fmt(sh['drop_before_last_ci95'][1])}"
                     if sh.get("drop_before_last_ci95") else "n/a") + ").",
                  "",
                  "Nulls (per word one null direction per draw; the original's bars: corr > 0.96, RMSE < 0.08):",
                  "", "| null | h | corr median | corr q95 | draws with corr > 0.96 | RMSE median | RMSE q05 | "
                      "draws with RMSE < 0.08 |", "|---|---|---|---|---|---|---|---|"]
        for kind in ("random", "shuffled"):
            for hk in ("design", "circular"):
                d = nl[kind][hk]
                lines.append(f"| {kind} | {hk} | {d['corr_median']:.3f} | {d['corr_q95']:.3f} | "
                             f"{pct0(d['frac_draws_corr_above_bar'])} | {d['rmse_median']:.3f} | {d['rmse_q05']:.3f} | "
                             f"{pct0(d['frac_draws_rmse_below_bar'])} |")
        sc, sd = nl["shuffled"]["circular"], nl["shuffled"]["design"]
        lines += ["", f"How much the circular h explains: with h = σ_L/max|σ_L|, directions blind to the sense "
                      f"(shuffled labels) reach the original's RMSE bar < 0.08 in {pct0(sc['frac_draws_rmse_below_bar'])} of "
                      f"draws and a median cross-word correlation of {sc['corr_median']:.3f} (the real directions: "
                      f"RMSE {c8['circular']['mean_rmse']:.3f}, correlation {c7['circular']['mean_corr']:.3f}); with "
                      f"h = level/4 the same nulls reach the bar in {pct0(sd['frac_draws_rmse_below_bar'])} of draws "
                      f"(median correlation {sd['corr_median']:.3f}). Under the original's definition the universality "
                      f"bar is largely met by construction; the design-h statistics are the ones the tests assert."]
        lines += ["", f"**C9.** Shape models on g_mean, all {ev['n_layers'] + 1} points (best first):", "",
                  "| model | R² | BIC | parameters |", "|---|---|---|---|"]
        for f in c9["full_fits"]:
            lines.append(f"| {f['model']} | {f['r2']:.4f} | {f['bic']:.1f} | "
                         + ", ".join(f"{k}={v:.3g}" for k, v in f["params"].items()) + " |")
        lines += ["", f"Truncated ({c9['truncation_rule']}): best {c9['best_truncated']}; power-law α = "
                      f"{fmt(c9['alpha_truncated'])}, two-stage bootstrap 95 % {fmt(c9['alpha_truncated_ci95'][0])}-"
                      f"{fmt(c9['alpha_truncated_ci95'][1])}.",
                  "", "Per word (h = level/4): f_max, where f peaks, layers with R² > 0.95, Spearman(i, R²_i), RMSE of g:",
                  "", "| word | f_max | argmax f | R² > 0.95 | Spearman | RMSE of g |", "|---|---|---|---|---|---|"]
        for w in ev["words_used"]:
            d = ev["words"][w]["design"]
            lines.append(f"| {w}{'*' if ev['words'][w]['in_original'] else ''} | {d['f_max']:.3f} | {d['argmax_f']} | "
                         f"{d['n_layers_r2_above_095']} | {d['spearman_depth_r2']:+.3f} | {c8['rmse'][w]:.3f} |")
        lines += ["", "\\* one of the original's nine words."]
    return lines


def intro(records: list[dict], layout: OutputLayout) -> str:
    return EXP3_INTRO.format(data=rel(layout.data, layout.reports), note=STIMULI_NOTE)


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance_rows, figures=figures, data_files=data_files,
                    figure_glob="exp3*_{tag}.png", header=header)
