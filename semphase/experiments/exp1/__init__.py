"""exp1: semantic permeation on our own stimuli (science.md sections 1, 2; claims C1-C3)."""
from ...registry import Data, Experiment

EXPERIMENT = Experiment(
    id="exp1",
    title="semantic permeation claims",
    sections="1, 2",
    claim_ids=("C1", "C2", "C3"),
    data=Data("stimuli"),
    asserts_at_smoke=True,  # the budget sizes WikiText runs; exp1 measures every stimulus at any budget
)
