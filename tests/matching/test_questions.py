"""Follow-up questions: administrative questions every trial shares are never asked."""
from __future__ import annotations

import json
import re

import pytest

from assistant.matching.questions import (
    DEFAULT_PATH,
    QuestionTemplateError,
    choose_questions,
    load_templates,
    parse_templates,
)
from models.domain import CriterionKind, CriterionVerdict, TrialLabel, TrialMatch, Verdict


def unknown(cid: str, key: str, text: str) -> CriterionVerdict:
    return CriterionVerdict(criterion_id=cid, kind=CriterionKind.INCLUSION, text=text, verdict=Verdict.UNKNOWN,
                            reason="unknown", missing="x", question_key=key, question=text)


def test_consent_is_never_asked_and_clinical_questions_are():
    matches = [TrialMatch(nct_id=f"NCT0000000{i}", title="t", score=1.0, relevance=1.0,
                          label=TrialLabel.POSSIBLY_ELIGIBLE, topical=("lupus",),
                          criteria=(unknown(f"NCT0000000{i}:1", "consent", "Is the patient willing to consent?"),
                                    unknown(f"NCT0000000{i}:2", "lab:egfr", "What was the most recent eGFR?")))
               for i in range(3)]
    keys = [q.key for q in choose_questions(matches)]
    assert keys == ["lab:egfr"]


def match(nct: str, *verdicts: CriterionVerdict, topical: tuple[str, ...] = ("lupus nephritis",),
          label: TrialLabel = TrialLabel.POSSIBLY_ELIGIBLE) -> TrialMatch:
    return TrialMatch(nct_id=nct, title="t", score=1.0, relevance=1.0, label=label, criteria=verdicts,
                      topical=topical)


def test_questions_come_only_from_relevant_trials_weighted_by_rank():
    ranked = [match("NCT00000001", unknown("NCT00000001:1", "lab:upcr", "q")),
              match("NCT00000002", unknown("NCT00000002:1", "condition:inflammatory bowel disease", "q"),
                    unknown("NCT00000002:2", "condition:inflammatory bowel disease", "q"), topical=()),
              match("NCT00000003", unknown("NCT00000003:1", "lab:egfr", "q"), unknown("NCT00000003:2", "lab:upcr", "q")),
              match("NCT00000004", unknown("NCT00000004:1", "lab:ana", "q"), label=TrialLabel.INELIGIBLE)]
    questions = choose_questions(ranked)
    assert [q.key for q in questions] == ["lab:upcr", "lab:egfr"]  # no unrelated, no ineligible trial
    assert questions[0].weight == round(1 / 1 + 1 / 3, 3) and questions[1].weight == round(1 / 3, 3)
    assert questions[0].nct_ids == ("NCT00000001", "NCT00000003")


def test_wording_from_templates_with_the_patients_pronoun():
    templates = load_templates()
    assert templates.render("dose:prednisone", "female") == "What daily dose of prednisone is she taking?"
    assert templates.render("condition_date:kidney biopsy", "male") == "When was the kidney biopsy done?"
    assert templates.render("therapy:cd19_targeted|bcma_targeted", "female") == \
        "Has she received an anti-CD19 or anti-BCMA therapy before?"
    assert templates.render("condition:pregnancy|breastfeeding", "female") == "Is she pregnant or breastfeeding?"
    assert templates.render("condition_form:systemic lupus erythematosus", None) == \
        "Which organs are affected by lupus (kidneys, joints, skin, blood, ...)?"
    assert templates.render("therapy:ras_blockade", None).startswith("Is the patient taking an ACE inhibitor")
    assert templates.render("lab:upcr", "male").startswith("What was his most recent urine protein")
    # generic fallback per kind; many alternatives are listed, not glued with "or"
    assert templates.render("condition:sarcoidosis", "male") == "Does he have sarcoidosis?"
    assert templates.render("condition:a|b|c|d", None) == "Does the patient have any of these: a, b, c, d?"
    assert templates.render("condition:a|b|c|d|e|f|g|h|i", None) == \
        "Does the patient have any of these: a, b, c, d, e, f, g, h, ...?"
    assert templates.render("condition:a|b", "female") == "Does she have a or b?"
    assert templates.render("unheard_of:x", None, "Fallback?") == "Fallback?"


def test_contraception_and_schedule_questions_are_administrative():
    templates = load_templates()
    assert templates.is_administrative("consent")
    assert templates.is_administrative("condition:contraception")
    assert not templates.is_administrative("condition:pregnancy|contraception")


@pytest.mark.parametrize("data, message", [
    ({"templates": {"lab": {"_default": "What is {subject}?"}}, "extra": 1}, "unknown section"),
    ({"templates": {"labs": {"_default": "What is {subject}?"}}}, "unknown question kind"),
    ({"templates": {"lab": {"upcr": "What is {subject}?"}}}, "'_default'"),
    ({"templates": {"lab": {"_default": "What is {subjet}?"}}}, "unknown placeholder"),
    ({"templates": {"lab": {"_default": "What is {subject?"}}}, "templates.lab._default"),
    ({"templates": {"lab": {"_default": ""}}}, "non-empty"),
    ({"templates": {"lab": {"_default": "x"}}, "administrative": ["nonsense:x"]}, "unknown question kind"),
    ([], "top level"),
])
def test_malformed_template_files_are_refused_with_a_clear_error(data, message, tmp_path):
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(QuestionTemplateError, match=re.escape(message)) as err:
        load_templates(str(path))
    assert str(path) in str(err.value)


def test_the_bundled_template_file_is_valid():
    parse_templates(json.loads(DEFAULT_PATH.read_text(encoding="utf-8")))
