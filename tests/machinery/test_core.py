"""The experiment core: verdicts with five values, conditions with intervals, the registry as the
one source of experiments (CLI choices, pytest markers, claim order), the claims summary, and an
inconclusive claim told apart from a refuted one in pytest's outcome line and summary."""
from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from semphase import registry
from semphase.claims import ClaimResult, ClaimSet, Verdict, cond

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]


# -- conditions and verdicts -----------------------------------------------------------------------

def test_a_condition_is_inconclusive_when_its_interval_straddles_the_bound():
    assert cond("x", 0.6, ">", 0.5, interval=(0.55, 0.7)).status == "ok"
    assert cond("x", 0.4, ">", 0.5, interval=(0.3, 0.45)).status == "fails"
    straddle = cond("x", 0.6, ">", 0.5, interval=(0.4, 0.7), unit="chunks")
    assert straddle.status == "inconclusive" and straddle.ok  # the point estimate's side is kept
    assert cond("x", 0.3, "<", 0.5, interval=(0.2, 0.6)).status == "inconclusive"
    assert cond("x", 0.3, "<", 0.5).status == "ok"  # no interval: decided by the value
    assert cond("x", float("nan"), ">", 0.5).status == "fails"
    assert "INCONCLUSIVE" in straddle.text() and "over chunks" in straddle.text()


@pytest.mark.parametrize("conditions, asserted, applicable, expected", [
    ([("ok", 1.0, ">", 0.0, None)], True, True, Verdict.REPLICATES),
    ([("fail", -1.0, ">", 0.0, None)], True, True, Verdict.REFUTED),
    ([("ok", 1.0, ">", 0.0, None), ("wide", 1.0, ">", 0.0, (-1.0, 2.0))], True, True, Verdict.INCONCLUSIVE),
    ([("fail", -1.0, ">", 0.0, None), ("wide", 1.0, ">", 0.0, (-1.0, 2.0))], True, True, Verdict.REFUTED),
    ([("ok", 1.0, ">", 0.0, None)], False, True, Verdict.NOT_ASSERTED),
    ([], True, False, Verdict.SKIPPED),
])
def test_five_verdicts(conditions, asserted, applicable, expected):
    r = ClaimResult("C0", "test_c0", "H", "a claim")
    r.conditions = [cond(n, v, op, t, interval=ci) for n, v, op, t, ci in conditions]
    r.asserted, r.applicable = asserted, applicable
    assert r.value is expected
    j = r.to_json()
    assert j["verdict_value"] == expected.value
    assert j["passed"] == (expected in (Verdict.REPLICATES, Verdict.NOT_ASSERTED))  # conditions hold, applicable


def test_reproduction_and_sanity_words():
    r = ClaimResult("C0", "t", "R", "s", [cond("x", 1, "==", 1)])
    assert r.verdict() == "reproduced"
    r.kind = "S"
    assert r.verdict() == "sane"
    r.conditions = [cond("x", 1, "==", 2)]
    assert r.verdict() == "NOT sane"


def test_claim_set_applies_the_budget_rule_in_one_place():
    rules = ClaimSet({"test_a": lambda ev: ClaimResult("C1", "test_a", "H", "s", [cond("x", 1, ">", 0)]),
                      "test_s": lambda ev: ClaimResult("S", "test_s", "S", "s", [cond("x", 1, ">", 0)])})
    smoke = {"asserts_claims": False}
    assert rules.evaluate(smoke, "test_a").value is Verdict.NOT_ASSERTED
    assert rules.evaluate(smoke, "test_s").value is Verdict.REPLICATES  # sanity is asserted at every budget
    assert [c["test"] for c in rules.sort([{"test": "test_s"}, {"test": "test_a"}])] == ["test_a", "test_s"]


# -- the registry is the one source ----------------------------------------------------------------

def test_every_registered_experiment_is_complete():
    for exp in registry.all_experiments():
        assert exp.claims.order, exp.id
        assert callable(exp.measure) and exp.report.intro and exp.report.section
        for need in exp.needs:
            assert need.experiment in registry.EXPERIMENTS
            if need.attach:  # a claim need hands evidence over at evaluation; a measurement need has no hook
                assert callable(exp.attach(need)) and need.claims
            assert set(need.claims) <= set(exp.claims.order)
        test_file = ROOT / "tests" / "claims" / f"test_{exp.id}.py"
        assert test_file.is_file(), f"{exp.id} has no claim test file"
        # an experiment's claim tests may be spread over test_<id>.py and test_<id>_<part>.py
        text = "".join(f.read_text() for f in sorted(test_file.parent.glob(f"test_{exp.id}_*.py")) + [test_file])
        for name in exp.claims.order:
            assert f"def {name}(" in text, f"{exp.id}: {name} has no test"


def test_pytest_ini_registers_the_registry_markers():
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    lines = [l.strip() for l in ini["pytest"]["markers"].strip().splitlines()]
    declared = dict(l.split(": ", 1) for l in lines)
    assert declared == registry.markers()


def test_unknown_experiment_is_one_sentence():
    from semphase.errors import SemphaseError

    with pytest.raises(SemphaseError, match="unknown experiment 'exp99'.*exp10"):
        registry.get("exp99")


def test_cli_and_pytest_list_every_registered_experiment():
    run_help = subprocess.run([sys.executable, "-m", "semphase", "run", "--help"], capture_output=True, text=True,
                              cwd=ROOT, timeout=120).stdout
    markers = subprocess.run([sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
    for exp in registry.all_experiments():
        assert exp.id in run_help
        assert f"@pytest.mark.{exp.id}:" in markers


# -- the summary -----------------------------------------------------------------------------------

def test_summary_lists_every_claim_of_every_record(tmp_path):
    from semphase.report import OutputLayout, render_summary, write_json

    layout = OutputLayout.make(tmp_path)
    layout.ensure_writable()
    claims = [ClaimResult("C2", "test_c2_fan_ordering_beats_shuffled_sense_null", "H", "s",
                          [cond("mean τ", 0.7, ">", 0.2, interval=(0.1, 0.8))]).to_json()]
    write_json(layout.data / "exp1_m.json", {"evidence": {"experiment": "exp1", "model": "m", "tag": "m"},
                                             "claims": claims})
    text = render_summary(layout)
    assert "| C2 | exp1 | `test_c2_fan_ordering_beats_shuffled_sense_null` |" in text
    assert "inconclusive" in text and "(exp1_results.md#m)" in text
    assert "folders of their own" not in text


def test_summary_lists_the_measured_rows_of_runs_in_folders_of_their_own(tmp_path):
    """A run of some parts kept in a folder beside data/ (results/NAME/ for the default layout) has
    its measured rows in the summary, linked to its own report, outside the totals; its skips not."""
    from semphase.report import OutputLayout, render_summary, write_json

    layout = OutputLayout.make(None, tmp_path)
    layout.ensure_writable()
    write_json(layout.data / "exp1_m.json", {"evidence": {"experiment": "exp1", "model": "m", "tag": "m"}, "claims": [
        ClaimResult("C2", "test_c2_fan_ordering_beats_shuffled_sense_null", "H", "s",
                    [cond("mean τ", 0.7, ">", 0.2)]).to_json()]})
    sub = OutputLayout.make(tmp_path / "results" / "parts-cpu")
    sub.ensure_writable()
    write_json(sub.data / "exp1_m.json", {"evidence": {"experiment": "exp1", "model": "m", "tag": "m"}, "claims": [
        ClaimResult("C3", "test_c3_last_block_jump_beats_random_direction_null", "H", "s",
                    [cond("fraction", 0.1, ">=", 0.6)]).to_json(),
        ClaimResult("C1", "test_c1_context_after_target_has_no_effect", "H", "s", []).skip("needs part z").to_json()]})
    text = render_summary(layout)
    main, own = text.split("## Runs in folders of their own")
    assert "Totals: 1 replicates." in main and "test_c3" not in main
    assert "| C3 | exp1 | `test_c3_last_block_jump_beats_random_direction_null` |" in own
    assert "does NOT replicate" in own and "(../results/parts-cpu/reports/exp1_results.md#m)" in own
    assert "test_c1" not in own


# -- pytest: an inconclusive claim is its own outcome ------------------------------------------------

def test_inconclusive_claim_has_its_own_outcome_in_pytest(tmp_path):
    tests = tmp_path / "test_outcomes.py"
    tests.write_text(textwrap.dedent("""
        import pytest
        from semphase.claims import ClaimResult, cond
        from semphase.pytest_plugin import assert_claim

        def _check(record_claim, interval, value=1.0):
            r = ClaimResult("C0", "test_x", "H", "a claim", [cond("x", value, ">", 0.0, interval=interval)])
            record_claim("exp10", {"model": "m"}, r)
            assert_claim(r)

        def test_decided(record_claim):
            _check(record_claim, (0.5, 2.0))

        def test_straddles(record_claim):
            _check(record_claim, (-1.0, 2.0))

        def test_refuted(record_claim):
            _check(record_claim, (-2.0, -0.5), value=-1.0)
    """))
    res = subprocess.run([sys.executable, "-m", "pytest", str(tests), "-v", "-p", "no:cacheprovider", "--no-report",
                          "-c", "/dev/null", "--rootdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = res.stdout
    assert res.returncode == 1, out[-3000:]  # the refuted claim fails the run; the inconclusive one does not
    assert "test_straddles INCONCLUSIVE" in out
    assert "test_refuted FAILED" in out and "test_decided PASSED" in out
    assert "1 failed, 1 passed, 1 inconclusive" in out.splitlines()[-1]
