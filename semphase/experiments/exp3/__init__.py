"""exp3 and exp3E/F/G: linear response and a universal g(l/L) (science.md sections 4, 5; claims C6-C9)."""
from ...registry import Data, Experiment

EXPERIMENT = Experiment(
    id="exp3",
    title="linear response and universal g claims",
    sections="4, 5",
    claim_ids=("C6", "C7", "C8", "C9"),
    data=Data("stimuli"),
    across="measure:cross_model",
)
