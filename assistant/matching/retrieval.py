"""TF-IDF candidate retrieval over trial fields (scikit-learn estimator style).

One vocabulary/IDF is fitted over all fields; each field is a separate
L2-normalised matrix and a document's score is the weighted sum of the
query's cosine with each field. ``__init__`` only stores parameters, ``fit``
returns ``self`` and fitted state ends in ``_``.

Since ``sum_f w_f * (M_f @ q) == (sum_f w_f * M_f) @ q``, ``fit`` also stores the
single weighted matrix ``W = sum_f w_f * M_f`` in CSC form (``weighted_``), and a
query is scored with the columns of ``W`` of its own terms only. The per-field
CSR matrices (``matrices_``) are kept for the few rows that ``field_scores``
and the Rocchio centroid need.

scikit-learn is imported by ``fit`` only: a fitted ranker keeps the vectorizer's vocabulary and IDF, not the
vectorizer, and reads a query with :class:`TextAnalyzer` and :meth:`TfidfRanker.transform` (what
``TfidfVectorizer.transform`` computes for these parameters, to the bit), so a saved snapshot is loaded and
queried without importing scikit-learn (about 0.6 s of a cold ``trialmatch match``).
"""
from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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

    def __call__(self, text: str) -> list[str]:
        text = text.lower()
        if not text.isascii():
            text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        tokens = [t for t in _TOKEN.findall(text) if t not in self.stop_words]
        min_n, max_n = self.ngram_range
        if max_n == 1:
            return tokens
        terms = list(tokens) if min_n == 1 else []
        for n in range(max(min_n, 2), min(max_n + 1, len(tokens) + 1)):
            terms.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        return terms


def l2_normalize_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """Each row of a small float32 CSR matrix divided by its L2 norm, in place (zero rows unchanged).

    The arithmetic of scikit-learn's ``normalize(norm="l2")`` (float32 squares summed in order in double
    precision, the division in double precision), so query vectors are those the ranker was tuned with.
    """
    data, indptr = matrix.data, matrix.indptr
    squares = (data * data).tolist()
    for row in range(len(indptr) - 1):
        start, end = int(indptr[row]), int(indptr[row + 1])
        total = 0.0
        for value in squares[start:end]:
            total += value
        if total != 0.0:
            data[start:end] = (data[start:end].astype(np.float64) / math.sqrt(total)).astype(data.dtype)
    return matrix


_RANKER_PARAMS = ("ngram_range", "min_df", "max_df", "sublinear_tf", "field_weights", "max_features",
                  "feedback_docs", "feedback_weight", "feedback_terms")


class TfidfRanker:
    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, max_df: float = 0.5,
                 sublinear_tf: bool = True, field_weights: dict[str, float] | None = None,
                 max_features: int | None = 500_000, feedback_docs: int = 5,
                 feedback_weight: float = 0.3, feedback_terms: int | None = DEFAULT_FEEDBACK_TERMS) -> None:
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.sublinear_tf = sublinear_tf
        self.field_weights = field_weights
        self.max_features = max_features
        self.feedback_docs = feedback_docs
        self.feedback_weight = feedback_weight
        self.feedback_terms = feedback_terms

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

    def fit(self, trials: Iterable[TrialRecord], y: None = None) -> "TfidfRanker":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
        from sklearn.preprocessing import normalize

        weights = self._weights()
        ids: list[str] = []
        columns: dict[str, list[str]] = {name: [] for name in weights}
        for trial in trials:
            ids.append(trial.nct_id)
            fields = trial_fields(trial)
            for name in weights:
                columns[name].append(fields.get(name, ""))
        n_docs = len(ids)
        self.analyzer_ = TextAnalyzer(tuple(self.ngram_range), frozenset(ENGLISH_STOP_WORDS))
        vectorizer = TfidfVectorizer(
            analyzer=self.analyzer_, min_df=min(self.min_df, max(n_docs, 1)),
            max_df=self.max_df if n_docs >= 20 else 1.0, sublinear_tf=self.sublinear_tf,
            max_features=self.max_features, dtype=np.float32,
        )
        vectorizer.fit(" ".join(parts) for parts in zip(*columns.values()))
        self.vocabulary_: dict[str, int] = vectorizer.vocabulary_
        self.idf_: np.ndarray = vectorizer.idf_
        self.matrices_ = {}
        weighted = None
        for name in list(columns):
            matrix = sparse.csr_matrix(normalize(vectorizer.transform(columns.pop(name))), dtype=np.float32)
            self.matrices_[name] = matrix
            if weights[name]:
                part = matrix * np.float32(weights[name])
                weighted = part if weighted is None else weighted + part
        if weighted is None:
            weighted = sparse.csr_matrix((n_docs, len(self.vocabulary_)), dtype=np.float32)
        self.weighted_ = _canonical(sparse.csc_matrix(weighted, dtype=np.float32))
        self.trial_ids_ = ids
        self.index_ = {nct: i for i, nct in enumerate(ids)}
        logger.info("retriever fitted on %d trials, %d terms", n_docs, len(self.vocabulary_))
        return self

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
        for name, weight in self._weights().items():
            if not weight:
                continue
            matrix = self.matrices_[name]
            for row in top:
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
        picked = [rows[i] for i in known]
        for name in out:
            out[name][known] = np.asarray((self.matrices_[name][picked] @ qt).todense()).ravel()
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
