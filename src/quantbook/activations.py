"""What the linear layers of a transformer see: their inputs, captured with forward hooks.

Activation statistics drive chapters 11 and 12: SmoothQuant needs the largest magnitude of every
input channel, AWQ their mean magnitude, GPTQ the Gram matrix :math:`X^\\top X` of the inputs.
:func:`linear_input_stats` computes all three for every ``nn.Linear`` of a sentence-transformers
model in one forward pass over some sentences, without padding tokens, and caches them on disk
(``$QUANTBOOK_CACHE``, keyed by the model's weights and the texts, written atomically) the way
:func:`quantbook.data.embed` caches embeddings.

Layers that read the same tensor (MiniLM's query, key and value projections) share one entry.

``torch`` is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from quantbook import data

__all__ = [
    "bert_of",
    "tokenize",
    "capture_linear_inputs",
    "linear_input_stats",
    "stats_cache_key",
    "linear_outputs_replaced",
    "embed_replaced",
]


def bert_of(model):
    """The ``transformers`` encoder inside a SentenceTransformer (or the model itself)."""
    try:
        return model[0].auto_model
    except (TypeError, IndexError, AttributeError, KeyError):
        return model


def tokenize(model, texts):
    """Tokenize ``texts`` as the SentenceTransformer would (its tokenizer and max length)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings")
    prepare = getattr(model, "preprocess", None) or model.tokenize   # renamed in s-t 6
    return prepare(list(texts))


def capture_linear_inputs(model, texts, names, batch_size: int = 32) -> dict[str, np.ndarray]:
    """The inputs of the ``nn.Linear`` layers called ``names``, for every real token of ``texts``.

    .. math::  X_\\ell \\in \\mathbb{R}^{\\text{tokens} \\times \\text{in}_\\ell}

    Padding tokens are dropped (they are computed, but belong to no sentence). Returns a dict
    name -> float32 array (tokens, in). Memory grows with tokens x in: keep it to a few layers.
    """
    import torch

    bert = bert_of(model)
    modules = dict(bert.named_modules())
    missing = [n for n in names if n not in modules or not isinstance(modules[n], torch.nn.Linear)]
    if missing:
        raise ValueError(f"names must be nn.Linear layers of the model; not found: {missing}")
    chunks: dict[str, list] = {n: [] for n in names}
    mask_holder = {}

    def hook(name):
        def record(module, inputs):
            x = inputs[0].detach()
            chunks[name].append(x[mask_holder["mask"]].float().numpy().copy())
        return record

    handles = [modules[n].register_forward_pre_hook(hook(n)) for n in names]
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                features = tokenize(model, texts[start:start + batch_size])
                mask_holder["mask"] = features["attention_mask"].bool()
                bert(input_ids=features["input_ids"], attention_mask=features["attention_mask"])
    finally:
        for h in handles:
            h.remove()
    return {n: np.concatenate(c, axis=0) for n, c in chunks.items()}


def stats_cache_key(model, texts) -> str:
    """SHA-256 of the model's weights (``data.model_fingerprint``) and the texts."""
    return data.embedding_cache_key(list(texts), "linear-input-stats:" +
                                    str(data.model_fingerprint(model)))


def linear_input_stats(model, texts, batch_size: int = 32, cache: bool = True) -> dict:
    """Input statistics of every ``nn.Linear`` of ``model`` over the real tokens of ``texts``.

    .. math::  a_j = \\max_i |X_{ij}|, \\qquad m_j = \\frac1n \\sum_i |X_{ij}|, \\qquad
               G = X^\\top X

    Returns a dict with ``names`` (every linear layer, model order), ``source`` (name -> the
    first layer reading the same input tensor: the key of the arrays below), ``absmax``,
    ``mean_abs`` (float32, (in,)), ``gram`` (float64, (in, in)), and ``tokens`` (the number n
    of real tokens; the BERT pooler, which reads one vector per sentence, sees fewer rows).
    Cached as ``<cache_dir>/linear-stats-<sha256>.npz``.
    """
    import torch

    texts = list(texts)
    path = data.cache_dir() / f"linear-stats-{stats_cache_key(model, texts)}.npz"
    if cache and path.exists():
        return _unpack(np.load(path, allow_pickle=False))

    bert = bert_of(model)
    layers = [(n, m) for n, m in bert.named_modules() if isinstance(m, torch.nn.Linear)]
    names = [n for n, _ in layers]
    absmax, mean_abs, gram, source = {}, {}, {}, {}
    tokens = 0
    count: dict[str, int] = {}
    state = {}

    def hook(name):
        def record(module, inputs):
            x = inputs[0]
            if state.get("last_x") is x:       # the very tensor the previous layer read
                source[name] = source[state["last_name"]]
                state["last_name"] = name
                return
            state["last_x"], state["last_name"] = x, name
            source[name] = name
            x = x.detach()
            mask = state["mask"]
            xs = (x[mask] if x.shape[:-1] == mask.shape else x.reshape(-1, x.shape[-1])).double()
            count[name] = count.get(name, 0) + xs.shape[0]
            a = xs.abs()
            absmax[name] = np.maximum(absmax.get(name, 0), a.amax(dim=0).float().numpy())
            mean_abs[name] = mean_abs.get(name, 0) + a.sum(dim=0).numpy()
            gram[name] = gram.get(name, 0) + (xs.T @ xs).numpy()
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers]
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                features = tokenize(model, texts[start:start + batch_size])
                state["mask"] = features["attention_mask"].bool()
                tokens += int(state["mask"].sum())
                state.pop("last_x", None)
                bert(input_ids=features["input_ids"], attention_mask=features["attention_mask"])
    finally:
        for h in handles:
            h.remove()
        state.pop("last_x", None)
    keys = sorted(absmax)
    arrays = {"names": np.array(names), "source": np.array([source[n] for n in names]),
              "keys": np.array(keys), "tokens": np.array(tokens)}
    for i, k in enumerate(keys):
        arrays[f"absmax_{i}"] = absmax[k].astype(np.float32)
        arrays[f"mean_{i}"] = (mean_abs[k] / max(count[k], 1)).astype(np.float32)
        arrays[f"gram_{i}"] = gram[k]
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)   # atomic: a reader never sees half a file
    return _unpack(arrays)


def _unpack(arrays) -> dict:
    keys = [str(k) for k in arrays["keys"]]
    return {
        "names": [str(n) for n in arrays["names"]],
        "source": dict(zip((str(n) for n in arrays["names"]),
                           (str(s) for s in arrays["source"]), strict=True)),
        "absmax": {k: np.asarray(arrays[f"absmax_{i}"]) for i, k in enumerate(keys)},
        "mean_abs": {k: np.asarray(arrays[f"mean_{i}"]) for i, k in enumerate(keys)},
        "gram": {k: np.asarray(arrays[f"gram_{i}"]) for i, k in enumerate(keys)},
        "tokens": int(arrays["tokens"]),
    }


@contextlib.contextmanager
def linear_outputs_replaced(model, fn, names=None):
    r"""Inside the ``with`` block, every ``nn.Linear`` (or those in ``names``) computes ``fn``.

    .. math::  y_\ell = f(\ell, X_\ell, W_\ell, b_\ell) \quad \text{instead of} \quad
               X_\ell W_\ell^\top + b_\ell

    ``fn(name, x, w, b)`` gets NumPy float32 arrays, ``x`` (tokens, in) with every axis but the
    last flattened, ``w`` (out, in), ``b`` (out,) or None, and returns (tokens, out). The model's
    own weights are never changed; the original forward is restored on exit, even after an error.
    """
    import torch

    bert = bert_of(model)
    layers = [(n, m) for n, m in bert.named_modules() if isinstance(m, torch.nn.Linear)
              and (names is None or n in names)]
    weights = {n: (m.weight.detach().float().numpy(),
                   None if m.bias is None else m.bias.detach().float().numpy()) for n, m in layers}

    def forward(name, module):
        def replaced(x):
            w, b = weights[name]
            flat = x.detach().float().reshape(-1, x.shape[-1]).numpy()
            y = np.ascontiguousarray(fn(name, flat, w, b), dtype=np.float32)
            return torch.from_numpy(y).reshape(*x.shape[:-1], module.out_features)
        return replaced

    # The module's forward is swapped (not hooked), so the float product is not computed too.
    for n, m in layers:
        m.forward = forward(n, m)
    try:
        yield model
    finally:
        for _, m in layers:
            del m.forward          # back to the class's forward


def embed_replaced(texts, model, fn, key: str, names=None) -> np.ndarray:
    """:func:`quantbook.data.embed` with the linear layers computing ``fn``
    (:func:`linear_outputs_replaced`).

    ``key`` names the replacement in the embedding cache (with the model's weights and the
    texts): it must change whenever ``fn`` or anything it was calibrated on changes, e.g.
    ``"w8a8-per-tensor|" + digest of the scales``.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string naming the replacement for the cache")
    base = getattr(model, "_quantbook_name", None)
    model._quantbook_name = f"{base or data.MODEL_NAME}|{key}"
    try:
        with linear_outputs_replaced(model, fn, names):
            return data.embed(texts, model, progress=False)
    finally:
        if base is None:
            del model._quantbook_name
        else:
            model._quantbook_name = base
