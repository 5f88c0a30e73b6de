"""Committed results and reports name no machine's absolute paths (data copies are named inside their data folder,
wikitext-2-raw/wiki.valid.raw, with their sha256, so a report reads the same on every machine), and their verdicts are
the current rules' on the committed evidence, with no claim test skipped for want of evidence the run could measure."""
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]
ABSOLUTE = re.compile(r"""(?:^|[\s"'(:=])/(?:work|tmp|home|root|Users|mnt|scratch|var|private)/""")


def test_committed_results_and_reports_hold_no_absolute_machine_path():
    res = subprocess.run(["git", "-C", str(ROOT), "ls-files", "results", "reports"], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip("not a git checkout")
    offenders = []
    for name in res.stdout.split():
        path = ROOT / name
        if path.suffix not in (".json", ".md", ".csv", ".jsonl") or not path.is_file():
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            if ABSOLUTE.search(line):
                offenders.append(f"{name}:{i + 1}: {line.strip()[:120]}")
                break
    assert not offenders, "\n".join(offenders[:20])


def _committed_records():
    from semphase import registry
    from semphase.report import OutputLayout, load_records

    layout = OutputLayout.make("results", root=ROOT)
    for exp in registry.all_experiments():
        for rec in load_records(layout, exp.id):
            yield exp, rec


def test_committed_verdicts_are_the_current_rules_on_the_committed_evidence():
    """Every committed verdict (results/data) is what the current claim rules give on the committed evidence, so the
    committed reports never show a verdict of an older rule (after a rule change: `semphase report --reevaluate`)."""
    stale = []
    for exp, rec in _committed_records():
        ev = rec["evidence"]
        now = {r.test: r.verdict() for r in exp.claims.evaluate_all(ev) + exp.claims.skipped_extra(ev)}
        stored = {c["test"]: c["verdict"] for c in rec["claims"] if not c.get("user")}
        for test in sorted(set(now) | set(stored)):
            if now.get(test) != stored.get(test):
                stale.append(f"{exp.id} {ev.get('model')} {test}: committed {stored.get(test)!r}, "
                             f"the current rule {now.get(test)!r}")
    assert not stale, "\n".join(stale)


def test_committed_run_skips_no_claim_test_for_want_of_a_part_it_could_measure():
    """No claim test of the committed run (results/data, the rules applied again to its evidence) is skipped because
    its run left out evidence (claims.MissingEvidence): every test has a verdict, or is skipped because its rule
    does not apply to this model (the original's GPT-2 protocol, a comparison across models, an untrained twin)."""
    from semphase.claims import MissingEvidence

    missing, n = [], 0
    for exp, rec in _committed_records():
        ev = rec["evidence"]
        for result in exp.claims.evaluate_all(ev):
            n += 1
            if not result.applicable and isinstance(result.reason, MissingEvidence):
                missing.append(f"{exp.id} {ev.get('model')} {result.test}: {result.reason}")
    assert n, "no committed data file holds claim evidence"
    assert not missing, "\n".join(missing)
