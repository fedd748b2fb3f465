"""Trial-level labels, cohorts, ranking and questions on hand-built values."""
from __future__ import annotations

from assistant.matching.questions import choose_questions
from assistant.matching.ranking import evaluate_trial, label_of, rank_matches
from models.domain import (
    Comparator,
    ConditionFact,
    CriterionKind,
    CriterionText,
    LabFact,
    ParsedCriterion,
    PatientProfile,
    Requirement,
    Span,
    TrialLabel,
    TrialRecord,
    Verdict,
)

S = Span(0, 1, "x")
INC, EXC = CriterionKind.INCLUSION, CriterionKind.EXCLUSION


def c(kind, pos, text, *reqs, cohort=None, parent=None, logic="all"):
    parsed = ParsedCriterion(text=text, requirements=tuple(reqs), logic=logic, parsed=bool(reqs))
    return CriterionText(kind=kind, position=pos, text=text, cohort=cohort, parent=parent, parsed=parsed)


def cond_req(*concepts, **kw):
    return Requirement(type="condition", span=S, concepts=concepts, **kw)


def upcr_req(value):
    return Requirement(type="lab", span=S, lab="upcr", comparator=Comparator.GE, value=value, unit="g/g")


TRIAL = TrialRecord(
    nct_id="NCT00000009", title="CAR-NK in LN or MN", minimum_age_years=18, maximum_age_years=70,
    minimum_age_raw="18 Years", maximum_age_raw="70 Years",
    criteria=(
        c(INC, 0, "Negative SARS-CoV-2 test"),
        c(INC, 1, "Active lupus nephritis", cond_req("lupus nephritis"), cohort="lupus nephritis"),
        c(INC, 2, "UPCR >= 1.5 g/g", upcr_req(1.5), cohort="lupus nephritis"),
        c(INC, 3, "Evidence of pMN", cond_req("membranous nephropathy"), cohort="membranous nephropathy"),
        c(INC, 4, "UPCR >= 3.5 g/g", upcr_req(3.5), cohort="membranous nephropathy"),
        c(EXC, 0, "Currently requiring dialysis", cond_req("dialysis")),
        c(EXC, 1, "Major cardiac disease as defined by:"),
        c(EXC, 2, "Myocardial infarction", cond_req("myocardial infarction"), parent=1),
    ),
)


def fact(concept, start=0, **kw):
    return ConditionFact(concept=concept, span=Span(start, start + len(concept), concept), **kw)


def upcr(value):
    return LabFact(name="upcr", value=value, unit="g/g", normalized_value=value, normalized_unit="g/g",
                   span=Span(50, 60, f"UPCR {value}"))


def by_id(match):
    return {v.criterion_id: v for v in match.criteria}


def test_patient_fits_one_cohort_and_other_is_not_applicable():
    profile = PatientProfile(age_years=45, conditions=(fact("lupus nephritis"),), labs=(upcr(2.0),))
    m = evaluate_trial(profile, TRIAL, 1.0, lambda a, b: False)
    v = by_id(m)
    assert m.cohort == "lupus nephritis"
    assert v["NCT00000009:inc:1"].verdict is Verdict.MET
    assert v["NCT00000009:inc:3"].verdict is Verdict.NOT_APPLICABLE
    assert "membranous nephropathy cohort" in v["NCT00000009:inc:3"].reason
    assert "lupus nephritis cohort" in v["NCT00000009:inc:3"].reason
    assert m.label is TrialLabel.POSSIBLY_ELIGIBLE  # the SARS-CoV-2 test is unknown


def test_membranous_patient_takes_the_other_cohort():
    profile = PatientProfile(age_years=50, conditions=(fact("membranous nephropathy"),), labs=(upcr(4.0),))
    m = evaluate_trial(profile, TRIAL, 1.0, lambda a, b: False)
    assert m.cohort == "membranous nephropathy"
    assert by_id(m)["NCT00000009:inc:4"].verdict is Verdict.MET


def test_exclusion_and_age_make_ineligible_with_why_not():
    profile = PatientProfile(age_years=45, conditions=(fact("lupus nephritis"), fact("dialysis", 30)),
                             labs=(upcr(2.0),))
    m = evaluate_trial(profile, TRIAL, 1.0, lambda a, b: False)
    assert m.label is TrialLabel.INELIGIBLE
    assert by_id(m)["NCT00000009:exc:0"].verdict is Verdict.MET
    old = evaluate_trial(PatientProfile(age_years=80), TRIAL, 1.0, lambda a, b: False)
    assert old.label is TrialLabel.INELIGIBLE
    assert by_id(old)["NCT00000009:age"].verdict is Verdict.NOT_MET


def test_parent_item_decided_by_sub_items():
    profile = PatientProfile(age_years=45, conditions=(fact("lupus nephritis"), fact("myocardial infarction", 40)))
    v = by_id(evaluate_trial(profile, TRIAL, 1.0, lambda a, b: False))
    assert v["NCT00000009:exc:1"].verdict is Verdict.MET
    assert "sub-items" in v["NCT00000009:exc:1"].reason


def test_label_rules():
    assert label_of([]) is TrialLabel.ELIGIBLE


def test_ineligible_ranked_below_possibly_eligible():
    good = evaluate_trial(PatientProfile(age_years=45, conditions=(fact("lupus nephritis"),)), TRIAL, 0.1,
                          lambda a, b: False)
    bad = evaluate_trial(PatientProfile(age_years=45, conditions=(fact("dialysis"),)), TRIAL, 1.0,
                         lambda a, b: False)
    assert rank_matches([bad, good])[0] is good


def test_questions_pool_unknowns_of_top_trials():
    profile = PatientProfile(age_years=45, conditions=(fact("lupus nephritis"),))
    m = evaluate_trial(profile, TRIAL, 1.0, lambda a, b: False)
    qs = choose_questions([m])
    assert qs and qs[0].key == "lab:upcr"
    assert "NCT00000009:inc:2" in qs[0].criterion_ids
    assert all(q.key != "lab:upcr" for q in choose_questions([m], asked=frozenset({"lab:upcr"})))
