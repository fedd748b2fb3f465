"""Unit tests for ``nlp.criteria.split_criteria`` on real ClinicalTrials.gov criteria text.

The ``fixtures/criteria/NCT*.txt`` files are verbatim ``eligibilityCriteria``
strings copied from ClinicalTrials.gov records (public-domain registry text);
``synthetic_*.txt`` are small hand-written inputs for the cohort/nesting rules.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from models.domain import CriterionKind, CriterionText
from nlp.criteria import split_criteria

INC = CriterionKind.INCLUSION
EXC = CriterionKind.EXCLUSION

FIXTURES = Path(__file__).parent / "fixtures" / "criteria"
REPO = Path(__file__).parents[2]
SEEDS = REPO / "data" / "trials" / "seeds"
STUDIES = Path(__file__).parents[3] / "shared" / "trials" / "studies.jsonl"


def load(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text(encoding="utf-8")


def split(name: str) -> list[CriterionText]:
    return split_criteria(load(name))


def of_kind(crits: list[CriterionText], kind: CriterionKind) -> list[CriterionText]:
    return [c for c in crits if c.kind is kind]


def texts(crits: list[CriterionText], kind: CriterionKind) -> list[str]:
    return [c.text for c in of_kind(crits, kind)]


def find(crits: list[CriterionText], prefix: str) -> CriterionText:
    hits = [c for c in crits if c.text.startswith(prefix)]
    assert len(hits) == 1, (prefix, [c.text for c in hits])
    return hits[0]


def assert_well_formed(crits: list[CriterionText]) -> None:
    """Positions count 0.. per kind in order; parents exist, precede, share the kind."""
    for kind in CriterionKind:
        items = of_kind(crits, kind)
        assert [c.position for c in items] == list(range(len(items)))
        by_pos = {c.position: c for c in items}
        for c in items:
            assert c.text and c.text == c.text.strip() and "\n" not in c.text and "  " not in c.text
            if c.parent is None:
                assert c.depth == 0
            else:
                assert c.parent < c.position
                assert c.depth == by_pos[c.parent].depth + 1


ALL_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.txt"))


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fixtures_are_well_formed(name: str) -> None:
    crits = split(name)
    assert crits
    assert_well_formed(crits)
    assert not any(re.search(r"\\[<>=*^\-.]", c.text) for c in crits)  # markdown escapes undone


# --------------------------------------------------------------------------- degenerate input


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n", "Inclusion Criteria:", "Exclusion Criteria:\n\n-\n\n:\n"])
def test_empty_or_heading_only_input_gives_no_criteria(text: str) -> None:
    assert split_criteria(text) == []


def test_boilerplate_items_are_dropped() -> None:
    text = "Inclusion Criteria:\n\n* Age >= 18\n* -\n\nExclusion Criteria:\n\n* None\n* N/A\n-\n"
    assert [(c.kind, c.text) for c in split_criteria(text)] == [(INC, "Age >= 18")]


# --------------------------------------------------------------------------- bullets, numbering, nesting


def test_numbered_items_with_indented_dash_subitems_nct03793192() -> None:
    crits = split("NCT03793192")
    inc, exc = of_kind(crits, INC), of_kind(crits, EXC)
    assert [c.text for c in inc[:3]] == [
        "Age 18 years or older;",
        "Physician diagnosis of COPD;",
        "Hospitalized as an inpatient, 23-hour observation, or clinical decision unit",
    ]
    parent = inc[3]
    assert parent.text.endswith("as listed below:") and parent.depth == 0
    subs = inc[4:]
    assert [c.text for c in subs] == [
        "COPD exacerbation", "Asthma/COPD overlap", "Decompensated heart failure", "Pneumonia",
        "Chronic Airway Disease",
    ]
    assert {(c.parent, c.depth) for c in subs} == {(3, 1)}
    # numbering restarts at 1 under the exclusion heading
    assert len(exc) == 9 and exc[0].text == "Physical inability to participate in a walking program;"
    assert exc[-1].text == "Unable or declines to provide informed consent."
    assert all(c.parent is None for c in exc)


def test_numbered_restart_lead_in_and_wrapped_subitems_nct01964430() -> None:
    crits = split("NCT01964430")
    inc, exc = of_kind(crits, INC), of_kind(crits, EXC)
    assert len(inc) == 16 and len(exc) == 10
    # hard-wrapped continuation lines are joined into one item
    assert inc[0].text == (
        "Histologically confirmed resected ductal pancreatic adenocarcinoma with macroscopic "
        "complete resection (R0 and R1). Subjects with neuroendocrine (and mixed type) tumors "
        "are excluded."
    )
    hema = find(crits, "Acceptable hematology parameters:")
    assert [c.text for c in crits if c.kind is INC and c.parent == hema.position] == [
        "Absolute neutrophil count (ANC) ≥1500 cell/mm^3",
        "Platelet count ≥100,000/mm^3",
        "Hemoglobin (Hgb) ≥9 g/dL",
    ]
    chem = find(crits, "Acceptable blood chemistry levels:")
    ast = find(crits, "Aspartate aminotransferase (AST)/")
    assert ast.parent == chem.position and ast.text.endswith("≤2.5 × upper limit of normal range (ULN)")
    assert find(crits, "Cancer antigen (CA)19-9").parent is None
    # the exclusion lead-in sentence is not a criterion; numbering restarts at 1
    assert not any("will not be eligible" in c.text for c in crits)
    assert exc[0].text == "Prior neo-adjuvant treatment or radiation therapy for pancreatic adenocarcinoma"
    risk = find(crits, "Serious medical risk factors")
    assert risk.kind is EXC
    assert [c.position for c in exc if c.parent == risk.position] == [7, 8, 9]


def test_two_space_dash_style_with_bulleted_lead_ins_nct03861637() -> None:
    crits = split("NCT03861637")
    assert texts(crits, INC) == [
        "Adult renal transplant patients (≥21years),",
        "Informed consent,",
        "Stable maintenance subcutaneous ESA therapy with constant dose interval during the last 2 months,",
        "Haemoglobin (Hb) ≥10mg/dL (Hct 32%),",
        "Transferrin saturation (TSAT) ≥20% (during the screening phase),",
        "and serum ferritin ≥100 ng/mL",
    ]
    exc = of_kind(crits, EXC)
    assert len(exc) == 9 and not any("following criteria" in c.text for c in crits)
    # indented continuation line belongs to its bullet
    assert exc[3].text == (
        "Diastolic blood pressure >100mmHg or discontinuation of ESA due to hypertension in the "
        "6 months prior to study,"
    )


def test_star_bullets_and_escaped_comparators_nct04235998() -> None:
    crits = split("NCT04235998")
    assert texts(crits, INC) == [
        "Age ≥ 18 years.",
        "Unilateral pleural effusion of unknown course.",
        "Patients must be able to give informed consent.",
    ]
    assert texts(crits, EXC) == [
        "Bilateral pleural effusions.",
        "Known cause of pleural effusions.",
        "Life expectancy <3 months.",
        "Inability to understand written or spoken Danish.",
    ]


def test_escaped_dash_bullet_nct03942692() -> None:
    crits = split("NCT03942692")
    assert len(of_kind(crits, INC)) == 3
    assert texts(crits, EXC) == ["No agreement from patient or parents to participate in the study"]


def test_lettered_roman_and_parenthesised_subitems() -> None:
    crits = split("synthetic_structure")
    inc = of_kind(crits, INC)
    got = [(c.text, c.parent, c.depth) for c in inc[:10]]
    assert got == [
        ("Diagnosis of SLE per the 2019 EULAR/ACR classification criteria.", None, 0),
        ("Active disease defined by one of the following:", None, 0),
        ("SLEDAI-2K score ≥ 6", 1, 1),
        ("BILAG A in at least one organ system:", 1, 1),
        ("renal", 3, 2),
        ("musculoskeletal", 3, 2),
        ("Prior therapy with at least two of:", None, 0),
        ("mycophenolate", 6, 1),
        ("cyclophosphamide", 6, 1),
        ("Hemoglobin ≥ 9 g/dL and platelet count of at least 75,000/mm3.", None, 0),
    ]
    # markdown headings, "OR" joined to the previous item, escapes, trailing "-" dropped
    assert inc[12].text == "Negative pregnancy test at screening. OR"
    assert texts(crits, EXC) == [
        "Active infection *requiring* intravenous antibiotics",
        "Known hypersensitivity to the study drug (or its excipients)",
    ]


# --------------------------------------------------------------------------- cohorts


def test_lupus_nephritis_and_membranous_nephropathy_cohorts() -> None:
    crits = split("synthetic_ln_mn_cohorts")
    got = [(c.kind, c.position, c.cohort, c.parent, c.text) for c in crits]
    ln, mn = "Cohort A: Lupus Nephritis", "Cohort B: Membranous Nephropathy"
    assert got == [
        (INC, 0, None, None, "Age 18 to 70 years at screening."),
        (INC, 1, None, None, "Able to provide written informed consent."),
        (INC, 2, ln, None, "Active biopsy-proven lupus nephritis Class III or IV (ISN/RPS 2018) "
                           "within 6 months before screening."),
        (INC, 3, ln, None, "UPCR >= 1.0 g/g at screening."),
        # an ordinary criterion ending with ":" is a parent item, not a cohort heading
        (INC, 4, ln, None, "Refractory disease, defined as an inadequate response to at least one of "
                           "the following:"),
        (INC, 5, ln, 4, "mycophenolate mofetil for >= 6 months"),
        (INC, 6, ln, 4, "cyclophosphamide (Euro-Lupus or NIH regimen)"),
        (INC, 7, mn, None, "Biopsy-proven primary membranous nephropathy."),
        (INC, 8, mn, None, "Positive anti-PLA2R antibodies."),
        # "General Inclusion Criteria" resets the cohort
        (INC, 9, None, None, "Adequate bone marrow function:"),
        (INC, 10, None, 9, "Absolute neutrophil count ≥ 1,500/mm^3"),
        (INC, 11, None, 9, "Platelets ≥ 100,000/mm^3"),
        (EXC, 0, None, None, "Prior CAR-T cell therapy."),
        (EXC, 1, "LN cohort", None, "Active CNS lupus within 1 year prior to screening."),
        (EXC, 2, "Membranous Nephropathy", None,
         "Secondary membranous nephropathy (e.g., due to hepatitis B, malignancy or drugs)."),
    ]


def test_part_and_for_participants_cohort_headings() -> None:
    crits = split("synthetic_structure")
    assert find(crits, "Positive anti-dsDNA").cohort == "Part 1 (SLE)"
    assert find(crits, "Biopsy-proven primary").cohort == "Participants with membranous nephropathy"
    # "All participants:" is a generic heading: cohort back to None
    assert find(crits, "Negative pregnancy test").cohort is None
    assert find(crits, "Postmenopausal").cohort is None


def test_lowercase_for_cohort_headings_nct03921931() -> None:
    crits = split("NCT03921931")
    got = [(c.cohort, c.text) for c in of_kind(crits, INC)]
    assert got == [
        (None, "men and women aged over 18 years"),
        (None, "signed informed consent form"),
        (None, "ametropia below 3 diopters"),
        (None, "ability and willingness to follow instructions"),
        ("Healthy volunteers", "normal ophthalmologic findings"),
        ("Primary open angle glaucoma patients (POAG)", "diagnosed POAG"),
        ("Primary open angle glaucoma patients (POAG)", "MD <= 10 dB"),
        ("Age-related macular degeneration (AMD)", "diagnosed dry AMD"),
        ("Age-related macular degeneration (AMD)", "diagnosed stage II or stage III AMD"),
    ]
    exc = of_kind(crits, EXC)
    assert len(exc) == 8 and all(c.cohort is None for c in exc)  # section boundary resets the cohort


def test_treatment_cohorts_with_numbering_restarts_nct00001228() -> None:
    crits = split("NCT00001228")
    inc = of_kind(crits, INC)
    assert inc[0].text.endswith("To be entered into the study a patient must meet each of 3 criteria:")
    assert [(c.text, c.parent) for c in inc[1:]] == [
        ("histologically proven gastrinoma;", 0),
        ("evidence of metastatic tumor by one or more of angiography, ultrasound, computerized axial "
         "tomography, bone scan or octreoscan;", 0),
        ("progression of tumor size during the preceding 6 months as assessed by repeated imaging "
         "studies.", 0),
    ]
    exc = of_kind(crits, EXC)
    assert [c.cohort for c in exc] == ["Treatment with interferon-(alpha)"] * 8 + ["Treatment with octreotide"]
    assert exc[0].text == "Congestive heart failure" and exc[8].text == "Presence of cholelithiases"


# --------------------------------------------------------------------------- old NCI-style records


def test_nci_dash_bullets_with_topic_headings_nct00002990() -> None:
    crits = split("NCT00002990")
    assert not of_kind(crits, EXC)  # no exclusion heading: everything is inclusion
    first = crits[0]
    assert first.heading == "DISEASE CHARACTERISTICS"
    assert first.text == ("Histologically confirmed transitional cell carcinoma of the bladder of the "
                          "following types:")
    assert [(c.text, c.parent, c.depth) for c in crits[1:3]] == [
        ("Multiple (not greater than 10), resectable, T1 or Ta, grade G1-G3", 0, 1),
        ("Solitary T1 GIII tumor", 0, 1),
    ]
    assert [(c.heading, c.text) for c in crits[3:6]] == [
        ("Age", "85 and under"),
        ("Performance status", "WHO 0-2"),
        ("Hematopoietic", "WBC at least 3,000/mm^3"),
    ]
    # "No ..." items stay inclusion criteria; "Not specified" items are dropped
    no_hiv = find(crits, "No HIV antibody")
    assert no_hiv.kind is INC and no_hiv.heading == "Other"
    assert not any("Not specified" in c.text for c in crits)
    assert crits[-1].heading == "Chemotherapy" and crits[-1].text.startswith("No cytostatic agents")
    assert len(crits) == 19


def test_nci_paragraphs_without_bullets_nct00001189() -> None:
    crits = split("NCT00001189")
    assert not of_kind(crits, EXC)
    head = crits[0]
    assert head.text.startswith("Biopsy-proven grade I soft tissue sarcoma") and head.text.endswith(":")
    subs = [c for c in crits if c.parent == 0]
    assert [c.text for c in subs] == [
        # a paragraph split by a blank line after "(desmoid," is rejoined
        "Abdominal and extra-abdominal fibromatosis (desmoid, aggressive fibromatosis),",
        "Dermatofibrosarcoma protuberans,",
        "Intramuscular lipoma (infiltrating lipoma),",
        "Diffuse lipomatosis,",
        "Leiomyoma of deep soft tissue,",
        "Diffuse giant cell tumor of tendon sheath (proliferative synovitis).",
    ]
    assert find(crits, "No clinical evidence of metastases").parent is None
    age = find(crits, "Age:")
    assert (age.text, age.heading, age.kind) == ("Age: 18 and over.", "PATIENT CHARACTERISTICS", INC)
    assert find(crits, "Surgery:").text == (
        "Surgery: No more than 4 months since definitive surgery for primary lesion or recurrence."
    )
    assert find(crits, "Chemotherapy:").heading == "PRIOR/CONCURRENT THERAPY"
    assert find(crits, "No serious infection.").heading == "OTHER"
    assert not any(c.text.endswith("Not specified.") for c in crits)
    assert len(crits) == 23


def test_nci_sections_packed_into_paragraphs_nct00002459() -> None:
    crits = split("NCT00002459")
    assert [(c.heading, c.text) for c in crits[1:]] == [
        ("PATIENT CHARACTERISTICS", "Age: Any age"),
        ("PATIENT CHARACTERISTICS", "Performance status: WHO 0-2"),
        ("PATIENT CHARACTERISTICS", "Other: No other prior malignancy except basal cell skin cancer or "
                                    "carcinoma in situ of the cervix No serious mental disorder"),
        ("PRIOR CONCURRENT THERAPY", "Radiotherapy: No prior radiotherapy"),
    ]
    assert crits[0].heading == "DISEASE CHARACTERISTICS"
    assert crits[0].text.startswith("Histologically proven high-grade uterine sarcoma Eligible subtypes:")


def test_protocol_entry_criteria_with_or_line_nct00004493() -> None:
    crits = split("NCT00004493")
    assert not of_kind(crits, EXC)
    assert crits[0].heading == "Disease Characteristics"
    assert crits[0].text.endswith("No concurrent illness OR")
    assert crits[1].text == ("Diagnosis of cerebral lactic acidemia with elevated lactic acid in CSF but "
                             "not in the blood")
    assert find(crits, "Renal:").heading == "Patient Characteristics"


def test_aids_style_allowed_excluded_subheadings_nct00000633() -> None:
    crits = split("NCT00000633")
    inc, exc = of_kind(crits, INC), of_kind(crits, EXC)
    assert inc[0].text == "Prophylaxis with isoniazid in patients not previously treated."
    assert inc[1].text == "HIV seropositivity by Western blot."  # "Patients must have:" is a lead-in
    assert len(inc) == 5 and len(exc) == 12
    assert exc[0].heading == "Co-existing Condition" and exc[0].text == "Hepatitis B surface antigen positive."
    assert not any(c.text.startswith("Patients with the following") for c in crits)
    immuno = find(crits, "Immunomodulating agents")
    assert immuno.heading == "Prior Medication: Excluded" and immuno.kind is EXC
    assert exc[-1].text.startswith("Use of illicit drugs")


def test_only_exclusion_section_nct00002297() -> None:
    crits = split("NCT00002297")
    assert crits and not of_kind(crits, INC)
    assert [(c.heading, c.text) for c in crits[1:4]] == [
        ("Concurrent Medication: Excluded", "Systemic corticosteroids."),
        ("Concurrent Medication: Excluded", "Cytotoxic immunosuppressive agents."),
        ("Concurrent Medication: Excluded", "Radiotherapy."),
    ]
    immuno = find(crits, "Immunotherapy.")
    assert crits[immuno.parent].text == "Excluded within 1 month of study entry:"


# --------------------------------------------------------------------------- bullet-less / legacy records


def test_no_bullets_no_headings_hard_wrapped_paragraphs_nct00001966() -> None:
    crits = split("NCT00001966")
    assert len(crits) == 9 and not of_kind(crits, EXC)
    assert crits[0].text == ("Clinical diagnosis of classical or hypermobile EDS based on history and "
                             "physical examination by a study investigator.")
    assert crits[4].text == "No minors (under 18 years of age)."
    assert crits[8].text.startswith("No previous diagnosis or hospitalization for a psychotic condition(s).")
    assert crits[8].text.endswith("Psychiatric diagnoses such as depression or anxiety will not exclude "
                                  "participation.")


def test_lone_colon_line_starts_the_exclusion_list_nct00067691() -> None:
    crits = split("NCT00067691")
    assert texts(crits, INC) == [
        "Diagnosis of local or metastatic breast or lung cancer",
        "Shortness of breath with onset after cancer diagnosis",
        "Life expectancy of at least 4 weeks",
    ]
    exc = texts(crits, EXC)
    assert exc[0] == "Prior acupuncture" and exc[-1] == "Heart valve dysfunction" and len(exc) == 8


def test_no_exclusion_heading_keeps_no_items_as_inclusion_nct00461916() -> None:
    crits = split("NCT00461916")
    assert [c.kind for c in crits] == [INC] * 11
    assert crits[3].text == "No more than two previous IVF/ICSI attempts"


def test_items_before_exclusion_heading_are_inclusion_without_inclusion_heading() -> None:
    text = "1. Adults aged 18-75\n2. Signed consent\n\nExclusion criteria include:\n1. Pregnancy\n"
    crits = split_criteria(text)
    assert [(c.kind, c.position, c.text) for c in crits] == [
        (INC, 0, "Adults aged 18-75"), (INC, 1, "Signed consent"), (EXC, 0, "Pregnancy"),
    ]


@pytest.mark.parametrize(
    ("heading", "kind"),
    [
        ("Inclusion Criteria:", INC), ("INCLUSION CRITERIA", INC), ("Key Inclusion Criteria:", INC),
        ("Eligibility Criteria:", INC), ("## Inclusion", INC), ("**Inclusion criteria**", INC),
        ("Exclusion Criteria:", EXC), ("Key exclusion criteria", EXC), ("EXCLUSION CRITERIA:", EXC),
        ("Exclusion criteria include:", EXC), ("Patients will be excluded if", EXC),
        ("Non-inclusion criteria:", EXC), ("## Exclusion", EXC),
    ],
)
def test_section_heading_variants(heading: str, kind: CriterionKind) -> None:
    crits = split_criteria(f"{heading}\n\n- they have condition X\n")
    assert [(c.kind, c.text, c.heading) for c in crits] == [(kind, "they have condition X", None)]


def test_inline_heading_and_item() -> None:
    crits = split_criteria("Inclusion Criteria: Age 18-65\nExclusion Criteria: Pregnancy")
    assert [(c.kind, c.text) for c in crits] == [(INC, "Age 18-65"), (EXC, "Pregnancy")]


# --------------------------------------------------------------------------- seed trials (optional)


def _seed_criteria(nct_id: str) -> str:
    path = SEEDS / f"{nct_id}.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    study = json.loads(path.read_text(encoding="utf-8"))
    return study["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]


def test_seed_nct06557265_blocks_and_nested_cardiac_items() -> None:
    crits = split_criteria(_seed_criteria("NCT06557265"))
    assert_well_formed(crits)
    pmn = find(crits, "Evidence of pMN by renal biopsy")
    assert (pmn.kind, pmn.depth, pmn.parent) == (INC, 0, None)  # restarted numbering is not nesting
    assert find(crits, "Refractory LN defined as").kind is INC
    cardiac = find(crits, "Major cardiac disease")
    angina = find(crits, "Uncontrolled angina")
    assert (cardiac.kind, angina.kind, angina.parent, angina.depth) == (EXC, EXC, cardiac.position, 1)
    assert len([c for c in crits if c.kind is EXC and c.parent == cardiac.position]) == 7
    bcell = find(crits, "For those subjects on B-cell-depleting")
    assert crits_by(crits, EXC)[bcell.parent].text.startswith("Disease-modifying therapies")
    assert "(<92% oxygen saturation" in find(crits, "Pulmonary comorbidity").text
    assert "mm^3" in find(crits, "White blood cell count <").text
    assert find(crits, "Known clinically active antiphospholipid").kind is EXC


def test_seed_nct06897930_for_lupus_nephritis_item_cohort() -> None:
    crits = split_criteria(_seed_criteria("NCT06897930"))
    assert_well_formed(crits)
    ln = find(crits, "For lupus nephritis:")
    assert (ln.kind, ln.cohort) == (INC, "lupus nephritis")
    assert all(c.cohort is None for c in crits if c is not ln)
    assert find(crits, "Primary immunodeficiency").kind is EXC


def crits_by(crits: list[CriterionText], kind: CriterionKind) -> dict[int, CriterionText]:
    return {c.position: c for c in crits if c.kind is kind}


# --------------------------------------------------------------------------- robustness


def test_never_crashes_and_stays_linear_on_hostile_input() -> None:
    hostile = [
        "(" * 20000, "\\" * 20000, ":" * 20000, "-\n" * 20000, "1.\n" * 20000, "a" * 200000,
        "Inclusion Criteria:\n" + "  " * 5000 + "* x\n" + ("Cohort A:\n" * 5000),
        "\u2022 a \u2022 b " * 5000, "For " * 20000 + ":", ("exclusion criteria " * 3000) + ":",
        "\r\n".join(f"{i}) item {i}" for i in range(5000)), "\x00\ufeff\u200b *\t\x0b\x0c",
        "Inclusion Criteria: " * 5000 + "x", "\n".join(" " * i + "- a:" for i in range(3000)),
        "\n".join(f"- item {i}:" for i in range(5000)),
    ]
    start = time.perf_counter()
    for text in hostile:
        crits = split_criteria(text)
        assert_well_formed(crits)
    assert time.perf_counter() - start < 20


def test_property_never_crashes_and_is_well_formed() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    pieces = st.sampled_from([
        "\n", "\n\n", "  ", "* ", "- ", "1. ", "2) ", "a. ", "(b) ", "ii. ", "\\<", "\\>", ":", "OR",
        "Inclusion Criteria:", "Exclusion Criteria:", "Cohort A:", "For patients with LN:", "Age: 18",
        "Lupus Nephritis:", "DISEASE CHARACTERISTICS:", "No prior therapy", "the following:", "≥ 5",
    ])
    strategy = st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=60).map("".join)

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(strategy)
    def check(text: str) -> None:
        assert_well_formed(split_criteria(text))

    check()


# --------------------------------------------------------------------------- whole registry sample


@pytest.mark.shared
def test_all_studies_in_shared_jsonl() -> None:
    """Every record of ../shared/trials/studies.jsonl parses; most yield both kinds.

    Measured on the 3,748-record file: 2,684 (71.6%) yield >= 1 inclusion and >= 1
    exclusion criterion and 3,713 (99.1%) yield at least one criterion. The brief's 85%
    target is not reachable without inventing exclusions: ~1,000 records have no
    exclusion section at all (old NCI "DISEASE/PATIENT CHARACTERISTICS" records,
    bullet-less prose, "Exclusion Criteria: None"), and by rule those are all inclusion.
    Among records that do have an "Exclusion Criteria" heading line, >= 97% yield both.
    """
    if not STUDIES.exists():
        pytest.skip(f"{STUDIES} not present")
    heading = re.compile(r"^\s*(?:[-*]\s*)?(?:key\s+)?exclusion criteria\s*:?\s*$", re.I | re.M)
    total = both = any_ = headed = headed_both = 0
    with STUDIES.open(encoding="utf-8") as fh:
        for line in fh:
            study = json.loads(line)
            text = study.get("protocolSection", {}).get("eligibilityModule", {}).get(
                "eligibilityCriteria") or ""
            crits = split_criteria(text)
            kinds = {c.kind for c in crits}
            total += 1
            any_ += bool(crits)
            both += kinds == {INC, EXC}
            if heading.search(text):
                headed += 1
                headed_both += kinds == {INC, EXC}
    assert total >= 3000
    assert any_ / total >= 0.98
    assert both / total >= 0.70
    assert headed_both / headed >= 0.97
