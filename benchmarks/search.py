"""Exact top-10 search over 100,000 embeddings of dimension 384 (chapter 6).

The corpus is seeded random unit vectors (the timing does not depend on what they mean); the
queries are noisy copies of corpus vectors, so each has true neighbours.

* Hamming: ``retrieval.search_hamming`` on 48-byte sign-bit codes against faiss
  ``IndexBinaryFlat`` (C++, popcount, all cores), index built outside the timing.
* int8 and float32 dot product: ``retrieval.search_dot`` against NumPy's float32 matmul
  (BLAS, all cores) plus ``argpartition`` on a float32 corpus prepared in advance.
"""

from __future__ import annotations

import numpy as np
from common import compare, memory

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
    return rows


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
    ]
