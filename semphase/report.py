"""The report builder: one for every experiment.

For each experiment the builder writes ``data/{exp}_{tag}.json`` (the evidence and the claims),
the experiment's extra data files and figures, and ``reports/{exp}_results.md``, rebuilt from
every record of that experiment in the output folder (so models measured in separate runs or by
separate xdist workers appear in one report, each with its own provenance). It owns what every
report shares: the provenance table, the verdict table, the claims block, figure saving and the
number formats. After each publication it regenerates the claims summary ``reports/README.md``:
every claim of every experiment against every model measured, from the data files, with the tidy
table of the same rows beside it (``reports/claims.csv`` and ``reports/claims.jsonl``).

Every claim row shows the plain sentence its test asserts, the condition that decided its verdict
(:func:`semphase.claims.deciding_index`) and what it says about the original study's claim. Records
stored before those fields existed are completed from the current rule declarations
(:meth:`semphase.claims.ClaimSet.complete`) when they are rendered; no rule is re-evaluated.

An experiment contributes a :class:`ReportSpec` (``semphase/experiments/<id>/report.py``): its
introduction, its measurement section, its figures, its extra data files and its own provenance
rows. Every file is written atomically.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cache import atomic_write_bytes, atomic_write_text
from .claims import KINDS, NOT_APPLICABLE, UNDECIDED, deciding_index, not_measured
from .errors import SemphaseError

DPI = 150


@dataclass(frozen=True)
class OutputLayout:
    data: Path
    figures: Path
    reports: Path
    cache: Path

    @classmethod
    def make(cls, output_dir: str | os.PathLike | None = None, root: str | os.PathLike = ".") -> "OutputLayout":
        """``--output-dir DIR`` puts everything under DIR (data/, figures/, reports/, cache/); ``results`` (or
        nothing) names the repository's committed layout: results/data, results/figures, reports/ and results/cache
        under ``root``."""
        root = Path(root)
        if output_dir and Path(output_dir).expanduser().resolve() != (root / "results").resolve():
            base = Path(output_dir).expanduser()
            return cls(base / "data", base / "figures", base / "reports", base / "cache")
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


# -- number formats (one of each) -----------------------------------------------------------------

def fmt(x, digits: int = 4) -> str:
    """A number to ``digits`` significant digits; a pair as [a, b]; None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, (int, float)) for v in x):
        return f"[{fmt(x[0], digits)}, {fmt(x[1], digits)}]"
    return str(x)


def pct(x, digits: int = 2, signed: bool = True) -> str:
    """A fraction as a percentage: ``pct(0.0123)`` is "+1.23 %", ``pct(0.5, 0, False)`` "50 %"."""
    if x is None:
        return "n/a"
    return f"{100 * x:{'+' if signed else ''}.{digits}f} %"


def cell(x) -> str:
    """Text safe inside a Markdown table cell."""
    return str(x).replace("|", "\\|")


def rel(path: str | Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)


# -- files ----------------------------------------------------------------------------------------

def write_json(path: Path, obj) -> str:
    atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=True))
    return str(path)


def save_figure(fig, path: Path, tight: bool = True, rect=None, caption: str | None = None) -> str:
    """The figure as a PNG and, beside it, a vector PDF (same name), each rendered to memory and written
    atomically (a reader never sees half a file). Its caption (``caption``, else one generated from its titles,
    axis labels and legend entries) is stored in both files' metadata; the report prints it under the figure."""
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout(rect=rect) if rect else fig.tight_layout()
    text = caption or figure_caption(fig)
    for fmt, meta in (("png", {"Description": text}), ("pdf", {"Subject": text})):
        buf = io.BytesIO()
        kw = {"dpi": DPI} if fmt == "png" else {}
        fig.savefig(buf, format=fmt, metadata=meta, **kw)
        atomic_write_bytes(Path(path).with_suffix("." + fmt), buf.getvalue())
    plt.close(fig)
    return str(path)


def figure_caption(fig) -> str:
    """One line that says what a figure shows, from its own text: the title, each panel's title and axes, and the
    legend entries."""
    parts = []
    sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    if sup:
        parts.append(sup.strip().rstrip("."))
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        bits = []
        if ax.get_title():
            bits.append(ax.get_title().strip())
        x, y = ax.get_xlabel(), ax.get_ylabel()
        if x or y:
            bits.append(f"{y or 'value'} against {x or 'index'}")
        legend = ax.get_legend()
        if legend is not None:
            entries = [t.get_text() for t in legend.get_texts() if t.get_text()]
            if entries:
                bits.append("lines: " + "; ".join(entries))
        if bits:
            parts.append(": ".join(bits[:1]) + ("" if len(bits) == 1 else " (" + "; ".join(bits[1:]) + ")"))
    return ". ".join(dict.fromkeys(p for p in parts if p)) + "." if parts else ""


def read_caption(path: Path) -> str:
    """The caption stored in a PNG written by :func:`save_figure` ("" for an older PNG without one)."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return str(im.info.get("Description", "") or "")
    except Exception:  # an unreadable or foreign image has no caption
        return ""


def label_axes(ax, xlabel: str, ylabel: str | None = None, title: str | None = None, legend: int | None = 8) -> None:
    """Axis labels, title and legend (font size ``legend``; None for no legend) in one call."""
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=legend)


def load_records(layout: OutputLayout, experiment: str) -> list[dict]:
    """Every ``data/{experiment}_*.json`` record (evidence and claims) of the output folder."""
    records = []
    for path in sorted(layout.data.glob(f"{experiment}_*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and "evidence" in rec and "claims" in rec \
                and rec["evidence"].get("experiment") == experiment:
            rec["path"] = str(path)
            records.append(rec)
    return records


# -- the shared blocks ----------------------------------------------------------------------------

def condition_text(d: dict) -> str:
    """One stored condition as "name = value [CI] (needs op target)"."""
    ci = f" [{fmt(d['interval'][0])}, {fmt(d['interval'][1])}]" if d.get("interval") else ""
    return f"{d['name']} = {fmt(d['value'])}{ci} (needs {d['op']} {fmt(d['target'])})"


def deciding_condition(claim: dict) -> dict | None:
    """The condition that decided a stored claim's verdict (its ``deciding`` index, computed from the
    stored conditions for records written before it existed), or None."""
    conditions = claim.get("conditions") or []
    i = claim["deciding"] if "deciding" in claim else deciding_index(conditions)
    return conditions[i] if i is not None and 0 <= i < len(conditions) else None


def deciding_text(claim: dict) -> str:
    """The deciding condition as "name = value [CI] (needs op target)"; a skipped claim's reason."""
    d = deciding_condition(claim)
    if d is None or not claim.get("applicable", True):
        return claim.get("reason", "")
    return condition_text(d)


def key_numbers(claim: dict, n: int = 3) -> str:
    """The deciding condition first, then the other conditions in order, ``n`` in all, as
    "name = value [CI] (needs op target)"; a skipped claim's reason."""
    d = deciding_condition(claim)
    if d is None or not claim.get("applicable", True):
        return claim.get("reason", "")
    rest = [c for c in claim["conditions"] if c is not d]
    return "; ".join(condition_text(c) for c in [d, *rest][:n])


def record_claims(exp, rec: dict) -> list[dict]:
    """A record's claims in the experiment's order, each completed from the current declarations
    (:meth:`~semphase.claims.ClaimSet.complete`), with the extra rules a per-model record cannot
    evaluate listed as skipped (:meth:`~semphase.claims.ClaimSet.skipped_extra`) where the record
    lacks them."""
    claims = [exp.claims.complete(c) for c in rec["claims"]]
    have = {c["test"] for c in claims}
    claims += [r.to_json() for r in exp.claims.skipped_extra(rec["evidence"]) if r.test not in have]
    return exp.claims.sort(claims)


VERDICT_HEADER = ["| claim | test | kind | asserts | model | budget | verdict | deciding condition | the original's claim |",
                  "|---|---|---|---|---|---|---|---|---|"]


def verdict_table(records: list[dict]) -> list[str]:
    """The verdicts of every record: per claim test, the sentence it asserts, its verdict, the deciding
    condition and what it says about the original's claim."""
    lines = ["## Verdicts", "", *VERDICT_HEADER]
    for rec in records:
        ev = rec["evidence"]
        for c in rec["claims"]:
            lines.append(f"| {c['claim']} | `{c['test']}` | {c['kind']} | {cell(c.get('asserts', ''))} | {ev['model']} | "
                         f"{ev.get('budget', 'n/a')} | {c['verdict']} | {cell(deciding_text(c))} | "
                         f"{c.get('original_verdict', 'n/a')} |")
    return lines


def claims_block(rec: dict) -> list[str]:
    """Each claim of one model's record: the sentence it asserts, what it says about the original's
    claim, its full statement and every condition, the deciding one marked."""
    lines = []
    for c in rec["claims"]:
        head = f"- **{c['claim']} `{c['test']}` ({c['kind']}) - {c['verdict']}.**"
        if c.get("asserts"):
            head += f" Asserts: {c['asserts']}."
        lines.append(head)
        if c.get("original_claim") or c.get("original_verdict") not in (None, NOT_APPLICABLE):
            orig = f"  - The original's claim ({c['claim']}: {c.get('original_claim') or 'not stated'}): " \
                   f"{c.get('original_verdict', UNDECIDED)}"
            if c.get("original_reason"):
                orig += f" ({c['original_reason']})"
            lines.append(orig + ".")
        lines.append(f"  - Rule: {c['statement']}.")
        deciding = deciding_condition(c) if c.get("applicable", True) else None
        for d in c["conditions"]:
            status = d.get("status") or ("ok" if d["ok"] else "fails")
            ci = ""
            if d.get("interval"):
                ci = f", 95 % CI {fmt(d['interval'][0])} to {fmt(d['interval'][1])}" + \
                     (f" resampling {d['unit']}" if d.get("unit") else "")
            mark = " (deciding)" if d is deciding and len(c["conditions"]) > 1 else ""
            lines.append(f"  - {d['name']} = {fmt(d['value'])}{ci} (needs {d['op']} {fmt(d['target'])}): {status}{mark}")
        if c.get("reason"):
            lines.append(f"  - {c['reason']}")
    return lines


def written_by(exp_id: str, layout: OutputLayout) -> str:
    """The sentence every report's introduction starts with: what wrote it and from which data files."""
    return (f"Written by `python -m semphase run {exp_id}` (or the pytest plugin) from the evidence in "
            f"`{rel(layout.data, layout.reports)}/{exp_id}_*.json`; every number below was measured in the run named in "
            "its provenance.")


def budget_row(ev: dict) -> tuple[str, object]:
    """The provenance row of the budget: its name and what it measures."""
    if ev.get("budget") and ev.get("budget_description"):
        return ("budget", f"{ev['budget']}: {ev['budget_description']}")
    return ("budget", ev.get("budget_description") or ev.get("budget"))


def forward_row(ev: dict, what: str = "one forward of a chunk (C)") -> tuple[str, object]:
    """The provenance row of the time one forward took (the unit of the experiment's cost)."""
    return (what, f"{ev['forward_seconds_per_chunk']:.3g} s")


def thresholds_text(t: dict, sep: str = " / ") -> str:
    """PCA thresholds K(50/80/90/95 %) as one cell (keys as :func:`semphase.pca.thresholds` writes them)."""
    return sep.join(str(t[k]) for k in ("0.5", "0.8", "0.9", "0.95"))


def provenance_table(ev: dict, extra_rows: list[tuple[str, object]]) -> list[str]:
    """What every result records (model, weights, processing, device, seed, versions, time),
    with the experiment's own rows (its data) after the device."""
    prov = ev["provenance"]
    mp = prov["model"]
    rows = [
        ("model", f"{mp['model']} ({mp['hub_id']}, {mp['source']}), {mp['n_layers']} layers x {mp['n_heads']} heads, "
                  f"d_model {mp['d_model']}"),
        ("weights sha256", mp["weights_sha256"]),
        *([("weights", mp["description"])] if mp.get("description") else []),
        ("processing requested", ", ".join(f"{k}={v}" for k, v in mp["processing"].items())),
        ("processing applied", ", ".join(f"{k}: {v}" for k, v in mp["processing_applied"].items())
         if mp.get("processing_applied") else "not recorded (measured before semphase recorded it)"),
        ("device / dtype", f"{mp['device']} / {mp['dtype']}, TF32 matmul {mp['tf32_matmul']}, cuDNN {mp['tf32_cudnn']}"),
        *extra_rows,
        ("claims asserted", "yes" if ev.get("asserts_claims", True) else "no (smoke: measured, only sanity asserted)"),
        ("seed", prov["seed"]),
        ("wall time", f"{prov['wall_seconds']:.1f} s (cache: {prov.get('cache')})"),
        ("versions", ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v) + f", python {prov['python']}"),
        ("semphase", f"{prov['semphase']} (measurement version {prov['measurement_version']}, commit "
                      f"{prov['git_commit'] or 'not recorded: the code was not a git checkout where it ran'})"),
        ("finished", prov["finished_utc"]),
    ]
    return ["### Provenance", "", "| field | value |", "|---|---|"] + [f"| {k} | {cell(v)} |" for k, v in rows]


def figure_links(layout: OutputLayout, pattern: str, exclude: Callable[[str], bool] | None = None) -> list[str]:
    figs = sorted(f for f in layout.figures.glob(pattern) if not (exclude and exclude(f.name)))
    if not figs:
        return []
    lines = ["", "### Figures", ""]
    for f in figs:
        pdf = f.with_suffix(".pdf")
        lines.append(f"![{f.stem}]({rel(f, layout.reports)})")
        caption = read_caption(f)
        vector = f" ([PDF]({rel(pdf, layout.reports)}))" if pdf.is_file() else ""
        if caption or vector:
            lines += ["", f"*{caption}*{vector}" if caption else vector.strip()]
        lines.append("")
    return lines[:-1]


# -- the experiment's part ------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportSpec:
    """What one experiment adds to the shared report.

    * ``intro(records, layout)``: the Markdown introduction (title first);
    * ``section(rec, layout)``: the lines of one model's measurements (after its claims);
    * ``provenance(ev)``: the experiment's provenance rows (its data);
    * ``figures(ev, folder)``: draw the figures, return their paths;
    * ``data_files(ev, claims)``: extra data files {file name: JSON object} (science.md 18);
    * ``figure_glob``: the pattern of one model's figures, with ``{tag}``;
    * ``header(rec)``: the heading of one record (default "## {model}");
    * ``protocol(ev, claim_id)``: the protocol that measured one claim's evidence beyond the budget
      (for example exp10's phases 2-3 "6-layer sample" against "every layer"; default the budget
      alone). Two rows of one claim test and model are two protocols, never two runs of one.
    """

    intro: Callable[[list[dict], OutputLayout], str]
    section: Callable[[dict, OutputLayout], list[str]]
    provenance: Callable[[dict], list[tuple[str, object]]] = lambda ev: []
    figures: Callable[[dict, Path], list[str]] = lambda ev, folder: []
    data_files: Callable[[dict, list[dict]], dict[str, object]] = lambda ev, claims: {}
    figure_glob: str = ""
    header: Callable[[dict], str] | None = None
    protocol: Callable[[dict, str], str] | None = None


def protocol_of(exp, ev: dict, claim_id: str) -> str:
    """The row's protocol: the budget, and what the experiment says beyond it."""
    budget = str(ev.get("budget", "n/a"))
    extra = exp.report.protocol(ev, claim_id) if getattr(exp.report, "protocol", None) else ""
    return f"{budget}; {extra}" if extra else budget


def render(exp, records: list[dict], layout: OutputLayout) -> str:
    spec: ReportSpec = exp.report
    records = [{**rec, "claims": record_claims(exp, rec)} for rec in records]
    lines = [spec.intro(records, layout).rstrip(), ""] + verdict_table(records)
    lines += twin_lines([{"test": c["test"], "claim": c["claim"], "kind": c["kind"], "model": rec["evidence"]["model"],
                          "verdict": c["verdict"], "verdict_value": c.get("verdict_value", ""),
                          "deciding": deciding_text(c)} for rec in records for c in rec["claims"]])
    for rec in records:
        ev = rec["evidence"]
        lines += ["", spec.header(rec) if spec.header else f"## {ev['model']}", ""]
        if "provenance" in ev:
            lines += provenance_table(ev, spec.provenance(ev)) + [""]
        lines += ["### Claims", ""] + claims_block(rec)
        lines += spec.section(rec, layout)
        if spec.figure_glob:
            lines += figure_links(layout, spec.figure_glob.format(tag=ev["tag"]),
                                  None if ev.get("kind") else (lambda name: "cross" in name))
    return "\n".join(lines) + "\n"


def write_report(exp, layout: OutputLayout) -> str:
    path = layout.reports / f"{exp.id}_results.md"
    atomic_write_text(path, render(exp, load_records(layout, exp.id), layout))
    return str(path)


def publish(exp, layout: OutputLayout, ev: dict, claims: list[dict]) -> list[str]:
    """Data, figures and the report for one model's evidence; then the claims summary."""
    spec: ReportSpec = exp.report
    have = {c["test"] for c in claims}
    claims = exp.claims.sort(list(claims) + [r.to_json() for r in exp.claims.skipped_extra(ev) if r.test not in have])
    written = [write_json(layout.data / f"{exp.id}_{ev['tag']}.json", {"evidence": ev, "claims": claims})]
    for name, obj in spec.data_files(ev, claims).items():
        written.append(write_json(layout.data / name, obj))
    written += spec.figures(ev, layout.figures)
    written.append(write_report(exp, layout))
    written.append(write_summary(layout))
    return written


# -- the claims summary ---------------------------------------------------------------------------

def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    out = "".join(ch for ch in heading.strip().lower() if ch.isalnum() or ch in " -_")
    return out.replace(" ", "-")


SUMMARY_HEADER = ["| claim | experiment | test | kind | asserts | model | protocol | verdict | deciding condition | "
                  "the original's claim | section |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]

# How the totals name each verdict value per kind (plural forms of the verdict words).
_TALLY_WORDS = {
    "H": {"replicates": "replicate", "does NOT replicate": "do NOT replicate"},
    "R": {"replicates": "reproduced", "does NOT replicate": "NOT reproduced"},
    "A": {"replicates": "hold", "does NOT replicate": "fail"},
    "S": {"replicates": "sane", "does NOT replicate": "NOT sane"},
}
_TALLY_ORDER = ("replicates", "does NOT replicate", "inconclusive", "error", "not asserted (smoke)", "skipped")
_KIND_TITLES = {"H": "hypothesis tests", "R": "reproduction tests", "A": "arithmetic", "S": "sanity checks"}

# The tidy table's columns (reports/claims.csv and claims.jsonl), one row per claim test, model and folder.
TIDY_COLUMNS = ["folder", "experiment", "claim", "test", "kind", "asserts", "model", "budget", "protocol", "verdict",
                "verdict_value",
                "deciding_name", "deciding_value", "deciding_op", "deciding_target", "deciding_low", "deciding_high",
                "deciding_unit", "deciding_status", "original_claim", "original_verdict", "report", "data_file",
                "claims_file"]


def totals(rows: list[dict]) -> str:
    """The verdicts counted per kind, hypothesis tests apart from reproduction, arithmetic and sanity
    ("hypothesis tests: 12 replicate, 3 inconclusive; arithmetic: 3 hold; ..."), then what the
    rows say about the original's claims."""
    by_kind: dict[str, dict[str, int]] = {}
    for r in rows:
        value = "error" if str(r["verdict"]).startswith("error") else r["verdict_value"]
        tally = by_kind.setdefault(r["kind"], {})
        tally[value] = tally.get(value, 0) + 1
    parts = []
    for kind in [*KINDS, *sorted(set(by_kind) - set(KINDS))]:
        tally = by_kind.get(kind)
        if not tally:
            continue
        words = _TALLY_WORDS.get(kind, {})
        order = [v for v in _TALLY_ORDER if v in tally] + sorted(set(tally) - set(_TALLY_ORDER))
        unmeasured = sum(1 for r in rows if r["kind"] == kind and r["verdict_value"] == "inconclusive"
                         and not_measured(r.get("deciding_name")))
        parts.append(f"{_KIND_TITLES.get(kind, kind)} ({kind}): " +
                     ", ".join(f"{tally[v]} {words.get(v, v)}" +
                               (f" ({unmeasured} of them not measured at their budget)"
                                if v == "inconclusive" and unmeasured else "") for v in order))
    text = "Totals: " + "; ".join(parts) + "."
    orig: dict[str, int] = {}
    for r in rows:
        if r["kind"] in ("H", "A"):
            orig[r["original_verdict"]] = orig.get(r["original_verdict"], 0) + 1
    if orig:
        text += (" The original's claims, by the hypothesis and arithmetic tests: " +
                 ", ".join(f"{orig[v]} {v}" for v in ("supported", "contradicted", "undecided", "n/a") if v in orig) + ".")
    return text


def render_summary(layout: OutputLayout) -> str:
    lines = ["# Claims summary", "",
             "Generated by semphase after every run from the data files in "
             f"`{rel(layout.data, layout.reports)}/`; do not edit by hand. One row per claim test and model measured: "
             "the sentence the test asserts, its verdict, the condition that decided it (the first that failed; else "
             "the first inconclusive one; if all held, the one closest to its bound) with its interval, what it says "
             "about the original study's claim, and a link to the model's section of the experiment's report. The "
             "same rows are in `claims.csv` and `claims.jsonl` beside this file.",
             "Verdicts: *replicates* / *does NOT replicate* (hypothesis tests, H: the test's assertion holds or fails; "
             "the assertion is often the sceptical reading of the original's claim), *inconclusive* (an interval "
             "straddles a bound), *reproduced* / *NOT reproduced* (reproduction tests of the original's GPT-2 "
             "numbers, R), *holds (arithmetic)* / *fails (arithmetic)* (arithmetic on shapes that measures nothing, "
             "A), *sane* (sanity checks, S), *skipped* (with the reason), *not asserted (smoke)*.",
             "The original's claim: *supported* where the assertion agrees with the original and holds, or goes "
             "against it and fails; *contradicted* in the two other cases; *undecided* where the test is "
             "inconclusive, skipped or not asserted (or says why its result does not speak for the original); "
             "*number reproduced* for a reproduced GPT-2 number; *n/a* for sanity checks.", ""]
    rows = summary_records(layout, layout.reports)
    if not rows:
        lines.append("No experiment has been run into this folder yet.")
        return "\n".join(lines) + "\n"
    lines += what_holds(layout, rows)
    lines += [totals(rows), "", *SUMMARY_HEADER]
    lines += [_summary_row(r) for r in rows]
    lines += twin_lines(rows)
    lines += cost_lines(layout)
    variants, superseded = variant_rows(layout, rows)
    if variants or superseded:
        lines += ["", "## Protocol variants", "",
                  f"Runs kept in folders of their own beside `{rel(layout.data, layout.reports)}/` (each with its own "
                  "data, figures, reports and summary; device and commit in its report). Only their measured rows "
                  "under a protocol the table above does not hold are shown, so no claim test, model and protocol "
                  "has two rows; not in the totals above."]
        if superseded:
            lines[-1] += (f" {superseded} measured row(s) of these folders repeat a protocol the table above "
                          "already holds and are left out (the table above decides).")
        lines += [""]
        lines += protocol_sentences(rows, variants)
        if variants:
            lines += ["", *SUMMARY_HEADER] + [_summary_row(r) for r in variants]
    return "\n".join(lines) + "\n"


def needs_training(trained: str, twin: str) -> str:
    """What a claim test's verdict values (:class:`~semphase.claims.Verdict`, whatever the kind's words)
    on a model and on its untrained twin say about training."""
    from .claims import Verdict

    holds, fails = Verdict.REPLICATES.value, Verdict.REFUTED.value
    return {(holds, fails): "yes", (holds, holds): "no: architectural", (fails, holds): "no: training removes it",
            (fails, fails): "n/a: fails on both"}.get((trained, twin), "undecided")


def twin_lines(rows: list[dict]) -> list[str]:
    """Each model measured beside its untrained twin (``random:NAME``): per claim test, both
    verdicts and whether the claim needs training; a sentence for each claim that holds on the twin."""
    from .claims import Verdict
    from .models import TWIN_PREFIX

    by = {(r["test"], r["model"]): r for r in rows}
    twins = [m for m in dict.fromkeys(r["model"] for r in rows) if m.startswith(TWIN_PREFIX)
             and any(r["model"] == m[len(TWIN_PREFIX):] for r in rows)]
    out = []
    for twin in twins:
        base = twin[len(TWIN_PREFIX):]
        table, holds = [], []
        for r in rows:
            if r["model"] != base or r["kind"] not in ("H", "A") or (r["test"], twin) not in by:
                continue
            t = by[(r["test"], twin)]
            verdict = needs_training(r["verdict_value"], t["verdict_value"])
            table.append(f"| {r['claim']} | `{r['test']}` | {r['verdict']} | {t['verdict']} | {verdict} |")
            if t["verdict_value"] == Verdict.REPLICATES.value:
                holds.append(f"- {r['claim']} `{r['test']}` holds on the untrained twin too ({cell(t['deciding'])}): "
                             "the architecture alone produces it.")
        if table:
            out += ["", f"## {base} against its untrained twin", "",
                    f"Each hypothesis and arithmetic test on {base} and on `{twin}` (the same configuration and "
                    "tokenizer, weights drawn by the architecture's initialiser): *needs training?* is yes where it "
                    "holds on the trained model and fails on the twin, *no: architectural* where it holds on both.",
                    "", *holds, *([""] if holds else []),
                    f"| claim | test | {base} | {twin} | needs training? |", "|---|---|---|---|---|", *table]
    return out


def _seconds(x) -> str:
    if not isinstance(x, (int, float)):
        return "n/a"
    return f"{x:.0f} s" if x < 120 else f"{x / 60:.1f} min"


def cost_lines(layout: OutputLayout) -> list[str]:
    """What each measurement in ``layout.data`` cost, from its records (generated; nothing typed
    in): the wall time of the process that wrote it, and the seconds of every cache unit it used,
    computed then or read back from an earlier, interrupted run (their sum is the cost from an
    empty cache where every unit carries its time); exp10's parts from its own timing."""
    from . import registry

    out = []
    for exp in registry.all_experiments():
        for rec in load_records(layout, exp.id):
            ev = rec["evidence"]
            cost, prov = ev.get("cost") or {}, ev.get("provenance") or {}
            device = (prov.get("model") or {}).get("device", "n/a")
            wall = cost.get("wall_seconds", prov.get("wall_seconds"))
            if cost:
                units = (f"{cost['units_computed']} computed ({_seconds(cost['units_computed_seconds'])}), "
                         f"{cost['units_read']} read back ({_seconds(cost['units_read_seconds'])}"
                         + (f"; {cost['units_read_untimed']} without a recorded time" if cost['units_read_untimed'] else "")
                         + ")")
                total = _seconds(cost["units_computed_seconds"] + cost["units_read_seconds"]) + \
                    (" + untimed units" if cost["units_read_untimed"] else "")
            else:
                units, total = "not recorded (measured before the cost was kept)", "n/a"
            parts = ", ".join(f"{k} {_seconds(v)}" for k, v in (ev.get("timing") or {}).items()
                              if k != "total" and exp.id == "exp10")
            out.append(f"| {exp.id} | {ev['model']} | {device} | {ev.get('budget', 'n/a')} | {_seconds(wall)} | {units} | "
                       f"{total} | {parts or '-'} |")
    if not out:
        return []
    return ["", "## What the measurements cost", "",
            "Per data file: the wall time of the process that measured it; the cache units it used, computed in "
            "that process or read back from an earlier, interrupted run, with the seconds each took when computed "
            "(their sum: the measurement's cost from an empty cache on that device; units that experiments share, "
            "such as exp1-exp3's residuals, count in each that reads them); exp10's time per part in "
            "the process that wrote it.", "",
            "| experiment | model | device | budget | wall time | cache units | units' compute time | exp10 parts |",
            "|---|---|---|---|---|---|---|---|", *out]


def variant_rows(layout: OutputLayout, rows: list[dict]) -> tuple[list[dict], int]:
    """The measured rows of the folders beside ``layout``'s whose (test, model, protocol) no row of
    ``rows`` or of an earlier folder holds, and how many were left out for repeating one."""
    seen = {(r["test"], r["model"], r["protocol"]) for r in rows}
    out, dropped = [], 0
    for sub in own_folders(layout):
        for r in summary_records(sub, layout.reports, measured_only=True):
            key = (r["test"], r["model"], r["protocol"])
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
            out.append(r)
    return out, dropped


def protocol_sentences(rows: list[dict], variants: list[dict]) -> list[str]:
    """One sentence per claim test and model whose verdicts differ between protocols, saying which
    row the totals count."""
    main = {(r["test"], r["model"]): r for r in rows if r["verdict"] != "skipped"}
    main_any = {(r["test"], r["model"]): r for r in rows}
    out = []
    for v in variants:
        m = main.get((v["test"], v["model"]))
        if m is None:
            m0 = main_any.get((v["test"], v["model"]))
            if m0 is not None:
                out.append(f"- {v['claim']} `{v['test']}` on {v['model']}: measured only under protocol *{v['protocol']}* "
                           f"({v['verdict']}); the table above skips it under *{m0['protocol']}*.")
            continue
        if m["verdict"] != v["verdict"]:
            out.append(f"- {v['claim']} `{v['test']}` on {v['model']}: *{m['verdict']}* under *{m['protocol']}* (counted "
                       f"above), *{v['verdict']}* under *{v['protocol']}*.")
    return out + ([""] if out else [])


def _model_variants(layout: OutputLayout) -> dict[str, str]:
    """Each model's exact weights and device as its records' provenance states them."""
    from . import registry

    out: dict[str, set[str]] = {}
    for exp in registry.all_experiments():
        for rec in load_records(layout, exp.id):
            mp = ((rec["evidence"].get("provenance") or {}).get("model")) or {}
            if mp:
                what = mp.get("description") or mp.get("hub_id") or mp.get("model")
                out.setdefault(rec["evidence"]["model"], set()).add(
                    f"{what}; device {mp.get('device')}, {mp.get('dtype')}, TF32 matmul {mp.get('tf32_matmul')}")
    return {m: " | ".join(sorted(v)) for m, v in out.items()}


def what_holds(layout: OutputLayout, rows: list[dict]) -> list[str]:
    """Per model, generated from the rows (no hand-written numbers): which of the original's claims the
    hypothesis and arithmetic tests support, contradict, split on, or leave undecided."""
    variants = _model_variants(layout)
    lines = ["## What holds on each model", ""]
    for model in dict.fromkeys(r["model"] for r in rows):
        by_claim: dict[str, set[str]] = {}
        for r in rows:
            if r["model"] == model and r["kind"] in ("H", "A") and r["claim"].startswith("C"):
                by_claim.setdefault(r["claim"], set()).add(r["original_verdict"])
        groups = {"supported": [], "contradicted": [], "split between its tests": [], "undecided": []}
        for claim in sorted(by_claim, key=lambda c: int(c[1:]) if c[1:].isdigit() else 0):
            seen = by_claim[claim] - {"undecided", "n/a"}
            key = ("undecided" if not seen else "split between its tests" if len(seen) > 1
                   else "supported" if seen == {"supported"} else "contradicted")
            groups[key].append(claim)
        budgets = sorted({str(r["budget"]) for r in rows if r["model"] == model})
        lines.append(f"**{model}** ({variants.get(model, 'provenance not recorded')}; budgets: {', '.join(budgets)}). "
                     "The original's claims, by this model's decided hypothesis and arithmetic tests: " +
                     "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items() if v) +
                     ". A claim is *supported* when every decided test of it supports it, *split* when its tests "
                     "disagree, *undecided* when none of its tests is decided (inconclusive, skipped or not asserted).")
        lines.append("")
    return lines


def own_folders(layout: OutputLayout) -> list[OutputLayout]:
    """The output folders beside ``layout``'s (``results/NAME/`` with a data/ of their own)."""
    parent = layout.data.parent
    if not parent.is_dir():
        return []
    subs = [OutputLayout.make(p) for p in sorted(parent.iterdir()) if (p / "data").is_dir()]
    return [sub for sub in subs if sub.data != layout.data]


def _summary_row(r: dict) -> str:
    link = f"[{r['experiment']}]({r['report']})"
    user = f" (yours: {r['claims_file']})" if r.get("claims_file") else ""
    return (f"| {r['claim']} | {r['experiment']} | `{r['test']}`{user} | {r['kind']} | {cell(r['asserts'])} | {r['model']} | "
            f"{r['protocol']} | {r['verdict']} | {cell(r['deciding'])} | {r['original_verdict']} | {link} |")


def summary_records(layout: OutputLayout, reports: Path, measured_only: bool = False) -> list[dict]:
    """One row (a dict of :data:`TIDY_COLUMNS` plus ``deciding``, its text) per claim test of every
    record in ``layout.data``, links relative to ``reports``; ``measured_only`` drops skipped rows."""
    from . import registry

    rows = []
    folder = rel(layout.reports, reports)
    prefix = "" if folder == "." else folder + "/"
    where = rel(layout.data.parent, reports.parent)
    for exp in registry.all_experiments():
        for rec in load_records(layout, exp.id):
            ev = rec["evidence"]
            heading = exp.report.header(rec) if exp.report.header else f"## {ev['model']}"
            link = prefix + f"{exp.id}_results.md#{_anchor(heading.lstrip('#'))}"
            for c in record_claims(exp, rec):
                if measured_only and c["verdict"] == "skipped":
                    continue
                d = deciding_condition(c) if c.get("applicable", True) else None
                interval = (d or {}).get("interval") or (None, None)
                rows.append({
                    "folder": where, "experiment": exp.id, "claim": c["claim"], "test": c["test"],
                    "kind": c["kind"], "asserts": c.get("asserts", ""), "model": ev["model"],
                    "budget": ev.get("budget", "n/a"), "protocol": protocol_of(exp, ev, c["claim"]),
                    "verdict": c["verdict"],
                    "verdict_value": c.get("verdict_value", ""),
                    "deciding_name": (d or {}).get("name"), "deciding_value": (d or {}).get("value"),
                    "deciding_op": (d or {}).get("op"), "deciding_target": (d or {}).get("target"),
                    "deciding_low": interval[0], "deciding_high": interval[1], "deciding_unit": (d or {}).get("unit"),
                    "deciding_status": (d or {}).get("status") if d else None,
                    "original_claim": c.get("original_claim", ""), "original_verdict": c.get("original_verdict", "n/a"),
                    "report": link, "data_file": rel(rec["path"], reports), "claims_file": c.get("claims_file", ""),
                    "deciding": deciding_text(c),
                })
    return rows


def tidy_rows(layout: OutputLayout) -> list[dict]:
    """Every claim row of the output folder and of the folders beside it (:func:`own_folders`), skipped
    rows included, as dicts of :data:`TIDY_COLUMNS` (links and data files relative to ``reports/``)."""
    rows = summary_records(layout, layout.reports)
    for sub in own_folders(layout):
        rows += summary_records(sub, layout.reports)
    return [{k: r[k] for k in TIDY_COLUMNS} for r in rows]


def _csv_value(x) -> object:
    """A tidy cell for the CSV: None as empty, floats in full precision, everything else as text."""
    if x is None:
        return ""
    if isinstance(x, float):
        return repr(x)
    return x


def write_tidy(layout: OutputLayout) -> list[str]:
    """``reports/claims.csv`` and ``reports/claims.jsonl``: the tidy table of every claim row
    (:func:`tidy_rows`), loadable with ``pandas.read_csv`` / ``pandas.read_json(lines=True)``."""
    rows = tidy_rows(layout)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TIDY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_value(v) for k, v in r.items()})
    csv_path, jsonl_path = layout.reports / "claims.csv", layout.reports / "claims.jsonl"
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(jsonl_path, "".join(json.dumps(r, ensure_ascii=False, allow_nan=True) + "\n" for r in rows))
    return [str(csv_path), str(jsonl_path)]


def summary_table(layout: OutputLayout) -> str:
    """The claims summary's totals and table (what a run prints at its end)."""
    lines = render_summary(layout).splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("Totals:")), len(lines) - 1)
    return "\n".join(lines[start:])


def write_summary(layout: OutputLayout) -> str:
    """The claims summary ``reports/README.md``, with the tidy table beside it (:func:`write_tidy`)."""
    path = layout.reports / "README.md"
    atomic_write_text(path, render_summary(layout))
    write_tidy(layout)
    return str(path)


def rebuild(layout: OutputLayout, reevaluate: bool = False, figures: bool = False) -> list[str]:
    """Rewrite every experiment's report and the summary from the data files; with
    ``reevaluate``, first apply the current claim rules to the stored evidence (no measurement); with ``figures``,
    draw every figure again from the stored evidence (PNG, PDF and caption)."""
    from . import registry

    written = []
    for exp in registry.all_experiments():
        records = load_records(layout, exp.id)
        if not records:
            continue
        if reevaluate:
            for rec in records:
                ev = rec["evidence"]
                results = exp.claims.evaluate_all(ev) + exp.claims.skipped_extra(ev)
                user = [c for c in rec["claims"] if c.get("user")]  # a researcher's claims: kept as evaluated
                claims = exp.claims.sort([c.to_json() for c in results]) + user
                written.append(write_json(Path(rec["path"]), {"evidence": ev, "claims": claims}))
        if figures:
            for rec in records:
                written += exp.report.figures(rec["evidence"], layout.figures)
        written.append(write_report(exp, layout))
    written.append(write_summary(layout))
    written += [str(layout.reports / "claims.csv"), str(layout.reports / "claims.jsonl")]
    return written


def claims_table_path(where: str | os.PathLike) -> Path:
    """The tidy table a ``compare`` side names: a ``claims.jsonl`` file itself, or an output folder (its
    ``reports/claims.jsonl``; ``results``, here or in another checkout, is a repository's committed layout, whose
    table is ``reports/claims.jsonl`` beside it)."""
    path = Path(where)
    if path.is_file():
        if path.suffix != ".jsonl":
            raise SemphaseError(f"{str(where)!r}: give an output folder or its reports/claims.jsonl, not a "
                                f"{path.suffix or 'suffix-less'} file.")
        return path
    table = OutputLayout.make(where).reports / "claims.jsonl"
    if not table.is_file() and path.name == "results":  # another checkout's committed layout: its reports/ beside
        table = path.parent / "reports" / "claims.jsonl"
    if not table.is_file():
        raise SemphaseError(f"{str(where)!r} holds no claims table ({table} is missing): give the --output-dir of a "
                            "finished run (or 'results'), or run 'semphase report --output-dir DIR' there first.")
    return table


def _side_folder(folder: str) -> str:
    """A tidy row's folder as its name beside the run's own ("" for the run's own: "." in an output folder,
    "results" in the repository's layout), so that two runs' tables meet whatever their folders are called."""
    if folder in (".", "results"):
        return ""
    return folder[len("results/"):] if folder.startswith("results/") else folder


def _row_key(r: dict) -> tuple:
    # one row per claim test, model and protocol in a folder; a researcher's rows are told apart by their file
    return r["experiment"], r["model"], r["test"], r["protocol"], _side_folder(r.get("folder", "")), \
        r.get("claims_file") or ""


def compare_claims(a: str | os.PathLike, b: str | os.PathLike) -> dict:
    """Two runs' claim tables row by row (experiment, model, test, protocol): the rows only one holds, the rows
    whose verdicts differ, and how far the deciding values of rows with equal verdicts moved (relative)."""
    tables = []
    for side in (a, b):
        path = claims_table_path(side)
        rows = {}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                key = _row_key(r)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise SemphaseError(f"{path}:{n}: not a row of semphase's claims table ({exc}).") from None
            if key in rows:
                raise SemphaseError(f"{path}:{n}: a second row of {key[2]} on {key[1]} under protocol {key[3]!r}"
                                    + (f" in {key[4]}" if key[4] else "") + ".")
            rows[key] = r
        tables.append((str(path), rows))
    (pa, ra), (pb, rb) = tables
    both = [k for k in ra if k in rb]
    differ = [(k, ra[k], rb[k]) for k in both if ra[k]["verdict"] != rb[k]["verdict"]]
    moved = []
    for k in both:
        va, vb = ra[k].get("deciding_value"), rb[k].get("deciding_value")
        if ra[k]["verdict"] != rb[k]["verdict"] or not all(isinstance(v, (int, float)) for v in (va, vb)):
            continue
        if math.isfinite(va) and math.isfinite(vb):
            if va != vb:
                moved.append((abs(va - vb) / max(abs(va), abs(vb)), k, va, vb))
        elif not (math.isnan(va) and math.isnan(vb)) and va != vb:  # inf or NaN on one side only
            moved.append((math.inf, k, va, vb))
    return {"a": pa, "b": pb, "both": len(both), "differ": differ, "moved": sorted(moved, reverse=True),
            "only_a": [k for k in ra if k not in rb], "only_b": [k for k in rb if k not in ra]}
