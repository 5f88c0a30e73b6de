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

Reproduction (R) and sanity (S) tests show the same values with their own words ("reproduced",
"sane"); the value is what the pytest plugin, the reports and the summary act on.

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


# How R and S tests word the decided values; H tests use the Verdict's own value.
_WORDS = {
    "R": {Verdict.REPLICATES: "reproduced", Verdict.REFUTED: "NOT reproduced"},
    "S": {Verdict.REPLICATES: "sane", Verdict.REFUTED: "NOT sane"},
}

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
    kind: str  # "R" reproduction, "H" hypothesis, "S" sanity
    statement: str
    conditions: list[Condition] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    applicable: bool = True
    reason: str = ""
    asserted: bool = True

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

    def explain(self) -> str:
        lines = [f"{self.claim} {self.test} ({self.kind}): {self.statement}"]
        lines += ["  " + c.text() for c in self.conditions]
        if self.reason:
            lines.append("  " + self.reason)
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        for c, cj in zip(self.conditions, d["conditions"]):
            cj["status"] = c.status
        d["verdict"] = self.verdict()
        d["verdict_value"] = self.value.value
        d["passed"] = self.passed
        return d


def verdict_word(kind: str, value: Verdict) -> str:
    return _WORDS.get(kind, {}).get(value, value.value)


Rule = Callable[[dict], ClaimResult]


def rule(claim: str, test: str, kind: str, statement: str | Callable[[dict], str],
         needs: Callable[[dict], str | None] | None = None) -> Callable[[Callable[[dict, ClaimResult], None]], Rule]:
    """Declare a decision rule: the decorated ``body(ev, r)`` fills ``r``'s conditions and numbers.

    ``statement`` (text, or a function of the evidence) is the rule as written before the data are
    seen; ``needs(ev)`` returns why the rule cannot run on this evidence (then the result is
    skipped with that reason) or None. The body may also call ``r.skip(reason)`` itself.
    """

    def wrap(body: Callable[[dict, ClaimResult], None]) -> Rule:
        def evaluate(ev: dict) -> ClaimResult:
            text = statement(ev) if callable(statement) else statement
            r = ClaimResult(claim, test, kind, text)
            if r.skip_if(needs(ev) if needs else None):
                return r
            body(ev, r)
            return r

        evaluate.__name__ = body.__name__
        evaluate.__doc__ = body.__doc__
        evaluate.test = test
        return evaluate

    return wrap


class ClaimSet:
    """The ordered claim tests of one experiment: test name -> decision rule.

    ``asserts(evidence)`` says whether the evidence was measured at a budget that asserts claims;
    the set applies it in one place (:meth:`evaluate`), so a rule never decides it.
    """

    def __init__(self, rules: dict[str, Rule] | list[Rule], extra: dict[str, Rule] | list[Rule] | None = None,
                 kinds: dict[str, tuple[str, ...]] | None = None):
        self.rules = _by_test(rules)
        self.extra = _by_test(extra or {})  # rules evaluated on derived evidence (e.g. across models)
        # which extra rules apply to which kind of derived evidence (default: all of them, across models)
        self.kinds = kinds if kinds is not None else {"cross-model": tuple(self.extra)}

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

    def evaluate(self, ev: dict, test: str) -> ClaimResult:
        rule = self.rules.get(test) or self.extra[test]
        result = rule(ev)
        if not ev.get("asserts_claims", True) and result.kind != "S":
            result.asserted = False
        return result

    def evaluate_all(self, ev: dict, tests: Iterable[str] | None = None) -> list[ClaimResult]:
        names = list(tests) if tests is not None else self.tests_for(ev)
        return [self.evaluate(ev, t) for t in names]

    def sort(self, claims: list[dict]) -> list[dict]:
        """Claim records (JSON) in the set's order."""
        pos = {name: i for i, name in enumerate(self.order)}
        return sorted(claims, key=lambda c: pos.get(c["test"], len(pos)))


def _by_test(rules) -> dict[str, Rule]:
    """Rules given as a dict, or as a list of :func:`rule`-declared functions (keyed by test)."""
    return dict(rules) if isinstance(rules, dict) else {r.test: r for r in rules}


def requires(ev: dict, *keys: str) -> str | None:
    """Why a rule cannot run on this evidence (a missing key), or None."""
    for key in keys:
        if ev.get(key) is None:
            return (f"this run has no '{key}' evidence (parts {ev.get('parts', 'all')}, layers "
                    f"{'all' if ev.get('all_layers', True) else 'subset'})")
    return None


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

