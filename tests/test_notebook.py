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


def test_timed_returns_the_last_result_and_the_best_time_per_item(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.2, 2.0, 2.9])   # three calls taking 0.5 s, 0.2 s and 0.9 s
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    calls = []
    result, ms = notebook.timed(lambda: calls.append(1) or len(calls), repeats=3, per=4)
    assert result == 3 and len(calls) == 3
    assert ms == pytest.approx(1000 * 0.2 / 4)   # the best run (0.2 s), in ms per item


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"per": 0}, {"per": 2.5}, {"repeats": True}])
def test_timed_rejects_counts_that_are_not_positive_integers(kwargs):
    with pytest.raises(ValueError, match="must be a positive integer"):
        notebook.timed(lambda: None, **kwargs)


def test_cpu_capability_names_what_torch_detects():
    torch = pytest.importorskip("torch")
    assert notebook.cpu_capability() == (
        f"{torch.backends.cpu.get_cpu_capability()} vector instructions")


def test_blas_threads_is_the_largest_blas_pool_or_a_phrase():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pools = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert notebook.blas_threads() == (max(pools) if pools else "an unknown number of")
