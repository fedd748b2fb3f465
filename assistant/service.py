"""match_patient: the only place that knows every stage.

text -> extraction -> PatientProfile -> TF-IDF candidates -> criterion checks
-> ranking -> follow-up questions -> MatchResult. Side effects (database reads)
come through the repository passed in; everything else is pure.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from assistant.matching.filters import Filters, nearest_site_km
from assistant.matching.index import CorpusIndex
from assistant.matching.questions import choose_questions, trial_questions
from assistant.matching.ranking import evaluate_trial, is_unrelated, rank_matches
from models.domain import (
    CriterionText,
    MatchResult,
    ParsedCriterion,
    PatientProfile,
    Question,
    TrialMatch,
    TrialRecord,
)
from models.repository import TrialRepository

logger = logging.getLogger(__name__)

DEFAULT_CHECK_DEPTH = 60
CONCEPT_WEIGHT = 0.3  # normalized conditions + synonyms, relative to the raw text (measured on dev sets)
# The concept part carries what the patient has, not what was observed: symptoms and findings (lexicon category
# "finding") stay in the raw text only. Trials are about diseases; boosting a symptom's synonyms pulls up trials
# about the symptom (docs/quality.md: SIGIR and TREC better on both halves).
QUERY_SKIP_CATEGORIES = frozenset({"finding"})


def build_query(profile: PatientProfile, synonyms: Callable[[str], Iterable[str]]) -> list[tuple[str, float]]:
    """Weighted query parts: the text, the affirmed conditions with synonyms, the therapies.

    Negated and family-history conditions are left out of the concept part so a
    "no lupus" description does not pull lupus trials up by its concepts; so are
    symptoms and findings (QUERY_SKIP_CATEGORIES).
    """
    concepts: list[str] = []
    for fact in profile.conditions:
        c = fact.context
        if c.negated or c.family or c.hypothetical:
            continue
        if fact.category in QUERY_SKIP_CATEGORIES:
            continue
        concepts.append(fact.concept)
        concepts.extend(list(synonyms(fact.concept))[:4])
    therapies = [t.name for t in profile.therapies if not t.context.negated]
    parts = [(profile.text, 1.0)]
    if concepts:
        parts.append((" ; ".join(dict.fromkeys(concepts)), CONCEPT_WEIGHT))
    if therapies:
        parts.append((" ; ".join(dict.fromkeys(therapies)), 0.25))
    return parts


def ensure_parsed(trials: Sequence[TrialRecord],
                  parse: Callable[[Sequence[str]], Sequence[ParsedCriterion]]) -> list[TrialRecord]:
    """Parse criteria stored without structure (ingested with --no-parse)."""
    todo = [c.text for t in trials for c in t.criteria if c.parsed is None]
    if not todo:
        return list(trials)
    parsed = dict(zip(todo, parse(todo)))
    out = []
    for t in trials:
        crits: list[CriterionText] = [c if c.parsed is not None else replace(c, parsed=parsed[c.text])
                                      for c in t.criteria]
        out.append(replace(t, criteria=tuple(crits)))
    return out


def match_profile(profile: PatientProfile, *, index: CorpusIndex, repo: TrialRepository,
                  is_a: Callable[[str, str], bool], synonyms: Callable[[str], Iterable[str]],
                  parse: Callable[[Sequence[str]], Sequence[ParsedCriterion]],
                  filters: Filters | None = None, top_k: int = 10, candidate_depth: int = 300,
                  check_depth: int = DEFAULT_CHECK_DEPTH, asked: frozenset[str] = frozenset(),
                  relevance_floor: float = 0.0, category_of: Callable[[str], str | None] | None = None,
                  ranker: Any = None, related: Callable[[str, str], bool] | None = None) -> MatchResult:
    """Retrieve, check and rank. A trial that studies none of the patient's affirmed conditions is presented only
    when its retrieval score reaches ``relevance_floor``; when nothing is left, the result carries a notice."""
    started = time.perf_counter()
    filters = filters if filters is not None else Filters()
    query = build_query(profile, synonyms)
    hits = index.search(query, k=candidate_depth, filters=filters)
    checked_ids = hits.ids[:max(check_depth, top_k)]
    trials = repo.get_many(checked_ids)
    records = ensure_parsed([trials[i] for i in checked_ids if i in trials], parse)
    relevance = dict(zip(hits.ids, (float(s) for s in hits.scores)))
    top_rel = max(relevance.values(), default=1.0)
    by_id = {t.nct_id: t for t in records}
    matches = [evaluate_trial(profile, t, relevance[t.nct_id], is_a, top_rel, category_of=category_of,
                              related=related) for t in records]
    if ranker is not None:
        fields = index.field_scores(query, [m.nct_id for m in matches])
        matches = rescore(ranker, profile, matches, by_id, hits.ids, top_rel, related or is_a, fields)
    if not filters.nct_ids:  # trials asked for by id (a referral's trial) are always evaluated
        matches = [m for m in matches if m.topical or (m.relevance >= relevance_floor
                                                       and not is_unrelated(profile, m))]
    ranked = rank_matches(matches)[:top_k]
    if filters.near is not None:
        ranked = [replace(m, nearest_site_km=_distance(trials[m.nct_id], filters)) for m in ranked]
    ranked = [replace(m, questions=trial_questions(m)) for m in ranked]
    questions = choose_questions(ranked, asked=asked)
    logger.info("matched: %d candidates, %d checked, %d returned in %.0f ms", len(hits.ids), len(records),
                len(ranked), (time.perf_counter() - started) * 1000)
    notice = None
    if not ranked:
        notice = NO_MATCH_NOTICE
    elif not any(m.topical for m in ranked):
        notice = OFF_TOPIC_NOTICE
    return MatchResult(profile=profile, matches=tuple(ranked), questions=questions, notice=notice)


NO_MATCH_NOTICE = "No relevant recruiting trial found for the conditions described."
OFF_TOPIC_NOTICE = ("None of these trials studies a condition recognised in the description; they are shown "
                    "because their text is similar. Review them with care.")


def rescore(ranker: Any, profile: PatientProfile, matches: Sequence[TrialMatch], trials: dict[str, TrialRecord],
            order: Sequence[str], top_rel: float, is_a: Callable[[str, str], bool],
            fields: dict[str, Any]) -> list[TrialMatch]:
    """Scores from the learned ranker in place of the hand-set combination."""
    from assistant.matching.learned import features, score_matches

    rank = {nct: i for i, nct in enumerate(order)}
    rows = [features(profile, trials[m.nct_id], m, rank.get(m.nct_id, len(order)), top_rel, is_a,
                     {k: float(v[i]) for k, v in fields.items()}) for i, m in enumerate(matches)]
    return [replace(m, score=round(s, 4)) for m, s in zip(matches, score_matches(ranker, rows))]


def _distance(trial: TrialRecord, filters: Filters) -> float | None:
    assert filters.near is not None
    d = nearest_site_km(trial.locations, filters.near.lat, filters.near.lon)
    return round(d, 1) if d is not None else None


def match_text(runtime: Any, text: str, *, top_k: int = 10, filters: dict[str, Any] | Filters | None = None,
               statuses: Sequence[str] | None = None) -> MatchResult:
    """CLI/API entry: extraction plus :func:`match_profile` with the runtime's objects."""
    from assistant.web.schemas import parse_filters

    settings = runtime.settings
    if not isinstance(filters, Filters):
        filters = parse_filters(filters or {}, default_statuses=settings["DEFAULT_STATUSES"])
    profile = runtime.extract(text)
    return runtime_match(runtime, profile, filters=filters, top_k=top_k)


def runtime_match(runtime: Any, profile: PatientProfile, *, filters: Filters, top_k: int,
                  asked: frozenset[str] = frozenset()) -> MatchResult:
    lexicon = runtime.lexicon
    return match_profile(profile, index=runtime.ensure_index(), repo=runtime.repo, is_a=runtime.is_a,
                         synonyms=lexicon.synonyms, parse=runtime.parse_criteria, filters=filters, top_k=top_k,
                         candidate_depth=int(runtime.settings["CANDIDATE_DEPTH"]),
                         check_depth=int(runtime.settings.get("CHECK_DEPTH", DEFAULT_CHECK_DEPTH)), asked=asked,
                         relevance_floor=float(runtime.settings.get("RELEVANCE_FLOOR", 0.0)),
                         category_of=runtime.category_of, ranker=runtime.ranker, related=runtime.is_related)


# --------------------------------------------------------------------------- serialization


def _span_dict(span: Any) -> dict[str, Any] | None:
    return span.to_dict() if span is not None else None


def profile_to_dict(profile: PatientProfile) -> dict[str, Any]:
    def ctx(c: Any) -> dict[str, bool]:
        return {k: getattr(c, k) for k in ("negated", "historical", "family", "hypothetical", "uncertain")}

    return {
        "age": profile.age_years,
        "age_range": [profile.age_low, profile.age_high] if profile.age_low is not None else None,
        "age_evidence": _span_dict(profile.age_span),
        "sex": profile.sex,
        "sex_evidence": _span_dict(profile.sex_span),
        "conditions": [{"concept": f.concept, "category": f.category, "code": f.code, "qualifier": f.qualifier,
                        "days_ago": f.days_ago, **ctx(f.context), "evidence": f.span.to_dict()}
                       for f in profile.conditions],
        "labs": [{"name": f.name, "value": f.value, "value_high": f.value_high, "unit": f.unit,
                  "comparator": f.comparator.value, "normalized_value": f.normalized_value,
                  "normalized_unit": f.normalized_unit, "polarity": f.polarity, "negated": f.context.negated,
                  "evidence": f.span.to_dict()} for f in profile.labs],
        "therapies": [{"name": t.name, "classes": list(t.classes), "response": t.response, "status": t.status,
                       "prednisone_eq_mg_day": t.prednisone_eq_mg_day, "days_ago": t.days_ago,
                       **ctx(t.context), "evidence": t.span.to_dict()} for t in profile.therapies],
        "therapy_counts": [{"class": c.drug_class, "count": c.count, "response": c.response,
                            "evidence": c.span.to_dict()} for c in profile.therapy_counts],
    }


def question_to_dict(q: Question) -> dict[str, Any]:
    return {"key": q.key, "text": q.text, "criteria": list(q.criterion_ids), "trials": list(dict.fromkeys(q.nct_ids)),
            "weight": q.weight}


def match_to_dict(m: TrialMatch) -> dict[str, Any]:
    return {
        "nct_id": m.nct_id, "title": m.title, "score": m.score, "relevance": m.relevance, "label": m.label.value,
        "overall_status": m.overall_status, "phases": list(m.phases), "cohort": m.cohort,
        "nearest_site_km": m.nearest_site_km,
        "criteria": [{"id": v.criterion_id, "kind": v.kind.value, "text": v.text, "verdict": v.verdict.value,
                      "reason": v.reason, "evidence": [s.to_dict() for s in v.evidence], "missing": v.missing,
                      "cohort": v.cohort} for v in m.criteria],
        "questions": [question_to_dict(q) for q in m.questions],
        "relevant_conditions": list(m.topical),
    }


def match_result_to_dict(result: MatchResult) -> dict[str, Any]:
    return {"profile": profile_to_dict(result.profile), "matches": [match_to_dict(m) for m in result.matches],
            "questions": [question_to_dict(q) for q in result.questions], "notice": result.notice}


def format_result_text(data: dict[str, Any]) -> str:
    lines = [data["notice"], ""] if data.get("notice") else []
    for i, m in enumerate(data["matches"], 1):
        lines.append(f"{i:>2}. {m['nct_id']}  [{m['label']}]  score {m['score']:.3f}  {m['title'][:80]}")
        for c in m["criteria"]:
            if c["verdict"] in ("not_met", "met") and (c["kind"] == "exclusion") == (c["verdict"] == "met"):
                lines.append(f"      why not: {c['reason'][:200]}")
    if data["questions"]:
        lines.append("")
        lines.append("Follow-up questions:")
        lines.extend(f"  - {q['text']}" for q in data["questions"])
    return "\n".join(lines)
