"""``ctm_measurements``: labs, vitals and scores with value, unit and comparator.

Reads patient text ("platelets 60,000/mm3, creatinine 1.4 mg/dL, BP 150/95") and
single criterion lines ("UPCR >= 1.5 g/g", "ALT or AST > 2.5 x ULN", "ECOG 0-1",
"ANA titer ≥ 1:80", "positive anti-dsDNA", "low complement (C3/C4)").

How it works: lab names and their synonyms (``data/rules/labs.json``) are compiled
into two trie-shaped regexes (case-insensitive and case-sensitive) that scan
``doc.text`` once; after each name (or group "ALT or AST") a small anchored
parser reads comparator, value, unit, range and "x ULN" inside a bounded window.
Every pattern is linear: no nested quantifiers over the same characters, and the
input is cut at ``max_chars``. Char offsets are mapped to tokens with
``doc.char_span(..., alignment_mode="expand")``.

Output: ``doc.spans[spans_key]`` (overlaps allowed; label = canonical lab name)
and ``span._.ctm_measurement``, a plain dict with keys ``name, kind, value,
value_high, unit, comparator, normalized_value, normalized_value_high,
normalized_unit, polarity``. Several facts can share one span ("BP 150/95" ->
sbp and dbp), so the dict is looked up per span id (a getter), not stored by
char offsets.
"""
# No ``from __future__ import annotations`` here: spaCy resolves the factory's
# argument annotations at add_pipe time and cannot evaluate string annotations.
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from spacy.language import Language
from spacy.tokens import Doc, Span

from models.domain import Comparator, LabFact
from models.domain import Span as TextSpan
from nlp import units
from nlp.rulefiles import read_json

__all__ = [
    "DEFAULT_LABS_PATH",
    "SPANS_KEY",
    "MENTIONS_KEY",
    "LabRulesError",
    "LabRule",
    "FindingRule",
    "LabRules",
    "Measurement",
    "MeasurementExtractor",
    "MeasurementRecognizer",
    "load_lab_rules",
    "measurement_to_lab_fact",
    "make_measurements",
    "read_comparator",
]

DEFAULT_LABS_PATH = Path(__file__).resolve().parents[2] / "data" / "rules" / "labs.json"
SPANS_KEY = "ctm_measurements"
# Every lab name, with or without a value: a criterion may name a test alone in a list of alternatives
# ("ANA >= 1:80 or anti-dsDNA"), and only the criterion parser can tell what a bare name requires.
MENTIONS_KEY = "ctm_lab_mentions"
EXTENSION = "ctm_measurement"
_REGISTRY = "ctm_measurement_values"
_KINDS = frozenset({"lab", "vital", "score"})
_WINDOW = 120  # characters read after a name for its value

# --------------------------------------------------------------------------- rules


class LabRulesError(ValueError):
    """labs.json is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class LabRule:
    """One lab, vital or score; built from a labs.json entry by ``from_dict``."""

    name: str
    kind: str
    canonical_unit: str | None = None
    synonyms: tuple[str, ...] = ()
    cs_synonyms: tuple[str, ...] = ()
    postfix_synonyms: tuple[str, ...] = ()
    unitless: tuple[tuple[float, str | None], ...] = ()
    expands_to: tuple[str, ...] = ()
    pair: tuple[str, ...] = ()
    letter_grades: tuple[str, ...] = ()
    allow_sum: bool = False

    _ALLOWED_KEYS = frozenset(
        {
            "name", "kind", "canonical_unit", "synonyms", "cs_synonyms", "postfix_synonyms",
            "unitless", "expands_to", "pair", "letter_grades", "allow_sum", "description",
        }
    )

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "LabRule":
        if not isinstance(data, dict):
            raise LabRulesError(f"{source}: a lab must be an object, got {type(data).__name__}")
        where = f"{source}: lab {data.get('name')!r}"
        unknown = sorted(set(data) - cls._ALLOWED_KEYS)
        if unknown:
            raise LabRulesError(f"{where}: unknown keys {unknown} (allowed: {sorted(cls._ALLOWED_KEYS)})")
        name, kind = data.get("name"), data.get("kind")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise LabRulesError(f"{where}: 'name' must be a lower-case key like 'upcr'")
        if kind not in _KINDS:
            raise LabRulesError(f"{where}: 'kind' must be one of {sorted(_KINDS)}")
        unit = data.get("canonical_unit")
        if unit is not None and not isinstance(unit, str):
            raise LabRulesError(f"{where}: 'canonical_unit' must be a string or null")
        lists = {k: _str_list(data.get(k, []), f"{where}: '{k}'") for k in (
            "synonyms", "cs_synonyms", "postfix_synonyms", "expands_to", "pair", "letter_grades")}
        if not (lists["synonyms"] or lists["cs_synonyms"] or lists["postfix_synonyms"]):
            raise LabRulesError(f"{where}: needs at least one synonym")
        if lists["pair"] and len(lists["pair"]) != 2:
            raise LabRulesError(f"{where}: 'pair' must name exactly two labs")
        allow_sum = data.get("allow_sum", False)
        if not isinstance(allow_sum, bool):
            raise LabRulesError(f"{where}: 'allow_sum' must be true or false")
        return cls(
            name=name, kind=kind, canonical_unit=unit, allow_sum=allow_sum,
            unitless=_unitless_rules(data.get("unitless", []), where), **lists,
        )

    def assumed_unit(self, value: float) -> str | None:
        """Unit to assume when the text gives none (None: unknown)."""
        for minimum, unit in self.unitless:
            if value >= minimum:
                return unit
        return self.canonical_unit


@dataclass(frozen=True)
class FindingRule:
    """A word stating a result without a value: "thrombocytopenia" -> platelets low."""

    synonyms: tuple[str, ...]
    names: tuple[str, ...]
    polarity: str

    _ALLOWED_KEYS = frozenset({"synonyms", "names", "polarity", "description"})

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "FindingRule":
        if not isinstance(data, dict):
            raise LabRulesError(f"{source}: a finding must be an object")
        where = f"{source}: finding {data.get('synonyms', ['?'])[:1]}"
        unknown = sorted(set(data) - cls._ALLOWED_KEYS)
        if unknown:
            raise LabRulesError(f"{where}: unknown keys {unknown} (allowed: {sorted(cls._ALLOWED_KEYS)})")
        synonyms = _str_list(data.get("synonyms"), f"{where}: 'synonyms'")
        names = _str_list(data.get("names"), f"{where}: 'names'")
        polarity = data.get("polarity")
        if not synonyms or not names or not isinstance(polarity, str):
            raise LabRulesError(f"{where}: needs synonyms, names and a polarity string")
        return cls(synonyms=synonyms, names=names, polarity=polarity)


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
        raise LabRulesError(f"{where} must be a list of non-empty strings")
    return tuple(value)


def _unitless_rules(value: Any, where: str) -> tuple[tuple[float, str | None], ...]:
    ok = isinstance(value, list) and all(
        isinstance(r, list) and len(r) == 2 and isinstance(r[0], (int, float))
        and not isinstance(r[0], bool) and (r[1] is None or isinstance(r[1], str))
        for r in value
    )
    if not ok:
        raise LabRulesError(f"{where}: 'unitless' must be a list of [min_value, unit-or-null]")
    return tuple((float(r[0]), r[1]) for r in value)


@dataclass(frozen=True)
class LabRules:
    path: str
    labs: dict[str, LabRule]
    findings: tuple[FindingRule, ...] = ()


_TOP_KEYS = frozenset({"description", "labs", "findings"})


@lru_cache(maxsize=8)
def load_lab_rules(path: str | Path | None = None) -> LabRules:
    """Read and validate labs.json (cached per path); errors name the file."""
    source = str(Path(path) if path is not None else DEFAULT_LABS_PATH)
    data = read_json(source, LabRulesError, "lab rules")
    if not isinstance(data, dict):
        raise LabRulesError(f"{source}: top level must be an object")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise LabRulesError(f"{source}: unknown keys {unknown} (allowed: {sorted(_TOP_KEYS)})")
    labs: dict[str, LabRule] = {}
    for raw in data.get("labs", []):
        rule = LabRule.from_dict(raw, source)
        if rule.name in labs:
            raise LabRulesError(f"{source}: lab {rule.name!r} is defined twice")
        labs[rule.name] = rule
    findings = tuple(FindingRule.from_dict(raw, source) for raw in data.get("findings", []))
    for rule in labs.values():
        for ref in rule.expands_to + rule.pair:
            if ref not in labs:
                raise LabRulesError(f"{source}: lab {rule.name!r} refers to unknown lab {ref!r}")
    for finding in findings:
        for ref in finding.names:
            if ref not in labs:
                where = f"{source}: finding {finding.synonyms[0]!r}"
                raise LabRulesError(f"{where} refers to unknown lab {ref!r}")
    return LabRules(path=source, labs=labs, findings=findings)


# --------------------------------------------------------------------------- patterns


class LazyRegex:
    """A regex compiled on first use, so importing a component stays cheap.

    Behaves like ``re.Pattern`` for ``match``/``search``/``finditer``/``fullmatch``...
    (attribute access is delegated to the compiled pattern).
    """

    __slots__ = ("_args", "_compiled")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._args = (pattern, flags)
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> Any:
        if self._compiled is None:
            self._compiled = re.compile(*self._args)
        return getattr(self._compiled, name)


_lazy = LazyRegex

_SEP = r"[\s\-‐–]{1,2}"
_SEP_CHARS = _lazy(r"[\s\-‐–]+")

_NUM = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,12})(?:\.\d{1,6})?(?![\d])|\.\d{1,6}(?![\d])"
_NUMBER = _lazy(r"(?P<num>" + _NUM + r")(?P<exp>[eE][+-]?\d{1,2}(?![\d]))?(?P<k>[kK](?![A-Za-z0-9/]))?")
# A titre "1:N" is one value, N, wherever it appears (also before a full stop or a comma):
# its "1" is never read as a number of its own.
_TITER = _lazy(r"1\s?:\s?(?P<t>\d{1,6})(?!\d|\.\d)")
_TITER_SLASH = _lazy(r"1\s?/\s?(?P<t>\d{2,6})(?!\d|\.\d)")
_RATIO_AFTER = _lazy(r"\s?:\s?\d")
_SUM = _lazy(r"(?P<a>\d)\s?\+\s?(?P<b>\d)(?![\d.])(?:\s?=\s?(?P<c>\d{1,2})(?![\d.]))?")
_LETTERS = _lazy(
    r"(?:\d\s?)?(?P<first>[A-E])(?![A-Za-z0-9])"
    r"(?P<rest>(?:\s?(?:,|/|or|and|and/or)\s?(?:\d\s?)?[A-E](?![A-Za-z0-9])){0,4})"
)
_LETTER = _lazy(r"(?<![A-Za-z])[A-E](?![A-Za-z0-9])")

_COMPARATORS: tuple[tuple[str, str], ...] = (
    (r"(?:greater|more|higher|larger)\s+than\s+or\s+equal(?:\s+to)?", ">="),
    (r"equal\s+to\s+or\s+(?:greater|more|higher|larger)\s+than", ">="),
    (r"(?:less|lower|smaller|fewer)\s+than\s+or\s+equal(?:\s+to)?", "<="),
    (r"equal\s+to\s+or\s+(?:less|lower|smaller)\s+than", "<="),
    (r"not?\s+(?:more|greater|higher|larger)\s+than|at\s+most|up\s+to|(?:a\s+)?maximum\s+(?:of\s+)?"
     r"|not\s+(?:to\s+)?exceed(?:ing)?|does\s+not\s+exceed|max\.?(?=\s)", "<="),
    (r"not?\s+(?:less|lower|smaller|fewer)\s+than|at\s+least|(?:a\s+)?minimum\s+(?:of\s+)?"
     r"|min\.(?=\s)", ">="),
    (r"(?:greater|more|higher|larger)\s+than|above|over|exceed(?:s|ing)?|in\s+excess\s+of", ">"),
    (r"(?:less|lower|smaller|fewer)\s+than|below|under", "<"),
    (r"\\?>\s?=|=\s?>|≥|⩾|≧|&gt;=|>/=|â‰¥", ">="),
    (r"\\?<\s?=|=\s?<|≤|⩽|≦|&lt;=|</=|â‰¤", "<="),
    (r"\\?>|&gt;", ">"),
    (r"\\?<|&lt;", "<"),
    (r"==?|equal\s+to|equals|approximately|about|around|~|≈|of\s+approximately", "="),
)
_COMP_GROUPS = {f"c{i}": value for i, (_, value) in enumerate(_COMPARATORS)}
_COMP = _lazy(
    "|".join(f"(?P<c{i}>{pattern})" for i, (pattern, _) in enumerate(_COMPARATORS)), re.IGNORECASE
)
_COMP_BARE = "(?:" + "|".join(pattern for pattern, _ in _COMPARATORS) + ")"
_POST_COMP = _lazy(
    r"\s{0,2}(?:(?P<ge>(?:or|and)\s+(?:higher|more|greater|above|over|larger)|or\s+greater)"
    r"|(?P<le>(?:or|and)\s+(?:less|lower|below|under|fewer|smaller)))(?![A-Za-z])",
    re.IGNORECASE,
)
_BETWEEN = _lazy(r"(?:between|range\s+(?:of\s+)?)\s+", re.IGNORECASE)
_RANGE_SEP = _lazy(r"\s{0,2}(?:-|–|—|‐|to|through)\s{0,2}", re.IGNORECASE)
_AND_SEP = _lazy(r"\s{0,2}(?:and|-|–|to|,)\s{0,2}", re.IGNORECASE)
_SECOND_BOUND = _lazy(r"\s{0,2}(?:,\s?)?(?:and|but)?\s{0,2}", re.IGNORECASE)
_LIST_SEP = _lazy(r"\s{0,2}(?:,\s?(?:or\s+|and\s+)?|or\s+|and\s+)\s{0,2}", re.IGNORECASE)
_PAIR_SEP = _lazy(r"\s?/\s?")
_UNIT_GAP = _lazy(r"[ \t]{0,2}")
_LIMIT_ONLY = _lazy(
    r"(?:the\s+)?(?:institutional\s+)?(?:(?P<uln>ULN|upper\s+limit\s+of\s+(?:the\s+)?normal)"
    r"|(?P<lln>LLN|lower\s+limit\s+of\s+(?:the\s+)?normal))(?![A-Za-z])",
    re.IGNORECASE,
)
_OUT_OF = _lazy(r"\s?/\s?\d{1,3}(?![\d.])")
_DIPSTICK = _lazy(r"\+(?![\d+])")
_FILLER = _lazy(
    r"(?:[\s:,)]+|(?:of|was|were|is|are|be|been|being|has|had|have|level|levels|count|counts|value|values"
    r"|titer|titre|score|scores|total|result|results|reading|measured|measuring|remains?|remained|currently"
    r"|now|recently|must|should|shall|will|needs?\s+to|required|concentration|index|points?"
    r"|to\s+be|on\s+screening|at\s+screening|at\s+baseline|of\s+the|peaked\s+at|down\s+to"
    r"|(?:dropped|fell|rose|declined|improved|worsened|increased|decreased|went\s+(?:up|down))\s+to)"
    r"(?![A-Za-z0-9]))",
    re.IGNORECASE,
)
_SCORE_FILLER = _lazy(r"(?:grade|class|category|stage)(?![A-Za-z0-9])", re.IGNORECASE)
# Principle: a value restated after its lab name ("albumin has climbed back to 3.4", "GFR this morning 61")
# still belongs to it: a short run (at most _MAX_GAP_WORDS) of filler words, adverbs and verbs may stand
# between name and value, but the run never crosses another lab name, a clause end (only spaces separate
# its words), a negation or result word, and the value it reaches must not count times or events.
_MAX_GAP_WORDS = 5
_GAP_WORD = _lazy(
    r"(?!(?:not|no|never|without|neither|nor|positive|negative|normal|abnormal|elevated|raised|increased"
    r"|decreased|reduced|depressed|detected|undetected|undetectable|detectable|high|low|pending|unknown"
    r"|unavailable|ordered|requested|planned)(?![A-Za-z]))"
    r"(?:is|was|were|are|has|have|had|been|be|now|today|tonight|currently|still|again|also|then|just|most"
    r"|recent|latest|last|repeat|value|values|level|levels|came|come|comes|back|down|up|to|at|of|on|the"
    r"|her|his|their|its|this|that|morning|evening|admission|presentation|discharge|diagnosis|baseline"
    r"|screening|follow-?up|rose|risen|fell|fallen|went|gone|got|sits|sat|stands|stood|stays|stayed|remain"
    r"|crept|grew|grown|kept|held|ran|run|came|become|became"
    r"|reading|result|lab|labs|[a-z]{2,14}(?:ed|ly|ing))(?![A-Za-z0-9-])[ \t]{1,3}",
    re.IGNORECASE,
)
# After a value reached over filler words: "checked 4 times", "transfused 2 units", "for 3 years".
_GAP_COUNTED = _lazy(
    r"[\s-]{0,2}(?:times?|occasions?|episodes?|units?|doses?|transfusions?|cycles?|infusions?|courses?"
    r"|years?|yrs?|months?|mos?|weeks?|wks?|days?|hours?|hrs?)(?![A-Za-z])",
    re.IGNORECASE,
)
# Dose units after a lab name mean a drug dose ("pulse 1 g"), unless the lab converts them.
_DOSE_UNITS = frozenset({"mg", "g", "ug", "mcg", "kg", "mg/kg", "mL", "IU", "mg/day", "g/day"})
_PAREN = _lazy(r"\(\s?(?P<u>[^()\n]{1,60}?)\s?\)")
_CONNECTOR = _lazy(r"[\s(),/&]{0,4}(?:(?:and/or|or|and|&)[\s(]{1,3})?")
_CLOSE = _lazy(r"\s{0,2}\)")
_MAX_GROUP = 8  # names sharing one value: "ALT, AST, ALP and bilirubin"
_HAS_CONNECTOR = _lazy(r"[(),/&]|\bor\b|\band\b")

_POLARITY_WORDS = (
    r"positive|negative|pos|neg|not\s+detected|undetectable|detectable|detected|non-?reactive|reactive"
    r"|elevated|raised|increased|high|low|decreased|reduced|depressed|within\s+normal\s+limits|normal|WNL"
)
_POLARITY_AFTER = _lazy(
    r"(?:\s{0,2}(?:antibod(?:y|ies)|abs?|tests?|testing|titers?|titres?|serology|levels?|was|were|is|are"
    r"|remains?|remained|:|-)(?![A-Za-z])){0,3}\s{0,2}(?P<pol>(?:" + _POLARITY_WORDS + r")(?![A-Za-z])"
    r"|\(\s?[+]\s?\)|\(\s?[-−]\s?\)|\+(?![\w+]))",
    re.IGNORECASE,
)
_POLARITY_BEFORE = _lazy(
    r"(?P<pol>positive|negative|elevated|raised|increased|high|low|decreased|reduced|depressed|abnormal"
    r"|normal|detectable|undetectable|high[\s-]titer|high[\s-]titre)[\s-]{1,2}(?:for\s+)?(?:an?\s+|the\s+)?"
    r"(?:(?:serum|plasma|urine|urinary|blood|circulating|persistent(?:ly)?|strongly|weakly|markedly)\s+)?"
    r"(?:\(\s?)?$",
    re.IGNORECASE,
)
_TITER_AFTER_POLARITY = _lazy(
    r"\s{0,2}(?:at|with|,|\()?\s{0,2}(?:an?\s+)?(?:titers?|titres?)?\s{0,2}(?:of\s+)?(?:[≥>]=?\s?)?"
    r"1\s?:\s?(?P<t>\d{1,6})(?!\d|\.\d)",
    re.IGNORECASE,
)
_NEGATED_BEFORE = _lazy(
    r"(?:\bno|\bnot|\bwithout|\babsence\s+of|\babsent|\bnegative\s+for|\bdenies|\bdenied|\bfree\s+of"
    r"|\bresolution\s+of|\bresolved)\b[^.;:\n]{0,24}$",
    re.IGNORECASE,
)
_POLARITY_MAP = {
    "positive": "positive", "pos": "positive", "detected": "positive", "detectable": "positive",
    "reactive": "positive", "+": "positive", "(+)": "positive",
    "negative": "negative", "neg": "negative", "notdetected": "negative", "undetectable": "negative",
    "nonreactive": "negative", "non-reactive": "negative", "(-)": "negative", "(−)": "negative",
    "elevated": "elevated", "raised": "elevated", "increased": "elevated",
    "high": "high", "hightiter": "high", "hightitre": "high", "high-titer": "high", "high-titre": "high",
    "low": "low", "decreased": "low", "reduced": "low", "depressed": "low",
    "normal": "normal", "withinnormallimits": "normal", "wnl": "normal", "abnormal": "abnormal",
}


def read_comparator(text: str, pos: int = 0) -> tuple[str, int] | None:
    """Comparator ("<=", ">", ...) written at ``pos`` ("≤", "no more than", "up to") and where it ends."""
    match = _COMP.match(text, pos)
    return (_comparator(match), match.end()) if match else None


def _polarity(word: str) -> str | None:
    key = re.sub(r"\s+", "", word.lower())
    return _POLARITY_MAP.get(key)


def _comparator(match: re.Match[str]) -> str:
    return _COMP_GROUPS[match.lastgroup or "c0"]


def _key(text: str, case_sensitive: bool = False) -> str:
    folded = _SEP_CHARS.sub("", text).replace("’", "'")
    return folded if case_sensitive else folded.lower()


def _trie_pattern(words: Iterable[str], case_sensitive: bool) -> str:
    """One regex alternation shaped as a trie, so each position tries few branches."""
    root: dict[str, dict] = {}
    for word in words:
        word = word.strip().replace("’", "'")
        # "anti-dsDNA" matches "anti dsDNA", "anti-dsDNA" and "antidsDNA": the
        # separator branch needs one character, the joined spelling is its own path.
        for chars in {_SEP_CHARS.sub("\x00", word), _SEP_CHARS.sub("", word)}:
            node = root
            for ch in chars if case_sensitive else chars.lower():
                node = node.setdefault(ch, {})
            node[""] = {}
    return _emit_trie(root)


def _emit_trie(node: dict[str, dict]) -> str:
    branches = []
    for ch in sorted(k for k in node if k):
        piece = _SEP if ch == "\x00" else ("['’]" if ch == "'" else re.escape(ch))
        branches.append(piece + _emit_trie(node[ch]))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if "" in node:
        return "(?:" + body + ")?"
    return body


def _name_regex(words: list[str], case_sensitive: bool) -> re.Pattern[str] | None:
    if not words:
        return None
    firsts = {w.strip()[0] for w in words}
    if not case_sensitive:
        firsts |= {c.upper() for c in firsts} | {c.lower() for c in firsts}
    # The leading class lets the regex engine skip characters that cannot start a name.
    first = "(?=[" + "".join(re.escape(c) for c in sorted(firsts)) + "])"
    pattern = first + r"(?<![A-Za-z0-9])(?:" + _trie_pattern(words, case_sensitive) + r")(?![A-Za-z0-9])"
    return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)


# --------------------------------------------------------------------------- extraction


@dataclass
class Measurement:
    """One fact read from text (char offsets into the text given to the extractor)."""

    start: int
    end: int
    name: str
    kind: str
    value: float | None = None
    value_high: float | None = None
    unit: str | None = None
    comparator: str | None = None
    polarity: str | None = None
    normalized_value: float | None = None
    normalized_value_high: float | None = None
    normalized_unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "value": self.value,
            "value_high": self.value_high,
            "unit": self.unit,
            "comparator": self.comparator,
            "normalized_value": self.normalized_value,
            "normalized_value_high": self.normalized_value_high,
            "normalized_unit": self.normalized_unit,
            "polarity": self.polarity,
        }


@dataclass(frozen=True)
class _Entry:
    lab: LabRule | None = None
    finding: FindingRule | None = None
    postfix: bool = False

    def names(self) -> tuple[str, ...]:
        if self.lab is not None:
            return self.lab.expands_to or (self.lab.name,)
        return self.finding.names if self.finding else ()


@dataclass(frozen=True)
class _NameHit:
    start: int
    end: int
    entry: _Entry


@dataclass
class _Tail:
    end: int
    value: float | None = None
    value_high: float | None = None
    second: float | None = None
    unit: str | None = None
    comparator: str = "="
    letters: tuple[str, ...] = ()


@dataclass(frozen=True)
class _TailContext:
    letters: bool  # letter grades allowed ("BILAG A or B")
    pair: bool  # "150/95" gives two values
    sums: bool  # "4+3" is summed
    score: bool  # every name is a score: lists "0 or 1", "24/30", "class B"
    titer_slash: bool  # "1/160" is a titer


@dataclass
class _Group:
    hits: list[_NameHit] = field(default_factory=list)
    end: int = 0

    @property
    def start(self) -> int:
        return self.hits[0].start


class MeasurementExtractor:
    """Pure text -> list[Measurement] engine behind the spaCy component."""

    def __init__(self, rules: LabRules, unit_rules: units.UnitRules, max_chars: int = 50_000) -> None:
        self.rules = rules
        self.unit_rules = unit_rules
        self.max_chars = max_chars
        self._unit_re = units.unit_regex(unit_rules)
        self._ci: dict[str, _Entry] = {}
        self._cs: dict[str, _Entry] = {}
        for lab in rules.labs.values():
            for word in lab.synonyms:
                self._ci.setdefault(_key(word), _Entry(lab=lab))
            for word in lab.cs_synonyms:
                self._cs.setdefault(_key(word, True), _Entry(lab=lab))
            for word in lab.postfix_synonyms:
                self._ci.setdefault(_key(word), _Entry(lab=lab, postfix=True))
        for finding in rules.findings:
            for word in finding.synonyms:
                current = self._ci.get(_key(word))
                self._ci[_key(word)] = _Entry(lab=current.lab if current else None, finding=finding)
        ci_words = [w for lab in rules.labs.values() for w in lab.synonyms + lab.postfix_synonyms]
        ci_words += [w for finding in rules.findings for w in finding.synonyms]
        cs_words = [w for lab in rules.labs.values() for w in lab.cs_synonyms]
        self._ci_re = _name_regex(ci_words, case_sensitive=False)
        self._cs_re = _name_regex(cs_words, case_sensitive=True)
        self._pairs = [lab.pair for lab in rules.labs.values() if lab.pair]
        self._pair_first = {second: first for first, second in self._pairs}
        self._postfix_back = re.compile(
            r"(?:(?P<comp>" + _COMP_BARE + r")\s{0,2})?(?P<num>" + _NUM + r")"
            r"(?:\s{0,2}(?P<post>(?:or|and)\s+(?:more|greater|higher|above|less|fewer|lower)))?[\s-]{0,2}$",
            re.IGNORECASE,
        )

    # ------------------------------------------------------------------ public

    def extract(self, text: str) -> list[Measurement]:
        text = text[: self.max_chars]
        hits = self._find_names(text)
        found: list[Measurement] = []
        consumed = 0
        index = 0
        while index < len(hits):
            hit = hits[index]
            if hit.start < consumed:
                index += 1
                continue
            if hit.entry.postfix:
                found.extend(self._postfix(text, hit))
                consumed = hit.end
                index += 1
                continue
            group, index = self._group(text, hits, index)
            next_name = hits[index].start if index < len(hits) else len(text)
            made, end = self._read_group(text, group, next_name)
            found.extend(made)
            consumed = max(consumed, end)
        return _dedupe(found)

    def mentions(self, text: str) -> list[tuple[int, int, tuple[str, ...]]]:
        """(start, end, lab names) of every non-postfix lab name in ``text``, value or not."""
        text = text[: self.max_chars]
        return [(h.start, h.end, h.entry.names()) for h in self._find_names(text)
                if h.entry.lab is not None and not h.entry.postfix]

    # ------------------------------------------------------------------ names

    def _find_names(self, text: str) -> list[_NameHit]:
        hits: list[_NameHit] = []
        for regex, table, cs in ((self._ci_re, self._ci, False), (self._cs_re, self._cs, True)):
            if regex is None:
                continue
            for match in regex.finditer(text):
                entry = table.get(_key(match.group(), cs))
                if entry is not None:
                    hits.append(_NameHit(match.start(), match.end(), entry))
        hits.sort(key=lambda h: (h.start, -h.end))
        kept: list[_NameHit] = []
        for hit in hits:
            if kept and hit.start < kept[-1].end:
                continue
            kept.append(hit)
        return kept

    def _group(self, text: str, hits: list[_NameHit], index: int) -> tuple[_Group, int]:
        """Join "ALT or AST", "C3/C4", "estimated GFR (eGFR)" into one group."""
        group = _Group(hits=[hits[index]], end=hits[index].end)
        names = set(hits[index].entry.names())
        index += 1
        while index < len(hits) and len(group.hits) < _MAX_GROUP:
            nxt = hits[index]
            gap = text[group.end : nxt.start]
            joined = len(gap) <= 14 and _CONNECTOR.fullmatch(gap) and _HAS_CONNECTOR.search(gap)
            if nxt.entry.postfix or not joined:
                break
            if "(" in gap and not set(nxt.entry.names()) <= names:
                break  # "proteinuria (UPCR 2.1)" is two facts; "complement (C3/C4)" is one
            inside = text.count("(", group.start, nxt.start) > text.count(")", group.start, nxt.start)
            if "(" not in gap and not inside and (nxt.entry.finding or group.hits[0].entry.finding):
                break  # a finding carries its own polarity: "positive ANA, proteinuria"
            group.hits.append(nxt)
            names.update(nxt.entry.names())
            group.end = nxt.end
            index += 1
        if text[group.start : group.end].count("(") > text[group.start : group.end].count(")"):
            close = _CLOSE.match(text, group.end)
            if close:
                group.end = close.end()
        return group, index

    # ------------------------------------------------------------------ groups

    def _read_group(self, text: str, group: _Group, next_name: int | None = None) -> tuple[list[Measurement], int]:
        labs = self._group_labs(group)
        limit = min(len(text), group.end + _WINDOW)
        tail = self._parse_tail(text, group.end, limit, labs)
        if tail is None or (tail.value is None and not tail.letters):
            tail = self._restated(text, group.end, min(limit, next_name or limit), labs) or tail
        before = _POLARITY_BEFORE.search(text, max(0, group.start - 40), group.start)
        polarity = _polarity(before.group("pol")) if before else None
        if tail is not None and (tail.value is not None or tail.letters):
            return self._from_tail(labs, tail, polarity), tail.end
        start = before.start() if before else group.start
        return self._qualitative(text, group, labs, (polarity, start), limit)

    def _restated(self, text: str, pos: int, limit: int, labs: list[tuple[LabRule, int]]) -> _Tail | None:
        """The value of "creatinine has come down to 1.1": read after a short run of filler words."""
        p = start = _skip(text, pos, limit)
        words = 0
        while words < _MAX_GAP_WORDS:
            word = _GAP_WORD.match(text, p, limit)
            if not word:
                break
            p, words = _skip(text, word.end(), limit), words + 1
        if words == 0 or text.count("\n", pos, p) or any(c in ".;,:()" for c in text[start:p]):
            return None
        tail = self._parse_tail(text, p, limit, labs)
        if tail is None or tail.value is None or _GAP_COUNTED.match(text, tail.end, limit):
            return None
        if tail.unit is None and _looks_like_year(tail.value):
            return None
        return tail

    def _group_labs(self, group: _Group) -> list[tuple[LabRule, int]]:
        """(lab, start of the name that brought it) for every lab named by the group."""
        seen: dict[str, tuple[LabRule, int]] = {}
        for hit in group.hits:
            for name in hit.entry.names():
                lab = self.rules.labs.get(name)
                if lab is not None and name not in seen:
                    seen[name] = (lab, hit.start)
        return list(seen.values())

    def _from_tail(
        self, labs: list[tuple[LabRule, int]], tail: _Tail, before: str | None
    ) -> list[Measurement]:
        out: list[Measurement] = []
        for lab, start in labs:
            if tail.unit in _DOSE_UNITS and self._normalize(lab, tail.value, tail.unit)[0] is None:
                continue  # "pulse 1 g" is a dose, not a heart rate
            if lab.pair:
                if tail.second is None:
                    continue
                for name, value in zip(lab.pair, (tail.value, tail.second)):
                    out.append(self._numeric(self.rules.labs[name], start, tail, value, None, before))
                continue
            if tail.letters:
                if lab.letter_grades:
                    for letter in tail.letters:
                        out.append(Measurement(start, tail.end, lab.name, lab.kind, polarity=letter))
                continue
            value = tail.value
            first = self._pair_first.get(lab.name)
            if tail.second is not None and any(other.name == first for other, _ in labs):
                value = tail.second  # "SBP/DBP 140/90": the second name takes the second value
            out.append(self._numeric(lab, start, tail, value, tail.value_high, before))
        return out

    def _numeric(
        self, lab: LabRule, start: int, tail: _Tail, value: float | None, high: float | None,
        before: str | None,
    ) -> Measurement:
        unit = tail.unit
        norm_value, norm_unit = self._normalize(lab, value, unit)
        norm_high = self._normalize(lab, high, unit)[0] if high is not None else None
        return Measurement(
            start=start, end=tail.end, name=lab.name, kind=lab.kind, value=value, value_high=high,
            unit=unit, comparator=tail.comparator, polarity=before, normalized_value=norm_value,
            normalized_value_high=norm_high, normalized_unit=norm_unit if norm_value is not None else None,
        )

    def _normalize(
        self, lab: LabRule, value: float | None, unit: str | None
    ) -> tuple[float | None, str | None]:
        if value is None:
            return None, None
        target = lab.canonical_unit
        source = unit if unit is not None else lab.assumed_unit(value)
        if target is None:
            return value, None
        if source is None:
            return None, None
        if units.is_relative_unit(source, self.unit_rules) and source != target:
            return value, source
        converted = units.convert(value, source, target, lab=lab.name, rules=self.unit_rules)
        return (converted, target) if converted is not None else (None, None)

    def _qualitative(
        self, text: str, group: _Group, labs: list[tuple[LabRule, int]], before: tuple[str | None, int],
        limit: int,
    ) -> tuple[list[Measurement], int]:
        """"anti-dsDNA positive", "low C3 and C4", "thrombocytopenia": polarity without a value."""
        (polarity, before_start), end, value, start = before, group.end, None, group.start
        after = _POLARITY_AFTER.match(text, group.end, limit)
        if after:
            polarity, end = _polarity(after.group("pol")), after.end()
            titer = _TITER_AFTER_POLARITY.match(text, end, limit)
            if titer:
                value, end = float(titer.group("t")), titer.end()
        elif polarity is not None:
            start = before_start
        else:
            finding = next((h.entry.finding for h in group.hits if h.entry.finding), None)
            if finding is None:
                return [], group.end
            negated = _NEGATED_BEFORE.search(text, max(0, group.start - 40), group.start)
            polarity = "negative" if negated else finding.polarity
        if polarity is None:
            return [], group.end
        out = []
        for lab, name_start in labs:
            if lab.pair:
                names = [self.rules.labs[n] for n in lab.pair]
            else:
                names = [lab]
            for rule in names:
                m = Measurement(min(start, name_start), end, rule.name, rule.kind, polarity=polarity)
                if value is not None:
                    m.value, m.unit, m.comparator = value, "titer", "="
                    m.normalized_value, m.normalized_unit = self._normalize(rule, value, "titer")
                out.append(m)
        return out, end

    # ------------------------------------------------------------------ values

    def _tail_context(self, labs: list[tuple[LabRule, int]]) -> "_TailContext":
        names = {lab.name for lab, _ in labs}
        return _TailContext(
            letters=any(lab.letter_grades for lab, _ in labs),
            pair=any(lab.pair for lab, _ in labs) or any(set(pair) == names for pair in self._pairs),
            sums=any(lab.allow_sum for lab, _ in labs),
            score=all(lab.kind == "score" for lab, _ in labs),
            titer_slash=any(lab.canonical_unit == "titer" for lab, _ in labs),
        )

    def _parse_tail(self, text: str, pos: int, limit: int, labs: list[tuple[LabRule, int]]) -> _Tail | None:
        """Read "[filler] [(unit)] [comparator] value [unit] [range | /second] [or more]" after a name."""
        ctx = self._tail_context(labs)
        p, pre_unit, in_paren, comparator, between = self._read_prefix(text, pos, limit, ctx.score)
        tail = _Tail(end=p)
        if ctx.letters:
            letters = _LETTERS.match(text, p, limit)
            if letters:
                tail.letters = tuple(dict.fromkeys(_LETTER.findall(letters.group())))
                tail.end = letters.end()
                return tail
        read = self._read_value(text, p, limit, ctx.sums, ctx.titer_slash)
        if read is None:
            return self._limit_only(text, p, limit, comparator, tail)
        tail.value, p, tail.unit = read
        if tail.unit is None and _DIPSTICK.match(text, p, limit):
            tail.unit, tail.end, tail.comparator = "dipstick", p + 1, comparator or "="
            return tail  # "urine protein 2+": a dipstick grade, not g/day
        if ctx.score:
            out_of = _OUT_OF.match(text, p, limit)
            p = out_of.end() if out_of else p  # "MMSE 24/30"
        if tail.unit is None:
            tail.unit, p = self._read_unit(text, p, limit)
        if in_paren and tail.unit is None and comparator is None and _looks_like_year(tail.value):
            return None  # "proteinuria (2019)"
        if ctx.pair:
            p = self._read_pair(text, p, limit, tail)
        else:
            p = self._read_range(text, p, limit, tail, comparator, between, ctx.score)
        post = _POST_COMP.match(text, p, limit)
        if post and tail.value_high is None:
            comparator, p = (">=" if post.group("ge") else "<="), post.end()
        tail.unit = tail.unit or pre_unit
        tail.comparator = ">=" if tail.value_high is not None else (comparator or "=")
        tail.end = p
        return tail

    def _read_prefix(
        self, text: str, p: int, limit: int, score: bool
    ) -> tuple[int, str | None, bool, str | None, bool]:
        """Skip filler and parentheses: (pos, unit in parentheses, inside "(", comparator, between)."""
        p = _skip(text, p, limit)
        if score:  # "Child-Pugh class B", "Gleason grade 7"; not "neutropenia grade 3"
            grade = _SCORE_FILLER.match(text, p, limit)
            p = _skip(text, grade.end(), limit) if grade else p
        pre_unit, in_paren = None, False
        paren = _PAREN.match(text, p, limit)
        if paren and units.is_known_unit(paren.group("u"), self.unit_rules):
            pre_unit = units.normalize_unit(paren.group("u"), self.unit_rules)  # "eGFR (mL/min) 45"
            p = _skip(text, paren.end(), limit)
        elif paren and not any(ch.isdigit() for ch in paren.group("u")):
            p = _skip(text, paren.end(), limit)  # "eGFR (CKD-EPI) >= 45"
        elif text.startswith("(", p):
            in_paren, p = True, _skip(text, p + 1, limit)  # "thrombocytopenia (45,000)"
        comp = _COMP.match(text, p, limit)
        if comp:
            return _skip(text, comp.end(), limit), pre_unit, in_paren, _comparator(comp), False
        between = _BETWEEN.match(text, p, limit)
        if between:
            return between.end(), pre_unit, in_paren, None, True
        return p, pre_unit, in_paren, None, False

    @staticmethod
    def _limit_only(text: str, p: int, limit: int, comparator: str | None, tail: _Tail) -> _Tail | None:
        """"ALT above the upper limit of normal" -> 1 x ULN (only after a comparator)."""
        bound = _LIMIT_ONLY.match(text, p, limit) if comparator else None
        if bound is None:
            return None
        tail.value, tail.end, tail.comparator = 1.0, bound.end(), comparator or "="
        tail.unit = "x ULN" if bound.group("uln") else "x LLN"
        return tail

    def _read_pair(self, text: str, p: int, limit: int, tail: _Tail) -> int:
        """The "/95" of "BP 150/95"."""
        sep = _PAIR_SEP.match(text, p, limit)
        second = self._read_value(text, sep.end(), limit, False, False) if sep else None
        if second is None or second[2] is not None:
            return p
        tail.second, p = second[0], second[1]
        if tail.unit is None:
            tail.unit, p = self._read_unit(text, p, limit)
        return p

    def _read_value(
        self, text: str, p: int, limit: int, sum_ok: bool, titer_slash: bool
    ) -> tuple[float, int, str | None] | None:
        """(value, end, unit implied by the form) for a titer, a Gleason sum or a number."""
        titer = _TITER.match(text, p, limit) or (_TITER_SLASH.match(text, p, limit) if titer_slash else None)
        if titer:
            return float(titer.group("t")), titer.end(), "titer"
        if sum_ok:
            total = _SUM.match(text, p, limit)
            if total:
                value = total.group("c") or int(total.group("a")) + int(total.group("b"))
                return float(value), total.end(), None
        number = _NUMBER.match(text, p, limit)
        if not number or _RATIO_AFTER.match(text, number.end(), limit):
            return None  # "1:40" is a ratio or a titre, never the plain number 1
        try:
            value = float(number.group("num").replace(",", "") + (number.group("exp") or ""))
        except ValueError:
            return None
        if number.group("k"):
            value *= 1000
        if not math.isfinite(value):
            return None
        return value, number.end(), None

    def _read_unit(self, text: str, p: int, limit: int) -> tuple[str | None, int]:
        q = _UNIT_GAP.match(text, p, limit).end()
        match = self._unit_re.match(text, q, limit)
        if not match:
            return None, p
        return units.normalize_unit(match.group(), self.unit_rules), match.end()

    def _read_range(
        self, text: str, p: int, limit: int, tail: _Tail, comparator: str | None, between: bool, score: bool
    ) -> int:
        """Second value of "1.5-7", "between 1 and 2", ">= 18.5 and <= 35", "0, 1 or 2"."""
        if comparator in (">=", ">"):
            sep = _SECOND_BOUND.match(text, p, limit)
            comp = _COMP.match(text, sep.end(), limit) if sep else None
            if comp and _comparator(comp) in ("<=", "<"):
                read = self._read_value(text, _skip(text, comp.end(), limit), limit, False, False)
                if read is not None:
                    return self._finish_range(text, read, limit, tail)
            return p
        if comparator is not None:
            return p
        sep = (_AND_SEP if between else _RANGE_SEP).match(text, p, limit)
        if sep:
            read = self._read_value(text, sep.end(), limit, False, False)
            if read is not None and read[0] >= tail.value:
                return self._finish_range(text, read, limit, tail)
        if score:
            values, q = [tail.value], p
            for _ in range(5):
                sep = _LIST_SEP.match(text, q, limit)
                read = self._read_value(text, sep.end(), limit, False, False) if sep else None
                if read is None:
                    break
                values.append(read[0])
                q = read[1]
            if len(values) > 1:
                tail.value, tail.value_high = min(values), max(values)
                return q
        return p

    def _finish_range(self, text: str, read: tuple[float, int, str | None], limit: int, tail: _Tail) -> int:
        tail.value_high, p = read[0], read[1]
        unit, p = self._read_unit(text, p, limit)
        if unit is not None and tail.unit is None:
            tail.unit = unit
        return p

    # ------------------------------------------------------------------ postfix names

    def _postfix(self, text: str, hit: _NameHit) -> list[Measurement]:
        lab = hit.entry.lab
        if lab is None:
            return []
        match = self._postfix_back.search(text, max(0, hit.start - 48), hit.start)
        if not match:
            return []
        try:
            value = float(match.group("num").replace(",", ""))
        except ValueError:
            return []
        comparator = "="
        if match.group("comp"):
            comparator = _comparator(_COMP.match(match.group("comp")))
        elif match.group("post"):
            comparator = "<=" if re.search(r"less|fewer|lower", match.group("post"), re.I) else ">="
        norm_value, norm_unit = self._normalize(lab, value, lab.canonical_unit)
        return [
            Measurement(
                match.start(), hit.end, lab.name, lab.kind, value=value, unit=lab.canonical_unit,
                comparator=comparator, normalized_value=norm_value, normalized_unit=norm_unit,
            )
        ]


def _looks_like_year(value: float | None) -> bool:
    return value is not None and value.is_integer() and 1900 <= value <= 2100


def _skip(text: str, p: int, limit: int) -> int:
    for _ in range(8):
        match = _FILLER.match(text, p, limit)
        if not match or match.end() == p:
            break
        p = match.end()
    return p


def _dedupe(found: list[Measurement]) -> list[Measurement]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for m in found:
        key = (m.start, m.end, m.name, m.value, m.value_high, m.polarity, m.comparator)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


# --------------------------------------------------------------------------- spaCy component


def _registry_key(span: Span) -> str:
    return f"{span.start_char}:{span.end_char}:{span.label}:{span.id}"


def _get_measurement(span: Span) -> dict[str, Any] | None:
    registry = span.doc.user_data.get(_REGISTRY)
    if not registry:
        return None
    return registry.get(_registry_key(span))


@Language.factory(
    "ctm_measurements",
    assigns=["doc.spans"],
    default_config={"spans_key": SPANS_KEY, "labs_path": None, "units_path": None, "max_chars": 50_000},
)
def make_measurements(
    nlp: Language,
    name: str,
    spans_key: str,
    labs_path: str | None,
    units_path: str | None,
    max_chars: int,
) -> "MeasurementRecognizer":
    return MeasurementRecognizer(
        nlp, name, spans_key=spans_key, labs_path=labs_path, units_path=units_path, max_chars=max_chars
    )


class MeasurementRecognizer:
    """spaCy component: writes ``doc.spans[spans_key]`` and ``span._.ctm_measurement``."""

    def __init__(
        self,
        nlp: Language,
        name: str = "ctm_measurements",
        *,
        spans_key: str = SPANS_KEY,
        labs_path: str | None = None,
        units_path: str | None = None,
        max_chars: int = 50_000,
    ) -> None:
        self.name = name
        self.spans_key = spans_key
        self.max_chars = max_chars
        self.rules = load_lab_rules(labs_path)
        self.unit_rules = units.load_unit_rules(units_path)
        self.extractor = MeasurementExtractor(self.rules, self.unit_rules, max_chars=max_chars)
        Span.set_extension(EXTENSION, getter=_get_measurement, force=True)

    def __call__(self, doc: Doc) -> Doc:
        registry: dict[str, dict[str, Any]] = doc.user_data.setdefault(_REGISTRY, {})
        spans = []
        for number, found in enumerate(self.extractor.extract(doc.text)):
            span = doc.char_span(found.start, found.end, label=found.name, alignment_mode="expand")
            if span is None:
                continue
            span = Span(doc, span.start, span.end, label=found.name, span_id=number + 1)
            registry[_registry_key(span)] = found.to_dict()
            spans.append(span)
        doc.spans[self.spans_key] = spans
        mentions = []
        for start, end, names in self.extractor.mentions(doc.text):
            span = doc.char_span(start, end, alignment_mode="expand")
            mentions += [Span(doc, span.start, span.end, label=name) for name in names if span is not None]
        doc.spans[MENTIONS_KEY] = mentions
        return doc


# --------------------------------------------------------------------------- helpers


def measurement_to_lab_fact(span: Span) -> LabFact | None:
    """LabFact for a measurement span; qualitative results ("anti-dsDNA positive") have value None."""
    data = _get_measurement(span)
    if not data or (data.get("value") is None and not data.get("polarity")):
        return None
    return LabFact(
        name=data["name"],
        value=float(data["value"]) if data.get("value") is not None else None,
        polarity=data.get("polarity"),
        span=TextSpan(span.start_char, span.end_char, span.text),
        unit=data.get("unit"),
        comparator=Comparator(data.get("comparator") or "="),
        value_high=data.get("value_high"),
        normalized_value=data.get("normalized_value"),
        normalized_unit=data.get("normalized_unit"),
    )
