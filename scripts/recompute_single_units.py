"""Recompute a cached single-head sweep unit of exp10's rank range with today's code and compare it bit for bit.

    .venv/bin/python scripts/recompute_single_units.py CACHE_DIR KIND LAYER [--model smollm2-135m] [--budget quick]

CACHE_DIR is a run's cache folder (results/cache for the committed run), KIND a single-head ablation or replacement
(zero, mean is not supported here: it needs the head means; relu, l1, identity, kernel), LAYER the layer swept. Each
of the rank range's chunks is measured in a temporary cache and compared with the stored unit of the same tokens
(the unit's key names the tokens' sha256). Exit 0 when every stored unit found is bit-identical, 1 when one differs,
2 when none is stored. Use it before reading back units that an older commit measured.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from semphase import registry, sweeps
from semphase.ablation import AblationEngine
from semphase.cache import EvidenceStore
from semphase.session import Session, Settings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache_dir")
    ap.add_argument("kind", choices=["zero", "relu", "l1", "identity", "kernel"])
    ap.add_argument("layer", type=int)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--budget", default="quick")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--split", default="validation")
    args = ap.parse_args()
    s = Session(Settings(models=(args.model,), devices=("cpu",), budget=args.budget, data_dir=args.data_dir,
                         split=args.split, progress=False))
    lm = s.model(args.model)
    ts = s.tokens(lm, registry.get("exp10").data)
    stored = [json.loads(p.read_text()) for c in range(ts.n_chunks)
              for p in (Path(args.cache_dir) / f"single-{args.kind}").glob(f"*/L{args.layer}_c{c}.json")]
    stored = [u for u in stored if u["key"]["tokens_sha256"] == ts.fingerprint and u["key"]["model"] == lm.name]
    if not stored:
        print(f"no stored single-{args.kind} unit of layer {args.layer} on these tokens ({ts.fingerprint[:12]})")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        fresh = sweeps.single_sweep(AblationEngine(lm), ts, args.kind, EvidenceStore(tmp), [args.layer])
    same = True
    for u in stored:
        c = int(u["unit"].rsplit("_c", 1)[1])
        old, new = np.asarray(u["data"]), fresh[args.layer, :, c, :]
        ok = bool(np.array_equal(old, new))
        same &= ok
        print(f"{u['unit']} (entry {u['key_sha256'][:12]}): bit-identical {ok}, largest |difference| "
              f"{np.nanmax(np.abs(old - new)):.3g}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
