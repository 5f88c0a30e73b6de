"""exp10's part of the report: introduction, data provenance, measurements, figures, data files."""
from __future__ import annotations

from ...report import OutputLayout, ReportSpec, fmt, pct, rel
from .figures import exp10_figures


def intro(records: list[dict], layout: OutputLayout) -> str:
    return "\n".join([
        "# exp10 results: head ablation (science.md sections 10 and 11)",
        "",
        "Written by the semphase report plugin (or `python -m semphase run exp10`) from the evidence in "
        f"`{rel(layout.data, layout.reports)}/exp10_*.json`; every number below was measured in the run named "
        "in its provenance. Verdicts: *replicates* / *does NOT replicate* / *inconclusive* for hypothesis (H) tests "
        "that assert the original's conclusion; *reproduced* / *NOT reproduced* for reproduction (R) tests that "
        "compare with the original's GPT-2 numbers; *skipped* with the reason; *not asserted (smoke)* at the smoke "
        "budget.",
    ])


def provenance(ev: dict) -> list[tuple[str, object]]:
    d = ev["data"]
    return [
        ("budget", f"{ev['budget']}: {ev['budget_description']}"),
        ("data", f"{d['source']}; {ev['n_tokens']} tokens = {d['n_chunks']} chunks x {d['ctx']}"
                 f"; text sha256 {d.get('text_sha256', 'n/a')[:16]}; tokens sha256 {d['tokens_sha256'][:16]}"),
        ("held-out split", "n/a (one chunk)" if not ev.get("heldout") else
         f"rank = chunks {ev['heldout']['rank']['chunk_range']}, eval = chunks {ev['heldout']['eval']['chunk_range']}"),
        ("one forward of a chunk (C)", f"{ev['forward_seconds_per_chunk']:.3g} s"),
    ]


def section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    if ev.get("note"):
        lines_note = ["", f"Note: {ev['note']}."]
    else:
        lines_note = []
    lines = ["", "### Measurements", "", f"Baseline perplexity: {ev['baseline_ppl']:.4f} "
              f"({ev['n_predicted']} predicted tokens)."]
    if ev.get("heldout"):
        lines.append(f"Rank half: {ev['heldout']['baseline_ppl_rank']:.4f}; eval half: "
                     f"{ev['heldout']['baseline_ppl_eval']:.4f}.")
    if ev.get("zero"):
        lines += ["", "Top 10 heads by zero-ablation ΔPPL:", "", "| rank | head | ΔPPL | ablated PPL |", "|---|---|---|---|"]
        for i, r in enumerate(ev["zero"]["top10"], 1):
            lines.append(f"| {i} | L{r['layer']}H{r['head']} | {pct(r['delta_ppl'])} | {r['ppl']:.3f} |")
    if ev.get("stats"):
        s = ev["stats"]
        zf = s.get("zipf_fit") or {}
        mle = s.get("heavy_tail_mle", {})
        lines += ["", f"Zero-ablation statistics over {s['n_heads']} heads: |ΔPPL| < 1 %: {s['n_negligible_1pct']}; "
                  f"< 10 %: {s['n_small_10pct']}; < 0: {s['n_negative']}; mean {pct(s['mean_delta_ppl'])}; "
                  f"median {pct(s['median_delta_ppl'])}; max {pct(s['max_delta_ppl'])}; min {pct(s['min_delta_ppl'])}. "
                  f"Zipf least-squares fit: α = {fmt(zf.get('alpha'))}, C = {fmt(zf.get('C'))}. "
                  f"Layer-0 share of positive ΔPPL: {fmt(s['layer0_share'])} (95 % CI {fmt(s['layer0_share_ci95'])}). "
                  f"ML comparison (x >= {fmt(mle.get('xmin'))}): best by AIC {mle.get('best_by_aic')}; Vuong R power law vs "
                  f"lognormal {fmt((mle.get('vuong_powerlaw_vs_lognormal') or {}).get('R'))}, vs exponential "
                  f"{fmt((mle.get('vuong_powerlaw_vs_exponential') or {}).get('R'))}."]
    if ev.get("curves"):
        lines += ["", "Cumulative ablation (heads removable within 1.1x / 1.5x / 2.0x; fine-grid curves are resolved "
                  "to one head near each threshold, their coarse-grid values in brackets):", "",
                  "| curve | tokens | candidates | 1.1x | 1.5x | 2.0x | what |", "|---|---|---|---|---|---|---|"]
        for name, c in ev["curves"].items():
            th, co = c["thresholds"], c["thresholds_coarse_grid"]
            cells = [f"{th[t]}" + (f" ({co[t]})" if co[t] != th[t] else "") for t in ("1.1", "1.5", "2.0")]
            lines.append(f"| {name} | {c['tokens']} | {c['n_candidates']} | " + " | ".join(cells) + f" | {c['description']} |")
    if ev.get("mean"):
        s = ev["mean"]["stats"]
        lines += ["", f"Mean-ablation (in-sample means): |ΔPPL| < 1 %: {s['n_negligible_1pct']}; < 10 %: "
                  f"{s['n_small_10pct']}; < 0: {s['n_negative']}; mean {pct(s['mean_delta_ppl'])} "
                  f"(mean/zero = {fmt(ev['mean']['mean_over_zero_mean_delta'])}); sign flips vs zero: "
                  f"{ev['mean']['n_sign_flips']}."]
    if ev.get("top_head"):
        t = ev["top_head"]
        lines += ["", f"Top head {t['label']} (held-out): zero ΔPPL {pct(t['zero_delta_eval'])}, mean ΔPPL with "
                  f"held-out means {pct(t['mean_delta_eval_heldout_means'])}, ratio {fmt(t['ratio_zero_over_mean'])} "
                  f"(95 % CI {fmt(t['ratio_ci95'])})."]
    if ev.get("harmful"):
        h = ev["harmful"]
        lines += ["", f"Harmful heads (zero ΔPPL < 0, in-sample): {len(h['heads'])}; sum of individual ΔPPL "
                  f"{pct(h['sum_individual_delta'])}; joint zero {pct(h.get('joint_zero_delta'))}; joint mean "
                  f"{pct(h.get('joint_mean_delta'))}."]
        hh = ev.get("harmful_heldout") or {}
        if "interaction" in hh:
            lines.append(f"Held-out ({hh['n']} heads from the rank half): sum {pct(hh['sum_individual_delta_eval'])}, "
                         f"joint {pct(hh['joint_zero_delta_eval'])}, interaction {fmt(hh['interaction'])} "
                         f"(95 % CI {fmt(hh['interaction_ci95'])}).")
    if ev.get("layer"):
        means = ev["layer"]["mean_delta_ppl"]
        lines += ["", "Layer mean zero ΔPPL: " + ", ".join(f"L{i} {pct(v)}" for i, v in enumerate(means)) + "."]
    return lines_note + lines


def data_files(ev: dict, claims: list[dict]) -> dict[str, object]:
    """The per-model JSON files of science.md section 18 (beside the whole evidence)."""
    tag = ev["tag"]
    out: dict[str, object] = {}
    if ev.get("zero"):
        out[f"exp10a_{tag}.json"] = {
            "model": ev["model"], "n_tokens": ev["n_tokens"], "n_predicted": ev["n_predicted"],
            "baseline_ppl": ev["baseline_ppl"], "n_layers": ev["n_layers"], "n_heads": ev["n_heads"],
            "layers_swept": ev["layers"], "budget": ev["budget"], "data": ev["data"],
            "heads": [h for h in ev["zero"]["heads"] if h["layer"] in ev["layers"]],
            "provenance": ev["provenance"],
        }
    if ev.get("curves"):
        out[f"exp10c_{tag}.json"] = {"model": ev["model"], "baseline_ppl": ev["baseline_ppl"], "curves": ev["curves"],
                                     "provenance": ev["provenance"]}
    if ev.get("mean"):
        out[f"exp10e_mean_ablation_{tag}.json"] = {
            "model": ev["model"], "baseline_ppl": ev["baseline_ppl"], "heads": ev["mean"]["heads"],
            "stats": ev["mean"]["stats"], "provenance": ev["provenance"]}
    return out


REPORT = ReportSpec(intro=intro, section=section, provenance=provenance, figures=exp10_figures,
                    data_files=data_files, figure_glob="exp10*_{tag}.png")
