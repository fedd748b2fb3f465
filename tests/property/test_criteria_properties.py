"""Property tests of ``nlp.criteria.split_criteria`` on arbitrary and hostile eligibility text.

Properties (for every ``str`` input):

* it never raises and returns a list of :class:`CriterionText`;
* every item is inclusion or exclusion, with non-empty text;
* positions run 0..n-1 per kind, in list order;
* a ``parent`` is an earlier position of the same kind;
* a call on up to 20,000 characters finishes well within ``TIME_LIMIT`` seconds,
  pathological regex inputs included (timed here; Hypothesis' deadline is off).
"""
from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from models.domain import CriterionKind, CriterionText
from nlp.criteria import split_criteria

TIME_LIMIT = 5.0  # CPU seconds per call: a guard against super-linear blow-ups, not a speed goal (see scripts/)
MAX_CHARS = 20_000

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.data_too_large])


def timed_split(text: str) -> list[CriterionText]:
    started = time.process_time()
    out = split_criteria(text)
    elapsed = time.process_time() - started
    assert elapsed < TIME_LIMIT, f"split_criteria took {elapsed:.2f}s on {len(text)} chars: {text[:80]!r}..."
    return out


def check_invariants(text: str, out: list[CriterionText]) -> None:
    assert isinstance(out, list)
    next_position = {CriterionKind.INCLUSION: 0, CriterionKind.EXCLUSION: 0}
    for item in out:
        assert isinstance(item, CriterionText)
        assert item.kind in (CriterionKind.INCLUSION, CriterionKind.EXCLUSION)
        assert isinstance(item.text, str) and item.text.strip(), f"empty criterion text: {item!r}"
        assert item.position == next_position[item.kind], (
            f"{item.kind.value} positions out of order: expected {next_position[item.kind]}, got {item!r}")
        if item.parent is not None:
            assert 0 <= item.parent < item.position, f"parent is not an earlier position: {item!r}"
            assert item.depth >= 1, f"nested item with depth {item.depth}: {item!r}"
        next_position[item.kind] += 1


# --------------------------------------------------------------------------- strategies

HEADINGS = [
    "Inclusion Criteria:", "Exclusion Criteria:", "INCLUSION CRITERIA", "EXCLUSION CRITERIA:", "Key Inclusion Criteria",
    "Key exclusion criteria:", "## Inclusion Criteria", "### Exclusion criteria", "Non-inclusion criteria:",
    "Inclusion and exclusion criteria:", "Eligibility Criteria:", "Cohort A:", "Cohort 2 (LN)", "Part B - Lupus",
    "For patients in Cohort 1:", "Additional criteria for Part 2:", "DISEASE CHARACTERISTICS:",
    "PATIENT CHARACTERISTICS:", "PRIOR CONCURRENT THERAPY:", "Hepatic:", "Renal:", "--Hepatic--", "-- Renal --",
    "Patients must meet all of the following:", "Patients will be excluded if they have any of the following:",
    "One of the following:", "At least 2 of the following 3 criteria:", "or", "- or -", "AND", "Note:",
    "Healthy volunteers", "Lupus nephritis-specific criteria", "Inclusion Criteria (all participants):",
    "Exclusion Criteria: None", "N/A", "Other protocol-defined inclusion/exclusion criteria may apply",
]
WORDS = [
    "Age", ">=", "18", "years", "eGFR", "<", "30", "mL/min/1.73m2", "UPCR", "1.0", "g/g", "biopsy-proven", "lupus",
    "nephritis", "class", "III", "IV", "V", "pregnant", "or", "breastfeeding", "prior", "rituximab", "within", "6",
    "months", "ANC", "1,500/mm^3", "(", ")", "[", "]", ":", ";", ",", ".", "e.g.", "i.e.", "≥", "≤", "×", "ULN",
    "and/or", "the", "following", "patients", "must", "have", "history", "of", "HIV", "hepatitis", "B", "C", "\\>",
    "\\<", "\\*", "\\-", "1\\.", "**bold**", "_it_", "NYHA", "ECOG", "0-2", "100000000000000000000000000000",
    "1e308", "−5", "𝟙𝟚", "腎炎", "ループス", "ñ", "Ünïcödé", "🙂", "\u200b", "\u00a0", "\t",
]
BULLETS = ["-", "*", "+", "\u2022", "\u00b7", "\u25aa", "\u25e6", "\u25cf", "\u27a2", "\u2013", "\u2014", "\\-", "\\*"]


def _marker(kind: str, n: int) -> str:
    roman = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii"]
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {
        "num.": f"{n}.", "num)": f"{n})", "(num)": f"({n})", "alpha.": f"{letters[(n - 1) % 26]}.",
        "alpha)": f"{letters[(n - 1) % 26]})", "(alpha)": f"({letters[(n - 1) % 26]})",
        "ALPHA.": f"{letters[(n - 1) % 26].upper()}.", "roman.": f"{roman[(n - 1) % 12]}.",
        "(roman)": f"({roman[(n - 1) % 12]})", "dec": f"{n}.{n % 7}.", "dec3": f"1.{n}.{n}", "circ": chr(0x2460 + (n - 1) % 20),
        "esc": f"{n}\\.", "huge": f"{n}{'9' * 40}.", "cjk": f"{n}、",
    }[kind]


MARKER_KINDS = ["num.", "num)", "(num)", "alpha.", "alpha)", "(alpha)", "ALPHA.", "roman.", "(roman)", "dec", "dec3",
                "circ", "esc", "huge", "cjk"]

words = st.lists(st.sampled_from(WORDS) | st.text(max_size=8), min_size=0, max_size=10).map(" ".join)


@st.composite
def nested_markdown(draw) -> str:
    """Markdown-ish criteria: headings, bullets and numbered lists nested up to 50 levels, numbering restarts."""
    lines: list[str] = []
    counters: dict[int, int] = {}
    indent_unit = draw(st.sampled_from([1, 2, 3, 4, 8]))
    use_tabs = draw(st.booleans())
    level = 0
    for _ in range(draw(st.integers(1, 80))):
        action = draw(st.sampled_from(["item", "item", "item", "deeper", "deeper", "shallower", "restart", "heading",
                                       "blank", "wrap", "jump"]))
        if action == "heading":
            heading = draw(st.sampled_from(HEADINGS) | words.map(lambda s: s + ":"))
            lines.append(heading)
            level, counters = 0, {}
            continue
        if action == "blank":
            lines.append(draw(st.sampled_from(["", "   ", "\t", "\u00a0"])))
            continue
        if action == "deeper":
            level = min(level + 1, 50)
        elif action == "shallower":
            level = max(level - draw(st.integers(1, 50)), 0)
        elif action == "jump":
            level = draw(st.integers(0, 50))
        elif action == "restart":
            counters[level] = 0
        if action == "wrap" and lines:
            lines.append(" " * (level * indent_unit + draw(st.integers(0, 4))) + draw(words))
            continue
        counters[level] = counters.get(level, 0) + 1
        for deeper in [k for k in counters if k > level]:
            del counters[deeper]
        marker = (draw(st.sampled_from(BULLETS)) if draw(st.booleans())
                  else _marker(draw(st.sampled_from(MARKER_KINDS)), counters[level]))
        pad = ("\t" * level) if use_tabs else (" " * (level * indent_unit))
        lines.append(f"{pad}{marker}{draw(st.sampled_from([' ', '  ', '', chr(9)]))}{draw(words)}")
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    return newline.join(lines)[:MAX_CHARS]


pathological_piece = st.sampled_from([
    "(", ")", "-", "*", ":", "1.", "1.1.", "\\<", "\\", "#", "--", "(a)", "a)", "i.", "\u2022", "Inclusion", "criteria",
    "for", "patients", "cohort", " ", "\n", "\t", "0", "9", "x", "\u2460", "of the", "following", "-", "NCT",
])


@st.composite
def pathological(draw) -> str:
    """Long runs of one or two pieces: the inputs that blow up backtracking regexes."""
    piece = draw(pathological_piece) + draw(st.sampled_from(["", "", " ", "\n"]) | pathological_piece)
    count = draw(st.integers(1, MAX_CHARS // max(len(piece), 1)))
    prefix = draw(st.sampled_from(["", "Inclusion Criteria:\n", "- ", "1. ", "For ", "Cohort A ", "--"]))
    suffix = draw(st.sampled_from(["", "x", ":", "--", " criteria", "\n- item", "!"]))
    return (prefix + piece * count + suffix)[:MAX_CHARS]


any_text = st.text(max_size=2000) | st.text(st.characters(), max_size=300)  # the latter includes surrogates


# --------------------------------------------------------------------------- tests


@SETTINGS
@given(any_text)
@example("")
@example("   \n\t ")
@example("\ud800")
@example("\x00" * 100)
def test_arbitrary_unicode(text: str) -> None:
    check_invariants(text, timed_split(text))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(nested_markdown())
def test_nested_markdown(text: str) -> None:
    check_invariants(text, timed_split(text))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(pathological())
def test_pathological_runs(text: str) -> None:
    check_invariants(text, timed_split(text))


@SETTINGS
@given(st.lists(st.sampled_from(HEADINGS) | words | st.text(max_size=40), max_size=60),
       st.sampled_from(["\n", ": ", " ", "\n- ", "\n1. "]))
def test_random_headings_and_sentences(parts: list[str], sep: str) -> None:
    text = sep.join(parts)
    check_invariants(text, timed_split(text))


@SETTINGS
@given(st.integers(min_value=-(10**400), max_value=10**400), st.sampled_from([".", ")", "", " ", ".1.", "、"]),
       st.integers(1, 200))
def test_huge_numbers(n: int, delim: str, repeat: int) -> None:
    text = "\n".join(f"{n}{delim} platelets >= {n} /mm3" for _ in range(repeat))[:MAX_CHARS]
    check_invariants(text, timed_split(text))


PATHOLOGICAL = {
    "open_parens": "(" * MAX_CHARS,
    "close_parens": ")" * MAX_CHARS,
    "dashes": "-" * MAX_CHARS,
    "dash_heading": "--" + "a-" * 9_997 + "--",
    "stars": "*" * MAX_CHARS,
    "colons": ":" * MAX_CHARS,
    "hashes": "#" * MAX_CHARS,
    "hash_heading": "#" * 6 + " " * 19_000 + "Inclusion",
    "dotted_numbers": "1." * 10_000,
    "dotted_numbers_spaced": "1.1.1.1 " * 2_500,
    "escaped_lt": "\\<" * 5_000,
    "backslashes": "\\" * MAX_CHARS,
    "single_word": "a" * 10_000,
    "single_word_20k": "x" * MAX_CHARS,
    "digits": "9" * MAX_CHARS,
    "spaces_then_marker": " " * 19_990 + "- item",
    "newlines": "\n" * MAX_CHARS,
    "crlf": "\r\n" * 10_000,
    "colon_lines": "a:\n" * 6_666,
    "inline_bullets": "\u2022 x " * 5_000,
    "section_words": "inclusion exclusion criteria " * 689,
    "for_cohort": "For " + "the patients " * 1_500,
    "cohort_lines": "Cohort A:\n1. x\n2. y\n" * 1_000,
    "numbered_restarts": "\n".join(f"{i % 7 + 1}. LN item {i}" for i in range(2_000))[:MAX_CHARS],
    "nested_50": "\n".join("  " * (i % 51) + f"{i % 51 + 1}. item" for i in range(1_500))[:MAX_CHARS],
    "nested_bullets_50": "\n".join("    " * (i % 51) + "- sub" for i in range(1_000))[:MAX_CHARS],
    "parens_alpha": "(a) " * 5_000,
    "roman": "i. x\nii. y\niii. z\n" * 1_000,
    "exclusion_statement": "patients " + "x " * 9_000 + "will be excluded",
    "leadin": "Patients must meet " + "all of the following " * 900,
    "unclosed_parens_heading": "Cohort (" * 2_500,
    "paren_runs_words": "(lupus " * 2_800,
    "count_phrase": "of the 3 following " * 1_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_examples(name: str) -> None:
    text = PATHOLOGICAL[name]
    assert len(text) <= MAX_CHARS
    check_invariants(text, timed_split(text))
