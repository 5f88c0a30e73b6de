"""exp7: are the blocks' residual updates low-rank or shared across layers? PCA of
delta-phi = resid_post - resid_pre and of its attention and MLP parts (science.md section 7;
claim C12)."""
from ...registry import Data, Experiment

EXPERIMENT = Experiment(
    id="exp7",
    title="residual updates: rank, shared basis, attention vs MLP",
    sections="7",
    claim_ids=("C12",),
    data=Data("wikitext", "validation"),
)
