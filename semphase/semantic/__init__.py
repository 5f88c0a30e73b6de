"""Semantic permeation experiments (science.md sections 1-5): exp1 (claims C1-C3) is built.

* :mod:`.stimuli` - our own prompt set (``semphase/data/stimuli.json``), loading, validation and
  the per-model tokenization check;
* :mod:`.measure` - residuals at the target token (cached), directions, σ and jumps;
* :mod:`.exp1` - the evidence and the claim decision rules (``CLAIMS``);
* :mod:`.report` - data, figures and ``reports/exp1_results.md``;
* :mod:`.runner` - ``python -m semphase run exp1``.
"""
