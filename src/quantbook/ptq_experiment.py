"""Chapter 12's experiments: RTN, GPTQ and AWQ measured on one layer and on the whole model.

* :func:`calibration_knob`: one linear layer, GPTQ and AWQ calibrated on a few sizes of
  calibration set, their layer error on held-out tokens relative to RTN's.
* :func:`compare_methods`: every linear layer of a sentence-transformers model quantized by
  each method (:func:`quantbook.ptq.quantize_linear_weights`) at each (bits, group) setting;
  the layer objective summed over layers, and the embeddings of some texts against the float
  model's (mean cosine, recall@k of exact search).

The work is shared where the mathematics allows: the input statistics (Gram matrix and mean
magnitudes) are computed once and serve GPTQ, AWQ and the layer errors at every setting; GPTQ's
inverse-Hessian factor is computed once per layer (:mod:`quantbook.gptq` keeps it); the float
embeddings are computed once; one working copy of the model per method receives its weights at
every setting. The work runs on two threads of one BLAS and one torch thread each, as a
pipeline: the layers of one setting are quantized while the models of the one before embed. The
same arithmetic as one after another, with no core waiting.
Each setting's results are cached on disk (:func:`quantbook.ptq.cached_result`), keyed by
everything they depend on, including the source code of this module.

This module needs torch (through the model).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from quantbook import activations, awq, data, gptq, ptq, retrieval

__all__ = [
    "calibration_knob",
    "total_layer_error",
    "quantize_setting",
    "compare_methods",
    "table_markdown",
    "setting_label",
]


def calibration_knob(model, layer: str, texts, sizes, n_held: int, bits: int = 4) -> dict:
    """Held-out layer error of GPTQ and AWQ, relative to RTN's, for several calibration sizes.

    .. math::  r_{\\text{method}}(n) = \\frac{\\lVert W X_h^\\top - \\hat W_n X_h^\\top \\rVert^2}
               {\\lVert W X_h^\\top - \\hat W_{\\text{RTN}} X_h^\\top \\rVert^2}

    where :math:`\\hat W_n` is calibrated on the tokens of the first ``n`` of ``texts`` and
    :math:`X_h` holds the tokens of the last ``n_held`` texts (never calibrated on). Returns
    ``{"held_tokens": int, "in_features": int, "rows": {n: {"tokens", "gptq", "awq"}}}``.
    """
    texts = list(texts)
    if not all(isinstance(n, int) and 1 <= n <= len(texts) - n_held for n in sizes):
        raise ValueError(f"sizes must be integers from 1 to len(texts) - n_held, got {sizes}")
    x = activations.capture_linear_inputs(model, texts, [layer])[layer]
    lengths = [int(m.sum()) for m in activations.tokenize(model, texts)["attention_mask"]]
    ends = np.cumsum(lengths)
    x_held = x[ends[len(texts) - n_held - 1]:]
    w = dict(activations.bert_of(model).named_modules())[layer].weight.detach().numpy()
    rtn = gptq.layer_error(w, gptq.round_to_nearest(w, bits), x_held)
    rows = {}
    for n in sizes:
        x_cal = x[:ends[n - 1]]
        rows[n] = {"tokens": int(x_cal.shape[0]),
                   "gptq": gptq.layer_error(w, gptq.quantize(w, x_cal, bits), x_held) / rtn,
                   "awq": gptq.layer_error(w, awq.search(w, x_cal, bits)["w_hat"], x_held) / rtn}
    return {"held_tokens": int(x_held.shape[0]), "in_features": int(w.shape[1]), "rows": rows}


def total_layer_error(model, stats: dict, weights: dict) -> float:
    """The layer objective summed over the quantized layers, on the calibration statistics.

    .. math::  E = \\sum_\\ell \\operatorname{tr}\\big((W_\\ell - \\hat W_\\ell)\\, G_\\ell\\,
               (W_\\ell - \\hat W_\\ell)^\\top\\big), \\qquad G_\\ell = X_\\ell^\\top X_\\ell

    ``weights`` maps layer names to Ŵ (:func:`quantbook.ptq.quantize_linear_weights`).
    """
    modules = dict(activations.bert_of(model).named_modules())
    total = 0.0
    for name, w_hat in weights.items():
        d = modules[name].weight.detach().numpy().astype(np.float64) - w_hat
        total += float(np.sum((d @ stats["gram"][stats["source"][name]]) * d))
    return total


def compare_methods(model, stats: dict, texts, n_queries: int, settings, stats_key: str,
                    k: int = 10) -> dict:
    """RTN, GPTQ and AWQ on every linear layer at each ``(bits, group_size)`` of ``settings``.

    .. math::  \\cos_i = e_i^\\top \\hat e_i, \\qquad
               \\text{rel} = E_{\\text{method}} / E_{\\text{RTN}}

    The first ``n_queries`` of ``texts`` are queries, the rest the corpus; recall@``k`` is
    measured against exact search with the float model's embeddings. ``stats`` from
    :func:`quantbook.activations.linear_input_stats`, ``stats_key`` its cache key. Returns
    ``{(bits, group, method): {"error", "rel", "cos", "recall", "seconds"}}`` (``seconds``: the
    wall time the setting added, all three methods, 0 when it came from the cache; the settings
    not cached run as one pipeline, so their times add up to the pipeline's).
    """
    texts = list(texts)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    source = inspect.getsource(sys.modules[__name__])

    def parts(bits, group):
        return ["ch12-compare", stats_key, digest, n_queries, k, bits, group, source]

    missing = [(b, g) for b, g in settings if not ptq._result_path(parts(b, g)).exists()]
    computed = _measure_settings(model, stats, texts, n_queries, missing, k) if missing else {}
    table = {}
    for bits, group in settings:
        result = ptq.cached_result(parts(bits, group), lambda key=(bits, group): computed[key][0])
        seconds = computed[bits, group][1] if (bits, group) in computed else 0.0
        for method in ptq.METHODS:
            table[bits, group, method] = {**result[method], "seconds": seconds,
                                          "rel": result[method]["error"] / result["rtn"]["error"]}
    return table


def quantize_setting(model, stats: dict, bits: int, group_size=None, damp: float = 0.01,
                     workers: int = 2) -> dict:
    r"""RTN, GPTQ and AWQ weights of every ``nn.Linear`` at one setting, and their layer errors.

    .. math::  E_{\text{method}} = \sum_\ell \operatorname{tr}\big((W_\ell - \hat W_\ell)\,
               G_\ell\, (W_\ell - \hat W_\ell)^\top\big)

    The same per-layer work as :func:`quantbook.ptq.quantize_linear_weights` for its three
    methods (layers that read the same input stacked), done in one pass so that it is shared:
    AWQ's search scores α = 0, which is RTN exactly, so RTN's error comes from the search, and
    so does AWQ's own (both in float64); GPTQ's is one product per layer. The layers run
    ``workers`` at a time on one BLAS thread each: the same arithmetic as one layer after
    another, so the same result. Returns ``{"weights": {method: {name: Ŵ float32}}, "error":
    {method: E}}``.
    """
    with _one_blas_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
        return _quantize_jobs(pool, model, stats, bits, group_size, damp)()


def _quantize_jobs(pool, model, stats: dict, bits: int, group_size, damp: float = 0.01):
    """Submit one setting's layers to ``pool``; returns a function that waits for them and
    assembles :func:`quantize_setting`'s result."""
    import torch

    modules = dict(activations.bert_of(model).named_modules())
    groups: dict[str, list[str]] = {}
    for name in stats["names"]:
        groups.setdefault(stats["source"][name], []).append(name)
    stacked = {source: [modules[n].weight.detach().to(torch.float32).numpy() for n in names]
               for source, names in groups.items()}
    w64 = {source: np.concatenate(ws, axis=0).astype(np.float64) for source, ws in stacked.items()}

    def run_gptq():
        return {source: gptq.quantize_with_hessian(w, 2.0 * stats["gram"][source], bits,
                                                   group_size, damp=damp)
                for source, w in w64.items()}

    gptq_job = pool.submit(run_gptq)     # first: it is the longest job
    awq_jobs = {source: pool.submit(awq.search_from_stats, w, stats["mean_abs"][source],
                                    stats["gram"][source], bits, group_size)
                for source, w in w64.items()}

    def finish():
        w_gptq = gptq_job.result()
        weights = {m: {} for m in ptq.METHODS}
        error = dict.fromkeys(ptq.METHODS, 0.0)
        for source, names in groups.items():
            search, w = awq_jobs[source].result(), w64[source]
            k = int(np.flatnonzero(search["alphas"] == search["alpha"])[0])    # the winner
            d = w - w_gptq[source]
            error["rtn"] += float(search["losses"][0])
            error["awq"] += float(search["losses"][k])
            error["gptq"] += float(np.sum((d @ stats["gram"][source]) * d))
            hats = {"rtn": gptq.round_to_nearest(w, bits, group_size), "gptq": w_gptq[source],
                    "awq": search["w_hat"]}
            rows = np.cumsum([0] + [wi.shape[0] for wi in stacked[source]])
            for method, w_hat in hats.items():
                for n, a, b in zip(names, rows[:-1], rows[1:], strict=True):
                    weights[method][n] = np.asarray(w_hat[a:b], dtype=np.float32)
        return {"weights": weights, "error": error}

    return finish


def _measure_settings(model, stats, texts, n_queries, settings, k, workers: int = 2) -> dict:
    """Every setting's results, as one pipeline on ``workers`` threads (one BLAS and one torch
    thread each): the layers of the next setting are quantized while the models of the previous
    one embed, so no core waits. Returns ``{(bits, group): (result, seconds)}``."""
    import queue
    import threading

    import torch

    copies: queue.Queue = queue.Queue()
    for _ in range(workers):
        copies.put(copy.deepcopy(model))
    done: dict = {}
    lock = threading.Lock()

    def embed(key, weights):
        work = copies.get()         # any copy: every quantized weight is overwritten
        try:
            layers = dict(activations.bert_of(work).named_modules())
            with torch.no_grad():
                for name, w_hat in weights.items():
                    layers[name].weight.copy_(torch.from_numpy(w_hat))
            # batches of 32 (the float model's cached embeddings use 64): less padding, the
            # same embeddings up to float rounding, a fifth less time on one thread
            emb = data.embed(texts, work, batch_size=32, progress=False, cache=False)
        finally:
            copies.put(work)
        with lock:
            done[key] = max(done.get(key, 0.0), _clock())
        return emb

    start = _clock()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _one_blas_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
            pending = [_quantize_jobs(pool, model, stats, b, g) for b, g in settings[:2]]
            ref_job = pool.submit(data.embed, texts, model, progress=False)    # the float model
            errors, embeds = {}, {}
            for i, key in enumerate(settings):
                setting = pending[i]()
                errors[key] = setting["error"]
                embeds[key] = {m: pool.submit(embed, key, setting["weights"][m])
                               for m in ptq.METHODS}
                if i + 2 < len(settings):
                    pending.append(_quantize_jobs(pool, model, stats, *settings[i + 2]))
            ref = ref_job.result()
            truth = retrieval.search_dot(ref[:n_queries], ref[n_queries:], k=k)[0]
            out, last = {}, start
            for key in settings:
                result = {}
                for method, job in embeds[key].items():
                    emb = job.result()
                    found = retrieval.search_dot(emb[:n_queries], emb[n_queries:], k=k)[0]
                    result[method] = {"error": errors[key][method],
                                      "cos": float(np.sum(emb * ref, axis=1).mean()),
                                      "recall": float(retrieval.recall_at_k(found, truth))}
                seconds = max(done[key] - last, 0.0)
                last = max(last, done[key])
                out[key] = (result, seconds)
    finally:
        torch.set_num_threads(threads)
    return out


def table_markdown(table: dict, settings) -> str:
    """The results of :func:`compare_methods` as a Markdown table, one row per setting and
    method."""
    rows = ["| setting | method | layer error (RTN = 1) | mean cos | recall@10 |",
            "|---|---|---:|---:|---:|"]
    for bits, group in settings:
        for method in ptq.METHODS:
            r = table[bits, group, method]
            rows.append(f"| {setting_label(bits, group)} | {method.upper()} | {r['rel']:.3f} | "
                        f"{r['cos']:.4f} | {r['recall']:.3f} |")
    return "\n".join(rows)


def setting_label(bits: int, group) -> str:
    """``"int4, per channel"`` or ``"int3, g128"``."""
    return f"int{bits}, " + (f"g{group}" if group else "per channel")


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is optional
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _clock() -> float:
    import time

    return time.perf_counter()
