r"""Nearest-neighbour search over (quantized) embeddings, and how good it is (chapter 6).

Exact search scores every corpus vector against every query and keeps the k best:

- float32 / float8: the dot product :math:`q \cdot c` (equal to cosine similarity for
  normalized vectors)
- int8 codes: the integer dot product, accumulated in int32
- uint8 codes: the same after re-centring :math:`2q - 255` (odd integers, exactly
  :math:`255\,\hat{x}` for the fixed-range scheme), so the ranking is that of the dequantized
  vectors
- binary/ubinary codes: the Hamming distance, smaller is better

Binary search with rescoring retrieves :math:`k \cdot m` candidates by Hamming distance, then
rescores them with the float query. Ties are broken by the smaller corpus id everywhere, so results
are deterministic.
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import as_real_array, check_flag, check_integer, like, to_numpy
from quantbook._index import Index as Index  # re-exported: quantbook.retrieval.Index
from quantbook._index import _best_k
from quantbook.embeddings import _as_packed_bytes, _unpack_sign_bits, hamming_distance


def _check_k(k, name: str = "k") -> int:
    return check_integer(k, name, 1)


def top_k(scores, k: int, largest: bool = True):
    r"""The k best entries of each row of ``scores`` (n, m): (ids, values), best first (chapter 6).

    Row i's ids, sorted best first with ties to the smaller id, cut after k:

    .. math::  \mathrm{ids}_i = (j_1, \dots, j_k), \qquad
               (-s_{ij_1}, j_1) < (-s_{ij_2}, j_2) < \dots < (-s_{ij_k}, j_k) <
               (-s_{ij}, j) \ \text{for every other}\ j

    (:math:`+s_{ij}` with ``largest=False``, for distances). The order is total, so the answer
    is unique, also at the k-th place. k larger than m gives all m. It equals
    ``np.lexsort((j, -s))[:, :k]``; the private helper ``quantbook._index._best_k`` (the search
    index's engine too) finds it without sorting whole rows.
    """
    s = as_real_array(scores, "scores")
    k = _check_k(k)
    largest = check_flag(largest, "largest")
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D (queries, corpus) array, got shape {s.shape}")
    ids, values = _best_k(s, min(k, s.shape[1]), largest)  # first k of lexsort((j, ∓s)), per row
    return like(ids, scores), like(values, scores)


def integer_dot(a, b, block: int = 8192):
    r"""Integer dot products with int32 accumulation, for int8 (or re-centred uint8) codes
    (chapter 6).

    .. math::  s_{ij} = \sum_k a_{ik}\, b_{jk}

    uint8 codes are re-centred first, :math:`a \leftarrow 2a - 255` (odd integers, exactly
    :math:`255\,\hat{x}` for the fixed-range scheme). The result is bit-identical to
    ``a.astype(int32) @ b.astype(int32).T``; only the speed differs. NumPy has no integer
    matrix-multiply kernel (no BLAS), so the sums are computed with float BLAS in a float type
    that holds every one of them exactly (:math:`\max|a| \cdot \max|b| \cdot d < 2^{24}` for
    float32, :math:`< 2^{53}` for float64), ``block`` rows of ``b`` at a time (speed and memory
    only: see ``_exact_row_blocks``).
    """
    ia, ib = as_real_array(a, "a"), as_real_array(b, "b")
    block = check_integer(block, "block", 1)
    _check_codes(ia, "a")
    _check_codes(ib, "b")
    if ia.shape[-1] != ib.shape[-1]:
        raise ValueError(f"a and b must have the same dimension, got {ia.shape} and {ib.shape}")
    exact = _exact_float_type(ia, ib)  # float32 or float64: every sum an exact integer
    fa = _centred(ia, np.empty(ia.shape, exact))
    s = np.empty(ia.shape[:-1] + ib.shape[:-1], dtype=np.int32)
    for columns, fb in _exact_row_blocks(ib, exact, block):
        s[columns] = fa @ fb.T  # s_ij = Σ_k a_ik b_jk, exact
    return like(s[()], a, b)  # s[()]: a NumPy scalar for two single vectors, as np.dot


def _check_codes(v: np.ndarray, name: str) -> None:
    if v.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer codes (int8 or uint8), got dtype {v.dtype}")
    if v.ndim not in (1, 2):
        raise ValueError(f"{name} must be a 1-D or 2-D array of codes, got shape {v.shape}")


# --- the fast paths: the same answers, with less work -------------------------------------------
def _exact_float_type(a: np.ndarray, b: np.ndarray) -> type:
    """float32 if every dot product of (re-centred) codes is below 2**24, else float64.

    Any order of summation then gives the exact integer (every partial sum is one too). Sums
    that int32 cannot hold are a ``ValueError``.
    """
    bound = _largest_magnitude(a) * _largest_magnitude(b) * a.shape[-1]
    if bound >= 2**31:
        raise ValueError("the dot products would overflow int32 accumulation")
    return np.float32 if bound < 2**24 else np.float64


def _exact_row_blocks(b: np.ndarray, ftype: type, block: int):
    """The rows of ``b`` as exact floats (re-centred), ``block`` rows at a time.

    Yields (where, floats): ``where`` indexes the columns of the result those rows fill. The rows
    are converted into one reused buffer (12 MB for d = 384 and 8192 rows; no page faults)
    instead of int32 and float copies 4x the size of the codes; few blocks, because each one is
    a BLAS call. A single vector ``b`` is one block.
    """
    if b.ndim == 1:
        yield ..., _centred(b, np.empty(b.shape, ftype))
        return
    rows = np.empty((min(block, b.shape[0]), b.shape[1]), dtype=ftype)
    for start in range(0, b.shape[0], block):
        yield (..., slice(start, start + block)), _centred(
            b[start : start + block], rows[: b.shape[0] - start]
        )


def _centred(codes: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The codes as exact integers in ``out`` (floats); uint8 re-centred as 2q − 255."""
    np.copyto(out, codes)
    if codes.dtype == np.uint8:
        # 2q − 255 = 255·x̂ for fixed-range uint8: a centred, odd-integer grid
        out *= 2
        out -= 255
    return out


def _largest_magnitude(codes: np.ndarray) -> int:
    """max |c| over the (re-centred) codes, from their minimum and maximum (no copies)."""
    if codes.size == 0:
        return 0
    low, high = int(codes.min()), int(codes.max())
    if codes.dtype == np.uint8:
        low, high = 2 * low - 255, 2 * high - 255
    return max(abs(low), abs(high))


def dot_scores(queries, corpus):
    r"""Similarity of every query with every corpus vector, shape (n_queries, n_corpus) (chapter 6).

    .. math::  s_{ij} = q_i \cdot c_j

    Floats (float32, float16, float8 e4m3fn): the float32 dot product.
    int8 or uint8 codes (both sides the same): :func:`integer_dot` (int32).
    """
    q, c = as_real_array(queries, "queries"), as_real_array(corpus, "corpus")
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or c.ndim != 2:
        raise ValueError(
            f"queries must be (n, d) or (d,) and corpus (m, d), got {q.shape} and {c.shape}"
        )
    if q.shape[1] != c.shape[1]:
        raise ValueError(
            f"queries and corpus must have the same dimension, got {q.shape[1]} and {c.shape[1]}"
        )
    q_int, c_int = q.dtype in (np.int8, np.uint8), c.dtype in (np.int8, np.uint8)
    if q_int or c_int:
        if q.dtype != c.dtype:
            raise TypeError(
                "queries and corpus must both be int8 or both uint8 codes, "
                f"got {q.dtype} and {c.dtype}"
            )
        return like(integer_dot(q, c), queries, corpus)
    with np.errstate(over="ignore"):  # beyond float32: inf, reported just below
        qf, cf = q.astype(np.float32, copy=False), c.astype(np.float32, copy=False)
    for src, v, n in ((q, qf, "queries"), (c, cf, "corpus")):  # float64 beyond float32's range
        if src.dtype.itemsize > 4 and v.size and not np.isfinite(v).all():
            raise ValueError(f"{n} holds values beyond float32's range")
    return like(qf @ cf.T, queries, corpus)


def search_dot(queries, corpus, k: int = 10):
    """Exact top-k by dot product: (ids, scores), each (n_queries, k), best first.

    See :func:`dot_scores` for the precisions. Ties go to the smaller corpus id.
    """
    scores = dot_scores(queries, corpus)
    ids, vals = top_k(to_numpy(scores), k)
    return like(ids, queries, corpus), like(vals, queries, corpus)


def search_hamming(query_codes, corpus_codes, k: int = 10):
    """Exact top-k by Hamming distance on packed sign bits: (ids, distances), nearest first.

    Both sides binary (int8) or both ubinary (uint8). Ties go to the smaller corpus id.
    """
    q = to_numpy(query_codes, "query_codes")
    distances = to_numpy(hamming_distance(np.atleast_2d(q), corpus_codes))
    ids, vals = top_k(distances, k, largest=False)
    return like(ids, query_codes, corpus_codes), like(vals, query_codes, corpus_codes)


def search_binary_rescore(queries, corpus_codes, k: int = 10, multiplier: int = 4, corpus=None):
    r"""Binary search with rescoring: retrieve by Hamming distance, rescore with the float query
    (chapter 6).

    1. quantize the float ``queries`` to sign bits and take the ``k * multiplier`` corpus codes
       with the smallest Hamming distance;
    2. score those candidates with the float query: :math:`q \cdot c` against ``corpus`` (float
       vectors of the whole corpus, e.g. kept on disk) if it is given, else :math:`q \cdot \hat{c}`
       against the ±1 vectors unpacked from the codes (nothing but the bits needed);
    3. keep the k best.

    ``corpus_codes`` are binary (int8) or ubinary (uint8) codes from
    :func:`quantbook.embeddings.quantize_embeddings`; the dtype says which, so other integer
    dtypes are a ``TypeError``. Both give the same ids and scores.

    .. math::  q \cdot \hat{c} = 2\, q \cdot b - \textstyle\sum_j q_j, \qquad \hat{c} = 2b - 1

    so it ranks like sentence-transformers 6.2's :math:`q \cdot b` on the {0, 1} bits (the term
    :math:`\sum_j q_j` is the same for every candidate). Returns (ids, scores), each
    (n_queries, k).
    """
    multiplier = _check_k(multiplier, "multiplier")
    k = _check_k(k)
    with np.errstate(over="ignore"):  # beyond float32: inf, reported just below
        q = as_real_array(queries, "queries").astype(np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2:
        raise ValueError(f"queries must be (n, d) or (d,), got shape {q.shape}")
    if q.size and not np.isfinite(q).all():
        raise ValueError("queries holds values beyond float32's range")
    raw = to_numpy(corpus_codes, "corpus_codes")
    if raw.dtype == np.int8:  # binary = ubinary - 128: flip the top bit back
        codes = raw.view(np.uint8) ^ np.uint8(0x80)
    elif raw.dtype == np.uint8:
        codes = raw
    else:
        raise TypeError(
            "corpus_codes must be binary (int8) or ubinary (uint8) packed codes, got dtype "
            f"{raw.dtype}"
        )
    codes = _as_packed_bytes(codes, "corpus_codes")
    if codes.ndim != 2:
        raise ValueError(f"corpus_codes must be (m, bytes), got shape {codes.shape}")
    if (q.shape[1] + 7) // 8 != codes.shape[1]:
        raise ValueError(
            f"queries of dimension {q.shape[1]} pack into {(q.shape[1] + 7) // 8} bytes, "
            f"corpus_codes has {codes.shape[1]}"
        )
    query_codes = np.packbits(q > 0, axis=-1)
    candidates, _ = search_hamming(query_codes, codes, k * multiplier)
    if corpus is not None:
        c = as_real_array(corpus, "corpus").astype(np.float32)
        if c.shape != (codes.shape[0], q.shape[1]):
            raise ValueError(
                f"corpus must have shape {(codes.shape[0], q.shape[1])}, got {c.shape}"
            )
        vectors = c[candidates]
    else:
        vectors = _unpack_sign_bits(codes[candidates], q.shape[1])
    rescored = np.einsum("nd,nkd->nk", q, vectors)
    # among the candidates: best score first, ties to the smaller corpus id
    order = np.lexsort((candidates, -rescored), axis=1)[:, :k]
    ids = np.take_along_axis(candidates, order, axis=1)
    return like(ids, queries), like(np.take_along_axis(rescored, order, axis=1), queries)


def recall_at_k(found_ids, true_ids) -> float:
    r"""Recall@k: the fraction of the true k nearest neighbours a search found (chapter 6).

    .. math::  \mathrm{recall@}k = \frac{1}{n} \sum_{i=1}^{n}
               \frac{|\{f_{i1}, \dots, f_{ik}\} \cap \{t_{i1}, \dots, t_{ik}\}|}{k}

    with ``k = true_ids.shape[1]``.
    ``found_ids`` (n, ≥k or fewer) are the ids a search returned, ``true_ids`` (n, k) those of
    exact float32 search. 1.0 means every true neighbour was found. Ids are counted as sets: a
    repeated found id counts once, and a row of ``true_ids`` must not repeat an id. Ids are
    integers.
    """
    found, truth = as_real_array(found_ids, "found_ids"), as_real_array(true_ids, "true_ids")
    for v, n in ((found, "found_ids"), (truth, "true_ids")):
        if v.dtype.kind not in "iu":
            raise TypeError(f"{n} must hold integer ids, got dtype {v.dtype}")
    if found.ndim != 2 or truth.ndim != 2 or found.shape[0] != truth.shape[0]:
        raise ValueError(
            f"found_ids and true_ids must be (n, k) arrays with the same n, got {found.shape} "
            f"and {truth.shape}"
        )
    k = truth.shape[1]
    if truth.shape[0] == 0 or k == 0:
        return float("nan")
    ordered = np.sort(truth, axis=1)
    if (ordered[:, 1:] == ordered[:, :-1]).any():
        raise ValueError("true_ids must not repeat an id within a row (they are a set)")
    # each true id counts once, found or not: repeats among the found ids add nothing
    hits = (truth[:, :, None] == found[:, None, :k]).any(axis=2).sum(axis=1)
    return float(hits.mean() / k)


def recall_standard_error(found_ids, true_ids, n_boot: int = 2000, seed: int = 0) -> float:
    r"""Bootstrap standard error of recall@k over the queries (chapter 7).

    .. math::  \mathrm{SE} = \operatorname{std}_{b = 1, \dots, B}
               \Big(\frac{1}{n} \sum_{j=1}^{n} r_{i_{bj}}\Big),
               \qquad i_{bj} \text{ drawn uniformly from } \{1, \dots, n\}

    where :math:`r_i` is query :math:`i`'s own recall@k (:func:`recall_at_k` of its row) and
    :math:`B` = ``n_boot`` resamples of the :math:`n` queries are drawn with replacement
    (``numpy.random.default_rng(seed)``); the standard deviation is the population one. It says
    how much recall@k would move had other queries been drawn: two schemes whose recalls differ
    by less than about two standard errors are not told apart by these queries.
    """
    recall_at_k(found_ids, true_ids)  # checks both: integer ids, (n, k) with the same n
    n_boot = check_integer(n_boot, "n_boot", low=1)
    seed = check_integer(seed, "seed", low=0)
    found, truth = as_real_array(found_ids, "found_ids"), as_real_array(true_ids, "true_ids")
    n = truth.shape[0]
    if n == 0 or truth.shape[1] == 0:
        raise ValueError(f"true_ids must hold at least one query and one id, got {truth.shape}")
    per_query = np.array([recall_at_k(found[i:i + 1], truth[i:i + 1]) for i in range(n)])
    rng = np.random.default_rng(seed)
    means = per_query[rng.integers(0, n, (n_boot, n))].mean(axis=1)
    return float(means.std())
