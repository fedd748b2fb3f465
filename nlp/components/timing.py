"""``ctm_timing``: time expressions in patient text and criteria.

"3 years ago", "two weeks ago", "last year", "in 2019", "since 2018", "for 5 years",
"a 10-year history", "within 6 months prior to screening", "within the last 12 weeks",
"in the past 3 months", "at least 4 weeks before enrollment", "more than 30 days".

Output: ``doc.spans["ctm_time"]`` with ``span._.ctm_time`` = {"days", "relation",
"year"}: ``days`` is the length in days (3 months = 90, 1 year = 365.25) or None
("several months ago"); ``relation`` is one of "ago", "within", "at_least",
"duration", "since"; ``year`` is the calendar year when the text gives one, or
when it can be computed from a reference date.

``attach_times`` decides which fact (condition or drug span) each "ago"/"since"
expression dates: only the one it modifies, not every fact in its sentence.

The component never reads the clock: years become days only against
``doc._.ctm_reference_date`` (a date, datetime, int year or "YYYY-MM-DD") or,
failing that, the ``reference_year`` config value; otherwise ``days`` stays None
for "in 2019" and the year is kept as written.
"""
# No ``from __future__ import annotations``: spaCy evaluates the factory annotations.
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

__all__ = [
    "DATING_RELATIONS",
    "SPANS_KEY",
    "TimeMention",
    "TimingRecognizer",
    "attach_times",
    "extract_times",
    "make_timing",
    "reference_year_of",
]

SPANS_KEY = "ctm_time"

_WORD_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "couple": 2, "acouple": 2, "acoupleof": 2,
    "coupleof": 2, "halfa": 0.5, "oneandahalf": 1.5,
}
_VAGUE = {"few", "afew", "several", "many", "some"}
_UNIT_DAYS = {"y": 365.25, "mo": 30.0, "w": 7.0, "d": 1.0, "h": 1 / 24}
_NUMW = (
    r"(?:\d{1,4}(?:\.\d{1,2})?(?![\d.])|(?:one\s+and\s+a\s+half|half\s+an?|a\s+couple\s+of|couple\s+of"
    r"|a\s+few|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen"
    r"|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|few|several|many|some)\b)"
)
_UNIT = r"(?:years?|yrs?|months?|mos?|weeks?|wks?|days?|hours?|hrs?)\b"
_EVENT = (
    r"(?:\s{1,3}(?:prior\s+to|before|preceding|after|following|of|from)\s+(?:the\s+)?"
    r"(?:screening(?:\s+visit)?|enrol(?:l)?ment|randomi[sz]ation|baseline(?:\s+visit)?|study\s+entry"
    r"|study\s+start|inclusion|first\s+dose(?:\s+of\s+(?:the\s+)?study\s+(?:drug|treatment|medication"
    r"|intervention))?|day\s+1|visit\s+1|signing\s+(?:of\s+)?(?:the\s+)?informed\s+consent|informed\s+consent"
    r"|consent|dosing|(?:start|initiation)\s+of\s+(?:the\s+)?study\s+(?:drug|treatment|therapy)"
    r"|study\s+(?:drug|treatment)))?"
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_COUNT = r"(?:(?P<n>" + _NUMW + r")(?:\s?(?:-|–|to|or)\s?(?P<n2>" + _NUMW + r"))?[\s-]{0,2})"
_SPAN = _COUNT + r"(?P<u>" + _UNIT + r")"  # "3 months", "two weeks", "6-month"
_SPAN_OR_UNIT = _COUNT + r"?(?P<u>" + _UNIT + r")"  # also "year" alone: "within the past year"
_LAST = r"(?:last|past|previous|preceding|prior)"
_APPROX = r"(?:about|approximately|around|nearly|almost|roughly|some)"
_LESS = (
    r"(?:\b(?:less\s+than|fewer\s+than|under|no\s+more\s+than|not\s+more\s+than|up\s+to)\s+|[<≤]\s?|<=\s?)"
)
_MORE = (
    r"(?:\b(?:at\s+least|more\s+than|greater\s+than|longer\s+than|over|a\s+minimum\s+of|minimum\s+of"
    r"|no\s+less\s+than|not\s+less\s+than|no\s+sooner\s+than|no\s+earlier\s+than)\s+|[>≥]\s?|>=\s?)"
)
_YEAR = r"(?:(?:early|mid|late)[\s-]+)?(?:(?P<m>" + _MONTH + r")\s+(?:of\s+)?)?(?P<y>(?:19|20)\d{2})\b"
_MONTH_NUMBERS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_NOT_AMOUNT = r"(?![\s-]{0,2}(?:mg|mcg|g|ml|mL|kg|IU|units?|patients?|participants?|subjects?|cells?|%)\b)"
_EVENT_VERB = r"(?:in|during|from|diagnosed|started|began|initiated|stopped|discontinued)"

# (relation, pattern, cue); the earlier entry wins when two start at the same character.
# A leading "(?=[...])" lets the regex engine skip positions that cannot start a match.
# Patterns that open with a count ("3 years ago") could start almost anywhere, so they
# only run when their cue word occurs in the text.
_PATTERNS: tuple[tuple[str, str, str | None], ...] = (
    ("within", r"(?=[wW])\bwithin\s+(?:the\s+)?(?:" + _LAST + r"\s+)?" + _SPAN_OR_UNIT + r"(?:\s+ago)?"
     + _EVENT, None),
    ("within", r"(?=[iIdDoO])\b(?:in|during|over)\s+the\s+" + _LAST + r"\s+" + _SPAN_OR_UNIT + _EVENT, None),
    ("within", r"(?=[iI])\bin\s+the\s+" + _SPAN + r"(?=\s+(?:prior\s+to|before|preceding)\b)" + _EVENT, None),
    ("within", r"(?=[lLfFuUnN<≤])" + _LESS + _SPAN + r"(?:\s+ago)?" + _EVENT, None),
    ("duration", r"(?=[fF])\bfor\s+(?:the\s+)?(?:last|past)\s+" + _SPAN_OR_UNIT, None),
    ("at_least", r"(?=[amglonAMGLON>≥])" + _MORE + _SPAN + r"(?:\s+ago)?" + _EVENT, None),
    ("ago", r"(?:\b" + _APPROX + r"\s+)?" + _SPAN
     + r"\s+(?:ago|earlier|previously|before\s+(?:admission|presentation|this\s+visit))\b",
     r"\b(?:ago|earlier|previously|before)\b"),
    ("ago", r"(?=[lLpP])\b(?:last|past|previous)\s+(?P<u>year|month|week)\b", None),
    ("ago", r"(?=[yY])\b(?P<yesterday>yesterday)\b", None),
    ("since", r"(?=[sS])\bsince\s+" + _YEAR, None),
    ("ago", r"(?=[iIdDfFsSbB])\b" + _EVENT_VERB + r"\s+(?:in\s+)?" + _YEAR + _NOT_AMOUNT, None),
    ("duration", r"(?=[fF])\bfor\s+(?:(?:" + _APPROX + r"|over)\s+)?" + _SPAN, None),
    ("duration", _COUNT + r"(?P<u>year|month|week|day)s?[\s-]{1,2}(?:long\s+)?history\b", r"history\b"),
    ("duration", r"(?=[dDhH])\b(?:duration|history)\s+of\s+" + _SPAN, None),
)


@dataclass
class TimeMention:
    start: int
    end: int
    relation: str
    days: float | None = None
    year: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"days": self.days, "relation": self.relation, "year": self.year}


class _Compiled:
    """The pattern table compiled once per process, on first use (not at import)."""

    patterns: tuple[tuple[str, re.Pattern[str], re.Pattern[str] | None], ...] | None = None

    @classmethod
    def get(cls) -> tuple[tuple[str, re.Pattern[str], re.Pattern[str] | None], ...]:
        if cls.patterns is None:
            cls.patterns = tuple(
                (rel, re.compile(p, re.IGNORECASE), re.compile(cue, re.IGNORECASE) if cue else None)
                for rel, p, cue in _PATTERNS
            )
        return cls.patterns


def _number(word: str | None) -> float | None:
    """Value of "3", "two", "a", "a couple of"; None for vague words ("several")."""
    if word is None:
        return 1.0
    key = re.sub(r"\s+", "", word.lower())
    if key in _VAGUE:
        return None
    if key in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[key])
    try:
        return float(key)
    except ValueError:
        return None


def _unit_days(unit: str) -> float:
    unit = unit.lower()
    if unit.startswith("mo"):
        return _UNIT_DAYS["mo"]
    return _UNIT_DAYS[unit[0]]


def reference_year_of(value: Any) -> tuple[int | None, dt.date | None]:
    """(year, date) from a date, datetime, int year or ISO string; (None, None) otherwise."""
    if isinstance(value, dt.datetime):
        return value.year, value.date()
    if isinstance(value, dt.date):
        return value.year, value
    if isinstance(value, int) and 1000 <= value <= 9999:
        return value, None
    if isinstance(value, str):
        try:
            date = dt.date.fromisoformat(value[:10])
            return date.year, date
        except ValueError:
            return (int(value[:4]), None) if value[:4].isdigit() else (None, None)
    return None, None


def _mention(
    relation: str, match: re.Match[str], ref_year: int | None, ref_date: dt.date | None
) -> TimeMention:
    groups = match.groupdict()
    mention = TimeMention(match.start(), match.end(), relation)
    if groups.get("y"):
        # Principle: a calendar date becomes "days ago" only against the reference date handed in
        # (doc._.ctm_reference_date or the reference_year config), to the precision written (month or year).
        mention.year = int(groups["y"])
        month = _MONTH_NUMBERS.get((groups.get("m") or "")[:3].lower())
        if ref_date is not None and month is not None:
            mention.days = float(max(0, (ref_date - dt.date(mention.year, month, 15)).days))
        elif ref_year is not None and ref_year >= mention.year:
            mention.days = (ref_year - mention.year) * 365.25
        return mention
    if groups.get("yesterday"):
        mention.days = 1.0
    else:
        count = _number(groups.get("n"))
        high = _number(groups.get("n2")) if groups.get("n2") else None
        if count is not None and high is not None:
            count = (count + high) / 2 if relation == "ago" else max(count, high)
        mention.days = None if count is None else count * _unit_days(groups["u"])
    if relation == "ago" and mention.days is not None and ref_year is not None:
        if ref_date is not None:
            mention.year = (ref_date - dt.timedelta(days=mention.days)).year
        else:
            mention.year = ref_year - round(mention.days / 365.25)
    return mention


def extract_times(text: str, reference: Any = None) -> list[TimeMention]:
    """Pure text -> time mentions; ``reference`` as accepted by ``reference_year_of``."""
    ref_year, ref_date = reference_year_of(reference)
    found: list[tuple[int, int, int, re.Match[str], str]] = []
    for priority, (relation, regex, cue) in enumerate(_Compiled.get()):
        if cue is not None and not cue.search(text):
            continue
        for match in regex.finditer(text):
            found.append((match.start(), priority, -match.end(), match, relation))
    found.sort(key=lambda item: item[:3])
    out: list[TimeMention] = []
    for start, _, _, match, relation in found:
        if out and start < out[-1].end:
            continue
        out.append(_mention(relation, match, ref_year, ref_date))
    return out


@Language.factory(
    "ctm_timing",
    assigns=["doc.spans"],
    default_config={"spans_key": SPANS_KEY, "reference_year": None, "max_chars": 50_000},
)
def make_timing(
    nlp: Language, name: str, spans_key: str, reference_year: int | None, max_chars: int
) -> "TimingRecognizer":
    return TimingRecognizer(
        nlp, name, spans_key=spans_key, reference_year=reference_year, max_chars=max_chars
    )


class TimingRecognizer:
    """spaCy component writing ``doc.spans[spans_key]`` and ``span._.ctm_time``."""

    def __init__(
        self,
        nlp: Language,
        name: str = "ctm_timing",
        *,
        spans_key: str = SPANS_KEY,
        reference_year: int | None = None,
        max_chars: int = 50_000,
    ) -> None:
        self.name = name
        self.spans_key = spans_key
        self.reference_year = reference_year
        self.max_chars = max_chars
        _Compiled.get()
        Span.set_extension("ctm_time", default=None, force=True)
        Doc.set_extension("ctm_reference_date", default=None, force=True)

    def __call__(self, doc: Doc) -> Doc:
        reference = doc._.ctm_reference_date
        if reference is None:
            reference = self.reference_year
        spans, seen = [], set()
        for mention in extract_times(doc.text[: self.max_chars], reference):
            span = doc.char_span(mention.start, mention.end, label=mention.relation, alignment_mode="expand")
            if span is not None and (span.start, span.end) not in seen:
                seen.add((span.start, span.end))
                span._.ctm_time = mention.to_dict()
                spans.append(span)
        doc.spans[self.spans_key] = spans
        return doc


# --------------------------------------------------------------------------- which fact a time expression dates
#
# Principle: a time expression dates only the fact it modifies: the nearest fact before it in its own
# clause, else the nearest one after it, together with the facts coordinated with that one ("X and Y 9
# months ago"); every other fact in the sentence stays undated. Clauses end at sentence punctuation,
# contrast words, a new subject, and at ",", "and", "or" unless those join two facts of a list. A time
# expression that opens its clause ("8 months ago, she started X") dates the first fact of the next
# clause; one in a fact-less clause right after "X," ("X, diagnosed 4 years ago") dates X.

DATING_RELATIONS = frozenset({"ago", "since"})
_SENTENCE_END = frozenset({".", "!", "?", ";"})
_CLAUSE_WORDS = frozenset({"but", "however", "although", "though", "whereas", "while", "because", "which", "who",
                           "whom", "whose", "so", "then", "yet", "except", "instead", ":", "(", ")"})
_SUBJECTS = frozenset({"i", "he", "she", "we", "they"})
_COORDINATORS = frozenset({",", "and", "or", "nor", "&", "/", "plus"})
_LIST_FILLERS = frozenset({"any", "other", "a", "an", "the", "either", "neither", "both", "also", "well", "as"})
_APPOSITION = frozenset({",", "("})
_MAX_JOINER = 4  # list separators are short: ", and any other" at most
_MAX_ATTRIBUTES = 6  # dose details between a drug and its appositive: "rituximab 1 g x2 (completed ...)"
_DOSE_WORDS = frozenset({"mg", "g", "mcg", "µg", "ml", "iu", "units", "unit", "x", "/", "per", "day", "daily",
                         "weekly", "monthly", "bid", "tid", "qd", "iv", "po", "sc", "sq", "im"})


class _Clauses:
    """Token -> (sentence, clause) numbering of a doc, given its facts and time expressions."""

    def __init__(self, doc: Doc, facts: Sequence[Span], times: Sequence[Span]) -> None:
        self.doc = doc
        self.owner: list[int | None] = [None] * len(doc)
        self.timed = [False] * len(doc)
        for index, fact in enumerate(facts):
            for i in range(fact.start, fact.end):
                self.owner[i] = index
        for span in times:
            for i in range(span.start, span.end):
                self.timed[i] = True
        self.sentence = [0] * len(doc)
        self.clause = [0] * len(doc)
        self.clause_start: dict[int, int] = {0: 0}
        self.lead: dict[int, int] = {}  # clause -> its first word that is not a connective
        self._number()
        self.members: dict[int, list[int]] = {}
        for index, fact in enumerate(facts):
            self.members.setdefault(self.clause[fact.start], []).append(index)

    def _number(self) -> None:
        sentence = clause = 0
        content = False
        for tok in self.doc:
            i = tok.i
            if self.owner[i] is None and not self.timed[i]:
                strong = tok.text in _SENTENCE_END or (tok.is_space and "\n" in tok.text) or bool(
                    i and tok.is_sent_start)
                if strong:
                    sentence += 1
                if (strong or self._opens_clause(i)) and content:
                    clause, content = clause + 1, False
                    self.clause_start[clause] = i
            if not _connective(tok):
                content = True
                self.lead.setdefault(clause, i)
            self.sentence[i], self.clause[i] = sentence, clause

    def _opens_clause(self, i: int) -> bool:
        low = self.doc[i].lower_
        if low in _CLAUSE_WORDS or low in _SUBJECTS:
            return True
        return low in _COORDINATORS and not self._joins_facts(i)

    def _joins_facts(self, i: int) -> bool:
        """Whether the coordinator at ``i`` stands between two facts ("X, Y or any Z")."""
        before = i - 1
        while before >= max(0, i - _MAX_JOINER) and self.owner[before] is None and \
                self.doc[before].lower_ in _COORDINATORS:
            before -= 1
        after, stop = i + 1, min(len(self.doc), i + 1 + _MAX_JOINER)
        while after < stop and self.owner[after] is None and (
                self.doc[after].lower_ in _COORDINATORS or self.doc[after].lower_ in _LIST_FILLERS):
            after += 1
        return before >= 0 and self.owner[before] is not None and after < len(self.doc) and \
            self.owner[after] is not None

    def facts_in(self, clause: int) -> list[int]:
        return self.members.get(clause, [])

    def coordinated(self, index: int, facts: Sequence[Span]) -> list[int]:
        """``index`` and the facts of its clause joined to it by coordinators only."""
        ordered = sorted(self.facts_in(self.clause[facts[index].start]), key=lambda k: facts[k].start)
        pos = ordered.index(index)
        group = {index}
        for step in (-1, 1):
            j = pos
            while 0 <= j + step < len(ordered):
                left, right = sorted((facts[ordered[j]], facts[ordered[j + step]]), key=lambda f: f.start)
                if right.start - left.end > _MAX_JOINER or not all(
                        t.lower_ in _COORDINATORS or t.lower_ in _LIST_FILLERS for t in self.doc[left.end:right.start]):
                    break
                j += step
                group.add(ordered[j])
        return sorted(group)

    def appositive_head(self, clause: int) -> int | None:
        """The fact a clause opened by "," or "(" describes: the fact just before it, dose details aside."""
        start = self.clause_start[clause]
        if start == 0 or self.doc[start].text not in _APPOSITION:
            return None
        i = start - 1
        while i >= max(0, start - _MAX_ATTRIBUTES) and self.owner[i] is None and _attribute(self.doc[i]):
            i -= 1
        return self.owner[i] if i >= 0 else None

    def opens(self, span: Span) -> bool:
        """Whether only punctuation and connectives precede ``span`` in its clause."""
        return self.lead.get(self.clause[span.start]) == span.start


def _attribute(tok: Token) -> bool:
    """A token of a dose or count written after a drug ("1 g x2", "500 mg daily")."""
    return any(c.isdigit() for c in tok.text) or tok.lower_ in _DOSE_WORDS


def _connective(tok: Token) -> bool:
    low = tok.lower_
    return tok.is_punct or tok.is_space or low in _COORDINATORS or low in _CLAUSE_WORDS


def _distance(fact: Span, time: Span) -> tuple[int, int]:
    """(side, tokens between): a fact before the time wins over one after it, then the nearer one.

    A time adverbial closes the clause it dates ("X was stopped 2 years ago for Y" dates X);
    only when no fact precedes it in the clause does it date the fact after it.
    """
    if fact.end <= time.start:
        return 0, time.start - fact.end
    return 1, max(0, fact.start - time.end)


def _targets(time: Span, facts: Sequence[Span], clauses: _Clauses) -> list[int]:
    clause = clauses.clause[time.start]
    own = clauses.facts_in(clause)
    if own:
        nearest = min(own, key=lambda k: _distance(facts[k], time))
        return clauses.coordinated(nearest, facts)
    if clauses.opens(time):
        later = [k for k in clauses.facts_in(clause + 1)
                 if clauses.sentence[facts[k].start] == clauses.sentence[time.start]]
        if later:
            return clauses.coordinated(min(later, key=lambda k: facts[k].start), facts)
        return []
    head = clauses.appositive_head(clause)
    if head is not None and clauses.sentence[facts[head].start] == clauses.sentence[time.start]:
        return [head]
    return []


def attach_times(facts: Sequence[Span], times: Iterable[Span]) -> dict[int, Span]:
    """Position in ``facts`` -> the "ago"/"since" expression that dates that fact.

    ``facts`` are spans of one doc (conditions, drugs); ``times`` the ``ctm_time``
    spans. A fact claimed by two expressions keeps the nearer one.
    """
    dating = [t for t in times if (t._.ctm_time or {}).get("relation") in DATING_RELATIONS]
    if not facts or not dating:
        return {}
    clauses = _Clauses(facts[0].doc, facts, dating)
    best: dict[int, tuple[tuple[int, int], Span]] = {}
    for time in dating:
        for k in _targets(time, facts, clauses):
            dist = _distance(facts[k], time)
            if k not in best or dist < best[k][0]:
                best[k] = (dist, time)
    return {k: time for k, (_, time) in best.items()}
