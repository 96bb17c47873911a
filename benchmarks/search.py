"""Exact top-10 search over 100,000 embeddings of dimension 384 (chapter 6).

The corpus is seeded random unit vectors (the timing does not depend on what they mean); the
queries are noisy copies of corpus vectors, so each has true neighbours.

* Hamming: ``retrieval.search_hamming`` on 48-byte sign-bit codes against faiss
  ``IndexBinaryFlat`` (C++, popcount, all cores), index built outside the timing.
* int8 and float32 dot product: ``retrieval.search_dot`` against NumPy's float32 matmul
  (BLAS, all cores) plus ``argpartition`` on a float32 corpus prepared in advance.
* ``Index`` (``quantbook._index``, re-exported as ``quantbook.retrieval.Index``): the same
  searches from a corpus checked and converted once, when the index is built (outside the
  timing, as faiss's ``add``), against the same references. Hamming: NumPy's popcount runs on
  one core, so faiss is pinned to one OpenMP thread for these rows (on a shared 2-core machine
  its two threads also swing from 0.2 to 30 ms for one query); the Index's faiss engine runs
  under the same pin. One more row gives the NumPy engine against faiss on all cores.
"""

from __future__ import annotations

import numpy as np
from common import compare, memory

from quantbook._index import Index
from quantbook.embeddings import quantize_embeddings
from quantbook.retrieval import search_dot, search_hamming

K = 10
DIM = 384


def unit_vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def search_data(n_corpus: int, n_queries: int):
    corpus = unit_vectors(n_corpus, seed=2)
    picked = np.random.default_rng(3).choice(n_corpus, n_queries, replace=False)
    queries = corpus[picked] + 0.05 * unit_vectors(n_queries, seed=4)
    return corpus, queries / np.linalg.norm(queries, axis=1, keepdims=True)


def numpy_top_k(queries: np.ndarray, corpus: np.ndarray, k: int = K):
    """The reference: float32 matmul, argpartition for the k best, then sort those k."""
    scores = queries @ corpus.T
    ids = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    best = np.take_along_axis(scores, ids, axis=1)
    order = np.argsort(-best, axis=1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(best, order, axis=1)


def run(n_corpus: int, repeats: int):
    import faiss

    corpus, queries = search_data(n_corpus, 100)
    codes = quantize_embeddings(corpus, "ubinary")
    corpus8 = quantize_embeddings(corpus, "int8")
    index = faiss.IndexBinaryFlat(DIM)
    index.add(codes)
    data = f"{n_corpus:,} x {DIM}"
    rows = []
    for batch in (100, 1):
        q = queries[:batch]
        q_codes = quantize_embeddings(q, "ubinary")
        q8 = quantize_embeddings(q, "int8")
        # Same distances as faiss (ids may differ only among equal distances).
        _, ours = search_hamming(q_codes, codes, K)
        theirs, _ = index.search(q_codes, K)
        assert np.array_equal(ours, theirs), "Hamming distances differ from faiss"
        label = f"{batch} {'queries' if batch > 1 else 'query'}"
        rows += [
            compare("search", f"search_hamming, {label}", data,
                    lambda qc=q_codes: search_hamming(qc, codes, K),
                    {"faiss IndexBinaryFlat": lambda qc=q_codes: index.search(qc, K)},
                    repeats=repeats),
            compare("search", f"search_dot int8, {label}", data,
                    lambda q8=q8: search_dot(q8, corpus8, K),
                    {"numpy float32 matmul": lambda q=q: numpy_top_k(q, corpus)},
                    repeats=repeats),
            compare("search", f"search_dot float32, {label}", data,
                    lambda q=q: search_dot(q, corpus, K),
                    {"numpy float32 matmul": lambda q=q: numpy_top_k(q, corpus)},
                    repeats=repeats),
        ]
        rows += run_index(corpus, codes, corpus8, q, q_codes, q8, index, label, data, repeats)
    return rows


def run_index(corpus, codes, corpus8, q, q_codes, q8, faiss_index, label, data, repeats):
    """The Index rows: built once (outside the timing), then searched like the rows above."""
    import faiss

    by_numpy, by_faiss = Index(codes, "ubinary", "numpy"), Index(codes, "ubinary", "faiss")
    int8_index, float_index = Index(corpus8, "int8"), Index(corpus)
    # The same answers as the plain functions, bit for bit (ties to the smaller id).
    for ours, plain in [(by_numpy.search(q_codes, K), search_hamming(q_codes, codes, K)),
                        (by_faiss.search(q_codes, K), search_hamming(q_codes, codes, K)),
                        (int8_index.search(q8, K), search_dot(q8, corpus8, K)),
                        (float_index.search(q, K), search_dot(q, corpus, K))]:
        assert all(np.array_equal(a, b) for a, b in zip(ours, plain, strict=True)), "Index != plain"
    target = 3.0 if len(q) > 1 else 2.0  # issue 14: within 2x for one query, 3x for a batch
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    one_thread = {"faiss IndexBinaryFlat, 1 thread": lambda: faiss_index.search(q_codes, K)}
    try:
        rows = [
            compare("search", f"Index hamming (numpy), {label}", data,
                    lambda: by_numpy.search(q_codes, K), one_thread, repeats=repeats,
                    target=target),
            compare("search", f"Index hamming (faiss engine), {label}", data,
                    lambda: by_faiss.search(q_codes, K), one_thread, repeats=repeats,
                    target=target),
        ]
    finally:
        faiss.omp_set_num_threads(threads)
    return rows + [
        compare("search", f"Index hamming (numpy), {label}, faiss on all cores", data,
                lambda: by_numpy.search(q_codes, K),
                {"faiss IndexBinaryFlat": lambda: faiss_index.search(q_codes, K)},
                repeats=repeats, target=target),
        compare("search", f"Index int8, {label}", data, lambda: int8_index.search(q8, K),
                {"numpy float32 matmul": lambda: numpy_top_k(q, corpus)}, repeats=repeats),
        compare("search", f"Index float32, {label}", data, lambda: float_index.search(q, K),
                {"numpy float32 matmul": lambda: numpy_top_k(q, corpus)}, repeats=repeats),
    ]


def run_memory(n_corpus: int):
    """Peak memory of a 1-query search over the corpus (the corpus is the input)."""
    corpus, queries = search_data(n_corpus, 1)
    codes = quantize_embeddings(corpus, "ubinary")
    corpus8 = quantize_embeddings(corpus, "int8")
    q_codes = quantize_embeddings(queries, "ubinary")
    q8 = quantize_embeddings(queries, "int8")
    return [
        memory("search_hamming, 1 query", lambda: search_hamming(q_codes, codes, K), codes),
        memory("search_dot int8, 1 query", lambda: search_dot(q8, corpus8, K), corpus8),
        memory("search_dot float32, 1 query", lambda: search_dot(queries, corpus, K), corpus),
        memory("(numpy reference) float32, 1 query", lambda: numpy_top_k(queries, corpus),
               corpus),
    ] + index_memory(corpus, codes, corpus8, queries, q_codes, q8)


def index_memory(corpus, codes, corpus8, queries, q_codes, q8):
    """Peak memory of one Index search (what it holds was allocated when it was built)."""
    by_numpy, int8_index, float_index = (
        Index(codes, "ubinary", "numpy"), Index(corpus8, "int8"), Index(corpus))
    return [
        memory("Index hamming (numpy), 1 query", lambda: by_numpy.search(q_codes, K), codes),
        memory("Index int8, 1 query", lambda: int8_index.search(q8, K), corpus8),
        memory("Index float32, 1 query", lambda: float_index.search(queries, K), corpus),
    ]
