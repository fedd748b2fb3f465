"""TF-IDF candidate retrieval over trial fields (scikit-learn estimator style).

One vocabulary/IDF is fitted over all fields; each field is a separate
L2-normalised matrix and a document's score is the weighted sum of the
query's cosine with each field. ``__init__`` only stores parameters, ``fit``
returns ``self`` and fitted state ends in ``_``.

Since ``sum_f w_f * (M_f @ q) == (sum_f w_f * M_f) @ q``, ``fit`` stores the
single weighted matrix ``W = sum_f w_f * M_f`` in CSC form (``weighted_``), and a
query is scored with the columns of ``W`` of its own terms only.

Memory-bounded fit (the same vocabulary, IDF and matrices as ``TfidfVectorizer.fit`` followed by
``transform`` of each field, bit for bit): the text of each trial is read once by :class:`TextAnalyzer` (the
vectorizer's reading, tested equal) into token ids; the document frequency of every uni-/bigram is counted
per chunk of documents as integer keys (no n-gram strings, no count matrix of the whole corpus), and only the
terms that survive ``min_df``/``max_df``/``max_features`` get a string. The field matrices are then computed
chunk by chunk from the stored token ids, summed into ``W`` and written straight into its CSC arrays. The
per-field matrices are kept only for a small corpus (``field_rows_max_docs``); otherwise the rows that
``field_scores`` and the Rocchio centroid need (a few per query) are recomputed from the token ids, kept
compressed (``tokens_``), by the same code as in the fit.

scikit-learn is imported by ``fit`` only: a fitted ranker keeps the vocabulary and IDF, not the vectorizer, and
reads a query with :class:`TextAnalyzer` and :meth:`TfidfRanker.transform` (what ``TfidfVectorizer.transform``
computes for these parameters, to the bit), so a saved snapshot is loaded and queried without importing
scikit-learn (about 0.6 s of a cold ``trialmatch match``).
"""
from __future__ import annotations

import logging
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse

from models.domain import CriterionKind, TrialRecord

logger = logging.getLogger(__name__)

# The whole trial text carries most of the signal; title and conditions add a boost (measured on the
# development splits: per-field-only scoring lost to a single concatenated field).
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {
    "all": 1.0,
    "title": 0.3,
    "conditions": 0.3,
}
# Terms of the Rocchio centroid kept in the expanded query (the heaviest ones): bounds the columns the
# second pass reads. The centroid of 5 trials has a few hundred terms (median ~300-800, max ~1,800 on the
# bundled and scaled corpora); 1,000 leaves the SIGIR ranking unchanged, while 500 cost 0.003 ndCG@10 and
# 200 cost 0.015 (docs/benchmarks.md, "Fast retrieval").
DEFAULT_FEEDBACK_TERMS = 1000
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # TfidfVectorizer's default token_pattern


class Hits(NamedTuple):
    ids: list[str]
    scores: np.ndarray


def trial_fields(trial: TrialRecord) -> dict[str, str]:
    """The text of each retrieval field of a trial."""
    inclusion = [c.text for c in trial.criteria if c.kind is CriterionKind.INCLUSION]
    if not trial.criteria and trial.eligibility_text:
        inclusion = [trial.eligibility_text]
    interventions = [" ".join((i.name, *i.other_names)) for i in trial.interventions]
    fields = {
        "title": " ".join(filter(None, (trial.title, trial.official_title))),
        "conditions": " ; ".join((*trial.conditions, *trial.keywords)),
        "interventions": " ; ".join(interventions),
        "summary": " ".join(filter(None, (trial.brief_summary, trial.detailed_description))),
        "criteria": " ".join(inclusion),
    }
    fields["all"] = " ".join(fields.values())
    return fields


def _canonical(matrix):  # type: ignore[no-untyped-def]
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


def _merge(terms: list[np.ndarray], values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sparse vectors given as (term ids, values) parts summed into sorted unique term ids and float64 values."""
    if not terms:
        return np.zeros(0, dtype=np.int32), np.zeros(0)
    unique, inverse = np.unique(np.concatenate(terms), return_inverse=True)
    return unique, np.bincount(inverse, weights=np.concatenate(values), minlength=unique.size)


@dataclass(frozen=True)
class TextAnalyzer:
    """The terms of a text as ``TfidfVectorizer(strip_accents="unicode", stop_words=..., ngram_range=...)`` reads
    it: lower-cased, accents stripped, word tokens of two or more characters, stop words dropped, then the
    n-grams of what is left. The vectorizer's analyzer at fit time and the query's, so both read text alike."""

    ngram_range: tuple[int, int]
    stop_words: frozenset[str]

    def tokens(self, text: str) -> list[str]:
        """The word tokens of ``text`` that n-grams are made of (stop words dropped)."""
        text = text.lower()
        if not text.isascii():
            text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        return [t for t in _TOKEN.findall(text) if t not in self.stop_words]

    def __call__(self, text: str) -> list[str]:
        tokens = self.tokens(text)
        min_n, max_n = self.ngram_range
        if max_n == 1:
            return tokens
        terms = list(tokens) if min_n == 1 else []
        for n in range(max(min_n, 2), min(max_n + 1, len(tokens) + 1)):
            terms.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return terms


def l2_normalize_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Each row of a float32 CSR matrix divided by its L2 norm, in place (zero rows unchanged).

    The arithmetic of scikit-learn's ``normalize(norm="l2")``: float32 squares added one after the other, in row
    order, in double precision, then the division in double precision; so query vectors and recomputed field
    rows are those the ranker was tuned with. The squares are laid out by step (row i's k-th square at [k, i])
    and summed by a cumulative sum down the steps, which keeps that order with numpy doing the work.
    """
    data, indptr = matrix.data, matrix.indptr
    n = len(indptr) - 1
    if n == 0 or data.size == 0:
        return matrix
    lengths = np.diff(indptr).astype(np.int64)
    rows = np.repeat(np.arange(n), lengths)
    step = np.arange(data.size) - np.repeat(np.asarray(indptr[:-1], dtype=np.int64), lengths)
    padded = np.zeros((int(lengths.max()), n))  # padding adds 0.0, which changes no sum
    padded[step, rows] = data * data
    norms = np.sqrt(np.cumsum(padded, axis=0)[-1])[rows]  # cumsum adds in order
    keep = norms != 0.0
    data[keep] = (data[keep].astype(np.float64) / norms[keep]).astype(data.dtype)
    return matrix


_RANKER_PARAMS = ("ngram_range", "min_df", "max_df", "sublinear_tf", "field_weights", "max_features",
                  "feedback_docs", "feedback_weight", "feedback_terms", "field_rows_max_docs")


# Documents analysed / transformed together in the fit: bounds the transient arrays of a chunk (~3 M
# n-grams of a 2,000-trial chunk).
FIT_CHUNK = 2000
# Up to this many trials the per-field TF-IDF rows are kept after the fit (about 9 MB for the bundled 3,750
# trials), so the rows that feedback and field_scores read are slices (~1 ms for 60 trials); above it they are
# recomputed from the compressed token ids (~8 ms), which keeps a 100k-trial index within its memory budget.
FIELD_ROWS_MAX_DOCS = 20_000
_BIGRAM_SHIFT = 32


def _merge_counts(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Two (sorted unique keys, count arrays...) runs merged into one, counts of equal keys summed."""
    if a[0].size < b[0].size:
        a, b = b, a
    pos = np.searchsorted(a[0], b[0])
    hit = pos < a[0].size
    hit[hit] = a[0][pos[hit]] == b[0][hit]
    counts = [x.copy() for x in a[1:]]
    for x, y in zip(counts, b[1:]):
        x[pos[hit]] += y[hit]
    miss = ~hit
    at = pos[miss]
    return (np.insert(a[0], at, b[0][miss]), *(np.insert(x, at, y[miss]) for x, y in zip(counts, b[1:])))


class _Counter:
    """Document frequency, total count and W-document frequency of integer term keys, as sorted runs merged
    like a binary counter (each key is held in at most ~2 runs of about the same size)."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, ...]] = []

    def add(self, run: tuple[np.ndarray, ...]) -> None:
        self.runs.append(run)
        while len(self.runs) > 1 and self.runs[-2][0].size <= 2 * self.runs[-1][0].size:
            b = self.runs.pop()
            self.runs.append(_merge_counts(self.runs.pop(), b))

    def result(self) -> tuple[np.ndarray, ...]:
        while len(self.runs) > 1:
            b = self.runs.pop()
            self.runs.append(_merge_counts(self.runs.pop(), b))
        if not self.runs:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), \
                np.zeros(0, dtype=np.int64)
        return self.runs.pop()


class TfidfRanker:
    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, max_df: float = 0.5,
                 sublinear_tf: bool = True, field_weights: dict[str, float] | None = None,
                 max_features: int | None = 500_000, feedback_docs: int = 5,
                 feedback_weight: float = 0.3, feedback_terms: int | None = DEFAULT_FEEDBACK_TERMS,
                 field_rows_max_docs: int = FIELD_ROWS_MAX_DOCS) -> None:
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.sublinear_tf = sublinear_tf
        self.field_weights = field_weights
        self.max_features = max_features
        self.feedback_docs = feedback_docs
        self.feedback_weight = feedback_weight
        self.feedback_terms = feedback_terms
        self.field_rows_max_docs = field_rows_max_docs

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RANKER_PARAMS}

    def set_params(self, **params: Any) -> "TfidfRanker":
        for key, value in params.items():
            if key not in _RANKER_PARAMS:
                raise ValueError(f"unknown parameter {key!r} of TfidfRanker")
            setattr(self, key, value)
        return self

    def _weights(self) -> dict[str, float]:
        return dict(self.field_weights or DEFAULT_FIELD_WEIGHTS)

    # ------------------------------------------------------------------ fit

    def fit(self, trials: Iterable[TrialRecord], y: None = None) -> "TfidfRanker":
        """Fit the vocabulary, IDF and weighted matrix on ``trials`` (read once, one at a time).

        The vocabulary and IDF are those ``TfidfVectorizer(min_df, max_df, max_features, ...)`` fits on the
        fields of each trial joined in ``field_weights`` order; ``ngram_range`` may not exceed bigrams."""
        weights = self._weights()
        names = list(weights)
        min_n, max_n = self.ngram_range
        if not 1 <= min_n <= max_n <= 2:
            raise ValueError(f"ngram_range must be (1, 1), (1, 2) or (2, 2), not {self.ngram_range}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("field weights must not be negative")
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
        from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

        analyzer = TextAnalyzer(tuple(self.ngram_range), frozenset(ENGLISH_STOP_WORDS))
        token_ids: dict[str, int] = {}

        def ids_of(text: str) -> list[int]:
            return [token_ids.setdefault(t, len(token_ids)) for t in analyzer.tokens(text)]

        weighted = np.array([i for i, name in enumerate(names) if weights[name]], dtype=np.int64)
        ids: list[str] = []
        blobs: list[bytes] = []
        lengths: list[list[int]] = []
        counter = _Counter()
        chunk: list[tuple[np.ndarray, list[int]]] = []
        for trial in trials:
            ids.append(trial.nct_id)
            fields = trial_fields(trial)
            seqs = [ids_of(fields.get(name, "")) for name in names]
            tokens = np.fromiter((t for q in seqs for t in q), dtype=np.int32, count=sum(map(len, seqs)))
            chunk.append((tokens, [len(q) for q in seqs]))
            lengths.append(chunk[-1][1])
            blobs.append(zlib.compress(tokens.tobytes(), 1))
            if len(chunk) >= FIT_CHUNK:
                counter.add(self._count_chunk(chunk, weighted))
                chunk = []
        if chunk:
            counter.add(self._count_chunk(chunk, weighted))
        del chunk
        n_docs = len(ids)
        keys, df, tf, wdf = counter.result()
        del counter
        kept, columns, vocabulary = self._vocabulary(keys, df, tf, n_docs, list(token_ids))
        token_ids.clear()
        n_terms = len(vocabulary)
        col_df = np.zeros(n_terms, dtype=np.int64)
        col_df[columns] = df[kept]
        col_wdf = np.zeros(n_terms, dtype=np.int64)
        col_wdf[columns] = wdf[kept]
        self.keys_ = keys[kept]
        self.columns_ = columns
        del keys, df, tf, wdf, kept
        self.tokens_ = blobs
        self.token_lengths_ = np.array(lengths, dtype=np.int32).reshape(n_docs, len(names))
        del lengths
        self.vocabulary_: dict[str, int] = vocabulary
        self.idf_: np.ndarray = self._idf(col_df, n_docs, smooth=True)  # TfidfVectorizer's smooth_idf
        self.analyzer_ = analyzer
        self.field_matrices_: list[sparse.csr_matrix] | None = None
        kept_rows: list[list[sparse.csr_matrix]] | None = [] if n_docs <= self.field_rows_max_docs else None
        # the fit normalises every row of the corpus: scikit-learn's compiled loop, the same arithmetic as
        # l2_normalize_rows (used for the few rows of a query, without importing scikit-learn)
        self.weighted_ = self._weighted_matrix(col_wdf, [weights[name] for name in names], n_docs,
                                               inplace_csr_row_normalize_l2, kept_rows)
        if kept_rows:
            self.field_matrices_ = [sparse.vstack(parts, format="csr") for parts in zip(*kept_rows)]
        self.trial_ids_ = ids
        self.index_ = {nct: i for i, nct in enumerate(ids)}
        logger.info("retriever fitted on %d trials, %d terms", n_docs, n_terms)
        return self

    def _keys(self, ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer keys of the n-grams of token id sequences (``rows``: the sequence of each token; tokens of one
        sequence are contiguous) and the sequence of each key. A unigram's key is its token id, a bigram's
        ``(first + 1) << 32 | second``, so no two n-grams share a key."""
        min_n, max_n = self.ngram_range
        keys, seqs = [], []
        if min_n == 1:
            keys.append(ids)
            seqs.append(rows)
        if max_n == 2 and ids.size > 1:
            same = rows[1:] == rows[:-1]
            keys.append(((ids[:-1][same] + 1) << _BIGRAM_SHIFT) | ids[1:][same])
            seqs.append(rows[1:][same])
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(keys), np.concatenate(seqs)

    def _count_chunk(self, chunk: list[tuple[np.ndarray, list[int]]],
                     weighted: np.ndarray) -> tuple[np.ndarray, ...]:
        """(keys, document frequency, total count, W-document frequency) of the n-grams of a chunk of documents.

        The fitted document is the fields joined (bigrams across two fields count, as in ``TfidfVectorizer``);
        the W-document frequency counts the documents where the n-gram occurs inside a field of non-zero
        weight, i.e. the non-zeros of its column of W."""
        n_fields = len(chunk[0][1])
        ids = np.concatenate([tokens for tokens, _ in chunk]).astype(np.int64)
        field_lengths = np.array([lens for _, lens in chunk], dtype=np.int64).ravel()
        segment = np.repeat(np.arange(field_lengths.size, dtype=np.int64), field_lengths)
        fit_keys, fit_docs = self._keys(ids, segment // n_fields)
        inside = np.isin(segment % n_fields, weighted)
        w_keys, w_segments = self._keys(ids[inside], segment[inside])
        del ids, segment, inside
        unique, inverse = np.unique(np.concatenate([fit_keys, w_keys]), return_inverse=True)
        m = np.int64(unique.size)
        pairs, counts = np.unique(fit_docs * m + inverse[:fit_keys.size], return_counts=True)
        w_pairs = np.unique((w_segments // n_fields) * m + inverse[fit_keys.size:])
        del fit_keys, fit_docs, w_keys, w_segments, inverse
        term = pairs % m
        return (unique, np.bincount(term, minlength=unique.size),
                np.bincount(term, weights=counts, minlength=unique.size).astype(np.int64),
                np.bincount(term[np.isin(pairs, w_pairs, assume_unique=True)], minlength=unique.size))

    def _vocabulary(self, keys: np.ndarray, df: np.ndarray, tf: np.ndarray, n_docs: int,
                    tokens: list[str]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """The terms ``TfidfVectorizer`` keeps (``_limit_features``: ``min_df``, ``max_df``, then the
        ``max_features`` most frequent in alphabetical order, ties broken by the same argsort), as (indices into
        ``keys``, ascending; their columns; the vocabulary)."""
        if keys.size == 0:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        max_df = self.max_df if n_docs >= 20 else 1.0
        min_df = min(self.min_df, max(n_docs, 1))
        high = max_df if isinstance(max_df, Integral) else max_df * n_docs
        low = min_df if isinstance(min_df, Integral) else min_df * n_docs
        if high < low:
            raise ValueError("max_df corresponds to < documents than min_df")
        selected = np.flatnonzero((df <= high) & (df >= low))

        def term(key: int) -> str:
            if key >> _BIGRAM_SHIFT:
                return f"{tokens[(key >> _BIGRAM_SHIFT) - 1]} {tokens[key & 0xFFFFFFFF]}"
            return tokens[key]

        terms = [term(int(k)) for k in keys[selected]]
        alphabetical = np.array(sorted(range(len(terms)), key=terms.__getitem__), dtype=np.int64)
        limit = self.max_features
        if limit is not None and selected.size > limit:
            totals = tf[selected][alphabetical].astype(np.float32)
            alphabetical = alphabetical[np.sort((-totals).argsort()[:limit])]
        if alphabetical.size == 0:
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        vocabulary = {terms[p]: j for j, p in enumerate(alphabetical.tolist())}
        order = np.argsort(alphabetical)  # back to key order
        return selected[alphabetical[order]], order.astype(np.int32), vocabulary

    @staticmethod
    def _idf(df: np.ndarray, n_docs: int, smooth: bool) -> np.ndarray:
        """``TfidfTransformer.fit``'s IDF (float32, same operations) from the document frequencies."""
        df = df.astype(np.float32)
        df += float(smooth)
        idf = np.full_like(df, fill_value=n_docs + int(smooth), dtype=np.float32)
        idf /= df
        np.log(idf, out=idf)
        idf += 1.0
        return idf

    def _field_tokens(self, rows: Iterable[int]) -> list[list[np.ndarray]]:
        """The token ids of each field (``field_weights`` order) of the given documents: [field][row]."""
        out: list[list[np.ndarray]] = [[] for _ in range(self.token_lengths_.shape[1])]
        for row in rows:
            tokens = np.frombuffer(zlib.decompress(self.tokens_[row]), dtype=np.int32)
            for f, part in enumerate(np.split(tokens, np.cumsum(self.token_lengths_[row][:-1]))):
                out[f].append(part)
        return out

    def _tfidf_rows(self, seqs: Sequence[np.ndarray],
                    normalize_rows: Callable[[sparse.csr_matrix], Any] = l2_normalize_rows) -> sparse.csr_matrix:
        """The L2-normalised TF-IDF rows (float32 CSR) of token id sequences.

        The counts matrix is the one ``CountVectorizer.transform`` builds (float32, sorted indices); then the
        operations of ``TfidfTransformer.transform`` (sublinear tf, idf, L2 norm) and the retriever's own second
        ``normalize``, called here without scikit-learn's input validation, which cost more than the arithmetic
        for the few rows a query needs."""
        idf = self.idf_
        n, n_terms = len(seqs), idf.size
        if n == 0:
            return sparse.csr_matrix((0, n_terms), dtype=np.float32)
        lengths = np.fromiter((s.size for s in seqs), dtype=np.int64, count=n)
        keys, rows = self._keys(np.concatenate(seqs).astype(np.int64), np.repeat(np.arange(n, dtype=np.int64), lengths))
        pos = np.searchsorted(self.keys_, keys)
        pos[pos == self.keys_.size] = 0
        hit = self.keys_[pos] == keys
        cells, counts = np.unique(rows[hit] * n_terms + self.columns_[pos[hit]], return_counts=True)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(cells // n_terms, minlength=n), out=indptr[1:])
        index_dtype = np.int32 if max(cells.size, n_terms) < np.iinfo(np.int32).max else np.int64
        matrix = sparse.csr_matrix((counts.astype(np.float32), (cells % n_terms).astype(index_dtype),
                                    indptr.astype(index_dtype)), shape=(n, n_terms))
        if self.sublinear_tf:
            np.log(matrix.data, matrix.data)
            matrix.data += 1.0
        matrix.data *= idf[matrix.indices]
        normalize_rows(matrix)  # TfidfTransformer's norm="l2"
        normalize_rows(matrix)  # and normalize() of the transformed rows
        return matrix

    def _field_rows(self, rows: Sequence[int],
                    normalize_rows: Callable[[sparse.csr_matrix], Any] = l2_normalize_rows) -> list[sparse.csr_matrix]:
        """Each field's TF-IDF matrix restricted to ``rows`` (in that order): sliced from the kept field
        matrices of a small corpus, else recomputed from the token ids in one pass (the same rows, bit for bit)."""
        kept = getattr(self, "field_matrices_", None)
        if kept is not None:
            index = np.asarray(list(rows), dtype=np.int64)
            return [matrix[index] for matrix in kept]
        fields = self._field_tokens(rows)
        stacked = self._tfidf_rows([seq for seqs in fields for seq in seqs], normalize_rows)
        n = len(fields[0]) if fields else 0
        return [stacked[f * n:(f + 1) * n] for f in range(len(fields))]

    def _weighted_matrix(self, nnz: np.ndarray, weights: list[float], n_docs: int,
                         normalize_rows: Callable[[sparse.csr_matrix], Any],
                         kept_rows: list[list[sparse.csr_matrix]] | None = None) -> sparse.csc_matrix:
        """W = sum_f w_f * M_f (float32, in field order, as scipy adds CSR matrices), computed chunk by chunk and
        written into preallocated CSC arrays (``nnz``: the non-zeros of each column, from the count). With
        ``kept_rows`` (a list), each chunk's field rows are appended to it."""
        n_terms = nnz.size
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(nnz, out=indptr[1:])
        index_dtype = np.int32 if max(indptr[-1], n_docs, n_terms) < np.iinfo(np.int32).max else np.int64
        data = np.empty(indptr[-1], dtype=np.float32)
        indices = np.empty(indptr[-1], dtype=index_dtype)
        fill = indptr[:-1].copy()
        for start in range(0, n_docs, FIT_CHUNK):
            rows = range(start, min(start + FIT_CHUNK, n_docs))
            total = None
            chunk_rows = self._field_rows(rows, normalize_rows)
            if kept_rows is not None:
                kept_rows.append(chunk_rows)
            for matrix, weight in zip(chunk_rows, weights):
                if weight:
                    part = matrix * np.float32(weight)
                    total = part if total is None else total + part
            if total is None:
                continue
            cols = total.indices
            order = np.argsort(cols, kind="stable")  # by column, rows ascending inside each
            per_col = np.bincount(cols, minlength=n_terms)
            first = np.cumsum(per_col) - per_col
            sorted_cols = cols[order]
            target = fill[sorted_cols] + (np.arange(cols.size) - first[sorted_cols])
            data[target] = total.data[order]
            indices[target] = (start + np.repeat(np.arange(len(rows)), np.diff(total.indptr)))[order]
            fill += per_col
        if not np.array_equal(fill, indptr[1:]):  # pragma: no cover - counted and computed non-zeros disagree
            raise RuntimeError("weighted matrix: non-zeros differ from the count")
        return sparse.csc_matrix((data, indices, indptr.astype(index_dtype)), shape=(n_docs, n_terms))

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The L2-normalised TF-IDF rows of ``texts`` (float32), as the fitted vectorizer's ``transform``
        would give them (terms counted, sublinear TF, times IDF, normalised)."""
        vocabulary, analyze = self.vocabulary_, self.analyzer_
        indices: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for text in texts:
            row: dict[int, int] = {}
            for term in analyze(text):
                j = vocabulary.get(term)
                if j is not None:
                    row[j] = row.get(j, 0) + 1
            for j in sorted(row):
                indices.append(j)
                counts.append(row[j])
            indptr.append(len(indices))
        cols = np.asarray(indices, dtype=np.int32)
        data = np.asarray(counts, dtype=np.float32)
        if self.sublinear_tf:
            np.log(data, data)
            data += 1.0
        data *= self.idf_[cols]
        matrix = sparse.csr_matrix((data, cols, np.asarray(indptr, dtype=np.int32)),
                                   shape=(len(indptr) - 1, len(vocabulary)))
        return l2_normalize_rows(matrix)

    def _query_vector(self, query: str | Sequence[tuple[str, float]]):  # type: ignore[no-untyped-def]
        parts = [(query, 1.0)] if isinstance(query, str) else list(query)
        q = None
        for text, weight in parts:
            if not text:
                continue
            vec = l2_normalize_rows(self.transform([text])) * weight
            q = vec if q is None else q + vec
        return q

    def _scores(self, terms: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Weighted field cosines of every trial with the query ``values`` on ``terms`` (normalised here).

        Only the columns of W of the query's terms are read."""
        norm = float(np.sqrt(np.dot(values, values)))
        if terms.size == 0 or norm == 0:
            return np.zeros(len(self.trial_ids_), dtype=np.float32)
        return np.asarray(self.weighted_[:, terms] @ (values / norm).astype(np.float32)).ravel()

    def _centroid(self, top: np.ndarray) -> sparse.csr_matrix:
        """The L2-normalised Rocchio centroid of the given rows, reduced to its ``feedback_terms`` heaviest terms.

        It is normalised over all its terms before the cut, so the kept terms have the weights they have in
        the full centroid."""
        terms, values = [], []
        for matrix, weight in zip(self._field_rows(top), self._weights().values()):
            if not weight:
                continue
            for row in range(len(top)):
                start, end = matrix.indptr[row], matrix.indptr[row + 1]
                terms.append(matrix.indices[start:end])
                values.append(matrix.data[start:end] * np.float64(weight))
        terms, values = _merge(terms, values)
        norm = np.sqrt(np.dot(values, values))
        if norm > 0:
            values /= norm
        limit = self.feedback_terms
        if limit is not None and terms.size > limit:
            keep = np.sort(np.argpartition(-values, limit - 1)[:limit]) if limit > 0 else np.zeros(0, dtype=int)
            terms, values = terms[keep], values[keep]
        return sparse.csr_matrix((values.astype(np.float32), terms, [0, terms.size]),
                                 shape=(1, self.weighted_.shape[1]))

    def score_all(self, query: str | Sequence[tuple[str, float]]) -> np.ndarray:
        """Relevance of every fitted trial for ``query`` (text, or weighted text parts).

        With ``feedback_docs`` > 0, Rocchio pseudo-relevance feedback adds the
        centroid of the top documents (its ``feedback_terms`` heaviest terms,
        all of them when None) to the query and scores again.
        """
        q = self._query_vector(query)
        if q is None or q.nnz == 0:
            return np.zeros(len(self.trial_ids_), dtype=np.float32)
        terms, values = q.indices, q.data.astype(np.float64)
        scores = self._scores(terms, values)
        n = min(self.feedback_docs, len(scores))
        if n > 0 and scores.max() > 0:
            top = np.argpartition(-scores, n - 1)[:n]
            centroid = self._centroid(top)
            values = values / np.sqrt(np.dot(values, values))
            terms, values = _merge([terms, centroid.indices],
                                   [values, centroid.data.astype(np.float64) * self.feedback_weight])
            scores = self._scores(terms, values)
        return scores

    def field_scores(self, query: str | Sequence[tuple[str, float]], ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Cosine of the query (without feedback) with each field of the given trials (0 for unknown ids)."""
        rows = [self.index_.get(nct, -1) for nct in ids]
        q = self._query_vector(query)
        out = {name: np.zeros(len(ids), dtype=np.float32) for name in self._weights()}
        known = [i for i, r in enumerate(rows) if r >= 0]
        if q is None or q.nnz == 0 or not known:
            return out
        qt = l2_normalize_rows(q.copy()).T.tocsc()
        for name, matrix in zip(out, self._field_rows([rows[i] for i in known])):
            out[name][known] = np.asarray((matrix @ qt).todense()).ravel()
        return out

    def search(self, query: str | Sequence[tuple[str, float]], k: int = 300,
               mask: np.ndarray | None = None) -> Hits:
        scores = self.score_all(query)
        if mask is not None:
            scores = np.where(mask, scores, -1.0)
        k = min(k, len(scores))
        if k <= 0:
            return Hits([], np.zeros(0, dtype=np.float32))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return Hits([self.trial_ids_[i] for i in top], scores[top])
