"""Full-pipeline checks for classes of patient-side extraction errors (own examples, not benchmark text)."""
from __future__ import annotations

import datetime as dt

import pytest

from nlp.profile import extract_profile


def _lab(profile, name):
    found = [lab for lab in profile.labs if lab.name == name]
    assert found, (name, profile.labs)
    return found[0]


def _therapy(profile, name):
    found = [t for t in profile.therapies if t.name == name]
    assert found, (name, profile.therapies)
    return found[0]


def test_restated_lab_values(nlp) -> None:
    p = extract_profile(nlp, "Since the last visit her serum creatinine has crept up to 1.6 mg/dL; eGFR now about 41.")
    assert _lab(p, "creatinine").value == pytest.approx(1.6)
    assert _lab(p, "egfr").value == pytest.approx(41)


def test_titre_after_a_list_of_scores(nlp) -> None:
    p = extract_profile(nlp, "Active SLE. SLEDAI-2K 12, PGA 2, ANA 1:1280.")
    ana = _lab(p, "ana")
    assert (ana.value, ana.unit) == (1280.0, "titer")


def test_calendar_dates_need_a_reference_date(nlp) -> None:
    text = "Treated with cyclophosphamide in 2017. Lupus nephritis was diagnosed in June 2016."
    ref = dt.date(2022, 6, 1)
    p = extract_profile(nlp, text, reference_date=ref)
    cyc = _therapy(p, "cyclophosphamide")
    assert cyc.days_ago == pytest.approx(5 * 365.25, abs=190)
    ln = [c for c in p.conditions if c.concept == "lupus nephritis"][0]
    assert ln.days_ago == pytest.approx(6 * 365.25, abs=20)
    # without a reference date the years stay undated (deterministic, no clock)
    p0 = extract_profile(nlp, text)
    assert _therapy(p0, "cyclophosphamide").days_ago is None


@pytest.mark.parametrize(
    ("text", "drug", "dose", "eq"),
    [
        ("Maintained on methylprednisolone 12 mg daily.", "methylprednisolone", 12.0, 15.0),
        ("currently taking 16 mg methylprednisolone daily", "methylprednisolone", 16.0, 20.0),
        ("dexamethasone 3 mg daily for cerebral edema", "dexamethasone", 3.0, 20.0),
        ("hydrocortisone 10 mg three times daily", "hydrocortisone", 30.0, 7.5),
        ("on prednisolone 7.5 mg/day", "prednisolone", 7.5, 7.5),
    ],
)
def test_steroid_doses_have_prednisone_equivalents(nlp, text, drug, dose, eq) -> None:
    t = _therapy(extract_profile(nlp, text), drug)
    assert "corticosteroid" in t.classes
    assert t.dose_mg_day == pytest.approx(dose)
    assert t.prednisone_eq_mg_day == pytest.approx(eq, rel=0.01)


def test_every_equivalence_steroid_is_a_corticosteroid(nlp) -> None:
    from nlp.lexicon import default_lexicon

    lex = default_lexicon()
    for generic in lex.prednisone_equivalence():
        assert "corticosteroid" in lex.drug_classes(generic), generic
    assert lex.is_a_curated("methylprednisolone", "corticosteroid")


def test_infection_terms_are_linked(nlp) -> None:
    from nlp.lexicon import default_lexicon

    lex = default_lexicon()
    p = extract_profile(nlp, "Admitted last winter with a bacterial pneumonia.")
    concept = p.conditions[0].concept
    assert lex.is_a_curated(concept, "bacterial infection")
    assert lex.is_a_curated(concept, "pneumonia")
    assert lex.is_a_curated(concept, "infection")
    for specific, general in (("viral meningitis", "viral infection"), ("bacterial meningitis", "bacterial infection"),
                              ("cellulitis", "infection"), ("viral pneumonia", "pneumonia")):
        assert lex.is_a_curated(specific, general), (specific, general)
