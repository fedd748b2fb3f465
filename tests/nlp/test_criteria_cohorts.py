"""Alternative cohorts inferred from numbering restarts (the NKX019 layout, headings lost)."""
from __future__ import annotations

from nlp.criteria import split_criteria

RESTARTED = """Inclusion Criteria:

1. Age 18 to 70 years
2. Negative pregnancy test

1. Diagnosis of SLE by ACR criteria
2. Biopsy-proven LN class III or IV
3. UPCR of at least 1 g/g

1. Biopsy-proven pMN
2. Positive anti-PLA2R antibodies in pMN

Exclusion Criteria:

1. Dialysis
"""


def test_restarted_blocks_become_labelled_cohorts():
    items = split_criteria(RESTARTED)
    inc = [c for c in items if c.kind.value == "inclusion"]
    assert [c.cohort for c in inc[:2]] == [None, None]
    assert {c.cohort for c in inc[2:5]} == {"cohort 1 (LN)"}
    assert {c.cohort for c in inc[5:]} == {"cohort 2 (pMN)"}
    assert all(c.cohort is None for c in items if c.kind.value == "exclusion")


def test_a_single_restart_is_not_a_cohort():
    text = "Inclusion Criteria:\n\n1. Adults\n2. Lupus\n\n1. SLEDAI-2K >= 6\n2. ANA positive\n"
    assert all(c.cohort is None for c in split_criteria(text))


def test_restart_blocks_without_disease_labels_are_left_alone():
    text = ("Inclusion Criteria:\n\n1. Adults\n2. Consent\n\n1. WBC > 3000\n2. ANC > 1500\n\n"
            "1. Platelets > 100000\n2. Hemoglobin > 9\n")
    assert all(c.cohort is None for c in split_criteria(text))
