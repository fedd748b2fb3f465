"""Chat sessions: read each message once, merge its facts into the patient profile, choose the next question.

Answer binding (the rule): a reply answers the pending question only when it is a *bare answer* or *names that
question's subject*; anything else is free text read on its own, and a question's subject is never prepended to
free text.

* A bare answer is nothing but yes/no ("yes", "no, never", "she has"), a value ("2.4 g/g", "12", "1:320",
  "positive at 1:640"), a time ("8 months ago", "in 2019") or a class ("IV", "class III and V"). It is read by the
  kind of question it answers: yes/no affirms or denies the asked condition or therapy; a value is read as the
  asked lab, age or dose; a time dates the asked condition, biopsy or therapy; a class qualifies the asked
  condition. A bare answer of the wrong form for the question ("no" to "When was the
  biopsy done?") adds nothing.
* A correction ("actually it was 8 months ago", "sorry, 1:640") is a bare answer after a correction word; it
  re-answers the question answered last when its form fits it, else the pending question.
* So "Yes, he takes losartan" while a malignancy question is pending records losartan, not a malignancy, and
  "She is willing and able to give consent" never records a membranous nephropathy.

Merging: each turn is read once (its facts are kept in the session message, ``facts``) and a later statement
about the same subject (concept, lab, drug) replaces the earlier one, so "no" after "she had CAR-T" negates it and
a correction replaces the old date; denying a drug class ("no steroids") also withdraws earlier drugs of that
class. Every fact keeps the turn that said it (``turn`` in the profile JSON, from its evidence offset).

A referral from a chat stores the transcript as "Q: ... / A: ..." pairs (:func:`render_transcript`); the
coordinator's re-evaluation reads them back (:func:`parse_transcript`) through the same per-turn reading, so it
agrees with what the chat showed.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from enum import Enum
from typing import Any

from models.domain import (
    Comparator,
    ConditionFact,
    Context,
    LabFact,
    MatchResult,
    PatientProfile,
    Question,
    Span,
    TherapyCount,
    TherapyFact,
    TrialLabel,
)

SEPARATOR = "\n\n"
YES_RE = re.compile(r"^\s*(?:yes|yeah|yep|yup|correct|right|she (?:has|did)|he (?:has|did)|they (?:have|did)|"
                    r"affirmative|indeed)\b", re.IGNORECASE)
NO_RE = re.compile(r"^\s*(?:no|nope|never|not|none|she (?:has not|hasn't|did not|didn't)|he (?:has not|hasn't|"
                   r"did not|didn't))\b", re.IGNORECASE)
LAB_PHRASES = {"upcr": "UPCR", "uacr": "UACR", "egfr": "eGFR", "creatinine": "creatinine", "platelets": "platelets",
               "anc": "ANC", "wbc": "WBC", "hemoglobin": "hemoglobin", "alt": "ALT", "ast": "AST",
               "bilirubin": "bilirubin", "sledai_2k": "SLEDAI-2K", "ecog": "ECOG", "hba1c": "HbA1c", "qtc": "QTc",
               "lvef": "ejection fraction", "ana": "ANA", "anti_dsdna": "anti-dsDNA", "proteinuria": "proteinuria",
               "bmi": "BMI", "c3": "C3", "c4": "C4", "inr": "INR", "albumin": "albumin"}


# what a bare answer can be, and which question kinds take each form
YES_NO, VALUE, TIME, CLASS = "yes_no", "value", "time", "class"
FORMS_OF_KIND = {"condition": (YES_NO, TIME), "therapy": (YES_NO, TIME), "consent": (YES_NO,),
                 "condition_date": (TIME,), "therapy_date": (TIME,), "lab": (VALUE,), "age": (VALUE,),
                 "dose": (VALUE,), "condition_detail": (CLASS,), "condition_form": (CLASS,)}
CORRECTION_RE = re.compile(r"^\s*(?:actually|sorry|correction|oops|i mean|i meant|my mistake|no wait|wait)\b"
                           r"[\s,:;.!-]*(?:(?:that|it)\s+(?:is|was)\s+|(?:she|he)\s+(?:is|was)\s+)?", re.IGNORECASE)
# what a later fact keeps from the earlier one about the same subject when it does not say it ("8 months ago"
# dates the class IV lupus nephritis said before; it does not erase the class)
INHERITED = ("qualifier", "days_ago", "code", "dose_mg_day", "prednisone_eq_mg_day", "response", "status")
FACTS_VERSION = 1


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message: where it sits in the transcript, the question pending when it was sent (``answered``)
    and the question answered last before it (``previous``, which a correction may re-answer)."""

    text: str
    offset: int
    answered: dict[str, Any] | None = None
    index: int = 0
    previous: dict[str, Any] | None = None


def transcript_turns(messages: Sequence[dict[str, Any]]) -> list[Turn]:
    turns: list[Turn] = []
    offset, previous = 0, None
    for m in messages:
        if m.get("role") != "user":
            continue
        turn = Turn(m["text"], offset, m.get("answered"), len(turns), previous)
        turns.append(turn)
        previous = bound_question(turn) or previous
        offset += len(m["text"]) + len(SEPARATOR)
    return turns


def transcript_text(messages: Sequence[dict[str, Any]]) -> str:
    return SEPARATOR.join(m["text"] for m in messages if m.get("role") == "user")


_RESULT = r"(?:positive|negative|normal|abnormal|high|low|elevated|raised|reactive|non-reactive|undetectable)"
# a value, optionally with a result word ("1:320", "2.4 g/g", "positive at 1:640", "negative")
BARE_VALUE_RE = re.compile(rf"^\s*(?:it\s+(?:is|was)\s+|about\s+|around\s+)?(?:{_RESULT}\s*(?:at|of|,|:)?\s*)?"
                           r"(?:[<>≤≥=~]?\s*\d[\d.,:/]*\s*(?:[a-zA-Z%/^µμ0-9.]+(?:\s*/\s*[a-zA-Z0-9.]+)?)?)?"
                           r"\s*\.?\s*$", re.IGNORECASE)
BARE_TIME_RE = re.compile(r"^\s*(?:it\s+was\s+)?(?:about\s+|around\s+)?(?:\d+|one|two|three|four|five|six|seven|eight|"
                          r"nine|ten|eleven|twelve|a|an)\s+(?:days?|weeks?|months?|years?)\s+ago\s*\.?\s*$|^\s*(?:in\s+)?"
                          r"(?:19|20)\d\d\s*\.?\s*$|^\s*last\s+(?:week|month|year)\s*\.?\s*$", re.IGNORECASE)
# after the yes/no word, only these may follow for the reply to stay a bare answer
BARE_TAIL_RE = re.compile(r"^\W*(?:(?:she|he|they|i|we|the patient)\s+(?:has|have|had|did|does|is|was|were|"
                          r"do)(?:\s*n['’]t|\s+not)?|never|not|none|at all|ever|thanks?|thank you|please)?\W*$",
                          re.IGNORECASE)
LEAD_RE = re.compile(r"\s*(?:it\s+(?:is|was)\s+)?", re.IGNORECASE)  # words before a bare answer's value
DOSE_NUMBER_RE = re.compile(r"^\s*\d+(?:\.\d+)?\s*\.?\s*$")
# a class or stage ("IV", "class III and V", "class 4"): roman numerals alone, digits only after the word
_CLASS = r"(?:(?:class|stage|grade|type)\s*(?:[ivx]+|\d+)|[ivx]+)\b"
BARE_CLASS_RE = re.compile(rf"^\s*(?:it\s+(?:is|was)\s+)?{_CLASS}(?:\s*(?:\+|and|or|/|,|&)\s*{_CLASS})*\s*\.?\s*$",
                           re.IGNORECASE)


def _bare_value(text: str) -> bool:
    return bool(text.strip()) and bool(BARE_VALUE_RE.match(text))


def answer_form(text: str) -> str | None:
    """YES_NO, VALUE, TIME or CLASS when the reply is nothing but that answer; None for anything else."""
    m = YES_RE.match(text) or NO_RE.match(text)
    if m:
        return YES_NO if BARE_TAIL_RE.match(text[m.end():]) else None
    if BARE_TIME_RE.match(text):
        return TIME
    if BARE_CLASS_RE.match(text):
        return CLASS
    return VALUE if _bare_value(text) else None


def is_bare_answer(text: str) -> bool:
    """A reply that says nothing but the answer: yes/no (with at most "she has"/"never"), a value, a time."""
    return answer_form(text) is not None


def _kind_what(question: dict[str, Any] | None) -> tuple[str, str]:
    kind, _, what = str((question or {}).get("key", "")).partition(":")
    return kind, what


def fits(question: dict[str, Any] | None, form: str | None) -> bool:
    return form is not None and form in FORMS_OF_KIND.get(_kind_what(question)[0], ())


def _subject_words(what: str) -> list[str]:
    return [w for part in what.split("|") for w in re.findall(r"[a-z0-9]{3,}", part.replace("_", " ").lower())]


def names_subject(question: dict[str, Any] | None, text: str) -> bool:
    """Does the reply name what the pending question asks about?"""
    _, what = _kind_what(question)
    words = set(re.findall(r"[a-z0-9]{3,}", text.lower()))
    return bool(what) and any(w in words for w in _subject_words(what))


def binds(question: dict[str, Any] | None, text: str) -> bool:
    """The answer-binding rule: the reply answers the pending question only when it is a bare answer or names
    that question's subject."""
    return bool(question) and (is_bare_answer(text) or names_subject(question, text))


def correction(text: str) -> str | None:
    """The bare answer after a correction word ("actually it was 8 months ago" -> "8 months ago"), else None."""
    m = CORRECTION_RE.match(text)
    rest = text[m.end():] if m and m.end() else ""
    return rest if rest.strip() and is_bare_answer(rest) else None


def bound_question(turn: Turn) -> dict[str, Any] | None:
    """The question a turn answers: a correction re-answers the question answered last when its form fits, else
    the pending one; any other reply answers the pending question only under :func:`binds`."""
    rest = correction(turn.text)
    if rest is not None:
        form = answer_form(rest)
        return next((q for q in (turn.previous, turn.answered) if q and fits(q, form)), None)
    return turn.answered if binds(turn.answered, turn.text) else None


def context_words(question: dict[str, Any] | None, text: str) -> tuple[str, str]:
    """Words around a bare value or time that make it readable on its own ("UPCR" before "2.4 g/g", "kidney
    biopsy done" before "8 months ago", "prednisone" before "10 mg"); free text gets none."""
    kind, what = _kind_what(question)
    form = answer_form(text)
    if not fits(question, form) or form == YES_NO or not what and kind not in ("age",):
        return "", ""
    first = what.split("|")[0].replace("_", " ")
    if kind == "lab":
        return LAB_PHRASES.get(what, what.replace("_", " ")), ""
    if kind == "age":
        return "age", ""
    if kind == "dose":
        return first, " mg daily" if DOSE_NUMBER_RE.match(text) else ""
    if kind in ("therapy", "therapy_date"):
        return f"{first} given", ""
    if kind in ("condition", "condition_date"):
        return f"{first} {'done' if 'biopsy' in first else 'diagnosed'}", ""
    if form == CLASS:  # "IV" -> "lupus nephritis class IV"
        return first if re.match(r"\s*(?:it\s+(?:is|was)\s+)?(?:class|stage|grade|type)", text, re.I) \
            else f"{first} class", ""
    return "", ""


def _shift(span: Span | None, delta: int, limit: tuple[int, int], answer: Span | None = None) -> Span | None:
    """A span of the text that was read, in transcript offsets; one that starts in the words put before a bare
    answer ("lupus nephritis class" before "IV") is the answer itself."""
    if span is None:
        return None
    if answer is not None and span.start + delta < answer.start:
        return answer
    start = min(max(span.start + delta, limit[0]), limit[1])
    end = min(max(span.end + delta, start), limit[1])
    return Span(start, end, span.text)


def _shift_profile(p: PatientProfile, delta: int, limit: tuple[int, int],
                   answer: Span | None = None) -> PatientProfile:
    def mv(items: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(replace(i, span=_shift(i.span, delta, limit, answer)) for i in items)

    return replace(p, conditions=mv(p.conditions), labs=mv(p.labs), therapies=mv(p.therapies),
                   therapy_counts=mv(p.therapy_counts), age_span=_shift(p.age_span, delta, limit, answer),
                   sex_span=_shift(p.sex_span, delta, limit, answer),
                   consent_span=_shift(p.consent_span, delta, limit, answer))


def yes_no_facts(question: dict[str, Any] | None, text: str, offset: int) -> PatientProfile | None:
    """A bare yes/no answer to a condition, therapy or consent question, as facts. "No" denies every
    alternative the question named ("a steroid such as prednisone": all corticosteroids); "yes" affirms the
    first (which one is not known)."""
    kind, what = _kind_what(question)
    yes, no = YES_RE.match(text), NO_RE.match(text)
    m = yes or no
    if m is None or answer_form(text) != YES_NO:
        return None
    span = Span(offset + m.start(), offset + m.end(), m.group(0).strip())
    if kind == "consent":
        return PatientProfile(consent_span=span) if yes else PatientProfile()
    if kind not in ("condition", "therapy") or not what:
        return PatientProfile()  # a yes/no to another kind of question states nothing
    ctx = Context(negated=bool(no))
    named = what.split("|") if no else what.split("|")[:1]
    if kind == "condition":
        return PatientProfile(conditions=tuple(ConditionFact(concept=c, span=span, context=ctx) for c in named))
    classes = tuple(c for c in what.split("|") if "_" in c or c.islower())
    return PatientProfile(therapies=tuple(TherapyFact(name=c, span=span, classes=tuple(dict.fromkeys((c, *classes)))
                                                      if no else classes, context=ctx) for c in named))


def read_turn(turn: Turn, extract: Callable[[str], PatientProfile]) -> PatientProfile:
    """The facts one turn states, with spans in transcript offsets."""
    question = bound_question(turn)
    rest = correction(turn.text) if question is not None else None
    text = rest if rest is not None else turn.text
    start = turn.offset + len(turn.text) - len(text)
    facts = yes_no_facts(question, text, start)
    if facts is not None:
        return facts
    before, after = context_words(question, text)
    limit = (turn.offset, turn.offset + len(turn.text))
    if before:
        lead = LEAD_RE.match(text).end()  # type: ignore[union-attr]  # always matches ("it was 8 months ago")
        body = text[lead:].rstrip()
        answer = Span(start + lead, start + lead + len(body), body)
        return _shift_profile(extract(f"{before} {body}{after}"), start + lead - len(before) - 1, limit, answer)
    return _shift_profile(extract(turn.text), turn.offset, limit)


def _inherit(new: Any, old: Any) -> Any:
    if new.context.negated != old.context.negated:
        return new
    kept = {f: getattr(old, f) for f in INHERITED if hasattr(new, f) and getattr(new, f) is None
            and getattr(old, f) is not None}
    return replace(new, **kept) if kept else new


def _merge_into(store: dict[str, tuple[Any, ...]], items: Sequence[Any], key: Callable[[Any], str],
                inherit: bool) -> None:
    grouped: dict[str, list[Any]] = {}
    for item in items:
        grouped.setdefault(key(item), []).append(item)
    for k, new in grouped.items():
        old = store.get(k)
        store[k] = tuple(_inherit(n, old[-1]) for n in new) if inherit and old else tuple(new)


def _withdraw_denied_classes(therapies: dict[str, tuple[TherapyFact, ...]], part: PatientProfile) -> None:
    """"No steroids" withdraws the prednisone said before (a denied class denies its drugs)."""
    for denial in (t for t in part.therapies if t.context.negated and t.name in t.classes):
        for k in [k for k, facts in therapies.items()
                  if any(denial.name in f.classes and not f.context.negated for f in facts)]:
            del therapies[k]


def merge_profiles(parts: Sequence[PatientProfile], text: str) -> PatientProfile:
    """Later turns win: facts about a concept/lab/drug replace the earlier ones about it (keeping what the later
    one does not say, unless it flips affirmation and negation)."""
    conditions: dict[str, tuple[Any, ...]] = {}
    labs: dict[str, tuple[Any, ...]] = {}
    therapies: dict[str, tuple[Any, ...]] = {}
    counts: dict[str, tuple[Any, ...]] = {}
    merged = PatientProfile(text=text)
    for part in parts:
        _withdraw_denied_classes(therapies, part)
        _merge_into(conditions, part.conditions, lambda f: f.concept, inherit=True)
        _merge_into(labs, part.labs, lambda f: f.name, inherit=False)
        _merge_into(therapies, part.therapies, lambda f: f.name, inherit=True)
        _merge_into(counts, part.therapy_counts, lambda c: c.drug_class, inherit=False)
        if part.has_age:
            merged = replace(merged, age_years=part.age_years, age_low=part.age_low, age_high=part.age_high,
                             age_span=part.age_span)
        if part.sex:
            merged = replace(merged, sex=part.sex, sex_span=part.sex_span)
        if part.consent_span:
            merged = replace(merged, consent_span=part.consent_span)
        if part.healthy is not None:
            merged = replace(merged, healthy=part.healthy)

    def flat(store: dict[str, tuple[Any, ...]]) -> tuple[Any, ...]:
        return tuple(i for items in store.values() for i in items)

    return replace(merged, conditions=flat(conditions), labs=flat(labs), therapies=flat(therapies),
                   therapy_counts=flat(counts))


# --------------------------------------------------------------------------- facts kept per turn

FACT_TYPES: dict[str, type] = {"conditions": ConditionFact, "labs": LabFact, "therapies": TherapyFact,
                               "therapy_counts": TherapyCount}
SPAN_FIELDS = ("age_span", "sex_span", "consent_span")


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def facts_to_dict(profile: PatientProfile) -> dict[str, Any]:
    """One turn's facts as JSON (kept in the session message so the turn is never read again)."""
    out = {k: v for k, v in _plain(profile).items() if k != "text"}
    return {"v": FACTS_VERSION, **out}


def _fact(cls: type, data: dict[str, Any]) -> Any:
    kw = dict(data)
    kw["span"] = Span(**data["span"])
    if "context" in kw:
        kw["context"] = Context(**kw["context"])
    if "comparator" in kw:
        kw["comparator"] = Comparator(kw["comparator"])
    if "classes" in kw:
        kw["classes"] = tuple(kw["classes"])
    return cls(**kw)


def facts_from_dict(data: Any) -> PatientProfile | None:
    """The stored facts of a turn; None when absent or from another version (the turn is then read again)."""
    if not isinstance(data, dict) or data.get("v") != FACTS_VERSION:
        return None
    try:
        kw: dict[str, Any] = {k: v for k, v in data.items() if k != "v" and k not in FACT_TYPES
                              and k not in SPAN_FIELDS}
        kw.update({k: tuple(_fact(cls, d) for d in data.get(k, ())) for k, cls in FACT_TYPES.items()})
        kw.update({k: Span(**data[k]) if data.get(k) else None for k in SPAN_FIELDS})
        return PatientProfile(**kw)
    except (TypeError, KeyError, ValueError):
        return None


def turn_facts(messages: Sequence[dict[str, Any]], extract: Callable[[str], PatientProfile]) -> list[PatientProfile]:
    """Each user turn's facts: the stored ones, or read now for a turn that has none."""
    users = [m for m in messages if m.get("role") == "user"]
    out = []
    for m, turn in zip(users, transcript_turns(messages)):
        stored = facts_from_dict(m.get("facts"))
        out.append(stored if stored is not None else read_turn(turn, extract))
    return out


def add_turn(messages: Sequence[dict[str, Any]], text: str, question: dict[str, Any] | None,
             extract: Callable[[str], PatientProfile]) -> list[dict[str, Any]]:
    """The transcript with one more user message: the question it was sent under and its facts (only this
    message is read)."""
    asked = {"key": str(question.get("key", "")), "text": str(question.get("text", ""))} if question else None
    out = list(messages) + [{"role": "user", "text": text, "answered": asked}]
    turn = transcript_turns(out)[-1]
    out[-1]["facts"] = facts_to_dict(read_turn(turn, extract))
    return out


def session_profile(messages: Sequence[dict[str, Any]], extract: Callable[[str], PatientProfile]) -> PatientProfile:
    return merge_profiles(turn_facts(messages, extract), transcript_text(messages))


def _turn_spans(messages: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(t.offset, t.offset + len(t.text)) for t in transcript_turns(messages)]


def annotate_turns(profile: dict[str, Any], messages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Provenance: add ``turn`` (the 0-based user turn that said it) to every fact of a profile JSON."""
    spans = _turn_spans(messages)

    def turn(evidence: dict[str, Any] | None) -> int | None:
        start = (evidence or {}).get("start", -1)
        return next((i for i, (a, b) in enumerate(spans) if a <= start < b), None)

    out = dict(profile)
    for name in ("conditions", "labs", "therapies", "therapy_counts"):
        out[name] = [{**f, "turn": turn(f.get("evidence"))} for f in profile.get(name, [])]
    for name in ("age", "sex"):
        if profile.get(f"{name}_evidence"):
            out[f"{name}_turn"] = turn(profile[f"{name}_evidence"])
    return out


# --------------------------------------------------------------------------- the transcript a referral keeps

Q_LINE_RE = re.compile(r"^Q: (?P<text>.*?)(?: \[(?P<key>[a-z_]+(?::[^\[\]]*)?)\])?$")
ANSWER, DESCRIPTION, INDENT = "A: ", "Description: ", "  "


def render_transcript(messages: Sequence[dict[str, Any]]) -> str:
    """The user turns as "Q: <question> [key]" / "A: <reply>" pairs (a turn sent with no question pending is a
    "Description:"); lines inside a message are indented, so the text reads back exactly."""
    blocks = []
    for m in messages:
        if m.get("role") != "user":
            continue
        body = m["text"].replace("\n", "\n" + INDENT)
        q = m.get("answered")
        if q and q.get("text"):
            blocks.append(f"Q: {q['text']}{' [' + q['key'] + ']' if q.get('key') else ''}\n{ANSWER}{body}")
        else:
            blocks.append(DESCRIPTION + body)
    return SEPARATOR.join(blocks)


def parse_transcript(text: str) -> list[dict[str, Any]] | None:
    """The user messages of a :func:`render_transcript` text; None when the text is not one (plain text)."""
    messages: list[dict[str, Any]] = []
    question: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    for line in text.split("\n"):
        if line.startswith(INDENT) and current is not None:
            current["text"] += "\n" + line[len(INDENT):]
        elif not line:
            continue
        elif (m := Q_LINE_RE.match(line)) is not None:
            question, current = {"key": m["key"] or "", "text": m["text"]}, None
        elif line.startswith((ANSWER, DESCRIPTION)):
            answer = line.startswith(ANSWER)
            current = {"role": "user", "text": line[len(ANSWER if answer else DESCRIPTION):],
                       "answered": question if answer else None}
            messages.append(current)
            question = None
        else:
            return None
    return messages or None


def next_question(result: MatchResult, asked: Sequence[str]) -> Question | None:
    return next((q for q in result.questions if q.key not in asked), None)


def reply_text(result: MatchResult, question: Question | None) -> str:
    """A short plain-language message for the widget."""
    if not result.matches:
        return (f"{result.notice or 'I could not find a matching open trial yet.'} Could you tell me more about "
                "the diagnosis, age and treatments so far?")
    if result.notice:
        parts0 = [result.notice]
    else:
        parts0 = []
    counts = {label: sum(m.label is label for m in result.matches) for label in TrialLabel}
    top = result.matches[0]
    parts = parts0 + [f"I found {len(result.matches)} trials to look at: {counts[TrialLabel.ELIGIBLE]} look eligible, "
             f"{counts[TrialLabel.POSSIBLY_ELIGIBLE]} possibly eligible and {counts[TrialLabel.INELIGIBLE]} "
             f"probably not eligible.",
             f"The best match is {top.nct_id} ({top.label.value.replace('_', ' ')}): {top.title}."]
    if question is not None:
        parts.append(f"To narrow this down: {question.text}")
    parts.append("This is not medical advice; the study team decides on eligibility.")
    return " ".join(parts)
