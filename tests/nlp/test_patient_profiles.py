"""The pipeline against our own annotated patient descriptions (tests/nlp/patients.jsonl).

Each case lists the facts a clinician would extract. The test scores every
category over the whole set, prints the figures, and holds them to floors, so
a regression in any component shows up here. Concepts are compared through
the lexicon, so an annotator's "type 2 diabetes mellitus" and the lexicon's
preferred name for it are the same concept.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

CASES = [json.loads(line) for line in (Path(__file__).parent / "patients.jsonl").read_text().splitlines()
         if line.strip()]


def _overlaps(span, start: int, end: int) -> bool:
    return span.start < end and start < span.end


def _locate(text: str, term: str) -> tuple[int, int]:
    start = text.find(term)
    return start, start + len(term)


def _same_concept(lexicon, expected: str, got: str) -> bool:
    if expected == got:
        return True
    entry = lexicon.lookup_condition(expected)
    return entry is not None and (entry.concept == got or lexicon.is_a(got, entry.concept)
                                  or lexicon.is_a(entry.concept, got))


def _same_days(expected: float | None, got: float | None) -> bool:
    """An annotated ``days_ago`` (None: the text does not date this fact) against the extracted one."""
    return got is None if expected is None else got is not None and abs(got - expected) < 1e-6


def _same_drug(lexicon, expected: str, got: str) -> bool:
    if expected == got:
        return True
    entry = lexicon.lookup_drug(expected)
    return entry is not None and entry.generic == got


@pytest.fixture(scope="module")
def scored(nlp):
    from nlp.lexicon import default_lexicon
    from nlp.profile import extract_profile

    lexicon = default_lexicon()
    tally: Counter = Counter()
    misses: list[str] = []
    for case in CASES:
        text, exp = case["text"], case["expect"]
        p = extract_profile(nlp, text)
        if "age" in exp:
            tally["age_n"] += 1
            tally["age_ok"] += p.age_years is not None and abs(p.age_years - exp["age"]) < 0.1
        if "age_range" in exp:
            tally["age_n"] += 1
            tally["age_ok"] += [p.age_low, p.age_high] == exp["age_range"]
        if "sex" in exp:
            tally["sex_n"] += 1
            tally["sex_ok"] += p.sex == exp["sex"]
        for c in exp.get("conditions", []) + exp.get("states", []):
            start, end = _locate(text, c["term"])
            found = [f for f in p.conditions if _overlaps(f.span, start, end)]
            tally["cond_n"] += 1
            hit = next((f for f in found if _same_concept(lexicon, c["concept"], f.concept)), None)
            if hit is None:
                misses.append(f"{case['id']}: condition {c['term']!r}")
                continue
            tally["cond_ok"] += 1
            for flag in ("negated", "family"):
                if c.get(flag):
                    tally[f"{flag}_n"] += 1
                    tally[f"{flag}_ok"] += getattr(hit.context, flag)
                elif getattr(hit.context, flag):
                    tally[f"{flag}_fp"] += 1
            if "days_ago" in c:
                tally["days_n"] += 1
                tally["days_ok"] += _same_days(c["days_ago"], hit.days_ago)
        for lab in exp.get("labs", []):
            start, end = _locate(text, lab["term"])
            tally["lab_n"] += 1
            hit = next((f for f in p.labs if f.name == lab["name"] and _overlaps(f.span, start, end + 30)), None)
            if hit is None:
                misses.append(f"{case['id']}: lab {lab['term']!r}")
                continue
            tally["lab_ok"] += 1
            if lab.get("value") is not None:
                tally["lab_value_n"] += 1
                tally["lab_value_ok"] += hit.value is not None and abs(hit.value - lab["value"]) < 1e-6
        for t in exp.get("therapies", []):
            start, end = _locate(text, t["term"])
            tally["drug_n"] += 1
            hit = next((f for f in p.therapies if _overlaps(f.span, start, end)
                        and (_same_drug(lexicon, t["name"], f.name) or set(t.get("classes", [])) & set(f.classes))),
                       None)
            if hit is None:
                misses.append(f"{case['id']}: therapy {t['term']!r}")
                continue
            tally["drug_ok"] += 1
            if t.get("negated"):
                tally["drug_neg_n"] += 1
                tally["drug_neg_ok"] += hit.context.negated
            if "days_ago" in t:
                tally["days_n"] += 1
                tally["days_ok"] += _same_days(t["days_ago"], hit.days_ago)
    rates = {k[:-3]: tally[k] / tally[k[:-3] + "_n"] for k in tally if k.endswith("_ok") and tally[k[:-3] + "_n"]}
    print("\npatient-profile figures:", json.dumps({k: round(v, 3) for k, v in sorted(rates.items())}),
          "false flags:", {k: tally[k] for k in tally if k.endswith("_fp")})
    return rates, tally, misses


def test_enough_cases_in_varied_styles():
    assert len(CASES) >= 60
    assert len({c["style"] for c in CASES}) >= 4


@pytest.mark.parametrize("category,floor", [
    ("age", 0.9), ("sex", 0.9), ("cond", 0.7), ("negated", 0.75), ("family", 0.75), ("lab", 0.75),
    ("lab_value", 0.85), ("drug", 0.75), ("drug_neg", 0.6), ("days", 0.9)])
def test_extraction_quality_floor(scored, category, floor):
    rates, _, misses = scored
    assert rates[category] >= floor, (rates, misses[:40])


def test_false_negation_and_family_flags_are_rare(scored):
    _, tally, _ = scored
    assert tally["negated_fp"] <= 0.1 * tally["cond_ok"]
    assert tally["family_fp"] <= 0.05 * tally["cond_ok"]
