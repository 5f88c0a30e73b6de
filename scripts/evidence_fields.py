"""Regenerate semphase/data/evidence_fields.json: every field path of each experiment's evidence, from the report
fixtures (tests/snapshots/fixtures/, every part at smoke) and the committed data files (results/**/data/), so that
`claims check` can tell a misspelt field of a TOML claim without measuring anything.

    .venv/bin/python scripts/evidence_fields.py
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semphase.user_claims import field_paths  # noqa: E402


def main() -> None:
    fields: dict[str, set] = {}
    files = sorted((ROOT / "tests" / "snapshots" / "fixtures").glob("*.json")) + sorted(ROOT.glob("results/**/data/*.json"))
    for path in files:
        rec = json.loads(path.read_text(encoding="utf-8"))
        ev = rec.get("evidence") if isinstance(rec, dict) else None
        if not isinstance(ev, dict) or "experiment" not in ev:
            continue
        fields.setdefault(ev["experiment"], set()).update(field_paths(ev))
    out = {exp: sorted(paths) for exp, paths in sorted(fields.items())}
    (ROOT / "semphase" / "data" / "evidence_fields.json").write_text(json.dumps(out, indent=0) + "\n", encoding="utf-8")
    print({exp: len(p) for exp, p in out.items()})


if __name__ == "__main__":
    main()
