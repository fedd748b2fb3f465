"""Scope of negation and of time expressions in patient text, on the real pipeline.

Two classes of error, each tested by several differently worded sentences:

* a negation trigger governs the whole coordinated list after it ("never taken
  A, B or any C") up to the end of its clause, and no further;
* a time expression dates only the fact it modifies, not every fact in its sentence.
"""
from __future__ import annotations

import pytest

from models.domain import PatientProfile


@pytest.fixture(scope="module")
def profile_of(nlp):
    from nlp.profile import extract_profile

    cache: dict[str, PatientProfile] = {}

    def run(text: str) -> PatientProfile:
        if text not in cache:
            cache[text] = extract_profile(nlp, text)
        return cache[text]

    return run


def _facts(profile: PatientProfile) -> dict[str, object]:
    """Mention text (lower case) -> therapy or condition fact."""
    facts: dict[str, object] = {c.span.text.lower(): c for c in profile.conditions}
    facts.update({t.span.text.lower(): t for t in profile.therapies})
    return facts


def _negated(profile: PatientProfile) -> dict[str, bool]:
    return {word: fact.context.negated for word, fact in _facts(profile).items()}  # type: ignore[attr-defined]


def _days(profile: PatientProfile) -> dict[str, float | None]:
    return {word: fact.days_ago for word, fact in _facts(profile).items()}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- negation over lists


@pytest.mark.parametrize(("text", "negated"), [
    ("He has never taken tofacitinib, baricitinib, or any other JAK inhibitor or TNF inhibitor.",
     ["tofacitinib", "baricitinib", "jak inhibitor", "tnf inhibitor"]),
    ("She was never treated with obinutuzumab nor cyclophosphamide.", ["obinutuzumab", "cyclophosphamide"]),
    ("I have never used insulin, metformin or an SGLT2 inhibitor.", ["insulin", "metformin", "sglt2 inhibitor"]),
    ("My son has never been given adalimumab, etanercept or any anti-TNF therapy.",
     ["adalimumab", "etanercept", "anti-tnf therapy"]),
    ("Patient denies tuberculosis, hepatitis C, HIV or any other chronic infection.",
     ["tuberculosis", "hepatitis c", "hiv"]),
    ("She remains free of hypertension, diabetes and chronic kidney disease.",
     ["hypertension", "diabetes", "chronic kidney disease"]),
    ("A 40 year old without asthma, COPD or any interstitial lung disease.",
     ["asthma", "copd", "interstitial lung disease"]),
    ("No prior history of stroke, myocardial infarction, heart failure or atrial fibrillation.",
     ["stroke", "myocardial infarction", "heart failure", "atrial fibrillation"]),
    ("He never tried azathioprine, leflunomide, sulfasalazine, or any biologic.",
     ["azathioprine", "leflunomide", "sulfasalazine", "biologic"]),
])
def test_negation_covers_the_whole_coordinated_list(profile_of, text: str, negated: list[str]) -> None:
    flags = _negated(profile_of(text))
    for word in negated:
        assert flags.get(word) is True, (word, flags)


@pytest.mark.parametrize(("text", "negated", "affirmed"), [
    ("She has never had cyclophosphamide, but she is on mycophenolate.", ["cyclophosphamide"], ["mycophenolate"]),
    ("He has never taken methotrexate and takes hydroxychloroquine daily.", ["methotrexate"],
     ["hydroxychloroquine"]),
    ("No history of asthma or eczema, he has gout.", ["asthma", "eczema"], ["gout"]),
    ("Never received belimumab; currently on tacrolimus.", ["belimumab"], ["tacrolimus"]),
    ("She has not been on anifrolumab, however voclosporin was started last year.", ["anifrolumab"],
     ["voclosporin"]),
    ("I was never treated with insulin and I have type 2 diabetes.", ["insulin"], ["type 2 diabetes"]),
    ("Denies fever or rash and she currently takes prednisone.", ["fever", "rash"], ["prednisone"]),
])
def test_negation_stops_at_the_end_of_its_clause(profile_of, text: str, negated: list[str],
                                                 affirmed: list[str]) -> None:
    flags = _negated(profile_of(text))
    for word in negated:
        assert flags.get(word) is True, (word, flags)
    for word in affirmed:
        assert flags.get(word) is False, (word, flags)


@pytest.mark.parametrize("text", [
    "She never responded to rituximab or belimumab.",
    "He never improved on methotrexate or leflunomide.",
    "Her nephritis has never been controlled by mycophenolate or tacrolimus.",
])
def test_never_with_a_response_verb_is_not_a_negation(profile_of, text: str) -> None:
    assert not any(_negated(profile_of(text)).values()), _negated(profile_of(text))


# --------------------------------------------------------------------------- dates attach to one fact


@pytest.mark.parametrize(("text", "dated", "undated"), [
    ("Lupus nephritis was confirmed 3 years ago, and she now takes tacrolimus and hydroxychloroquine.",
     {"lupus nephritis": 3 * 365.25}, ["tacrolimus", "hydroxychloroquine"]),
    ("Two weeks ago he started prednisone for his asthma.", {"prednisone": 14.0}, ["asthma"]),
    ("Psoriasis, diagnosed 4 years ago, treated with methotrexate.", {"psoriasis": 4 * 365.25}, ["methotrexate"]),
    ("He has psoriasis and was started on adalimumab 5 months ago.", {"adalimumab": 150.0}, ["psoriasis"]),
    ("She received cyclophosphamide and rituximab 9 months ago, and takes hydroxychloroquine.",
     {"cyclophosphamide": 270.0, "rituximab": 270.0}, ["hydroxychloroquine"]),
    ("Rheumatoid arthritis for a decade, on methotrexate; tocilizumab was stopped 7 months ago.",
     {"tocilizumab": 210.0}, ["rheumatoid arthritis", "methotrexate"]),
    ("A heart attack 2 years ago, but no stroke; he takes aspirin and atorvastatin.",
     {"heart attack": 2 * 365.25}, ["stroke", "aspirin", "atorvastatin"]),
])
def test_a_time_expression_dates_only_the_fact_it_modifies(profile_of, text: str, dated: dict[str, float],
                                                          undated: list[str]) -> None:
    days = _days(profile_of(text))
    for word, expected in dated.items():
        assert days.get(word) == pytest.approx(expected), (word, days)
    for word in undated:
        assert word in days and days[word] is None, (word, days)


def test_last_dose_of_a_b_cell_depleting_drug_is_dated(profile_of) -> None:
    profile = profile_of("Her last infusion of ocrelizumab was given 11 months ago.")
    therapy = next(t for t in profile.therapies if t.name == "ocrelizumab")
    assert therapy.days_ago == pytest.approx(330.0)
    assert "b_cell_depleting" in therapy.classes


@pytest.mark.parametrize("text, drug", [
    ("Hydroxychloroquine was stopped for lack of efficacy, and leflunomide was then tried.", "leflunomide"),
    ("Started on tocilizumab, which did not control her arthritis.", "tocilizumab"),
    ("Sulfasalazine with no improvement, then methotrexate.", "methotrexate"),
    ("Sulfasalazine with no improvement, then methotrexate.", "sulfasalazine"),
])
def test_a_treatment_that_did_not_work_is_still_a_treatment(profile_of, text, drug):
    # "did not control", "lack of efficacy", "with no improvement" describe a response, not an absence
    assert _negated(profile_of(text))[drug] is False


def test_pipeline_import_defers_nltk_until_it_is_used():
    """medspaCy's QuickUMLS imports NLTK at import time; the pipeline defers it, and NLTK still works."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from nlp.pipeline import build_pipeline\n"
            "nlp = build_pipeline()\n"
            "assert 'medspacy_context' in nlp.pipe_names\n"
            "assert type(sys.modules['nltk']).__name__ == '_DeferredModule'\n"
            "import quickumls.core\n"
            "assert isinstance(quickumls.core.nltk.__version__, str)  # first use imports the real NLTK\n"
            "assert type(sys.modules['nltk']).__name__ == 'module'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
