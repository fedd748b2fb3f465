"""Criterion checks on hand-built profiles and requirements (no NLP involved)."""
from __future__ import annotations

from assistant.matching.checks import CheckContext, Truth, check_criterion, check_requirement
from models.domain import (
    Comparator,
    ConditionFact,
    Context,
    CriterionKind,
    CriterionText,
    LabFact,
    ParsedCriterion,
    PatientProfile,
    Requirement,
    Span,
    TherapyCount,
    TherapyFact,
    Verdict,
)

INC = CheckContext(CriterionKind.INCLUSION, lambda c, a: (c, a) == ("lupus nephritis", "systemic lupus erythematosus"))
EXC = CheckContext(CriterionKind.EXCLUSION, INC.is_a)
S = Span(0, 4, "text")


def span(text: str, start: int = 0) -> Span:
    return Span(start, start + len(text), text)


def cond(concept: str, **ctx) -> ConditionFact:
    days = ctx.pop("days_ago", None)
    qualifier = ctx.pop("qualifier", None)
    return ConditionFact(concept=concept, span=span(concept, 10), context=Context(**ctx), days_ago=days,
                         qualifier=qualifier)


def req(type_: str, **kw) -> Requirement:
    return Requirement(type=type_, span=S, **kw)


def crit(kind: CriterionKind, *reqs: Requirement, logic: str = "all", guards=()) -> CriterionText:
    text = "criterion text"
    return CriterionText(kind=kind, position=0, text=text,
                         parsed=ParsedCriterion(text=text, requirements=reqs, logic=logic, parsed=True,
                                                guards=tuple(guards)))


def test_age_bounds_open_bound_is_no_limit():
    profile = PatientProfile(age_years=75, age_span=span("75-year-old"))
    assert check_requirement(profile, req("age", value=18.0), INC).truth is Truth.YES
    assert check_requirement(profile, req("age", value=18.0, value_high=70.0), INC).truth is Truth.NO
    f = check_requirement(PatientProfile(), req("age", value=18.0), INC)
    assert f.truth is Truth.UNKNOWN and f.missing == "the patient's age"


def test_age_range_straddling_a_bound_is_unknown():
    profile = PatientProfile(age_low=60, age_high=69)
    assert check_requirement(profile, req("age", value=18.0, value_high=65.0), INC).truth is Truth.UNKNOWN
    assert check_requirement(profile, req("age", value=18.0, value_high=75.0), INC).truth is Truth.YES


def test_condition_is_a_and_negation_and_family():
    has_ln = PatientProfile(conditions=(cond("lupus nephritis"),))
    assert check_requirement(has_ln, req("condition", concepts=("systemic lupus erythematosus",)), INC).truth is Truth.YES
    negated = PatientProfile(conditions=(cond("systemic lupus erythematosus", negated=True),))
    assert check_requirement(negated, req("condition", concepts=("systemic lupus erythematosus",)), INC).truth is Truth.NO
    family = PatientProfile(conditions=(cond("systemic lupus erythematosus", family=True),))
    f = check_requirement(family, req("condition", concepts=("systemic lupus erythematosus",)), INC)
    assert f.truth is Truth.UNKNOWN and "family" in f.clause
    # exclusion: a relative's disease never excludes the patient
    assert check_requirement(family, req("condition", concepts=("systemic lupus erythematosus",)), EXC).truth is Truth.NO


def test_unmentioned_exclusion_is_assumed_absent_but_inclusion_is_unknown():
    profile = PatientProfile(conditions=(cond("asthma"),))
    r = req("condition", concepts=("hiv infection",))
    exc = check_requirement(profile, r, EXC)
    assert exc.truth is Truth.NO and exc.assumed
    inc = check_requirement(profile, r, INC)
    assert inc.truth is Truth.UNKNOWN and inc.question and "hiv infection" in inc.question


def test_time_window_on_condition():
    r = req("condition", concepts=("malignancy",), within_days=5 * 365.25)
    recent = PatientProfile(conditions=(cond("malignancy", historical=True, days_ago=2 * 365.25),))
    old = PatientProfile(conditions=(cond("malignancy", historical=True, days_ago=10 * 365.25),))
    undated = PatientProfile(conditions=(cond("malignancy", historical=True),))
    assert check_requirement(recent, r, EXC).truth is Truth.YES
    assert check_requirement(old, r, EXC).truth is Truth.NO
    assert check_requirement(undated, r, EXC).truth is Truth.UNKNOWN


def test_biopsy_class_qualifier():
    r = req("condition", concepts=("lupus nephritis",), qualifier="class III/IV")
    iv = PatientProfile(conditions=(cond("lupus nephritis", qualifier="class IV"),))
    v = PatientProfile(conditions=(cond("lupus nephritis", qualifier="class V"),))
    none = PatientProfile(conditions=(cond("lupus nephritis"),))
    assert check_requirement(iv, r, INC).truth is Truth.YES
    assert check_requirement(v, r, INC).truth is Truth.NO
    assert check_requirement(none, r, INC).truth is Truth.UNKNOWN


def test_lab_threshold_with_unit_conversion():
    r = req("lab", lab="platelets", comparator=Comparator.LT, value=100.0, unit="10^9/L")
    low = PatientProfile(labs=(LabFact(name="platelets", value=60000, unit="/mm3", span=span("platelets 60,000/mm3"),
                                       normalized_value=60.0, normalized_unit="10^9/L"),))
    f = check_requirement(low, r, EXC)
    assert f.truth is Truth.YES and f.evidence[0].text == "platelets 60,000/mm3"
    # exclusion: an abnormal value would have been reported (closed world), but it is still worth asking
    assumed = check_requirement(PatientProfile(), r, EXC)
    assert assumed.truth is Truth.NO and assumed.assumed and assumed.key == "lab:platelets"
    missing = check_requirement(PatientProfile(), r, INC)
    assert missing.truth is Truth.UNKNOWN and missing.key == "lab:platelets"


def test_upcr_range():
    r = req("lab", lab="upcr", comparator=Comparator.GE, value=1.5, value_high=7.0, unit="g/g")
    ok = PatientProfile(labs=(LabFact(name="upcr", value=2.1, unit="g/g", span=span("UPCR 2.1 g/g"),
                                      normalized_value=2.1, normalized_unit="g/g"),))
    high = PatientProfile(labs=(LabFact(name="upcr", value=9.0, unit="g/g", span=span("UPCR 9 g/g"),
                                        normalized_value=9.0, normalized_unit="g/g"),))
    assert check_requirement(ok, r, INC).truth is Truth.YES
    assert check_requirement(high, r, INC).truth is Truth.NO


def test_therapy_classes_negation_and_time():
    r = req("therapy", classes=("car_t",), present=False)
    had = PatientProfile(therapies=(TherapyFact(name="tisagenlecleucel", classes=("car_t", "cellular_therapy"),
                                                span=span("tisagenlecleucel")),))
    never = PatientProfile(therapies=(TherapyFact(name="car_t", classes=("car_t",), span=span("CAR-T"),
                                                  context=Context(negated=True)),))
    assert check_requirement(had, r, INC).truth is Truth.NO
    assert check_requirement(never, r, INC).truth is Truth.YES
    window = req("therapy", classes=("b_cell_depleting",), within_days=183)
    recent = PatientProfile(therapies=(TherapyFact(name="rituximab", classes=("b_cell_depleting",),
                                                   span=span("rituximab"), days_ago=120),))
    assert check_requirement(recent, window, EXC).truth is Truth.YES


def test_therapy_count_with_explicit_count():
    r = req("therapy_count", classes=("immunosuppressant",), min_count=2)
    two = PatientProfile(therapies=(
        TherapyFact(name="mycophenolate mofetil", classes=("immunosuppressant",), span=span("MMF")),
        TherapyFact(name="tacrolimus", classes=("immunosuppressant",), span=span("tacrolimus", 20))))
    counted = PatientProfile(therapy_counts=(TherapyCount("immunosuppressant", 3, span("three immunosuppressants")),))
    one_only = PatientProfile(therapy_counts=(TherapyCount("immunosuppressant", 1, span("one immunosuppressant")),))
    assert check_requirement(two, r, INC).truth is Truth.YES
    assert check_requirement(counted, r, INC).truth is Truth.YES
    assert check_requirement(one_only, r, INC).truth is Truth.NO
    assert check_requirement(PatientProfile(), r, INC).truth is Truth.UNKNOWN


def test_criterion_any_logic_and_reason_quotes_criterion_and_evidence():
    profile = PatientProfile(labs=(LabFact(name="anti_dsdna", value=None, unit=None, polarity="positive",
                                           span=span("anti-dsDNA positive", 30)),))
    c = crit(CriterionKind.INCLUSION,
             req("lab", lab="ana", comparator=Comparator.GE, value=80.0, unit="titer"),
             req("lab", lab="anti_dsdna", qualifier="positive"), logic="any")
    v = check_criterion(profile, c, "NCT1:inc:0", INC)
    assert v.verdict is Verdict.MET
    assert '"criterion text"' in v.reason and "anti-dsDNA positive" in v.reason
    assert v.evidence == (span("anti-dsDNA positive", 30),)


def test_unparsed_criterion_is_unknown_never_met():
    c = CriterionText(kind=CriterionKind.INCLUSION, position=0, text="Able to swallow tablets")
    v = check_criterion(PatientProfile(), c, "NCT1:inc:0", INC)
    assert v.verdict is Verdict.UNKNOWN and v.missing


def test_guard_makes_criterion_not_applicable():
    c = crit(CriterionKind.EXCLUSION, req("condition", concepts=("pregnancy",)), guards=[req("sex", sex="female")])
    male = PatientProfile(sex="male", sex_span=span("man"))
    assert check_criterion(male, c, "x", EXC).verdict is Verdict.NOT_APPLICABLE
    female = PatientProfile(sex="female", sex_span=span("woman"))
    assert check_criterion(female, c, "x", EXC).verdict is Verdict.NOT_MET


def test_unknown_verdict_names_missing_fact_and_question():
    c = crit(CriterionKind.INCLUSION, req("lab", lab="upcr", comparator=Comparator.GE, value=1.5, unit="g/g"))
    v = check_criterion(PatientProfile(), c, "x", INC)
    assert v.verdict is Verdict.UNKNOWN
    assert "urine protein-to-creatinine ratio" in v.question
    assert v.question_key == "lab:upcr" and "upcr" in v.missing


def test_the_fast_context_copy_equals_dataclasses_replace():
    from dataclasses import replace

    from assistant.matching.checks import _evolve

    ctx = CheckContext(CriterionKind.EXCLUSION, study_concepts=frozenset({"lupus"}), absence_is_phrasing=True)
    changed = _evolve(ctx, closed_world=True, rule_out=True)
    assert changed == replace(ctx, closed_world=True, rule_out=True)
    assert changed is not ctx and not ctx.closed_world and changed.study_concepts == frozenset({"lupus"})
