"""exp2: Landau criticality and linear response (science.md section 3; claims C4, C5)."""
from ...registry import Data, Experiment

EXPERIMENT = Experiment(
    id="exp2",
    title="Landau / two-stage claims",
    sections="3",
    claim_ids=("C4", "C5"),
    data=Data("stimuli"),
)
