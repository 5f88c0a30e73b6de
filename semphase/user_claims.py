"""A researcher's own claims: a Python file outside the package whose rules test one registered
experiment's evidence, evaluated beside the built-in claims.

The file uses the claims core's public API and names its experiment::

    from semphase.claims import cond, rule

    EXPERIMENT = "exp10"
    PARTS = "ab"  # optional: the experiment's parts the claims read; `pytest --claims` measures only these

    @rule("U1", "test_u1_layer0_share_above_half", "H",
          "the layer-0 share of positive zero-ablation ΔPPL exceeds 0.5 on held-out chunks",
          asserts="layer 0 carries more than half of the positive ΔPPL", original=None)
    def u1(ev, r):
        s = ev["stats"]
        r.conditions.append(cond("layer-0 share", s["layer0_share"], ">", 0.5, interval=s["layer0_share_ci95"]))

Every ``@rule`` of the file is one claim test; its conditions use the same interval machinery as the
built-in rules (``cond(..., interval=...)``: a straddled bound is *inconclusive*). Their results are
stored in the experiment's data file marked as the user's, with the file's name and sha256.

The simple case, one field against a bound, may be a TOML file instead (``examples/my_claims.toml``)::

    experiment = "exp10"
    parts = "ab"                          # optional: the parts the claims read (pytest measures only these)

    [[claim]]
    id = "U4"
    test = "test_u4_layer0_share_above_half"
    sentence = "the layer-0 share of positive zero-ablation ΔPPL exceeds 0.5"
    field = "stats.layer0_share"          # a path into the evidence: dots, list indices as numbers
    op = ">"                              # <, <=, >, >=, ==
    bound = 0.5
    interval = "stats.layer0_share_ci95"  # optional: a [low, high] field; straddling the bound is inconclusive

Its field paths are checked against the fields the experiment's evidence has (``semphase/data/
evidence_fields.json``) when the file is loaded, before anything is measured.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import registry
from .errors import SemphaseError


@dataclass
class UserClaims:
    path: str
    sha256: str
    experiment: str
    rules: dict = field(default_factory=dict)  # test name -> Rule
    parts: str | None = None  # the experiment's parts the claims read (None: the run's); pytest measures only these

    @property
    def name(self) -> str:
        return Path(self.path).name

    def evaluate_one(self, ev: dict, test: str):
        """One rule of the file on ``ev``: a ClaimResult marked as the user's. A rule that reads a
        field the evidence lacks is bad input: one sentence naming the rule and the field."""
        from .claims import ClaimSet

        try:  # the claims core's own evaluation: the budget's "not asserted" applies as to a built-in claim
            result = ClaimSet(self.rules).evaluate(ev, test)
        except (KeyError, IndexError, TypeError) as exc:
            raise SemphaseError(f"--claims {self.name}: {test} reads {exc!r}, which {self.experiment}'s evidence "
                                f"does not hold here; check the field names against a data file "
                                f"(data/{self.experiment}_MODEL.json, its 'evidence').") from None
        result.marks = {"user": True, "claims_file": self.name, "claims_sha256": self.sha256}
        return result

    def evaluate(self, ev: dict) -> list[dict]:
        """Every rule of the file on ``ev``, as claim records (JSON) marked as the user's."""
        return [self.evaluate_one(ev, test).to_json() for test in self.rules]


def load(path: str) -> UserClaims:
    """Load and check a claims file without measuring anything: it exists and runs, names a
    registered experiment, declares at least one rule, and no test name is repeated or taken by a
    built-in claim test (a TOML file: its fields exist in the experiment's evidence and its bounds are
    numbers). Each problem is one sentence."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SemphaseError(f"--claims {path!r}: no such file; give a Python file of @rule claims (see "
                            "examples/my_claims.py) or a TOML file of field-bound claims (examples/my_claims.toml).")
    data = p.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if p.suffix.lower() == ".toml":
        exp_id, rules, parts = _load_toml(p, data)
        return _checked(p, sha, exp_id, rules, parts)
    spec = importlib.util.spec_from_file_location(f"semphase_user_claims_{sha[:16]}", p)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SemphaseError:
        raise
    except Exception as exc:  # the user's code: any error it raises is bad input, said in one sentence
        raise SemphaseError(f"--claims {p.name}: the file does not load ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'no message'}).") from None
    exp_id = getattr(module, "EXPERIMENT", None)
    if exp_id not in registry.EXPERIMENTS:
        raise SemphaseError(f"--claims {p.name}: EXPERIMENT = {exp_id!r} is not a registered experiment; use one of "
                            f"{', '.join(registry.EXPERIMENTS)}.")
    rules = [v for v in vars(module).values() if callable(v) and all(hasattr(v, a) for a in ("test", "claim", "kind"))]
    return _checked(p, sha, exp_id, rules, getattr(module, "PARTS", None))


def _checked(p: Path, sha: str, exp_id: str, rules: list, parts=None) -> UserClaims:
    exp = registry.get(exp_id)
    if parts is not None:
        if not exp.parts:
            raise SemphaseError(f"--claims {p.name}: {exp_id} has no parts; drop PARTS / parts.")
        if not isinstance(parts, str) or not parts.strip() or set(parts.replace(",", "").strip()) - set(exp.parts):
            raise SemphaseError(f"--claims {p.name}: parts {parts!r}: use letters from {''.join(exp.parts)} "
                                f"({exp_id}'s parts).")
        parts = "".join(dict.fromkeys(parts.replace(",", "").strip()))
    if not rules:
        raise SemphaseError(f"--claims {p.name}: no @rule claim in the file; declare each with semphase.claims.rule.")
    seen: dict = {}
    builtin = set(registry.get(exp_id).claims.order)
    for r in rules:
        if r.test in seen:
            raise SemphaseError(f"--claims {p.name}: the test name {r.test!r} is declared twice; give each claim its "
                                "own test name.")
        if r.test in builtin:
            raise SemphaseError(f"--claims {p.name}: {r.test!r} is a built-in claim test of {exp_id}; name yours "
                                "differently.")
        seen[r.test] = r
    return UserClaims(str(p), sha, exp_id, seen, parts)


# -- the TOML form: one field against a bound per claim ------------------------------------------------------

_TOML_KEYS = {"id", "test", "sentence", "field", "op", "bound", "interval", "kind", "asserts", "name"}
_TOML_OPS = ("<", "<=", ">", ">=", "==")


def field_paths(ev, prefix: str = "", dynamic: bool = False) -> set[str]:
    """Every field path of an evidence dict: keys joined by dots, list elements as ``*``, numeric keys (layer
    numbers, thresholds) as ``#``, and the keys of a dict of stimuli words (``words``) as ``?``."""
    out: set[str] = set()
    if isinstance(ev, dict):
        for k, v in ev.items():
            key = "?" if dynamic else ("#" if _NUMERIC.fullmatch(str(k)) else str(k))
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            out |= field_paths(v, path, dynamic=str(k) in _DYNAMIC)
    elif isinstance(ev, list):
        for v in ev:
            if isinstance(v, (dict, list)):
                out |= field_paths(v, f"{prefix}.*")
    return out


_DYNAMIC = {"words"}  # dicts keyed by data (stimuli words), not by field names
_NUMERIC = re.compile(r"-?\d+(\.\d+)?")


def _split_path(path) -> list:
    """A field path as keys: a TOML array of keys as given, or a string split at dots (numbers kept as text; they
    index lists when the value is a list)."""
    if isinstance(path, list):
        return [str(k) for k in path]
    return [k for k in str(path).split(".") if k != ""]


def _pattern(keys: list) -> str:
    return ".".join("#" if _NUMERIC.fullmatch(k) else k for k in keys)


def known_fields(exp_id: str) -> set[str] | None:
    """The field paths the experiment's evidence has (packaged; None when the list is not there)."""
    path = Path(__file__).parent / "data" / "evidence_fields.json"
    if not path.is_file():
        return None
    return set(json.loads(path.read_text(encoding="utf-8")).get(exp_id, [])) or None


def _field_known(keys: list, known: set[str]) -> bool:
    """Whether ``keys`` is a path the evidence has: ``#`` stands for a numeric key, ``*`` for a list index, ``?``
    for any key of a dict keyed by data."""
    def fits(segment: str, key: str) -> bool:
        return segment == key or segment == "?" or (segment in ("#", "*") and bool(_NUMERIC.fullmatch(key)))

    for path in known:
        segments = path.split(".")
        if len(segments) == len(keys) and all(fits(a, b) for a, b in zip(segments, keys)):
            return True
    return False


def resolve(ev: dict, keys: list):
    """The evidence's value at ``keys`` (list indices given as numbers in text); KeyError names the path."""
    value = ev
    for k in keys:
        if isinstance(value, list) and re.fullmatch(r"-?\d+", k):
            value = value[int(k)]
        elif isinstance(value, dict) and k in value:
            value = value[k]
        else:
            raise KeyError(".".join(keys))
    return value


def _load_toml(p: Path, data: bytes) -> tuple[str, list]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    from .claims import cond, rule

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SemphaseError(f"--claims {p.name}: not valid TOML ({str(exc).splitlines()[0]}).") from None
    exp_id = doc.get("experiment")
    if exp_id not in registry.EXPERIMENTS:
        raise SemphaseError(f"--claims {p.name}: experiment = {exp_id!r} is not a registered experiment; use one of "
                            f"{', '.join(registry.EXPERIMENTS)}.")
    known = known_fields(exp_id)
    rules = []
    for n, c in enumerate(doc.get("claim") or [], 1):
        where = f"--claims {p.name}: claim {n} ({c.get('id', 'no id')})" if isinstance(c, dict) else ""
        if not isinstance(c, dict):
            raise SemphaseError(f"--claims {p.name}: each [[claim]] must be a table of keys.")
        missing = [k for k in ("id", "test", "sentence", "field", "op", "bound") if k not in c]
        if missing:
            raise SemphaseError(f"{where}: missing {', '.join(missing)}.")
        extra = sorted(set(c) - _TOML_KEYS)
        if extra:
            raise SemphaseError(f"{where}: unknown key(s) {', '.join(extra)}; the keys are {', '.join(sorted(_TOML_KEYS))}.")
        if c["op"] not in _TOML_OPS:
            raise SemphaseError(f"{where}: op = {c['op']!r}; use one of {' '.join(_TOML_OPS)}.")
        if isinstance(c["bound"], bool) or not isinstance(c["bound"], (int, float)):
            raise SemphaseError(f"{where}: bound = {c['bound']!r} is not a number.")
        if not str(c["test"]).startswith("test_"):
            raise SemphaseError(f"{where}: test = {c['test']!r}; a test name starts with test_.")
        kind = c.get("kind", "H")
        if kind not in ("H", "R", "A", "S"):
            raise SemphaseError(f"{where}: kind = {kind!r}; use H (hypothesis), R (reproduction), A or S.")
        paths = {"field": _split_path(c["field"])}
        if "interval" in c:
            paths["interval"] = _split_path(c["interval"])
        for what, keys in paths.items():
            if known is not None and not _field_known(keys, known):
                close = difflib.get_close_matches(_pattern(keys), sorted(known), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SemphaseError(f"{where}: {what} {'.'.join(keys)!r} is not a field of {exp_id}'s evidence{hint}; "
                                    f"see a data file's 'evidence' (data/{exp_id}_MODEL.json).")
        rules.append(_toml_rule(c, kind, paths, rule, cond))
    return exp_id, rules, doc.get("parts")


def _toml_rule(c: dict, kind: str, paths: dict, rule, cond):
    name = c.get("name") or ".".join(paths["field"])

    @rule(str(c["id"]), str(c["test"]), kind, str(c["sentence"]), asserts=str(c.get("asserts") or c["sentence"]),
          original=None)
    def body(ev, r):
        value = resolve(ev, paths["field"])
        interval = resolve(ev, paths["interval"]) if "interval" in paths else None
        r.conditions.append(cond(name, value, c["op"], c["bound"], interval=interval))

    return body
