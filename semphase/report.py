"""Writing results: JSON under ``data/``, figures under ``figures/``, ``expN_results.md``.

The Markdown report is rebuilt from every ``data/exp10_{tag}.json`` in the output folder, so
models measured in separate runs (or by separate xdist workers) appear in one coherent report,
each with its own budget and provenance. Every file is written atomically.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .cache import atomic_write_text
from .errors import SemphaseError


@dataclass(frozen=True)
class OutputLayout:
    data: Path
    figures: Path
    reports: Path
    cache: Path

    @classmethod
    def make(cls, output_dir: str | os.PathLike | None = None, root: str | os.PathLike = ".") -> "OutputLayout":
        """``--output-dir DIR`` puts everything under DIR (data/, figures/, reports/, cache/);
        without it, results/data, results/figures, reports/ and results/cache under ``root``."""
        if output_dir:
            base = Path(output_dir).expanduser()
            return cls(base / "data", base / "figures", base / "reports", base / "cache")
        root = Path(root)
        return cls(root / "results" / "data", root / "results" / "figures", root / "reports",
                   root / "results" / "cache")

    def ensure_writable(self) -> None:
        """Create the folders and prove they can be written, before any long measurement."""
        for folder in (self.data, self.figures, self.reports, self.cache):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / f".semphase-write-test-{os.getpid()}"
                probe.write_text("ok")
                probe.unlink()
            except OSError as exc:
                raise SemphaseError(
                    f"the output folder {str(folder)!r} is not writable ({exc.strerror or exc}); "
                    "choose another with --output-dir DIR."
                ) from None


def write_json(path: Path, obj) -> str:
    atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=True))
    return str(path)


def write_exp10_data(layout: OutputLayout, ev: dict, claims: list[dict]) -> list[str]:
    """The per-model JSON files of science.md section 18 (plus the whole evidence)."""
    tag = ev["tag"]
    written = [write_json(layout.data / f"exp10_{tag}.json", {"evidence": ev, "claims": claims})]
    if ev.get("zero"):
        written.append(write_json(layout.data / f"exp10a_{tag}.json", {
            "model": ev["model"], "n_tokens": ev["n_tokens"], "n_predicted": ev["n_predicted"],
            "baseline_ppl": ev["baseline_ppl"], "n_layers": ev["n_layers"], "n_heads": ev["n_heads"],
            "layers_swept": ev["layers"], "budget": ev["budget"], "data": ev["data"],
            "heads": [h for h in ev["zero"]["heads"] if h["layer"] in ev["layers"]],
            "provenance": ev["provenance"],
        }))
    if ev.get("curves"):
        written.append(write_json(layout.data / f"exp10c_{tag}.json", {
            "model": ev["model"], "baseline_ppl": ev["baseline_ppl"], "curves": ev["curves"],
            "provenance": ev["provenance"]}))
    if ev.get("mean"):
        written.append(write_json(layout.data / f"exp10e_mean_ablation_{tag}.json", {
            "model": ev["model"], "baseline_ppl": ev["baseline_ppl"], "heads": ev["mean"]["heads"],
            "stats": ev["mean"]["stats"], "provenance": ev["provenance"]}))
    return written


def load_exp10_records(layout: OutputLayout) -> list[dict]:
    records = []
    for path in sorted(layout.data.glob("exp10_*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "evidence" in rec and "claims" in rec:
            rec["path"] = str(path)
            records.append(rec)
    return records


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, (int, float)) for v in x):
        return f"[{_fmt(x[0], digits)}, {_fmt(x[1], digits)}]"
    return str(x)


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f} %"


def _rel(path: str | Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)


def render_exp10(records: list[dict], layout: OutputLayout) -> str:
    lines = [
        "# exp10 results: head ablation (science.md sections 10 and 11)",
        "",
        "Written by the semphase report plugin (or `python -m semphase run exp10`) from the evidence in "
        f"`{_rel(layout.data, layout.reports)}/exp10_*.json`; every number below was measured in the run named "
        "in its provenance. Verdicts: *replicates* / *does NOT replicate* for hypothesis (H) tests that assert "
        "the original's conclusion; *reproduced* / *NOT reproduced* for reproduction (R) tests that compare with "
        "the original's GPT-2 numbers; *skipped* with the reason; *not asserted (smoke)* at the smoke budget.",
        "",
        "## Verdicts",
        "",
        "| claim | test | kind | model | budget | verdict | key numbers |",
        "|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        ev = rec["evidence"]
        for c in rec["claims"]:
            nums = "; ".join(cond["name"] + " = " + _fmt(cond["value"]) for cond in c["conditions"][:3]) or c["reason"]
            lines.append(f"| {c['claim']} | `{c['test']}` | {c['kind']} | {ev['model']} | {ev['budget']} | "
                         f"{c['verdict']} | {nums.replace('|', '/')} |")
    for rec in records:
        lines += _model_section(rec, layout)
    return "\n".join(lines) + "\n"


def _model_section(rec: dict, layout: OutputLayout) -> list[str]:
    ev = rec["evidence"]
    prov = ev["provenance"]
    mp = prov["model"]
    lines = ["", f"## {ev['model']}", "", "### Provenance", "",
             "| field | value |", "|---|---|"]
    rows = [
        ("budget", f"{ev['budget']}: {ev['budget_description']}"),
        ("data", f"{ev['data']['source']}; {ev['n_tokens']} tokens = {ev['data']['n_chunks']} chunks x {ev['data']['ctx']}"
                 f"; text sha256 {ev['data'].get('text_sha256', 'n/a')[:16]}; tokens sha256 {ev['data']['tokens_sha256'][:16]}"),
        ("held-out split", "n/a (one chunk)" if not ev.get("heldout") else
         f"rank = chunks {ev['heldout']['rank']['chunk_range']}, eval = chunks {ev['heldout']['eval']['chunk_range']}"),
        ("model", f"{mp['model']} ({mp['hub_id']}, {mp['source']}), {mp['n_layers']} layers x {mp['n_heads']} heads"),
        ("weights sha256", mp["weights_sha256"]),
        ("processing", ", ".join(f"{k}={v}" for k, v in mp["processing"].items())),
        ("device / dtype", f"{mp['device']} / {mp['dtype']}, TF32 matmul {mp['tf32_matmul']}, cuDNN {mp['tf32_cudnn']}"),
        ("seed", prov["seed"]),
        ("one forward of a chunk (C)", f"{ev['forward_seconds_per_chunk']:.3g} s"),
        ("wall time", f"{prov['wall_seconds']:.1f} s (cache: {prov.get('cache')})"),
        ("versions", ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v) + f", python {prov['python']}"),
        ("semphase", f"{prov['semphase']} (measurement version {prov['measurement_version']}, commit {prov['git_commit']})"),
        ("finished", prov["finished_utc"]),
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if ev.get("note"):
        lines += ["", f"Note: {ev['note']}."]
    lines += ["", "### Claims", ""]
    for c in rec["claims"]:
        lines.append(f"- **{c['claim']} `{c['test']}` ({c['kind']}) - {c['verdict']}.** {c['statement']}.")
        for cond in c["conditions"]:
            mark = "ok" if cond["ok"] else "fails"
            lines.append(f"  - {cond['name']} = {_fmt(cond['value'])} (needs {cond['op']} {cond['target']}): {mark}")
        if c.get("reason"):
            lines.append(f"  - {c['reason']}")
    lines += ["", "### Measurements", "", f"Baseline perplexity: {ev['baseline_ppl']:.4f} "
              f"({ev['n_predicted']} predicted tokens)."]
    if ev.get("heldout"):
        lines.append(f"Rank half: {ev['heldout']['baseline_ppl_rank']:.4f}; eval half: "
                     f"{ev['heldout']['baseline_ppl_eval']:.4f}.")
    if ev.get("zero"):
        lines += ["", "Top 10 heads by zero-ablation ΔPPL:", "", "| rank | head | ΔPPL | ablated PPL |", "|---|---|---|---|"]
        for i, r in enumerate(ev["zero"]["top10"], 1):
            lines.append(f"| {i} | L{r['layer']}H{r['head']} | {_pct(r['delta_ppl'])} | {r['ppl']:.3f} |")
    if ev.get("stats"):
        s = ev["stats"]
        zf = s.get("zipf_fit") or {}
        mle = s.get("heavy_tail_mle", {})
        lines += ["", f"Zero-ablation statistics over {s['n_heads']} heads: |ΔPPL| < 1 %: {s['n_negligible_1pct']}; "
                  f"< 10 %: {s['n_small_10pct']}; < 0: {s['n_negative']}; mean {_pct(s['mean_delta_ppl'])}; "
                  f"median {_pct(s['median_delta_ppl'])}; max {_pct(s['max_delta_ppl'])}; min {_pct(s['min_delta_ppl'])}. "
                  f"Zipf least-squares fit: α = {_fmt(zf.get('alpha'))}, C = {_fmt(zf.get('C'))}. "
                  f"Layer-0 share of positive ΔPPL: {_fmt(s['layer0_share'])} (95 % CI {_fmt(s['layer0_share_ci95'])}). "
                  f"ML comparison (x >= {_fmt(mle.get('xmin'))}): best by AIC {mle.get('best_by_aic')}; Vuong R power law vs "
                  f"lognormal {_fmt((mle.get('vuong_powerlaw_vs_lognormal') or {}).get('R'))}, vs exponential "
                  f"{_fmt((mle.get('vuong_powerlaw_vs_exponential') or {}).get('R'))}."]
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
                  f"{s['n_small_10pct']}; < 0: {s['n_negative']}; mean {_pct(s['mean_delta_ppl'])} "
                  f"(mean/zero = {_fmt(ev['mean']['mean_over_zero_mean_delta'])}); sign flips vs zero: "
                  f"{ev['mean']['n_sign_flips']}."]
    if ev.get("top_head"):
        t = ev["top_head"]
        lines += ["", f"Top head {t['label']} (held-out): zero ΔPPL {_pct(t['zero_delta_eval'])}, mean ΔPPL with "
                  f"held-out means {_pct(t['mean_delta_eval_heldout_means'])}, ratio {_fmt(t['ratio_zero_over_mean'])} "
                  f"(95 % CI {_fmt(t['ratio_ci95'])})."]
    if ev.get("harmful"):
        h = ev["harmful"]
        lines += ["", f"Harmful heads (zero ΔPPL < 0, in-sample): {len(h['heads'])}; sum of individual ΔPPL "
                  f"{_pct(h['sum_individual_delta'])}; joint zero {_pct(h.get('joint_zero_delta'))}; joint mean "
                  f"{_pct(h.get('joint_mean_delta'))}."]
        hh = ev.get("harmful_heldout") or {}
        if "interaction" in hh:
            lines.append(f"Held-out ({hh['n']} heads from the rank half): sum {_pct(hh['sum_individual_delta_eval'])}, "
                         f"joint {_pct(hh['joint_zero_delta_eval'])}, interaction {_fmt(hh['interaction'])} "
                         f"(95 % CI {_fmt(hh['interaction_ci95'])}).")
    if ev.get("layer"):
        means = ev["layer"]["mean_delta_ppl"]
        lines += ["", "Layer mean zero ΔPPL: " + ", ".join(f"L{i} {_pct(v)}" for i, v in enumerate(means)) + "."]
    figs = sorted(layout.figures.glob(f"exp10*_{ev['tag']}.png"))
    if figs:
        lines += ["", "### Figures", ""]
        lines += [f"![{f.stem}]({_rel(f, layout.reports)})" for f in figs]
    return lines


def write_exp10_report(layout: OutputLayout) -> str:
    records = load_exp10_records(layout)
    path = layout.reports / "exp10_results.md"
    atomic_write_text(path, render_exp10(records, layout))
    return str(path)


def publish_exp10(layout: OutputLayout, ev: dict, claims: list[dict]) -> list[str]:
    """Data, figures and the report for one model's evidence."""
    from .figures import exp10_figures

    written = write_exp10_data(layout, ev, claims)
    written += exp10_figures(ev, layout.figures)
    written.append(write_exp10_report(layout))
    return written
