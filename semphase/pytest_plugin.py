"""The semphase pytest plugin (registered through the ``pytest11`` entry point).

It adds the options (``--model`` repeatable, ``--device`` repeatable, ``--budget``,
``--data-dir``, ``--output-dir`` ...), parametrizes every test that asks for ``model_name`` /
``device_name`` over them, keeps each model's tests on one xdist worker
(``xdist_group``; run with ``--dist loadgroup``, which pytest.ini sets), loads each model
once per worker, and provides the evidence fixtures.

Reports: a claim test calls ``record_claim(experiment, evidence, result)``. The record
travels to the controller in the test report's ``user_properties`` (xdist carries them),
and the controller alone writes the data, figures and ``expN_results.md`` at the end of the
session. Workers never write report files.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from .errors import DeviceUnavailable, ModelUnavailable, SemphaseError

PROPERTY = "semphase_record"
MARKERS = {
    "machinery": "fast tests of the library on tiny or no models",
    "claims": "claim tests that run a real model",
    "exp10": "exp10: head ablation claims C17-C22",
    "exp1": "exp1: semantic permeation claims",
    "exp2": "exp2: Landau / two-stage claims",
    "exp3": "exp3: linear response and universal g claims",
    "slow": "needs a long run (minutes to hours)",
    "gpu": "meant for an accelerator",
    "bigmodel": "needs a large download (gpt2-medium and larger)",
}


def pytest_addoption(parser):
    group = parser.getgroup("semphase", "semphase: models, devices, budgets and reports")
    group.addoption("--model", action="append", default=None, dest="semphase_models",
                    help="model to test (repeatable; default gpt2): a registry name, hub id or folder")
    group.addoption("--device", action="append", default=None, dest="semphase_devices",
                    help="device (repeatable; default auto): auto, cpu, cuda, cuda:N, mps")
    group.addoption("--budget", default="quick", choices=["smoke", "quick", "full"], dest="semphase_budget",
                    help="smoke: a few hundred tokens, sanity only; quick: the original's 2,048 tokens; full: all")
    group.addoption("--tokens", type=int, default=None, dest="semphase_tokens", help="override the budget's tokens")
    group.addoption("--ctx", type=int, default=None, dest="semphase_ctx", help="override the budget's chunk length")
    group.addoption("--data-dir", default=None, dest="semphase_data_dir",
                    help="folder holding wikitext-2-raw/ (else $SEMPHASE_DATA_DIR, else the hub)")
    group.addoption("--text-file", default=None, dest="semphase_text_file", help="evaluate on this UTF-8 file")
    group.addoption("--output-dir", default=None, dest="semphase_output_dir",
                    help="write DIR/data, DIR/figures, DIR/reports (default results/ and reports/ in the rootdir)")
    group.addoption("--cache-dir", default=None, dest="semphase_cache_dir",
                    help="evidence cache (default OUTPUT/cache or results/cache)")
    group.addoption("--no-cache", action="store_true", default=False, dest="semphase_no_cache",
                    help="keep evidence in memory only")
    group.addoption("--semphase-seed", type=int, default=0, dest="semphase_seed", help="seed (default 0)")
    group.addoption("--head-batch", type=int, default=None, dest="semphase_head_batch",
                    help="heads of a layer per batch (default: 1 on CPU, all on CUDA)")
    group.addoption("--no-report", action="store_true", default=False, dest="semphase_no_report",
                    help="do not write data, figures or reports")
    group.addoption("--stimuli", default=None, dest="semphase_stimuli",
                    help="semantic experiments: a stimuli file in the packaged file's format")


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    devices: tuple[str, ...]
    budget: str
    tokens: int | None
    ctx: int | None
    data_dir: str | None
    text_file: str | None
    output_dir: str | None
    cache_dir: str | None
    no_cache: bool
    seed: int
    head_batch: int | None
    no_report: bool
    rootdir: str
    stimuli: str | None = None

    def layout(self):
        from .report import OutputLayout

        return OutputLayout.make(self.output_dir, self.rootdir)


def _settings(config) -> Settings:
    opt = config.option
    return Settings(
        models=tuple(opt.semphase_models or ["gpt2"]),
        devices=tuple(opt.semphase_devices or ["auto"]),
        budget=opt.semphase_budget,
        tokens=opt.semphase_tokens,
        ctx=opt.semphase_ctx,
        data_dir=opt.semphase_data_dir,
        text_file=opt.semphase_text_file,
        output_dir=opt.semphase_output_dir,
        cache_dir=opt.semphase_cache_dir,
        no_cache=opt.semphase_no_cache,
        seed=opt.semphase_seed,
        head_batch=opt.semphase_head_batch,
        no_report=opt.semphase_no_report,
        rootdir=str(config.rootpath),
        stimuli=opt.semphase_stimuli,
    )


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    settings = _settings(config)
    config._semphase_settings = settings
    config._semphase_records = {}
    config._semphase_skips = {}
    config._semphase_written = []
    # Bad options are usage errors before anything runs: one sentence each.
    from .device import resolve_device
    from .models import resolve_spec

    try:
        for name in settings.models:
            resolve_spec(name)
        for dev in settings.devices:
            resolve_device(dev)
        if settings.output_dir and not settings.no_report and not hasattr(config, "workerinput"):
            settings.layout().ensure_writable()
    except SemphaseError as exc:
        raise pytest.UsageError(f"semphase: {exc}") from None
    if hasattr(config, "workerinput"):
        _share_cpu_threads(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def _share_cpu_threads(n_workers: int) -> None:
    """Give each xdist worker its share of the CPU cores for torch's intra-op threads: with the
    default (every core per process) n workers oversubscribe the cores n times, which made
    ``-n 2`` on two cores twice as slow as ``-n 0`` (measured with ``bench workers``)."""
    import torch

    if n_workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_workers))


def pytest_generate_tests(metafunc):
    settings: Settings = metafunc.config._semphase_settings
    if "model_name" in metafunc.fixturenames:
        metafunc.parametrize("model_name", list(settings.models), ids=[f"model={m}" for m in settings.models])
    if "device_name" in metafunc.fixturenames:
        metafunc.parametrize("device_name", list(settings.devices), ids=[f"device={d}" for d in settings.devices])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # tryfirst: xdist turns xdist_group markers into node-id suffixes in its own hook of this
    # name; the markers must be there before it runs, or --dist loadgroup groups nothing.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "model_name" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(name=f"model-{callspec.params['model_name']}"))


# -- fixtures ------------------------------------------------------------------------------

_MODELS: dict[tuple, object] = {}
_MODEL_ERRORS: dict[tuple, str] = {}
_EVIDENCE: dict[tuple, dict] = {}
_G_ATTACHED: set[int] = set()


def _worker_index(config) -> int | None:
    wid = getattr(config, "workerinput", {}).get("workerid")
    if wid and wid.startswith("gw"):
        return int(wid[2:])
    return None


@pytest.fixture(scope="session")
def semphase_settings(request) -> Settings:
    return request.config._semphase_settings


def get_model(request, model_name: str, device_name: str):
    """The model, loaded once per worker; a model that cannot be had here skips with why."""
    from .device import worker_device
    from .models import load_model

    device = worker_device(device_name, _worker_index(request.config))
    key = (model_name, device)
    if key in _MODEL_ERRORS:
        _note_skip(request, model_name, _MODEL_ERRORS[key])
        pytest.skip(_MODEL_ERRORS[key])
    if key not in _MODELS:
        try:
            _MODELS[key] = load_model(model_name, device)
        except (ModelUnavailable, DeviceUnavailable) as exc:
            _MODEL_ERRORS[key] = str(exc)
            _note_skip(request, model_name, str(exc))
            pytest.skip(str(exc))
    return _MODELS[key]


@pytest.fixture
def lm(request, model_name, device_name, semphase_settings):
    """The model, loaded once per worker; a model that cannot be had here skips with why."""
    return get_model(request, model_name, device_name)


def _note_skip(request, model_name: str, reason: str) -> None:
    request.node.user_properties.append((PROPERTY, json.dumps({"skip": {"model": model_name, "reason": reason}})))


@pytest.fixture
def eval_tokens(lm, semphase_settings):
    from .budgets import get_budget
    from .data import load_eval_tokens

    s = semphase_settings
    budget = get_budget(s.budget, s.tokens, s.ctx)
    try:
        return load_eval_tokens(lm.tokenizer, budget.tokens, budget.ctx, "validation", s.data_dir, s.text_file)
    except SemphaseError as exc:
        pytest.fail(f"semphase: {exc}", pytrace=False)


@pytest.fixture
def evidence_store(semphase_settings):
    from .cache import EvidenceStore

    s = semphase_settings
    if s.no_cache:
        return EvidenceStore(None)
    return EvidenceStore(s.cache_dir or s.layout().cache)


def _g_curve(lm, store, settings: Settings) -> dict | None:
    """g(l/L) for exp10's C19, measured in this session by exp3 (its residuals cached, shared
    with exp1); where exp3 cannot measure it (fewer than 3 usable words), exp3's data file in the
    output folder, if a run wrote one."""
    from .exp10 import load_g_curve

    ev = semantic_evidence("exp3", lm, store, settings)
    if "g_mean" in ev:
        return {"g_mean": ev["g_mean"], "source": f"exp3 on {lm.name}, measured in this session "
                                                  f"(stimuli sha256 {ev['stimuli']['sha256'][:16]})"}
    return load_g_curve(settings.output_dir or os.path.join(settings.rootdir, "results"), lm.tag)


@pytest.fixture
def exp10_evidence_with_g(exp10_evidence, lm, evidence_store, semphase_settings):
    """exp10's evidence with C19's correlation against g(l/L) from exp3 (measured only for the
    tests that ask, so that exp10 alone needs no semantic forward passes). Updates the shared
    evidence, so the records of later tests carry it to the report."""
    from .exp10 import attach_g_correlation

    if "layer" in exp10_evidence and id(exp10_evidence) not in _G_ATTACHED:
        attach_g_correlation(exp10_evidence, _g_curve(lm, evidence_store, semphase_settings))
        _G_ATTACHED.add(id(exp10_evidence))
    return exp10_evidence


@pytest.fixture
def exp10_evidence(request, lm, eval_tokens, evidence_store, semphase_settings):
    """exp10's evidence for this model and budget: measured once per worker, cached on disk."""
    from . import exp10, sweeps
    from .budgets import get_budget

    s = semphase_settings
    key = ("exp10", lm.name, str(lm.device), s.budget, eval_tokens.fingerprint, s.seed)
    if key not in _EVIDENCE:
        budget = get_budget(s.budget, s.tokens, s.ctx)
        head_batch = s.head_batch or (lm.n_heads if lm.device.type == "cuda" else 1)
        try:
            _EVIDENCE[key] = exp10.measure(lm, eval_tokens, budget, evidence_store, progress=sweeps.Progress(False),
                                           head_batch=head_batch, seed=s.seed)
        except SemphaseError as exc:
            pytest.fail(f"semphase: {exc}", pytrace=False)
    return _EVIDENCE[key]


def semantic_evidence(experiment: str, lm, store, settings: Settings) -> dict:
    """exp1, exp2 or exp3's evidence for this model, stimuli, seed and budget: measured once per
    worker (the residuals the three share are cached in ``store``). exp1 always asserts its
    claims; exp2 and exp3 at the smoke budget measure everything and assert only that it was
    measured (two of their claims do not replicate on SmolLM2, which CI runs)."""
    import importlib

    from .semantic.stimuli import load_stimuli

    key = (experiment, lm.name, str(lm.device), settings.stimuli, settings.seed, settings.budget)
    if key not in _EVIDENCE:
        module = importlib.import_module(f"semphase.semantic.{experiment}")
        try:
            stimuli = load_stimuli(settings.stimuli)
            kwargs = {} if experiment == "exp1" else {"asserts_claims": settings.budget != "smoke"}
            _EVIDENCE[key] = module.measure(lm, stimuli, store, seed=settings.seed, **kwargs)
        except SemphaseError as exc:
            pytest.fail(f"semphase: {exc}", pytrace=False)
    return _EVIDENCE[key]


def assert_claim(result) -> None:
    """Skip with the reason where the claim does not apply; where it is not asserted (smoke)
    check that every statistic was measured; otherwise assert every condition."""
    import math

    if not result.applicable:
        pytest.skip(result.reason)
    if not result.asserted:
        for cond in result.conditions:
            value = cond.value
            assert value is not None, result.explain()
            if isinstance(value, float):
                assert math.isfinite(value) or math.isinf(value), result.explain()
        return
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

    return record


@pytest.fixture(autouse=True)
def _semphase_seed(request):
    """Every test starts from the recorded seed (torch, numpy, random)."""
    from .device import seed_everything

    seed_everything(request.config._semphase_settings.seed)


# -- controller: gather and write ------------------------------------------------------------

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
        if report.outcome == "failed" and claim["passed"] is True or (
                report.outcome == "failed" and not claim["asserted"]):
            claim["verdict"] = "error (test failed: " + _first_line(report) + ")"
        entry["claims"][claim["test"]] = claim


def _first_line(report) -> str:
    text = str(getattr(report, "longrepr", "") or "")
    for line in text.splitlines():
        if line.startswith("E "):
            return line[2:].strip()[:120]
    return "see the test log"


_CONFIG: dict = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _CONFIG["config"] = session.config


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        return  # workers never write reports
    settings: Settings = config._semphase_settings
    if settings.no_report or not config._semphase_records:
        return
    from .exp10 import CLAIMS

    order = {name: i for i, name in enumerate(CLAIMS)}
    layout = settings.layout()
    try:
        layout.ensure_writable()
    except SemphaseError as exc:
        config._semphase_written.append(f"(no report written: {exc})")
        return
    for exp, models in config._semphase_records.items():
        writer = report_writer(exp)
        for model, entry in models.items():
            claims = sorted(entry["claims"].values(), key=lambda c: order.get(c["test"], len(order)))
            config._semphase_written += writer(layout, entry["evidence"], claims)


# The report writer of each experiment, as "module:function"; each takes
# (layout, evidence, claims) and returns the paths it wrote. Resolved when needed.
REPORT_WRITERS = {
    "exp10": "semphase.report:publish_exp10",
    "exp1": "semphase.semantic.report:publish",
    "exp2": "semphase.semantic.report:publish",
    "exp3": "semphase.semantic.report:publish",
}


def report_writer(experiment: str):
    import importlib

    module, _, func = REPORT_WRITERS[experiment].partition(":")
    return getattr(importlib.import_module(module), func)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    records = getattr(config, "_semphase_records", {})
    skips = getattr(config, "_semphase_skips", {})
    if not records and not skips:
        return
    tr = terminalreporter
    tr.section("semphase claims")
    for exp, models in records.items():
        for model, entry in models.items():
            ev = entry["evidence"]
            tr.write_line(f"{exp} on {model} (budget {ev.get('budget')}, {ev.get('n_tokens')} tokens):")
            for claim in sorted(entry["claims"].values(), key=lambda c: c["test"]):
                tr.write_line(f"  {claim['claim']:>3} {claim['test']}: {claim['verdict']}")
    for model, reason in skips.items():
        tr.write_line(f"{model}: skipped: {reason}")
    written = [w for w in config._semphase_written if w.endswith(".md") or w.startswith("(")]
    for path in written:
        tr.write_line(f"report: {path}")
