"""The experiments, one package each (declaration in ``__init__.py``; ``measure.py``,
``claims.py``, ``report.py`` beside it), registered in :data:`semphase.registry.EXPERIMENTS`."""
