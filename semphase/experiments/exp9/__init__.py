"""exp9A/B/C: the π claims across model sizes, and the device-consistency check of the original's
collapsed CUDA run (science.md sections 9, 15 item 9; claim C16)."""
from ...registry import Data, Experiment, Need

EXPERIMENT = Experiment(
    id="exp9",
    title="π across model sizes and devices",
    sections="9",
    claim_ids=("C16",),
    data=Data("wikitext", "test"),
    across="measure:cross_model",
    parts={
        "a": "σ_free of each model's g(l/L) with its bootstrap interval; σ(∞) from a weighted fit in 1/n_layers (9A)",
        "b": "Θ per model and its growth with depth; constant π²/2, √n, ln n and linear laws by BIC (9B)",
        "c": "ΔBIC(cos_pi_0p − erf) against the number of points of g (9C)",
    },
    needs=(Need("exp8", why="each model's σ_free, its interval, Θ and ΔBIC come from exp8 on that model"),),
)
