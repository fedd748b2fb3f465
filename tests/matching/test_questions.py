"""Follow-up questions: administrative questions every trial shares are never asked."""
from __future__ import annotations

from assistant.matching.questions import choose_questions
from models.domain import CriterionKind, CriterionVerdict, TrialLabel, TrialMatch, Verdict


def unknown(cid: str, key: str, text: str) -> CriterionVerdict:
    return CriterionVerdict(criterion_id=cid, kind=CriterionKind.INCLUSION, text=text, verdict=Verdict.UNKNOWN,
                            reason="unknown", missing="x", question_key=key, question=text)


def test_consent_is_never_asked_and_clinical_questions_are():
    matches = [TrialMatch(nct_id=f"NCT0000000{i}", title="t", score=1.0, relevance=1.0,
                          label=TrialLabel.POSSIBLY_ELIGIBLE,
                          criteria=(unknown(f"NCT0000000{i}:1", "consent", "Is the patient willing to consent?"),
                                    unknown(f"NCT0000000{i}:2", "lab:egfr", "What was the most recent eGFR?")))
               for i in range(3)]
    keys = [q.key for q in choose_questions(matches)]
    assert keys == ["lab:egfr"]
