"""Chat sessions: merge each message into the patient profile, choose the next question.

Each user message is read on its own; its facts replace earlier facts about the
same thing (a later "her UPCR is now 2.4 g/g" replaces the old UPCR, "no, she
has never had CAR-T" negates an earlier CAR-T mention).

Answer binding (one rule): a reply answers the pending question only when it is a bare answer ("yes", "no",
"no, never", "2.4 g/g", "12", "1:320", "8 months ago") or names that question's subject; anything else is free
text read on its own. So "Yes, he takes losartan" while a malignancy question is pending records losartan, not
a malignancy, and a question's subject is never prepended to free text.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from models.domain import (
    ConditionFact,
    Context,
    MatchResult,
    PatientProfile,
    Question,
    Span,
    TherapyFact,
    TrialLabel,
)

SEPARATOR = "\n\n"
YES_RE = re.compile(r"^\s*(?:yes|yeah|yep|yup|correct|right|she (?:has|did)|he (?:has|did)|they (?:have|did)|"
                    r"affirmative|indeed)\b", re.IGNORECASE)
NO_RE = re.compile(r"^\s*(?:no|nope|never|not|none|she (?:has not|hasn't|did not|didn't)|he (?:has not|hasn't|"
                   r"did not|didn't))\b", re.IGNORECASE)
LAB_PHRASES = {"upcr": "UPCR", "uacr": "UACR", "egfr": "eGFR", "creatinine": "creatinine", "platelets": "platelets",
               "anc": "ANC", "wbc": "WBC", "hemoglobin": "hemoglobin", "alt": "ALT", "ast": "AST",
               "bilirubin": "bilirubin", "sledai_2k": "SLEDAI-2K", "ecog": "ECOG", "hba1c": "HbA1c", "qtc": "QTc",
               "lvef": "ejection fraction", "ana": "ANA", "anti_dsdna": "anti-dsDNA", "proteinuria": "proteinuria",
               "bmi": "BMI", "c3": "C3", "c4": "C4", "inr": "INR", "albumin": "albumin"}


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message with where it sits in the transcript and the question it answered."""

    text: str
    offset: int
    answered: dict[str, Any] | None = None


def transcript_turns(messages: Sequence[dict[str, Any]]) -> list[Turn]:
    turns, offset = [], 0
    for m in messages:
        if m.get("role") != "user":
            continue
        turns.append(Turn(m["text"], offset, m.get("answered")))
        offset += len(m["text"]) + len(SEPARATOR)
    return turns


def transcript_text(messages: Sequence[dict[str, Any]]) -> str:
    return SEPARATOR.join(m["text"] for m in messages if m.get("role") == "user")


_RESULT = r"(?:positive|negative|normal|abnormal|high|low|elevated|raised|reactive|non-reactive|undetectable)"
# a value, optionally with a result word ("1:320", "2.4 g/g", "positive at 1:640", "negative")
BARE_VALUE_RE = re.compile(rf"^\s*(?:it\s+(?:is|was)\s+|about\s+|around\s+)?(?:{_RESULT}\s*(?:at|of|,|:)?\s*)?"
                           r"(?:[<>≤≥=~]?\s*\d[\d.,:/]*\s*(?:[a-zA-Z%/^µμ0-9.]+(?:\s*/\s*[a-zA-Z0-9.]+)?)?)?"
                           r"\s*\.?\s*$", re.IGNORECASE)
BARE_TIME_RE = re.compile(r"^\s*(?:about\s+|around\s+)?(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|"
                          r"eleven|twelve|a|an)\s+(?:days?|weeks?|months?|years?)\s+ago\s*\.?\s*$|^\s*(?:in\s+)?"
                          r"(?:19|20)\d\d\s*\.?\s*$|^\s*last\s+(?:week|month|year)\s*\.?\s*$", re.IGNORECASE)
# after the yes/no word, only these may follow for the reply to stay a bare answer
BARE_TAIL_RE = re.compile(r"^\W*(?:(?:she|he|they|i|we|the patient)\s+(?:has|have|had|did|does|is|was|were|"
                          r"do)(?:\s*n['’]t|\s+not)?|never|not|none|at all|ever|thanks?|thank you|please)?\W*$",
                          re.IGNORECASE)


def _bare_value(text: str) -> bool:
    return bool(text.strip()) and bool(BARE_VALUE_RE.match(text))


def _subject_words(what: str) -> list[str]:
    return [w for part in what.split("|") for w in re.findall(r"[a-z0-9]{3,}", part.replace("_", " ").lower())]


def names_subject(question: dict[str, Any] | None, text: str) -> bool:
    """Does the reply name what the pending question asks about?"""
    _, _, what = str((question or {}).get("key", "")).partition(":")
    words = set(re.findall(r"[a-z0-9]{3,}", text.lower()))
    return bool(what) and any(w in words for w in _subject_words(what))


def is_bare_answer(text: str) -> bool:
    """A reply that says nothing but the answer: yes/no (with at most "she has"/"never"), a value, a time."""
    m = YES_RE.match(text) or NO_RE.match(text)
    if m:
        return bool(BARE_TAIL_RE.match(text[m.end():]))
    return _bare_value(text) or bool(BARE_TIME_RE.match(text))


def binds(question: dict[str, Any] | None, text: str) -> bool:
    """The answer-binding rule: the reply answers the pending question only when it is a bare answer or names
    that question's subject."""
    return bool(question) and (is_bare_answer(text) or names_subject(question, text))


def context_prefix(question: dict[str, Any] | None, text: str) -> str:
    """Words that make a bare value readable on its own ("UPCR" before "2.4 g/g", the drug before "8 months
    ago"); free text and replies that name their subject get no prefix."""
    if not question or not (_bare_value(text) or BARE_TIME_RE.match(text)):
        return ""
    kind, _, what = str(question.get("key", "")).partition(":")
    if kind == "lab" and _bare_value(text):
        return LAB_PHRASES.get(what, what.replace("_", " "))
    if kind == "age" and _bare_value(text):
        return "age"
    if kind == "therapy_date" and what and BARE_TIME_RE.match(text):
        return f"{what.split('|')[0].replace('_', ' ')} given"
    return ""


def _shift(span: Span | None, delta: int, limit: tuple[int, int]) -> Span | None:
    if span is None:
        return None
    start = min(max(span.start + delta, limit[0]), limit[1])
    end = min(max(span.end + delta, start), limit[1])
    return Span(start, end, span.text)


def _shift_profile(p: PatientProfile, delta: int, limit: tuple[int, int]) -> PatientProfile:
    def mv(items: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(replace(i, span=_shift(i.span, delta, limit)) for i in items)

    return replace(p, conditions=mv(p.conditions), labs=mv(p.labs), therapies=mv(p.therapies),
                   therapy_counts=mv(p.therapy_counts), age_span=_shift(p.age_span, delta, limit),
                   sex_span=_shift(p.sex_span, delta, limit), consent_span=_shift(p.consent_span, delta, limit))


def yes_no_facts(turn: Turn) -> PatientProfile | None:
    """A bare yes/no answer to a condition, therapy or consent question, as facts."""
    question = turn.answered or {}
    kind, _, what = str(question.get("key", "")).partition(":")
    yes, no = YES_RE.match(turn.text), NO_RE.match(turn.text)
    if not (yes or no) or not is_bare_answer(turn.text):
        return None
    if kind == "consent" and yes:
        return PatientProfile(consent_span=Span(turn.offset + yes.start(), turn.offset + yes.end(),
                                                yes.group(0).strip()))
    if kind not in ("condition", "therapy") or not what:
        return None
    m = yes or no
    assert m is not None
    span = Span(turn.offset + m.start(), turn.offset + m.end(), m.group(0).strip())
    ctx = Context(negated=bool(no))
    first = what.split("|")[0]
    if kind == "condition":
        return PatientProfile(conditions=(ConditionFact(concept=first, span=span, context=ctx),))
    classes = tuple(c for c in what.split("|") if "_" in c or c.islower())
    return PatientProfile(therapies=(TherapyFact(name=first, span=span, classes=classes, context=ctx),))


def read_turn(turn: Turn, extract: Callable[[str], PatientProfile]) -> PatientProfile:
    answered = turn.answered if binds(turn.answered, turn.text) else None
    turn = replace(turn, answered=answered)
    facts = yes_no_facts(turn)
    if facts is not None:
        return facts
    prefix = context_prefix(turn.answered, turn.text)
    if prefix:
        read = extract(f"{prefix} {turn.text}")
        delta = turn.offset - len(prefix) - 1
    else:
        read = extract(turn.text)
        delta = turn.offset
    return _shift_profile(read, delta, (turn.offset, turn.offset + len(turn.text)))


def merge_profiles(parts: Sequence[PatientProfile], text: str) -> PatientProfile:
    """Later messages win: facts about a concept/lab/drug replace the earlier ones about it."""
    def newest(attr: str, key: Callable[[Any], str]) -> tuple[Any, ...]:
        latest: dict[str, tuple[Any, ...]] = {}
        for part in parts:
            grouped: dict[str, list[Any]] = {}
            for item in getattr(part, attr):
                grouped.setdefault(key(item), []).append(item)
            latest.update({k: tuple(v) for k, v in grouped.items()})
        return tuple(i for items in latest.values() for i in items)

    merged = PatientProfile(
        text=text, conditions=newest("conditions", lambda f: f.concept), labs=newest("labs", lambda f: f.name),
        therapies=newest("therapies", lambda f: f.name),
        therapy_counts=newest("therapy_counts", lambda c: c.drug_class))
    for part in parts:
        if part.has_age:
            merged = replace(merged, age_years=part.age_years, age_low=part.age_low, age_high=part.age_high,
                             age_span=part.age_span)
        if part.sex:
            merged = replace(merged, sex=part.sex, sex_span=part.sex_span)
        if part.consent_span:
            merged = replace(merged, consent_span=part.consent_span)
        if part.healthy is not None:
            merged = replace(merged, healthy=part.healthy)
    return merged


def session_profile(messages: Sequence[dict[str, Any]], extract: Callable[[str], PatientProfile]) -> PatientProfile:
    return merge_profiles([read_turn(t, extract) for t in transcript_turns(messages)], transcript_text(messages))


def next_question(result: MatchResult, asked: Sequence[str]) -> Question | None:
    return next((q for q in result.questions if q.key not in asked), None)


def reply_text(result: MatchResult, question: Question | None) -> str:
    """A short plain-language message for the widget."""
    if not result.matches:
        return (f"{result.notice or 'I could not find a matching open trial yet.'} Could you tell me more about "
                "the diagnosis, age and treatments so far?")
    if result.notice:
        parts0 = [result.notice]
    else:
        parts0 = []
    counts = {label: sum(m.label is label for m in result.matches) for label in TrialLabel}
    top = result.matches[0]
    parts = parts0 + [f"I found {len(result.matches)} trials to look at: {counts[TrialLabel.ELIGIBLE]} look eligible, "
             f"{counts[TrialLabel.POSSIBLY_ELIGIBLE]} possibly eligible and {counts[TrialLabel.INELIGIBLE]} "
             f"probably not eligible.",
             f"The best match is {top.nct_id} ({top.label.value.replace('_', ' ')}): {top.title}."]
    if question is not None:
        parts.append(f"To narrow this down: {question.text}")
    parts.append("This is not medical advice; the study team decides on eligibility.")
    return " ".join(parts)
