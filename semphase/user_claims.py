"""A researcher's own claims: a Python file outside the package whose rules test one registered
experiment's evidence, evaluated beside the built-in claims.

The file uses the claims core's public API and names its experiment::

    from semphase.claims import cond, rule

    EXPERIMENT = "exp10"

    @rule("U1", "test_u1_layer0_share_above_half", "H",
          "the layer-0 share of positive zero-ablation ΔPPL exceeds 0.5 on held-out chunks",
          asserts="layer 0 carries more than half of the positive ΔPPL", original=None)
    def u1(ev, r):
        s = ev["stats"]
        r.conditions.append(cond("layer-0 share", s["layer0_share"], ">", 0.5, interval=s["layer0_share_ci95"]))

Every ``@rule`` of the file is one claim test; its conditions use the same interval machinery as the
built-in rules (``cond(..., interval=...)``: a straddled bound is *inconclusive*). Their results are
stored in the experiment's data file marked as the user's, with the file's name and sha256.
"""
from __future__ import annotations

import hashlib
import importlib.util
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
    built-in claim test. Each problem is one sentence."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise SemphaseError(f"--claims {path!r}: no such file; give a Python file of @rule claims (see "
                            "examples/my_claims.py).")
    data = p.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
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
    return UserClaims(str(p), sha, exp_id, seen)
