"""``python -m semphase run exp1 ...``: measure, evaluate the claims, write data, figures, report."""
from __future__ import annotations

import sys

from ..errors import SemphaseError

BUILT = ("exp1",)


def run_cli(args) -> int:
    """Run a semantic experiment from parsed CLI arguments (model, device, output_dir, cache_dir,
    no_cache, seed, quiet, stimuli, processing). Returns the exit status."""
    if args.experiment not in BUILT:
        raise SemphaseError(f"{args.experiment} is not built yet in this version of semphase; "
                            "run exp1 (claims C1-C3) or exp10 instead.")
    from ..cache import EvidenceStore
    from ..models import load_model
    from ..report import OutputLayout
    from . import exp1
    from .report import publish
    from .stimuli import load_stimuli

    layout = OutputLayout.make(args.output_dir)
    layout.ensure_writable()
    stimuli = load_stimuli(getattr(args, "stimuli", None))  # a bad --stimuli fails before the model loads
    lm = load_model(args.model, args.device, getattr(args, "processing", "tl-default"))
    store = EvidenceStore(None if args.no_cache else (args.cache_dir or layout.cache))
    ev = exp1.measure(lm, stimuli, store, seed=args.seed, progress=not args.quiet)
    claims = [c.to_json() for c in exp1.evaluate_claims(ev)]
    written = publish(layout, ev, claims)
    print(f"exp1 on {lm.name} ({lm.device}): {len(ev['words_used'])} words, wall {ev['timing']['total_seconds']:.1f} s",
          file=sys.stderr)
    for c in claims:
        print(f"  {c['claim']:>3} {c['test']}: {c['verdict']}")
    print("wrote:\n  " + "\n  ".join(written))
    return 0
