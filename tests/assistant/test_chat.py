"""Answer binding in a chat: a reply answers the pending question only when it is a bare answer or names the
question's subject (own multi-turn examples, real pipeline)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from assistant.chat import (
    Turn,
    add_turn,
    annotate_turns,
    binds,
    bound_question,
    correction,
    facts_from_dict,
    facts_to_dict,
    is_bare_answer,
    parse_transcript,
    render_transcript,
    session_profile,
    transcript_text,
    yes_no_facts,
)
from assistant.responses import profile_to_dict
from models.domain import PatientProfile


@pytest.fixture(scope="module")
def extract(nlp):
    from nlp.profile import extract_profile

    return lambda text: extract_profile(nlp, text)


def q(key: str, text: str = "?") -> dict:
    return {"key": key, "text": text}


def turns(*pairs: tuple[str, dict | None]) -> list[dict]:
    return [{"role": "user", "text": t, "answered": a} for t, a in pairs]


def concepts(profile, negated: bool | None = None) -> set[str]:
    return {c.concept for c in profile.conditions if negated is None or c.context.negated == negated}


@pytest.mark.parametrize("text, bare", [("yes", True), ("No, never.", True), ("yes she has", True),
                                        ("2.4 g/g", True), ("1:320", True), ("8 months ago", True),
                                        ("in 2019", True), ("positive at 1:640", True), ("negative", True),
                                        ("Yes, he takes losartan for blood pressure", False),
                                        ("She is willing and able to give consent", False)])
def test_what_counts_as_a_bare_answer(text, bare):
    assert is_bare_answer(text) is bare


def test_free_text_does_not_answer_a_condition_question(extract):
    msgs = turns(("62-year-old man with hypertension.", None),
                 ("Yes, he takes losartan every morning.", q("condition:malignancy")))
    profile = session_profile(msgs, extract)
    assert "malignancy" not in concepts(profile)
    assert "losartan" in {t.name for t in profile.therapies}


def test_a_reply_about_something_else_is_not_prefixed_with_the_question(extract):
    msgs = turns(("44-year-old woman with lupus.", None),
                 ("She is willing and able to give consent.", q("condition:membranous nephropathy")))
    assert "membranous nephropathy" not in concepts(session_profile(msgs, extract))


def test_bare_yes_and_no_answer_the_pending_question(extract):
    msgs = turns(("50-year-old woman with lupus.", None), ("no, never", q("condition:tuberculosis")),
                 ("yes", q("therapy:hydroxychloroquine")))
    profile = session_profile(msgs, extract)
    assert "tuberculosis" in concepts(profile, negated=True)
    assert any(t.name == "hydroxychloroquine" and not t.context.negated for t in profile.therapies)


def test_a_reply_naming_the_subject_answers_it(extract):
    question = q("condition:tuberculosis")
    assert binds(question, "She had tuberculosis as a child, treated.")
    assert not binds(question, "Her blood pressure is fine.")


def test_a_bare_value_is_read_as_the_asked_lab(extract):
    msgs = turns(("50-year-old woman with lupus nephritis.", None), ("3.1 g/g", q("lab:upcr")))
    labs = {lab.name: lab.value for lab in session_profile(msgs, extract).labs}
    assert labs.get("upcr") == pytest.approx(3.1)


def test_yes_to_the_consent_question_is_recorded(extract):
    msgs = turns(("50-year-old woman with lupus.", None), ("Yes.", q("consent")))
    assert session_profile(msgs, extract).consent_span is not None


def test_a_turn_is_read_once_its_facts_kept_in_the_message(extract):
    calls: list[str] = []

    def counting(text):
        calls.append(text)
        return extract(text)

    msgs = add_turn([], "45-year-old woman with lupus nephritis class IV.", None, counting)
    msgs = add_turn(msgs, "8 months ago", q("condition_date:lupus nephritis"), counting)
    assert len(calls) == 2 and calls[1] == "lupus nephritis diagnosed 8 months ago"
    profile = session_profile(msgs, counting)
    assert len(calls) == 2  # the stored facts are used, nothing is read again
    ln = [c for c in profile.conditions if c.concept == "lupus nephritis"]
    assert ln and ln[0].days_ago == 240 and ln[0].qualifier == "class IV"  # the date keeps the class said before
    # a message without (or with unreadable) stored facts is read again
    stale = [dict(m, facts={"v": -1}) for m in msgs]
    assert session_profile(stale, counting) == profile and len(calls) == 4


def test_stored_facts_round_trip(extract):
    profile = extract("52-year-old man with lupus nephritis class IV, UPCR 2.4 g/g, on prednisone 20 mg daily, "
                      "never had CAR-T therapy; failed three immunosuppressants.")
    assert facts_from_dict(json.loads(json.dumps(facts_to_dict(profile)))) == replace(profile, text="")


def test_wrong_form_and_corrections():
    date_q, lab_q = q("condition_date:kidney biopsy"), q("lab:ana")
    assert bound_question(Turn("no", 0, date_q)) == date_q  # bound, but states nothing:
    assert yes_no_facts(date_q, "no", 0) == PatientProfile()
    assert correction("actually it was 10 months ago") == "10 months ago"
    assert correction("Actually she has lupus") is None
    # a correction re-answers the question answered before, when its form fits
    assert bound_question(Turn("sorry, 10 months ago", 0, lab_q, previous=date_q)) == date_q
    assert bound_question(Turn("sorry, 1:640", 0, lab_q, previous=date_q)) == lab_q


def test_transcript_round_trip_keeps_questions_and_text():
    msgs = [{"role": "user", "text": "Woman, 40, lupus.\n\n  indented line\nA: not an answer", "answered": None},
            {"role": "assistant", "text": "reply"},
            {"role": "user", "text": "No", "answered": {"key": "condition:lupus nephritis",
                                                       "text": "Does she have lupus nephritis?", "weight": 2}},
            {"role": "user", "text": "free text", "answered": {"key": "lab:ana", "text": "What was her ANA [titre]?"}}]
    text = render_transcript(msgs)
    assert "Q: Does she have lupus nephritis? [condition:lupus nephritis]\nA: No" in text
    back = parse_transcript(text)
    assert [m["text"] for m in back] == [msgs[0]["text"], "No", "free text"]
    assert [m["answered"] for m in back] == [None, {"key": "condition:lupus nephritis",
                                                   "text": "Does she have lupus nephritis?"},
                                             {"key": "lab:ana", "text": "What was her ANA [titre]?"}]
    assert transcript_text(back) == transcript_text(msgs)
    assert parse_transcript("A plain description of a patient.") is None


def test_profile_json_says_which_turn_stated_each_fact(extract):
    msgs = add_turn([], "45-year-old woman with lupus.", None, extract)
    msgs = add_turn(msgs, "Her UPCR is 2.1 g/g.", None, extract)
    data = annotate_turns(profile_to_dict(session_profile(msgs, extract)), msgs)
    assert {c["concept"]: c["turn"] for c in data["conditions"]}.get("systemic lupus erythematosus") == 0
    assert [lab["turn"] for lab in data["labs"] if lab["name"] == "upcr"] == [1]
    assert data["age_turn"] == 0


def test_a_bare_class_qualifies_the_asked_condition_and_is_its_evidence(extract):
    msgs = add_turn([], "45-year-old woman with lupus nephritis.", None, extract)
    msgs = add_turn(msgs, "it was class III and V", q("condition_detail:lupus nephritis"), extract)
    text = transcript_text(msgs)
    ln = [c for c in session_profile(msgs, extract).conditions if c.concept == "lupus nephritis"]
    assert ln and ln[0].qualifier == "class III+V"
    assert text[ln[0].span.start:ln[0].span.end] == "class III and V"  # the evidence is the answer itself
    assert is_bare_answer("IV") and not is_bare_answer("I have lupus")
