"""``python -m semphase run exp1|exp2|exp3 ...``: measure, evaluate the claims, write data,
figures, report. The three share the residuals cached in the evidence store, so whichever runs
second does no forward pass."""
from __future__ import annotations

import importlib
import sys

from ..errors import SemphaseError

BUILT = ("exp1", "exp2", "exp3")


def run_cli(args) -> int:
    """Run a semantic experiment from parsed CLI arguments (model, device, output_dir, cache_dir,
    no_cache, seed, quiet, stimuli, processing, budget). Returns the exit status."""
    if args.experiment not in BUILT:
        raise SemphaseError(f"{args.experiment} is not a semantic experiment; choose one of {', '.join(BUILT)}.")
    from ..cache import EvidenceStore
    from ..models import load_model
    from ..report import OutputLayout
    from .report import publish
    from .stimuli import load_stimuli

    module = importlib.import_module(f"semphase.semantic.{args.experiment}")
    layout = OutputLayout.make(args.output_dir)
    layout.ensure_writable()
    stimuli = load_stimuli(getattr(args, "stimuli", None))  # a bad --stimuli fails before the model loads
    lm = load_model(args.model, args.device, getattr(args, "processing", "tl-default"))
    store = EvidenceStore(None if args.no_cache else (args.cache_dir or layout.cache))
    kwargs = {} if args.experiment == "exp1" else {"asserts_claims": getattr(args, "budget", "quick") != "smoke"}
    ev = module.measure(lm, stimuli, store, seed=args.seed, progress=not args.quiet, **kwargs)
    claims = [c.to_json() for c in module.evaluate_claims(ev)]
    written = publish(layout, ev, claims)
    print(f"{args.experiment} on {lm.name} ({lm.device}): {len(ev['words_used'])} words, wall "
          f"{ev['provenance']['wall_seconds']:.1f} s", file=sys.stderr)
    for c in claims:
        print(f"  {c['claim']:>3} {c['test']}: {c['verdict']}")
    print("wrote:\n  " + "\n  ".join(written))
    return 0
