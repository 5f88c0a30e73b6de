"""The claims core: conditions, claim results, verdicts and the ordered claim set of an experiment.

A claim test is a decision rule ``rule(evidence) -> ClaimResult`` written down before the data
are seen. Its result holds one :class:`Condition` per bound the rule checks; a condition may
carry the interval of its statistic (and what the interval resamples), and when that interval
straddles the bound the condition is *inconclusive*, not passed or failed.

A claim's verdict has five values (:class:`Verdict`):

* ``replicates`` - every condition holds (decided);
* ``does NOT replicate`` - some condition fails (decided);
* ``inconclusive`` - no condition fails, but some interval straddles its bound;
* ``skipped`` - the rule does not apply here, with the reason;
* ``not asserted (smoke)`` - measured at a budget that asserts no claim.

Reproduction (R), sanity (S) and arithmetic (A) tests show the same values with their own words
("reproduced", "sane", "holds (arithmetic)"); the value is what the pytest plugin, the reports and the
summary act on. The four kinds (:data:`KINDS`): H tests a hypothesis on measured evidence, R recomputes
one of the original's GPT-2 numbers with its protocol, S checks the machinery, A checks shape arithmetic
that measures nothing (counted apart from H verdicts).

Each rule declares, besides its full statement, one plain sentence of what it asserts (``asserts``)
and whether that assertion, when it holds, agrees with the original study's claim for its claim ID
(``original="same"``) or goes against it (``"opposite"``); the experiment's :class:`ClaimSet` holds the
original's claim in one sentence per ID. From these a result derives :meth:`ClaimResult.original_verdict`
(supported / contradicted / undecided / n/a / number reproduced) and :meth:`ClaimResult.deciding`, the
condition that decided its verdict. Records stored before these fields existed are completed from the
current declarations (:meth:`ClaimSet.complete`), without re-evaluating any rule.

Nothing here imports an experiment: experiments import this module.
"""
from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence


class Verdict(str, enum.Enum):
    REPLICATES = "replicates"
    REFUTED = "does NOT replicate"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"
    NOT_ASSERTED = "not asserted (smoke)"


# The kinds of claim test, in the order the summary counts them.
KINDS = {"H": "hypothesis", "R": "reproduction", "A": "arithmetic", "S": "sanity"}

# How R, S and A tests word the decided values; H tests use the Verdict's own value.
_WORDS = {
    "R": {Verdict.REPLICATES: "reproduced", Verdict.REFUTED: "NOT reproduced"},
    "S": {Verdict.REPLICATES: "sane", Verdict.REFUTED: "NOT sane"},
    "A": {Verdict.REPLICATES: "holds (arithmetic)", Verdict.REFUTED: "fails (arithmetic)"},
}

# Whether a test's assertion, when it holds, agrees with the original's claim ("same") or goes against
# it ("opposite"); None for sanity tests (they speak to the machinery, not to the original).
POLARITIES = ("same", "opposite", None)

# What a result says about the original's claim (:meth:`ClaimResult.original_verdict`).
SUPPORTED, CONTRADICTED, UNDECIDED, NOT_APPLICABLE, NUMBER_REPRODUCED = (
    "supported", "contradicted", "undecided", "n/a", "number reproduced")
ORIGINAL_VERDICTS = (SUPPORTED, CONTRADICTED, UNDECIDED, NOT_APPLICABLE, NUMBER_REPRODUCED)

_OPS = {
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "==": lambda v, t: v == t,
}


@dataclass
class Condition:
    """One bound of a rule: ``value op target`` is ``ok`` or not.

    ``interval`` (low, high) is the interval of the statistic, resampling ``unit`` (chunks,
    prompts, words ...). With an interval, the condition is decided only when the whole interval
    is on one side of the bound; otherwise it is inconclusive (``ok`` keeps the point estimate's
    side, for the record).
    """

    name: str
    value: float | int | str | None
    op: str
    target: float | int | str
    ok: bool
    interval: tuple[float, float] | None = None
    unit: str | None = None
    inconclusive: bool = False

    @property
    def status(self) -> str:
        if self.inconclusive:
            return "inconclusive"
        return "ok" if self.ok else "fails"

    def text(self) -> str:
        v = self.value
        vs = f"{v:.4g}" if isinstance(v, float) else str(v)
        ci = ""
        if self.interval is not None:
            ci = f" [95 % CI {self.interval[0]:.4g}, {self.interval[1]:.4g}" + (f" over {self.unit}" if self.unit else "") + "]"
        word = {"ok": "yes", "fails": "NO", "inconclusive": "INCONCLUSIVE"}[self.status]
        return f"{self.name} = {vs}{ci} {self.op} {self.target}: {word}"


def cond(name: str, value, op: str, target, interval: Sequence[float] | None = None,
         unit: str | None = None, p_value: float | None = None, alpha: float = 0.05) -> Condition:
    """A condition ``value op target``; NaN or None fails. ``op`` "within" takes ``target`` =
    (center, tolerance). With ``interval``, the condition is inconclusive when the interval
    straddles the bound (for the order operators); with ``p_value``, when the test of the
    statistic's side is not significant at ``alpha`` (the data do not decide the sign)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Condition(name, value, op, target, False, _pair(interval), unit)
    if op == "within":
        center, tol = target
        return Condition(name, value, op, f"{center} ± {tol}", bool(abs(value - center) <= tol), _pair(interval), unit)
    if op not in _OPS:
        raise ValueError(f"unknown operator {op!r}")
    ok = bool(_OPS[op](value, target))
    ci = _pair(interval)
    undecided = False
    if ci is not None and op in ("<", "<=", ">", ">="):
        lo_ok, hi_ok = _OPS[op](ci[0], target), _OPS[op](ci[1], target)
        undecided = lo_ok != hi_ok or not (math.isfinite(ci[0]) and math.isfinite(ci[1]))
    if p_value is not None and not (p_value < alpha):
        undecided = True
        unit = unit or f"p = {p_value:.3g} >= {alpha}"
    return Condition(name, value, op, target, ok, ci, unit, undecided)


def check(name: str, ok: bool, value, op: str, target) -> Condition:
    """A condition whose truth is computed by the rule itself (compound bounds)."""
    return Condition(name, value, op, target, bool(ok))


def _pair(interval) -> tuple[float, float] | None:
    if interval is None:
        return None
    lo, hi = interval
    return (float(lo), float(hi))


@dataclass
class ClaimResult:
    claim: str
    test: str
    kind: str  # "H" hypothesis, "R" reproduction, "A" arithmetic, "S" sanity (:data:`KINDS`)
    statement: str
    conditions: list[Condition] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    applicable: bool = True
    reason: str = ""
    asserted: bool = True
    asserts: str = ""  # one plain sentence: what the test asserts
    original: str | None = None  # "same" / "opposite" / None (:data:`POLARITIES`)
    original_claim: str = ""  # the original study's claim for this claim ID, in one sentence
    original_override: str | None = None  # a rule's own original_verdict (e.g. "undecided"), with ...
    original_reason: str = ""  # ... the reason its verdict does not speak for the original
    marks: dict = field(default_factory=dict)  # extra fields of the stored record (a user's claim: its file)

    def skip(self, reason: str) -> "ClaimResult":
        """Not applicable here, because ``reason``: the helper every rule uses to bow out."""
        self.applicable = False
        self.reason = reason
        return self

    def skip_if(self, reason: str | None) -> bool:
        """Bow out when ``reason`` is given (``if r.skip_if(why): return r``)."""
        if reason:
            self.skip(reason)
        return bool(reason)

    @property
    def passed(self) -> bool:
        """Every condition decided and true (inconclusive ones are not passed)."""
        return self.applicable and all(c.ok and not c.inconclusive for c in self.conditions)

    @property
    def value(self) -> Verdict:
        if not self.applicable:
            return Verdict.SKIPPED
        if not self.asserted:
            return Verdict.NOT_ASSERTED
        if any(not c.ok and not c.inconclusive for c in self.conditions):
            return Verdict.REFUTED
        if any(c.inconclusive for c in self.conditions):
            return Verdict.INCONCLUSIVE
        return Verdict.REPLICATES

    def verdict(self) -> str:
        return verdict_word(self.kind, self.value)

    def deciding(self) -> int | None:
        """The index of the condition that decided the verdict (:func:`deciding_index`), or None."""
        return deciding_index([asdict(c) | {"status": c.status} for c in self.conditions])

    def original_verdict(self) -> str:
        """What this result says about the original's claim (:func:`original_verdict`)."""
        return original_verdict(self.kind, self.value, self.original, self.original_override)

    def explain(self) -> str:
        lines = [f"{self.claim} {self.test} ({self.kind}): {self.statement}"]
        if self.asserts:
            lines.insert(0, f"{self.claim} {self.test} asserts: {self.asserts}")
        lines += ["  " + c.text() for c in self.conditions]
        if self.reason:
            lines.append("  " + self.reason)
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(d.pop("marks") or {})
        for c, cj in zip(self.conditions, d["conditions"]):
            cj["status"] = c.status
        d["verdict"] = self.verdict()
        d["verdict_value"] = self.value.value
        d["passed"] = self.passed
        d["deciding"] = self.deciding()
        d["original_verdict"] = self.original_verdict()
        return d


def verdict_word(kind: str, value: Verdict) -> str:
    return _WORDS.get(kind, {}).get(value, value.value)


def original_verdict(kind: str, value: Verdict | str, original: str | None, override: str | None = None) -> str:
    """What a test's result says about the original's claim for its claim ID.

    A decided result of an H or A test supports the original where its assertion agrees with it
    (``original="same"``) and holds, or goes against it (``"opposite"``) and fails; it contradicts the
    original in the two other cases. Inconclusive, skipped and not-asserted results leave it
    undecided. A sanity test (kind S, or no polarity) is "n/a". A reproduction test (R) checks a
    number, not the claim's direction: reproduced gives "number reproduced"; a number that does not
    recompute leaves the claim itself undecided (the row's own verdict says NOT reproduced). A rule may
    override all this (``r.original_override``) where its failure does not speak for the original.
    """
    if override:
        return override
    value = Verdict(value)
    if kind == "S" or original is None:
        return NOT_APPLICABLE
    if value not in (Verdict.REPLICATES, Verdict.REFUTED):
        return UNDECIDED
    if kind == "R":
        return NUMBER_REPRODUCED if value is Verdict.REPLICATES else UNDECIDED
    holds = value is Verdict.REPLICATES
    return SUPPORTED if holds == (original == "same") else CONTRADICTED


def _status(d: dict) -> str:
    """A stored condition's status ("ok", "fails", "inconclusive"), also for records stored without it."""
    if d.get("status"):
        return d["status"]
    if d.get("inconclusive"):
        return "inconclusive"
    return "ok" if d.get("ok") else "fails"


def _number(x) -> float | None:
    """``x`` as a finite float, or None (booleans, strings, None, NaN and infinities are not numbers here)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def bound_margin(d: dict) -> float | None:
    """How far a held condition is from its bound, relative to the size of the numbers compared:
    ``|e - t| / max(|e|, |t|)``, with ``e`` the end of its interval nearest the bound (the value where
    it has no interval) and ``t`` the bound; for "within" (target "c ± tol") the unused share of the
    tolerance, ``(tol - |v - c|) / tol``. None where the condition is not a numeric bound (an
    equality, a compound check, a text value): such conditions rank after every numeric one."""
    op = d.get("op")
    value = _number(d.get("value"))
    if value is None:
        return None
    if op == "within":
        try:
            center, tol = (float(x) for x in str(d.get("target")).split("±"))
        except ValueError:
            return None
        return (tol - abs(value - center)) / tol if tol > 0 else None
    if op not in ("<", "<=", ">", ">="):
        return None
    target = _number(d.get("target"))
    if target is None:
        return None
    ends = [value]
    interval = d.get("interval")
    if interval:
        ends = [e for e in (_number(x) for x in interval) if e is not None] or ends
    e = min(ends, key=lambda x: abs(x - target))
    scale = max(abs(e), abs(target))
    return abs(e - target) / scale if scale > 0 else 0.0


def deciding_index(conditions: Sequence[dict]) -> int | None:
    """The condition that decided a verdict, by index: the first decided failing condition; else the
    first inconclusive one; else (every condition held) the one closest to its bound
    (:func:`bound_margin`; conditions without a numeric margin rank last, the first of them wins
    among themselves). None without conditions. Works on stored JSON conditions, also those of
    records written before this existed."""
    if not conditions:
        return None
    statuses = [_status(d) for d in conditions]
    for wanted in ("fails", "inconclusive"):
        if wanted in statuses:
            return statuses.index(wanted)
    margins = [bound_margin(d) for d in conditions]
    numeric = [(m, i) for i, m in enumerate(margins) if m is not None]
    return min(numeric)[1] if numeric else 0


Rule = Callable[[dict], ClaimResult]


def rule(claim: str, test: str, kind: str, statement: str | Callable[[dict], str],
         needs: Callable[[dict], str | None] | None = None, *, asserts: str = "",
         original: str | None = None) -> Callable[[Callable[[dict, ClaimResult], None]], Rule]:
    """Declare a decision rule: the decorated ``body(ev, r)`` fills ``r``'s conditions and numbers.

    ``statement`` (text, or a function of the evidence) is the rule as written before the data are
    seen; ``needs(ev)`` returns why the rule cannot run on this evidence (then the result is
    skipped with that reason) or None. The body may also call ``r.skip(reason)`` itself, or set
    ``r.original_override`` (with ``r.original_reason``) where its verdict does not speak for the
    original's claim.

    ``asserts`` is one plain sentence of what the test asserts; ``original`` whether that assertion,
    when it holds, agrees with the original study's claim for ``claim`` ("same") or goes against it
    ("opposite"); None for sanity tests (kind "S") only. Every registered rule declares both (a
    machinery test checks the registry; a rule without them shows no sentence and "n/a").
    """
    if kind not in KINDS:
        raise ValueError(f"{test}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if original not in POLARITIES:
        raise ValueError(f"{test}: original must be one of {POLARITIES}, not {original!r}")
    if kind == "S" and original is not None:
        raise ValueError(f"{test}: a sanity test has no polarity (original=None)")

    def wrap(body: Callable[[dict, ClaimResult], None]) -> Rule:
        def evaluate(ev: dict) -> ClaimResult:
            text = statement(ev) if callable(statement) else statement
            r = ClaimResult(claim, test, kind, text, asserts=asserts, original=original)
            if r.skip_if(needs(ev) if needs else None):
                return r
            body(ev, r)
            return r

        evaluate.__name__ = body.__name__
        evaluate.__doc__ = body.__doc__
        evaluate.test = test
        evaluate.claim = claim
        evaluate.kind = kind
        evaluate.asserts = asserts
        evaluate.original = original
        evaluate.statement = statement
        return evaluate

    return wrap


class ClaimSet:
    """The ordered claim tests of one experiment: test name -> decision rule.

    Whether the evidence was measured at a budget that asserts claims (``asserts_claims``) is applied
    in one place (:meth:`evaluate`), so a rule never decides it. ``original_claims`` maps each claim ID
    to the original study's claim in one sentence (what "the original's claim" column speaks of).
    ``extra_reasons`` maps a kind of derived evidence (``kinds``) to why a per-model record cannot
    evaluate its rules: a per-model record lists those rules as skipped with that reason
    (:meth:`evaluate_all`), so a single-model run still shows them.
    """

    def __init__(self, rules: dict[str, Rule] | list[Rule], extra: dict[str, Rule] | list[Rule] | None = None,
                 kinds: dict[str, tuple[str, ...]] | None = None, original_claims: dict[str, str] | None = None,
                 extra_reasons: dict[str, str] | None = None):
        self.rules = _by_test(rules)
        self.extra = _by_test(extra or {})  # rules evaluated on derived evidence (e.g. across models)
        # which extra rules apply to which kind of derived evidence (default: all of them, across models)
        self.kinds = kinds if kinds is not None else {"cross-model": tuple(self.extra)}
        self.original_claims = dict(original_claims or {})
        self.extra_reasons = dict(extra_reasons or {})
        # tests (or "*" for all) that mean nothing on an untrained twin (``random:NAME``) -> why
        self.untrained_reasons: dict[str, str] = {}

    def tests_for(self, ev: dict) -> list[str]:
        """The tests that apply to ``ev``: the per-model rules, or the extra rules of its kind."""
        kind = ev.get("kind")
        return list(self.kinds.get(kind, ())) if kind else list(self.rules)

    @property
    def order(self) -> list[str]:
        return list(self.rules) + list(self.extra)

    def __contains__(self, test: str) -> bool:
        return test in self.rules or test in self.extra

    def __iter__(self):
        return iter(self.order)

    def rule(self, test: str) -> Rule:
        return self.rules.get(test) or self.extra[test]

    def untrained_reason(self, ev: dict, test: str) -> str | None:
        """Why ``test`` means nothing on ``ev`` when ``ev`` was measured on an untrained twin."""
        from .models import TWIN_PREFIX

        if not str(ev.get("model", "")).startswith(TWIN_PREFIX) or self.rule(test).kind == "S":
            return None  # sanity checks run on a twin as on any model
        r = self.untrained_reasons
        return r.get(test) or r.get(self.rule(test).claim) or r.get("*")

    def evaluate(self, ev: dict, test: str) -> ClaimResult:
        why = self.untrained_reason(ev, test)
        if why:
            f = self.rule(test)
            return ClaimResult(f.claim, test, f.kind, _declared_statement(f, ev), asserts=f.asserts, original=f.original,
                               original_claim=self.original_claims.get(f.claim, "")).skip(
                f"{why}; on an untrained twin this test is not measured")
        result = self.rule(test)(ev)
        if not result.applicable and isinstance(result.reason, MissingEvidence) and ev.get("parts_left_out_by_budget"):
            result = not_measured_at_budget(result, ev)  # not measured at this budget: inconclusive, not skipped
        if not ev.get("asserts_claims", True) and result.kind != "S":
            result.asserted = False
        result.original_claim = self.original_claims.get(result.claim, "")
        return result

    def skipped_extra(self, ev: dict) -> list[ClaimResult]:
        """On a per-model record, the extra rules listed as skipped with the reason of their kind of
        evidence (``extra_reasons``); none on derived evidence or where no reason is declared."""
        if ev.get("kind"):
            return []
        out = []
        for kind, tests in self.kinds.items():
            reason = self.extra_reasons.get(kind)
            if not reason:
                continue
            for test in tests:
                f = self.rule(test)
                out.append(ClaimResult(f.claim, test, f.kind, _declared_statement(f, ev), asserts=f.asserts,
                                       original=f.original, original_claim=self.original_claims.get(f.claim, ""),
                                       ).skip(reason))
        return out

    def evaluate_all(self, ev: dict, tests: Iterable[str] | None = None) -> list[ClaimResult]:
        """The results of ``tests`` (default: those that apply to ``ev``, :meth:`tests_for`). The
        report builder adds the extra rules a per-model record lists as skipped (:meth:`skipped_extra`)."""
        names = list(tests) if tests is not None else self.tests_for(ev)
        return [self.evaluate(ev, t) for t in names]

    def complete(self, claim: dict) -> dict:
        """A stored claim record (JSON) with what this version of the rules declares and the record
        lacks: the sentence it asserts, its polarity, the original's claim, the deciding condition's
        index and the original-claim verdict, all derived from the stored verdict and conditions (no rule
        is re-evaluated). The kind is the current declaration's (a relabelling, e.g. H to A, changes
        the verdict's words, not its value). A copy; the argument is not changed."""
        c = dict(claim)
        f = self.rules.get(c.get("test")) or self.extra.get(c.get("test"))
        if f is not None:
            if getattr(f, "kind", None) and f.kind != c.get("kind"):
                c["kind"] = f.kind
                if c.get("verdict_value") and not str(c.get("verdict", "")).startswith("error"):
                    c["verdict"] = verdict_word(f.kind, Verdict(c["verdict_value"]))
            if not c.get("asserts"):
                c["asserts"] = getattr(f, "asserts", "")
            if c.get("original") is None:  # stored before the rule declared it
                c["original"] = getattr(f, "original", None)
        c.setdefault("asserts", "")
        c.setdefault("original", None)
        if not c.get("original_claim"):
            c["original_claim"] = self.original_claims.get(c.get("claim"), "")
        if "deciding" not in c:
            c["deciding"] = deciding_index(c.get("conditions") or [])
        changed = c.get("kind") != claim.get("kind") or c["original"] != claim.get("original")
        if "original_verdict" not in c or changed:
            value = c.get("verdict_value") or _value_of(c)
            c["original_verdict"] = original_verdict(c.get("kind", "H"), value, c["original"],
                                                     c.get("original_override"))
        return c

    def sort(self, claims: list[dict]) -> list[dict]:
        """Claim records (JSON) in the set's order."""
        pos = {name: i for i, name in enumerate(self.order)}
        return sorted(claims, key=lambda c: pos.get(c["test"], len(pos)))


def _declared_statement(f: Rule, ev: dict) -> str:
    """A rule's statement as it would read on ``ev``, without running the rule."""
    statement = getattr(f, "statement", "")
    if not callable(statement):
        return statement
    try:
        return statement(ev)
    except (KeyError, TypeError, ValueError, IndexError):  # it reads evidence this record lacks
        return f.asserts


def _value_of(claim: dict) -> str:
    """The verdict value of a stored record that predates ``verdict_value``."""
    if not claim.get("applicable", True):
        return Verdict.SKIPPED.value
    if not claim.get("asserted", True):
        return Verdict.NOT_ASSERTED.value
    statuses = [_status(d) for d in claim.get("conditions") or []]
    if "fails" in statuses:
        return Verdict.REFUTED.value
    return Verdict.INCONCLUSIVE.value if "inconclusive" in statuses else Verdict.REPLICATES.value


def _by_test(rules) -> dict[str, Rule]:
    """Rules given as a dict, or as a list of :func:`rule`-declared functions (keyed by test)."""
    return dict(rules) if isinstance(rules, dict) else {r.test: r for r in rules}


class MissingEvidence(str):
    """A skip reason that says the evidence a rule reads was not measured in this run (a part left out), as
    opposed to a rule that does not apply (another model's protocol, too few words). On evidence whose budget
    left parts out (``parts_left_out_by_budget``), :meth:`ClaimSet.evaluate` turns such a skip into an
    inconclusive verdict that names the budget (:func:`not_measured_at_budget`)."""


def requires(ev: dict, *keys: str) -> str | None:
    """Why a rule cannot run on this evidence (a missing key), or None."""
    for key in keys:
        if ev.get(key) is None:
            return MissingEvidence(f"this run has no '{key}' evidence (parts {ev.get('parts', 'all')}, layers "
                                   f"{'all' if ev.get('all_layers', True) else 'subset'})")
    return None


NOT_MEASURED_PREFIX = "measured at the "  # the condition of a claim test its budget did not measure


def not_measured(deciding_name: str | None) -> bool:
    """Whether a verdict's deciding condition (its name) is the budget's "not measured" one."""
    return bool(deciding_name) and deciding_name.startswith(NOT_MEASURED_PREFIX) and " budget (it leaves out " in deciding_name


def not_measured_at_budget(result: "ClaimResult", ev: dict) -> "ClaimResult":
    """``result`` (skipped for want of evidence the budget did not measure) as an inconclusive verdict whose one
    condition says which budget left which parts out, and what would measure them."""
    left, budget = ev["parts_left_out_by_budget"], ev.get("budget", "this")
    result.applicable, result.conditions = True, [Condition(
        f"{NOT_MEASURED_PREFIX}{budget} budget (it leaves out {ev.get('experiment', 'the experiment')}'s part(s) "
        f"{left} to fit its time; --budget quick measures them: {result.reason})", "no", "==", "yes", False,
        inconclusive=True)]
    result.reason = ""
    return result


def requires_words(ev: dict, n: int = 3) -> str | None:
    """Why a rule over words cannot run (fewer than ``n`` measured words), or None."""
    have = len(ev.get("words_used", []))
    return None if have >= n else f"needs at least {n} measured words (have {have})"


def requires_paths(ev: dict, experiment: str, *paths: str) -> str | None:
    """Why a rule cannot run on evidence measured before it: a missing ``section.key...`` path."""
    for path in paths:
        node = ev
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return f"this evidence has no '{path}' (measured before the current rule): measure {experiment} again"
            node = node[part]
    return None


def needs_words_and(experiment: str, *paths: str) -> Callable[[dict], str | None]:
    """A rule's ``needs``: at least 3 measured words and every evidence path of the current rule."""
    def needs(ev: dict) -> str | None:
        return requires_words(ev) or requires_paths(ev, experiment, *paths)
    return needs

