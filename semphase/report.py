"""The report builder: one for every experiment.

For each experiment the builder writes ``data/{exp}_{tag}.json`` (the evidence and the claims),
the experiment's extra data files and figures, and ``reports/{exp}_results.md``, rebuilt from
every record of that experiment in the output folder (so models measured in separate runs or by
separate xdist workers appear in one report, each with its own provenance). It owns what every
report shares: the provenance table, the verdict table, the claims block, figure saving and the
number formats. After each publication it regenerates the claims summary ``reports/README.md``:
every claim of every experiment against every model measured, from the data files.

An experiment contributes a :class:`ReportSpec` (``semphase/experiments/<id>/report.py``): its
introduction, its measurement section, its figures, its extra data files and its own provenance
rows. Every file is written atomically.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .cache import atomic_write_bytes, atomic_write_text
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


def save_figure(fig, path: Path, tight: bool = True, rect=None) -> str:
    """Render to memory, then write atomically: a reader never sees half a PNG."""
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout(rect=rect) if rect else fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


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

def key_numbers(claim: dict, n: int = 3) -> str:
    """The first conditions of a claim as "name = value [CI] (needs op target)", or its reason."""
    parts = []
    for d in claim["conditions"][:n]:
        ci = f" [{fmt(d['interval'][0])}, {fmt(d['interval'][1])}]" if d.get("interval") else ""
        parts.append(f"{d['name']} = {fmt(d['value'])}{ci} (needs {d['op']} {fmt(d['target'])})")
    return "; ".join(parts) or claim.get("reason", "")


def verdict_table(records: list[dict]) -> list[str]:
    lines = ["## Verdicts", "", "| claim | test | kind | model | budget | verdict | key numbers |",
             "|---|---|---|---|---|---|---|"]
    for rec in records:
        ev = rec["evidence"]
        for c in rec["claims"]:
            lines.append(f"| {c['claim']} | `{c['test']}` | {c['kind']} | {ev['model']} | {ev.get('budget', 'n/a')} | "
                         f"{c['verdict']} | {cell(key_numbers(c))} |")
    return lines


def claims_block(rec: dict) -> list[str]:
    """Each claim of one model's record with its statement and every condition."""
    lines = []
    for c in rec["claims"]:
        lines.append(f"- **{c['claim']} `{c['test']}` ({c['kind']}) - {c['verdict']}.** {c['statement']}.")
        for d in c["conditions"]:
            status = d.get("status") or ("ok" if d["ok"] else "fails")
            ci = ""
            if d.get("interval"):
                ci = f", 95 % CI {fmt(d['interval'][0])} to {fmt(d['interval'][1])}" + \
                     (f" resampling {d['unit']}" if d.get("unit") else "")
            lines.append(f"  - {d['name']} = {fmt(d['value'])}{ci} (needs {d['op']} {fmt(d['target'])}): {status}")
        if c.get("reason"):
            lines.append(f"  - {c['reason']}")
    return lines


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
        ("semphase", f"{prov['semphase']} (measurement version {prov['measurement_version']}, commit {prov['git_commit']})"),
        ("finished", prov["finished_utc"]),
    ]
    return ["### Provenance", "", "| field | value |", "|---|---|"] + [f"| {k} | {cell(v)} |" for k, v in rows]


def figure_links(layout: OutputLayout, pattern: str, exclude: Callable[[str], bool] | None = None) -> list[str]:
    figs = sorted(f for f in layout.figures.glob(pattern) if not (exclude and exclude(f.name)))
    if not figs:
        return []
    return ["", "### Figures", ""] + [f"![{f.stem}]({rel(f, layout.reports)})" for f in figs]


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
    * ``header(rec)``: the heading of one record (default "## {model}").
    """

    intro: Callable[[list[dict], OutputLayout], str]
    section: Callable[[dict, OutputLayout], list[str]]
    provenance: Callable[[dict], list[tuple[str, object]]] = lambda ev: []
    figures: Callable[[dict, Path], list[str]] = lambda ev, folder: []
    data_files: Callable[[dict, list[dict]], dict[str, object]] = lambda ev, claims: {}
    figure_glob: str = ""
    header: Callable[[dict], str] | None = None


def render(exp, records: list[dict], layout: OutputLayout) -> str:
    spec: ReportSpec = exp.report
    lines = [spec.intro(records, layout).rstrip(), ""] + verdict_table(records)
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
    claims = exp.claims.sort(claims)
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


SUMMARY_HEADER = ["| claim | experiment | test | kind | model | budget | verdict | key number | section |",
                  "|---|---|---|---|---|---|---|---|---|"]


def render_summary(layout: OutputLayout) -> str:
    lines = ["# Claims summary", "",
             "Generated by semphase after every run from the data files in "
             f"`{rel(layout.data, layout.reports)}/`; do not edit by hand. One row per claim test and model measured: "
             "its verdict, its first condition and a link to the model's section of the experiment's report.",
             "Verdicts: *replicates* / *does NOT replicate* (hypothesis tests asserting the original's conclusion), "
             "*inconclusive* (an interval straddles a bound), *reproduced* / *NOT reproduced* (reproduction tests of "
             "the original's GPT-2 numbers), *sane* (sanity checks), *skipped* (with the reason), *not asserted "
             "(smoke)*.", ""]
    counts: dict[str, int] = {}
    rows = _summary_rows(layout, layout.reports, counts)
    if not rows:
        lines.append("No experiment has been run into this folder yet.")
        return "\n".join(lines) + "\n"
    lines += ["Totals: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda t: -t[1])) + ".",
              "", *SUMMARY_HEADER]
    lines += rows
    own = []
    parent = layout.data.parent
    for folder in sorted(p for p in parent.iterdir() if (p / "data").is_dir()) if parent.is_dir() else []:
        sub = OutputLayout.make(folder)
        if sub.data == layout.data:
            continue
        own += _summary_rows(sub, layout.reports, {}, measured_only=True)
    if own:
        lines += ["", "## Runs in folders of their own", "",
                  f"Runs of some parts only, kept apart from `{rel(layout.data, layout.reports)}/` (each folder has its "
                  "own data, figures, reports and summary; it may come from another device or commit, said in its "
                  "report). Their measured rows; their skipped rows are in each folder's summary. Not in the totals "
                  "above.", "", *SUMMARY_HEADER] + own
    return "\n".join(lines) + "\n"


def _summary_rows(layout: OutputLayout, reports: Path, counts: dict[str, int], measured_only: bool = False) -> list[str]:
    """The summary's rows of the records in ``layout.data``, linked from ``reports``; ``counts``
    tallies the verdicts; ``measured_only`` drops skipped rows."""
    from . import registry

    rows = []
    folder = rel(layout.reports, reports)
    prefix = "" if folder == "." else folder + "/"
    for exp in registry.all_experiments():
        for rec in load_records(layout, exp.id):
            ev = rec["evidence"]
            heading = exp.report.header(rec) if exp.report.header else f"## {ev['model']}"
            link = prefix + f"{exp.id}_results.md#{_anchor(heading.lstrip('#'))}"
            for c in exp.claims.sort(rec["claims"]):
                if measured_only and c["verdict"] == "skipped":
                    continue
                counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
                key = key_numbers(c, 1)
                rows.append(f"| {c['claim']} | {exp.id} | `{c['test']}` | {c['kind']} | {ev['model']} | "
                            f"{ev.get('budget', 'n/a')} | {c['verdict']} | {cell(key)} | [{exp.id}]({link}) |")
    return rows


def summary_table(layout: OutputLayout) -> str:
    """The claims summary's totals and table (what a run prints at its end)."""
    lines = render_summary(layout).splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("Totals:")), len(lines) - 1)
    return "\n".join(lines[start:])


def write_summary(layout: OutputLayout) -> str:
    path = layout.reports / "README.md"
    atomic_write_text(path, render_summary(layout))
    return str(path)


def rebuild(layout: OutputLayout, reevaluate: bool = False) -> list[str]:
    """Rewrite every experiment's report and the summary from the data files; with
    ``reevaluate``, first apply the current claim rules to the stored evidence (no measurement)."""
    from . import registry

    written = []
    for exp in registry.all_experiments():
        records = load_records(layout, exp.id)
        if not records:
            continue
        if reevaluate:
            for rec in records:
                ev = rec["evidence"]
                claims = [c.to_json() for c in exp.claims.evaluate_all(ev)]
                written.append(write_json(Path(rec["path"]), {"evidence": ev, "claims": claims}))
        written.append(write_report(exp, layout))
    written.append(write_summary(layout))
    return written
