"""semphase: re-test claims about the inner workings of language models.

The library imports no pytest. Entry points:

* :func:`semphase.models.load_model` - a TransformerLens 4 ``TransformerBridge`` for a name.
* :func:`semphase.data.load_eval_tokens` - WikiText-2 (or any text) cut into chunks.
* :class:`semphase.ablation.AblationEngine` - head ablations and perplexity.
* :func:`semphase.exp10.measure` / :func:`semphase.exp10.evaluate_claims` - experiment 10.
"""

__version__ = "0.1.0"

# Version of the measurement code. It is part of every evidence-cache key: bump it whenever
# a change alters what a cached measurement would contain (hooks, loss, chunking, means).
MEASUREMENT_VERSION = "1"
