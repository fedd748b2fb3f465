from __future__ import annotations

import json

import pytest
import spacy

from models.domain import Comparator, LabFact
from nlp import units
from nlp.components.measurements import (
    LabRule,
    LabRulesError,
    load_lab_rules,
    measurement_to_lab_fact,
)


@pytest.fixture(scope="module")
def nlp():
    pipeline = spacy.blank("en")
    pipeline.add_pipe("ctm_measurements")
    return pipeline


def read(nlp, text: str) -> list[dict]:
    doc = nlp(text)
    return [span._.ctm_measurement for span in doc.spans["ctm_measurements"]]


def one(nlp, text: str, name: str) -> dict:
    found = [m for m in read(nlp, text) if m["name"] == name]
    assert len(found) == 1, (text, read(nlp, text))
    return found[0]


# --------------------------------------------------------------------------- patient text


def test_patient_description_values_units_and_normalization(nlp) -> None:
    text = "A 47-year-old man with lupus; UPCR 3.2 g/g, platelets 85,000/mm3, eGFR 52, creatinine 1.7 mg/dL."
    upcr = one(nlp, text, "upcr")
    assert (upcr["value"], upcr["unit"], upcr["comparator"]) == (3.2, "g/g", "=")
    platelets = one(nlp, text, "platelets")
    assert platelets["value"] == 85000
    assert platelets["unit"] == "/mm3"
    assert platelets["normalized_value"] == pytest.approx(85.0)
    assert platelets["normalized_unit"] == "10^9/L"
    egfr = one(nlp, text, "egfr")
    assert egfr["unit"] is None
    assert (egfr["normalized_value"], egfr["normalized_unit"]) == (52.0, "mL/min/1.73m2")
    creatinine = one(nlp, text, "creatinine")
    assert (creatinine["value"], creatinine["unit"], creatinine["normalized_unit"]) == (1.7, "mg/dL", "mg/dL")
    in_umol = units.convert(creatinine["value"], creatinine["unit"], "umol/L", lab="creatinine")
    assert in_umol == pytest.approx(150.28)


def test_span_covers_name_and_value(nlp) -> None:
    doc = nlp("Labs today: hemoglobin 8.7 g/dL and WBC 3.1.")
    texts = {span.label_: span.text for span in doc.spans["ctm_measurements"]}
    assert texts == {"hemoglobin": "hemoglobin 8.7 g/dL", "wbc": "WBC 3.1"}


def test_upcr_in_mg_per_mmol_is_converted_to_g_per_g(nlp) -> None:
    upcr = one(nlp, "Spot urine protein:creatinine ratio 170 mg/mmol", "upcr")
    assert upcr["unit"] == "mg/mmol"
    assert upcr["normalized_value"] == pytest.approx(1.5, abs=0.01)


def test_blood_pressure_gives_systolic_and_diastolic(nlp) -> None:
    found = read(nlp, "On exam BP 142/88, HR 96.")
    by_name = {m["name"]: m for m in found}
    assert by_name["sbp"]["value"] == 142 and by_name["dbp"]["value"] == 88
    assert by_name["heart_rate"]["value"] == 96
    assert "blood_pressure" not in by_name


def test_thousands_k_and_exponent_forms(nlp) -> None:
    assert one(nlp, "plt 72K", "platelets")["normalized_value"] == pytest.approx(72.0)
    assert one(nlp, "ANC 2.1e9/L", "anc")["normalized_value"] == pytest.approx(2.1)
    assert one(nlp, "Platelets 95 x 10^3/uL", "platelets")["normalized_value"] == pytest.approx(95.0)
    assert one(nlp, "WBC 4,800", "wbc")["normalized_value"] == pytest.approx(4.8)


def test_unitless_values_use_the_lab_rules(nlp) -> None:
    assert one(nlp, "creatinine 132", "creatinine")["normalized_value"] == pytest.approx(132 / 88.4)
    assert one(nlp, "Hb 105", "hemoglobin")["normalized_value"] == pytest.approx(10.5)
    assert one(nlp, "temp 100.4", "temperature")["normalized_value"] == pytest.approx(38.0)


def test_titers_are_reciprocals(nlp) -> None:
    ana = one(nlp, "ANA 1:320, speckled", "ana")
    assert (ana["value"], ana["unit"], ana["comparator"]) == (320.0, "titer", "=")
    criterion = one(nlp, "ANA titre ≥ 1:80 at screening", "ana")
    assert (criterion["value"], criterion["comparator"]) == (80.0, ">=")


def test_qualitative_findings_have_polarity_and_no_value(nlp) -> None:
    text = "Serology: dsDNA antibodies positive, negative anti-Sm, low complement (C3/C4); no proteinuria."
    found = {m["name"]: m for m in read(nlp, text)}
    assert found["anti_dsdna"]["polarity"] == "positive"
    assert found["anti_sm"]["polarity"] == "negative"
    assert found["c3"]["polarity"] == found["c4"]["polarity"] == "low"
    assert found["proteinuria"]["polarity"] == "negative"
    assert all(m["value"] is None and m["comparator"] is None for m in found.values())


def test_finding_words(nlp) -> None:
    found = {m["name"]: m["polarity"] for m in read(nlp, "Known thrombocytopenia and hypocomplementemia.")}
    assert found == {"platelets": "low", "c3": "low", "c4": "low"}


def test_polarity_with_titer(nlp) -> None:
    ana = one(nlp, "ANA was positive at 1:640", "ana")
    assert (ana["polarity"], ana["value"]) == ("positive", 640.0)


def test_scores(nlp) -> None:
    sledai = one(nlp, "Active disease with a SLEDAI-2K of 12", "sledai_2k")
    assert (sledai["value"], sledai["kind"], sledai["normalized_value"]) == (12.0, "score", 12.0)
    assert one(nlp, "SELENA-SLEDAI score ≥ 8 points", "sledai_2k")["comparator"] == ">="
    assert one(nlp, "Gleason 4+4", "gleason")["value"] == 8.0
    assert one(nlp, "MMSE 26/30", "mmse")["value"] == 26.0
    assert one(nlp, "30 pack-year smoker", "pack_years")["value"] == 30.0


def test_letter_grades(nlp) -> None:
    found = read(nlp, "at least one BILAG A or B domain score")
    assert [(m["name"], m["polarity"]) for m in found] == [("bilag", "A"), ("bilag", "B")]
    assert [m["polarity"] for m in read(nlp, "Child-Pugh class A")] == ["A"]


# --------------------------------------------------------------------------- criteria


@pytest.mark.parametrize(
    ("text", "name", "value", "unit", "comparator"),
    [
        ("UPCR >= 1.5 g/g", "upcr", 1.5, "g/g", ">="),
        ("UPCR \\>= 0.5 mg/mg", "upcr", 0.5, "mg/mg", ">="),
        ("Platelets < 50 x 10^9/L", "platelets", 50.0, "10^9/L", "<"),
        ("eGFR ≥ 30 mL/min/1.73m2", "egfr", 30.0, "mL/min/1.73m2", ">="),
        ("Hemoglobin at least 9 g/dL", "hemoglobin", 9.0, "g/dL", ">="),
        ("QTcF greater than 470 msec", "qtc", 470.0, "ms", ">"),
        ("Total bilirubin no more than 1.5 times the upper limit of normal", "bilirubin", 1.5, "x ULN", "<="),
        ("HbA1c of 10% or higher", "hba1c", 10.0, "%", ">="),
        ("BMI below 40 kg/m²", "bmi", 40.0, "kg/m2", "<"),
        ("LVEF under 45%", "lvef", 45.0, "%", "<"),
        ("CD19+ B cells exceeding 20 cells/µL", "cd19_b_cells", 20.0, "cells/uL", ">"),
        ("Serum IgG up to 1600 mg/dL", "igg", 1600.0, "mg/dL", "<="),
        ("Weight 45 kg or less", "weight", 45.0, "kg", "<="),
        ("ALT above 3 × ULN", "alt", 3.0, "x ULN", ">"),
        ("ANC more than 1,000/µL", "anc", 1000.0, "/uL", ">"),
    ],
)
def test_criterion_comparators(nlp, text, name, value, unit, comparator) -> None:
    found = one(nlp, text, name)
    assert (found["value"], found["unit"], found["comparator"]) == (value, unit, comparator)


def test_shared_value_for_coordinated_labs(nlp) -> None:
    found = {m["name"]: m for m in read(nlp, "ALT or AST > 2.5 x ULN")}
    assert set(found) == {"alt", "ast"}
    for fact in found.values():
        assert (fact["value"], fact["unit"], fact["comparator"]) == (2.5, "x ULN", ">")
        assert (fact["normalized_value"], fact["normalized_unit"]) == (2.5, "x ULN")


def test_alt_x_uln(nlp) -> None:
    alt = one(nlp, "ALT > 3 x ULN", "alt")
    assert (alt["value"], alt["unit"], alt["comparator"]) == (3.0, "x ULN", ">")


@pytest.mark.parametrize(
    ("text", "name", "low", "high"),
    [
        ("ECOG 0-1", "ecog", 0.0, 1.0),
        ("ECOG performance status 0 or 1", "ecog", 0.0, 1.0),
        ("Karnofsky 70 to 100", "karnofsky", 70.0, 100.0),
        ("Proteinuria between 0.5 and 3.5 g/24 h", "proteinuria", 0.5, 3.5),
        ("24-hour urine protein 1-5 g/day", "proteinuria", 1.0, 5.0),
        ("BMI ≥ 18 and ≤ 32 kg/m2", "bmi", 18.0, 32.0),
    ],
)
def test_ranges(nlp, text, name, low, high) -> None:
    found = one(nlp, text, name)
    assert (found["value"], found["value_high"], found["comparator"]) == (low, high, ">=")


def test_range_normalizes_both_ends(nlp) -> None:
    found = one(nlp, "Proteinuria between 500 and 3000 mg/24h", "proteinuria")
    assert (found["normalized_value"], found["normalized_value_high"]) == (0.5, 3.0)


def test_criterion_line_with_several_labs(nlp) -> None:
    text = (
        "Adequate organ function: ANC ≥ 1.5 × 10⁹/L, platelets ≥ 100,000/mm3, "
        "serum creatinine ≤ 1.5 × ULN or creatinine clearance ≥ 50 mL/min"
    )
    found = {m["name"]: m for m in read(nlp, text)}
    assert found["anc"]["normalized_value"] == pytest.approx(1.5)
    assert found["platelets"]["normalized_value"] == pytest.approx(100.0)
    assert (found["creatinine"]["value"], found["creatinine"]["unit"]) == (1.5, "x ULN")
    clearance = found["creatinine_clearance"]
    assert (clearance["value"], clearance["comparator"]) == (50.0, ">=")


def test_words_that_are_not_values(nlp) -> None:
    assert read(nlp, "Prednisone 10 mg daily and mycophenolate 2 g/day for 3 years.") == []
    assert read(nlp, "Urine protein 2+ on dipstick")[0]["unit"] == "dipstick"
    assert read(nlp, "Meets ACR 1997 criteria; QLQ-C30 completed") == []


# --------------------------------------------------------------------------- helper and extension


def test_measurement_to_lab_fact(nlp) -> None:
    doc = nlp("Platelets < 50 x 10^9/L")
    fact = measurement_to_lab_fact(doc.spans["ctm_measurements"][0])
    assert isinstance(fact, LabFact)
    assert (fact.name, fact.value, fact.unit, fact.comparator) == ("platelets", 50.0, "10^9/L", Comparator.LT)
    assert (fact.span.start, fact.span.end, fact.span.text) == (0, 23, "Platelets < 50 x 10^9/L")
    assert fact.normalized_value == 50.0


def test_qualitative_lab_fact_has_polarity_and_no_value(nlp) -> None:
    doc = nlp("ANA positive")
    fact = measurement_to_lab_fact(doc.spans["ctm_measurements"][0])
    assert fact is not None and (fact.name, fact.value, fact.polarity) == ("ana", None, "positive")


def test_spans_sharing_text_keep_their_own_values(nlp) -> None:
    doc = nlp("BP 150/95")
    spans = doc.spans["ctm_measurements"]
    assert [s.text for s in spans] == ["BP 150/95", "BP 150/95"]
    assert [(s.label_, s._.ctm_measurement["value"]) for s in spans] == [("sbp", 150.0), ("dbp", 95.0)]
    assert doc[0:2]._.ctm_measurement is None


@pytest.mark.parametrize(
    "text",
    ["", " ", "😀🩺🔥", "9" * 10_000, "Hb " + "9" * 10_000, "platelets " + "1,000" * 2000,
     "ALT " + "or AST " * 500 + "> 3 x ULN", "UPCR " + "≥" * 3000, "eGFR " + " - " * 2000 + "30",
     "BP " + "150/" * 2000, "ANA 1:" + "1" * 60, "x" * 20_000],
)
def test_garbage_input_does_not_crash(nlp, text) -> None:
    doc = nlp(text)
    for span in doc.spans["ctm_measurements"]:
        fact = span._.ctm_measurement
        assert fact["value"] is None or fact["value"] == fact["value"]  # finite, not NaN


# --------------------------------------------------------------------------- rules


def test_bundled_rules_are_consistent() -> None:
    rules = load_lab_rules()
    unit_rules = units.load_unit_rules()
    assert {"upcr", "platelets", "egfr", "sledai_2k", "ecog", "sbp", "dbp", "ana"} <= set(rules.labs)
    for lab in rules.labs.values():
        if lab.canonical_unit is not None:
            assert units.normalize_unit(lab.canonical_unit, unit_rules) == lab.canonical_unit, lab.name
        for _, unit in lab.unitless:
            if unit is not None and lab.canonical_unit is not None:
                assert units.convert(1.0, unit, lab.canonical_unit, lab=lab.name) is not None, lab.name


def test_lab_rule_rejects_unknown_keys() -> None:
    with pytest.raises(LabRulesError, match=r"my\.json: lab 'x': unknown keys \['synonym'\]"):
        LabRule.from_dict({"name": "x", "kind": "lab", "synonym": ["X"]}, "my.json")
    with pytest.raises(LabRulesError, match="kind"):
        LabRule.from_dict({"name": "x", "kind": "thing", "synonyms": ["X"]}, "my.json")


def test_labs_file_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "labs_bad.json"
    lab = {"name": "a", "kind": "lab", "synonyms": ["a"], "expands_to": ["b"]}
    path.write_text(json.dumps({"labs": [lab]}))
    with pytest.raises(LabRulesError, match=r"labs_bad\.json.*unknown lab 'b'"):
        load_lab_rules(str(path))
    path.write_text(json.dumps({"labs": [], "lab": []}))
    with pytest.raises(LabRulesError, match=r"labs_bad\.json: unknown keys \['lab'\]"):
        load_lab_rules.__wrapped__(str(path))


def test_component_reads_a_custom_labs_file(tmp_path) -> None:
    path = tmp_path / "labs.json"
    path.write_text(json.dumps({"labs": [{"name": "zinc", "kind": "lab", "canonical_unit": "ug/dL",
                                          "synonyms": ["zinc", "serum zinc"]}]}))
    pipeline = spacy.blank("en")
    pipeline.add_pipe("ctm_measurements", config={"labs_path": str(path)})
    doc = pipeline("Serum zinc 65 ug/dL, platelets 90")
    spans = doc.spans["ctm_measurements"]
    assert [(s.label_, s._.ctm_measurement["value"]) for s in spans] == [("zinc", 65.0)]


# --------------------------------------------------------------------------- autoantibodies and bare names


@pytest.mark.parametrize("text", [
    "Serology: positive anti-THSD7A",  # criterion style: result before the test
    "anti-THSD7A antibodies positive",  # patient style: result after the test
    "her anti-THSD7A antibody was positive in March",
    "THSD7A antibody: positive",
])
def test_antibody_polarity_reads_both_ways(nlp, text: str) -> None:
    assert one(nlp, text, "anti_thsd7a")["polarity"] == "positive"


@pytest.mark.parametrize("text, polarity", [
    ("anti-SSB antibodies were negative", "negative"),
    ("negative anti-GBM antibody", "negative"),
    ("Anti-U1 RNP positive", "positive"),
])
def test_added_autoantibodies_are_known(nlp, text: str, polarity: str) -> None:
    assert [m["polarity"] for m in read(nlp, text)] == [polarity]


def test_patient_fact_from_trailing_antibody_result(nlp) -> None:
    doc = nlp("anti-phospholipase A2 receptor antibody was positive (92 RU/mL)")
    facts = [measurement_to_lab_fact(s) for s in doc.spans["ctm_measurements"]]
    assert [(f.name, f.polarity) for f in facts if f] == [("anti_pla2r", "positive")]


def test_bare_lab_names_are_kept_as_mentions_only(nlp) -> None:
    from nlp.components.measurements import MENTIONS_KEY

    doc = nlp("C3 below LLN, or anti-Ro")
    assert [s.label_ for s in doc.spans[MENTIONS_KEY]] == ["c3", "anti_ro"]
    assert [s.label_ for s in doc.spans["ctm_measurements"]] == ["c3"]  # a bare name is no measurement


@pytest.mark.parametrize("text, comparator", [("≤ 5", "<="), ("no more than 5", "<="), ("exceeding 5", ">"),
                                               ("at least 5", ">="), ("5", None)])
def test_read_comparator(text: str, comparator: str | None) -> None:
    from nlp.components.measurements import read_comparator

    found = read_comparator(text)
    assert (found[0] if found else None) == comparator


# --------------------------------------------------------------------------- restated values and titres


@pytest.mark.parametrize(
    ("text", "name", "value"),
    [
        ("Her latest UACR was measured at 410 mg/g.", "uacr", 410.0),
        ("Serum albumin has slowly climbed back to 3.4 g/dL.", "albumin", 3.4),
        ("His hemoglobin this morning 9.8 g/dL, stable.", "hemoglobin", 9.8),
        ("The GFR currently sits at 61.", "egfr", 61.0),
        ("platelet count recently dropped to 88 x10^9/L", "platelets", 88.0),
        ("bilirubin has gone up to 2.3 mg/dL", "bilirubin", 2.3),
    ],
)
def test_value_restated_after_filler_words(nlp, text: str, name: str, value: float) -> None:
    assert one(nlp, text, name)["value"] == pytest.approx(value)


def test_filler_run_is_bounded_and_stops_at_names_and_clause_ends(nlp) -> None:
    # another lab name between: the value belongs to the second lab only
    found = {m["name"]: m for m in read(nlp, "albumin was checked, creatinine was 1.2 mg/dL")}
    assert "albumin" not in found or found["albumin"]["value"] is None
    assert found["creatinine"]["value"] == pytest.approx(1.2)
    # a clause end between the name and a number
    assert [m for m in read(nlp, "Hemoglobin was repeated. 3 units transfused.") if m["value"] is not None] == []
    # too many words between
    assert read(nlp, "creatinine has been very carefully and repeatedly watched closely for 2 years") == []
    # counts of times or events are not values
    assert read(nlp, "ALT was checked 4 times") == []
    # polarity words keep their meaning
    assert one(nlp, "anti-dsDNA was negative 2 weeks ago", "anti_dsdna")["polarity"] == "negative"


@pytest.mark.parametrize(
    "text",
    [
        "SLEDAI-2K 14, ANA 1:640.",
        "PGA 1.5, ANA 1:640; C3 low",
        "BILAG B, SLEDAI 6, ANA 1 : 640",
        "ANA titre 1:640.",
    ],
)
def test_titre_is_one_value_anywhere(nlp, text: str) -> None:
    ana = one(nlp, text, "ana")
    assert (ana["value"], ana["unit"]) == (640.0, "titer")


def test_ratio_like_number_is_not_a_plain_value(nlp) -> None:
    assert [m for m in read(nlp, "creatinine 1:40 dilution") if m["value"] == 1.0] == []
