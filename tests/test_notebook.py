"""quantbook.notebook: the glue helpers the chapters share."""

import numpy as np
import pytest

from quantbook import notebook


def test_glue_all_glues_each_value_under_its_prefixed_name(monkeypatch):
    seen = []
    monkeypatch.setattr(notebook, "glue", lambda name, value: seen.append((name, value)))
    notebook.glue_all({"step": np.float32(0.5), "count": 3}, prefix="ch02_")
    assert seen == [("ch02_step", np.float32(0.5)), ("ch02_count", 3)]


def test_glue_all_rejects_anything_but_a_dict():
    with pytest.raises(TypeError, match="values must be a dict"):
        notebook.glue_all([("step", 0.5)])
