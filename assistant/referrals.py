"""What a referral keeps beside the patient text: a one-line summary and the chat's questions. Pure.

The coordinator queue lists these instead of the raw text, and without re-running matching per row.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.domain import PatientProfile

MAX_SUMMARY_CONDITIONS = 3
SUMMARY_MAX_CHARS = 300


def _age(profile: PatientProfile) -> str | None:
    if profile.age_years is not None:
        return f"{profile.age_years:g}-year-old"
    if profile.age_low is not None and profile.age_high is not None:
        return f"aged {profile.age_low:g}-{profile.age_high:g}"
    return None


def main_conditions(profile: PatientProfile, limit: int = MAX_SUMMARY_CONDITIONS) -> list[str]:
    """The patient's affirmed conditions in the order they were first mentioned (no negated, family or
    hypothetical ones), at most ``limit``."""
    seen: dict[str, None] = {}
    for fact in sorted(profile.conditions, key=lambda f: f.span.start):
        c = fact.context
        if c.negated or c.family or c.hypothetical or fact.category in ("state", "procedure"):
            continue
        seen.setdefault(fact.concept, None)
    return list(seen)[:limit]


def patient_summary(profile: PatientProfile) -> str:
    """``45-year-old female; systemic lupus erythematosus, lupus nephritis`` from the extracted profile
    (never a copy of the patient's words)."""
    who = " ".join(p for p in (_age(profile), profile.sex) if p) or "age and sex not stated"
    conditions = main_conditions(profile)
    text = f"{who}; {', '.join(conditions)}" if conditions else f"{who}; no condition recognised"
    return text if len(text) <= SUMMARY_MAX_CHARS else text[:SUMMARY_MAX_CHARS - 1] + "…"


def chat_transcript(messages: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Each user message of a chat with the question that was pending when it was written (None for the first
    description or when nothing was asked): ``{"question", "question_key", "answer"}``."""
    out = []
    for m in messages:
        if m.get("role") != "user":
            continue
        asked = m.get("answered") if isinstance(m.get("answered"), dict) else {}
        question, key = asked.get("text"), asked.get("key")
        out.append({"question": question if isinstance(question, str) else None,
                    "question_key": key if isinstance(key, str) else None, "answer": m["text"]})
    return tuple(out)


def transcript_messages(transcript: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat's user messages back from a stored transcript, each with the question it was written under, so
    a referral's profile is read exactly as the chat read it."""
    return [{"role": "user", "text": t["answer"],
             "answered": {"key": t.get("question_key"), "text": t["question"]} if t.get("question") else None}
            for t in transcript]
