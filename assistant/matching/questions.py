"""Follow-up questions from the unknown verdicts of the top trials. Pure.

A question is keyed by the fact it asks for ("lab:upcr"); its weight adds up
over the possibly-eligible trials where it would settle a criterion, with
higher-ranked trials counting more, so the first question is the one whose
answer changes the most verdicts near the top of the list.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from models.domain import Question, TrialLabel, TrialMatch, Verdict

MAX_QUESTIONS = 3
ASSUMED_WEIGHT = 0.25
# Asked of every trial alike, so the answer says nothing about which trial fits: never a follow-up question.
ADMINISTRATIVE_KEYS = frozenset({"consent"})


def trial_questions(match: TrialMatch, limit: int = MAX_QUESTIONS) -> tuple[Question, ...]:
    grouped: dict[str, Question] = {}
    for v in match.criteria:
        if not v.question_key or not v.question or not (v.verdict is Verdict.UNKNOWN or v.assumed):
            continue
        if v.question_key in ADMINISTRATIVE_KEYS:
            continue
        weight = 1.0 if v.verdict is Verdict.UNKNOWN else ASSUMED_WEIGHT  # confirming an assumption counts less
        q = grouped.get(v.question_key)
        if q is None:
            grouped[v.question_key] = Question(v.question_key, v.question, (v.criterion_id,), (match.nct_id,), weight)
        else:
            grouped[v.question_key] = replace(q, criterion_ids=q.criterion_ids + (v.criterion_id,),
                                              weight=q.weight + weight)
    ranked = sorted(grouped.values(), key=lambda q: (-q.weight, q.key))
    return tuple(ranked[:limit])


def choose_questions(matches: Sequence[TrialMatch], limit: int = MAX_QUESTIONS,
                     asked: frozenset[str] = frozenset()) -> tuple[Question, ...]:
    """The few questions whose answers would settle the most criteria of the top trials."""
    pooled: dict[str, Question] = {}
    for rank, match in enumerate(matches):
        if match.label is TrialLabel.INELIGIBLE:
            continue
        for q in trial_questions(match, limit=100):
            if q.key in asked:
                continue
            weight = q.weight / (1.0 + rank * 0.5)
            have = pooled.get(q.key)
            if have is None:
                pooled[q.key] = replace(q, weight=weight)
            else:
                pooled[q.key] = replace(have, criterion_ids=have.criterion_ids + q.criterion_ids,
                                        nct_ids=have.nct_ids + q.nct_ids, weight=have.weight + weight)
    ranked = sorted(pooled.values(), key=lambda q: (-q.weight, q.key))
    return tuple(replace(q, weight=round(q.weight, 3)) for q in ranked[:limit])
