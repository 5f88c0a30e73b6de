"""Snapshot tests of the reports (syrupy): each report builder rendered from a small fixed evidence
file, compared with a stored snapshot, numbers with a tolerance.

The evidence files are ``tests/snapshots/fixtures/<exp>.json`` (real smoke-budget records of the
tiny random-weight model; ``tests/snapshots/make_fixtures.py`` regenerates them). Each is rendered
through the report builder (:func:`semphase.report.write_report`, which ``publish`` calls, with the
experiment's :class:`~semphase.report.ReportSpec`), without figures. The snapshots are Markdown files
under ``tests/machinery/__snapshots__/test_report_snapshots/``.

Comparison (:class:`MarkdownSnapshot`): the text between numbers must be identical; each number
must be written the same way (digits after the point, exponent, sign, thousands separators) and be
within one unit of its last printed digit (``math.isclose`` with that absolute tolerance); integers
must be equal. Volatile content (wall times, versions, the commit, dates, hashes, absolute paths) is
normalised before storing and comparing (:func:`normalise`).

After an intended change of a report:
``pytest tests/machinery/test_report_snapshots.py --snapshot-update`` rewrites the snapshots; review
the diff of ``tests/machinery/__snapshots__/`` before committing it.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from semphase import registry
from semphase import report as report_module
from semphase.report import OutputLayout, load_records, render_summary, write_report

pytestmark = pytest.mark.machinery

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "snapshots" / "fixtures"
SNAPSHOTS = Path(__file__).resolve().parent / "__snapshots__" / Path(__file__).stem
EXPERIMENTS = ("exp1", "exp2", "exp3", "exp6", "exp7", "exp8", "exp9", "exp10")
MODEL_TAG = "tiny-llama"

# -- normalising volatile content ------------------------------------------------------------------

# Provenance rows whose whole value changes from run to run or machine to machine.
VOLATILE_ROWS = ("wall time", "versions", "semphase", "finished", "forward passes", "one forward of a chunk (C)",
                 "weights sha256")
_ROW = re.compile(r"^\| (" + "|".join(re.escape(r) for r in VOLATILE_ROWS) + r") \| .* \|$", re.M)
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{12,64}\b")
_ABS_DIR = re.compile(r"(?<![\w.~<>])/(?:[^\s/|`'\"()\[\]]+/)+")


def normalise(markdown: str) -> str:
    """Replace what differs between runs and machines by placeholders: the volatile provenance rows,
    timestamps, hex digests (12 to 64 hex digits) and the folders of absolute paths (the file name
    stays)."""
    text = _ROW.sub(lambda m: f"| {m.group(1)} | <volatile> |", markdown)
    text = _TIME.sub("<time>", text)
    text = _HASH.sub("<hash>", text)
    return _ABS_DIR.sub("<path>/", text)


# -- numbers with a tolerance -----------------------------------------------------------------------

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _form(token: str) -> tuple:
    """How a number is written: explicit sign, thousands separators, digits after the point, exponent."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return (token[0] in "+-", "," in mantissa, "." in mantissa, decimals, bool(exponent))


def numbers_match(a: str, b: str) -> bool:
    """Two number tokens match when written the same way and within one unit of the last printed
    digit (``math.isclose``); integers (no point, no exponent) must be equal."""
    if a == b:
        return True
    form = _form(a)
    if form != _form(b) or not (form[2] or form[4]):
        return False
    exponent = a.lower().partition("e")[2]
    unit = 10.0 ** (int(exponent or 0) - form[3])
    return math.isclose(float(a.replace(",", "")), float(b.replace(",", "")), rel_tol=1e-9, abs_tol=unit * (1 + 1e-6))


def markdown_matches(new: str, stored: str) -> bool:
    """The text outside numbers is identical and every number matches (:func:`numbers_match`)."""
    if new == stored:
        return True
    if NUMBER.split(new) != NUMBER.split(stored):
        return False
    return all(numbers_match(a, b) for a, b in zip(NUMBER.findall(new), NUMBER.findall(stored)))


class MarkdownSnapshot(SingleFileSnapshotExtension):
    """A report as one Markdown file, normalised, compared with a tolerance on numbers."""

    file_extension = "md"
    _write_mode = WriteMode.TEXT

    def serialize(self, data, **kwargs) -> str:
        return normalise(str(data))

    def matches(self, *, serialized_data, snapshot_data) -> bool:
        return snapshot_data is not None and markdown_matches(str(serialized_data), str(snapshot_data))


@pytest.fixture
def md_snapshot(snapshot):
    return snapshot.use_extension(MarkdownSnapshot)


# -- rendering --------------------------------------------------------------------------------------

def layout_with(tmp_path: Path, experiments) -> OutputLayout:
    """An output folder whose data/ holds the fixture records of ``experiments``."""
    layout = OutputLayout.make(tmp_path / "out")
    layout.data.mkdir(parents=True, exist_ok=True)
    for exp_id in experiments:
        shutil.copy(FIXTURES / f"{exp_id}.json", layout.data / f"{exp_id}_{MODEL_TAG}.json")
    return layout


def render_report(exp_id: str, tmp_path: Path) -> str:
    """The experiment's report, written by the report builder from its fixture record."""
    layout = layout_with(tmp_path, [exp_id])
    return Path(write_report(registry.get(exp_id), layout)).read_text(encoding="utf-8")


def stored_snapshot(name: str) -> str:
    path = SNAPSHOTS / f"{name}.md"
    if not path.is_file():
        pytest.fail(f"no stored snapshot {path}; create it with `pytest {Path(__file__).relative_to(ROOT)} "
                    "--snapshot-update`")
    return path.read_text(encoding="utf-8")


# -- the snapshots ----------------------------------------------------------------------------------

@pytest.mark.parametrize("exp_id", EXPERIMENTS)
def test_fixture_is_small_and_readable(exp_id, tmp_path):
    path = FIXTURES / f"{exp_id}.json"
    records = load_records(layout_with(tmp_path, [exp_id]), exp_id)
    limit = 64 * 1024 + 4 * 1024 * len(records[0]["claims"])  # exp10 carries 31 claim tests, each with its sentences
    assert path.stat().st_size < limit, f"{path} should stay a few tens of KB (plus 4 KB per claim test)"
    assert len(records) == 1 and records[0]["evidence"]["model"] == MODEL_TAG and records[0]["claims"]


@pytest.mark.parametrize("exp_id", EXPERIMENTS)
def test_report_matches_snapshot(exp_id, tmp_path, md_snapshot):
    text = render_report(exp_id, tmp_path)
    assert f"# {exp_id} results" in text
    assert md_snapshot == text


def test_claims_summary_matches_snapshot(tmp_path, md_snapshot):
    assert md_snapshot == render_summary(layout_with(tmp_path, EXPERIMENTS))


# -- the comparison itself --------------------------------------------------------------------------

def test_normalise_removes_what_varies_between_runs():
    md = ("| wall time | 12.3 s (cache: {'hits': 1}) |\n| finished | 2026-11-29T19:08:18+00:00 |\n"
          "| versions | torch 2.13.0+cpu, python 3.11.7 |\n| seed | 0 |\n"
          "stimuli /tmp/pytest-of-u/p0/stim.json (sha256 9a7e1e0f6a52a02f), l/L = 0.5, `../data/exp1_*.json`")
    assert normalise(md) == ("| wall time | <volatile> |\n| finished | <volatile> |\n| versions | <volatile> |\n"
                             "| seed | 0 |\nstimuli <path>/stim.json (sha256 <hash>), l/L = 0.5, `../data/exp1_*.json`")


@pytest.mark.parametrize("new, stored, same", [
    ("x = 0.1235 (n = 12)", "x = 0.1235 (n = 12)", True),
    ("x = 0.1236 (n = 12)", "x = 0.1235 (n = 12)", True),  # one unit of the last digit: tolerated
    ("x = 1.235e-05", "x = 1.236e-05", True),
    ("x = 0.1238 (n = 12)", "x = 0.1235 (n = 12)", False),  # beyond the tolerance
    ("x = 0.1235 (n = 13)", "x = 0.1235 (n = 12)", False),  # integers are exact
    ("x = 0.124 (n = 12)", "x = 0.1235 (n = 12)", False),  # another format
    ("x = 0.0620", "x = 0.062", False),  # the same value, another format
    ("x = 1.2e-05", "x = 0.000012", False),
    ("x = 2,048 tokens", "x = 2048 tokens", False),
    ("+1.23 %", "-1.23 %", False),
    ("y = 0.1235 (n = 12)", "x = 0.1235 (n = 12)", False),  # the text differs
])
def test_numbers_compare_with_a_tolerance_and_their_format(new, stored, same):
    assert markdown_matches(new, stored) is same


def test_a_changed_number_format_fails_the_snapshot(monkeypatch, tmp_path):
    """Changing how a report builder formats numbers breaks the comparison with the stored snapshot
    (and a tiny change of the evidence's floats does not)."""
    import semphase.experiments.exp1.report as exp1_report
    import semphase.experiments.exp10.report as exp10_report

    ext = MarkdownSnapshot()
    for exp_id in ("exp1", "exp10"):
        stored = stored_snapshot(f"test_report_matches_snapshot[{exp_id}]")
        assert ext.matches(serialized_data=ext.serialize(render_report(exp_id, tmp_path / "a")), snapshot_data=stored)
    # one more significant digit in exp1's numbers
    monkeypatch.setattr(exp1_report, "fmt", lambda x, digits=4: report_module.fmt(x, digits + 1))
    changed = ext.serialize(render_report("exp1", tmp_path / "b"))
    assert not ext.matches(serialized_data=changed, snapshot_data=stored_snapshot("test_report_matches_snapshot[exp1]"))
    monkeypatch.undo()
    # percentages with one decimal instead of two in exp10's measurements
    monkeypatch.setattr(exp10_report, "pct", lambda x, digits=2, signed=True: report_module.pct(x, 1, signed))
    changed = ext.serialize(render_report("exp10", tmp_path / "c"))
    assert not ext.matches(serialized_data=changed, snapshot_data=stored_snapshot("test_report_matches_snapshot[exp10]"))


def test_pytest_fails_the_snapshot_test_when_a_format_changes(tmp_path):
    """The real thing: the snapshot test, run by pytest with exp2's report builder printing numbers
    to three significant digits instead of four, fails (nothing is written: no --snapshot-update)."""
    plugin = tmp_path / "semphase_format_patch.py"
    plugin.write_text(
        "import semphase.experiments.exp2.report as r\n"
        "_fmt = r.fmt\n"
        "r.fmt = lambda x, digits=4: _fmt(x, digits - 1)\n", encoding="utf-8")
    before = {p: p.read_bytes() for p in SNAPSHOTS.glob("*.md")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "semphase_format_patch", "-n", "0", "-q",
                          f"{Path(__file__)}::test_report_matches_snapshot[exp2]"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-2000:]
    assert "1 failed" in res.stdout and "snapshot" in res.stdout.lower(), res.stdout[-3000:]
    assert before == {p: p.read_bytes() for p in SNAPSHOTS.glob("*.md")}


def test_importing_the_report_builders_keeps_the_callers_matplotlib_backend():
    """A notebook's backend survives importing every experiment's report and figure code (no
    ``matplotlib.use`` on import)."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); from semphase import registry\n"
            "for e in registry.all_experiments(): e.report\n"
            "import semphase.experiments.exp10.figures\n"
            "assert matplotlib.get_backend().lower() == 'svg', matplotlib.get_backend()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
