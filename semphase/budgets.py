"""Token budgets: how much evaluation text a run uses, and whether claims are asserted."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import SemphaseError


@dataclass(frozen=True)
class Budget:
    name: str
    tokens: int | None  # None: the whole split
    ctx: int
    asserts_claims: bool
    description: str


BUDGETS = {
    "smoke": Budget("smoke", 256, 128, False,
                    "every step on 256 tokens (2 chunks of 128); checks the evidence is sane, asserts no claim"),
    "quick": Budget("quick", 2048, 1024, True,
                    "the original's protocol: the first 2,048 tokens (2 chunks of 1,024)"),
    "full": Budget("full", None, 1024, True, "the whole validation split in chunks of 1,024"),
}


def get_budget(name: str, tokens: int | None = None, ctx: int | None = None) -> Budget:
    """The named budget, with ``tokens``/``ctx`` overriding its defaults when given."""
    if name not in BUDGETS:
        raise SemphaseError(f"--budget {name!r}: use one of {', '.join(BUDGETS)}.")
    budget = BUDGETS[name]
    if tokens is None and ctx is None:
        return budget
    new_tokens = budget.tokens if tokens is None else tokens
    new_ctx = budget.ctx if ctx is None else ctx
    return Budget(budget.name, new_tokens, new_ctx, budget.asserts_claims,
                  f"{budget.name} with --tokens {new_tokens} --ctx {new_ctx}")
