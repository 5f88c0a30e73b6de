"""Token budgets: how much evaluation text a run uses, and whether claims are asserted.

A WikiText experiment reads two disjoint token ranges of its split: the *rank* range (the
original's protocol: the first ``tokens`` tokens; rankings, means and in-sample curves come from
it) and the *eval* range right after it (``eval_tokens`` tokens, None: the rest of the split),
where held-out curves and effects are measured.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import SemphaseError


@dataclass(frozen=True)
class Budget:
    name: str
    tokens: int | None  # None: the whole split
    ctx: int
    asserts_claims: bool
    description: str
    eval_tokens: int | None = None  # the held-out range after the rank range; None: the rest of the split
    null_sets: int = 40  # null draws that each need forward passes (exp10's C22: random head sets)
    refine: bool = True  # resolve held-out thresholds to one head (smoke: the coarse grid only)
    grid_step: int = 10  # step of the cumulative grids (models other than GPT-2 small; smoke: 40)
    weight_draws: int = 20  # exp6: draws of each random control (random subspaces, random partitions); each needs forwards
    # (a control is a distribution: 20 draws or more wherever claims are asserted; smoke: 2)
    original_grids: bool = False  # exp6: the original's whole K and k grids (full), else the points the claims read
    pca_chunks: int = 20  # exp7: chunks drawn at random (seeded) from the split, positions sampled within them
    pca_positions: int = 500  # exp7: positions sampled per drawn chunk, position 0 apart (spec: 10,000 in 20 chunks)
    pca_boot: int = 200  # exp7: chunk-bootstrap replicates of the PCA ranks (one eigen-decomposition per layer each)
    refits: int | None = None  # exp8: bootstrap replicates of g refitted (None: all of exp3's; smoke: 100)
    replace_layers: int | None = None  # exp10 part i: layers swept per method, evenly spaced (None: every layer 1..L-1,
    # and where ``refine`` every crossing of part k's held-out curves resolved to one head; on a sample, a bisection of
    # the thresholds the hypothesis rules compare)
    crossfit: bool = False  # exp10 part v: a second rank range B of the rank range's size (C26 cross-fitted), right after
    # the held-out range (where the held-out range takes the rest of the split there is no room: C26 then skips)
    control_orders: int = 20  # exp10 part v: random head orders evaluated on both rank ranges (C26's control)
    every_layer_c23: bool = False  # exp10 part k on a layer sample: C23's relu and mean-ablation held-out curves over
    # every head of layers 1..L-1 as well (relu's single-head ΔPPL of every layer measured, or reused from a file)
    exp10_parts: str | None = None  # exp10's parts this budget measures when --parts is not given (None: all); the
    # claim tests that need a part it leaves out are inconclusive, with the reason, not skipped


BUDGETS = {
    "smoke": Budget("smoke", 128, 64, False,
                    "every step on 128 tokens (2 chunks of 64), held-out on the next 128 (2 chunks), 8 null draws, "
                    "coarse grids; checks the evidence is sane, asserts no claim", 128, 8, False, 40,
                    weight_draws=2, pca_chunks=2, pca_positions=48, pca_boot=20, refits=100, replace_layers=3,
                    crossfit=True, control_orders=3),
    "quick": Budget("quick", 2048, 1024, True,
                    "the original's protocol on the first 2,048 tokens (2 chunks of 1,024); held-out on the next "
                    "8,192 (8 chunks); exp10 phases 2-3 replace the heads of 6 evenly spaced layers of 1..L-1 "
                    "(every layer: --replace-layers all) and resolve the held-out thresholds their hypothesis "
                    "tests compare by bisection",
                    8192, replace_layers=6, crossfit=True, every_layer_c23=True),
    "brief": Budget("brief", 2048, 1024, True,
                    "quick's tokens, held-out range and rules, with exp10 limited to parts a, c, d and l (the "
                    "single-head zero-ablation sweep on the rank range, the held-out cumulative zero curve, the "
                    "layer profile, the FLOP tables), to fit 2 hours on two CPU cores for SmolLM2-135M; the claim "
                    "tests that need exp10's other parts are inconclusive (not measured)",
                    8192, replace_layers=6, crossfit=True, every_layer_c23=True, exp10_parts="acdl"),
    "full": Budget("full", 2048, 1024, True,
                   "rankings on the first 2,048 tokens (the original's data); held-out on the rest of the "
                   "validation split", None, weight_draws=20, original_grids=True, pca_chunks=50, crossfit=True),
}


def parse_replace_layers(value) -> int | str | None:
    """``--replace-layers``: a positive number of layers, or ``all`` (every layer 1..L-1); None: the budget's."""
    if value is None:
        return None
    if str(value).strip().lower() == "all":
        return "all"
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise SemphaseError(f"--replace-layers {value!r}: give a positive number of layers (e.g. 6) or 'all'.")
    return n


def get_budget(name: str, tokens: int | None = None, ctx: int | None = None,
               eval_tokens: int | None = None, replace_layers: int | str | None = None) -> Budget:
    """The named budget, with ``tokens``/``ctx``/``eval_tokens`` overriding its defaults when given,
    and ``replace_layers`` (a number, or ``"all"``) the layers exp10's phases 2-3 sweep."""
    if name not in BUDGETS:
        raise SemphaseError(f"--budget {name!r}: use one of {', '.join(BUDGETS)}.")
    budget = BUDGETS[name]
    if eval_tokens is not None and eval_tokens <= 0:
        raise SemphaseError(f"--eval-tokens {eval_tokens}: give a positive number of held-out tokens (e.g. 8192).")
    replace_layers = parse_replace_layers(replace_layers)
    if replace_layers is not None:
        n = None if replace_layers == "all" else replace_layers
        if n != budget.replace_layers:
            budget = replace(budget, replace_layers=n, description=f"{budget.description}; --replace-layers {replace_layers}")
    if tokens is None and ctx is None and eval_tokens is None:
        return budget
    new = replace(budget, tokens=budget.tokens if tokens is None else tokens, ctx=budget.ctx if ctx is None else ctx,
                  eval_tokens=budget.eval_tokens if eval_tokens is None else eval_tokens)
    return replace(new, description=f"{budget.name} with --tokens {new.tokens} --ctx {new.ctx} --eval-tokens "
                                    f"{new.eval_tokens if new.eval_tokens is not None else 'rest'}"
                                    + (f" --replace-layers {replace_layers}" if replace_layers is not None else ""))
