"""One session object for the CLI and the pytest plugin.

A :class:`Session` holds the settings of one run (models, devices, budget, data, output, cache,
seed), loads each model once, keeps the evidence cache, and measures each experiment's evidence
once per (experiment, model, device, budget, data, seed), through the experiment's declaration
in :mod:`semphase.registry`. It applies the budget's rules (token counts, whether claims are
asserted) in one place, resolves what one experiment needs of another (exp10's C19 reads exp3's
g(l/L): the session measures exp3 on the same model, from its cached residuals), evaluates the
claims and hands the results to the report builder.

Library functions below it take explicit arguments; nothing here knows about argparse or pytest.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from . import registry
from .budgets import Budget, get_budget
from .claims import ClaimResult
from .errors import NoMeasurableWords, SemphaseError


@dataclass(frozen=True)
class Settings:
    """Everything a run is configured by; the CLI and the plugin build it from their options."""

    models: tuple[str, ...] = ("smollm2-135m",)
    devices: tuple[str, ...] = ("auto",)
    budget: str = "quick"
    tokens: int | None = None
    ctx: int | None = None
    eval_tokens: int | None = None  # held-out tokens after the rank range (None: the budget's)
    replace_layers: int | str | None = None  # exp10 phases 2-3: layers swept (a number or "all"; None: the budget's)
    data_dir: str | None = None
    text_file: str | None = None
    split: str | None = None  # WikiText split (None: the experiment's declared split)
    output_dir: str | None = None
    cache_dir: str | None = None
    no_cache: bool = False
    seed: int = 0
    head_batch: int | None = None
    stimuli: str | None = None
    processing: str = "tl-default"
    dtype: str = "float32"
    revision: str | None = None  # a hub model's branch, tag or commit
    parts: str | None = None  # CLI: experiment parts (None: all)
    layers: str | None = None  # CLI: exp10 single-head sweep layers, e.g. "0,5,29" (None: all)
    reuse_evidence: str | None = None  # CLI: an earlier run's exp10 data file whose reusable parts stand in
    claims_file: str | None = None  # a researcher's own claims (semphase.user_claims), evaluated beside the built-in
    progress: bool = False
    no_report: bool = False
    cluster: dict | None = None  # a cluster run's task records (semphase.cluster), put in each evidence's provenance
    rootdir: str = "."

    def layout(self):
        """Where the run writes: ``--output-dir``, else ``out/MODEL-BUDGET`` under the root (the repository's committed
        ``results/`` and ``reports/`` only when named: ``--output-dir results``)."""
        from pathlib import Path

        from .options import default_output_dir
        from .report import OutputLayout

        if self.output_dir:
            return OutputLayout.make(self.output_dir, self.rootdir)
        return OutputLayout.make(Path(self.rootdir) / default_output_dir(self.models, self.budget), self.rootdir)

    def get_budget(self) -> Budget:
        return get_budget(self.budget, self.tokens, self.ctx, self.eval_tokens, self.replace_layers)


@dataclass
class MeasureContext:
    """What an experiment's ``measure(ctx)`` gets: the model, the store, the budget's rules, the
    data loaders and a way to ask for another experiment's evidence."""

    session: "Session"
    experiment: registry.Experiment
    lm: object
    store: object
    budget: Budget
    asserts_claims: bool
    seed: int
    progress: bool
    parts: str | None
    layers: str | None
    head_batch: int
    heldout: bool = True  # False when another experiment's need asks for no held-out range
    reuse_evidence: str | None = None  # an earlier run's evidence file (exp10: --reuse-evidence)

    def tokens(self):
        """The evaluation tokens the budget names, from the experiment's data (WikiText split or
        --text-file)."""
        return self.session.tokens(self.lm, self.experiment.data)

    def eval_tokens(self, rank):
        """The held-out range right after ``rank`` (the budget's size), or None when the data
        hold less than one chunk after it (or when this measurement was asked for without one)."""
        if not self.heldout:
            return None
        return self.session.eval_tokens(self.lm, self.experiment.data, rank)

    def stimuli(self):
        return self.session.stimuli()

    def split_tokens(self):
        """The whole split (or --text-file) in chunks of the budget's length, for experiments that
        draw chunks from all of it (exp7)."""
        return self.session.split_tokens(self.lm, self.experiment.data)

    def need(self, exp_id: str) -> tuple[dict | None, str | None]:
        """Another experiment's evidence on this model, measured through the session (once,
        cached): ``(evidence, None)`` or ``(None, why it cannot be had)``. Only an experiment that
        this one declares in its ``needs`` may be asked for. A stimuli file with no measurable word
        (:class:`~semphase.errors.NoMeasurableWords`) is raised, not returned: the measurement that
        needs it stops with that sentence (exp8 parts a/b; a claim need, such as exp10's C19, gets
        the reason through :meth:`Session.fetch` instead and skips)."""
        if exp_id not in {n.experiment for n in self.experiment.needs}:
            raise ValueError(f"{self.experiment.id} asks for {exp_id}'s evidence but does not declare the need")
        need = next(n for n in self.experiment.needs if n.experiment == exp_id)
        try:
            return self.session.evidence(exp_id, self.lm, need), None
        except NoMeasurableWords:
            raise  # a stimuli file with no measurable word stops this measurement too, in one sentence
        except SemphaseError as exc:
            return None, str(exc)

    def say(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)


class Session:
    def __init__(self, settings: Settings, worker_index: int | None = None):
        self.settings = settings
        self.worker_index = worker_index
        self._models: dict[tuple, object] = {}
        self._model_errors: dict[tuple, str] = {}
        self._evidence: dict[tuple, dict] = {}
        self._attached: set[tuple] = set()
        self._store = None
        self._stimuli = None

    # -- resources --------------------------------------------------------------------------
    @property
    def layout(self):
        return self.settings.layout()

    @property
    def store(self):
        from .cache import EvidenceStore

        if self._store is None:
            s = self.settings
            self._store = EvidenceStore(None if s.no_cache else (s.cache_dir or self.layout.cache))
        return self._store

    def check_options(self, write: bool = True, devices: bool = True) -> None:
        """Bad options fail before anything loads: unknown models, absent devices (``devices`` False: a
        cluster launcher, whose devices are its nodes'), an output folder that cannot be written."""
        from .device import resolve_device
        from .models import resolve_spec

        for name in self.settings.models:
            resolve_spec(name)
        for dev in (self.settings.devices if devices else ()):
            resolve_device(dev)
        self.settings.get_budget()
        if self.settings.replace_layers and not self.settings.parts:  # pytest: every part the budget measures
            from .experiments.exp10.run import unused_phase23_options

            why = unused_phase23_options(None, self.settings.budget, self.settings.replace_layers)
            if why:
                raise SemphaseError(why)
        if write and not self.settings.no_report:
            self.layout.ensure_writable()

    def check_data(self, exp_ids) -> None:
        """Every WikiText split the requested experiments (and those they need) read is where the run
        will look for it, before anything is measured: a missing split is refused in one sentence,
        not found after minutes of measuring. A split left to the hub is not probed here."""
        from .data import locate_wikitext
        from .errors import DataUnavailable

        s = self.settings
        if s.text_file:
            return
        readers: dict[str, list[str]] = {}
        for exp_id in dict.fromkeys(exp_ids):
            exp = registry.get(exp_id)
            for e in [exp] + [registry.get(n.experiment) for n in exp.needs]:
                if e.data.kind == "wikitext":
                    readers.setdefault(s.split or e.data.split, []).append(e.id)
        for split, exps in readers.items():
            try:
                locate_wikitext(split, s.data_dir)
            except DataUnavailable as exc:
                raise DataUnavailable(f"{str(exc).rstrip('.')} ({', '.join(dict.fromkeys(exps))} read the {split} "
                                      "split; --split SPLIT reads another).") from None

    def device_for(self, device: str) -> str:
        from .device import worker_device

        return worker_device(device, self.worker_index)

    def model(self, name: str, device: str | None = None):
        """The model, loaded once per session (a model that cannot be had raises the same
        one-sentence error each time it is asked for)."""
        from .models import load_model

        dev = self.device_for(device or self.settings.devices[0])
        key = (name, dev)
        if key in self._model_errors:
            raise self._model_errors[key]
        if key not in self._models:
            try:
                self._models[key] = load_model(name, dev, self.settings.processing, dtype=self.settings.dtype,
                                               revision=self.settings.revision)
            except SemphaseError as exc:
                self._model_errors[key] = exc
                raise
        return self._models[key]

    def tokens(self, lm, data: registry.Data):
        from .data import load_eval_tokens

        s = self.settings
        budget = s.get_budget()
        split = s.split or data.split
        return load_eval_tokens(lm.tokenizer, budget.tokens, budget.ctx, split, s.data_dir, s.text_file)

    def eval_tokens(self, lm, data: registry.Data, rank):
        """The held-out token range after ``rank`` (disjoint from it): the budget's
        ``eval_tokens``, shortened to what the data hold; None when not one chunk is left."""
        from .data import load_eval_tokens

        s = self.settings
        budget = s.get_budget()
        split = s.split or data.split
        start = rank.meta.get("token_range", [0, rank.n_tokens])[1]
        available = rank.meta.get("tokens_available", 0) - start
        want = available if budget.eval_tokens is None else min(budget.eval_tokens, available)
        want -= want % rank.ctx
        if want < rank.ctx:
            return None
        return load_eval_tokens(lm.tokenizer, want, rank.ctx, split, s.data_dir, s.text_file, start=start)

    def split_tokens(self, lm, data: registry.Data):
        """Every token of the split (or text file), in chunks of the budget's length."""
        from .data import load_eval_tokens

        s = self.settings
        return load_eval_tokens(lm.tokenizer, None, s.get_budget().ctx, s.split or data.split, s.data_dir, s.text_file)

    def stimuli(self):
        from .semantic.stimuli import load_stimuli

        if self._stimuli is None:
            self._stimuli = load_stimuli(self.settings.stimuli)
        return self._stimuli

    def head_batch(self, lm) -> int:
        """Heads ablated side by side in one batched forward (``--head-batch``, else automatic)."""
        if self.settings.head_batch:
            return self.settings.head_batch
        return auto_head_batch(lm.n_heads, self.settings.get_budget().ctx, lm.device.type)

    # -- evidence ---------------------------------------------------------------------------
    def asserts_claims(self, exp: registry.Experiment) -> bool:
        """The budget's rule, decided here only: the smoke budget asserts no claim, except for
        experiments that declare it does not shrink them."""
        return self.settings.get_budget().asserts_claims or exp.asserts_at_smoke

    def evidence(self, exp_id: str, lm, need: registry.Need | None = None) -> dict:
        """``exp_id``'s evidence on ``lm``: measured once per session, its expensive units cached
        in the evidence store across sessions. For another experiment's ``need``: only the parts it
        names and, with ``need.heldout`` false, no held-out range (the evidence is keyed on both,
        so asking for less never starts the whole measurement); otherwise the run's ``--parts``."""
        exp = registry.get(exp_id)
        s = self.settings
        parts, heldout, layers = (s.parts, True, s.layers) if need is None else (need.parts, need.heldout, None)
        key = (exp_id, lm.name, str(lm.device), s.budget, s.tokens, s.ctx, s.eval_tokens, s.replace_layers, s.split, s.data_dir, s.text_file,
               s.stimuli, s.seed, parts, heldout, layers)
        if key not in self._evidence:
            if exp.data.kind == "stimuli":
                self.stimuli()  # a bad --stimuli fails before any measurement
            ctx = MeasureContext(self, exp, lm, self.store, s.get_budget(), self.asserts_claims(exp), s.seed,
                                 s.progress, parts, layers, self.head_batch(lm), heldout,
                                 s.reuse_evidence if need is None else None)
            before, start = dict(self.store.stats), time.perf_counter()
            ev = exp.measure(ctx)
            ev["cost"] = measurement_cost(before, self.store.stats, time.perf_counter() - start)
            if s.cluster is not None:
                from .cluster import provenance_for

                ev.setdefault("provenance", {})["cluster"] = provenance_for(s.cluster, exp_id, lm.name)
            self._evidence[key] = ev
        return self._evidence[key]

    def fetch(self, exp_id: str, lm, need: registry.Need | None = None) -> tuple[dict | None, str | None]:
        """``exp_id``'s evidence on ``lm`` (what ``need`` asks for): (evidence, None), or (None, why it
        cannot be measured)."""
        try:
            return self.evidence(exp_id, lm, need), None
        except SemphaseError as exc:
            return None, str(exc)

    def _resolve_needs(self, exp: registry.Experiment, ev: dict, lm, test: str) -> None:
        for need in exp.needs_for(test):
            mark = (exp.id, id(ev), need.experiment)
            if mark in self._attached:
                continue

            exp.attach(need)(ev, lambda need=need: self.fetch(need.experiment, lm, need))
            self._attached.add(mark)

    def evaluate(self, exp_id: str, ev: dict, test: str, lm=None) -> ClaimResult:
        """One claim test on ``ev``; the evidence of other experiments it needs is measured on
        ``lm`` first (and added to ``ev``, so the report shows it)."""
        exp = registry.get(exp_id)
        if lm is not None:
            self._resolve_needs(exp, ev, lm, test)
        return exp.claims.evaluate(ev, test)

    def evaluate_all(self, exp_id: str, ev: dict, lm=None) -> list[ClaimResult]:
        exp = registry.get(exp_id)
        return [self.evaluate(exp_id, ev, t, lm) for t in exp.claims.tests_for(ev)]

    # -- output -----------------------------------------------------------------------------
    def publish(self, exp_id: str, ev: dict, claims: list[dict]) -> list[str]:
        from .report import publish

        return publish(registry.get(exp_id), self.layout, ev, claims)

    def run(self, exp_id: str, model: str | None = None) -> tuple[dict, list[dict], list[str]]:
        """Measure, evaluate every claim and write the data, figures, report and summary."""
        exp = registry.get(exp_id)
        layout = self.layout
        layout.ensure_writable()
        if exp.data.kind == "stimuli":
            self.stimuli()  # a bad --stimuli fails before the model loads
        lm = self.model(model or self.settings.models[0])
        ev = self.evidence(exp_id, lm)
        claims = [c.to_json() for c in self.evaluate_all(exp_id, ev, lm)]
        user = self.user_claims()
        if user is not None and user.experiment == exp_id:
            claims += user.evaluate(ev)
            ev.setdefault("provenance", {})["claims_file"] = {"name": user.name, "sha256": user.sha256,
                                                              "tests": list(user.rules)}
        written = self.publish(exp_id, ev, claims)
        return ev, claims, written

    def user_claims(self):
        """The researcher's claims file (``--claims``), loaded and checked once; None without one."""
        if self.settings.claims_file is None:
            return None
        if getattr(self, "_user_claims", None) is None:
            from .user_claims import load

            self._user_claims = load(self.settings.claims_file)
        return self._user_claims


    def run_across(self, exp_id: str) -> tuple[dict, list[dict], list[str]]:
        """The experiment's comparison across every model of the session (``Experiment.across``):
        each model's evidence (measured once), the derived evidence, its claims, its report."""
        exp = registry.get(exp_id)
        if exp.across_models is None:
            raise SemphaseError(f"{exp_id} has no comparison across models; run it on one --model at a time.")
        evs = [self.evidence(exp_id, self.model(name)) for name in self.settings.models]
        ev = exp.across_models(evs)
        claims = [c.to_json() for c in self.evaluate_all(exp_id, ev)]
        return ev, claims, self.publish(exp_id, ev, claims)


def parse_layers(text: str | None, n_layers: int) -> list[int] | None:
    """``--layers 0,5,-1`` as sorted layer indices (negative counts from the end); None for all."""
    if not text:
        return None
    try:
        given = [int(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise SemphaseError(f"--layers {text!r}: give layer numbers separated by commas, e.g. 0,5,29.") from None
    bad = [l for l in given if not -n_layers <= l < n_layers]
    layers = sorted({l % n_layers for l in given})
    if bad or not layers:
        raise SemphaseError(f"--layers {text!r}: this model has layers 0 to {n_layers - 1}; "
                            f"{', '.join(map(str, bad)) or 'none given'} out of range.")
    return layers


def auto_head_batch(n_heads: int, ctx: int, device_type: str) -> int:
    """The default head batch: every head of a layer at once on a GPU; on a CPU, as many heads as
    keep a batch within about 1,024 positions (one head at a time for 1,024-token chunks, where
    batching does not pay on two cores; several for the smoke budget's 128-token chunks, whose
    forwards are dominated by per-call overhead: ``python -m semphase bench head-batch`` measures
    the ratio), dealt into groups of equal size."""
    if device_type == "cuda":
        return n_heads
    most = max(1, min(n_heads, 1024 // max(1, int(ctx))))
    groups = -(-n_heads // most)
    return -(-n_heads // groups)


def measurement_cost(before: dict, after: dict, wall_seconds: float) -> dict:
    """What one measurement cost: its wall time in this process, the cache units it computed and
    their seconds, and the units it read back with the seconds they took when computed (by an
    earlier, interrupted run: the sum is the cost of the whole measurement from an empty cache,
    where every unit carries its time)."""
    d = {k: after.get(k, 0) - before.get(k, 0) for k in ("computed", "hits", "computed_seconds", "hit_seconds",
                                                         "hits_timed")}
    return {"wall_seconds": round(wall_seconds, 3), "units_computed": d["computed"],
            "units_computed_seconds": round(d["computed_seconds"], 3), "units_read": d["hits"],
            "units_read_seconds": round(d["hit_seconds"], 3), "units_read_untimed": d["hits"] - d["hits_timed"]}

