"""A researcher's own claims file (issue 25): checked without measuring, evaluated beside the
built-in claims by `run --claims`, its rows marked as the user's in the report and the summary."""
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from semphase.errors import SemphaseError

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "my_claims.py"


def test_the_example_file_checks_and_decides_on_committed_evidence():
    """The example's three claims load, and on the committed SmolLM2 exp10 evidence each is decided
    (no measuring): the records are marked as the user's with the file's sha256."""
    from semphase.user_claims import load

    user = load(str(EXAMPLE))
    assert user.experiment == "exp10" and len(user.rules) == 3
    ev = json.loads((ROOT / "results" / "data" / "exp10_smollm2-135m.json").read_text())["evidence"]
    recs = user.evaluate(ev)
    assert [r["test"] for r in recs] == list(user.rules)
    assert all(r["user"] and r["claims_sha256"] == user.sha256 and r["claims_file"] == "my_claims.py" for r in recs)
    assert recs[0]["verdict"] == "does NOT replicate"  # SmolLM2's layer-0 share is 0.08 [0.07, 0.09]
    assert all(r["verdict"] in ("replicates", "does NOT replicate", "inconclusive") for r in recs)


@pytest.mark.parametrize("body, needle", [
    ('EXPERIMENT = "exp99"\n', "not a registered experiment"),
    ('EXPERIMENT = "exp10"\n', "no @rule claim"),
    ('EXPERIMENT = "exp10"\nraise RuntimeError("oops")\n', "does not load (RuntimeError: oops)"),
    ('from semphase.claims import rule\nEXPERIMENT = "exp10"\n'
     '@rule("U1", "test_c17_importance_heavy_tailed", "H", "s", asserts="a", original=None)\ndef a(ev, r): pass\n',
     "built-in claim test"),
    ('from semphase.claims import rule\nEXPERIMENT = "exp10"\n'
     '@rule("U1", "test_u1_x", "H", "s", asserts="a", original=None)\ndef a(ev, r): pass\n'
     '@rule("U2", "test_u1_x", "H", "s", asserts="b", original=None)\ndef b(ev, r): pass\n', "declared twice"),
])
def test_bad_claims_files_are_refused_in_one_sentence(tmp_path, body, needle):
    from semphase.cli import main

    f = tmp_path / "mine.py"
    f.write_text(body)
    with pytest.raises(SemphaseError, match="mine.py"):
        from semphase.user_claims import load
        load(str(f))
    assert main(["claims", "check", str(f)]) == 2
    assert main(["claims", "check", str(tmp_path / "none.py")]) == 2
    try:
        load(str(f))
    except SemphaseError as exc:
        assert needle in str(exc)


def test_run_with_a_claims_file_outside_the_repository(tiny_llama, tiny_text, tmp_path):
    """`run exp10 --claims FILE` with the file in a temporary folder: its rows are in the data file
    (marked, with the file's sha256 in the provenance), the experiment's report and the summary;
    a file on an experiment the run does not measure is refused before measuring."""
    import subprocess
    import sys

    mine = tmp_path / "elsewhere" / "my_claims.py"
    mine.parent.mkdir()
    shutil.copy(EXAMPLE, mine)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "semphase", "run", "exp10", "--model", str(tiny_llama), "--text-file", str(tiny_text),
           "--budget", "smoke", "--tokens", "256", "--ctx", "64", "--quiet", "--output-dir", str(out),
           "--claims", str(mine)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads(next((out / "data").glob("exp10_*.json")).read_text())
    users = [c for c in rec["claims"] if c.get("user")]
    assert [c["test"] for c in users] == ["test_u1_layer0_share_above_half",
                                          "test_u2_top_head_costs_more_zeroed_than_mean_ablated",
                                          "test_u3_at_least_ten_heads_above_one_percent"]
    assert rec["evidence"]["provenance"]["claims_file"]["sha256"] == users[0]["claims_sha256"]
    assert "`test_u1_layer0_share_above_half`" in (out / "reports" / "exp10_results.md").read_text()
    assert "`test_u1_layer0_share_above_half` (yours: my_claims.py)" in (out / "reports" / "README.md").read_text()
    res = subprocess.run(cmd[:4] + ["exp7"] + cmd[5:], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 2 and "which this run does not measure" in res.stderr


def test_pytest_claims_collects_each_claim_as_a_test_and_reports_it(tiny_llama, tiny_text, tmp_path):
    """`pytest --claims FILE` (the file outside the repository) runs one test per claim on the file's
    experiment and writes their rows, marked as the user's, into the report and the summary."""
    import subprocess
    import sys

    mine = tmp_path / "elsewhere" / "my_claims.py"
    mine.parent.mkdir()
    shutil.copy(EXAMPLE, mine)
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "tests" / "claims" / "test_your_claims.py"),
                          f"--model={tiny_llama}", "--device", "cpu", "--text-file", str(tiny_text), "--budget", "smoke",
                          "--tokens", "256", "--ctx", "64", "--claims", str(mine), f"--output-dir={out}", "-n", "0",
                          "-q", "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "3 passed" in res.stdout.splitlines()[-1]
    summary = (out / "reports" / "README.md").read_text()
    assert "`test_u3_at_least_ten_heads_above_one_percent` (yours: my_claims.py)" in summary
    # only the parts the file declares (PARTS = "abe") were measured
    data = [json.loads(f.read_text())["evidence"] for f in (out / "data").glob("exp10_*.json")]
    assert data and all(ev["parts"] == "abe" for ev in data), [ev["parts"] for ev in data]


EXAMPLE_TOML = ROOT / "examples" / "my_claims.toml"


def test_the_toml_example_checks_and_follows_planted_evidence_both_ways():
    """The TOML example's claims load (fields checked against the evidence's fields, no measuring) and their
    verdicts follow planted evidence: inside the bound, outside it, and an interval straddling it."""
    import copy

    from semphase.user_claims import load

    user = load(str(EXAMPLE_TOML))
    assert user.experiment == "exp10" and list(user.rules) == ["test_u4_layer0_share_below_a_quarter",
                                                               "test_u5_top_head_costs_over_ten_percent"]
    ev = json.loads((ROOT / "results" / "data" / "exp10_smollm2-135m.json").read_text())["evidence"]
    test = "test_u4_layer0_share_below_a_quarter"
    for share, ci, verdict in ((0.1, [0.05, 0.15], "replicates"), (0.6, [0.5, 0.7], "does NOT replicate"),
                               (0.2, [0.1, 0.3], "inconclusive")):
        planted = copy.deepcopy(ev)
        planted["stats"]["layer0_share"], planted["stats"]["layer0_share_ci95"] = share, ci
        rec = user.evaluate_one(planted, test).to_json()
        assert rec["verdict"] == verdict and rec["user"] and rec["claims_file"] == "my_claims.toml", (share, rec)
    planted = copy.deepcopy(ev)
    planted["zero"]["top10"][0]["delta_ppl"] = 0.05
    assert user.evaluate_one(planted, "test_u5_top_head_costs_over_ten_percent").to_json()["verdict"] == \
        "does NOT replicate"


TOML_HEAD = 'experiment = "exp10"\n[[claim]]\nid = "U9"\ntest = "test_u9_x"\nsentence = "s"\n'


@pytest.mark.parametrize("body, needle", [
    (TOML_HEAD + 'field = "stats.layer0_shares"\nop = ">"\nbound = 0.5\n', "did you mean 'stats.layer0_share'"),
    (TOML_HEAD + 'field = "stats.layer0_share"\nop = "=>"\nbound = 0.5\n', "op = '=>'"),
    (TOML_HEAD + 'field = "stats.layer0_share"\nop = ">"\nbound = "half"\n', "not a number"),
    (TOML_HEAD + 'field = "stats.layer0_share"\nop = ">"\n', "missing bound"),
    (TOML_HEAD + 'field = "stats.layer0_share"\nop = ">"\nbound = 0.5\ninterval = "stats.nothing"\n',
     "interval 'stats.nothing'"),
    ('experiment = "exp99"\n', "not a registered experiment"),
    ('experiment = "exp10\n', "not valid TOML"),
])
def test_bad_toml_claims_are_refused_in_one_sentence(tmp_path, body, needle):
    from semphase.cli import main
    from semphase.user_claims import load

    f = tmp_path / "mine.toml"
    f.write_text(body)
    with pytest.raises(SemphaseError) as err:
        load(str(f))
    assert needle in str(err.value) and "mine.toml" in str(err.value)
    assert main(["claims", "check", str(f)]) == 2


def test_the_packaged_field_list_covers_every_fixture_field():
    """semphase/data/evidence_fields.json (regenerated by scripts/evidence_fields.py) knows every field of the
    report fixtures, so a claim on any of them is not refused as unknown."""
    from semphase.user_claims import _field_known, field_paths, known_fields

    for path in sorted((ROOT / "tests" / "snapshots" / "fixtures").glob("*.json")):
        ev = json.loads(path.read_text())["evidence"]
        known = known_fields(ev["experiment"])
        missing = [p for p in field_paths(ev) if not _field_known(p.split("."), known)]
        assert not missing, (path.name, missing[:5])
