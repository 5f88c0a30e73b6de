"""The semphase pytest plugin (registered through the ``pytest11`` entry point): wiring only.

It adds the options (``--model`` and ``--device`` repeatable, ``--budget``, ``--data-dir``,
``--output-dir`` ...) and one marker per registered experiment, parametrizes every test that
asks for ``model_name`` / ``device_name``, keeps each model's tests on one xdist worker
(``xdist_group``; ``--dist loadgroup`` is set in pytest.ini), and hands everything else to a
:class:`semphase.session.Session` (one per process): loading models, measuring evidence once,
evaluating claims. A claim test reads::

    EXPERIMENT = "exp10"

    def test_c17_importance_concentrated_in_layer0(check_claim):
        check_claim()

``check_claim`` evaluates the registry's rule of the same name on the evidence of this model,
records the result for the report, skips with the reason where the rule does not apply, marks
an *inconclusive* claim as such (outcome ``INCONCLUSIVE``, letter ``I``, its own count in the
summary line; it does not fail the run) and otherwise asserts every condition.

Records travel to the controller in the test reports' ``user_properties`` (xdist carries them);
the controller alone hands them to the report builder at the end of the session. Workers never
write report files.
"""
from __future__ import annotations

import json
import math
import os

import pytest

from .errors import DeviceUnavailable, ModelUnavailable, NoMeasurableWords, SemphaseError

PROPERTY = "semphase_record"
VERDICT_PROPERTY = "semphase_verdict"
INCONCLUSIVE = "inconclusive"


def pytest_addoption(parser):
    from .options import add_to_pytest

    add_to_pytest(parser.getgroup("semphase", "semphase: models, devices, budgets and reports (the same options as "
                                              "`python -m semphase run`)"))


def _settings(config):
    from .options import DEFAULT_MODEL
    from .session import Settings

    opt = config.option
    return Settings(
        models=tuple(opt.semphase_models or [DEFAULT_MODEL]), devices=tuple(opt.semphase_devices or ["auto"]),
        budget=opt.semphase_budget, tokens=opt.semphase_tokens, ctx=opt.semphase_ctx,
        eval_tokens=opt.semphase_eval_tokens, replace_layers=opt.semphase_replace_layers,
        data_dir=opt.semphase_data_dir, text_file=opt.semphase_text_file, split=opt.semphase_split, output_dir=opt.semphase_output_dir,
        cache_dir=opt.semphase_cache_dir, no_cache=opt.semphase_no_cache, seed=opt.semphase_seed,
        head_batch=opt.semphase_head_batch, no_report=opt.semphase_no_report, rootdir=str(config.rootpath),
        stimuli=opt.semphase_stimuli, claims_file=opt.semphase_claims_file, processing=opt.semphase_processing,
        dtype=opt.semphase_dtype, revision=opt.semphase_revision,
        # progress bars with an ETA for the long sweeps when output is not captured (-s), on the controller or
        # a single process (xdist workers' stderr does not reach the terminal)
        progress=getattr(opt, "capture", "fd") == "no" and not hasattr(config, "workerinput"),
    )


def _worker_index(config) -> int | None:
    wid = getattr(config, "workerinput", {}).get("workerid")
    if wid and wid.startswith("gw"):
        return int(wid[2:])
    return None


def pytest_configure(config):
    from . import registry
    from .session import Session

    for name, text in registry.markers().items():
        config.addinivalue_line("markers", f"{name}: {text}")
    session = Session(_settings(config), _worker_index(config))
    config._semphase_session = session
    config._semphase_records = {}
    config._semphase_skips = {}
    config._semphase_written = []
    try:  # bad options are usage errors before anything runs: one sentence each
        session.check_options(write=bool(session.settings.output_dir) and not hasattr(config, "workerinput"))
        session.user_claims()  # a bad --claims file too
    except SemphaseError as exc:
        raise pytest.UsageError(f"semphase: {exc}") from None
    from . import cores

    if hasattr(config, "workerinput"):
        _share_cpu_threads(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        # counted by any semphase run beside this pytest, but keeping the workers' fixed split of the cores (their
        # threads changing as test subprocesses come and go may have cost CI time: 985 s against 826 s)
        cores.join(apply=False, passive=True)
    elif not config.getoption("numprocesses", None):
        cores.join()  # a single pytest process measures: it shares the cores with other semphase runs


def _share_cpu_threads(n_workers: int) -> None:
    """Give each xdist worker its share of the CPU cores for torch's intra-op threads: with the
    default (every core per process) n workers oversubscribe the cores n times, which made
    ``-n 2`` on two cores twice as slow as ``-n 0`` (measured with ``bench workers``)."""
    import torch

    if n_workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A single pytest process starts each test with its share of the cores (semphase.cores: shared with any other
    semphase run on the machine); xdist workers keep their fixed split (cores / workers) and are only counted."""
    from . import cores

    cores.rebalance()


def pytest_generate_tests(metafunc):
    settings = metafunc.config._semphase_session.settings
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", list(settings.models), ids=[f"model={m}" for m in settings.models])
    if "device_name" in metafunc.fixturenames:
        metafunc.parametrize("device_name", list(settings.devices), ids=[f"device={d}" for d in settings.devices])
    if "user_claim_test" in metafunc.fixturenames:  # one test per claim of the --claims file
        user = metafunc.config._semphase_session.user_claims()
        if user:
            metafunc.parametrize("user_claim_test", list(user.rules), ids=list(user.rules))
        else:
            metafunc.parametrize("user_claim_test", [pytest.param(None, marks=pytest.mark.skip(
                reason="no --claims FILE given: no claims of your own to test"))], ids=["no-claims-file"])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # tryfirst: xdist turns xdist_group markers into node-id suffixes in its own hook of this
    # name; the markers must be there before it runs, or --dist loadgroup groups nothing.
    split = _split_by_experiment(config)
    for item in items:
        callspec = getattr(item, "callspec", None)
        user = config._semphase_session.user_claims() if callspec is not None and "user_claim_test" in callspec.params \
            else None
        if user is not None:  # a user's claim carries its experiment's marker (-m exp10 selects it)
            item.add_marker(getattr(pytest.mark, user.experiment))
        if callspec is not None and "model_name" in callspec.params:
            group = f"model-{callspec.params['model_name']}"
            experiment = user.experiment if user is not None else getattr(getattr(item, "module", None), "EXPERIMENT", None)
            if split and experiment:
                group += f"-{experiment}"
            item.add_marker(pytest.mark.xdist_group(name=group))


def _split_by_experiment(config) -> bool:
    """One model per worker when there are at least as many models as workers (each worker then
    loads one model and measures its evidence once); with fewer models than workers, one model's
    experiments are dealt to the workers, one experiment per group, so that the workers share the
    work. An experiment that needs another's evidence then reads it from the shared cache (the
    entry's lock makes the second worker wait for the first, never compute it twice)."""
    n_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    models = config._semphase_session.settings.models
    return n_workers > 1 and len(models) < n_workers


# -- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def semphase_session(request):
    """This process's :class:`semphase.session.Session`."""
    return request.config._semphase_session


@pytest.fixture(scope="session")
def semphase_settings(semphase_session):
    return semphase_session.settings


def get_model(request, model_name: str, device_name: str | None = None):
    """The model, loaded once per worker; a model that cannot be had here skips with why."""
    session = request.config._semphase_session
    try:
        return session.model(model_name, device_name)
    except (ModelUnavailable, DeviceUnavailable) as exc:
        request.node.user_properties.append((PROPERTY, json.dumps({"skip": {"model": model_name,
                                                                             "reason": str(exc)}})))
        pytest.skip(str(exc))


def get_evidence(session, experiment: str, lm, parts: str | None = None) -> dict:
    """An experiment's evidence through the session (``parts``: only these, as a user's claims file declares);
    a stimuli file with no measurable word skips the test with its one sentence, any other user-caused error
    fails it in one sentence."""
    from .registry import Need

    try:
        if parts:
            return session.evidence(experiment, lm, Need(experiment, parts=parts))
        return session.evidence(experiment, lm)
    except NoMeasurableWords as exc:
        pytest.skip(f"semphase: {exc}")
    except SemphaseError as exc:
        pytest.fail(f"semphase: {exc}", pytrace=False)


@pytest.fixture
def lm(request, model_name, device_name):
    """The model under test, loaded once per worker."""
    return get_model(request, model_name, device_name)


@pytest.fixture
def evidence_store(semphase_session):
    return semphase_session.store


@pytest.fixture
def evidence(request, lm, semphase_session):
    """The evidence of the test module's ``EXPERIMENT`` for this model: measured once per worker."""
    return get_evidence(semphase_session, request.module.EXPERIMENT, lm)


@pytest.fixture
def check_claim(request, lm, semphase_session, record_claim):
    """``check_claim()``: evaluate, record and assert the claim test named after the calling test,
    of the module's ``EXPERIMENT``, on this model's evidence."""

    def run() -> None:
        experiment = request.module.EXPERIMENT
        evidence = get_evidence(semphase_session, experiment, lm)
        claim(semphase_session, record_claim, experiment, evidence, request.node.originalname, lm)

    return run


def claim(session, record_claim, experiment: str, evidence: dict, test: str, lm=None) -> None:
    """Evaluate one claim test through the session, record it for the report and assert it."""
    result = session.evaluate(experiment, evidence, test, lm)
    record_claim(experiment, evidence, result)
    assert_claim(result)


def assert_claim(result) -> None:
    """Skip with the reason where the claim does not apply; where it is not asserted (smoke)
    check that every statistic was measured; mark an inconclusive claim; otherwise assert every
    condition."""
    from .claims import Verdict

    value = result.value
    if value is Verdict.SKIPPED:
        pytest.skip(result.reason)
    if value is Verdict.NOT_ASSERTED:
        for cond in result.conditions:
            assert cond.value is not None, result.explain()
            if isinstance(cond.value, float):
                assert math.isfinite(cond.value) or math.isinf(cond.value), result.explain()
        return
    if value is Verdict.INCONCLUSIVE:
        pytest.skip(f"{INCONCLUSIVE}: an interval straddles its bound\n{result.explain()}")
    failed = [c for c in result.conditions if not c.ok]
    assert not failed, result.explain()


@pytest.fixture
def record_claim(request):
    """``record_claim(experiment, evidence, result)``: send a claim's result and its evidence
    to the report plugin (through user_properties, so xdist carries it)."""

    def record(experiment: str, evidence: dict, result) -> None:
        payload = {"experiment": experiment, "model": evidence["model"], "evidence": evidence,
                   "claim": result.to_json()}
        request.node.user_properties.append((PROPERTY, json.dumps(payload, allow_nan=True)))
        # the verdict alone, for JUnit XML readers (an inconclusive claim is a skip there, with this property)
        request.node.user_properties.append((VERDICT_PROPERTY, result.value.value))

    return record


@pytest.fixture(autouse=True)
def _semphase_seed(request):
    """Every test starts from the recorded seed (torch, numpy, random)."""
    from .device import seed_everything

    seed_everything(request.config._semphase_session.settings.seed)


# -- outcomes: an inconclusive claim is its own kind ------------------------------------------

def _claim_record(report) -> dict | None:
    for name, value in getattr(report, "user_properties", []):
        if name == PROPERTY:
            payload = json.loads(value)
            if "claim" in payload:
                return payload["claim"]
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report, config):
    if report.when == "call" and report.skipped:
        claim = _claim_record(report)
        if claim is not None and claim.get("verdict_value") == INCONCLUSIVE:
            return INCONCLUSIVE, "I", ("INCONCLUSIVE", {"yellow": True})
    return None


# -- controller: gather and write ------------------------------------------------------------

_CONFIG: dict = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _CONFIG["config"] = session.config


def pytest_runtest_logreport(report):
    config = _CONFIG.get("config")
    if config is None:
        return
    for name, value in getattr(report, "user_properties", []):
        if name != PROPERTY:
            continue
        payload = json.loads(value)
        if "skip" in payload:
            config._semphase_skips[payload["skip"]["model"]] = payload["skip"]["reason"]
            continue
        if report.when != "call":
            continue
        exp, model = payload["experiment"], payload["model"]
        entry = config._semphase_records.setdefault(exp, {}).setdefault(model, {"evidence": None, "claims": {}})
        entry["evidence"] = payload["evidence"]
        claim = payload["claim"]
        claim["pytest_outcome"] = report.outcome
        claim["nodeid"] = report.nodeid
        if report.outcome == "failed" and (claim["passed"] is True or not claim["asserted"]
                                           or claim.get("verdict_value") == INCONCLUSIVE):
            claim["verdict"] = "error (test failed: " + _first_line(report) + ")"
        entry["claims"][claim["test"]] = claim


def _first_line(report) -> str:
    text = str(getattr(report, "longrepr", "") or "")
    for line in text.splitlines():
        if line.startswith("E "):
            return line[2:].strip()[:120]
    return "see the test log"


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        from . import cores

        cores.leave()  # this worker's cores go to the processes still measuring (at their next look)
        return  # workers never write reports
    sess = config._semphase_session
    if sess.settings.no_report or not config._semphase_records:
        return
    try:
        sess.layout.ensure_writable()
    except SemphaseError as exc:
        config._semphase_written.append(f"(no report written: {exc})")
        return
    for exp, models in config._semphase_records.items():
        for entry in models.values():
            config._semphase_written += sess.publish(exp, entry["evidence"], list(entry["claims"].values()))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from . import registry

    records = getattr(config, "_semphase_records", {})
    skips = getattr(config, "_semphase_skips", {})
    if not records and not skips:
        return
    tr = terminalreporter
    tr.section("semphase claims")
    for exp, models in records.items():
        claims_set = registry.get(exp).claims
        for model, entry in models.items():
            ev = entry["evidence"]
            tr.write_line(f"{exp} on {model} (budget {ev.get('budget')}, {ev.get('n_tokens')} tokens):")
            for claim in claims_set.sort(list(entry["claims"].values())):
                mark = {"yellow": True} if claim.get("verdict_value") == INCONCLUSIVE else {}
                tr.write_line(f"  {claim['claim']:>3} {claim['test']}: {claim['verdict']}", **mark)
    for model, reason in skips.items():
        tr.write_line(f"{model}: skipped: {reason}")
    written = [w for w in config._semphase_written if w.endswith(".md") or w.startswith("(")]
    for path in dict.fromkeys(written):
        tr.write_line(f"report: {path}")
