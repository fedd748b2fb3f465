"""Criterion text -> ParsedCriterion on the real pipeline: lists, coordination, dose caps, guards.

Examples are written for these tests (not copied from any trial); each test names the principle it checks.
"""
from __future__ import annotations

import pytest

from models.domain import Comparator, ParsedCriterion, Requirement, parsed_from_dict, parsed_to_dict
from nlp.criterion_parser import parse_criteria


def parse(nlp, text: str) -> ParsedCriterion:
    return parse_criteria(nlp, [text])[0]


def of_type(parsed: ParsedCriterion, kind: str) -> list[Requirement]:
    return [r for r in parsed.requirements if r.type == kind]


def concepts(parsed: ParsedCriterion) -> list[str]:
    return [c for r in of_type(parsed, "condition") for c in r.concepts]


# --------------------------------------------------------------------------- 1. lists of alternative tests


def test_every_item_of_an_or_list_of_tests_is_a_requirement(nlp) -> None:
    parsed = parse(nlp, "anti-Ro positive, ANA titre >= 1:320, or anti-La")
    assert parsed.logic == "any"
    labs = {r.lab: r for r in of_type(parsed, "lab")}
    assert set(labs) == {"anti_ro", "ana", "anti_la"}
    assert labs["anti_la"].qualifier == "positive"  # a bare item takes the result of its list
    assert labs["ana"].value == 320 and labs["ana"].comparator is Comparator.GE


def test_bare_antibody_next_to_a_numeric_threshold_must_be_positive(nlp) -> None:
    parsed = parse(nlp, "ANA >= 1:40 or anti-RNP")
    assert parsed.logic == "any"
    assert [(r.lab, r.qualifier) for r in of_type(parsed, "lab")][-1] == ("anti_rnp", "positive")


def test_shared_trailing_result_covers_grouped_tests(nlp) -> None:
    parsed = parse(nlp, "platelets < 50,000/mm3 or anti-SSA or anti-SSB negative")
    got = {(r.lab, r.qualifier) for r in of_type(parsed, "lab") if r.value is None}
    assert got == {("anti_ro", "negative"), ("anti_la", "negative")}


def test_bare_lab_not_in_a_list_is_not_a_requirement(nlp) -> None:
    parsed = parse(nlp, "ANA >= 1:80; an ECG will be recorded and anti-Ro results reviewed by the sponsor")
    assert [r.lab for r in of_type(parsed, "lab")] == ["ana"]


@pytest.mark.parametrize("text", ["positive anti-THSD7A serology", "anti-THSD7A antibodies positive"])
def test_antibody_criterion_polarity_both_orders(nlp, text: str) -> None:
    labs = of_type(parse(nlp, text), "lab")
    assert [(r.lab, r.qualifier) for r in labs] == [("anti_thsd7a", "positive")]


# --------------------------------------------------------------------------- 2. coordinated pre-modifiers


def test_coordinated_adjectives_share_the_head_noun(nlp) -> None:
    parsed = parse(nlp, "Uncontrolled fungal or viral infection at screening")
    assert parsed.logic == "any"
    assert set(concepts(parsed)) == {"fungal infection", "viral infection"}
    assert all("uncontrolled" in r.modifiers for r in of_type(parsed, "condition"))  # shared modifier too


def test_an_unknown_combination_is_not_invented(nlp) -> None:
    parsed = parse(nlp, "Fever or bacterial infection")
    assert "fever infection" not in concepts(parsed)


# --------------------------------------------------------------------------- 3. dose caps and ranges


@pytest.mark.parametrize("text, comparator, value", [
    ("Currently taking methylprednisolone > 8 mg/day", Comparator.GT, 8.0),
    ("On prednisolone at a dose of no more than 12.5 mg daily", Comparator.LE, 12.5),
    ("Receiving more than 1 g/day of mycophenolate mofetil", Comparator.GT, 1000.0),
])
def test_dose_next_to_a_drug_is_kept_on_the_therapy(nlp, text: str, comparator: Comparator, value: float) -> None:
    therapies = of_type(parse(nlp, text), "therapy")
    assert len(therapies) == 1
    assert (therapies[0].comparator, therapies[0].value, therapies[0].unit) == (comparator, value, "mg/day")


def test_equivalent_dose_means_the_drug_class(nlp) -> None:
    parsed = parse(nlp, "Systemic glucocorticoids above 25 mg/day prednisone-equivalent")
    (therapy,) = of_type(parsed, "therapy")
    assert "corticosteroid" in therapy.classes and "prednisone" not in therapy.concepts
    assert (therapy.value, therapy.qualifier) == (25.0, "prednisone_equivalent")


def test_dose_range_keeps_the_upper_bound(nlp) -> None:
    (therapy,) = of_type(parse(nlp, "Stable hydroxychloroquine 200-400 mg/day"), "therapy")
    assert (therapy.value, therapy.value_high) == (200.0, 400.0)


@pytest.mark.parametrize("text, low, high", [
    ("UPCR of at least 0.75 g/g and no more than 5 g/g", 0.75, 5.0),
    ("eGFR between 25 and 75 mL/min/1.73 m2", 25.0, 75.0),
])
def test_lab_range_keeps_the_upper_bound(nlp, text: str, low: float, high: float) -> None:
    (lab,) = of_type(parse(nlp, text), "lab")
    assert (lab.value, lab.value_high) == (low, high)


def test_dose_fields_survive_serialization(nlp) -> None:
    parsed = parse(nlp, "taking dexamethasone > 4 mg/day")
    again = parsed_from_dict(parsed.text, parsed_to_dict(parsed))
    assert again.requirements == parsed.requirements


# --------------------------------------------------------------------------- 4. conditional criteria


@pytest.mark.parametrize("text", [
    "For subjects receiving azathioprine: a stable dose for 10 weeks before day 1",
    "If on azathioprine, the dose must have been stable for 10 weeks",
    "Participants taking azathioprine must be on a stable regimen for 10 weeks",
])
def test_therapy_guard_and_stable_dose_body(nlp, text: str) -> None:
    parsed = parse(nlp, text)
    assert [(g.type, g.concepts) for g in parsed.guards] == [("therapy", ("azathioprine",))]
    (body,) = parsed.requirements
    assert (body.type, body.concepts, body.modifiers, body.min_days_ago) == (
        "therapy", ("azathioprine",), ("stable",), 70.0)


def test_guard_with_a_dose_cap_body(nlp) -> None:
    parsed = parse(nlp, "If treated with prednisolone, dose must not exceed 15 mg/day")
    assert [g.concepts for g in parsed.guards] == [("prednisolone",)]
    (body,) = parsed.requirements
    assert (body.comparator, body.value, body.unit) == (Comparator.LE, 15.0, "mg/day")
    assert parsed.guards[0].value is None  # the guard only says whom the criterion is about


def test_equivalent_dose_in_a_guarded_body_caps_the_guard_class(nlp) -> None:
    parsed = parse(nlp, "In patients receiving oral steroids, the prednisolone (or equivalent) dose must be "
                        "<= 20 mg/day and stable for >= 21 days")
    (body,) = parsed.requirements
    assert body.classes == parsed.guards[0].classes and "prednisolone" not in body.concepts
    assert (body.comparator, body.value, body.qualifier) == (Comparator.LE, 20.0, "prednisone_equivalent")
    assert (body.modifiers, body.min_days_ago) == (("stable",), 21.0)


def test_excepted_drug_is_not_part_of_the_guard(nlp) -> None:
    parsed = parse(nlp, "For subjects on immunosuppressants (other than glucocorticoids), doses must be stable "
                        "for 6 weeks")
    assert parsed.guards and "corticosteroid" not in parsed.guards[0].classes


def test_guard_with_an_own_requirement_body(nlp) -> None:
    parsed = parse(nlp, "Patients receiving tacrolimus must have eGFR >= 40 mL/min/1.73 m2")
    assert [g.concepts for g in parsed.guards] == [("tacrolimus",)]
    assert [r.lab for r in parsed.requirements] == ["egfr"]


# --------------------------------------------------------------------------- 5. manifestation lists


def test_disease_qualifying_a_manifestation_list_is_context(nlp) -> None:
    parsed = parse(nlp, "Active lupus-associated organ involvement, including: nephritis, pericarditis, "
                        "arthritis, or cardiac")
    assert parsed.logic == "any"
    found = concepts(parsed)
    assert "systemic lupus erythematosus" not in found
    assert {"arthritis", "glomerulonephritis"} <= set(found)
    assert len(found) == 4  # the organ adjective "cardiac" stands for cardiac involvement
    assert all("active" in r.modifiers for r in of_type(parsed, "condition"))


def test_disease_without_a_list_stays_a_requirement(nlp) -> None:
    assert "systemic lupus erythematosus" in concepts(parse(nlp, "Active lupus with organ involvement"))
