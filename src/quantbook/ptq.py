"""Post-training quantization of every linear layer of a model: RTN, GPTQ or AWQ.

Each method quantizes one layer at a time from statistics of its inputs, which
:func:`quantbook.activations.linear_input_stats` collects in one forward pass over calibration
sentences (all layers see the inputs of the *float* model; the GPTQ reference instead feeds each
block the outputs of the blocks already quantized, which is slower and a little better):

- ``"rtn"``: :func:`quantbook.gptq.round_to_nearest`, no statistics;
- ``"gptq"``: :func:`quantbook.gptq.quantize_with_hessian` with :math:`H = 2 X^\\top X`;
- ``"awq"``: :func:`quantbook.awq.search_from_stats` with the mean magnitude and :math:`X^\\top X`.

Layers that read the same input (a block's query, key and value projections) are quantized
together, as one matrix with their rows stacked: GPTQ treats rows independently, so that is the
same result with one factorization, and AWQ then picks one α for the three, as llm-awq scales
them together.

Results are cached on disk (``$QUANTBOOK_CACHE``), keyed by the statistics' key and the settings.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os

import numpy as np

from quantbook import awq, data, gptq

__all__ = ["METHODS", "quantize_linear_weights", "with_weights", "cached_result"]

METHODS = ("rtn", "gptq", "awq")


def quantize_linear_weights(model, stats: dict, method: str, bits: int, group_size=None,
                            stats_key: str | None = None, damp: float = 0.01,
                            names=None) -> dict:
    """Quantized weights Ŵ of every ``nn.Linear`` of ``model``: name -> float32 (out, in).

    .. math::  \\hat W_\\ell = \\operatorname{method}(W_\\ell;\\; \\text{stats of } X_\\ell)

    ``stats`` from :func:`quantbook.activations.linear_input_stats`; ``stats_key`` (its cache
    key, :func:`quantbook.activations.stats_cache_key`) turns on the disk cache. ``names``
    restricts the work to those layers (and the layers sharing their inputs).
    """
    import torch

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    path = None
    if stats_key is not None:
        tag = f"{method}-b{bits}-g{group_size or 0}-d{damp}"
        if names is not None:
            tag += "-" + hashlib.sha256("|".join(sorted(names)).encode()).hexdigest()[:12]
        path = data.cache_dir() / f"ptq-{stats_key[:32]}-{tag}.npz"
        if path.exists():
            with np.load(path) as f:
                return {str(k): f[k] for k in f.files}

    bert = model[0].auto_model if hasattr(model, "__getitem__") else model
    modules = {n: m for n, m in bert.named_modules() if isinstance(m, torch.nn.Linear)}
    groups: dict[str, list[str]] = {}
    wanted = None if names is None else {stats["source"][n] for n in names}
    for name in stats["names"]:
        if wanted is None or stats["source"][name] in wanted:
            groups.setdefault(stats["source"][name], []).append(name)
    out = {}
    for source, names in groups.items():
        ws = [modules[n].weight.detach().float().numpy() for n in names]
        w = np.concatenate(ws, axis=0)
        if method == "rtn":
            w_hat = gptq.round_to_nearest(w, bits, group_size)
        elif method == "gptq":
            w_hat = gptq.quantize_with_hessian(w, 2.0 * stats["gram"][source], bits, group_size,
                                               damp=damp)
        else:
            w_hat = awq.search_from_stats(w, stats["mean_abs"][source], stats["gram"][source],
                                          bits, group_size)["w_hat"]
        start = 0
        for n, wi in zip(names, ws, strict=True):
            out[n] = np.asarray(w_hat[start:start + wi.shape[0]], dtype=np.float32)
            start += wi.shape[0]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **out)
        os.replace(tmp, path)     # atomic
    return out


def with_weights(model, weights: dict, label: str):
    """A deep copy of ``model`` whose ``nn.Linear`` weights are replaced by ``weights``.

    The copy gets the cache name ``<model name>|<label>``, so :func:`quantbook.data.embed`
    never mixes its embeddings with the original's.
    """
    import torch

    target = copy.deepcopy(model)
    bert = target[0].auto_model if hasattr(target, "__getitem__") else target
    modules = dict(bert.named_modules())
    with torch.no_grad():
        for name, w_hat in weights.items():
            modules[name].weight.copy_(torch.from_numpy(np.asarray(w_hat, dtype=np.float32)))
    base = getattr(model, "_quantbook_name", None) or data.MODEL_NAME
    target._quantbook_name = f"{base}|{label}"
    return target


def cached_result(parts, compute):
    """``compute()`` (a dict of numbers and strings), cached on disk as JSON.

    The key is the SHA-256 of ``parts`` (strings naming everything the result depends on: the
    statistics' key, the sentences, the settings) and of the source code of :mod:`quantbook.gptq`,
    :mod:`quantbook.awq` and this module, so a change in the algorithms recomputes it. Written
    atomically, like every cache of the book.
    """
    path = _result_path(parts)
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return result


def _result_path(parts):
    """Where :func:`cached_result` keeps the result for ``parts``."""
    digest = hashlib.sha256()
    for part in [*map(str, parts), *(inspect.getsource(m) for m in (gptq, awq, _this()))]:
        b = part.encode("utf-8")
        digest.update(len(b).to_bytes(8, "little"))
        digest.update(b)
    return data.cache_dir() / f"result-{digest.hexdigest()}.json"


def _this():
    import sys

    return sys.modules[__name__]
