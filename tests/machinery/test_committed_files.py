"""Committed results and reports name no machine's absolute paths: data copies are named inside their data folder
(wikitext-2-raw/wiki.valid.raw) with their sha256, so a report reads the same on every machine."""
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.machinery
ROOT = Path(__file__).resolve().parents[2]
ABSOLUTE = re.compile(r"""(?:^|[\s"'(:=])/(?:work|tmp|home|root|Users|mnt|scratch|var|private)/""")


def test_committed_results_and_reports_hold_no_absolute_machine_path():
    res = subprocess.run(["git", "-C", str(ROOT), "ls-files", "results", "reports"], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip("not a git checkout")
    offenders = []
    for name in res.stdout.split():
        path = ROOT / name
        if path.suffix not in (".json", ".md", ".csv", ".jsonl") or not path.is_file():
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            if ABSOLUTE.search(line):
                offenders.append(f"{name}:{i + 1}: {line.strip()[:120]}")
                break
    assert not offenders, "\n".join(offenders[:20])
