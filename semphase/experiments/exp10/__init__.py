"""exp10: head ablation, phases 1 and 1.5 (science.md sections 10, 11; claims C17-C22), softmax
linearisation and the validation on more data (12, 13; C23-C26), compute recovery (14; C27-C29)."""
from ...registry import Data, Experiment, Need

EXPERIMENT = Experiment(
    id="exp10",
    title="head ablation, softmax linearisation, validation on more data, compute recovery",
    sections="10-14",
    claim_ids=("C17", "C18", "C19", "C20", "C21", "C22", "C23", "C24", "C25", "C26", "C27", "C28", "C29"),
    data=Data("wikitext", "validation"),
    parts={
        "a": "single-head zero-ablation of every head (10A)",
        "b": "statistics of the zero ΔPPL distribution: counts, Zipf fit, ML comparison, layer-0 share (10B)",
        "c": "cumulative zero-ablation, in-sample on the original grid and held-out with a fine grid (10C)",
        "d": "per-layer importance and its correlation with dg/dx of exp3's g(l/L) (10D)",
        "e": "single-head mean-ablation with in-sample and held-out means; the top head's bias test (10E)",
        "f": "layer-0-protected cumulative mean-ablation, in-sample and held-out (10F)",
        "g": "the three curves and the held-out mean-vs-zero comparison (10G)",
        "h": "harmful heads: joint vs summed effects, in-sample and held-out (10H)",
        "i": "each head of layers 1..L-1 replaced alone by relu, l1, identity and a kernelisable attention (10I)",
        "j": "best method per head, the mixed and best-method rankings (10J)",
        "k": "cumulative replacement in-sample (original grid) and held-out; relu vs mean and vs mixed (10K)",
        "l": "FLOP tables: the original's attention-only formulas beside whole-model FLOPs (10L)",
        "v": "validation: the rank-range ranking on the held-out range, small-sample optimism (10V, section 13)",
        "p": "compute recovery: KV-cache speed, self-refinement with distinct-2, best-of-N with an independent "
             "judge, equal-FLOP arithmetic with whole-model FLOPs (exp10P, section 14)",
    },
    needs=(Need("exp3", ("test_c19_no_correlation_with_dg_dx",), "measure:attach_g",
                "C19 correlates per-layer importance with dg/dx of exp3's g(l/L) on the same model"),),
)
