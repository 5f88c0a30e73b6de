"""exp8A/B/C: does π appear in g(l/L) or in the residual stream's rotation? (science.md section 8;
claims C13-C15)."""
from ...registry import Data, Experiment, Need

EXPERIMENT = Experiment(
    id="exp8",
    title="the π claims: erf width, π-shaped g, rotation angle",
    sections="8",
    claim_ids=("C13", "C14", "C15"),
    data=Data("wikitext", "test"),
    parts={
        "a": "erf width σ of exp3's g(l/L) against 1/√π and competing constants: LR test, profile and bootstrap intervals (8A)",
        "b": "π-shaped models of g(l/L) ranked by BIC with the original's five (8B)",
        "c": "per-block rotation angles θ(l) of the residual stream and their sum Θ on WikiText tokens (8C)",
    },
    needs=(Need("exp3", why="8A and 8B fit exp3's g(l/L) and its bootstrap replicates on the same model"),),
)
