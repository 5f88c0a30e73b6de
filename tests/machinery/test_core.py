"""The experiment core: verdicts with five values, conditions with intervals, the registry as the
one source of experiments (CLI choices, pytest markers, claim order), the claims summary, and an
inconclusive claim told apart from a refuted one in pytest's outcome line and summary; the sentence
each test asserts, the condition that decided its verdict, what it says about the original's claim,
the arithmetic kind, and the tidy table of every claim row."""
from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from semphase import registry
from semphase.claims import ClaimResult, ClaimSet, Condition, Verdict, check, cond, deciding_index, rule

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
    """A run kept in a folder beside data/ (results/NAME/ for the default layout) has its measured
    rows in the summary's protocol variants, linked to its own report, outside the totals; its skips
    not; a row whose claim test, model and protocol the main table already holds is left out and
    counted, and a claim decided only in the variant says so in a sentence."""
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
        ClaimResult("C1", "test_c1_context_after_target_has_no_effect", "H", "s", []).skip("needs part z").to_json(),
        ClaimResult("C2", "test_c2_fan_ordering_beats_shuffled_sense_null", "H", "s",
                    [cond("mean τ", 0.1, ">", 0.2)]).to_json()]})
    text = render_summary(layout)
    main, own = text.split("## Protocol variants")
    assert "Totals: hypothesis tests (H): 1 replicate." in main and "test_c3" not in main
    assert "| C3 | exp1 | `test_c3_last_block_jump_beats_random_direction_null` |" in own
    assert "does NOT replicate" in own and "(../results/parts-cpu/reports/exp1_results.md#m)" in own
    assert "test_c1" not in own
    assert "`test_c2" not in own and "1 measured row(s) of these folders repeat a protocol" in own


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
    res = subprocess.run([sys.executable, "-m", "pytest", str(tests), "-v", "-p", "semphase.pytest_plugin", "-p", "no:cacheprovider", "--no-report",
                          "-c", "/dev/null", "--rootdir", str(tmp_path), "--junitxml", str(tmp_path / "junit.xml")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = res.stdout
    assert res.returncode == 1, out[-3000:]  # the refuted claim fails the run; the inconclusive one does not
    assert "test_straddles INCONCLUSIVE" in out
    assert "test_refuted FAILED" in out and "test_decided PASSED" in out
    assert "1 failed, 1 passed, 1 inconclusive" in out.splitlines()[-1]
    # JUnit XML shows it as skipped (its closest outcome) with a property that says inconclusive
    import xml.etree.ElementTree as ET

    cases = {c.get("name"): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    verdict = {c: {p.get("name"): p.get("value") for p in case.iter("property")}.get("semphase_verdict")
               for c, case in cases.items()}
    assert verdict == {"test_decided": "replicates", "test_straddles": "inconclusive",
                       "test_refuted": "does NOT replicate"}, verdict


# -- the deciding condition --------------------------------------------------------------------------

def _result(*conditions, kind="H", original="same") -> ClaimResult:
    return ClaimResult("C0", "test_c0", kind, "a claim", list(conditions), asserts="x holds", original=original)


def test_deciding_is_the_first_decided_failure_even_after_an_inconclusive_one():
    r = _result(cond("wide", 1.0, ">", 0.0, interval=(-1.0, 2.0)), cond("ok", 5.0, ">", 0.0),
                cond("fails", -1.0, ">", 0.0), cond("fails too", -2.0, ">", 0.0))
    assert r.value is Verdict.REFUTED and r.deciding() == 2
    assert r.to_json()["deciding"] == 2


def test_deciding_is_the_first_inconclusive_condition_when_none_fails():
    r = _result(cond("ok", 5.0, ">", 0.0), cond("wide", 1.0, ">", 0.0, interval=(-1.0, 2.0)),
                cond("wider", 1.0, ">", 0.0, interval=(-5.0, 5.0)))
    assert r.value is Verdict.INCONCLUSIVE and r.deciding() == 1


def test_deciding_is_the_condition_closest_to_its_bound_when_all_hold():
    # relative margins: far 0.9 (value 10 vs 1); near-by-interval: the interval's low end 1.1 against 1.0 is
    # closer (0.09) than its value 3.0 would say; a text check and an equality rank after every numeric one
    r = _result(check("a compound check", True, "yes", "==", "yes"), cond("far", 10.0, ">", 1.0),
                cond("near by its interval", 3.0, ">", 1.0, interval=(1.1, 4.0)), cond("count", 7, "==", 7),
                cond("middle", 2.0, ">", 1.0))
    assert r.value is Verdict.REPLICATES and r.deciding() == 2
    # without the interval the same value is far from its bound
    r.conditions[2] = cond("no interval", 3.0, ">", 1.0)
    assert r.deciding() == 4
    # "within": the unused share of the tolerance
    r = _result(cond("centred", 0.5, "within", (0.5, 0.1)), cond("edge", 0.59, "within", (0.5, 0.1)),
                cond("far", 100.0, "<", 1000.0))
    assert r.deciding() == 1
    # only non-numeric conditions: the first
    assert _result(check("a", True, "yes", "==", "yes"), cond("n", 3, "==", 3)).deciding() == 0
    assert _result().deciding() is None


def test_deciding_works_on_records_stored_before_it_existed():
    """Old records have no ``deciding`` and (older still) no ``status``: computed from the conditions."""
    from semphase.report import deciding_text, key_numbers

    old = {"claim": "C0", "test": "test_c0", "kind": "H", "statement": "s", "applicable": True, "asserted": True,
           "verdict": "does NOT replicate", "verdict_value": "does NOT replicate", "reason": "",
           "conditions": [{"name": "ok", "value": 2.0, "op": ">", "target": 1.0, "ok": True, "interval": None,
                           "unit": None, "inconclusive": False},
                          {"name": "fails", "value": 0.5, "op": ">", "target": 1.0, "ok": False, "interval": [0.2, 0.7],
                           "unit": "chunks", "inconclusive": False}]}
    assert deciding_index(old["conditions"]) == 1
    assert deciding_text(old) == "fails = 0.5 [0.2, 0.7] (needs > 1)"
    assert key_numbers(old, 1) == deciding_text(old)
    done = ClaimSet({}).complete(old)
    assert done["deciding"] == 1 and "deciding" not in old  # a copy
    held = dict(old, conditions=[dict(old["conditions"][0], value=1.05), dict(old["conditions"][0], name="far", value=9.0)])
    assert deciding_index(held["conditions"]) == 0


# -- what a result says about the original's claim ----------------------------------------------------

@pytest.mark.parametrize("kind, original, conditions, expected", [
    ("H", "same", [("x", 1.0, ">", 0.0, None)], "supported"),
    ("H", "same", [("x", -1.0, ">", 0.0, None)], "contradicted"),
    ("H", "opposite", [("x", 1.0, ">", 0.0, None)], "contradicted"),
    ("H", "opposite", [("x", -1.0, ">", 0.0, None)], "supported"),
    ("H", "same", [("x", 1.0, ">", 0.0, (-1.0, 2.0))], "undecided"),
    ("H", "opposite", [("x", 1.0, ">", 0.0, (-1.0, 2.0))], "undecided"),
    ("A", "opposite", [("x", 1.0, ">", 0.0, None)], "contradicted"),
    ("A", "same", [("x", 1.0, ">", 0.0, None)], "supported"),
    ("S", None, [("x", 1.0, ">", 0.0, None)], "n/a"),
    ("R", "same", [("x", 1.0, ">", 0.0, None)], "number reproduced"),
    ("R", "same", [("x", -1.0, ">", 0.0, None)], "undecided"),
])
def test_original_verdict_both_polarities(kind, original, conditions, expected):
    r = _result(*[cond(n, v, op, t, interval=ci) for n, v, op, t, ci in conditions], kind=kind, original=original)
    assert r.original_verdict() == expected
    assert r.to_json()["original_verdict"] == expected


def test_original_verdict_is_undecided_when_skipped_or_not_asserted_and_a_rule_may_override_it():
    r = _result(cond("x", 1.0, ">", 0.0))
    assert r.original_verdict() == "supported"
    r.asserted = False
    assert r.original_verdict() == "undecided"
    r.asserted = True
    r.skip("needs part z")
    assert r.original_verdict() == "undecided"
    r = _result(cond("x", -1.0, ">", 0.0), original="opposite")
    assert r.original_verdict() == "supported"
    r.original_override, r.original_reason = "undecided", "g is not an erf here"
    j = r.to_json()
    assert j["original_verdict"] == "undecided" and j["original_reason"] == "g is not an erf here"
    assert j["verdict"] == "does NOT replicate"  # the verdict itself is unchanged


def test_rule_declares_the_sentence_and_polarity_and_the_set_the_original_claim():
    @rule("C0", "test_c0_x", "H", "the full rule", asserts="x is positive", original="opposite")
    def body(ev, r):
        r.conditions.append(cond("x", ev["x"], ">", 0))

    claims = ClaimSet([body], original_claims={"C0": "x is negative"})
    j = claims.evaluate({"x": 2.0}, "test_c0_x").to_json()
    assert (j["asserts"], j["original"], j["original_claim"]) == ("x is positive", "opposite", "x is negative")
    assert j["verdict"] == "replicates" and j["original_verdict"] == "contradicted"
    for bad in ({"kind": "Q"}, {"original": "maybe"}, {"kind": "S", "original": "same"}):
        args = {"kind": "H", "original": "same", **bad}
        with pytest.raises(ValueError):
            rule("C0", "test_c0_bad", args["kind"], "s", asserts="a", original=args["original"])


def test_every_registered_rule_declares_its_sentence_polarity_and_original_claim():
    for exp in registry.all_experiments():
        for test in exp.claims.order:
            f = exp.claims.rule(test)
            assert f.asserts and len(f.asserts) < 200, f"{exp.id}: {test} declares no short sentence (asserts=...)"
            assert "\n" not in f.asserts
            if f.kind == "S":
                assert f.original is None, test
            else:
                assert f.original in ("same", "opposite"), f"{exp.id}: {test} declares no polarity (original=...)"
                assert exp.claims.original_claims.get(f.claim), f"{exp.id}: no ORIGINAL_CLAIMS entry for {f.claim}"


# -- arithmetic ---------------------------------------------------------------------------------------

def test_arithmetic_kind_has_its_own_words_and_is_counted_apart(tmp_path):
    from semphase.report import OutputLayout, render_summary, write_json

    r = _result(cond("x", 1, "<", 5), kind="A")
    assert r.verdict() == "holds (arithmetic)" and r.value is Verdict.REPLICATES
    r.conditions = [cond("x", 9, "<", 5)]
    assert r.verdict() == "fails (arithmetic)"
    assert ClaimSet({"t": lambda ev: _result(cond("x", 1, "<", 5), kind="A")}).evaluate(
        {"asserts_claims": False}, "t").value is Verdict.NOT_ASSERTED  # like H: not asserted at smoke
    # the arithmetic rows of exp10 are declared A
    exp10 = registry.get("exp10").claims
    for test in ("test_c25_reproduce_flop_arithmetic", "test_c25_whole_model_saving_below_5pct",
                 "test_c29_reproduce_equal_flop_arithmetic", "test_c29_whole_model_extra_tokens_below_one"):
        assert exp10.rule(test).kind == "A", test
    # the totals count H, R, A and S apart
    from semphase.report import totals

    rows = [{"kind": k, "verdict": v, "verdict_value": vv, "original_verdict": o} for k, v, vv, o in (
        ("H", "replicates", "replicates", "supported"), ("H", "does NOT replicate", "does NOT replicate", "supported"),
        ("H", "inconclusive", "inconclusive", "undecided"), ("A", "holds (arithmetic)", "replicates", "contradicted"),
        ("A", "holds (arithmetic)", "replicates", "supported"), ("R", "skipped", "skipped", "undecided"),
        ("S", "sane", "replicates", "n/a"), ("H", "error (test failed: boom)", "replicates", "supported"))]
    assert totals(rows) == ("Totals: hypothesis tests (H): 1 replicate, 1 do NOT replicate, 1 inconclusive, 1 error; "
                            "reproduction tests (R): 1 skipped; arithmetic (A): 2 hold; sanity checks (S): 1 sane. "
                            "The original's claims, by the hypothesis and arithmetic tests: 4 supported, "
                            "1 contradicted, 1 undecided.")
    # in the summary, an arithmetic row is counted as arithmetic, not as a replication
    layout = OutputLayout.make(tmp_path)
    layout.ensure_writable()
    claims = [ClaimResult("C29", "test_c29_whole_model_extra_tokens_below_one", "A", "s", [cond("x", 0.3, "<", 1)]),
              ClaimResult("C18", "test_c18_heldout_removable_below_30pct", "H", "s", [cond("n", 20, "<", 81)])]
    write_json(layout.data / "exp10_m.json", {"evidence": {"experiment": "exp10", "model": "m", "tag": "m"},
                                              "claims": [c.to_json() for c in claims]})
    text = render_summary(layout)
    assert "Totals: hypothesis tests (H): 1 replicate; arithmetic (A): 1 hold." in text
    assert "| holds (arithmetic) | x = 0.3 (needs < 1) | supported |" in text
    assert "| replicates | n = 20 (needs < 81) | contradicted |" in text  # C18's sceptical assertion held


def test_a_stored_record_is_completed_from_the_current_declarations_without_reevaluation():
    """A record stored as H before the kind A existed reads as A, with the current sentence and the
    original's claim; its verdict value and conditions are the stored ones."""
    exp10 = registry.get("exp10").claims
    stored = ClaimResult("C29", "test_c29_whole_model_extra_tokens_below_one", "H", "old statement",
                         [cond("extra tokens", 0.3, "<", 1.0)]).to_json()
    for key in ("asserts", "original", "original_claim", "original_override", "original_reason", "deciding",
                "original_verdict"):
        stored.pop(key)
    done = exp10.complete(stored)
    assert done["kind"] == "A" and done["verdict"] == "holds (arithmetic)" and done["verdict_value"] == "replicates"
    assert done["asserts"] == exp10.rule("test_c29_whole_model_extra_tokens_below_one").asserts
    assert done["original_claim"] == exp10.original_claims["C29"] and done["original_verdict"] == "supported"
    assert done["statement"] == "old statement" and done["deciding"] == 0


# -- C16's rows across models, listed per model ---------------------------------------------------------

def test_a_per_model_exp9_record_lists_the_cross_model_and_device_tests_as_skipped():
    exp9 = registry.get("exp9").claims
    ev = {"model": "m", "missing_reason": "exp8 measured nothing here", "row": {}}
    assert [r.test for r in exp9.evaluate_all(ev)] == ["test_exp9_evidence_sane", "test_c16_reproduce_delta_bic"]
    results = {r.test: r for r in exp9.skipped_extra(ev)}
    for test, why in (("test_c16_sigma_converges_to_inverse_sqrt_pi", "needs two or more --model"),
                      ("test_c16_theta_grows_with_depth", "needs two or more --model"),
                      ("test_device_consistency", "needs an accelerator: --device cuda beside cpu")):
        assert results[test].value is Verdict.SKIPPED and results[test].reason.startswith(why), test
        assert results[test].asserts and results[test].original_claim
    # derived evidence evaluates its own rules and lists nothing extra
    cross = {"kind": "cross-model", "rows": []}
    assert [r.test for r in exp9.evaluate_all(cross)] == ["test_c16_sigma_converges_to_inverse_sqrt_pi",
                                                          "test_c16_theta_grows_with_depth"]
    assert exp9.skipped_extra(cross) == []


def test_published_and_rendered_per_model_records_list_the_extra_rules_as_skipped(tmp_path):
    """``publish`` stores them; a record stored before (without them) shows them when rendered."""
    from semphase.report import OutputLayout, load_records, publish, record_claims

    exp = registry.get("exp9")
    layout = OutputLayout.make(tmp_path)
    layout.ensure_writable()
    ev = {"experiment": "exp9", "model": "m", "tag": "m", "missing_reason": "nothing measured", "row": {}}
    old = [r.to_json() for r in exp.claims.evaluate_all(ev)]
    rec = {"evidence": ev, "claims": old}
    shown = [c["test"] for c in record_claims(exp, rec)]
    assert shown == exp.claims.order
    publish(exp, layout, ev, old)
    stored = load_records(layout, "exp9")[0]["claims"]
    assert [c["test"] for c in stored] == exp.claims.order
    assert [c["verdict"] for c in stored[2:]] == ["skipped"] * 3


# -- the tidy table -----------------------------------------------------------------------------------

def test_tidy_table_round_trips_through_csv_and_jsonl(tmp_path):
    pd = pytest.importorskip("pandas")
    import csv
    import json

    from semphase.report import TIDY_COLUMNS, OutputLayout, write_json, write_summary

    layout = OutputLayout.make(None, tmp_path)
    layout.ensure_writable()
    claims = [ClaimResult("C2", "test_c2_fan_ordering_beats_shuffled_sense_null", "H", "s",
                          [cond("mean τ", 0.7, ">", 0.2, interval=(0.1, 0.8), unit="words"),
                           cond("a, \"quoted\" name | with a bar", 1.5, ">", 1.0)], asserts="τ, \"quoted\", ok",
                          original="same").to_json(),
              ClaimResult("C1", "test_c1_context_after_target_has_no_effect", "H", "s", []).skip("needs z").to_json()]
    write_json(layout.data / "exp1_m.json", {"evidence": {"experiment": "exp1", "model": "m", "tag": "m",
                                                          "budget": "quick"}, "claims": claims})
    sub = OutputLayout.make(tmp_path / "results" / "parts-cpu")
    sub.ensure_writable()
    write_json(sub.data / "exp1_m.json", {"evidence": {"experiment": "exp1", "model": "m", "tag": "m"}, "claims": [
        ClaimResult("C3", "test_c3_last_block_jump_beats_random_direction_null", "H", "s",
                    [cond("fraction", 0.1, ">=", 0.6)]).to_json()]})
    write_summary(layout)
    frame = pd.read_csv(layout.reports / "claims.csv")
    lines = pd.read_json(layout.reports / "claims.jsonl", lines=True)
    assert list(frame.columns) == TIDY_COLUMNS and list(lines.columns) == TIDY_COLUMNS
    assert len(frame) == len(lines) == 3  # the skipped row and the other folder's row included
    row = frame[frame.test == "test_c2_fan_ordering_beats_shuffled_sense_null"].iloc[0]
    assert row.verdict == "inconclusive" and row.deciding_name == "mean τ" and row.deciding_value == 0.7
    assert (row.deciding_low, row.deciding_high, row.deciding_unit) == (0.1, 0.8, "words")
    assert row.asserts == "τ, \"quoted\", ok" and row.original_verdict == "undecided" and row.folder == "results"
    assert row.report == "exp1_results.md#m" and row.data_file == "../results/data/exp1_m.json"
    other = frame[frame.folder == "results/parts-cpu"].iloc[0]
    assert other.verdict == "does NOT replicate" and other.original_verdict == "contradicted"
    assert other.report == "../results/parts-cpu/reports/exp1_results.md#m"
    skipped = frame[frame.verdict == "skipped"].iloc[0]
    assert pd.isna(skipped.deciding_name) and skipped.test == "test_c1_context_after_target_has_no_effect"
    # the two files hold the same rows (the CSV read back with the csv module, text for text)
    with open(layout.reports / "claims.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    jl = [json.loads(l) for l in (layout.reports / "claims.jsonl").read_text(encoding="utf-8").splitlines()]
    for a, b in zip(rows, jl):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == ("" if b[k] is None else repr(b[k]) if isinstance(b[k], float) else str(b[k])), k


def test_installing_semphase_leaves_other_projects_pytest_alone(tmp_path):
    """The plugin is opt-in (``-p semphase.pytest_plugin``, which this repository's pytest.ini sets):
    another project's pytest keeps its own ``--device`` option, gets no semphase option and no
    reseeding fixture."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        def pytest_addoption(parser):
            parser.addoption("--device", default="theirs")
    """))
    (tmp_path / "test_theirs.py").write_text(textwrap.dedent("""
        import random
        def test_own_option(request):
            assert request.config.getoption("--device") == "mine"
            assert not request.config.pluginmanager.has_plugin("semphase.pytest_plugin")
    """))
    res = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider", "-c", "/dev/null",
                          "--rootdir", str(tmp_path), "--device", "mine"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    res = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "-q", "-p", "no:cacheprovider", "-c", "/dev/null",
                          "--rootdir", str(tmp_path), "--budget", "smoke"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 4 and "--budget" in res.stderr  # not an option there


def test_summary_sets_each_model_beside_its_untrained_twin():
    """Where a model and its twin (random:NAME) were both measured, each claim test gets both
    verdicts and "needs training?"; a claim that holds on the twin gets its sentence."""
    from semphase.report import needs_training, twin_lines

    def row(test, model, verdict):
        return {"claim": "C1", "test": test, "model": model, "kind": "H", "verdict": verdict, "verdict_value": verdict,
                "deciding": "x = 1"}

    rows = [row("t_a", "m", "replicates"), row("t_b", "m", "replicates"), row("t_c", "m", "inconclusive"),
            row("t_a", "random:m", "does NOT replicate"), row("t_b", "random:m", "replicates"),
            row("t_c", "random:m", "replicates")]
    text = "\n".join(twin_lines(rows))
    assert "## m against its untrained twin" in text
    assert "| C1 | `t_a` | replicates | does NOT replicate | yes |" in text
    assert "| C1 | `t_b` | replicates | replicates | no: architectural |" in text
    assert "| C1 | `t_c` | inconclusive | replicates | undecided |" in text
    assert "`t_b` holds on the untrained twin too" in text
    assert twin_lines([r for r in rows if r["model"] == "m"]) == []
    assert needs_training("does NOT replicate", "replicates") == "no: training removes it"


def test_an_experiment_report_sets_each_model_beside_its_untrained_twin(tmp_path):
    """An experiment's report, like the summary, has the twin table when a model and its twin were both measured
    (one row per hypothesis or arithmetic test), and none with the trained model alone."""
    from semphase.report import OutputLayout, load_records, publish, record_claims

    exp = registry.get("exp9")
    layout = OutputLayout.make(tmp_path)
    layout.ensure_writable()
    for model in ("m", "random:m"):
        ev = {"experiment": "exp9", "model": model, "tag": model.replace(":", "_"), "missing_reason": "nothing", "row": {}}
        publish(exp, layout, ev, [r.to_json() for r in exp.claims.evaluate_all(ev)])
        text = (layout.reports / "exp9_results.md").read_text()
        assert ("## m against its untrained twin" in text) == (model != "m")
    table = text.split("## m against its untrained twin", 1)[1].split("\n\n## ", 1)[0]
    n_tests = sum(1 for c in record_claims(exp, load_records(layout, "exp9")[0]) if c["kind"] in ("H", "A"))
    assert n_tests and sum(1 for line in table.splitlines() if line.startswith("| C")) == n_tests


def test_claims_meaningless_on_an_untrained_twin_skip_with_the_reason():
    """On a twin's evidence (model random:NAME) the stimuli claims and C27/C28 skip with why; the
    sanity checks still run; on the trained model nothing changes."""
    from semphase import registry

    exp1 = registry.get("exp1").claims
    test = next(t for t in exp1.order if exp1.rule(t).kind == "H")
    r = exp1.evaluate({"model": "random:m", "asserts_claims": True}, test)
    assert r.value.value == "skipped" and "untrained" in r.reason
    assert exp1.untrained_reason({"model": "m"}, test) is None
    sanity = next(t for t in exp1.order if exp1.rule(t).kind == "S")
    assert exp1.untrained_reason({"model": "random:m"}, sanity) is None
    exp10 = registry.get("exp10").claims
    assert exp10.untrained_reason({"model": "random:m"}, "test_c27_best_of_n_at_equal_compute")
    assert exp10.untrained_reason({"model": "random:m"}, "test_c17_importance_concentrated_in_layer0") is None
