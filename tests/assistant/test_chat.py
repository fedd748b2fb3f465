"""Answer binding in a chat: a reply answers the pending question only when it is a bare answer or names the
question's subject (own multi-turn examples, real pipeline)."""
from __future__ import annotations

import pytest

from assistant.chat import binds, is_bare_answer, session_profile


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
