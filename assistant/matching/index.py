"""The in-memory corpus index: fitted retriever plus per-trial filter metadata, versioned."""
from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.matching.filters import Filters, TrialMeta, build_mask, trial_meta
from assistant.matching.retrieval import Hits, TfidfRanker
from models.domain import TrialRecord

logger = logging.getLogger(__name__)
# 2: the ranker also holds the weighted field matrix (CSC) and the feedback_terms parameter
# 3: the ranker holds its vocabulary, IDF and analyzer instead of a scikit-learn vectorizer
# 4: compressed token ids in place of the per-field matrices
# 5: field_matrices_ (per-field rows kept up to field_rows_max_docs trials)
FORMAT = 5


@dataclass
class CorpusIndex:
    ranker: TfidfRanker
    metas: list[TrialMeta]
    version: str | None

    @classmethod
    def build(cls, trials: Iterable[TrialRecord], version: str | None,
              ranker: TfidfRanker | None = None) -> "CorpusIndex":
        metas: list[TrialMeta] = []

        def each() -> Iterable[TrialRecord]:  # one pass, records are not kept: the fit holds only texts
            for trial in trials:
                metas.append(trial_meta(trial))
                yield trial

        ranker = (ranker or TfidfRanker()).fit(each())
        return cls(ranker, metas, version)

    def search(self, query: str | list[tuple[str, float]], k: int, filters: Filters) -> Hits:
        if not self.metas:
            return Hits([], np.zeros(0, dtype=np.float32))
        return self.ranker.search(query, k=k, mask=build_mask(self.metas, filters))

    def field_scores(self, query: str | list[tuple[str, float]], ids: list[str]) -> dict[str, np.ndarray]:
        return self.ranker.field_scores(query, ids)

    def meta(self, nct_id: str) -> TrialMeta | None:
        i = self.ranker.index_.get(nct_id)
        return self.metas[i] if i is not None else None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{id(self)}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump({"format": FORMAT, "index": self}, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)  # atomic swap: other workers read the old or the new file

    @staticmethod
    def load(path: Path) -> "CorpusIndex | None":
        try:
            with open(path, "rb") as fh:
                data = pickle.load(fh)  # noqa: S301 - our own file in the instance folder
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        return data["index"]
