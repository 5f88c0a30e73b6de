"""The experiment registry: one line per experiment, one declaration per experiment folder.

:data:`EXPERIMENTS` maps an experiment id to the package that holds it (as pytest-xdist maps a
``--dist`` name to its scheduler). Each package ``semphase/experiments/<id>/`` declares itself
in its ``__init__.py`` as ``EXPERIMENT = Experiment(...)``: its id, markers, CLI parts, the data
it reads and the evidence of other experiments it needs; its measurement, claims and report are
modules beside the declaration, named in it and imported only when used. The CLI's choices, the
pytest markers, the evidence the session measures, the report builder and the claim order all
come from here. Adding an experiment: a folder, a test file and one line below.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from .errors import SemphaseError

EXPERIMENTS: dict[str, str] = {
    "exp1": "semphase.experiments.exp1",
    "exp2": "semphase.experiments.exp2",
    "exp3": "semphase.experiments.exp3",
    "exp6": "semphase.experiments.exp6",
    "exp7": "semphase.experiments.exp7",
    "exp8": "semphase.experiments.exp8",
    "exp9": "semphase.experiments.exp9",
    "exp10": "semphase.experiments.exp10",
}

# Markers that are not experiments (pytest.ini registers the same; a test checks they agree).
OTHER_MARKERS = {
    "machinery": "fast tests of the library on tiny or no models",
    "claims": "claim tests that run a real model",
    "slow": "needs a long run (minutes to hours)",
    "gpu": "meant for an accelerator",
    "bigmodel": "needs a large download (gpt2-medium and larger)",
}


@dataclass(frozen=True)
class Data:
    """What an experiment reads.

    ``kind``: "wikitext" (a split of WikiText-2 raw, or ``--text-file``; the token ranges come
    from the budget), "stimuli" (a prompt file, the packaged one by default) or "weights" (the
    model's weights only).
    """

    kind: str
    split: str = "validation"

    def describe(self) -> str:
        if self.kind == "wikitext":
            return f"WikiText-2 raw {self.split} (token ranges from the budget), or --text-file"
        if self.kind == "stimuli":
            return "a stimuli file (the packaged one unless --stimuli FILE)"
        return "the model's weights only"


@dataclass(frozen=True)
class Need:
    """Evidence of another experiment that this one needs.

    Two kinds. A measurement need (``claims`` empty, no ``attach``): this experiment's
    ``measure(ctx)`` asks for it with ``ctx.need(experiment)`` (exp8 fits exp3's g(l/L)). A claim
    need: when one of ``claims`` is evaluated, the session calls ``attach(evidence, fetch)``
    ("module:function", relative to the experiment's package); ``fetch()`` measures
    ``experiment`` on the same model through the session (once, cached) and returns
    ``(its evidence, None)`` or ``(None, why it cannot be had)``. ``parts`` and ``heldout`` ask for
    less than the whole measurement (the session keys the evidence on them, so a need for part "a" of
    exp10 without its held-out range never starts the rest). ``attach`` adds what the claims
    read to this experiment's evidence (and need not fetch when the evidence cannot use it).
    """

    experiment: str
    claims: tuple[str, ...] = ()
    attach: str = ""
    why: str = ""
    parts: str | None = None  # only these parts of ``experiment`` (None: all of them)
    heldout: bool = True  # False: without its held-out range (exp6 reads exp10's rank-range sweep alone)


@dataclass(frozen=True)
class Experiment:
    id: str
    title: str
    sections: str  # science.md sections
    claim_ids: tuple[str, ...]
    data: Data
    parts: dict[str, str] = field(default_factory=dict)  # CLI part letter -> what it measures
    needs: tuple[Need, ...] = ()
    markers: tuple[str, ...] = ("claims",)
    asserts_at_smoke: bool = False  # the smoke budget shrinks tokens; a stimuli experiment may still assert
    across: str = ""  # "module:function" deriving evidence across two or more models (its claims are extra rules)
    package: str = ""

    @property
    def marker_text(self) -> str:
        return f"{self.id}: {self.title} ({', '.join(self.claim_ids)})"

    def _resolve(self, ref: str):
        module, _, attr = ref.partition(":")
        mod = importlib.import_module(f"{self.package}.{module}")
        return getattr(mod, attr) if attr else mod

    @property
    def measure(self) -> Callable:
        """``measure(ctx: semphase.session.MeasureContext) -> evidence dict``."""
        return self._resolve("measure:measure")

    @property
    def claims(self):
        """The experiment's :class:`semphase.claims.ClaimSet`."""
        return self._resolve("claims:CLAIMS")

    @property
    def report(self):
        """The experiment's :class:`semphase.report.ReportSpec`."""
        return self._resolve("report:REPORT")

    @property
    def across_models(self) -> Callable | None:
        """``across(list of per-model evidence) -> derived evidence``, or None."""
        return self._resolve(self.across) if self.across else None

    def attach(self, need: Need) -> Callable:
        return self._resolve(need.attach)

    def needs_for(self, test: str) -> list[Need]:
        return [n for n in self.needs if test in n.claims]


_LOADED: dict[str, Experiment] = {}


def get(exp_id: str) -> Experiment:
    """The declaration of ``exp_id``; an unknown id is a one-sentence error."""
    if exp_id not in EXPERIMENTS:
        raise SemphaseError(f"unknown experiment {exp_id!r}; choose one of {', '.join(EXPERIMENTS)}.")
    if exp_id not in _LOADED:
        package = EXPERIMENTS[exp_id]
        exp = importlib.import_module(package).EXPERIMENT
        if exp.id != exp_id:
            raise RuntimeError(f"{package} declares {exp.id!r}, registered as {exp_id!r}")
        object.__setattr__(exp, "package", package)
        _LOADED[exp_id] = exp
    return _LOADED[exp_id]


def all_experiments() -> list[Experiment]:
    return [get(e) for e in EXPERIMENTS]


def dependency_order() -> list[str]:
    """Every registered experiment, each after the experiments whose evidence it needs (registry order
    otherwise), so that ``run all`` measures a needed experiment once, before its readers."""
    done: list[str] = []

    def visit(exp_id: str, path: tuple[str, ...] = ()) -> None:
        if exp_id in done:
            return
        if exp_id in path:
            raise RuntimeError(f"experiments need each other in a cycle: {' -> '.join(path + (exp_id,))}")
        for need in get(exp_id).needs:
            visit(need.experiment, path + (exp_id,))
        done.append(exp_id)

    for exp_id in EXPERIMENTS:
        visit(exp_id)
    return done


def markers() -> dict[str, str]:
    """Every marker: one per experiment, then the others."""
    out = {e.id: e.marker_text for e in all_experiments()}
    out.update(OTHER_MARKERS)
    return out
