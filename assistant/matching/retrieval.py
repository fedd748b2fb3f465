"""TF-IDF candidate retrieval over trial fields (scikit-learn estimator style).

One vocabulary/IDF is fitted over all fields; each field is a separate
L2-normalised matrix and a document's score is the weighted sum of the
query's cosine with each field. ``__init__`` only stores parameters, ``fit``
returns ``self`` and fitted state ends in ``_``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from models.domain import CriterionKind, TrialRecord

logger = logging.getLogger(__name__)

# The whole trial text carries most of the signal; title and conditions add a boost (measured on the
# development splits: per-field-only scoring lost to a single concatenated field).
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {
    "all": 1.0,
    "title": 0.3,
    "conditions": 0.3,
}


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


class TfidfRanker(BaseEstimator):
    def __init__(self, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2, max_df: float = 0.5,
                 sublinear_tf: bool = True, field_weights: dict[str, float] | None = None,
                 max_features: int | None = 500_000, feedback_docs: int = 5,
                 feedback_weight: float = 0.3) -> None:
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_df = max_df
        self.sublinear_tf = sublinear_tf
        self.field_weights = field_weights
        self.max_features = max_features
        self.feedback_docs = feedback_docs
        self.feedback_weight = feedback_weight

    def _weights(self) -> dict[str, float]:
        return dict(self.field_weights or DEFAULT_FIELD_WEIGHTS)

    def fit(self, trials: Iterable[TrialRecord], y: None = None) -> "TfidfRanker":
        weights = self._weights()
        ids: list[str] = []
        columns: dict[str, list[str]] = {name: [] for name in weights}
        for trial in trials:
            ids.append(trial.nct_id)
            fields = trial_fields(trial)
            for name in weights:
                columns[name].append(fields.get(name, ""))
        n_docs = len(ids)
        self.vectorizer_ = TfidfVectorizer(
            ngram_range=self.ngram_range, min_df=min(self.min_df, max(n_docs, 1)),
            max_df=self.max_df if n_docs >= 20 else 1.0, sublinear_tf=self.sublinear_tf,
            stop_words="english", max_features=self.max_features, dtype=np.float32,
            strip_accents="unicode",
        )
        self.vectorizer_.fit(" ".join(parts) for parts in zip(*columns.values()))
        self.matrices_ = {
            name: sparse.csr_matrix(normalize(self.vectorizer_.transform(texts)), dtype=np.float32)
            for name, texts in columns.items()
        }
        self.trial_ids_ = ids
        self.index_ = {nct: i for i, nct in enumerate(ids)}
        logger.info("retriever fitted on %d trials, %d terms", n_docs, len(self.vectorizer_.vocabulary_))
        return self

    def _query_vector(self, query: str | Sequence[tuple[str, float]]):  # type: ignore[no-untyped-def]
        parts = [(query, 1.0)] if isinstance(query, str) else list(query)
        q = None
        for text, weight in parts:
            if not text:
                continue
            vec = normalize(self.vectorizer_.transform([text])) * weight
            q = vec if q is None else q + vec
        return q

    def _scores(self, q) -> np.ndarray:  # type: ignore[no-untyped-def]
        qt = normalize(q).T.tocsc()
        total = np.zeros(len(self.trial_ids_), dtype=np.float32)
        for name, weight in self._weights().items():
            total += weight * np.asarray((self.matrices_[name] @ qt).todense()).ravel()
        return total

    def score_all(self, query: str | Sequence[tuple[str, float]]) -> np.ndarray:
        """Relevance of every fitted trial for ``query`` (text, or weighted text parts).

        With ``feedback_docs`` > 0, Rocchio pseudo-relevance feedback adds the
        centroid of the top documents to the query and scores again.
        """
        q = self._query_vector(query)
        if q is None or q.nnz == 0:
            return np.zeros(len(self.trial_ids_), dtype=np.float32)
        scores = self._scores(q)
        n = min(self.feedback_docs, len(scores))
        if n > 0 and scores.max() > 0:
            top = np.argpartition(-scores, n - 1)[:n]
            centroid = None
            for name, weight in self._weights().items():
                part = self.matrices_[name][top].sum(axis=0) * weight
                centroid = part if centroid is None else centroid + part
            centroid = sparse.csr_matrix(centroid)
            q = normalize(q) + self.feedback_weight * normalize(centroid)
            scores = self._scores(q)
        return scores

    def field_scores(self, query: str | Sequence[tuple[str, float]], ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Cosine of the query (without feedback) with each field of the given trials (0 for unknown ids)."""
        rows = [self.index_.get(nct, -1) for nct in ids]
        q = self._query_vector(query)
        out = {name: np.zeros(len(ids), dtype=np.float32) for name in self._weights()}
        known = [i for i, r in enumerate(rows) if r >= 0]
        if q is None or q.nnz == 0 or not known:
            return out
        qt = normalize(q).T.tocsc()
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
