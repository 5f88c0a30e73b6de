"""exp6: a universal basis for the attention QK weights? PCA of W_Q^T W_K across heads,
reconstruction from K components, head clustering (science.md section 6; claims C10, C11)."""
from ...registry import Data, Experiment, Need

EXPERIMENT = Experiment(
    id="exp6",
    title="W_QK principal components and head clustering",
    sections="6",
    claim_ids=("C10", "C11"),
    data=Data("wikitext", "validation"),
    needs=(Need("exp10", ("test_c10_error_concentrated_in_few_heads",), "measure:attach_importance",
                "C10's per-head reconstruction error is compared with exp10's single-head zero-ablation ΔPPL "
                "(rank range only: part a without the held-out range)", parts="a", heldout=False),),
)
