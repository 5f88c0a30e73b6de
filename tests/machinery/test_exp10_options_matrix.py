"""Every exp10 part, asked for with each option that shapes it, either produces its evidence with the option in
effect or is refused in one sentence before anything is measured: no option is silently dropped."""
import pytest

from semphase import cli, registry
from semphase.errors import SemphaseError

pytestmark = pytest.mark.machinery

# What each part leaves in the evidence.
PRODUCES = {
    "a": lambda ev: "zero" in ev, "b": lambda ev: "stats" in ev, "c": lambda ev: "zero_all" in ev["curves"],
    "d": lambda ev: "layer" in ev, "e": lambda ev: "mean" in ev, "f": lambda ev: "mean_l0p" in ev["curves"],
    "g": lambda ev: "zero_l0p" in ev["curves"], "h": lambda ev: "harmful" in ev, "i": lambda ev: "linear" in ev,
    "j": lambda ev: "best" in ev.get("linear", {}), "k": lambda ev: "linear_l0p" in ev["curves"],
    "l": lambda ev: "flops" in ev, "v": lambda ev: "validation" in ev, "p": lambda ev: "recovery" in ev,
}
OPTIONS = {
    "none": ((), lambda ev: True),
    "layers": (("--layers", "0,2"), lambda ev: ev["layers"] == [0, 2] and not ev["all_layers"]),
    "replace-layers": (("--replace-layers", "1"), lambda ev: len(ev["linear"]["layers"]) == 1),
    "head-batch": (("--head-batch", "3"), lambda ev: ev["head_batch"] == 3),
}


def test_every_part_is_listed():
    assert set(PRODUCES) == set(registry.get("exp10").parts)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("matrix-cache")  # shared: each run reads what an earlier one measured


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("part", list(PRODUCES))
def test_part_with_option_acts_or_is_refused(part, option, tiny_llama, tiny_text, cache, tmp_path):
    flags, took_effect = OPTIONS[option]
    args = cli.build_parser().parse_args([
        "run", "exp10", "--model", str(tiny_llama), "--text-file", str(tiny_text), "--budget", "smoke", "--quiet",
        "--parts", part, "--output-dir", str(tmp_path / "out"), "--cache-dir", str(cache), *flags])
    try:
        session, _ = cli.prepare_run(args)
    except SemphaseError as exc:
        assert flags and flags[0] in str(exc), str(exc)  # refused, naming the option
        return
    ev = session.evidence("exp10", session.model(str(tiny_llama)))
    assert part in ev["parts"] and PRODUCES[part](ev), f"part {part} with {flags}: no evidence"
    assert took_effect(ev), f"part {part}: {flags} did not act"


@pytest.mark.parametrize("experiments", [["exp10"], ["all"]])
def test_budget_without_phases23_refuses_their_options(experiments, tiny_llama, tiny_text, tmp_path):
    """--budget brief measures no phase 2-3 part unless --parts asks: --replace-layers is refused there, naming the
    budget, and accepted once --parts asks for part i."""
    def prepare(*extra):
        return cli.prepare_run(cli.build_parser().parse_args([
            "run", *experiments, "--model", str(tiny_llama), "--text-file", str(tiny_text), "--budget", "brief",
            "--quiet", "--output-dir", str(tmp_path / "out"), "--replace-layers", "1", *extra]))

    with pytest.raises(SemphaseError, match=r"--replace-layers.*--budget brief \(parts acdl\)"):
        prepare()
    if experiments == ["exp10"]:
        prepare("--parts", "i")  # asked for by hand: accepted


def test_pytest_options_refuse_replace_layers_at_a_budget_without_phases23():
    """The pytest options (every part the budget measures, no --parts) refuse --replace-layers at --budget brief
    with the same sentence as the command line, and take it at quick."""
    from semphase.session import Session, Settings

    with pytest.raises(SemphaseError, match=r"--replace-layers.*--budget brief \(parts acdl\)"):
        Session(Settings(budget="brief", replace_layers=1)).check_options(write=False, devices=False)
    Session(Settings(budget="quick", replace_layers=1)).check_options(write=False, devices=False)
