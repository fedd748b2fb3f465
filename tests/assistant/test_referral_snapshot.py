"""The referral snapshot helpers: a one-line patient summary from the profile, the chat's questions."""
from __future__ import annotations

from assistant.referrals import chat_transcript, main_conditions, patient_summary, transcript_messages
from models.domain import ConditionFact, Context, PatientProfile, Span


def fact(concept: str, start: int, category: str = "condition", **ctx: bool) -> ConditionFact:
    return ConditionFact(concept, Span(start, start + len(concept), concept), category, context=Context(**ctx))


def test_summary_has_age_sex_and_affirmed_conditions_in_mention_order():
    profile = PatientProfile(text="(not used)", age_years=61, sex="male", conditions=(
        fact("lupus nephritis", 40), fact("systemic lupus erythematosus", 10), fact("diabetes", 80, negated=True),
        fact("breast cancer", 90, family=True), fact("pregnancy", 95, category="state"),
        fact("kidney biopsy", 99, category="procedure"), fact("lupus nephritis", 120)))
    assert main_conditions(profile) == ["systemic lupus erythematosus", "lupus nephritis"]
    assert patient_summary(profile) == "61-year-old male; systemic lupus erythematosus, lupus nephritis"


def test_summary_without_age_sex_or_conditions_says_so():
    assert patient_summary(PatientProfile(text="x")) == "age and sex not stated; no condition recognised"
    assert patient_summary(PatientProfile(text="x", age_low=40, age_high=49, sex="female")) == \
        "aged 40-49 female; no condition recognised"


def test_summary_keeps_at_most_three_conditions():
    profile = PatientProfile(text="x", conditions=tuple(fact(c, i * 10) for i, c in enumerate("abcde")))
    assert patient_summary(profile) == "age and sex not stated; a, b, c"


def test_chat_transcript_pairs_each_user_message_with_the_pending_question():
    messages = [{"role": "user", "text": "52-year-old man with SLE", "answered": None},
                {"role": "assistant", "text": "Does he have lupus nephritis?"},
                {"role": "user", "text": "no", "answered": {"key": "condition:lupus nephritis",
                                                            "text": "Does the patient have lupus nephritis?"}},
                {"role": "assistant", "text": "..."},
                {"role": "user", "text": "UPCR 1.1 g/g"}]
    transcript = chat_transcript(messages)
    assert transcript == (
        {"question": None, "question_key": None, "answer": "52-year-old man with SLE"},
        {"question": "Does the patient have lupus nephritis?", "question_key": "condition:lupus nephritis",
         "answer": "no"},
        {"question": None, "question_key": None, "answer": "UPCR 1.1 g/g"})
    # and back: the user messages with the question each was written under
    assert transcript_messages(transcript) == [
        {"role": "user", "text": "52-year-old man with SLE", "answered": None},
        {"role": "user", "text": "no", "answered": {"key": "condition:lupus nephritis",
                                                    "text": "Does the patient have lupus nephritis?"}},
        {"role": "user", "text": "UPCR 1.1 g/g", "answered": None}]
