"""Property tests of patient-text extraction and criterion parsing on arbitrary and hostile text.

``extract_profile(nlp, text)``, for every ``str``:

* never raises;
* every evidence span (conditions, labs, therapies, therapy counts, age, sex,
  consent) lies inside the text it was read from and quotes it exactly;
* ages are None or in [0, 130); lab values are None or finite;
* a call on up to 20,000 characters takes less than ``TIME_LIMIT`` seconds.

``parse_criteria(nlp, [text])`` never raises and returns one ParsedCriterion
whose text is the input truncated to 5,000 characters.

Hypothesis' deadline is off; time is measured here with ``time.perf_counter``.
"""
from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from models.domain import ParsedCriterion, PatientProfile, Span
from nlp.criterion_parser import parse_criteria
from nlp.profile import MAX_TEXT_CHARS, extract_profile

TIME_LIMIT = 10.0  # CPU seconds per call on <= 20,000 characters: catches blow-ups, not a speed goal
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=HEALTH)


@pytest.fixture(scope="module")
def pipeline(nlp):
    """The session pipeline, warmed up so the first timed call does not pay for lazy loading."""
    extract_profile(nlp, "A 45-year-old woman with lupus nephritis on mycophenolate 1 g twice daily, UPCR 2.1 g/g.")
    parse_criteria(nlp, ["Age >= 18 years"])
    return nlp


# --------------------------------------------------------------------------- checks


def _spans(profile: PatientProfile) -> list[tuple[str, Span]]:
    out: list[tuple[str, Span | None]] = [("age", profile.age_span), ("sex", profile.sex_span),
                                          ("consent", profile.consent_span)]
    out += [(f"condition {c.concept}", c.span) for c in profile.conditions]
    out += [(f"lab {lab.name}", lab.span) for lab in profile.labs]
    out += [(f"therapy {t.name}", t.span) for t in profile.therapies]
    out += [(f"count {c.drug_class}", c.span) for c in profile.therapy_counts]
    return [(name, span) for name, span in out if span is not None]


def check_profile(text: str, profile: PatientProfile) -> None:
    assert isinstance(profile, PatientProfile)
    read = text[:MAX_TEXT_CHARS]
    assert profile.text == read
    for name, span in _spans(profile):
        assert 0 <= span.start <= span.end <= len(read), f"{name}: span {span} outside text of {len(read)} chars"
        assert read[span.start:span.end] == span.text, (
            f"{name}: span {span.start}:{span.end} quotes {read[span.start:span.end]!r}, says {span.text!r}")
    for attr in ("age_years", "age_low", "age_high"):
        value = getattr(profile, attr)
        assert value is None or 0 <= value < 130, f"{attr} = {value!r}"
    for lab in profile.labs:
        assert lab.value is None or math.isfinite(lab.value), f"lab {lab.name} value {lab.value!r}"


def timed_extract(nlp, text: str) -> PatientProfile:
    started = time.process_time()
    profile = extract_profile(nlp, text)
    elapsed = time.process_time() - started
    assert elapsed < TIME_LIMIT, f"extract_profile took {elapsed:.2f}s on {len(text)} chars: {text[:80]!r}..."
    return profile


def timed_parse(nlp, text: str) -> ParsedCriterion:
    started = time.process_time()
    out = parse_criteria(nlp, [text])
    elapsed = time.process_time() - started
    assert elapsed < TIME_LIMIT, f"parse_criteria took {elapsed:.2f}s on {len(text)} chars: {text[:80]!r}..."
    assert isinstance(out, list) and len(out) == 1
    assert isinstance(out[0], ParsedCriterion)
    assert out[0].text == text[:5000]
    return out[0]


# --------------------------------------------------------------------------- strategies

CLINICAL = [
    "A", "45-year-old", "45 yo", "woman", "man", "female", "male", "F", "M", "aged", "in her 40s", "his", "her",
    "mother", "father", "with", "without", "no", "denies", "history of", "h/o", "s/p", "possible", "rule out",
    "lupus nephritis", "SLE", "class IV", "IgA nephropathy", "FSGS", "diabetes", "type 2 diabetes", "CKD stage 3",
    "HIV", "hepatitis B", "breast cancer", "pregnant", "breastfeeding", "NYHA III", "ECOG 1",
    "eGFR", "UPCR", "creatinine", "platelets", "hemoglobin", "ANC", "ALT", "bilirubin", "HbA1c", "BMI",
    "45", "3.2", "1.5", "150", "0", "-1", "1e308", "1e309", "1e-400", "10^9/L", "x10^9/L", "mg/dL", "g/g", "mL/min",
    "mL/min/1.73m2", "%", "mmol/L", "years", "months ago", "weeks", "since 2019", "3 months ago",
    "prednisone", "prednisone 20 mg daily", "mycophenolate", "MMF 1 g bid", "tacrolimus", "rituximab",
    "cyclophosphamide", "belimumab", "voclosporin", "hydroxychloroquine", "steroids", "three immunosuppressants",
    "failed", "refractory to", "intolerant of", "responded to", "currently on", "stopped", "prior",
    ".", ",", ";", ":", "(", ")", "/", "-", ">=", "<", "≥", "≤", "\n", "\n\n", "\t", "•", "- ",
    "👩‍⚕️", "💊", "🧑🏽‍🦱", "🙂", "\u200b", "\u00a0", "\u202e", "e\u0301", "腎炎", "ループス腎炎", "Größe", "ﬁ",
    "𝟚𝟘", "٤٥", "४५",
]
clinical_soup = st.lists(st.sampled_from(CLINICAL) | st.text(max_size=10), max_size=80).map(" ".join)

huge_numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "1e309", "1.7976931348623157e308", "-1e308", "1e-400", "9" * 400, "0." + "0" * 400 + "1",
                     "1" + ",000" * 100, "NaN", "inf", "∞", "1" + ".1" * 200]),
)
HUGE_TEMPLATES = ["platelets {n}", "eGFR {n} mL/min/1.73m2", "a {n}-year-old woman", "aged {n} years",
                  "UPCR {n} g/g", "prednisone {n} mg daily", "creatinine {n} mg/dL", "diagnosed {n} months ago",
                  "failed {n} immunosuppressants", "ECOG {n}", "hemoglobin {n} g/dL, ANC {n}/mm3",
                  "{n} yo F with SLE", "in her {n}s"]

PATHOLOGICAL_PIECES = ["(", ")", "-", "*", ":", "1.", "1.1.", "\\<", "\\", "#", "9", "a", "/", "%", "..", "x",
                       "💊", "\u200b", " ", "\n", "lupus ", "prednisone ", "failed ", "45 ", "mg "]


@st.composite
def pathological(draw, max_chars: int = 3000) -> str:
    piece = draw(st.sampled_from(PATHOLOGICAL_PIECES)) + draw(st.sampled_from(["", " ", "\n"] + PATHOLOGICAL_PIECES))
    return (piece * draw(st.integers(1, max_chars // len(piece))))[:max_chars]


# --------------------------------------------------------------------------- extract_profile


@FAST
@given(text=st.text(max_size=3000))
@example(text="")
@example(text="\x00" * 50)
@example(text="platelets 1e308")
@example(text="a " + "9" * 400 + "-year-old woman with platelets " + "9" * 400)
def test_extract_arbitrary_unicode(pipeline, text: str) -> None:
    check_profile(text, timed_extract(pipeline, text))


@FAST
@given(text=clinical_soup)
@example(text="45 yo F 👩‍⚕️ with lupus nephritis 💊 on prednisone 20 mg daily, failed MMF 3 months ago.")
def test_extract_clinical_soup(pipeline, text: str) -> None:
    check_profile(text, timed_extract(pipeline, text))


@FAST
@given(template=st.sampled_from(HUGE_TEMPLATES), n=huge_numbers)
def test_extract_huge_numbers(pipeline, template: str, n: str) -> None:
    text = template.format(n=n)
    check_profile(text, timed_extract(pipeline, text))


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(text=pathological())
def test_extract_pathological_runs(pipeline, text: str) -> None:
    check_profile(text, timed_extract(pipeline, text))


@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH)
@given(text=st.text(st.characters(), max_size=200))  # any code point, lone surrogates included
@example(text="\ud800")
@example(text="lupus nephritis \udcff platelets 150")
def test_extract_any_code_point(pipeline, text: str) -> None:
    """A Python str may hold lone surrogates (e.g. JSON "\\ud800" decodes to one)."""
    check_profile(text, timed_extract(pipeline, text))


@settings(max_examples=8, deadline=None, suppress_health_check=HEALTH, phases=[Phase.explicit, Phase.generate])
@given(text=clinical_soup, size=st.integers(5_000, MAX_TEXT_CHARS))
def test_extract_long_text_time_bound(pipeline, text: str, size: int) -> None:
    """Long notes (generated text repeated up to 20,000 characters); no shrinking, runs are slow when they fail."""
    text = (text + "\n") * (size // (len(text) + 1) + 1) if text.strip() else "x " * size
    text = text[:size]
    check_profile(text, timed_extract(pipeline, text))


LONG_INPUTS = {
    "open_parens": "(" * MAX_TEXT_CHARS,
    "dashes": "-" * MAX_TEXT_CHARS,
    "stars": "*" * MAX_TEXT_CHARS,
    "colons": ":" * MAX_TEXT_CHARS,
    "dotted_numbers": "1.1.1.1." * 2_500,
    "escaped_lt": "\\<" * 5_000,
    "single_word": "a" * 10_000,
    "digits": "9" * MAX_TEXT_CHARS,
    "newlines": "\n" * MAX_TEXT_CHARS,
    "nul": "\x00" * MAX_TEXT_CHARS,
    "zero_width": "\u200b" * MAX_TEXT_CHARS,
    "combining": "a" + "\u0301" * (MAX_TEXT_CHARS - 1),
    "emoji": "👩‍⚕️🧑🏽‍🦱💊" * 2_000,
    "longer_than_limit": "lupus nephritis. " * 2_000,  # 34,000 chars: only the first 20,000 are read
    "numbers": "1 " * 10_000,
    "labs_one_sentence": ("eGFR 45 UPCR 3.2 platelets 150 hemoglobin 9 " * 460)[:MAX_TEXT_CHARS],
    "ages_one_sentence": ("45 years old " * 1_540)[:MAX_TEXT_CHARS],
    "drug_list_one_sentence": ("failed mycophenolate, tacrolimus, rituximab, cyclophosphamide " * 320)[:MAX_TEXT_CHARS],
    "drug_list_sentences": ("Failed mycophenolate. Tacrolimus. Rituximab. Cyclophosphamide. " * 320)[:MAX_TEXT_CHARS],
    "emoji_note": ("👩‍⚕️ 45 yo 🧑 with lupus 💊 prednisone 20 mg " * 460)[:MAX_TEXT_CHARS],
    "conditions_one_sentence": ("lupus nephritis, diabetes, HIV, hepatitis B, " * 460)[:MAX_TEXT_CHARS],
    "time_expressions": ("diagnosed 3 months ago " * 870)[:MAX_TEXT_CHARS],
}


@pytest.mark.parametrize("name", sorted(LONG_INPUTS))
def test_extract_long_inputs(pipeline, name: str) -> None:
    text = LONG_INPUTS[name]
    check_profile(text, timed_extract(pipeline, text))


# --------------------------------------------------------------------------- parse_criteria


@FAST
@given(text=st.text(max_size=6000) | clinical_soup)
@example(text="")
@example(text="x" * 7000)
@example(text="Platelets >= " + "9" * 400 + " /mm3")
def test_parse_criteria_arbitrary(pipeline, text: str) -> None:
    timed_parse(pipeline, text)


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(template=st.sampled_from(["Platelets >= {n} x10^9/L", "Age {n} years or older", "eGFR < {n} mL/min/1.73m2",
                                 "No more than {n} prior lines of therapy", "Prednisone <= {n} mg/day for {n} weeks",
                                 "UPCR > {n} g/g within {n} months"]), n=huge_numbers)
def test_parse_criteria_huge_numbers(pipeline, template: str, n: str) -> None:
    timed_parse(pipeline, template.format(n=n))


@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH)
@given(text=pathological(max_chars=6000))
def test_parse_criteria_pathological_runs(pipeline, text: str) -> None:
    timed_parse(pipeline, text)


@settings(max_examples=20, deadline=None, suppress_health_check=HEALTH)
@given(text=st.text(st.characters(), max_size=200))
@example(text="Age >= 18 \ud800 years")
def test_parse_criteria_any_code_point(pipeline, text: str) -> None:
    timed_parse(pipeline, text)


@pytest.mark.parametrize("name", sorted(LONG_INPUTS))
def test_parse_criteria_long_inputs(pipeline, name: str) -> None:
    timed_parse(pipeline, LONG_INPUTS[name])
