"""quantbook._index.Index: the plain search functions' answers, bit for bit, checked once.

Imported from the private module so these tests pass before and after ``quantbook.retrieval``
re-exports it (``from quantbook._index import Index``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import quantbook._index as index_module
from quantbook import retrieval
from quantbook._index import Index
from quantbook.embeddings import quantize_embeddings
from quantbook.retrieval import integer_dot, search_dot, search_hamming

PRECISIONS = ("float32", "float8", "int8", "uint8", "binary", "ubinary")
try:
    import faiss  # noqa: F401

    HAVE_FAISS = True
except ImportError:  # pragma: no cover - faiss-cpu is in the test requirements
    HAVE_FAISS = False
ENGINES = ("numpy", "faiss") if HAVE_FAISS else ("numpy",)


def _unit_vectors(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _with_duplicates(x, seed):
    """Copy some rows over others (later ids), so scores tie exactly."""
    rng = np.random.default_rng(seed)
    x = x.copy()
    n = len(x)
    for _ in range(max(1, n // 4)):
        src, dst = rng.integers(0, n, 2)
        x[max(src, dst)] = x[min(src, dst)]
    return x


def _plain(precision, queries, corpus, k):
    if precision in ("binary", "ubinary"):
        return search_hamming(queries, corpus, k)
    return search_dot(queries, corpus, k)


def _data(precision, n_corpus, n_queries, dim, seed):
    corpus = _with_duplicates(_unit_vectors(n_corpus, dim, seed), seed + 1)
    # queries: some copies of corpus vectors (exact ties at the top), some fresh
    queries = np.concatenate(
        [corpus[: n_queries // 2], _unit_vectors(n_queries - n_queries // 2, dim, seed + 2)]
    )
    return quantize_embeddings(corpus, precision), quantize_embeddings(queries, precision)


def _assert_same(got, expected):
    for g, e in zip(got, expected, strict=True):
        assert type(g) is type(e)
        g, e = np.asarray(g), np.asarray(e)
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def test_index_is_the_one_retrieval_exports_once_it_does():
    assert getattr(retrieval, "Index", Index) is Index


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("k", [1, 5, 10])
def test_search_equals_the_plain_functions(precision, k):
    corpus, queries = _data(precision, 700, 30, 384, seed=k)
    hamming = precision in ("binary", "ubinary")
    for engine in ENGINES if hamming else ("auto",):
        index = Index(corpus, precision, engine)
        assert index.metric == ("hamming" if hamming else "dot")
        _assert_same(index.search(queries, k), _plain(precision, queries, corpus, k))


@settings(max_examples=60, deadline=None)
@given(
    precision=st.sampled_from(PRECISIONS),
    n_corpus=st.integers(1, 200),
    n_queries=st.integers(0, 12),
    dim=st.sampled_from([3, 8, 16, 24, 70]),
    k=st.integers(1, 250),
    seed=st.integers(0, 2**16),
)
def test_search_equals_the_plain_functions_on_arbitrary_sizes(
    precision, n_corpus, n_queries, dim, k, seed
):
    # few dimensions and bits: many tied scores, also straddling the k-th place
    corpus, queries = _data(precision, n_corpus, n_queries, dim, seed)
    expected = _plain(precision, queries, corpus, k)
    for engine in ENGINES if precision in ("binary", "ubinary") else ("auto",):
        _assert_same(Index(corpus, precision, engine).search(queries, k), expected)


@settings(max_examples=40, deadline=None)
@given(
    bits=st.sampled_from([8, 16, 64, 72, 200, 264, 320]),  # 1 to 5 words of 64 bits
    n_corpus=st.integers(1, 300),
    k=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_hamming_on_random_bytes_equals_search_hamming(bits, n_corpus, k, seed):
    rng = np.random.default_rng(seed)
    corpus = rng.integers(0, 256, (n_corpus, bits // 8), dtype=np.uint8)
    corpus[rng.integers(0, n_corpus, n_corpus // 3)] = corpus[0]  # ties
    queries = np.concatenate([corpus[:2], rng.integers(0, 256, (5, bits // 8), dtype=np.uint8)])
    for engine in ENGINES:
        _assert_same(
            Index(corpus, "ubinary", engine).search(queries, k), search_hamming(queries, corpus, k)
        )
        signed = corpus.view(np.int8)
        _assert_same(
            Index(signed, "binary", engine).search(queries.view(np.int8), k),
            search_hamming(queries.view(np.int8), signed, k),
        )


@pytest.mark.parametrize("engine", ENGINES)
def test_hamming_ties_beyond_what_faiss_returns_are_still_exact(engine):
    rng = np.random.default_rng(15)
    corpus = np.repeat(rng.integers(0, 256, (3, 48), dtype=np.uint8), 100, axis=0)
    rng.shuffle(corpus)  # 300 codes, 100 copies of each: ties run far past k + extra
    queries = np.concatenate([corpus[:4], rng.integers(0, 256, (4, 48), dtype=np.uint8)])
    for k in (1, 10, 150, 299):
        _assert_same(
            Index(corpus, "ubinary", engine).search(queries, k), search_hamming(queries, corpus, k)
        )


class _AdversarialNearest:
    """A stand-in for faiss: a valid kk-nearest answer that keeps the LARGEST ids among ties at
    the kk-th place, returned unordered. The faiss engine must still give the exact answer."""

    def __init__(self, codes):
        self.codes = codes

    def search(self, queries, kk):
        dist = np.unpackbits(queries[:, None, :] ^ self.codes[None], axis=-1).sum(-1)
        dist = dist.astype(np.int32)
        ids = np.arange(len(self.codes))
        order = np.lexsort((-ids[None, :].repeat(len(queries), 0), dist))[:, :kk]
        order = np.random.default_rng(0).permuted(order, axis=1)
        return np.take_along_axis(dist, order, axis=1), order.astype(np.int64)


@settings(max_examples=40, deadline=None)
@given(n_corpus=st.integers(1, 400), k=st.integers(1, 130), seed=st.integers(0, 2**16))
def test_the_faiss_engine_is_exact_whatever_ties_the_nearest_search_keeps(n_corpus, k, seed):
    rng = np.random.default_rng(seed)
    # 8-bit codes drawn from four values: ties at the k-th place run far past k + extra
    corpus = rng.choice(rng.integers(0, 256, (4, 1), dtype=np.uint8), n_corpus)
    queries = rng.integers(0, 256, (6, 1), dtype=np.uint8)
    index = Index(corpus, "ubinary", "numpy")
    index._faiss = _AdversarialNearest(corpus)
    assert index.engine == "faiss"
    _assert_same(index.search(queries, k), search_hamming(queries, corpus, k))


@pytest.mark.parametrize("engine", ENGINES)
def test_distances_beyond_uint16(engine):
    codes = np.zeros((4, 8200), np.uint8)  # 65,600 bits: distances up to 65,600 > 65,535
    codes[1] = 255
    codes[2, :4000] = 255
    codes[3] = 255
    ids, dist = Index(codes, "ubinary", engine).search(codes[:1], 4)
    np.testing.assert_array_equal(ids, [[0, 2, 1, 3]])
    np.testing.assert_array_equal(dist, [[0, 32_000, 65_600, 65_600]])
    _assert_same((ids, dist), search_hamming(codes[:1], codes, 4))


def test_engines():
    codes = quantize_embeddings(_unit_vectors(10, 16, 16), "ubinary")
    assert Index(codes, "ubinary", "numpy").engine == "numpy"
    assert Index(codes, "ubinary").engine == ("faiss" if HAVE_FAISS else "numpy")
    assert Index(_unit_vectors(10, 16, 16)).engine == "numpy"  # dot products: always NumPy
    with pytest.raises(ValueError, match="engine must be one of"):
        Index(codes, "ubinary", "torch")
    with pytest.raises(ValueError, match="engine='faiss' is for binary/ubinary"):
        Index(_unit_vectors(10, 16, 16), engine="faiss")


@pytest.mark.parametrize("precision", PRECISIONS)
def test_ties_go_to_the_smaller_id(precision):
    corpus = _unit_vectors(50, 32, 3)
    corpus[[7, 20, 41]] = corpus[33]  # four equal vectors: ids 7, 20, 33, 41
    codes = quantize_embeddings(corpus, precision)
    ids, scores = Index(codes, precision).search(codes[41], k=3)
    np.testing.assert_array_equal(ids, [[7, 20, 33]])
    assert scores[0, 0] == scores[0, 1] == scores[0, 2]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_shapes_follow_the_plain_functions(precision):
    corpus, queries = _data(precision, 20, 4, 16, seed=5)
    index = Index(corpus, precision)
    # k larger than the corpus gives the whole corpus, as top_k does
    ids, _ = index.search(queries, k=100)
    assert ids.shape == (4, 20)
    _assert_same(index.search(queries, 100), _plain(precision, queries, corpus, 100))
    # one 1-D query gives (1, k), as search_dot and search_hamming do
    _assert_same(index.search(queries[0], 3), _plain(precision, queries[0], corpus, 3))
    assert index.search(queries[0], 3)[0].shape == (1, 3)
    # no queries: empty (0, k) results of the same types
    _assert_same(index.search(queries[:0], 3), _plain(precision, queries[:0], corpus, 3))
    assert len(index) == 20


@pytest.mark.parametrize("precision", ["float32", "int8", "ubinary"])
def test_torch_in_torch_out(precision):
    corpus, queries = _data(precision, 100, 6, 32, seed=6)
    expected = _plain(precision, queries, corpus, 5)
    for got in (
        Index(corpus, precision).search(torch.from_numpy(queries), 5),
        Index(torch.from_numpy(corpus), precision).search(queries, 5),
    ):
        assert all(isinstance(t, torch.Tensor) for t in got)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g.numpy(), e)
    ids, _ = Index(corpus, precision).search(queries, 5)
    assert isinstance(ids, np.ndarray)


@pytest.mark.parametrize("precision", ["float32", "int8", "uint8", "ubinary"])
def test_the_corpus_is_copied_once(precision):
    corpus, queries = _data(precision, 200, 8, 64, seed=7)
    index = Index(corpus, precision)
    before = index.search(queries, 10)
    corpus[:] = corpus[::-1]  # the caller changes its array afterwards...
    _assert_same(index.search(queries, 10), before)  # ...and the index does not see it
    assert not index._data.flags.writeable  # nor can a search change what it holds
    tensor = torch.from_numpy(corpus.copy())
    t_index = Index(tensor, precision)
    t_before = t_index.search(queries, 10)
    tensor.zero_()
    for a, b in zip(t_index.search(queries, 10), t_before, strict=True):
        assert torch.equal(a, b)


def test_a_float_corpus_is_checked_once_when_built():
    corpus = _unit_vectors(30, 8, 8)
    corpus[4, 2] = np.nan
    with pytest.raises(ValueError, match="corpus contains NaN"):
        Index(corpus)
    corpus[4, 2] = np.inf
    with pytest.raises(ValueError, match="corpus contains an infinite value"):
        Index(corpus)


def test_bad_queries_are_named():
    floats, codes, bits = _unit_vectors(30, 16, 9), None, None
    codes = quantize_embeddings(floats, "int8")
    bits = quantize_embeddings(floats, "ubinary")
    f_index, i_index, b_index = Index(floats), Index(codes, "int8"), Index(bits, "ubinary")
    bad_query = floats[:2].copy()
    bad_query[1, 3] = np.nan
    with pytest.raises(ValueError, match="queries contains NaN"):
        f_index.search(bad_query, 3)
    with pytest.raises(ValueError, match="queries must have the corpus's dimension, 16, got 8"):
        f_index.search(floats[:2, :8], 3)
    with pytest.raises(ValueError, match="queries must have the corpus's bytes per code, 2"):
        b_index.search(codes[:2], 3)
    with pytest.raises(ValueError, match=r"queries must be \(n, d\) or \(d,\)"):
        f_index.search(floats[None], 3)
    with pytest.raises(TypeError, match="queries must be float embeddings for a float index"):
        f_index.search(codes[:2], 3)
    with pytest.raises(TypeError, match="queries must hold real numbers"):
        f_index.search(floats[:2] * 1j, 3)
    with pytest.raises(ValueError, match="queries holds values beyond float32's range"):
        f_index.search(np.full((1, 16), 1e39), 3)
    with pytest.raises(TypeError, match="queries must be int8 codes like the corpus"):
        i_index.search(quantize_embeddings(floats[:2], "uint8"), 3)
    with pytest.raises(TypeError, match="queries must be int8 codes like the corpus"):
        i_index.search(floats[:2], 3)
    with pytest.raises(TypeError, match="queries must be ubinary codes like the corpus"):
        b_index.search(quantize_embeddings(floats[:2], "binary"), 3)
    with pytest.raises(TypeError, match="queries must"):
        f_index.search("not an array", 3)
    for k in (0, -1):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            f_index.search(floats[:2], k)
    for k in (2.5, True, None, "3"):
        with pytest.raises(TypeError, match="k must be a positive integer"):
            f_index.search(floats[:2], k)


def test_bad_corpora_are_named():
    codes = quantize_embeddings(_unit_vectors(10, 16, 10), "int8")
    with pytest.raises(TypeError, match="precision must be given for a int8 corpus"):
        Index(codes)
    with pytest.raises(ValueError, match="precision must be one of"):
        Index(codes, "int4")
    with pytest.raises(TypeError, match="precision must be one of"):
        Index(codes, 8)
    with pytest.raises(TypeError, match="corpus must hold uint8 codes for precision 'uint8'"):
        Index(codes, "uint8")
    with pytest.raises(TypeError, match="corpus must be float embeddings for a float index"):
        Index(codes, "float32")
    with pytest.raises(TypeError, match="corpus must hold real numbers"):
        Index(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="corpus holds values beyond float32's range"):
        Index(np.full((2, 3), -1e39))
    with pytest.raises(TypeError, match="engine must be one of"):
        Index(codes, "int8", engine=None)
    with pytest.raises(ValueError, match="corpus must be a 2-D"):
        Index(np.zeros(5, np.float32))


@pytest.mark.filterwarnings("ignore:overflow encountered in matmul:RuntimeWarning")
def test_finite_floats_whose_dot_product_overflows_are_an_error_as_in_search_dot():
    corpus = np.full((3, 4), 3e38, np.float32)
    with pytest.raises(ValueError, match="scores contains an infinite value"):
        Index(corpus).search(corpus[0], 1)
    with pytest.raises(ValueError, match="scores contains an infinite value"):
        search_dot(corpus[0], corpus, 1)


def test_int8_dot_products_are_exact_and_fall_back_to_float64_when_float32_is_not():
    # int8: 128·128·384 < 2^24, so float32 is exact for every possible query
    int8 = quantize_embeddings(_unit_vectors(50, 384, 11), "int8")
    assert Index(int8, "int8").exact_in_float32
    # uint8 codes at both ends: |2q − 255| = 255, 255·255·384 > 2^24: the float64 path
    rng = np.random.default_rng(12)
    extreme = rng.choice(np.array([0, 255], np.uint8), (60, 384))
    extreme[5] = extreme[9]
    index = Index(extreme, "uint8")
    assert not index.exact_in_float32
    ids, scores = index.search(extreme[:7], 60)
    exact = np.sort(integer_dot(extreme[:7], extreme), axis=1)[:, ::-1]
    np.testing.assert_array_equal(scores, exact)
    _assert_same((ids, scores), search_dot(extreme[:7], extreme, 60))
    # int32 accumulation cannot hold 255·255·40000: an error, as integer_dot raises
    big = np.full((2, 40_000), 255, np.uint8)
    with pytest.raises(ValueError, match="overflow int32"):
        Index(big, "uint8").search(big, 1)


def test_queries_in_several_blocks_give_the_same_answer(monkeypatch):
    monkeypatch.setattr(index_module, "_SCORE_BYTES", 1)  # one query per block
    for precision in ("int8", "uint8", "ubinary"):
        corpus, queries = _data(precision, 300, 9, 48, seed=13)
        _assert_same(
            Index(corpus, precision, "numpy").search(queries, 7),
            _plain(precision, queries, corpus, 7),
        )
    # float32: one matmul whatever the block size (a block of rows may round differently)
    corpus, queries = _data("float32", 300, 9, 48, seed=13)
    _assert_same(Index(corpus).search(queries, 7), search_dot(queries, corpus, 7))


def test_hamming_distances_equal_faiss_index_binary_flat():
    faiss = pytest.importorskip("faiss")
    corpus, queries = _data("ubinary", 3000, 40, 384, seed=14)
    reference = faiss.IndexBinaryFlat(384)
    reference.add(corpus)
    f_dist, f_ids = reference.search(queries, 10)
    ids, dist = Index(corpus, "ubinary").search(queries, 10)
    np.testing.assert_array_equal(dist, f_dist)
    for row in range(len(queries)):  # faiss may order ties differently; strict ones agree
        below = dist[row] < dist[row, -1]
        np.testing.assert_array_equal(ids[row][below], f_ids[row][below])


def test_plain_numbers_are_float32_embeddings_as_in_search_dot():
    corpus = [[1, 0, 2], [0, 3, 0], [2, 0, 4], [1, 0, 2]]  # int64 lists: float32 vectors
    queries = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])  # float64: float32 too
    index = Index(corpus)
    assert index.precision == "float32"
    _assert_same(index.search(queries, 3), search_dot(queries, np.array(corpus), 3))


def test_an_empty_corpus_gives_empty_results_as_search_dot_does():
    corpus = np.zeros((0, 8), np.float32)
    _assert_same(
        Index(corpus).search(np.ones((2, 8), np.float32), 3),
        search_dot(np.ones((2, 8), np.float32), corpus, 3),
    )


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(index_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
