"""Shared machinery of the semantic-permeation experiments (exp1-exp3; science.md sections 0-5):

* :mod:`.stimuli` - our own prompt set (``semphase/data/stimuli.json``), loading, validation and
  the per-model tokenization check;
* :mod:`.measure` - residuals at the target token (cached), directions, σ, jumps, the bootstrap
  over prompts;
* :mod:`.reporting` - the provenance rows and word lists their reports share.

The experiments themselves live in :mod:`semphase.experiments`.
"""
