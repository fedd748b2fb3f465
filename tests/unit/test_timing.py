from __future__ import annotations

import datetime as dt

import pytest
import spacy

from nlp.components.timing import attach_times, extract_times, reference_year_of


@pytest.fixture(scope="module")
def nlp():
    pipeline = spacy.blank("en")
    pipeline.add_pipe("ctm_timing")
    return pipeline


def times(nlp, text: str) -> list[tuple[str, dict]]:
    doc = nlp(text)
    return [(span.text, span._.ctm_time) for span in doc.spans["ctm_time"]]


def only(nlp, text: str) -> dict:
    found = times(nlp, text)
    assert len(found) == 1, (text, found)
    return found[0][1]


@pytest.mark.parametrize(
    ("text", "relation", "days"),
    [
        ("Lupus was diagnosed 4 years ago.", "ago", 4 * 365.25),
        ("Azathioprine stopped 5 months ago", "ago", 150.0),
        ("Rash began three weeks ago", "ago", 21.0),
        ("A flare a year ago", "ago", 365.25),
        ("hospitalized last month", "ago", 30.0),
        ("Rituximab within 9 months prior to screening", "within", 270.0),
        ("No live vaccine within the last 8 weeks", "within", 56.0),
        ("Any serious infection in the past 2 months", "within", 60.0),
        ("Biologics in the 6 months before randomization", "within", 180.0),
        ("Cancer within 5 years", "within", 5 * 365.25),
        ("less than 3 months ago", "within", 90.0),
        ("Washout of at least 6 weeks before enrollment", "at_least", 42.0),
        ("Stable dose for more than 30 days", "at_least", 30.0),
        ("≥ 12 weeks prior to Day 1", "at_least", 84.0),
        ("on hydroxychloroquine for 7 years", "duration", 7 * 365.25),
        ("a 15-year history of psoriasis", "duration", 15 * 365.25),
        ("disease duration of 6 months", "duration", 180.0),
    ],
)
def test_relations_and_days(nlp, text: str, relation: str, days: float) -> None:
    found = only(nlp, text)
    assert found["relation"] == relation
    assert found["days"] == pytest.approx(days)


def test_span_includes_the_anchor_event(nlp) -> None:
    found = times(nlp, "Belimumab within 6 months prior to screening.")
    assert found[0][0] == "within 6 months prior to screening"


def test_vague_counts_have_no_days(nlp) -> None:
    found = only(nlp, "Several months ago she noticed hair loss")
    assert (found["relation"], found["days"]) == ("ago", None)


def test_years_stay_absolute_without_a_reference(nlp) -> None:
    found = only(nlp, "Started belimumab in 2020")
    assert found == {"days": None, "relation": "ago", "year": 2020}
    assert only(nlp, "On methotrexate since 2016") == {"days": None, "relation": "since", "year": 2016}


def test_reference_date_on_the_doc(nlp) -> None:
    doc = nlp.make_doc("Nephritis in 2019, on MMF since 2021, flare 2 years ago")
    doc._.ctm_reference_date = dt.date(2024, 3, 1)
    doc = nlp.get_pipe("ctm_timing")(doc)
    found = [span._.ctm_time for span in doc.spans["ctm_time"]]
    assert found[0] == {"days": 5 * 365.25, "relation": "ago", "year": 2019}
    assert found[1] == {"days": 3 * 365.25, "relation": "since", "year": 2021}
    assert found[2] == {"days": 2 * 365.25, "relation": "ago", "year": 2022}


def test_reference_year_from_config() -> None:
    pipeline = spacy.blank("en")
    pipeline.add_pipe("ctm_timing", config={"reference_year": 2030})
    doc = pipeline("diagnosed in 2020")
    assert doc.spans["ctm_time"][0]._.ctm_time == {"days": 10 * 365.25, "relation": "ago", "year": 2020}


def test_numbers_that_are_not_times(nlp) -> None:
    text = "mycophenolate 2000 mg daily in 2000 patients; 24-hour urine protein; a 52-year-old"
    assert times(nlp, text) == []


def test_reference_year_of_accepts_several_forms() -> None:
    assert reference_year_of(dt.date(2024, 5, 1)) == (2024, dt.date(2024, 5, 1))
    assert reference_year_of(dt.datetime(2024, 5, 1, 12)) == (2024, dt.date(2024, 5, 1))
    assert reference_year_of("2023-01-31") == (2023, dt.date(2023, 1, 31))
    assert reference_year_of(2022) == (2022, None)
    assert reference_year_of("soon") == (None, None)


def test_extract_times_is_pure_text() -> None:
    found = extract_times("flare 2 weeks ago")
    assert (found[0].start, found[0].end, found[0].days, found[0].relation) == (6, 17, 14.0, "ago")


@pytest.mark.parametrize(
    "text", ["", " ", "⏰⏳", "3" * 10_000, "within " * 3000, "years ago " * 2000, "since " * 3000 + "2019"]
)
def test_garbage_input_does_not_crash(nlp, text: str) -> None:
    for _, found in times(nlp, text):
        assert found["relation"] in {"ago", "within", "at_least", "duration", "since"}


# --------------------------------------------------------------------------- which fact a time expression dates


def _dated(nlp, text: str, facts: list[str]) -> dict[str, str | None]:
    """Fact words -> the time expression that ``attach_times`` gives them (facts are single tokens here)."""
    from spacy.tokens import Span

    doc = nlp(text)
    spans = [Span(doc, tok.i, tok.i + 1, label="FACT") for tok in doc if tok.text in facts]
    attached = attach_times(spans, doc.spans["ctm_time"])
    return {span.text: attached[i].text if i in attached else None for i, span in enumerate(spans)}


@pytest.mark.parametrize(("text", "facts", "expected"), [
    # the fact a time expression follows, in its own clause
    ("Vasculitis was confirmed 5 years ago, and she now takes azathioprine.", ["Vasculitis", "azathioprine"],
     {"Vasculitis": "5 years ago", "azathioprine": None}),
    # the fact it precedes when it opens the clause
    ("Three weeks ago she began colchicine for gout.", ["colchicine", "gout"],
     {"colchicine": "Three weeks ago", "gout": None}),
    ("Six months ago, he stopped ustekinumab.", ["ustekinumab"], {"ustekinumab": "Six months ago"}),
    # an appositive clause dates the fact it is attached to
    ("Sarcoidosis, diagnosed 2 years ago, treated with prednisone.", ["Sarcoidosis", "prednisone"],
     {"Sarcoidosis": "2 years ago", "prednisone": None}),
    # "and" + a verb starts a new clause; "and" between two facts does not
    ("He has gout and was started on allopurinol 4 months ago.", ["gout", "allopurinol"],
     {"gout": None, "allopurinol": "4 months ago"}),
    ("She got infliximab and vedolizumab 10 weeks ago, then mesalamine.", ["infliximab", "vedolizumab",
                                                                        "mesalamine"],
     {"infliximab": "10 weeks ago", "vedolizumab": "10 weeks ago", "mesalamine": None}),
    # a contrast word ends the clause
    ("Pneumonia 3 months ago but no sepsis.", ["Pneumonia", "sepsis"], {"Pneumonia": "3 months ago", "sepsis": None}),
    # two time expressions, two facts
    ("Etanercept 2 years ago and abatacept 5 months ago.", ["Etanercept", "abatacept"],
     {"Etanercept": "2 years ago", "abatacept": "5 months ago"}),
    # a clause without a fact and not opening one dates nothing
    ("Anemia is known, and we moved 2 years ago.", ["Anemia"], {"Anemia": None}),
])
def test_a_time_expression_dates_only_its_own_fact(nlp, text: str, facts: list[str],
                                                   expected: dict[str, str | None]) -> None:
    assert _dated(nlp, text, facts) == expected


def test_durations_and_windows_date_nothing(nlp) -> None:
    assert _dated(nlp, "Methotrexate for 3 years.", ["Methotrexate"]) == {"Methotrexate": None}


def test_attach_times_without_facts_or_times(nlp) -> None:
    assert attach_times([], []) == {}
    assert _dated(nlp, "Asthma and eczema.", ["Asthma", "eczema"]) == {"Asthma": None, "eczema": None}


def test_the_fact_before_the_time_wins_over_a_nearer_one_after_it(nlp) -> None:
    assert _dated(nlp, "Leflunomide was withdrawn 3 years ago for hepatitis.", ["Leflunomide", "hepatitis"]) == {
        "Leflunomide": "3 years ago", "hepatitis": None}
    assert _dated(nlp, "Hospitalized 2 weeks ago with pneumonia.", ["pneumonia"]) == {"pneumonia": "2 weeks ago"}


def test_an_appositive_after_dose_details_dates_the_drug(nlp) -> None:
    assert _dated(nlp, "Treatment: cyclophosphamide 500 mg x6 (finished 5 months ago), lisinopril.",
                  ["cyclophosphamide", "lisinopril"]) == {"cyclophosphamide": "5 months ago", "lisinopril": None}


def test_month_and_year_against_a_reference_date(nlp) -> None:
    doc = nlp.make_doc("Biopsy-proven nephritis, diagnosed in October 2021")
    doc._.ctm_reference_date = dt.date(2023, 4, 15)
    doc = nlp.get_pipe("ctm_timing")(doc)
    found = doc.spans["ctm_time"][0]._.ctm_time
    assert found["year"] == 2021
    assert found["days"] == pytest.approx(546, abs=20)  # the month counts, not just the year


def test_component_never_reads_the_clock(nlp) -> None:
    # same text, two reference dates: the day count follows the reference, not today
    counts = []
    for ref in (dt.date(2010, 6, 1), dt.date(2015, 6, 1)):
        doc = nlp.make_doc("started azathioprine in 2008")
        doc._.ctm_reference_date = ref
        counts.append(nlp.get_pipe("ctm_timing")(doc).spans["ctm_time"][0]._.ctm_time["days"])
    assert counts[1] - counts[0] == pytest.approx(5 * 365.25, abs=2)
    assert only(nlp, "started azathioprine in 2008")["days"] is None
