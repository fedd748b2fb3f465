from __future__ import annotations

import pytest
import spacy

from models.domain import Span as TextSpan
from nlp.components.demographics import extract_ages, read_age, read_sex


@pytest.fixture(scope="module")
def nlp():
    pipeline = spacy.blank("en")
    pipeline.add_pipe("ctm_demographics")
    return pipeline


def ages(nlp, text: str) -> list[dict]:
    doc = nlp(text)
    return [span._.ctm_age for span in doc.spans["ctm_age"]]


def only_age(nlp, text: str) -> dict:
    found = ages(nlp, text)
    assert len(found) == 1, (text, found)
    return found[0]


# --------------------------------------------------------------------------- patient ages


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("A 61-year-old man with dermatomyositis", 61.0),
        ("63 year old female, former smoker", 63.0),
        ("38 yo woman referred for nephritis", 38.0),
        ("38 y/o F referred by her GP", 38.0),
        ("29F with new malar rash", 29.0),
        ("44M, lupus since his teens", 44.0),
        ("F, 57, with Sjogren syndrome", 57.0),
        ("Patient aged 71 with CKD", 71.0),
        ("age 33, G2P1", 33.0),
        ("A baby boy aged 9 months", 0.75),
        ("an 18-month-old with fever", 1.5),
    ],
)
def test_patient_age(nlp, text: str, years: float) -> None:
    age = only_age(nlp, text)
    assert age["years"] == pytest.approx(years)
    assert age["comparator"] == "="


def test_seven_months_is_about_058_years(nlp) -> None:
    assert only_age(nlp, "Infant girl aged 7 months")["years"] == pytest.approx(0.58)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("a woman in her 30s", 30.0, 39.0),
        ("a man in his mid-50s", 53.0, 57.0),
        ("patient in her late 20s", 27.0, 29.0),
        ("early 70s, retired", 70.0, 73.0),
        ("a man in his sixties", 60.0, 69.0),
    ],
)
def test_decade_ranges(nlp, text: str, low: float, high: float) -> None:
    age = only_age(nlp, text)
    assert (age["years"], age["low"], age["high"]) == (None, low, high)


def test_decades_of_the_calendar_are_not_ages(nlp) -> None:
    assert ages(nlp, "She moved here in the 1990s and loved 80s music") == []


def test_age_at_an_event_is_not_the_current_age(nlp) -> None:
    assert ages(nlp, "He was diagnosed with SLE at age 19 and at the age of 25 had nephritis") == []


def test_durations_are_not_ages(nlp) -> None:
    assert ages(nlp, "Lupus for 12 years; prednisone for 3 years; SLE diagnosed ≥ 5 years ago") == []


def test_family_ages_are_flagged_and_skipped_by_read_age(nlp) -> None:
    text = "Her 72-year-old mother has RA. She is a 45-year-old teacher."
    doc = nlp(text)
    found = [span._.ctm_age for span in doc.spans["ctm_age"]]
    assert [a["family"] for a in found] == [True, False]
    age = read_age(doc)
    assert age["years"] == 45.0
    start = text.index("45-year-old")
    assert age["span"] == TextSpan(start, start + 11, "45-year-old")


# --------------------------------------------------------------------------- criterion ages


@pytest.mark.parametrize(
    ("text", "low", "high", "low_inclusive", "high_inclusive"),
    [
        ("Adults aged 21-64 years", 21.0, 64.0, True, True),
        ("Participants between 16 and 80 years of age", 16.0, 80.0, True, True),
        ("Between 18 and 75 years", 18.0, 75.0, True, True),
        ("Patients aged > 18 and < 65 years", 18.0, 65.0, False, False),
        ("Children aged 6 months to 11 years", 0.5, 11.0, True, True),
    ],
)
def test_criterion_age_ranges(nlp, text, low, high, low_inclusive, high_inclusive) -> None:
    age = only_age(nlp, text)
    assert (age["low"], age["high"]) == (pytest.approx(low), high)
    assert (age["low_inclusive"], age["high_inclusive"]) == (low_inclusive, high_inclusive)
    assert age["comparator"] is None and age["years"] is None


@pytest.mark.parametrize(
    ("text", "comparator", "low", "high"),
    [
        ("Men and women 21 years and older", ">=", 21.0, None),
        ("Aged 16 years or older", ">=", 16.0, None),
        (">= 18 years of age at the time of consent", ">=", 18.0, None),
        ("≥ 12 years of age", ">=", 12.0, None),
        ("Age ≥ 40", ">=", 40.0, None),
        ("Patients older than 70", ">", 70.0, None),
        ("must be over the age of 21", ">", 21.0, None),
        ("Children under 10", "<", None, 10.0),
        ("Patients younger than 80 years", "<", None, 80.0),
        ("Age up to 85 years", "<=", None, 85.0),
        ("Adults", ">=", 18.0, None),
    ],
)
def test_criterion_age_bounds(nlp, text, comparator, low, high) -> None:
    age = only_age(nlp, text)
    assert (age["comparator"], age["low"], age["high"]) == (comparator, low, high)


def test_adults_gives_way_to_a_number(nlp) -> None:
    found = ages(nlp, "Adult patients aged 30-60 years")
    assert [(a["low"], a["high"]) for a in found] == [(30.0, 60.0)]


def test_adult_onset_is_not_an_age(nlp) -> None:
    assert ages(nlp, "Adult-onset Still's disease") == []


def test_extract_ages_is_pure_text() -> None:
    found = extract_ages("a 50-year-old")
    assert (found[0].start, found[0].end, found[0].years) == (2, 13, 50.0)


# --------------------------------------------------------------------------- sex


def sexes(nlp, text: str) -> list[tuple[str, str, str, bool]]:
    doc = nlp(text)
    return [(s.text, s._.ctm_sex, s._.ctm_sex_strength, s._.ctm_childbearing) for s in doc.spans["ctm_sex"]]


def test_explicit_sex_words(nlp) -> None:
    assert sexes(nlp, "A 40-year-old lady") == [("lady", "female", "explicit", False)]
    assert sexes(nlp, "Gentleman with gout") == [("Gentleman", "male", "explicit", False)]


def test_sex_letters_next_to_ages(nlp) -> None:
    assert [x[1] for x in sexes(nlp, "27F with arthralgia")] == ["female"]
    assert [x[1] for x in sexes(nlp, "66 yo M with CKD")] == ["male"]
    assert [x[1] for x in sexes(nlp, "F, 31, nurse")] == ["female"]


def test_temperature_in_fahrenheit_is_not_a_sex(nlp) -> None:
    assert sexes(nlp, "Temperature 101 F overnight") == []
    assert ages(nlp, "Temperature 101 F overnight") == []


def test_pronouns_are_weaker_evidence(nlp) -> None:
    text = "She reports joint pain; her sister has lupus. Patient is a man?"
    start = text.index("man?")
    assert read_sex(nlp(text)) == ("male", TextSpan(start, start + 3, "man"))
    doc = nlp("She reports joint pain and her knees swell; he (her husband) drove her in.")
    sex, span = read_sex(doc)
    assert (sex, span.text) == ("female", "She")


def test_read_sex_none_without_evidence(nlp) -> None:
    assert read_sex(nlp("Lupus nephritis class IV")) is None


def test_all_sexes_in_criteria(nlp) -> None:
    assert sexes(nlp, "Men and women aged 18 to 70") == [("Men and women", "all", "explicit", False)]
    assert [x[1] for x in sexes(nlp, "Both sexes are eligible")] == ["all"]
    assert [x[1] for x in sexes(nlp, "Male or female patients")] == ["all"]


def test_female_patients_criterion(nlp) -> None:
    doc = nlp("Female patients aged 18 years or older")
    assert [(s.text, s._.ctm_sex) for s in doc.spans["ctm_sex"]] == [("Female", "female")]
    assert read_age(doc)["low"] == 18.0


def test_childbearing_potential_is_flagged(nlp) -> None:
    found = sexes(nlp, "Women of childbearing potential must have a negative pregnancy test")
    assert found == [("Women of childbearing potential", "female", "explicit", True)]
    assert [x[3] for x in sexes(nlp, "WOCBP must use contraception")] == [True]
    assert read_sex(nlp("WOCBP must use contraception")) is None


def test_family_sex_words_are_not_the_patient(nlp) -> None:
    doc = nlp("She came with her son, a 20-year-old man.")
    assert read_sex(doc)[0] == "female"


@pytest.mark.parametrize(
    "text", ["", " ", "🧬👩‍⚕️", "5" * 10_000, "F, " * 3000, "age " * 3000, "in her " * 2000, "she " * 5000]
)
def test_garbage_input_does_not_crash(nlp, text: str) -> None:
    doc = nlp(text)
    assert read_age(doc) is None or isinstance(read_age(doc), dict)
    read_sex(doc)


@pytest.mark.parametrize("text", ["Singleton pregnancy, gestational age below 30 weeks",
                                  "Bone age of 12 years on X-ray", "corrected age 6 months"])
def test_the_age_of_a_pregnancy_or_a_bone_is_not_the_persons_age(text):
    from nlp.components.demographics import extract_ages

    assert extract_ages(text) == []
