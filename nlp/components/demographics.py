"""``ctm_demographics``: age and sex in patient text and in criterion lines.

Age: "52-year-old", "52 yo", "52F", "F, 52", "aged 52", "in her 40s" (40-49),
"mid-60s" (63-67), "18-month-old" (1.5), "aged 7 months" (0.58), "newborn",
and criteria "18 years and older", "aged 18-70", ">= 18 years of age",
"between 18 and 75 years", "older than 65", "adults" (>= 18), "children under 12".
Ages at an event ("diagnosed at age 30") are not the current age and are skipped.

Sex: explicit words (woman, male, "52F", "Mrs. X") and pronouns (she/her, he/his)
as weaker evidence; criteria "men and women" -> "all", "women of childbearing
potential" -> female with ``span._.ctm_childbearing`` True.

Output spans: ``doc.spans["ctm_age"]`` with ``span._.ctm_age`` = {"years", "low",
"high", "comparator", "low_inclusive", "high_inclusive", "family"} and
``doc.spans["ctm_sex"]`` with ``span._.ctm_sex`` in {"female", "male", "all"},
``span._.ctm_sex_strength`` "explicit" | "pronoun" and ``span._.ctm_childbearing``.
All patterns are compiled regexes over ``doc.text`` (bounded by ``max_chars``),
mapped to tokens with ``doc.char_span(..., alignment_mode="expand")``.
"""
# No ``from __future__ import annotations``: spaCy evaluates the factory annotations.
import re
from dataclasses import dataclass
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from models.domain import Span as TextSpan
from nlp.components.measurements import LazyRegex as _lazy

__all__ = [
    "AGE_SPANS_KEY",
    "SEX_SPANS_KEY",
    "DemographicsRecognizer",
    "extract_ages",
    "extract_sexes",
    "make_demographics",
    "read_age",
    "read_sex",
]

AGE_SPANS_KEY = "ctm_age"
SEX_SPANS_KEY = "ctm_sex"

_NUM = r"\d{1,3}(?:\.\d{1,2})?"
_UNIT = r"(?:years?|yrs?|y|months?|mos?|mo|weeks?|wks?|wk|days?|d)(?![A-Za-z])"
_UNIT_YEARS = {"y": 1.0, "m": 1 / 12, "w": 7 / 365.25, "d": 1 / 365.25}
_COMPARATORS: tuple[tuple[str, str], ...] = (
    (r"greater\s+than\s+or\s+equal\s+to|equal\s+to\s+or\s+(?:greater|more|older)\s+than|at\s+least"
     r"|(?:a\s+)?minimum(?:\s+of)?|no\s+(?:less|younger)\s+than|not\s+(?:less|younger)\s+than", ">="),
    (r"less\s+than\s+or\s+equal\s+to|equal\s+to\s+or\s+(?:less|younger)\s+than|up\s+to|at\s+most"
     r"|(?:a\s+)?maximum(?:\s+of)?|no\s+(?:more|older)\s+than|not\s+(?:more|older)\s+than", "<="),
    (r"more\s+than|greater\s+than|older\s+than|over|above", ">"),
    (r"less\s+than|younger\s+than|under|below", "<"),
    (r"\\?>\s?=|=>|≥|⩾|≧|&gt;=|â‰¥", ">="),
    (r"\\?<\s?=|=<|≤|⩽|≦|&lt;=|â‰¤", "<="),
    (r"\\?>|&gt;", ">"),
    (r"\\?<|&lt;", "<"),
)
_COMP = "(?:" + "|".join(p for p, _ in _COMPARATORS) + ")"
_COMP_RE = _lazy("|".join(f"(?P<c{i}>{p})" for i, (p, _) in enumerate(_COMPARATORS)), re.IGNORECASE)
_POST = (
    r"(?:\s{0,2}(?:(?:or|and)\s+(?P<post_ge>older|over|above|greater|more)"
    r"|(?:or|and)\s+(?P<post_le>younger|under|below|less)|(?P<post_plus>\+)))?"
)
_RANGE = (
    r"(?:\s{0,2}(?:-|–|—|to|and|through|until)\s{0,2}(?P<comp2>" + _COMP + r")?\s{0,2}(?P<n2>" + _NUM + r")"
    r"(?![\d.])(?:\s{0,2}(?P<u2>" + _UNIT + r"))?)?"
)
_NUMBER_FIRST = r"(?P<n1>" + _NUM + r")(?![\d.])(?:\s{0,2}(?P<u1>" + _UNIT + r"))?" + _RANGE
_VALUE = r"(?:(?P<comp>" + _COMP + r")\s{0,2})?(?:(?P<between>between|from)\s+)?" + _NUMBER_FIRST
# What may stand before a number-first age: "≥ 18 ...", "between 18 and 75 ...".
_BEFORE_NUMBER = _lazy(
    r"(?:(?P<comp>" + _COMP + r")\s{0,2})?(?:(?P<between>between|from)\s+)?$", re.IGNORECASE
)

# "aged 52", "age ≥ 12", "aged 18-70 years", "ages 2 to 17", "Age (years): 18-65"
_KEYWORD_AGE = _lazy(
    r"(?=[aA])\b(?:age[sd]?|aging)\b(?:\s{0,2}(?:\(\s?(?:years?|yrs?)\s?\)|:|of|is|was|between|from|range"
    r"|must\s+be|should\s+be|group|limits?)){0,3}\s{0,2}" + _VALUE + r"(?:\s{0,2}(?:old|of\s+age))?" + _POST,
    re.IGNORECASE,
)
# Number-first patterns start with a digit so the regex engine skips other characters
# quickly; the comparator before the number is read by _BEFORE_NUMBER on a short window.
# "52-year-old", "18 years of age or older", "18 to 75 years old", "7-month-old"
_MARKED_AGE = _lazy(
    r"(?=\d)" + _NUMBER_FIRST + r"(?:\s{0,2}[-‐–]?\s{0,2}(?P<u>" + _UNIT + r"))?\s{0,2}[-‐–]?\s{0,2}"
    r"(?P<marker>old|of\s+age|in\s+age)\b" + _POST,
    re.IGNORECASE,
)
# "≥ 18 years", "18 years and older", "patients 18 to 65 years": needs a person word or line start
_BARE_AGE = _lazy(
    r"(?=\d)" + _NUMBER_FIRST + r"(?:\s{0,2}(?P<u>years?|yrs?)(?![A-Za-z]))" + _POST, re.IGNORECASE
)
_YO_AGE = _lazy(
    r"(?=\d)(?<![\d.])(?P<n1>\d{1,3})\s?(?:yo|y/o|y\.o\.?|yr\.?\s?old|yoa)(?![A-Za-z])", re.IGNORECASE
)
# "older than 65", "over the age of 18", "under 18 years of age"
_THAN_AGE = _lazy(
    r"(?=[oyuabOYUAB])\b(?P<word>older|younger)\s+than\s+(?P<n1>" + _NUM + r")(?![\d.])"
    r"(?:\s{0,2}(?P<u1>" + _UNIT + r"))?"
    r"|\b(?P<word2>over|under|above|below|beyond)\s+(?:the\s+)?age\s+(?:of\s+)?(?P<n1b>" + _NUM
    + r")(?![\d.])(?:\s{0,2}(?P<u1b>" + _UNIT + r"))?",
    re.IGNORECASE,
)
_SEX_AGE = _lazy(r"(?=\d)(?<![\w.])(?P<n1>\d{1,3})\s?(?P<sx>[MF])(?![A-Za-z0-9])")
_AGE_SEX = _lazy(
    r"(?=[MFmfWw])\b(?P<sx>M|F|[Mm]ale|[Ff]emale|[Ww]oman|[Mm]an)\s?,\s?(?P<n1>\d{1,3})(?![\d.])"
    r"(?=\s?(?:[,.;)/]|$|y|yo\b|years?\b|with\b|presents?\b|who\b|has\b|was\b|is\b))"
)
_DECADE = _lazy(
    r"\b(?:in\s+(?P<pron>her|his|their|the)\s+)?(?:(?P<q>early|mid|late)[\s-]{0,2})?"
    r"(?:(?P<d>[1-9]0)(?:'|’)?s"
    r"|(?P<dw>twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties))\b",
    re.IGNORECASE,
)
_WORD_AGE = _lazy(
    r"(?=[acpmnieACPMNIE])\b(?:(?P<adult>adults?"
    r"|adult\s+(?:patients?|participants?|subjects?|m[ae]n|wom[ae]n|males?|females?))(?![\s-]{0,2}onset)"
    r"|(?P<child>children|child|kids|paediatric\s+patients|pediatric\s+patients|minors)\s+(?:who\s+are\s+)?"
    r"(?:under|below|younger\s+than|less\s+than|<)\s{0,2}(?:the\s+age\s+of\s+)?(?P<n1>" + _NUM + r")(?![\d.])"
    r"(?:\s{0,2}(?:years?|yrs?)(?:\s+(?:old|of\s+age))?)?"
    r"|(?P<newborn>newborns?|neonates?)|(?P<infant>infants?)|(?P<adolescent>adolescents?)"
    r"|(?P<elderly>elderly))\b",
    re.IGNORECASE,
)
_DECADE_TRIGGER = _lazy(r"0(?:'|’)?s\b|ties\b", re.IGNORECASE)
_DECADE_WORDS = {"twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60,
                 "seventies": 70, "eighties": 80, "nineties": 90}
_PERSON_BEFORE = _lazy(
    r"(?:\b(?:patients?|participants?|subjects?|adults?|m[ae]n|wom[ae]n|males?|females?|individuals?"
    r"|volunteers?|children|persons?|people|boys?|girls?|aged?|who\s+are|must\s+be)\b)[^.;:\n\d]{0,20}$",
    re.IGNORECASE,
)
_LINE_START = _lazy(r"(?:^|[\n;:•*])[\s\-–•*\d.)]{0,6}$")
_NOT_AGE_AFTER = _lazy(
    r"\s{0,2}(?:ago|of\s+(?:disease|treatment|therapy|follow|symptoms?|history|duration|diagnosis|smoking)"
    r"|duration|history|since|prior|before|after|post|previously|earlier|following|of\s+the|from)\b",
    re.IGNORECASE,
)
_NOT_AGE_BEFORE = _lazy(
    r"\b(?:for|within|past|last|over|during|duration|history|since|after|before|previous|prior|diagnos\w*"
    r"|disease|treated|treatment|therapy|onset|lasting|symptoms?|ago)\b[^.;:\n]{0,14}$",
    re.IGNORECASE,
)
_EVENT_AGE_BEFORE = _lazy(
    r"\b(?:at|before|after|by|since|until|from|onset)\s+(?:the\s+)?$", re.IGNORECASE
)
_TEMPERATURE_BEFORE = _lazy(
    r"\b(?:temp(?:erature)?|fever|febrile|tmax|T)\b[^.;\n]{0,12}$", re.IGNORECASE
)
_FAMILY = (
    r"(?:mother|father|mom|dad|sister|brother|sibling|son|daughter|parent|aunt|uncle|cousin"
    r"|grandmother|grandfather|grandparent|husband|wife|spouse|partner|niece|nephew)s?"
)
_FAMILY_AFTER = _lazy(r"\s{0,2},?\s{0,2}(?:old\s+)?" + _FAMILY + r"\b", re.IGNORECASE)
_FAMILY_BEFORE = _lazy(r"\b" + _FAMILY + r"(?:'s)?\b[^.;:\n]{0,25}$", re.IGNORECASE)

_SEX_ALL = _lazy(
    r"(?=[mMwWfFbBgGaAeE])\b(?P<a>m[ae]n|males?|wom[ae]n|females?|boys?|girls?)"
    r"\s{0,2}(?:and/or|and|or|&|/|,)\s{0,2}(?P<b>m[ae]n|males?|wom[ae]n|females?|boys?|girls?)\b"
    r"|\b(?:both\s+(?:sexes|genders)|(?:all|any|either)\s+(?:sexes|sex|genders?))\b",
    re.IGNORECASE,
)
_CHILDBEARING = _lazy(
    r"(?=[wWfFgG])\b(?:(?:wom[ae]n|females?|girls?|female\s+(?:patients?|participants?|subjects?))\s+of\s+"
    r"(?:child[\s-]?bearing|reproductive)\s+(?:potential|age)|WOCBP|FOCBP)\b",
    re.IGNORECASE,
)
# A leading "(?=[...])" lets the regex engine skip positions that cannot start a match.
_SEX_WORD = _lazy(
    r"(?=[wWfFgGlLmMbB])\b(?:(?P<f>wom[ae]n|females?|girls?|lad(?:y|ies))"
    r"|(?P<m>m[ae]n|males?|boys?|gentlem[ae]n))\b(?![\s-]{0,2}(?:partners?|pattern|-to-))",
    re.IGNORECASE,
)
_TITLE = _lazy(r"(?=M)\b(?:(?P<f>Mrs|Ms|Miss)|(?P<m>Mr))\.?(?=\s+[A-Z])")
_LETTER_SEX = _lazy(r"(?=[yY])(?:year[\s-]old|yo|y/o|y\.o\.)\s{1,2}(?P<sx>M|F)(?![A-Za-z0-9])")
_PRONOUN = _lazy(
    r"(?=[SsHh])\b(?:(?P<f>[Ss]he|[Hh]er|[Hh]ers|[Hh]erself)|(?P<m>[Hh]e|[Hh]im|[Hh]is|[Hh]imself))\b"
)


@dataclass
class AgeMention:
    start: int
    end: int
    years: float | None = None
    low: float | None = None
    high: float | None = None
    comparator: str | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    family: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "years": self.years,
            "low": self.low,
            "high": self.high,
            "comparator": self.comparator,
            "low_inclusive": self.low_inclusive,
            "high_inclusive": self.high_inclusive,
            "family": self.family,
        }


@dataclass
class SexMention:
    start: int
    end: int
    sex: str
    strength: str = "explicit"
    childbearing: bool = False


# --------------------------------------------------------------------------- ages


def _comparator(text: str | None) -> str | None:
    if not text:
        return None
    match = _COMP_RE.fullmatch(text.strip())
    if not match:
        return None
    return _COMPARATORS[int((match.lastgroup or "c0")[1:])][1]


def _years(number: str, unit: str | None) -> float:
    key = (unit or "y").strip().lower()[:1]
    value = float(number) * _UNIT_YEARS.get(key, 1.0)
    return round(value, 2) if key != "y" else value


def _from_value(group: dict[str, Any], start: int, end: int) -> AgeMention | None:
    """Build an age from the shared VALUE groups (comp, n1, u1, comp2, n2, u2, post)."""
    unit = group.get("u1") or group.get("u2") or group.get("u")
    low_value = _years(group["n1"], group.get("u1") or unit)
    comp = _comparator(group.get("comp"))
    if group.get("post_ge") or group.get("post_plus"):
        comp = ">=" if comp is None else comp
    elif group.get("post_le"):
        comp = "<=" if comp is None else comp
    age = AgeMention(start, end)
    if group.get("n2"):
        high_value = _years(group["n2"], group.get("u2") or unit)
        if high_value < low_value:
            return None
        age.low, age.high = low_value, high_value
        age.low_inclusive = comp != ">"
        age.high_inclusive = _comparator(group.get("comp2")) != "<"
    elif group.get("between"):
        return None
    elif comp in (">=", ">"):
        age.low, age.low_inclusive, age.comparator = low_value, comp == ">=", comp
    elif comp in ("<=", "<"):
        age.high, age.high_inclusive, age.comparator = low_value, comp == "<=", comp
    else:
        age.years, age.comparator = low_value, "="
    return age if _plausible(age) else None


def _plausible(age: AgeMention) -> bool:
    return all(v is None or 0 <= v <= 120 for v in (age.years, age.low, age.high))


def _keyword_ages(text: str) -> list[AgeMention]:
    out = []
    for match in _KEYWORD_AGE.finditer(text):
        if _EVENT_AGE_BEFORE.search(text, max(0, match.start() - 16), match.start()):
            continue  # "diagnosed at age 30": an event, not the current age
        age = _from_value(match.groupdict(), match.start(), match.end())
        if age:
            out.append(age)
    return out


def _number_first(regex: re.Pattern[str], text: str) -> list[tuple[re.Match[str], dict[str, Any], int]]:
    """Matches of a number-first pattern with the comparator read from just before it."""
    out = []
    for match in regex.finditer(text):
        start = match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue
        groups = match.groupdict()
        before = _BEFORE_NUMBER.search(text, max(0, start - 32), start)
        if before and before.start() < start:
            groups["comp"], groups["between"] = before.group("comp"), before.group("between")
            start = before.start()
        out.append((match, groups, start))
    return out


def _marked_ages(text: str) -> list[AgeMention]:
    out = []
    for match, groups, start in _number_first(_MARKED_AGE, text):
        age = _from_value(groups, start, match.end())
        if age:
            out.append(age)
    for match in _YO_AGE.finditer(text):
        age = AgeMention(match.start(), match.end(), years=float(match.group("n1")), comparator="=")
        if _plausible(age):
            out.append(age)
    return out


def _bare_ages(text: str) -> list[AgeMention]:
    out = []
    for match, groups, start in _number_first(_BARE_AGE, text):
        window = text[max(0, start - 40) : start]
        bounded = any(groups.get(g) for g in ("comp", "n2", "post_ge", "post_le", "post_plus"))
        if not (_PERSON_BEFORE.search(window) or (bounded and _LINE_START.search(window))):
            continue  # "5 years" alone is a duration; "≥ 18 years" opening a criterion is an age
        if _NOT_AGE_BEFORE.search(window) or _NOT_AGE_AFTER.match(text, match.end()):
            continue
        age = _from_value(groups, start, match.end())
        if age:
            out.append(age)
    return out


def _than_ages(text: str) -> list[AgeMention]:
    out = []
    for match in _THAN_AGE.finditer(text):
        word = (match.group("word") or match.group("word2")).lower()
        number = match.group("n1") or match.group("n1b")
        unit = match.group("u1") or match.group("u1b")
        person = _PERSON_BEFORE.search(text, max(0, match.start() - 40), match.start())
        if match.group("word") and not unit and not person:
            continue  # "older than 65" needs a person word or a unit
        value = _years(number, unit)
        age = AgeMention(match.start(), match.end())
        if word in ("older", "over", "above", "beyond"):
            age.low, age.low_inclusive, age.comparator = value, False, ">"
        else:
            age.high, age.high_inclusive, age.comparator = value, False, "<"
        if _plausible(age):
            out.append(age)
    return out


_BOUND_AFTER = re.compile(r"\s*(?:years?|yrs?)?\s*(?:of\s+age\s*)?(?:(?:or|and)\s+(?:older|over|above|more|"
                          r"greater|younger|less|under)|to\s+\d|-\s*\d|\+)", re.IGNORECASE)


def _sex_letter_ages(text: str) -> list[AgeMention]:
    out = []
    for regex in (_SEX_AGE, _AGE_SEX):
        for match in regex.finditer(text):
            if _TEMPERATURE_BEFORE.search(text, max(0, match.start() - 20), match.start()):
                continue
            if _BOUND_AFTER.match(text, match.end()):
                continue  # "male or female, 18 years or older" is a criterion bound, not a patient's age
            value = float(match.group("n1"))
            if value <= 110:
                out.append(AgeMention(match.start(), match.end(), years=value, comparator="="))
    return out


def _decade_ages(text: str) -> list[AgeMention]:
    out: list[AgeMention] = []
    if not _DECADE_TRIGGER.search(text):
        return out
    for match in _DECADE.finditer(text):
        pron, quarter = match.group("pron"), (match.group("q") or "").lower()
        if not quarter and (pron is None or pron.lower() == "the"):
            continue  # "the 1980s"/"80s" alone are not ages
        base = int(match.group("d")) if match.group("d") else _DECADE_WORDS[match.group("dw").lower()]
        low, high = {"": (0, 9), "early": (0, 3), "mid": (3, 7), "late": (7, 9)}[quarter]
        out.append(AgeMention(match.start(), match.end(), low=float(base + low), high=float(base + high)))
    return out


def _word_ages(text: str) -> list[tuple[AgeMention, bool]]:
    """Ages from words; the flag tells whether the words carry a number ("children under 12")."""
    out = []
    for match in _WORD_AGE.finditer(text):
        if not match.group("n1") and _OTHER_PERSON_BEFORE.search(text[max(0, match.start() - 20):match.start()]):
            continue  # "harm to the infant", "a fetus or newborn": another person, not the participant
        age = AgeMention(match.start(), match.end())
        if match.group("adult"):
            age.low, age.comparator = 18.0, ">="
        elif match.group("child"):
            age.high, age.high_inclusive, age.comparator = float(match.group("n1")), False, "<"
        elif match.group("newborn"):
            age.low, age.high = 0.0, round(28 / 365.25, 3)
        elif match.group("infant"):
            age.low, age.high, age.high_inclusive = 0.0, 1.0, False
        elif match.group("adolescent"):
            age.low, age.high = 12.0, 17.0
        else:
            age.low, age.comparator = 65.0, ">="
        out.append((age, bool(match.group("n1"))))
    return out


def _mark_family(text: str, age: AgeMention) -> None:
    after = _FAMILY_AFTER.match(text, age.end)
    before = _FAMILY_BEFORE.search(text, max(0, age.start - 40), age.start)
    age.family = bool(after or before)


def _resolve(mentions: list[Any]) -> list[Any]:
    """Keep the leftmost-longest of overlapping mentions."""
    mentions.sort(key=lambda m: (m.start, -(m.end - m.start)))
    kept: list[Any] = []
    for mention in mentions:
        if kept and mention.start < kept[-1].end:
            continue
        kept.append(mention)
    return kept


def extract_ages(text: str) -> list[AgeMention]:
    """Pure text -> ages (char offsets into ``text``)."""
    numeric = _resolve(
        _keyword_ages(text) + _marked_ages(text) + _bare_ages(text) + _than_ages(text)
        + _sex_letter_ages(text) + _decade_ages(text)
    )
    # "adults" only counts when no number is near it ("Adults aged 18-65" says more).
    words = [
        age for age, has_number in _word_ages(text)
        if has_number or not any(abs(n.start - age.start) < 60 for n in numeric)
    ]
    ages = [a for a in _resolve(numeric + words) if not _OTHER_AGE_BEFORE.search(text[max(0, a.start - 30):a.start])]
    for age in ages:
        _mark_family(text, age)
    return ages


# A population word after an article or "fetus or" names someone else ("harmful to the infant").
_OTHER_PERSON_BEFORE = _lazy(r"(?:\b(?:the|a|an|her|their|your|unborn)|fetus or|fetuses or|foetus or)\s+$",
                             re.IGNORECASE)

# The age of a pregnancy, a gestation or a disease is not the person's age ("gestational age < 23 weeks").
_OTHER_AGE_BEFORE = _lazy(r"(?:gestation(?:al)?|post-?menstrual|corrected|bone|skeletal|fetal|pregnancy)"
                          r"(?:\s+age)?\s*(?:of|is|was|:|at)?\s*$", re.IGNORECASE)


# --------------------------------------------------------------------------- sex


def extract_sexes(text: str) -> list[SexMention]:
    """Pure text -> sex mentions (explicit words, pronouns, "all", childbearing)."""
    found = _resolve(_group_sexes(text) + _explicit_sexes(text))
    for match in _PRONOUN.finditer(text):  # whole words: never inside an explicit mention
        sex = "female" if match.group("f") else "male"
        found.append(SexMention(match.start(), match.end(), sex, "pronoun"))
    found.sort(key=lambda m: m.start)
    return found


def _group_sexes(text: str) -> list[SexMention]:
    """Criterion wording: "women of childbearing potential", "men and women", "both sexes"."""
    out = [SexMention(m.start(), m.end(), "female", childbearing=True) for m in _CHILDBEARING.finditer(text)]
    for match in _SEX_ALL.finditer(text):
        a, b = match.group("a"), match.group("b")
        if not a or _sex_key(a) != _sex_key(b):
            out.append(SexMention(match.start(), match.end(), "all"))
    return out


def _explicit_sexes(text: str) -> list[SexMention]:
    out = []
    for regex in (_SEX_WORD, _TITLE):
        for match in regex.finditer(text):
            if not _FAMILY_BEFORE.search(text, max(0, match.start() - 40), match.start()):
                out.append(SexMention(match.start(), match.end(), "female" if match.group("f") else "male"))
    for regex in (_LETTER_SEX, _SEX_AGE, _AGE_SEX):
        for match in regex.finditer(text):
            start = match.start()
            if regex is _SEX_AGE and _TEMPERATURE_BEFORE.search(text, max(0, start - 20), start):
                continue  # "temperature 101 F"
            sex = "female" if match.group("sx")[0] in "FfWw" else "male"
            out.append(SexMention(match.start("sx"), match.end("sx"), sex))
    return out


def _sex_key(word: str) -> str:
    word = word.lower()
    return "f" if word.startswith(("wom", "fem", "girl")) else "m"


# --------------------------------------------------------------------------- spaCy component


@Language.factory(
    "ctm_demographics",
    assigns=["doc.spans"],
    default_config={"age_spans_key": AGE_SPANS_KEY, "sex_spans_key": SEX_SPANS_KEY, "max_chars": 50_000},
)
def make_demographics(
    nlp: Language, name: str, age_spans_key: str, sex_spans_key: str, max_chars: int
) -> "DemographicsRecognizer":
    return DemographicsRecognizer(
        nlp, name, age_spans_key=age_spans_key, sex_spans_key=sex_spans_key, max_chars=max_chars
    )


class DemographicsRecognizer:
    """spaCy component writing age and sex span groups."""

    def __init__(
        self,
        nlp: Language,
        name: str = "ctm_demographics",
        *,
        age_spans_key: str = AGE_SPANS_KEY,
        sex_spans_key: str = SEX_SPANS_KEY,
        max_chars: int = 50_000,
    ) -> None:
        self.name = name
        self.age_spans_key = age_spans_key
        self.sex_spans_key = sex_spans_key
        self.max_chars = max_chars
        Span.set_extension("ctm_age", default=None, force=True)
        Span.set_extension("ctm_sex", default=None, force=True)
        Span.set_extension("ctm_sex_strength", default=None, force=True)
        Span.set_extension("ctm_childbearing", default=False, force=True)

    def __call__(self, doc: Doc) -> Doc:
        text = doc.text[: self.max_chars]
        ages, sexes, seen_ages, seen_sexes = [], [], set(), set()
        for age in extract_ages(text):
            span = doc.char_span(age.start, age.end, label="age", alignment_mode="expand")
            if span is not None and (span.start, span.end) not in seen_ages:
                seen_ages.add((span.start, span.end))
                span._.ctm_age = age.to_dict()
                ages.append(span)
        for mention in extract_sexes(text):
            span = doc.char_span(mention.start, mention.end, label=mention.sex, alignment_mode="expand")
            if span is not None and (span.start, span.end) not in seen_sexes:
                seen_sexes.add((span.start, span.end))
                span._.ctm_sex = mention.sex
                span._.ctm_sex_strength = mention.strength
                span._.ctm_childbearing = mention.childbearing
                sexes.append(span)
        doc.spans[self.age_spans_key] = ages
        doc.spans[self.sex_spans_key] = sexes
        return doc


# --------------------------------------------------------------------------- readers


def _text_span(span: Span) -> TextSpan:
    return TextSpan(span.start_char, span.end_char, span.text)


def read_age(doc: Doc, spans_key: str = AGE_SPANS_KEY) -> dict[str, Any] | None:
    """The patient's age: first exact age not about a relative, else the first other age.

    Returns the ``ctm_age`` dict plus ``"span"`` (models.domain.Span), or None.
    """
    spans = [s for s in doc.spans.get(spans_key, []) if s._.ctm_age and not s._.ctm_age.get("family")]
    chosen = next((s for s in spans if s._.ctm_age["years"] is not None), None)
    chosen = chosen or next((s for s in spans if s._.ctm_age["comparator"] is None), None)
    chosen = chosen or (spans[0] if spans else None)
    if chosen is None:
        return None
    return {**chosen._.ctm_age, "span": _text_span(chosen)}


def read_sex(doc: Doc, spans_key: str = SEX_SPANS_KEY) -> tuple[str, TextSpan] | None:
    """The patient's sex: first explicit female/male mention, else the majority of pronouns."""
    spans = [s for s in doc.spans.get(spans_key, []) if s._.ctm_sex in ("female", "male")]
    explicit = [s for s in spans if s._.ctm_sex_strength == "explicit" and not s._.ctm_childbearing]
    if explicit:
        return explicit[0]._.ctm_sex, _text_span(explicit[0])
    pronouns = [s for s in spans if s._.ctm_sex_strength == "pronoun"]
    if not pronouns:
        return None
    female = sum(1 for s in pronouns if s._.ctm_sex == "female")
    male = len(pronouns) - female
    sex = pronouns[0]._.ctm_sex if female == male else ("female" if female > male else "male")
    first = next(s for s in pronouns if s._.ctm_sex == sex)
    return sex, _text_span(first)
