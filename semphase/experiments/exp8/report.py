"""exp8's part of the report: introduction, measurements, figures (the builder in
:mod:`semphase.report` writes the rest)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt  # no backend is chosen here: a notebook keeps its own
import numpy as np  # noqa: E402

from ... import fits  # noqa: E402
from ...report import OutputLayout, ReportSpec, budget_row, fmt, label_axes, rel  # noqa: E402
from ...semantic.reporting import save  # noqa: E402


# -- figures -------------------------------------------------------------------------------------

def _fig_sigma(ev: dict, path: Path) -> str:
    g, a = ev["g"], ev["sigma_erf"]
    x, y = np.array(g["x"]), np.array(g["g_mean"])
    xf = np.linspace(0, 1, 200)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    if g.get("g_mean_ci95"):
        ax.fill_between(x, g["g_mean_ci95"][0], g["g_mean_ci95"][1], color="0.85", label="95 % interval (bootstrap)")
    ax.plot(x, y, "o", color="k", ms=3, label="g(l/L), mean over words (exp3)")
    ax.plot(xf, fits._g_erf(xf, a["sigma_free"]), color="tab:blue", label=f"erf, σ free = {a['sigma_free']:.4f}")
    ax.plot(xf, fits._g_erf(xf, a["sigma_pi"]), color="tab:red", ls="--", label="erf, σ = 1/√π")
    label_axes(ax, "l/L", "g(l/L)", f"8A: χ² = {a['chi2']:.3g}, p = {a['p_value']:.3g}")
    ax = axes[1]
    names = list(a["constants"])
    vals = [a["constants"][n] for n in names]
    ax.axvspan(*a["boot_ci95"], color="tab:blue", alpha=0.25, label="bootstrap 95 % interval")
    if all(math.isfinite(v) for v in a["profile_ci95"]):
        ax.axvspan(*a["profile_ci95"], color="tab:orange", alpha=0.2, label="profile-likelihood 95 % interval")
    for i, (n, v) in enumerate(zip(names, vals)):
        ax.axvline(v, color="tab:red" if n == "1/sqrt(pi)" else "0.4", lw=1.5 if n == "1/sqrt(pi)" else 1)
        ax.text(v, 0.9 - 0.12 * i, n, fontsize=7, rotation=0)
    ax.axvline(a["sigma_free"], color="tab:blue", lw=2, label="σ free")
    ax.set_yticks([])
    label_axes(ax, "σ", None, "σ's intervals and the constants")
    fig.suptitle(f"{ev['model']}: erf width of g(l/L) against 1/√π", fontsize=10)
    return save(fig, path)


def _fig_models(ev: dict, path: Path) -> str:
    g, b = ev["g"], ev["pi_models"]
    x, y = np.array(g["x"]), np.array(g["g_mean"])
    xf = np.linspace(0, 1, 200)
    models = {**fits.G_MODELS, **fits.PI_MODELS}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    ax.plot(x, y, "o", color="k", ms=3, label="g(l/L), mean over words")
    for row in b["ranking"]:
        if row["model"] in fits.PI_MODELS and row["success"]:
            ax.plot(xf, models[row["model"]](xf, *row["params"].values()), lw=1, label=models[row["model"]].formula)
    label_axes(ax, "l/L", "g(l/L)", "π-shaped models")
    ax = axes[1]
    rows = b["ranking"][::-1]
    ax.barh([r["model"] for r in rows], [r["bic"] for r in rows],
            color=["tab:red" if r["pi_model"] else "0.6" for r in rows])
    label_axes(ax, "BIC (lower is better)", None, f"8B: best {b['best']} (π models in red)", legend=None)
    fig.suptitle(f"{ev['model']}: π-shaped models of g(l/L) ranked by BIC", fontsize=10)
    return save(fig, path)


def _fig_rotation(ev: dict, path: Path) -> str:
    rot = ev["rotation"]
    block = rot["heldout"] or rot["rank"]
    a, c = block["all"], block["without_position_0"]
    L = len(a["theta_layer_mean"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    ax.errorbar(np.arange(L), a["theta_layer_mean"], yerr=a["theta_layer_std"], fmt="o-", ms=3, capsize=2,
                label="every position")
    ax.plot(np.arange(L), c["theta_layer_mean"], "x--", ms=3, label="position 0 of each chunk excluded")
    ax.axhline(math.pi / L, color="0.5", ls=":", label="π/L")
    label_axes(ax, "block l", "θ(l) (rad)", "rotation angle per block (mean ± std)")
    ax = axes[1]
    h = a["hist_Theta_over_pi"]
    edges = np.array(h["edges"])
    ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", color="0.6")
    for k in range(int(edges[-1]) + 1):
        ax.axvline(k, color="tab:red", lw=1)
        ax.axvspan(k - 0.1, k + 0.1, color="tab:red", alpha=0.1)
    ax.axvline(a["Theta_over_pi_mean"], color="k", lw=2, label=f"mean {a['Theta_over_pi_mean']:.3f}")
    label_axes(ax, "Θ/π", "positions", f"Θ/π over {a['n_positions']} positions (integers ± 0.1 in red)")
    fig.suptitle(f"{ev['model']}: residual-stream rotation ({'held-out' if rot['heldout'] else 'rank'} range)",
                 fontsize=10)
    return save(fig, path)


def figures(ev: dict, folder: Path) -> list[str]:
    tag = ev["tag"]
    out = []
    if ev.get("sigma_erf"):
        out.append(_fig_sigma(ev, folder / f"exp8a_erf_sigma_test_{tag}.png"))
    if ev.get("pi_models"):
        out.append(_fig_models(ev, folder / f"exp8b_pi_models_{tag}.png"))
    if ev.get("rotation"):
        out.append(_fig_rotation(ev, folder / f"exp8c_rotation_angles_{tag}.png"))
    return out


# -- Markdown --------------------------------------------------------------------------------------

INTRO = """# exp8 results: does π appear in g(l/L) or in the residual stream? Claims C13-C15 (science.md section 8)

Written by the semphase report plugin (or `python -m semphase run exp8`) from `{data}/exp8_*.json`;
every number was measured in the run named in its provenance.

The original saw σ_erf = 0.545 for GPT-2 small's g(l/L), noticed 1/√π = 0.564 nearby, and tested it
afterwards (a likelihood-ratio test that did not reject, p = 0.535 / 0.245); it ranked π-shaped curves
by BIC and measured the rotation path length Θ/π = 1.58. Its verdict: "π trace suggestive but not
conclusive". The tests here state that conclusion as science.md 8.7 proposes:

* **C13** - σ_erf of exp3's g_mean(l/L) (measured through the session on the same model), with a
  bootstrap 95 % interval from exp3's two-stage replicates (words with replacement, then prompts within
  levels; σ refitted to each) and the profile-likelihood interval. 1/√π is *singled out* only when it is
  inside the bootstrap interval and every competitor (0.5, 0.55, 1/√3, 0.6) is outside; the test asserts
  it is not. A failed LR test is not evidence for 1/√π: the other constants would pass it too.
* **C14** - the nine models of g (exp3ef's five and four π curves, two with no parameter) by BIC, the
  free parameters counted as fitted; no 0-parameter π model wins, decided when fewer than 5 % of
  bootstrap replicates of g are won by one.
* **C15** - θ(l) = arccos cos(v_l, v_(l+1)) per block and Θ = Σ θ per token position, on WikiText tokens
  (the test split as the original, unless `--split`): the original's sample (positions 0-499 of the
  first chunk) for the GPT-2 reproduction; a held-out range after the first 2,048 tokens (8 chunks at
  the quick budget) for the hypothesis, with intervals resampling chunks. Position 0 of each chunk (no
  BOS; an outlier norm) is excluded in a control column.

Reproduction tests need GPT-2 and, for 8A/8B, g(l/L) from the original's 80 gradient prompts (a stimuli
file named `original-gradient-prompts`); semphase's own stimuli give a different g, so here they skip.
"""


def intro(records: list[dict], layout: OutputLayout) -> str:
    return INTRO.format(data=rel(layout.data, layout.reports))


def _theta_row(name: str, s: dict) -> str:
    ci = s.get("Theta_over_pi_mean_ci95")
    return (f"| {name} | {s['position_0']} | {s['n_chunks']} | {s['n_positions']} | {fmt(s['Theta_mean'])} ± "
            f"{fmt(s['Theta_std'], 3)} | {fmt(s['Theta_over_pi_mean'])}" + (f" [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "")
            + f" | {s['nearest_integer']} | {fmt(s['deviation_from_nearest_integer'], 3)} | "
            f"{fmt(s['frac_within_own_integer'], 3)} | {fmt(s['Theta_over_pi_without_block0_mean'])} |")


def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    lines = ["", "### Measurements", ""]
    if ev.get("g_missing_reason"):
        lines.append(f"Parts a and b (8A, 8B) were not measured: {ev['g_missing_reason']}.")
    if ev.get("g"):
        g = ev["g"]
        lines.append(f"g(l/L): {g['source']} ({g['n_words']} words, {len(g['x'])} points, {g['n_boot']} bootstrap "
                     f"replicates resampling {g['unit']}).")
    if ev.get("sigma_erf"):
        a = ev["sigma_erf"]
        inside = [n for n, ok in a["inside_boot_ci"].items() if ok]
        inside_p = [n for n, ok in a["inside_profile_ci"].items() if ok]
        lines += ["", f"**8A (C13).** σ_free = {fmt(a['sigma_free'])} ({fmt(a['diff_pct'], 3)} % from 1/√π = "
                      f"{fmt(a['sigma_pi'])}" + ("; on a bound of [0.01, 10]: erf does not describe this g"
                                                  if a.get("sigma_on_bound") else "") + f"); RSS free / fixed {fmt(a['rss_free'])} / {fmt(a['rss_fixed'])}, χ² = "
                      f"{fmt(a['chi2'])}, p = {fmt(a['p_value'])} (the original's LR test: "
                      f"{'rejects' if a['lr_rejects_pi'] else 'does not reject'} σ = 1/√π); R² free / fixed "
                      f"{fmt(a['r2_free'])} / {fmt(a['r2_fixed'])}, n = {a['n_points']}. Bootstrap 95 % interval of σ "
                      f"{fmt(a['boot_ci95'])} ({a['n_boot']} replicates, {a['n_boot_failed']} failed fits), containing "
                      f"{', '.join(inside) or 'none of the constants'}; profile-likelihood interval "
                      f"{fmt(a['profile_ci95'])}, containing {', '.join(inside_p) or 'none'}."]
    if ev.get("pi_models"):
        b = ev["pi_models"]
        lines += ["", f"**8B (C14).** Best by BIC: {b['best']} ({'a π model' if b['best_is_pi_model'] else 'not a π model'}). "
                      f"Winners over {b['n_replicates']} bootstrap replicates: "
                      + ", ".join(f"{k} {v}" for k, v in sorted(b["replicate_winners"].items(), key=lambda t: -t[1]))
                      + f"; share won by a 0-parameter π model {fmt(b['share_zero_param_pi_wins'], 3)}. "
                        f"ΔBIC(cos_pi_0p − erf) = {fmt(b['delta_bic_cos_pi_0p_minus_erf'])} (exp9 part C). {b['bic_formula']}.",
                  "", "| rank | model | π | k | parameters | R² | BIC |", "|---|---|---|---|---|---|---|"]
        for row in b["ranking"]:
            params = ", ".join(f"{k} {fmt(v)}" for k, v in row["params"].items()) or "-"
            lines.append(f"| {row['rank']} | {row['model']} | {'yes' if row['pi_model'] else ''} | {row['n_params']} | "
                         f"{params} | {fmt(row['r2'])} | {fmt(row['bic'])} |")
    if ev.get("rotation_missing_reason"):
        lines += ["", f"Part c (8C) was not measured: {ev['rotation_missing_reason']}"]
    rot = ev.get("rotation")
    if rot:
        o = rot["original_sample"]
        lines += ["", f"**8C (C15).** {rot['definition']}. Rank range: {rot['rank_data']['source']}, tokens "
                      f"{rot['rank_data']['token_range']}; held-out: "
                      + (f"tokens {rot['heldout_data']['token_range']} ({rot['heldout_data']['n_chunks']} chunks)"
                         if rot.get("heldout") else rot.get("heldout_missing_reason", "none")) + ".",
                  "", f"The original's sample ({o['positions']}): Θ/π = {fmt(o['Theta_over_pi_mean'])} ± "
                      f"{fmt(o['Theta_over_pi_std'], 3)}, nearest integer {o['nearest_integer']}, fraction within 0.1 "
                      f"of it {fmt(o['frac_within_of_mean_integer'], 3)}.",
                  "", "| range | position 0 | chunks | positions | Θ (rad) mean ± std | Θ/π mean [95 % CI] | nearest "
                      "integer | distance | fraction within 0.1 of an integer | Θ'/π (without block 0) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for name in ("rank", "heldout"):
            if rot.get(name):
                lines += [_theta_row(name, rot[name]["all"]), _theta_row(name, rot[name]["without_position_0"])]
        unit = (rot.get("heldout") or rot["rank"])["all"].get("unit")
        lines += ["", f"Intervals resample {unit}.",
                  "", "Per-block θ(l) (rad, mean over the held-out positions, every position): "
                  + ", ".join(fmt(t, 3) for t in (rot.get("heldout") or rot["rank"])["all"]["theta_layer_mean"]) + "."]
    return lines


def provenance(ev: dict) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [budget_row(ev)]
    if ev.get("g"):
        st = ev["g"].get("stimuli") or {}
        rows.append(("g(l/L) from", f"{ev['g']['source']}; stimuli {st.get('source', 'n/a')} (sha256 "
                                     f"{str(st.get('sha256', ''))[:16]})"))
    rot = ev.get("rotation")
    if rot:
        d = rot["rank_data"]
        rows.append(("tokens", f"{d['source']}, text sha256 {d['text_sha256'][:16]}; rank range {d['token_range']}"
                               + (f", held-out {rot['heldout_data']['token_range']}" if rot.get("heldout") else "")))
    return rows


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance, figures=figures, figure_glob="exp8*_{tag}.png")
