"""Who the description is about: the writer ("I'm 34"), or a relative writing for the patient.

In a chat widget, "my daughter is 19 and has lupus" is a relative describing the
patient: the daughter IS the patient. ConText would flag "lupus" as family
history because of "daughter"; :func:`find_proxy` finds that subject relative so
the profile builder can keep such mentions as the patient's own, while other
relatives ("her mother had breast cancer") stay family history. Pure regexes.
"""
from __future__ import annotations

import re
from typing import NamedTuple

FEMALE = {"daughter", "mom", "mother", "mum", "mommy", "wife", "sister", "grandma", "grandmother", "aunt", "girl",
          "niece", "girlfriend", "granddaughter", "stepmother", "stepdaughter"}
MALE = {"son", "dad", "father", "husband", "brother", "grandpa", "grandfather", "uncle", "boy", "nephew",
        "boyfriend", "grandson", "stepfather", "stepson"}
NEUTRAL = {"partner", "child", "kid", "baby", "spouse", "parent", "friend", "relative", "toddler", "teen", "teenager"}
RELATIVES = FEMALE | MALE | NEUTRAL
_REL = "|".join(sorted(RELATIVES, key=len, reverse=True))
_AGE = r"(?:(?:around|about|almost|nearly|only)\s+)?(\d{1,3}(?:\.\d+)?)(?:\s*(years?|yrs?|months?|mos?|weeks?)(?:\s*old)?)?"
SUBJECT_RE = re.compile(
    rf"(?:\b(?:my|our)\s+(?:\w+\s+)?|^\W*|['\"]\s*)({_REL})\b(?=\s*(?:,\s*\d|\s+(?:is|has|was|had|just|got|'s|"
    rf"recently|who|with|been|also|keeps|can't|cannot|does|did)\b))",
    re.IGNORECASE | re.MULTILINE)
PROXY_AGE_RE = re.compile(rf"^\s*(?:,|\s+is|\s+'s|\s+just turned|\s+turned)\s*{_AGE}\b(?!\s*(?:kg|lbs?|cm|%|mg|times))",
                          re.IGNORECASE)
SELF_AGE_RE = re.compile(rf"\b(?:I'm|I am|i'm|im|I’m)\s+{_AGE}\b(?!\s*(?:kg|lbs?|cm|%|mg|weeks pregnant|times))",
                         re.IGNORECASE)
TITLE_AGE_RE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Master)\.?\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?,\s*(?:aged\s+)?"
                          r"(\d{1,3})\b(?!\s*(?:kg|%))")
NAME_AGED_RE = re.compile(r"\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?,\s*aged\s+(\d{1,3})\b")
TITLE_SEX = {"mr": "male", "master": "male", "mrs": "female", "ms": "female", "miss": "female"}
TITLE_RE = re.compile(r"\b(Mr|Mrs|Ms|Miss|Master)\.?\s+[A-Z]", re.IGNORECASE)


class Proxy(NamedTuple):
    word: str  # "daughter"
    start: int
    end: int
    sex: str | None
    age_years: float | None = None
    age_start: int | None = None
    age_end: int | None = None


def _years(value: str, unit: str | None) -> float:
    v = float(value)
    unit = (unit or "y").lower()
    if unit.startswith("mo"):
        return round(v / 12, 2)
    if unit.startswith("w"):
        return round(v / 52.18, 2)
    return v


def find_proxy(text: str) -> Proxy | None:
    """The relative the description is about, with the age stated right after it, if any."""
    head = text[:600]
    m = SUBJECT_RE.search(head)
    if not m:
        return None
    word = m.group(1).lower()
    sex = "female" if word in FEMALE else "male" if word in MALE else None
    age = PROXY_AGE_RE.match(text[m.end(1):m.end(1) + 40])
    if age:
        return Proxy(word, m.start(1), m.end(1), sex, _years(age.group(1), age.group(2)),
                     m.end(1) + age.start(1), m.end(1) + age.end(0))
    return Proxy(word, m.start(1), m.end(1), sex, None, None, None)


def find_stated_age(text: str) -> tuple[float, int, int] | None:
    """'I'm 34', 'Mr. Johnson, 58,' or 'Sophie Martin, aged 4' -> (years, start, end)."""
    for regex in (SELF_AGE_RE, TITLE_AGE_RE, NAME_AGED_RE):
        m = regex.search(text)
        if m:
            unit = m.group(2) if regex is SELF_AGE_RE else None
            years = _years(m.group(1), unit)
            if 0 < years < 120:
                return years, m.start(1), m.end(2) if regex is SELF_AGE_RE and m.group(2) else m.end(1)
    return None


def title_sex(text: str) -> tuple[str, int, int] | None:
    m = TITLE_RE.search(text)
    if not m:
        return None
    return TITLE_SEX[m.group(1).lower()], m.start(1), m.end(1)
