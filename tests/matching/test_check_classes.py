"""Classes of verdict errors, each on its own hand-made example (no NLP: profiles and parses built by hand)."""
from __future__ import annotations

from assistant.matching.checks import CheckContext, check_criterion
from assistant.matching.ranking import evaluate_trial
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
    TherapyFact,
    TrialRecord,
    Verdict,
)

INC, EXC = CriterionKind.INCLUSION, CriterionKind.EXCLUSION


def is_a(concept: str, ancestor: str) -> bool:
    return (concept, ancestor) in {("relapsing remitting multiple sclerosis", "multiple sclerosis")}


def at(text: str, part: str) -> Span:
    i = text.lower().index(part.lower())
    return Span(i, i + len(part), text[i:i + len(part)])


def crit(kind, text, *reqs, logic="all", guards=(), parsed=True, cohort=None, position=0) -> CriterionText:
    return CriterionText(kind=kind, position=position, text=text, cohort=cohort,
                         parsed=ParsedCriterion(text=text, requirements=reqs, logic=logic, parsed=parsed,
                                                guards=tuple(guards)))


def verdict(profile, criterion, **ctx):
    return check_criterion(profile, criterion, "t:1", CheckContext(criterion.kind, is_a, **ctx))


def drug(note: str, name: str, cls: tuple[str, ...] = (), **kw) -> TherapyFact:
    return TherapyFact(name=name, span=at(note, name), classes=cls, **kw)


def test_dose_cap_compares_the_daily_dose():
    text = "Receiving hydrocortisone > 30 mg/day"
    req = Requirement(type="therapy", span=at(text, "hydrocortisone > 30 mg/day"), concepts=("hydrocortisone",),
                      comparator=Comparator.GT, value=30.0, unit="mg/day")
    high = "She takes hydrocortisone 40 mg daily."
    low = "She takes hydrocortisone 20 mg daily."
    assert verdict(PatientProfile(text=high, therapies=(drug(high, "hydrocortisone", dose_mg_day=40.0),)),
                   crit(EXC, text, req)).verdict is Verdict.MET
    assert verdict(PatientProfile(text=low, therapies=(drug(low, "hydrocortisone", dose_mg_day=20.0),)),
                   crit(EXC, text, req)).verdict is Verdict.NOT_MET
    undosed = "She takes hydrocortisone."
    v = verdict(PatientProfile(text=undosed, therapies=(drug(undosed, "hydrocortisone"),)), crit(EXC, text, req))
    assert v.verdict is Verdict.UNKNOWN and "daily dose" in v.missing


def test_a_stable_dose_must_be_stated():
    text = "Stable dose of hydroxychloroquine"
    req = Requirement(type="therapy", span=at(text, "hydroxychloroquine"), concepts=("hydroxychloroquine",),
                      modifiers=("stable",))
    said = "On hydroxychloroquine, dose unchanged for a year."
    unsaid = "On hydroxychloroquine."
    assert verdict(PatientProfile(text=said, therapies=(drug(said, "hydroxychloroquine"),)),
                   crit(INC, text, req)).verdict is Verdict.MET
    v = verdict(PatientProfile(text=unsaid, therapies=(drug(unsaid, "hydroxychloroquine"),)), crit(INC, text, req))
    assert v.verdict is Verdict.UNKNOWN and "stable" in v.missing


def test_a_guard_decides_even_when_the_body_was_not_structured():
    text = "For participants on warfarin: INR monitoring arranged with the anticoagulation clinic"
    guard = Requirement(type="therapy", span=at(text, "warfarin"), concepts=("warfarin",))
    criterion = crit(INC, text, guards=(guard,), parsed=False)
    v = verdict(PatientProfile(text="No anticoagulants. Has asthma."), criterion)
    assert v.verdict is Verdict.NOT_APPLICABLE


def test_an_undated_diagnosis_does_not_meet_a_dated_diagnosis_window_but_a_dated_biopsy_does():
    text = "Sarcoidosis confirmed by biopsy within 3 months"
    req = Requirement(type="condition", span=at(text, "Sarcoidosis"), concepts=("sarcoidosis",), within_days=90.0)
    note = "Pulmonary sarcoidosis."
    undated = PatientProfile(text=note, conditions=(ConditionFact("sarcoidosis", at(note, "sarcoidosis")),))
    v = verdict(undated, crit(INC, text, req))
    assert v.verdict is Verdict.UNKNOWN and v.missing
    assert v.question == "When was sarcoidosis diagnosed?"
    note2 = "Sarcoidosis; lymph node biopsy 5 weeks ago."
    dated = PatientProfile(text=note2, conditions=(
        ConditionFact("sarcoidosis", at(note2, "Sarcoidosis")),
        ConditionFact("lymph node biopsy", at(note2, "lymph node biopsy"), days_ago=35.0)))
    assert verdict(dated, crit(INC, text, req)).verdict is Verdict.MET


def test_a_denied_drug_class_settles_a_count():
    text = "At least one prior TNF inhibitor"
    req = Requirement(type="therapy_count", span=at(text, "TNF inhibitor"), classes=("tnf_inhibitor",), min_count=1)
    note = "She has never received any tnf_inhibitor."
    profile = PatientProfile(text=note, therapies=(
        TherapyFact(name="tnf_inhibitor", span=at(note, "tnf_inhibitor"), context=Context(negated=True)),))
    assert verdict(profile, crit(INC, text, req)).verdict is Verdict.NOT_MET


def test_the_measured_one_of_two_equivalent_measures_decides():
    text = "UPCR >= 1 g/g or 24-hour proteinuria >= 1 g/day, and <= 5 by either measure"
    reqs = (Requirement(type="lab", span=at(text, "UPCR >= 1 g/g"), lab="upcr", comparator=Comparator.GE, value=1.0,
                        value_high=5.0, unit="g/g"),
            Requirement(type="lab", span=at(text, "24-hour proteinuria >= 1 g/day"), lab="proteinuria",
                        comparator=Comparator.GE, value=1.0, value_high=5.0, unit="g/day"))
    note = "UPCR 6.2 g/g"
    profile = PatientProfile(text=note, labs=(LabFact(name="upcr", span=at(note, "UPCR 6.2 g/g"), value=6.2,
                                                       unit="g/g", normalized_value=6.2, normalized_unit="g/g"),))
    assert verdict(profile, crit(INC, text, *reqs, logic="any")).verdict is Verdict.NOT_MET


def test_taking_a_drug_is_not_an_allergy_to_it():
    text = "Known hypersensitivity to carboplatin"
    req = Requirement(type="therapy", span=at(text, "carboplatin"), concepts=("carboplatin",))
    note = "Received carboplatin for six cycles."
    profile = PatientProfile(text=note, therapies=(drug(note, "carboplatin"),))
    v = verdict(profile, crit(EXC, text, req))
    assert v.verdict is Verdict.NOT_MET and v.assumed
    note2 = "Anaphylaxis to carboplatin at cycle 3."
    profile2 = PatientProfile(text=note2, therapies=(drug(note2, "carboplatin"),))
    assert verdict(profile2, crit(EXC, text, req)).verdict is Verdict.MET


def test_a_trial_does_not_rule_out_the_disease_it_studies():
    text = "Progressive forms of multiple sclerosis"
    req = Requirement(type="condition", span=at(text, "multiple sclerosis"), concepts=("multiple sclerosis",))
    note = "29-year-old with multiple sclerosis, relapsing course"
    profile = PatientProfile(text=note, conditions=(ConditionFact("multiple sclerosis", at(note, "multiple sclerosis")),))
    v = verdict(profile, crit(EXC, text, req), study_concepts=frozenset({"multiple sclerosis"}))
    assert v.verdict is Verdict.UNKNOWN and "kind the criterion names" in v.missing
    assert verdict(profile, crit(EXC, text, req)).verdict is Verdict.MET  # a trial about something else


def test_sex_words_in_a_clinical_inclusion_scope_it():
    text = "Hemoglobin below 12 g/dL in women"
    reqs = (Requirement(type="lab", span=at(text, "Hemoglobin below 12 g/dL"), lab="hemoglobin",
                        comparator=Comparator.LT, value=12.0, unit="g/dL"),
            Requirement(type="sex", span=at(text, "women"), sex="female"))
    note = "58-year-old man"
    profile = PatientProfile(text=note, sex="male", sex_span=at(note, "man"))
    assert verdict(profile, crit(INC, text, *reqs)).verdict is Verdict.NOT_APPLICABLE


def test_men_or_women_is_no_sex_restriction():
    text = "Men or women aged 18 or older"
    reqs = (Requirement(type="sex", span=at(text, "women"), sex="female"),
            Requirement(type="age", span=at(text, "aged 18 or older"), value=18.0))
    note = "44-year-old man"
    profile = PatientProfile(text=note, sex="male", age_years=44, sex_span=at(note, "man"))
    assert verdict(profile, crit(INC, text, *reqs)).verdict is Verdict.MET


def test_the_patient_is_assessed_for_the_cohort_of_their_disease():
    a = "Cohort A: gout"
    b = "Cohort B: psoriasis"
    lab = "Serum urate above 8 mg/dL"
    criteria = (
        crit(INC, a, Requirement(type="condition", span=at(a, "gout"), concepts=("gout",)), cohort="A", position=0),
        crit(INC, lab, Requirement(type="lab", span=at(lab, "Serum urate above 8 mg/dL"), lab="urate",
                                   comparator=Comparator.GT, value=8.0, unit="mg/dL"), cohort="A", position=1),
        crit(INC, b, Requirement(type="condition", span=at(b, "psoriasis"), concepts=("psoriasis",)), cohort="B",
             position=2),
    )
    note = "Gout, serum urate 6 mg/dL"
    profile = PatientProfile(text=note, conditions=(ConditionFact("gout", at(note, "Gout")),), labs=(
        LabFact(name="urate", span=at(note, "serum urate 6 mg/dL"), value=6.0, unit="mg/dL", normalized_value=6.0,
                normalized_unit="mg/dL"),))
    match = evaluate_trial(profile, TrialRecord(nct_id="NCT00000009", title="t", criteria=criteria), 1.0, is_a)
    assert match.cohort == "A" and match.label.value == "ineligible"


def test_no_patients_with_x_in_an_exclusion_list_means_x_excludes():
    text = "No patients known to have sarcoidosis"
    req = Requirement(type="condition", span=at(text, "sarcoidosis"), concepts=("sarcoidosis",), present=False)
    note = "Sarcoidosis diagnosed last year."
    with_it = PatientProfile(text=note, conditions=(ConditionFact("sarcoidosis", at(note, "Sarcoidosis")),))
    assert verdict(with_it, crit(EXC, text, req)).verdict is Verdict.MET
    without = PatientProfile(text="Gout.")
    v = verdict(without, crit(EXC, text, req))
    assert v.verdict is Verdict.NOT_MET and v.assumed
