"""Learned ranking of checked trials: features that do not depend on the topic, and a linear model.

The model replaces hand-set weights ("0.6 relevance + 0.4 eligibility"). Features describe the kind of
evidence (retrieval score, overlap of the patient's conditions with what the trial studies, verdict counts,
age/sex fit, how much of the trial could be read), never a word or a trial, so that the model carries over to
topics it was not trained on. It is stored as JSON (feature names, scaling, coefficients): no pickle, readable,
independent of the scikit-learn version at run time.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from assistant.matching.ranking import affirmed_concepts, related_to
from models.domain import CriterionKind, PatientProfile, TrialLabel, TrialMatch, TrialRecord, Verdict

FEATURES = (
    "relevance", "relevance_share", "log_rank", "topical", "topical_count", "negated_overlap",
    "inc_met", "inc_not_met", "inc_unknown", "exc_met", "exc_not_met", "exc_unknown", "parsed_share",
    "age_met", "age_not_met", "sex_not_met", "healthy_volunteers", "ineligible", "no_criteria",
    "cos_all", "cos_title", "cos_conditions", "study_coverage", "patient_coverage",
)
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "data" / "models" / "ranker.json"


def _negated_overlap(profile: PatientProfile, trial: TrialRecord, is_a: Any) -> float:
    """The trial studies something the patient is said NOT to have, or only a relative has."""
    study = frozenset(trial.concepts)
    affirmed = {f.concept for f in profile.conditions if not (f.context.negated or f.context.family)}
    only_not = {f.concept for f in profile.conditions if (f.context.negated or f.context.family)} - affirmed
    return float(any(related_to(c, study, is_a) for c in only_not))


def features(profile: PatientProfile, trial: TrialRecord, match: TrialMatch, rank: int, top_relevance: float,
             is_a: Any, fields: dict[str, float] | None = None) -> list[float]:
    """One feature row for a checked (patient, trial) pair, in the order of FEATURES.

    ``fields``: cosine of the query with the trial's whole text, title and conditions (no feedback)."""
    fields = fields or {}
    studied = match.studied
    affirmed = affirmed_concepts(profile)
    counts = {k: 0 for k in ("inc_met", "inc_not_met", "inc_unknown", "exc_met", "exc_not_met", "exc_unknown")}
    age_met = age_not = sex_not = 0.0
    for v in match.criteria:
        if v.criterion_id.endswith(":age"):
            age_met, age_not = float(v.verdict is Verdict.MET), float(v.verdict is Verdict.NOT_MET)
            continue
        if v.criterion_id.endswith(":sex"):
            sex_not = float(v.verdict is Verdict.NOT_MET)
            continue
        prefix = "inc" if v.kind is CriterionKind.INCLUSION else "exc"
        suffix = {Verdict.MET: "met", Verdict.NOT_MET: "not_met", Verdict.UNKNOWN: "unknown"}.get(v.verdict)
        if suffix:
            counts[f"{prefix}_{suffix}"] += 1
    n = len(trial.criteria)
    parsed = sum(1 for c in trial.criteria if c.parsed is not None and c.parsed.parsed)
    row = {
        "relevance": match.relevance, "relevance_share": match.relevance / top_relevance if top_relevance else 0.0,
        "log_rank": math.log1p(rank), "topical": float(bool(match.topical)), "topical_count": len(match.topical),
        "negated_overlap": _negated_overlap(profile, trial, is_a),
        **{k: math.log1p(v) for k, v in counts.items()},
        "parsed_share": parsed / n if n else 0.0, "age_met": age_met, "age_not_met": age_not,
        "sex_not_met": sex_not, "healthy_volunteers": float(bool(trial.healthy_volunteers)),
        "ineligible": float(match.label is TrialLabel.INELIGIBLE), "no_criteria": float(n == 0),
        "cos_all": fields.get("all", 0.0), "cos_title": fields.get("title", 0.0),
        "cos_conditions": fields.get("conditions", 0.0),
        "study_coverage": (sum(1 for s in studied if related_to(s, affirmed, is_a)) / len(studied))
        if studied else 0.0,
        "patient_coverage": len(match.topical) / len(affirmed) if affirmed else 0.0,
    }
    return [float(row[f]) for f in FEATURES]


class TrialRanker:
    """Logistic regression on standardized features (scikit-learn estimator contract).

    ``__init__`` stores parameters only; ``fit`` returns self; fitted state ends in ``_``.
    """

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", random_state: int = 0) -> None:
        self.C = C
        self.class_weight = class_weight
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"C": self.C, "class_weight": self.class_weight, "random_state": self.random_state}

    def set_params(self, **params: Any) -> TrialRanker:
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit(self, X: Any, y: Any) -> TrialRanker:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X = np.asarray(X, dtype=float)
        scaler = StandardScaler().fit(X)
        model = LogisticRegression(C=self.C, class_weight=self.class_weight, random_state=self.random_state,
                                   max_iter=2000).fit(scaler.transform(X), np.asarray(y))
        self.mean_ = scaler.mean_
        self.scale_ = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        self.coef_ = model.coef_[0]
        self.intercept_ = float(model.intercept_[0])
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "coef": self.coef_.tolist(), "intercept": self.intercept_, "params": self.get_params()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRanker:
        if list(data.get("features", [])) != list(FEATURES):
            raise ValueError("ranker model was trained on other features; retrain with `trialmatch train ranker`")
        ranker = cls(**data.get("params", {}))
        ranker.mean_ = np.asarray(data["mean"], dtype=float)
        ranker.scale_ = np.asarray(data["scale"], dtype=float)
        ranker.coef_ = np.asarray(data["coef"], dtype=float)
        ranker.intercept_ = float(data["intercept"])
        return ranker


def load_ranker(path: Path | None = None) -> TrialRanker | None:
    """The shipped model (data/models/ranker.json), or None when there is none."""
    p = path or DEFAULT_MODEL
    if not p.exists():
        return None
    with open(p, encoding="utf-8") as fh:
        data = json.load(fh)
    return TrialRanker.from_dict(data["model"] if "model" in data else data)


def score_matches(ranker: TrialRanker, rows: Sequence[Sequence[float]]) -> list[float]:
    """Scores in (0, 1) for display, ordered like the model's decision function."""
    if not rows:
        return []
    z = ranker.decision_function(np.asarray(rows, dtype=float))
    return [float(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, v))))) for v in z]
