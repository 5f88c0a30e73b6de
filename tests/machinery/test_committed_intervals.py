"""Every interval the committed reports print contains the number it is printed with.

A bootstrap of a minimum or a rank can sit beside its own estimate (exp7's K(90 %) did: 253 with an
interval of 256-271); the conventions ask that no interval excludes its estimate without saying why.
This reads every claim condition of every committed data file (``results/**/data/*.json``) and checks
that its value lies inside its interval, and that the claims summary's deciding conditions do too.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from semphase.claims import Condition

pytestmark = pytest.mark.machinery

ROOT = Path(__file__).resolve().parents[2]
DATA_FILES = sorted(p for p in (ROOT / "results").glob("**/data/*.json"))


def _records():
    for path in DATA_FILES:
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rec, dict) and "claims" in rec:
            yield path, rec


def outside(cond: dict) -> bool:
    """A numeric condition whose interval excludes its value (relative tolerance 1e-9)."""
    iv, v = cond.get("interval"), cond.get("value")
    if not iv or not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    lo, hi = float(iv[0]), float(iv[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(float(v))):
        return False
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    return not (lo - tol <= float(v) <= hi + tol)


def test_committed_data_files_exist():
    """The repository commits the data files the reports were built from."""
    assert DATA_FILES, "no results/**/data/*.json committed"


def test_every_committed_interval_contains_its_estimate():
    """No committed claim condition prints an interval that excludes its own value."""
    bad = [f"{path.relative_to(ROOT)}: {c['test']}: {d['name']} = {d['value']} not in {d['interval']}"
           for path, rec in _records() for c in rec["claims"] for d in c["conditions"] if outside(d)]
    assert not bad, "intervals that exclude their estimate:\n" + "\n".join(bad)


def test_the_check_catches_an_interval_beside_its_estimate():
    """The check above fails on a planted interval that excludes its value, and passes one that holds it."""
    beside = Condition("K(90 %)", 253, ">=", 113, True, (256.0, 271.0), "chunks").__dict__
    inside = Condition("K(90 %)", 262.0, ">=", 113, True, (256.0, 271.0), "chunks").__dict__
    assert outside(beside) and not outside(inside)
