"""quantbook.retrieval: exact search, Hamming search (against faiss), rescoring, recall@k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quantbook import retrieval
from quantbook.embeddings import dequantize_embeddings, quantize_embeddings
from quantbook.retrieval import (
    dot_scores,
    integer_dot,
    recall_at_k,
    search_binary_rescore,
    search_dot,
    search_hamming,
    top_k,
)


def _unit_vectors(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_top_k_orders_best_first_and_breaks_ties_by_id():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.5, 0.5], [3, 1, 2, 2, 1, 0]], np.float32)
    ids, vals = top_k(scores, 3)
    np.testing.assert_array_equal(ids, [[1, 3, 2], [0, 2, 3]])
    np.testing.assert_array_equal(vals, np.array([[0.9, 0.9, 0.5], [3, 2, 2]], np.float32))
    ids, vals = top_k(np.array([[5, 1, 1, 0, 1]], np.int32), 3, largest=False)
    np.testing.assert_array_equal(ids, [[3, 1, 2]])
    np.testing.assert_array_equal(vals, [[0, 1, 1]])
    assert top_k(np.zeros((2, 3)), 10)[0].shape == (2, 3)  # k > m gives all m
    with pytest.raises(ValueError, match="k must be a positive integer"):
        top_k(scores, 0)


def test_search_dot_float_equals_a_full_sort():
    corpus, queries = _unit_vectors(500, 32, 0), _unit_vectors(20, 32, 1)
    ids, scores = search_dot(queries, corpus, k=10)
    full = queries @ corpus.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-6)
    t_ids, _ = search_dot(torch.from_numpy(queries), torch.from_numpy(corpus), k=10)
    assert isinstance(t_ids, torch.Tensor)
    np.testing.assert_array_equal(t_ids.numpy(), ids)


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_integer_dot_equals_int32_accumulation(precision):
    q = quantize_embeddings(_unit_vectors(30, 384, 2), precision)
    c = quantize_embeddings(_unit_vectors(200, 384, 3), precision)
    centred_q = q.astype(np.int32) * (2 if precision == "uint8" else 1) - (
        255 if precision == "uint8" else 0
    )
    centred_c = c.astype(np.int32) * (2 if precision == "uint8" else 1) - (
        255 if precision == "uint8" else 0
    )
    expected = centred_q @ centred_c.T  # NumPy's own int32 matmul
    got = integer_dot(q, c)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    # uint8: 2q − 255 is exactly 255·x̂, so the ranking is that of the dequantized vectors
    if precision == "uint8":
        x_hat_q = dequantize_embeddings(q, "uint8").astype(np.float64)
        x_hat_c = dequantize_embeddings(c, "uint8").astype(np.float64)
        np.testing.assert_allclose(got, 255.0**2 * (x_hat_q @ x_hat_c.T), atol=0.05)


def test_integer_dot_takes_the_float64_path_when_float32_is_not_exact():
    rng = np.random.default_rng(4)
    a = rng.integers(-128, 128, (5, 2000)).astype(np.int8)  # 128·128·2000 > 2^24
    b = rng.integers(-128, 128, (7, 2000)).astype(np.int8)
    np.testing.assert_array_equal(integer_dot(a, b), a.astype(np.int32) @ b.astype(np.int32).T)


def test_dot_scores_precisions_and_errors():
    q, c = _unit_vectors(3, 16, 5), _unit_vectors(8, 16, 6)
    f8 = dot_scores(quantize_embeddings(q, "float8"), quantize_embeddings(c, "float8"))
    assert f8.dtype == np.float32
    np.testing.assert_allclose(f8, q @ c.T, atol=0.05)
    with pytest.raises(TypeError, match="must both be int8 or both uint8"):
        dot_scores(quantize_embeddings(q, "int8"), quantize_embeddings(c, "uint8"))
    with pytest.raises(ValueError, match="same dimension"):
        dot_scores(q, c[:, :8])


# --- Hamming search against faiss IndexBinaryFlat -------------------------------------------
def test_search_hamming_equals_faiss_index_binary_flat():
    faiss = pytest.importorskip("faiss")
    d, k = 64, 10  # 64 bits: many tied distances, the hard case for tie handling
    corpus = quantize_embeddings(_unit_vectors(3000, d, 7), "ubinary")
    queries = quantize_embeddings(_unit_vectors(40, d, 8), "ubinary")
    index = faiss.IndexBinaryFlat(d)
    index.add(corpus)
    f_dist, f_ids = index.search(queries, k)
    ids, dist = search_hamming(queries, corpus, k)
    np.testing.assert_array_equal(dist, f_dist)  # distances: identical
    for row in range(len(queries)):
        kth = dist[row, -1]
        # neighbours strictly closer than the k-th distance: the same set
        assert set(ids[row][dist[row] < kth]) == set(f_ids[row][f_dist[row] < kth])
        # every id faiss returns at the tied k-th distance really is at that distance
        tied = f_ids[row][f_dist[row] == kth]
        np.testing.assert_array_equal(
            np.unpackbits(queries[row] ^ corpus[tied], axis=-1).sum(axis=-1), kth
        )
    # in practice faiss also orders ties by id, like us
    assert (ids == f_ids).mean() > 0.95
    # binary (int8) codes give the same answer as ubinary
    s_ids, s_dist = search_hamming(
        quantize_embeddings(_unit_vectors(40, d, 8), "binary"),
        quantize_embeddings(_unit_vectors(3000, d, 7), "binary"),
        k,
    )
    np.testing.assert_array_equal(s_ids, ids)
    np.testing.assert_array_equal(s_dist, dist)


# --- rescoring --------------------------------------------------------------------------------
def test_rescoring_with_every_candidate_and_float_corpus_is_exact_search():
    corpus, queries = _unit_vectors(300, 48, 9), _unit_vectors(12, 48, 10)
    codes = quantize_embeddings(corpus, "ubinary")
    ids, scores = search_binary_rescore(queries, codes, k=5, multiplier=60, corpus=corpus)
    exact_ids, exact_scores = search_dot(queries, corpus, k=5)
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-5)


def test_rescoring_against_bits_ranks_like_sentence_transformers():
    corpus, queries = _unit_vectors(400, 40, 11), _unit_vectors(15, 40, 12)
    codes = quantize_embeddings(corpus, "ubinary")
    k, m = 5, 4
    ids, scores = search_binary_rescore(queries, codes, k=k, multiplier=m)
    candidates, _ = search_hamming(quantize_embeddings(queries, "ubinary"), codes, k * m)
    # sentence-transformers rescores q·b with b the {0, 1} bits; ±1 = 2b − 1 ranks the same
    bits01 = np.unpackbits(codes[candidates], axis=-1)[..., :40].astype(np.float64)
    st_scores = np.einsum("nd,nkd->nk", queries.astype(np.float64), bits01)
    st_ids = np.take_along_axis(candidates, np.argsort(-st_scores, axis=1, kind="stable"), 1)
    np.testing.assert_array_equal(ids, st_ids[:, :k])
    pm1 = 2 * bits01 - 1
    np.testing.assert_allclose(
        np.sort(scores, axis=1)[:, ::-1],
        np.sort(np.einsum("nd,nkd->nk", queries, pm1), axis=1)[:, ::-1][:, :k],
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="pack into 5 bytes"):
        search_binary_rescore(queries, codes[:, :4], k=k)


def test_rescoring_raises_recall():
    corpus, queries = _unit_vectors(2000, 64, 13), _unit_vectors(50, 64, 14)
    truth, _ = search_dot(queries, corpus, k=10)
    codes = quantize_embeddings(corpus, "ubinary")
    plain, _ = search_hamming(quantize_embeddings(queries, "ubinary"), codes, 10)
    rescored, _ = search_binary_rescore(queries, codes, k=10, multiplier=10, corpus=corpus)
    assert recall_at_k(rescored, truth) > recall_at_k(plain, truth) + 0.2


def test_recall_at_k():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at_k(truth, truth) == 1.0
    assert recall_at_k([[4, 3, 9, 9], [0, 0, 0, 0]], truth) == 0.25
    assert recall_at_k([[1, 2, 3, 4, 5, 6]], [[6, 5, 4, 3]]) == 0.5  # only the first k count
    with pytest.raises(ValueError, match="found_ids and true_ids"):
        recall_at_k([[1, 2]], truth)


def test_recall_standard_error_is_the_bootstrap_spread_of_the_per_query_recalls():
    rng = np.random.default_rng(3)
    truth = np.argsort(rng.random((60, 50)), axis=1)[:, :10]
    found = np.where(rng.random((60, 10)) < 0.7, truth, truth + 100)   # ~70% of each row found
    per_query = np.array([retrieval.recall_at_k(found[i:i + 1], truth[i:i + 1]) for i in range(60)])
    se = retrieval.recall_standard_error(found, truth, n_boot=4000, seed=1)
    # the bootstrap estimates the standard error of a mean of n values: std / sqrt(n)
    assert se == pytest.approx(per_query.std() / np.sqrt(60), rel=0.05)
    assert se == retrieval.recall_standard_error(found, truth, n_boot=4000, seed=1)   # seeded
    assert retrieval.recall_standard_error(truth, truth) == 0.0          # every query perfect


def test_recall_standard_error_rejects_bad_input():
    truth = np.arange(6).reshape(2, 3)
    with pytest.raises(ValueError, match="n_boot"):
        retrieval.recall_standard_error(truth, truth, n_boot=0)
    with pytest.raises(TypeError, match="seed"):
        retrieval.recall_standard_error(truth, truth, seed=1.5)
    with pytest.raises(TypeError, match="found_ids"):
        retrieval.recall_standard_error(truth.astype(float), truth)
    with pytest.raises(ValueError, match="at least one query"):
        retrieval.recall_standard_error(np.zeros((0, 3), int), np.zeros((0, 3), int))
