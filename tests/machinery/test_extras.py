"""Optional dependencies are optional: without gguf or datasets, what needs them says which extra to install,
in one sentence."""
import importlib.util
import sys

import pytest

from semphase import data, models
from semphase.errors import DataUnavailable, SemphaseError

pytestmark = pytest.mark.machinery


def test_a_gguf_model_without_gguf_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(SemphaseError, match=r"semphase\[smollm2\]"):
        models._need_gguf(models.resolve_spec("smollm2-135m"))


def test_the_hub_loader_without_datasets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets now raises ImportError
    with pytest.raises(DataUnavailable, match=r"semphase\[data\].*--data-dir"):
        data.hub_rows("validation")
