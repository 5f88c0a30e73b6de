"""exp7's part of the report: introduction, data provenance, measurements, figures (science.md 17)."""
from __future__ import annotations

from pathlib import Path

from ...report import (OutputLayout, ReportSpec, budget_row, fmt, forward_row, save_figure, thresholds_text,
                        written_by)


def intro(records: list[dict], layout: OutputLayout) -> str:
    return "\n".join([
        "# exp7 results: residual updates, their rank and a shared basis (science.md section 7)",
        "",
        written_by("exp7", layout) + " Each block's update delta-phi(l) = resid_post - resid_pre "
        "is read per token position with its attention (hook_attn_out) and MLP (hook_mlp_out) parts. The robust "
        "protocol (science.md 7.7) draws chunks at random from the split and positions at random within them, and keeps "
        "position 0 apart: every robust statistic excludes it, and the *with position 0* columns add it back as the "
        "control. The original protocol (positions 0-999 of the split's first chunk, position 0 included) is measured "
        "beside it for the reproduction tests and as the second control. PCA thresholds K(t) come from one function "
        "(`semphase.pca`); intervals of the robust thresholds resample the drawn chunks and are basic (reverse-"
        "percentile) bootstrap intervals: a PCA rank from 10,000 samples in d_model dimensions is below the population's, "
        "and drawing chunks with replacement repeats positions and lowers it again, so the percentile interval misses "
        "the population's rank while the basic one (reflected about the point, which it need not contain) covers it "
        "(a machinery test shows this on data of known spectrum; the percentile intervals are kept in the evidence).",
        "",
        "GPT-2's block ranges and rank bounds are scaled to the model (blocks 3-8 of 12 become 3/12 <= l/L <= 8/12; 150 "
        "of 768 dimensions becomes 150 d_model/768). Reproduction (R) tests compare the original protocol with the "
        "original's GPT-2 norms and K(90 %) per block on WikiText-2 test; GPT-2 cannot be loaded here, so they skip. "
        "The low-rank inference of 7D (perplexity with every block's update replaced by its K-component projection) is "
        "not measured by semphase yet.",
    ])


def provenance(ev: dict) -> list[tuple[str, object]]:
    d, s = ev["data"], ev["sampling"]
    return [
        budget_row(ev),
        ("data", f"{d['source']}; {d['n_chunks']} chunks x {d['ctx']} in the split; tokens sha256 "
                 f"{d['tokens_sha256'][:16]}"),
        ("robust sample", f"{s['robust']['n_samples']:,} positions: {s['robust']['positions_per_chunk']} drawn in each of "
                          f"{s['robust']['n_chunks']} drawn chunks (seed {s['robust']['seed']}); position 0 of each "
                          "chunk kept apart"),
        ("original sample", f"positions {s['original']['positions'][0]}-{s['original']['positions'][1]} of chunk 0"),
        ("intervals", f"resample {ev['interval_unit']}; {ev['n_boot']} replicates"),
        forward_row(ev, "one forward of a chunk with hooks"),
    ]


def _row(t: dict) -> str:
    return thresholds_text(t, "/")


def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    R, O = ev["robust"], ev["original"]
    lines = ["", "### Measurements", "",
             f"delta-phi = attn + MLP to {fmt(ev['identity_max_rel_error'], 2)} (max difference over the mean norm). "
             "Per block: mean |delta-phi| (std) in the robust sample, at position 0 and in the original sample; "
             "K(50/80/90/95 %) of delta-phi robust (95 % interval of K(90 %) where the claims read it), robust with "
             "position 0 added back, and original; K(90 %) of the attention and MLP parts (robust).", "",
             "| block | norm Δφ robust | norm Δφ pos 0 | norm Δφ original | K Δφ robust | K(90) CI | K Δφ + pos 0 | "
             "K Δφ original | "
             "K(90) attn | K(90) MLP |", "|---|---|---|---|---|---|---|---|---|---|"]
    for l in range(ev["n_layers"]):
        n, n0, no = R["delta_phi"]["norms"][l], R["delta_phi"]["norms_position0"][l], O["delta_phi"]["norms"][l]
        ci = R["delta_phi"]["k90_ci95"].get(str(l))
        lines.append(f"| {l} | {n['mean']:.1f} ({n['std']:.1f}) | {n0['mean']:.1f} | {no['mean']:.1f} ({no['std']:.1f}) | "
                     f"{_row(R['delta_phi']['thresholds'][l])} | {fmt(ci) if ci else ''} | "
                     f"{_row(R['delta_phi']['thresholds_with_position0'][l])} | {_row(O['delta_phi']['thresholds'][l])} | "
                     f"{R['attn']['thresholds'][l]['0.9']} | {R['mlp']['thresholds'][l]['0.9']} |")
    st = ev.get("stats") or {}
    if st.get("not_lowrank"):
        s = st["not_lowrank"]
        lines += ["", f"Middle blocks {s['layers'][0]}-{s['layers'][-1]}: smallest K(90 %) {s['min_k90']} (block "
                  f"{s['argmin']}, 95 % CI {fmt(s['min_k90_ci95'])}); with position 0 added back {s['min_k90_with_position0']}; "
                  f"original protocol {s['min_k90_original_protocol']}; bound {s['bound']}."]
    p = st.get("position0") or {}
    lines.append(f"Blocks (but the last) with K(90 %) <= {p.get('bound')} under the original protocol: "
                 f"{p.get('singular_original') or 'none'}" + (f"; without position 0 their K(90 %) is {p['k90_excluded']}, "
                 f"with it added back to the robust sample {p['k90_with_position0']}." if p.get("singular_original") else "."))
    if st.get("attn_vs_mlp"):
        s = st["attn_vs_mlp"]
        lines.append(f"Attention vs MLP, blocks {s['layers'][0]}-{s['layers'][-1]}: attention lower in {s['n_lower']} of "
                     f"{len(s['layers'])}; largest K90(attn) - K90(MLP) {s['max_diff']} (block {s['argmax']}, 95 % CI "
                     f"{fmt(s['max_diff_ci95'])}).")
    sh = ev["shared"]
    lines += ["", f"Shared basis (all blocks' delta-phi stacked, position 0 excluded): K(50/80/90/95 %) raw "
              f"{_row(sh['raw']['thresholds'])}, with each block scaled to unit mean squared norm "
              f"{_row(sh['normalised']['thresholds'])}. Mean over blocks of cosine / relative L2 error of the rebuilt "
              "updates:", "", "| K | shared raw | shared normalised | each block's own PCA |", "|---|---|---|---|"]
    for k in sh["K"]:
        cells = [f"{sh[v]['mean_over_layers'][str(k)]['cos_sim']:.3f} / {sh[v]['mean_over_layers'][str(k)]['relative_l2']:.3f}"
                 for v in ("raw", "normalised", "individual")]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    t = ev.get("timing", {})
    lines += ["", f"Time: forwards {t.get('forwards', 0):.1f} s, PCA and bootstrap {t.get('pca', 0):.1f} s, shared basis "
              f"{t.get('shared', 0):.1f} s, total {t.get('total', 0):.1f} s."]
    return lines


def figures(ev: dict, folder: Path) -> list[str]:
    import matplotlib.pyplot as plt
    import numpy as np

    tag, model, out, L = ev["tag"], ev["model"], [], ev["n_layers"]
    folder = Path(folder)
    colors = plt.cm.viridis(np.linspace(0, 1, L))
    R = ev["robust"]
    # 7B: per-block cumulative variance, full and zoomed
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for l in range(L):
        cum = R["delta_phi"]["cumvar"][l]
        axes[0].plot(range(1, len(cum) + 1), cum, color=colors[l], lw=1)
        axes[1].plot(range(1, min(64, len(cum)) + 1), cum[:64], color=colors[l], lw=1, label=f"block {l}" if l in (0, L - 1) else None)
    for ax in axes:
        ax.axhline(0.9, color="k", lw=0.6, ls="--")
        ax.set_xlabel("components K")
    axes[0].set_ylabel("cumulative variance of delta-phi")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{model}: per-block PCA of delta-phi (robust sample, position 0 excluded)")
    out.append(save_figure(fig, folder / f"exp7b_cumvar_per_layer_{tag}.png"))

    # 7C: per-block K(90 %) with the shared ones; controls
    x = np.arange(L)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].bar(x - 0.27, [t["0.9"] for t in R["delta_phi"]["thresholds"]], 0.27, label="robust (position 0 excluded)")
    axes[0].bar(x, [t["0.9"] for t in R["delta_phi"]["thresholds_with_position0"]], 0.27, label="robust + position 0")
    axes[0].bar(x + 0.27, [t["0.9"] for t in ev["original"]["delta_phi"]["thresholds"]], 0.27,
                label="original protocol (0-999 of chunk 0)")
    axes[0].axhline(ev["shared"]["raw"]["thresholds"]["0.9"], color="tab:red", ls="--", lw=1, label="shared, raw")
    axes[0].axhline(ev["shared"]["normalised"]["thresholds"]["0.9"], color="tab:purple", ls=":", lw=1,
                    label="shared, blocks normalised")
    axes[0].set_xlabel("block")
    axes[0].set_ylabel("K(90 %)")
    axes[0].legend(fontsize=6)
    sh = ev["shared"]
    for v, c in (("raw", "tab:red"), ("normalised", "tab:purple"), ("individual", "tab:blue")):
        axes[1].plot(sh["K"], [sh[v]["mean_over_layers"][str(k)]["relative_l2"] for k in sh["K"]], "o-", color=c,
                     label={"raw": "shared basis", "normalised": "shared basis, blocks normalised",
                            "individual": "each block's own PCA"}[v])
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("components K")
    axes[1].set_ylabel("relative L2 error (mean over blocks)")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{model}: individual vs shared bases")
    out.append(save_figure(fig, folder / f"exp7c_shared_vs_individual_{tag}.png"))

    # 7E: attention vs MLP
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    axes[0].bar(x - 0.2, [t["0.9"] for t in R["attn"]["thresholds"]], 0.4, label="attention")
    axes[0].bar(x + 0.2, [t["0.9"] for t in R["mlp"]["thresholds"]], 0.4, label="MLP")
    for q, ax in (("attn", axes[1]), ("mlp", axes[2])):
        for l in range(L):
            cum = R[q]["cumvar"][l][:128]
            ax.plot(range(1, len(cum) + 1), cum, color=colors[l], lw=1)
        ax.axhline(0.9, color="k", lw=0.6, ls="--")
        ax.set_xlabel("components K")
        ax.set_title(f"{'attention' if q == 'attn' else 'MLP'} cumulative variance")
    axes[0].set_xlabel("block")
    axes[0].set_ylabel("K(90 %)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{model}: attention vs MLP writes (robust sample)")
    out.append(save_figure(fig, folder / f"exp7e_attn_vs_ffn_cumvar_{tag}.png"))

    # 7A: norms, with position 0 apart
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.errorbar(x, [n["mean"] for n in R["delta_phi"]["norms"]], yerr=[n["std"] for n in R["delta_phi"]["norms"]],
                fmt="o-", capsize=2, label="robust, position 0 excluded")
    ax.plot(x, [n["mean"] for n in R["delta_phi"]["norms_position0"]], "s--", label="position 0")
    ax.set_yscale("log")
    ax.set_xlabel("block")
    ax.set_ylabel("|delta-phi|")
    ax.legend(fontsize=7)
    ax.set_title(f"{model}: block update norms")
    out.append(save_figure(fig, folder / f"exp7a_norms_{tag}.png"))
    return out


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance, figures=figures,
                    figure_glob="exp7*_{tag}.png")
