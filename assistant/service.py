"""match_patient: the only place that knows every stage.

text -> extraction -> PatientProfile -> TF-IDF candidates -> criterion checks
-> ranking -> follow-up questions -> MatchResult. Side effects (database reads)
come through the repository passed in; everything else is pure.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from assistant.matching.filters import Filters, nearest_site, site_name
from assistant.matching.questions import choose_questions, trial_questions
from assistant.matching.ranking import evaluate_trial, is_unrelated, rank_matches
from assistant.matching.retrieval import Hits
from assistant.snapshot import CorpusSnapshot
from models.domain import (
    MatchResult,
    PatientProfile,
    TrialMatch,
    TrialRecord,
)

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


@dataclass(frozen=True)
class Candidates:
    """What retrieval and the criterion checks give for one profile, before ranking: the weighted query, the
    retrieval hits (ids in retrieval order), the checked trials and their evaluations."""

    query: list[tuple[str, float]]
    hits: Hits
    trials: dict[str, TrialRecord]
    matches: list[TrialMatch]
    top_relevance: float


def check_candidates(profile: PatientProfile, *, snapshot: CorpusSnapshot, is_a: Callable[[str, str], bool],
                     synonyms: Callable[[str], Iterable[str]], filters: Filters, candidate_depth: int,
                     check_depth: int, category_of: Callable[[str], str | None] | None = None,
                     related: Callable[[str, str], bool] | None = None) -> Candidates:
    """Retrieve ``candidate_depth`` trials and check the criteria of the best ``check_depth`` of them."""
    query = build_query(profile, synonyms)
    hits = snapshot.search(query, k=candidate_depth, filters=filters)
    checked_ids = hits.ids[:check_depth]
    trials = snapshot.get_many(checked_ids)
    relevance = dict(zip(hits.ids, (float(s) for s in hits.scores)))
    top_rel = max(relevance.values(), default=1.0)
    matches = [evaluate_trial(profile, trials[i], relevance[i], is_a, top_rel, category_of=category_of,
                              related=related) for i in checked_ids if i in trials]
    return Candidates(query, hits, trials, matches, top_rel)


def feature_rows(profile: PatientProfile, candidates: Candidates, snapshot: CorpusSnapshot,
                 related: Callable[[str, str], bool]) -> list[list[float]]:
    """The learned ranker's feature row of every checked trial (assistant.matching.learned.FEATURES)."""
    from assistant.matching.learned import features

    ids = [m.nct_id for m in candidates.matches]
    fields = snapshot.index.field_scores(candidates.query, ids)
    rank = {nct: i for i, nct in enumerate(candidates.hits.ids)}
    return [features(profile, candidates.trials[m.nct_id], m, rank.get(m.nct_id, len(rank)),
                     candidates.top_relevance, related, {k: float(v[i]) for k, v in fields.items()})
            for i, m in enumerate(candidates.matches)]


def match_profile(profile: PatientProfile, *, snapshot: CorpusSnapshot,
                  is_a: Callable[[str, str], bool], synonyms: Callable[[str], Iterable[str]],
                  filters: Filters | None = None, top_k: int = 10, candidate_depth: int = 300,
                  check_depth: int = DEFAULT_CHECK_DEPTH, asked: frozenset[str] = frozenset(),
                  relevance_floor: float = 0.0, category_of: Callable[[str], str | None] | None = None,
                  ranker: Any = None, related: Callable[[str, str], bool] | None = None) -> MatchResult:
    """Retrieve, check and rank. A trial that studies none of the patient's affirmed conditions is presented only
    when its retrieval score reaches ``relevance_floor``; when nothing is left, the result carries a notice."""
    started = time.perf_counter()
    filters = filters if filters is not None else Filters()
    found = check_candidates(profile, snapshot=snapshot, is_a=is_a, synonyms=synonyms, filters=filters,
                             candidate_depth=candidate_depth, check_depth=max(check_depth, top_k),
                             category_of=category_of, related=related)
    matches = found.matches
    if ranker is not None:
        from assistant.matching.learned import score_matches

        scores = score_matches(ranker, feature_rows(profile, found, snapshot, related or is_a))
        matches = [replace(m, score=round(s, 4)) for m, s in zip(matches, scores)]
    if not filters.nct_ids:  # trials asked for by id (a referral's trial) are always evaluated
        matches = [m for m in matches if m.topical or (m.relevance >= relevance_floor
                                                       and not is_unrelated(profile, m))]
    ranked = rank_matches(matches)[:top_k]
    if filters.near is not None:
        ranked = [replace(m, **_nearest(found.trials[m.nct_id], filters)) for m in ranked]
    ranked = [replace(m, questions=trial_questions(m, sex=profile.sex)) for m in ranked]
    questions = choose_questions(ranked, asked=asked, sex=profile.sex)
    logger.info("matched: %d candidates, %d checked, %d returned in %.0f ms", len(found.hits.ids),
                len(found.matches), len(ranked), (time.perf_counter() - started) * 1000)
    notice = None
    if not ranked:
        notice = NO_MATCH_NOTICE
    elif not any(m.topical for m in ranked):
        notice = OFF_TOPIC_NOTICE
    return MatchResult(profile=profile, matches=tuple(ranked), questions=questions, notice=notice,
                       retrieved=tuple(found.hits.ids))


NO_MATCH_NOTICE = "No relevant recruiting trial found for the conditions described."
OFF_TOPIC_NOTICE = ("None of these trials studies a condition recognised in the description; they are shown "
                    "because their text is similar. Review them with care.")


def _nearest(trial: TrialRecord, filters: Filters) -> dict[str, Any]:
    assert filters.near is not None
    found = nearest_site(trial.locations, filters.near.lat, filters.near.lon)
    if found is None:
        return {"nearest_site_km": None, "nearest_site": None}
    return {"nearest_site_km": round(found[1], 1), "nearest_site": site_name(found[0]) or None}
