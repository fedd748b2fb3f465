"""Closed-world policy (data/rules/closed_world.json), parse coverage and honest trial labels."""
from __future__ import annotations

import json

import pytest

from assistant.matching.checks import CheckContext, Truth, check_criterion, check_requirement
from assistant.matching.policy import PolicyError, load_policy, parse_policy
from assistant.matching.ranking import evaluate_trial, rank_matches, topical_concepts
from models.domain import (
    ConditionFact,
    Context,
    CriterionKind,
    CriterionText,
    ParsedCriterion,
    PatientProfile,
    Requirement,
    Span,
    TrialLabel,
    TrialRecord,
    Verdict,
)

CATEGORY = {"kidney biopsy": "procedure", "hepatitis c": "infection", "sarcoidosis": "condition"}
IS_A = {("kidney transplant", "transplant"), ("crohn disease", "inflammatory bowel disease")}


def is_a(concept: str, ancestor: str) -> bool:
    return (concept, ancestor) in IS_A


def ctx(kind: CriterionKind) -> CheckContext:
    return CheckContext(kind, is_a, category_of=CATEGORY.get)


def span_of(text: str, part: str) -> Span:
    start = text.lower().index(part.lower())
    part = text[start:start + len(part)]
    return Span(start, start + len(part), part)


def criterion(kind: CriterionKind, text: str, *reqs: Requirement, logic: str = "all") -> CriterionText:
    return CriterionText(kind=kind, position=0, text=text,
                         parsed=ParsedCriterion(text=text, requirements=reqs, logic=logic, parsed=True))


def cond_req(text: str, part: str, concept: str, present: bool = True) -> Requirement:
    return Requirement(type="condition", span=span_of(text, part), concepts=(concept,), present=present)


def fact(concept: str, text: str, **context) -> ConditionFact:
    return ConditionFact(concept=concept, span=span_of(text, concept), context=Context(**context))


def test_bundled_policy_loads_and_names_its_reasons():
    policy = load_policy()
    req = Requirement(type="condition", span=Span(0, 1, "x"), concepts=("kidney transplant",))
    reading = policy.reading(req, is_a, CATEGORY.get)
    assert reading.assume_absent and "transplant" in reading.why


@pytest.mark.parametrize("bad", [[], {"requirement_types": {}},
                                 {"requirement_types": {"lab": {"reading": "maybe", "why": "x"}}},
                                 {"requirement_types": {"lab": {"reading": "unknown", "why": "x"}},
                                  "assume_absent_concepts": [{"concept": 3}]}])
def test_malformed_policy_is_rejected_with_the_file_named(bad, tmp_path):
    with pytest.raises(PolicyError, match="closed_world"):
        parse_policy(bad, tmp_path / "closed_world.json")


def test_silence_about_a_transplant_reads_as_absent_and_the_reason_says_why():
    text = "Prior kidney transplant"
    crit = criterion(CriterionKind.EXCLUSION, text, cond_req(text, "kidney transplant", "kidney transplant"))
    v = check_criterion(PatientProfile(text="A 40-year-old man with gout."), crit, "t:1", ctx(CriterionKind.EXCLUSION))
    assert v.verdict is Verdict.NOT_MET and v.assumed
    assert "Assumed absent: a referral would mention a transplant" in v.reason


def test_silence_about_childbearing_potential_stays_unknown():
    text = "Women of childbearing potential"
    crit = criterion(CriterionKind.EXCLUSION, text, cond_req(text, "childbearing potential", "childbearing potential"))
    v = check_criterion(PatientProfile(text="A 30-year-old with gout."), crit, "t:1", ctx(CriterionKind.EXCLUSION))
    assert v.verdict is Verdict.UNKNOWN and v.missing
    assert "not assumed absent" in v.reason


def test_silence_about_a_major_procedure_reads_as_absent():
    text = "Prior kidney biopsy"
    crit = criterion(CriterionKind.EXCLUSION, text, cond_req(text, "kidney biopsy", "kidney biopsy"))
    v = check_criterion(PatientProfile(text="A 40-year-old man with gout."), crit, "t:1", ctx(CriterionKind.EXCLUSION))
    assert v.verdict is Verdict.NOT_MET and "a referral would mention a major procedure" in v.reason


def test_an_inclusion_asking_for_a_negative_test_is_not_met_by_silence():
    text = "Negative hepatitis C antibody test at screening"
    req = cond_req(text, "hepatitis C", "hepatitis c", present=False)
    crit = criterion(CriterionKind.INCLUSION, text, req)
    v = check_criterion(PatientProfile(text="A 52-year-old woman with sarcoidosis."), crit, "t:1",
                        ctx(CriterionKind.INCLUSION))
    assert v.verdict is Verdict.UNKNOWN
    assert "never established by silence" in v.reason


def test_a_positive_verdict_on_part_of_a_criterion_is_unknown():
    text = "Sarcoidosis patients living within the catchment district registered with the regional clinic"
    crit = criterion(CriterionKind.INCLUSION, text, cond_req(text, "Sarcoidosis", "sarcoidosis"))
    note = "55-year-old with sarcoidosis"
    profile = PatientProfile(text=note, conditions=(fact("sarcoidosis", note),))
    v = check_criterion(profile, crit, "t:1", ctx(CriterionKind.INCLUSION))
    assert v.verdict is Verdict.UNKNOWN
    assert "catchment" in v.reason and v.missing


def test_a_fully_read_criterion_keeps_its_verdict():
    text = "Sarcoidosis"
    crit = criterion(CriterionKind.INCLUSION, text, cond_req(text, "Sarcoidosis", "sarcoidosis"))
    note = "55-year-old with sarcoidosis"
    profile = PatientProfile(text=note, conditions=(fact("sarcoidosis", note),))
    assert check_criterion(profile, crit, "t:1", ctx(CriterionKind.INCLUSION)).verdict is Verdict.MET


def test_lab_exclusion_is_assumed_normal_but_still_asked():
    req = Requirement(type="lab", span=Span(0, 10, "ALT > 3 ULN"), lab="alt")
    f = check_requirement(PatientProfile(text="gout"), req, ctx(CriterionKind.EXCLUSION))
    assert f.truth is Truth.NO and f.assumed and f.question and f.basis


def _trial(nct: str, title: str, concepts: tuple[str, ...], healthy: bool | None = None) -> TrialRecord:
    age = CriterionText(kind=CriterionKind.INCLUSION, position=0, text="Adults",
                        parsed=ParsedCriterion(text="Adults", parsed=True, logic="all", requirements=(
                            Requirement(type="age", span=Span(0, 6, "Adults"), value=18.0),)))
    return TrialRecord(nct_id=nct, title=title, concepts=concepts, criteria=(age,), healthy_volunteers=healthy)


def test_an_unrelated_trial_is_never_eligible_and_ranks_after_relevant_failed_ones():
    note = "47-year-old man with Crohn disease"
    profile = PatientProfile(text=note, age_years=47, age_span=span_of(note, "47-year-old"),
                             conditions=(fact("crohn disease", note),))
    unrelated = evaluate_trial(profile, _trial("NCT00000001", "Anaesthesia for cholecystectomy", ("cholelithiasis",)),
                               0.9, is_a)
    related = evaluate_trial(profile, _trial("NCT00000002", "IBD study", ("inflammatory bowel disease",)), 0.2, is_a)
    assert unrelated.label is TrialLabel.POSSIBLY_ELIGIBLE and not unrelated.topical
    assert related.label is TrialLabel.ELIGIBLE and related.topical == ("crohn disease",)
    healthy = evaluate_trial(profile, _trial("NCT00000003", "Healthy volunteers", (), healthy=True), 0.5, is_a)
    assert healthy.label is TrialLabel.ELIGIBLE
    failed = evaluate_trial(PatientProfile(text=note, age_years=12, conditions=(fact("crohn disease", note),)),
                            _trial("NCT00000004", "IBD study", ("inflammatory bowel disease",)), 0.1, is_a)
    assert failed.label is TrialLabel.INELIGIBLE
    order = [m.nct_id for m in rank_matches([unrelated, failed, related])]
    assert order == ["NCT00000002", "NCT00000004", "NCT00000001"]


def test_negated_and_family_mentions_are_not_topical():
    note = "no Crohn disease; her mother has Crohn disease"
    profile = PatientProfile(text=note, conditions=(
        ConditionFact(concept="crohn disease", span=Span(3, 16, "Crohn disease"), context=Context(negated=True)),
        ConditionFact(concept="crohn disease", span=Span(32, 45, "Crohn disease"), context=Context(family=True))))
    assert topical_concepts(profile, _trial("NCT00000002", "IBD", ("crohn disease",)), is_a) == ()


def test_policy_file_states_its_principle():
    from assistant.matching.policy import DEFAULT_PATH

    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert "referral" in data["_comment"] and parse_policy(data, DEFAULT_PATH).types
