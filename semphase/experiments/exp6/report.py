"""exp6's part of the report: introduction, data provenance, measurements, figures (science.md 17)."""
from __future__ import annotations

from pathlib import Path

from ...report import (OutputLayout, ReportSpec, budget_row, fmt, forward_row, save_figure, thresholds_text,
                        written_by)


def intro(records: list[dict], layout: OutputLayout) -> str:
    return "\n".join([
        "# exp6 results: W_QK principal components and head clustering (science.md section 6)",
        "",
        written_by("exp6", layout) + " Every head's W_QK = W_Q^T W_K (d_head x d_head) is read "
        "from the processed weights (TransformerLens' default processing); grouped-query models give a query head the "
        "key matrix of its group. A centred PCA across heads gives the thresholds K(50/80/90/95 %), computed by one "
        "function that every table and claim reads (the original's report had a cumulative-variance column that "
        "contradicted its thresholds). Reconstructions from K components, k-means representatives and the controls are "
        "injected into W_Q by the additive formula W_Q' = W_Q + W_K (W_K^T W_K)^-1 δ^T (float64 solve; W_K and b_Q "
        "kept), restored after every evaluation. Perplexity is measured on the held-out range of the split (after the "
        "budget's first tokens, which are exp10's ranking data), and every interval is a cluster t interval over its chunks (semphase.intervals, coverage measured by simulation).",
        "",
        "The spec's K and k values are given for GPT-2 small's 144 heads; for a model with N heads they are scaled by "
        "N/144. Reproduction (R) tests compare with the original's GPT-2 numbers: the PCA thresholds and PC1-3 shares "
        "(weights only), the PPL ratios at K = 100/130/140/144 (on WikiText-2 test) and the clustering ratios; GPT-2 "
        "cannot be loaded here, so they skip. The gauge question (science.md 6.7 i) is answered beside the original "
        "representation: the same PCA of the heads' d_model x d_model forms W_Q W_K^T (unchanged by a change of basis "
        "of a head's query/key space) and of W_Q^T W_K after a random such change of basis. The thresholds also depend on "
        "the weight processing: folding the norm's weights into W_Q and W_K rescales their d_model rows, which changes "
        "W_Q^T W_K (a recomputation from the raw Hugging Face weights must fold them the same way to agree).",
    ])


def provenance(ev: dict) -> list[tuple[str, object]]:
    d = ev["data"]
    rr = ev.get("rank_range") or {}
    return [
        budget_row(ev),
        ("perplexity data", f"{d['source']}; held-out range tokens {d['token_range'][0]:,}-{d['token_range'][1]:,} = "
                            f"{d['n_chunks']} chunks x {d['ctx']}; tokens sha256 {d['tokens_sha256'][:16]}; disjoint from "
                            f"the first {rr.get('n_tokens', 0):,} tokens (exp10's rank range)"),
        ("representation", ev["representation"]),
        ("intervals", f"over {ev['interval_unit']}" if ev.get("interval_method") else
         f"resample {ev['interval_unit']}; {ev.get('n_boot')} replicates, seed {ev['seed']}"),
        ("k-means", f"{ev['kmeans'].get('package', 'scikit-learn')} KMeans on the first {ev['kmeans']['n_pcs']} PCA "
                    "coefficients, random_state "
                    f"{ev['kmeans']['random_state']}, n_init {ev['kmeans']['n_init']}"),
        forward_row(ev),
        ("edits evaluated", f"{ev['invariants']['n_items']} (each on every held-out chunk)"),
    ]


def _th(t: dict) -> str:
    return thresholds_text(t)


def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    N = ev["n_heads_total"]
    g = ev["gauge"]
    lines = ["", "### Measurements", "",
             f"{N} heads ({ev['n_layers']} layers x {ev['n_heads']}; {ev['n_kv_heads']} key/value heads per layer), "
             f"X = {ev['pca']['W_flat_shape'][0]} x {ev['pca']['W_flat_shape'][1]}. Baseline perplexity on the held-out "
             f"range: {ev['baseline_ppl']:.4f} ({ev['n_predicted']:,} predicted tokens).", "",
             "| representation | K(50 / 80 / 90 / 95 %) | PC1-3 shares |", "|---|---|---|",
             f"| W_Q^T W_K (the original's) | {_th(ev['pca']['thresholds'])} | "
             f"{', '.join(fmt(x, 3) for x in ev['pca']['top3'])} |",
             f"| W_Q^T W_K, direct eigen-decomposition | {_th(ev['pca']['direct_eigen']['thresholds'])} | max ratio "
             f"difference {fmt(ev['pca']['direct_eigen']['max_abs_ratio_diff'], 2)} |",
             f"| W_Q^T W_K after a random change of basis per key/value group | {_th(g['random_gauge']['thresholds'])} | "
             f"{', '.join(fmt(x, 3) for x in g['random_gauge']['top3'])} |",
             f"| W_Q W_K^T (gauge-invariant) | {_th(g['invariant']['thresholds'])} | "
             f"{', '.join(fmt(x, 3) for x in g['invariant']['top3'])} |", "",
             f"Reconstruction from K components (held-out PPL; 95 % intervals over {ev['interval_unit']}):", "",
             "| K | cumulative variance | PPL | ratio | 95 % CI |", "|---|---|---|---|---|"]
    for k, v in sorted(ev["K_values"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {k} | {v['cumvar']:.4f} | {v['perplexity']:.3f} | {v['ratio']:.3f} | {fmt(v['ratio_ci95'])} |")
    lines += ["", f"K = all: |PPL / baseline - 1| = {fmt(ev['K_all_verification']['abs_rel_diff'], 2)}."]
    for k, rs in sorted(ev.get("random_subspace", {}).items(), key=lambda kv: int(kv[0])):
        draws = "; ".join(f"ratio {d['ratio']:.3g} {fmt(d['ratio_ci95'], 3)} keeping {d['variance_retained']:.3f} of "
                          "the variance" for d in rs["draws"])
        lines.append(f"Random {k}-dimensional subspace(s) of the heads' span (control, K = {k}: PCA ratio "
                     f"{fmt(rs['pca_ratio'], 4)} keeping {rs['pca_cumvar']:.3f}): {draws}.")
    d = ev.get("damage_per_variance") or {}
    if "margin" in d:
        lines += ["", f"Damage per unit of variance (K = {d['points']}, cumulative variance "
                  f"{', '.join(f'{x:.4f}' for x in d['cumvar'])}): slope_low {fmt(d['slope_low'])} "
                  f"{fmt(d['slope_low_ci95'])}, slope_high {fmt(d['slope_high'])} {fmt(d['slope_high_ci95'])}, ratio "
                  f"{fmt(d['slope_ratio'])}; margin slope_low - 3 x slope_high {fmt(d['margin'])} {fmt(d['margin_ci95'])}."]
    he = ev.get("head_error") or {}
    if he:
        worst = ", ".join(f"{w['head']} ({w['share']:.2f})" for w in he["worst"][:10])
        lines += ["", f"Per-head reconstruction error at K = {he['K']}: the {he['top_m']} worst heads carry "
                  f"{he['top_share']:.3f} of the squared error (null: median {he['null']['median']:.3f}, 95th percentile "
                  f"{he['null']['q95']:.3f}, p = {fmt(he['null']['p_value'], 2)}; {he['null']['what']}). Worst heads "
                  f"(share): {worst}. Layer shares: " + ", ".join(f"L{i} {x:.2f}" for i, x in enumerate(he['layer_share'])
                                                                if x >= 0.02) + " (layers with >= 0.02)."]
        imp = he.get("importance") or {}
        if "spearman_rho" in imp:
            lines.append(f"Against exp10's zero-ablation ΔPPL ({imp['source']}): Spearman ρ = {imp['spearman_rho']:.3f} "
                         f"(p = {fmt(imp['spearman_p'], 2)}), Pearson r = {imp['pearson_r']:.3f} over {imp['n']} heads; "
                         f"{imp['overlap_worst_and_most_important']} of the {he['top_m']} worst-reconstructed heads are "
                         f"among the {he['top_m']} most important. Informative (no threshold in the spec).")
        elif imp:
            lines.append(f"Against exp10's zero-ablation ΔPPL: not available ({imp.get('missing')}).")
    km = ev.get("kmeans") or {}
    if km.get("k_values"):
        lines += ["", "k-means clustering, members replaced by their representative:", "",
                  "| k | heads replaced | PPL | ratio | 95 % CI | largest cluster |", "|---|---|---|---|---|---|"]
        for k, v in sorted(km["k_values"].items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {k} | {v['n_replaced']} | {v['perplexity']:.1f} | {v['ratio']:.2f} | {fmt(v['ratio_ci95'], 3)} "
                         f"| {max(v['cluster_sizes'])} |")
        rp = ev.get("random_partition") or {}
        if rp.get("draws"):
            lines.append("Control, random partitions of the same sizes at k = " + str(rp["k"]) + ": " + "; ".join(
                f"ratio {x['ratio']:.2f} {fmt(x['ratio_ci95'], 3)}" for x in rp["draws"]) + ".")
    t = ev.get("timing", {})
    lines += ["", f"Time: PCA and controls {t.get('pca', 0):.1f} s, forwards {t.get('forwards', 0):.1f} s, total "
              f"{t.get('total', 0):.1f} s ({ev.get('engine_forwards', 0):.1f} chunk-forward equivalents)."]
    return lines


def figures(ev: dict, folder: Path) -> list[str]:
    import matplotlib.pyplot as plt
    import numpy as np

    tag, model, out = ev["tag"], ev["model"], []
    folder = Path(folder)
    N = ev["n_heads_total"]
    # 6A: cumulative variance in three representations
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = [("W_Q^T W_K (original)", ev["pca"]["cumulative_variance"], "tab:blue"),
              ("W_Q W_K^T (gauge-invariant)", np.cumsum(ev["gauge"]["invariant"]["explained_variance_ratio"]).tolist(),
               "tab:green")]
    for label, cum, color in curves:
        ax.plot(range(1, len(cum) + 1), cum, color=color, label=label)
    for t, k in ev["pca"]["thresholds"].items():
        ax.axhline(float(t), color="gray", lw=0.5, ls=":")
        ax.annotate(f"K({float(t) * 100:g} %) = {k}", (k, float(t)), fontsize=7, xytext=(4, -10),
                    textcoords="offset points")
    ax.set_xlabel("components K")
    ax.set_ylabel("cumulative explained variance")
    ax.set_title(f"{model}: PCA across {N} heads")
    ax.legend(fontsize=8)
    out.append(save_figure(fig, folder / f"exp6a_cumvar_{tag}.png"))

    # 6B: PPL and ratio vs K, with the random-subspace control
    ks = sorted(ev["K_values"], key=int)
    x = [int(k) for k in ks]
    r = [ev["K_values"][k]["ratio"] for k in ks]
    lo = [ev["K_values"][k]["ratio_ci95"][0] for k in ks]
    hi = [ev["K_values"][k]["ratio_ci95"][1] for k in ks]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].plot(x, [ev["K_values"][k]["perplexity"] for k in ks], "o-", ms=3, label="PCA reconstruction")
    axes[0].axhline(ev["baseline_ppl"], color="k", lw=0.8, ls="--", label="baseline")
    axes[1].errorbar(x, r, yerr=[np.subtract(r, lo), np.subtract(hi, r)], fmt="o-", ms=3, capsize=2,
                     label="PCA reconstruction (95 % CI)")
    for k, rs in ev.get("random_subspace", {}).items():
        axes[1].plot([int(k)] * len(rs["draws"]), [d["ratio"] for d in rs["draws"]], "x", color="tab:red", ms=7,
                     label="random subspace of equal K" if k == min(ev["random_subspace"], key=int) else None)
    for t, c in ((1.0, "k"), (1.05, "tab:green"), (1.10, "tab:orange")):
        axes[1].axhline(t, color=c, lw=0.7, ls="--")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("components K")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("perplexity (held-out)")
    axes[1].set_ylabel("PPL / baseline")
    fig.suptitle(f"{model}: W_QK rebuilt from K components")
    out.append(save_figure(fig, folder / f"exp6b_ppl_vs_K_{tag}.png"))

    km = ev.get("kmeans") or {}
    if km.get("k_values"):
        kk = sorted(km["k_values"], key=int)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        axes[0].plot([int(k) for k in kk], [km["k_values"][k]["perplexity"] for k in kk], "o-")
        axes[0].axhline(ev["baseline_ppl"], color="k", lw=0.8, ls="--")
        axes[0].set_ylabel("perplexity")
        rr = [km["k_values"][k]["ratio"] for k in kk]
        axes[1].plot([int(k) for k in kk], rr, "o-", label="k-means representatives")
        rp = ev.get("random_partition") or {}
        if rp.get("draws"):
            axes[1].plot([rp["k"]] * len(rp["draws"]), [d["ratio"] for d in rp["draws"]], "x", color="tab:red", ms=8,
                         label="random partition (control)")
        axes[1].axhline(10, color="tab:red", lw=0.7, ls="--", label="10x")
        axes[1].set_ylabel("PPL / baseline")
        axes[1].legend(fontsize=7)
        for ax in axes:
            ax.set_yscale("log")
            ax.set_xlabel("clusters k")
        fig.suptitle(f"{model}: heads replaced by cluster representatives")
        out.append(save_figure(fig, folder / f"exp6c_cluster_ppl_{tag}.png"))

        v = km["view"]
        layers = np.repeat(np.arange(ev["n_layers"]), ev["n_heads"])
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        sc = axes[0].scatter(v["pc1"], v["pc2"], c=layers, cmap="viridis", s=12)
        fig.colorbar(sc, ax=axes[0], label="layer")
        axes[1].scatter(v["pc1"], v["pc2"], c=v["labels"], cmap="tab20", s=12)
        axes[1].scatter(np.asarray(v["pc1"])[v["representatives"]], np.asarray(v["pc2"])[v["representatives"]],
                        marker="x", c="k", s=20, label="representatives")
        axes[1].legend(fontsize=7)
        for ax in axes:
            ax.set_xlabel("PC1 coefficient")
            ax.set_ylabel("PC2 coefficient")
        axes[0].set_title("by layer")
        axes[1].set_title(f"by k-means cluster (k = {v['k']})")
        out.append(save_figure(fig, folder / f"exp6c_cluster_viz_{tag}.png"))

    he = ev.get("head_error") or {}
    imp = he.get("importance") or {}
    if he:
        e = np.asarray(he["per_K"][str(he["K"])]["relative"])
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        axes[0].bar(range(N), e, color=plt.cm.viridis(np.repeat(np.arange(ev["n_layers"]), ev["n_heads"])
                                                       / max(1, ev["n_layers"] - 1)), width=1.0)
        axes[0].set_xlabel("head (layer-major)")
        axes[0].set_ylabel(f"relative error at K = {he['K']}")
        axes[0].set_title(f"worst {he['top_m']} heads: {he['top_share']:.2f} of the squared error")
        if "spearman_rho" in imp and imp.get("delta_ppl"):
            delta = np.asarray(imp["delta_ppl"], dtype=float)
            sc = axes[1].scatter(delta, e, c=np.repeat(np.arange(ev["n_layers"]), ev["n_heads"]), cmap="viridis", s=10)
            fig.colorbar(sc, ax=axes[1], label="layer")
            axes[1].set_xscale("symlog", linthresh=1e-3)
            axes[1].set_xlabel("exp10 zero-ablation ΔPPL (rank range)")
            axes[1].set_ylabel(f"relative error at K = {he['K']}")
            axes[1].set_title(f"Spearman ρ = {imp['spearman_rho']:.2f} (p = {imp['spearman_p']:.2g})")
        else:
            axes[1].axis("off")
            axes[1].text(0.5, 0.5, "exp10 ΔPPL not available", ha="center")
        fig.suptitle(f"{model}: per-head reconstruction error vs importance")
        out.append(save_figure(fig, folder / f"exp6d_head_error_{tag}.png"))
    return out


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance, figures=figures,
                    figure_glob="exp6*_{tag}.png")
