"""An exact search index that checks and converts its corpus once (chapter 6).

The plain functions of :mod:`quantbook.retrieval` (``search_dot``, ``search_hamming``) show the
arithmetic: every call validates the whole corpus and converts it to the type it computes in. That
is the right shape for teaching and the wrong one for serving queries: for one query it costs more
than the search itself. :class:`Index` does the checks and conversions once, when it is built, in
the style of faiss (``IndexFlatIP``, ``IndexBinaryFlat``)::

    index = Index(corpus_codes, "int8")
    ids, scores = index.search(query_codes, k=10)

and gives the same answers as the plain functions, bit for bit: the same ids and scores, best
first, ties to the smaller corpus id. (Float scores come from the same BLAS call as in
``search_dot`` on a C-contiguous corpus, the usual layout; ``search_dot`` hands BLAS any other
layout as it is, which may round a score differently in the last bit.) The metric follows the
corpus:

- float32 / float16 / float8 vectors: the float32 dot product q·c, largest first;
- int8 codes: the integer dot product Σ q_i c_i; uint8 codes: the same on 2q − 255 (int32);
- binary (int8) / ubinary (uint8) packed sign bits: the Hamming distance popcount(q XOR c),
  smallest first (int32).

Memory: the dot-product index keeps the corpus as float32 (an int8 corpus takes 4x its size, the
price of using BLAS, as faiss's ``IndexFlat`` does); the Hamming index keeps the packed bits as
64-bit words (the size of the codes, rounded up to 8 bytes per code), and with the faiss engine
faiss holds a second copy.
"""

from __future__ import annotations

import numpy as np

from quantbook._arrays import (
    as_real_array,
    check_choice,
    check_finite,
    check_integer,
    is_tensor,
    like,
    to_numpy,
)
from quantbook.embeddings import PRECISIONS, _as_packed_bytes, _popcount_unsigned

_DOT = ("float32", "float8", "int8", "uint8")
_HAMMING = ("binary", "ubinary")
_CODE_DTYPE = {"int8": np.int8, "binary": np.int8, "uint8": np.uint8, "ubinary": np.uint8}
_QUERY_MAX = {"int8": 128, "uint8": 255}  # the largest |code| a query can bring (uint8: |2q−255|)
_FLOAT32_EXACT = 2**24  # every integer of magnitude <= 2^24 is a float32 (24-bit significand)
_INT32_LIMIT = 2**31
_SCORE_BYTES = 2**25  # about 32 MB of scores per block of queries


def _infer_precision(a: np.ndarray) -> str:
    if a.dtype.name.startswith("float8"):
        return "float8"
    if a.dtype in (np.int8, np.uint8):
        raise TypeError(
            f"precision must be given for a {a.dtype} corpus: 'int8'/'uint8' for codes searched "
            "by dot product, 'binary'/'ubinary' for packed sign bits searched by Hamming distance"
        )
    return "float32"  # any other real numbers: float32 vectors, as search_dot takes them


def _float32(a: np.ndarray, name: str) -> np.ndarray:
    """Real numbers as float32, as ``search_dot`` takes them: finite and within float32's range."""
    if a.dtype in (np.int8, np.uint8):
        raise TypeError(
            f"{name} must be float embeddings for a float index, got {a.dtype} codes "
            "(an index of codes needs precision='int8', 'uint8', 'binary' or 'ubinary')"
        )
    a = as_real_array(a, name)  # bool/int/float; float8, bfloat16 -> float32; NaN, inf refused
    with np.errstate(over="ignore"):  # float64 beyond float32's range: inf, refused just below
        f = a.astype(np.float32, copy=False)
    if a.dtype.itemsize > 4 and f.size and not np.isfinite(f).all():
        raise ValueError(f"{name} holds values beyond float32's range")
    return f


def _centre(codes: np.ndarray) -> np.ndarray:
    """Codes as exact float32 integers; uint8 re-centred as 2q − 255 (= 255·x̂, fixed range)."""
    out = codes.astype(np.float32)
    if codes.dtype == np.uint8:
        out *= 2
        out -= 255
    return out


def _largest_magnitude(centred: np.ndarray) -> int:
    return int(np.abs(centred).max()) if centred.size else 0


def _words(packed: np.ndarray) -> np.ndarray:
    """Bytes (n, B) as uint64 words (n, ceil(B / 8)), zero-padded (0 XOR 0 adds no distance)."""
    n, n_bytes = packed.shape
    out = np.zeros((n, -(-n_bytes // 8) * 8), dtype=np.uint8)
    out[:, :n_bytes] = packed
    return out.view(np.uint64)


class Index:
    """Exact top-k search over a fixed corpus, validated and converted once.

    Parameters
    ----------
    corpus : (m, d) float embeddings, int8/uint8 codes, or (m, B) packed binary/ubinary codes
        (NumPy array, torch CPU tensor or nested list). It is copied: changing the caller's
        array afterwards does not change the index.
    precision : one of "float32", "float8", "int8", "uint8", "binary", "ubinary", or None
        (only for float corpora: "float32", or "float8" for an ml_dtypes float8 array). int8 and
        uint8 arrays are ambiguous (codes or packed bits), so for them it must be given.
    engine : "auto", "numpy" or "faiss"
        Who computes Hamming distances. "numpy": XOR and popcount on 64-bit words, here.
        "faiss": faiss's ``IndexBinaryFlat`` (C++; its OpenMP threads as the caller set them),
        asked for a few more than k neighbours so that every code tied with the k-th is among
        them, then ordered by (distance, id): the same answer as "numpy", checked per query
        (a query whose ties run past what faiss returned is answered by "numpy"). "auto": faiss
        when it is installed, else NumPy. Dot products always use NumPy's BLAS matmul, whose
        float32 rounding is the one :func:`quantbook.retrieval.search_dot` gives.

    Scores (what :meth:`search` returns beside the ids):

    .. math::

        s(q, c) = \\sum_i q_i c_i \\quad \\text{(float32, int8, uint8 on } 2q - 255\\text{)},
        \\qquad
        h(q, c) = \\operatorname{popcount}(q \\oplus c) \\quad \\text{(binary, ubinary)}

    Similarities are returned largest first, distances smallest first, ties to the smaller id,
    exactly as :func:`quantbook.retrieval.search_dot` and ``search_hamming`` return them. The
    index tells its ``precision``, ``metric`` ("dot" or "hamming"), ``ntotal`` (vectors, also
    ``len(index)``), ``dim`` (values or bytes per vector) and ``engine``.

    Examples
    --------
    >>> import numpy as np
    >>> from quantbook.embeddings import quantize_embeddings
    >>> corpus = np.array([[0.6, 0.8], [1.0, 0.0], [0.6, 0.8]], np.float32)
    >>> index = Index(quantize_embeddings(corpus, "int8"), "int8")
    >>> ids, scores = index.search(quantize_embeddings(corpus[:1], "int8"), k=2)
    >>> ids.tolist(), scores.tolist()  # the two equal vectors tie: the smaller id first
    ([[0, 2]], [[16180, 16180]])
    """

    def __init__(self, corpus, precision: str | None = None, engine: str = "auto"):
        engine = check_choice(engine, "engine", ("auto", "numpy", "faiss"))
        c = to_numpy(corpus, "corpus")
        if precision is None:
            precision = _infer_precision(c)
        precision = check_choice(precision, "precision", PRECISIONS)
        if c.ndim != 2:
            raise ValueError(f"corpus must be a 2-D (vectors, dimension) array, got {c.shape}")
        self.precision = precision
        self.metric = "hamming" if precision in _HAMMING else "dot"
        self.ntotal, self.dim = c.shape  # dim: values per vector, or bytes per packed code
        if engine == "faiss" and self.metric == "dot":
            raise ValueError(
                "engine='faiss' is for binary/ubinary codes; dot products use NumPy's matmul"
            )
        self._faiss = None
        self._torch = is_tensor(corpus)
        if precision in ("float32", "float8"):
            data = _float32(c, "corpus")
            if np.may_share_memory(data, c) or not data.flags.c_contiguous:
                data = np.array(data, order="C")  # our own copy: the caller's array may change
        elif precision in _DOT:
            self._check_codes(c, precision)
            data = _centre(c)
            # int8 dot products in float32 are exact while no sum can leave ±2^24: every product
            # q_i·c_i is an integer with |q_i·c_i| <= max|q|·max|c|, so every partial sum, in any
            # order BLAS adds them (blocks, FMA), is an integer of magnitude <= max|q|·max|c|·d.
            # Integers up to 2^24 are float32 numbers, so every addition is exact. For int8 codes
            # max|q|, max|c| <= 128: d = 384 gives at most 128·128·384 = 6,291,456 < 2^24
            # (d <= 1023 always fits). uint8 re-centred reaches 255, so the bound is checked per
            # query batch against the corpus's actual max|c| (float64, exact below 2^53, else).
            self._largest = _largest_magnitude(data)
            self.exact_in_float32 = (
                _QUERY_MAX[precision] * self._largest * self.dim < _FLOAT32_EXACT
            )
            if precision == "int8" and self.dim <= 1023:
                assert self.exact_in_float32, "int8 sums of d <= 1023 terms fit float32 exactly"
        else:
            self._check_codes(c, precision)
            packed = _as_packed_bytes(c, "corpus")
            # (words, m): word w of every code side by side, so each step is one long, flat loop
            data = np.ascontiguousarray(_words(packed).T)
            self._faiss = _faiss_index(packed, engine)
        data.setflags(write=False)
        self._data = data

    @staticmethod
    def _check_codes(c: np.ndarray, precision: str) -> None:
        if c.dtype != _CODE_DTYPE[precision]:
            raise TypeError(
                f"corpus must hold {np.dtype(_CODE_DTYPE[precision])} codes for precision "
                f"{precision!r}, got dtype {c.dtype}"
            )

    def __len__(self) -> int:
        return self.ntotal

    @property
    def engine(self) -> str:
        """Who computes the scores: "faiss" or "numpy"."""
        return "numpy" if self._faiss is None else "faiss"

    def __repr__(self) -> str:
        return (
            f"Index({self.ntotal} x {self.dim}, precision={self.precision!r}, "
            f"engine={self.engine!r})"
        )

    # --- queries ------------------------------------------------------------------------------
    def _queries(self, queries) -> np.ndarray:
        """Queries as a 2-D array of the compute type, checked once per call (they are small)."""
        q = to_numpy(queries, "queries")
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2:
            raise ValueError(f"queries must be (n, d) or (d,), got shape {q.shape}")
        if q.shape[1] != self.dim:
            what = "bytes per code" if self.metric == "hamming" else "dimension"
            raise ValueError(f"queries must have the corpus's {what}, {self.dim}, got {q.shape[1]}")
        if self.precision in ("float32", "float8"):
            return _float32(q, "queries")
        if self.metric == "dot":
            if q.dtype != _CODE_DTYPE[self.precision]:
                raise TypeError(
                    f"queries must be {self.precision} codes like the corpus, got dtype {q.dtype}"
                )
            return _centre(q)
        if q.dtype in (np.int8, np.uint8) and q.dtype != _CODE_DTYPE[self.precision]:
            raise TypeError(
                f"queries must be {self.precision} codes like the corpus, got dtype {q.dtype}"
            )
        return _words(_as_packed_bytes(q, "queries"))

    def search(self, queries, k: int = 10):
        """The k best corpus vectors for each query: (ids, scores), each (n_queries, k).

        ``queries`` is (n, d) or one query (d,), which gives (1, k) as the plain functions do;
        k larger than the corpus gives the whole corpus. ids are int64; scores float32 (float
        corpus) or int32 (dot products of codes, Hamming distances). A torch tensor in (queries
        or the corpus the index was built from) gives torch tensors out.
        """
        k = check_integer(k, "k", 1)
        q = self._queries(queries)
        k = min(k, self.ntotal)
        n = q.shape[0]
        score_dtype = np.float32 if self.precision in ("float32", "float8") else np.int32
        ids = np.zeros((n, k), dtype=np.int64)
        scores = np.zeros((n, k), dtype=score_dtype)
        if n and k:
            if self.metric == "hamming" and self._faiss is not None:
                self._search_faiss(q, k, ids, scores)
            elif self.metric == "hamming":
                self._search_hamming(q, k, ids, scores)
            else:
                self._search_dot(q, k, ids, scores)
        if self._torch:  # torch in (the corpus) -> torch out, as search_dot(queries, corpus)
            import torch

            return torch.from_numpy(ids), torch.from_numpy(scores)
        return like(ids, queries), like(scores, queries)

    def _query_block(self, itemsize: int) -> int:
        return max(1, _SCORE_BYTES // (itemsize * max(1, self.ntotal)))

    def _search_dot(self, q: np.ndarray, k: int, ids: np.ndarray, scores: np.ndarray) -> None:
        corpus = self._data
        if self.precision in ("int8", "uint8"):
            bound = _largest_magnitude(q) * self._largest * self.dim
            if bound >= _INT32_LIMIT:
                raise ValueError("the dot products would overflow int32 accumulation")
            if bound >= _FLOAT32_EXACT:  # rare (uint8 codes near the ends): exact in float64
                q = q.astype(np.float64)
        # Float scores: one matmul over all the queries, the very BLAS call search_dot makes (a
        # block of rows can round a score differently in the last bit). Integer scores are exact
        # whichever way they are summed, so they go a block of queries at a time (less memory).
        floats = self.precision in ("float32", "float8")
        block = q.shape[0] if floats else self._query_block(q.itemsize)
        for start in range(0, q.shape[0], block):
            with np.errstate(over="ignore"):  # an overflow to inf is raised just below
                s = q[start : start + block] @ corpus.T  # the same BLAS call as search_dot
            if floats:
                check_finite(s, "scores")  # finite inputs can still overflow to inf
            i, v = _best_k(s, k, largest=True)
            ids[start : start + block] = i
            scores[start : start + block] = v  # exact integers for codes: the int32 sums

    def _search_hamming(self, q: np.ndarray, k: int, ids: np.ndarray, scores: np.ndarray) -> None:
        columns = self._data  # (words, m)
        n_words, m = columns.shape
        block = self._query_block(2)
        # corpus columns in pieces so the XOR and popcount temporaries stay in cache
        width = max(256, min(m, (1 << 19) // min(block, q.shape[0])))
        # h <= 64·words: uint16 up to 1023 words (65,472 bits), else uint32
        dist_type = np.uint16 if 64 * n_words <= np.iinfo(np.uint16).max else np.uint32
        for start in range(0, q.shape[0], block):
            qb = q[start : start + block]
            dist = np.zeros((qb.shape[0], m), dtype=dist_type)
            xor = np.empty((qb.shape[0], width), dtype=np.uint64)
            bits = np.empty((qb.shape[0], width), dtype=np.uint8)
            for lo in range(0, m, width):
                hi = min(m, lo + width)
                part, x, b = dist[:, lo:hi], xor[:, : hi - lo], bits[:, : hi - lo]
                for w in range(n_words):  # h = Σ_w popcount(q_w XOR c_w)
                    np.bitwise_xor(qb[:, w, None], columns[w, None, lo:hi], out=x)
                    _count_bits(x, out=b)
                    part += b
            i, v = _best_k(dist, k, largest=False)
            ids[start : start + block] = i
            scores[start : start + block] = v

    def _search_faiss(self, q: np.ndarray, k: int, ids: np.ndarray, scores: np.ndarray) -> None:
        """faiss's k + extra nearest, made exact: ties at the k-th distance go to the smaller id.

        faiss keeps the kk nearest codes in a heap; which of several codes tied at the last
        place it keeps is not specified. If the kk-th distance is larger than the k-th, every
        code at distance <= the k-th is among the kk (a missing one would be nearer than the
        kk-th), so sorting them by (distance, id) gives the exact k best. Rows where the tie at
        the k-th place runs to the kk-th go to the NumPy path.
        """
        kk = min(self.ntotal, 2 * k + 16)
        packed = np.ascontiguousarray(q.view(np.uint8)[:, : self.dim])
        dist, found = self._faiss.search(packed, kk)
        order = np.lexsort((found, dist))  # each row by (distance, id)
        dist = np.take_along_axis(dist, order, axis=1)
        found = np.take_along_axis(found, order, axis=1)
        ids[:] = found[:, :k]
        scores[:] = dist[:, :k]
        if kk < self.ntotal:
            unsure = np.flatnonzero(dist[:, kk - 1] == dist[:, k - 1])
            if unsure.size:
                i, s = ids[unsure], scores[unsure]
                self._search_hamming(q[unsure], k, i, s)
                ids[unsure], scores[unsure] = i, s


def _count_bits(x: np.ndarray, out: np.ndarray) -> None:
    """popcount of each uint64 into ``out`` (uint8)."""
    if hasattr(np, "bitwise_count"):
        np.bitwise_count(x, out=out)
    else:  # pragma: no cover - NumPy 1.x
        out[...] = _popcount_unsigned(x)


def _faiss_index(packed: np.ndarray, engine: str):
    """A faiss ``IndexBinaryFlat`` holding a copy of the codes, or None for the NumPy engine."""
    if engine == "numpy":
        return None
    try:
        import faiss
    except ImportError:
        if engine == "faiss":
            raise ImportError("engine='faiss' needs the faiss-cpu package") from None
        return None
    index = faiss.IndexBinaryFlat(8 * packed.shape[1])
    if packed.shape[0]:
        index.add(np.ascontiguousarray(packed))  # faiss copies the codes
    return index


def _best_k(s: np.ndarray, k: int, largest: bool):
    """The k best entries of each row of ``s`` (n, m), best first, ties to the smaller id:
    (ids as int64, values), each (n, k), k <= m.

    The answer of :func:`quantbook.retrieval.top_k` (``np.lexsort((j, -s))[:, :k]`` per row),
    found with less work per row:

    1. a threshold t per row that at least k entries reach: cut the row into pieces of 64 and
       take the k-th best of the pieces' best values (k pieces hold an entry at least that good);
    2. every entry at least as good as t is a candidate: the true k best, all entries tied
       with the k-th, and a few more;
    3. sort the candidates by (row, value, id) and keep the first k of each row.
    """
    n, m = s.shape
    if n == 0 or m == 0:
        return np.zeros((n, k), dtype=np.int64), s[:, :k].copy()
    starts = np.arange(0, m, 64 if m >= 64 * k else max(1, m // k))
    if largest:
        piece = np.maximum.reduceat(s, starts, axis=1)
        t = np.partition(piece, piece.shape[1] - k, axis=1)[:, piece.shape[1] - k]
        flat = np.flatnonzero(s >= t[:, None])  # flat positions: faster than 2-D nonzero
    else:
        piece = np.minimum.reduceat(s, starts, axis=1)
        t = np.partition(piece, k - 1, axis=1)[:, k - 1]
        flat = np.flatnonzero(s <= t[:, None])
    rows, cols = np.divmod(flat, m)
    values = s[rows, cols]
    order = np.lexsort((cols, _smaller_is_better(values, largest), rows))  # by row, best first
    first = np.searchsorted(rows, np.arange(n))  # nonzero gives rows sorted: where each begins
    pick = order[first[:, None] + np.arange(k)]
    return cols[pick].astype(np.int64, copy=False), values[pick]


def _smaller_is_better(values: np.ndarray, largest: bool) -> np.ndarray:
    """A sort key for a few values that puts the best first.

    Floats are negated; integers are bit-inverted (``~v``, which is ``-v - 1`` for signed and
    ``max - v`` for unsigned integers): the same order, with no overflow at int64's minimum or
    above 2**63 in uint64.
    """
    if not largest:
        return values
    if values.dtype.kind == "b":
        return ~values.astype(np.int8)
    return ~values if values.dtype.kind in "iu" else -values
