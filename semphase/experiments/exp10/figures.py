"""The figures of science.md section 17 for exp10, drawn from the evidence dict (PNG, 150 dpi)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # no backend is chosen here: a notebook keeps its own
import numpy as np  # noqa: E402

from ...report import save_figure as _save  # noqa: E402

# A cumulative curve's name in words, for legends: the kind, the heads' pool, the data it is measured on.
_KIND_WORDS = {"zero": "zero-ablation", "mean": "mean-ablation", "linear": "relu attention", "mixed":
               "best method per head", "kernel": "kernelised attention", "relu": "relu attention"}
_POOL_WORDS = {"all": "every head", "l0p": "layer 0 kept", "l0p_sample": "layer 0 kept, layer sample"}
_DATA_WORDS = {"": "rank range", "heldout": "held-out", "rank": "rank range", "validation": "validation range"}


def curve_words(name: str) -> str:
    """``zero_all_heldout`` -> "zero-ablation, every head, held-out"; cross-fitted curves
    (``crossfit_a_on_B``) -> "ranking of range a, on range B"; an unknown name is returned as it is."""
    if name.startswith("crossfit_"):
        a, _, b = name[len("crossfit_"):].partition("_on_")
        return f"ranking of range {a}, on range {b}"
    kind, _, rest = name.partition("_")
    if kind not in _KIND_WORDS:
        return name
    for pool in sorted(_POOL_WORDS, key=len, reverse=True):
        if rest == pool or rest.startswith(pool + "_"):
            data = rest[len(pool) + 1:]
            if data in _DATA_WORDS:
                return f"{_KIND_WORDS[kind]}, {_POOL_WORDS[pool]}, {_DATA_WORDS[data]}"
    return name

THRESHOLD_STYLE = {1.1: "tab:green", 1.5: "tab:orange", 2.0: "tab:red"}


def _grid(ev: dict, kind: str) -> np.ndarray:
    out = np.full((ev["n_layers"], ev["n_heads"]), np.nan)
    for row in ev[kind]["heads"]:
        out[row["layer"], row["head"]] = row["delta_ppl"]
    return out


def exp10_figures(ev: dict, figures_dir: str | Path) -> list[str]:
    """Draw every exp10 figure the evidence supports; returns the file paths."""
    d = Path(figures_dir)
    tag = ev["tag"]
    out: list[str] = []
    if ev.get("zero"):
        z = _grid(ev, "zero")
        flat = z[np.isfinite(z)]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist(flat, bins=60, color="tab:blue")
        ax.axvline(0, color="k", lw=0.8)
        ax.axvline(0.1, color="tab:red", ls="--", lw=0.8, label="ΔPPL = 0.1")
        ax.set_yscale("log")
        ax.set_xlabel("zero-ablation ΔPPL (relative)")
        ax.set_ylabel("heads")
        ax.set_title(f"{ev['model']}: single-head zero-ablation ({ev['n_tokens']} tokens)")
        ax.legend()
        out.append(_save(fig, d / f"exp10b_histogram_{tag}.png"))

        L, H = z.shape
        fig, ax = plt.subplots(figsize=(max(5, 0.55 * H + 2), max(4, 0.3 * L + 1.5)))
        im = ax.imshow(z, aspect="auto", cmap="magma_r")
        fig.colorbar(im, ax=ax, label="ΔPPL")
        if L * H <= 400:
            for l in range(L):
                for h in range(H):
                    if np.isfinite(z[l, h]):
                        ax.text(h, l, f"{100 * z[l, h]:.0f}", ha="center", va="center", fontsize=5,
                                color="white" if z[l, h] > np.nanmax(z) / 2 else "black")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(f"{ev['model']}: zero-ablation ΔPPL (%) per head")
        out.append(_save(fig, d / f"exp10b_heatmap_{tag}.png"))

    if ev.get("stats"):
        mags = np.sort(np.abs(_grid(ev, "zero").ravel()))[::-1]
        ranks = np.arange(1, mags.size + 1)
        fit = ev["stats"].get("zipf_fit")
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, log in zip(axes, (False, True)):
            ax.plot(ranks, mags, ".", ms=3, label="|ΔPPL|")
            if fit:
                ax.plot(ranks, fit["C"] * ranks ** (-fit["alpha"]), "r-",
                        label=f"C r^-α (least squares), α = {fit['alpha']:.2f}")
            if log:
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_xlabel("rank")
            ax.set_ylabel("|ΔPPL|")
            ax.legend(fontsize=7)
        ht = ev["stats"].get("heavy_tail") or {}
        if "xmin" in ht:
            pe = ht["powerlaw_vs_exponential"]
            title = (f"powerlaw ({ev['stats'].get('heavy_tail_tokens', '')} tokens): x_min {ht['xmin']:.3g}, "
                     f"tail {ht['n_tail']}, α {ht['alpha']:.2f}; vs exponential R {pe['R']:.2f} (p {pe['p']:.2g})")
            for ax in axes:
                ax.axhline(ht["xmin"], color="tab:green", ls=":", lw=1)
        else:
            title = "no heavy-tail fit"
        fig.suptitle(f"{ev['model']}: rank plot; {title}", fontsize=9)
        out.append(_save(fig, d / f"exp10b_zipf_{tag}.png"))

    curves = ev.get("curves") or {}

    def plot_curves(names: list[str], path: Path, title: str) -> None:
        present = [n for n in names if n in curves]
        if names[0] not in curves:  # the figure's own curve is missing (its part was not run)
            return
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for name in present:
            c = curves[name]
            words = curve_words(name)
            axes[0].plot(c["steps"], c["ppl"], "o-", ms=3, label=f"{words} ({c['tokens']} tokens)")
            lab = ", ".join(f"{t}x: {c['thresholds'][str(t)]}" for t in (1.1, 1.5, 2.0))
            line, = axes[1].plot(c["steps"], c["ratio"], "o-", ms=3, label=f"{words} ({lab})")
            cis = c.get("thresholds_ci95") or {}
            drawn = False
            for t in (1.1, 1.5, 2.0):  # each threshold's 95 % interval as a bar along its line
                ci, value = cis.get(str(t)), c["thresholds"].get(str(t))
                if ci and value is not None and all(isinstance(x, (int, float)) for x in ci):
                    axes[1].errorbar([value], [t], xerr=[[max(0, value - ci[0])], [max(0, ci[1] - value)]], fmt="|",
                                     color=line.get_color(), capsize=4, lw=1.5,
                                     label=None if drawn else f"{words}: 95 % interval of each threshold")
                    drawn = True
        for t, color in THRESHOLD_STYLE.items():
            axes[1].axhline(t, color=color, ls="--", lw=0.8)
        axes[0].set_yscale("log")
        axes[1].set_yscale("log")
        for ax in axes:
            ax.set_xlabel("heads ablated (cumulative, least important first)")
            ax.legend(fontsize=6)
        axes[0].set_ylabel("perplexity")
        axes[1].set_ylabel("PPL / baseline")
        fig.suptitle(title)
        out.append(_save(fig, path))

    plot_curves(["zero_all", "zero_all_heldout"], d / f"exp10c_pareto_{tag}.png",
                f"{ev['model']}: cumulative zero-ablation (in-sample and held-out)")
    plot_curves(["mean_l0p", "mean_l0p_heldout"], d / f"exp10f_pareto_l0protected_{tag}.png",
                f"{ev['model']}: cumulative mean-ablation, layer 0 protected")
    plot_curves(["zero_all", "zero_l0p", "mean_l0p", "zero_l0p_heldout", "mean_l0p_heldout"],
                d / f"exp10g_three_curves_{tag}.png", f"{ev['model']}: zero-all, zero-L0p, mean-L0p")
    plot_curves(["linear_l0p", "mixed_l0p", "linear_l0p_heldout", "mixed_l0p_heldout", "kernel_l0p_heldout",
                 "mean_l0p_heldout"], d / f"exp10k_linearisation_curves_{tag}.png",
                f"{ev['model']}: softmax replaced cumulatively, layer 0 protected (10K)")
    plot_curves(["linear_l0p", "linear_l0p_validation"], d / f"exp10v_validation_{tag}.png",
                f"{ev['model']}: the rank-range ranking in-sample and on the held-out range (10V)")

    if ev.get("layer"):
        lay = ev["layer"]
        x = np.arange(len(lay["mean_delta_ppl"]))
        fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(x) + 2), 4))
        ax.bar(x - 0.2, lay["mean_delta_ppl"], 0.4, label="mean ΔPPL")
        ax.bar(x + 0.2, lay["max_delta_ppl"], 0.4, label="max ΔPPL")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlabel("layer")
        ax.set_ylabel("zero-ablation ΔPPL")
        ax.legend()
        ax.set_title(f"{ev['model']}: importance per layer")
        out.append(_save(fig, d / f"exp10d_layer_importance_{tag}.png"))
        g = lay.get("g_correlation")
        if g:
            fig, ax = plt.subplots(figsize=(5, 4))
            ax.plot(g["dg_dx"], lay["mean_delta_ppl"], "o")
            ax.set_xlabel("dg/dx (exp3)")
            ax.set_ylabel("layer mean ΔPPL")
            ax.set_title(f"r = {g['pearson_r']:.2f} (p = {g['pearson_p']:.2g})")
            out.append(_save(fig, d / f"exp10d_g_correlation_{tag}.png"))

    if ev.get("mean") and ev.get("zero"):
        z = _grid(ev, "zero")
        m = _grid(ev, "mean")
        layers = np.repeat(np.arange(z.shape[0])[:, None], z.shape[1], axis=1)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, rest in zip(axes, (False, True)):
            sel = layers > 0 if rest else np.ones_like(layers, bool)
            sc = ax.scatter(z[sel], m[sel], c=layers[sel], cmap="viridis", s=10)
            lim = [min(np.nanmin(z[sel]), np.nanmin(m[sel])), max(np.nanmax(z[sel]), np.nanmax(m[sel]))]
            ax.plot(lim, lim, "k--", lw=0.7)
            ax.set_xlabel("zero-ablation ΔPPL")
            ax.set_ylabel("mean-ablation ΔPPL")
            ax.set_title("layers 1+" if rest else "all heads")
        fig.colorbar(sc, ax=axes, label="layer")
        fig.suptitle(f"{ev['model']}: zero vs mean ablation (in-sample means)")
        out.append(_save(fig, d / f"exp10e_zero_vs_mean_scatter_{tag}.png", tight=False))

    if ev.get("harmful") and "joint_zero_delta" in ev["harmful"]:
        h = ev["harmful"]
        names = ["in-sample: sum", "in-sample: joint"]
        vals = [h["sum_individual_delta"], h["joint_zero_delta"]]
        hh = ev.get("harmful_heldout") or {}
        if "interaction" in hh:
            names += ["held-out: sum", "held-out: joint"]
            vals += [hh["sum_individual_delta"], hh["joint_delta"]]
        null = hh.get("null_random_sets")
        fig, axes = plt.subplots(1, 2 if null else 1, figsize=(12 if null else 7, 4), squeeze=False)
        ax = axes[0][0]
        ax.bar(range(len(vals)), vals, color=["tab:gray", "tab:red"] * 2)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(vals)), names, rotation=20, fontsize=8)
        ax.set_ylabel("ΔPPL")
        ax.set_title(f"{len(h['heads'])} harmful heads (zero ΔPPL < 0 on the rank range)", fontsize=9)
        if null:
            ax = axes[0][1]
            ax.hist(null["interaction"], bins=20, color="tab:gray", label=f"random sets of {null['set_size']} ({null['n']})")
            ax.axvline(null["q95"], color="k", ls="--", lw=1, label="null 95th percentile")
            ax.axvline(hh["interaction"], color="tab:red", lw=2, label=f"harmful set {hh['interaction']:+.4f}")
            if "least_important" in hh:
                ax.axvline(hh["least_important"]["interaction"], color="tab:blue", lw=1.5,
                           label=f"least-important set {hh['least_important']['interaction']:+.4f}")
            ax.set_xlabel("held-out interaction: joint ΔPPL - sum of individual ΔPPL")
            ax.legend(fontsize=7)
        fig.suptitle(f"{ev['model']}: harmful heads (C22)")
        out.append(_save(fig, d / f"exp10h_harmful_heads_{tag}.png"))

    lin = ev.get("linear")
    if lin:  # 10I: the distribution of single-head ΔPPL per replacement method
        fig, ax = plt.subplots(figsize=(7, 4))
        methods = list(lin["per_method"])
        data = [np.asarray(lin["per_method"][m]["delta_ppl"], dtype=float) for m in methods]
        data = [x[np.isfinite(x)] for x in data]
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(methods) + 1), methods)
        ax.axhline(0, color="k", lw=0.7)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_ylabel("single-head ΔPPL (rank range)")
        ax.set_title(f"{ev['model']}: each head's softmax replaced alone (10I)")
        out.append(_save(fig, d / f"exp10i_methods_{tag}.png"))

    rec = ev.get("recovery")
    if rec:  # exp10P: best-of-N under the selection measure and the independent one
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ns = [str(n) for n in rec["budget"]["ns"]]
        for name, res in rec["best_of_n"].items():
            axes[0].plot([int(n) for n in ns], [res["best_of"][n]["scorer_ppl"]["mean"] for n in ns], "o-", label=name)
            axes[1].plot([int(n) for n in ns], [res["best_of"][n]["reference_f1"]["mean"] for n in ns], "o-", label=name)
        axes[0].set_ylabel("baseline-scored perplexity (the original's selection)")
        axes[1].set_ylabel("bigram F1 with the true continuation")
        for ax in axes:
            ax.set_xlabel("N (best of)")
            ax.legend(fontsize=7)
        fig.suptitle(f"{ev['model']}: best-of-N (exp10P)")
        out.append(_save(fig, d / f"exp10p_best_of_n_{tag}.png"))
    if rec and rec.get("judged"):  # C27: the judged best-of-N at scale, its two comparisons over chunks
        j = rec["judged"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ns = [str(n) for n in j["budget"]["ns"]]
        for name, rows in j["by_n"].items():
            axes[0].plot([int(n) for n in ns], [rows[n]["reference_f1"] for n in ns], "o-", label=name)
        axes[0].set_xlabel("N (best of; the pick: lowest baseline perplexity)")
        axes[0].set_ylabel("bigram F1 with the true continuation")
        axes[0].legend(fontsize=7)
        labels, values, lows, highs, seeds = [], [], [], [], []
        for comp, rows in j["comparisons"].items():
            for m, c in rows.items():
                if m == "scorer_ppl":
                    continue
                n_b = 1 if comp == "original" else j["n"]
                labels.append(f"{m}\n@{j['n']} - @{n_b}")
                values.append(c["value"])
                lows.append(c["value"] - c["ci95"][0])
                highs.append(c["ci95"][1] - c["value"])
                seeds.append(c["per_seed"])
        x = np.arange(len(labels))
        axes[1].errorbar(x, values, yerr=[lows, highs], fmt="o", capsize=4, label="mean, 95 % CI over chunks")
        for i, per in enumerate(seeds):
            axes[1].plot([i + 0.12] * len(per), per, "x", color="gray", label="each seed" if i == 0 else None)
        axes[1].axhline(0, color="k", lw=0.7)
        axes[1].set_xticks(x, labels, fontsize=7)
        axes[1].set_ylabel(f"{j['compared']['a']} minus {j['compared']['b']}")
        axes[1].legend(fontsize=7)
        fig.suptitle(f"{ev['model']}: best-of-N judged ({j['prompts']['n']} prompts, {j['prompts']['n_chunks']} chunks, "
                     f"{len(j['seeds'])} seeds; C27)")
        out.append(_save(fig, d / f"exp10p_judged_{tag}.png"))
    return out
