"""doc_to_profile: a processed patient description -> PatientProfile (pure).

Reads the entities and span groups the pipeline components left on the Doc:
conditions and drugs (``doc.ents``, with ConText flags), measurements, age,
sex and time expressions, and links them within sentences: a response word
("failed", "refractory to") to the drugs it governs, a time expression ("4
months ago") to the one fact it modifies (``attach_times``), a number to a drug
class ("three immunosuppressants"), a dose to a corticosteroid.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import replace

from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan

from models.domain import ConditionFact, Context, PatientProfile, Span, TherapyCount, TherapyFact
from nlp.components.timing import attach_times
from nlp.proxy import Proxy, find_proxy, find_stated_age, title_sex

MAX_TEXT_CHARS = 20_000
DRUG_LABEL = "DRUG"
RESPONSE_CUES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), label) for p, label in (
        (r"\bintoleran(?:t|ce)\b|\bcould not tolerate\b|\bnot tolerated\b|\bside effects?\b", "intolerant"),
        (r"\brefractory\b|\bresistant\b", "refractory"),
        (r"\bfail(?:ed|ure|ing)?\b|\bdid ?n[o']t (?:work|help|respond)\b|\bno response\b|\binadequate response\b"
         r"|\bnon-?respon\w*|\bprogress(?:ed|ion)\b|\bdidn't work\b|\bdid not work\b|\bwithout (?:response|improvement)",
         "failed"),
        (r"\brespond(?:ed)? (?:well )?to\b|\bremission (?:on|with)\b|\bgood response\b", "responded"),
    ))
CURRENT_CUES = re.compile(r"\b(?:currently|current|on|taking|receiving|maintained on|continues?|started)\b",
                          re.IGNORECASE)
CONSENT_RE = re.compile(r"\b(?:informed consent|consent(?:s|ed)? to|willing to (?:participate|consent|comply)"
                        r"|will comply)\b", re.IGNORECASE)
HEALTHY_RE = re.compile(r"\bhealthy (?:volunteer|adult|subject|individual|man|woman|male|female)\b", re.IGNORECASE)
_FREQ = (r"daily|qd|once daily|once a day|bid|b\.i\.d\.|twice daily|twice a day|tid|t\.i\.d\.|tds|three times"
         r" (?:daily|a day)|thrice daily|qid|four times (?:daily|a day)|a day|weekly|once weekly|every other day")
DOSE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|g)\b(?:\s*(?:/|per)\s*(day|d|week|wk))?"
                     r"(?:\s*(" + _FREQ + r"))?", re.IGNORECASE)
# A dose written before the drug: "16 mg methylprednisolone daily", "1 g of IV methylprednisolone".
DOSE_BEFORE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(mg|g)\b(?:\s*(?:/|per)\s*(day|d|week|wk))?"
                            r"\s+(?:of\s+)?(?:(?:oral|iv|intravenous|po)\s+)?$", re.IGNORECASE)
FREQ_AFTER_RE = re.compile(r"\s*(" + _FREQ + r")\b", re.IGNORECASE)
FREQ_PER_DAY = {"daily": 1, "qd": 1, "once daily": 1, "once a day": 1, "a day": 1, "bid": 2, "b.i.d.": 2,
                "twice daily": 2, "twice a day": 2, "tid": 3, "t.i.d.": 3, "tds": 3, "three times daily": 3,
                "three times a day": 3, "thrice daily": 3, "qid": 4, "four times daily": 4, "four times a day": 4,
                "day": 1, "d": 1, "weekly": 1 / 7, "once weekly": 1 / 7, "week": 1 / 7, "wk": 1 / 7,
                "every other day": 0.5}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "single": 1, "multiple": 2, "several": 2, "both": 2}


def _span(s: SpacySpan) -> Span:
    return Span(s.start_char, s.end_char, s.text)


def _family(ent: SpacySpan, proxy: Proxy | None) -> bool:
    """ConText's family flag, unless every family cue is the relative the description is about."""
    if not getattr(ent._, "is_family", False):
        return False
    if proxy is None:
        return True
    doc = ent.doc
    cues = [m for m in getattr(ent._, "modifiers", ()) if m.category == "FAMILY"]
    if not cues:
        return True
    for m in cues:
        start, end = m.modifier_span
        cue = doc[start:end]
        if not (cue.start_char <= proxy.start < cue.end_char or proxy.word in cue.text.lower()):
            return True
    return False


def _context(ent: SpacySpan, proxy: Proxy | None = None) -> Context:
    return Context(
        negated=bool(getattr(ent._, "is_negated", False)),
        historical=bool(getattr(ent._, "is_historical", False)),
        family=_family(ent, proxy),
        hypothetical=bool(getattr(ent._, "is_hypothetical", False)),
        uncertain=bool(getattr(ent._, "is_uncertain", False)),
    )


def _time_spans(doc: Doc) -> list[SpacySpan]:
    return list(doc.spans["ctm_time"]) if "ctm_time" in doc.spans else []


def doc_text(doc: Doc) -> str:
    """``Doc.text`` joins every token on each access; read it once per doc."""
    text = doc.user_data.get("ctm_text")
    if text is None:
        text = doc.user_data["ctm_text"] = doc.text
    return text


def _sent(ent: SpacySpan) -> SpacySpan:
    """The sentence of a span, from a per-doc index (``Span.sent`` rescans the doc on every call)."""
    doc = ent.doc
    index = doc.user_data.get("ctm_sent_index")
    if index is None:
        index = [None] * len(doc)
        for sent in doc.sents:
            for i in range(sent.start, sent.end):
                index[i] = sent
        doc.user_data["ctm_sent_index"] = index
    return index[ent.start] if len(doc) else ent


def _days_ago(ents: list[SpacySpan], times: Iterable[SpacySpan]) -> dict[tuple[int, int], float | None]:
    """(start, end) of each mention -> days ago of the one time expression that modifies it, if any.

    A time expression dates only the fact it modifies, never every fact in its sentence.
    """
    attached = attach_times(ents, times)
    return {(ents[k].start, ents[k].end): (t._.ctm_time or {}).get("days") for k, t in attached.items()}


def _response_for(ent: SpacySpan) -> str | None:
    sent = _sent(ent)
    offset = max(sent.start_char, ent.start_char - 300)
    text = doc_text(ent.doc)[offset:min(sent.end_char, ent.end_char + 60)]
    for pattern, label in RESPONSE_CUES:
        for m in pattern.finditer(text):
            start = offset + m.start()
            if start < ent.start_char or start - ent.end_char < 40:
                return label
    return None


def _status_for(ent: SpacySpan, ctx: Context, dosed: bool = False) -> str:
    if ctx.hypothetical:
        return "planned"
    before = doc_text(ent.doc)[max(_sent(ent).start_char, ent.start_char - 25):ent.start_char]
    if ctx.historical or re.search(r"\b(?:prior|previous(?:ly)?|past|received|had|was on|s/p|history of|treated "
                                   r"with|tried|failed)\b", before, re.IGNORECASE):
        return "prior"
    if CURRENT_CUES.search(before) or dosed:
        return "current"
    return "prior"


def _dose(ent: SpacySpan) -> float | None:
    """Daily dose in mg written right after the drug ("X 48 mg daily") or right before it ("48 mg X daily")."""
    text = doc_text(ent.doc)
    sent = _sent(ent)
    after = text[ent.end_char:min(sent.end_char, ent.end_char + 40)]
    m = DOSE_RE.match(after.lstrip(" :,(")) or DOSE_RE.search(after[:25])
    if m:
        mg, per, freq = m.group(1), m.group(3), m.group(4)
        unit = m.group(2)
    else:
        before = DOSE_BEFORE_RE.search(text[max(sent.start_char, ent.start_char - 30):ent.start_char])
        if not before:
            return None
        mg, unit, per = before.group(1), before.group(2), before.group(3)
        later = FREQ_AFTER_RE.match(after)
        freq = later.group(1) if later else None
    dose = float(mg) * (1000 if unit.lower() == "g" else 1)
    key = re.sub(r"\s+", " ", (freq or per or "daily").lower())
    return round(dose * FREQ_PER_DAY.get(key, 1), 3)


def _count_before(ent: SpacySpan) -> int | None:
    """A count governing a drug-class mention: 'three immunosuppressants', '2 prior biologics'."""
    for tok in reversed(list(ent.doc[max(_sent(ent).start, ent.start - 4):ent.start])):
        low = tok.lower_
        if low in NUMBER_WORDS:
            return NUMBER_WORDS[low]
        if tok.like_num and tok.text.isdigit() and int(tok.text) < 50:
            return int(tok.text)
        if low not in {"prior", "previous", "different", "standard", "lines", "line", "of", "other", "conventional",
                       "courses", "agents", "+", ">", "≥", "at", "least"}:
            return None
    return None


def _therapy(ent: SpacySpan, equivalence: dict[str, float], days_ago: float | None,
             proxy: Proxy | None) -> TherapyFact:
    ctx = _context(ent, proxy)
    name = ent._.ctm_concept or ent.text.lower()
    classes = tuple(ent._.ctm_classes or ())
    dose = _dose(ent) if "corticosteroid" in classes else None
    factor = equivalence.get(name)
    return TherapyFact(name=name, span=_span(ent), classes=classes, response=_response_for(ent),
                       status=_status_for(ent, ctx, dose is not None), dose_mg_day=dose,
                       prednisone_eq_mg_day=round(dose * factor, 3) if dose is not None and factor else None,
                       context=ctx, days_ago=days_ago)


def _patient_age(doc: Doc, proxy: Proxy | None, read_age) -> dict | None:  # type: ignore[no-untyped-def]
    """The age of the person described: the proxy relative's, the writer's, or the note's."""
    text = doc.text
    if proxy is not None and proxy.age_years is not None:
        assert proxy.age_start is not None and proxy.age_end is not None
        return {"years": proxy.age_years, "span": Span(proxy.age_start, proxy.age_end,
                                                       text[proxy.age_start:proxy.age_end])}
    age = read_age(doc)
    if age is None and proxy is not None:
        near = [s for s in doc.spans.get("ctm_age", []) if 0 <= s.start_char - proxy.end < 60 and s._.ctm_age]
        if near:
            age = {**near[0]._.ctm_age, "span": _span(near[0])}
    if age is None:
        stated = find_stated_age(text)
        if stated is not None:
            years, start, end = stated
            age = {"years": years, "span": Span(start, end, text[start:end])}
    return age


def _patient_sex(doc: Doc, proxy: Proxy | None, read_sex) -> tuple[str, Span] | None:  # type: ignore[no-untyped-def]
    if proxy is not None and proxy.sex is not None:
        return proxy.sex, Span(proxy.start, proxy.end, doc.text[proxy.start:proxy.end])
    sex = read_sex(doc)
    if sex is None:
        titled = title_sex(doc.text)
        if titled is not None:
            value, start, end = titled
            sex = value, Span(start, end, doc.text[start:end])
    return sex


def doc_to_profile(doc: Doc, equivalence: dict[str, float] | None = None) -> PatientProfile:
    """Everything the matcher needs to know about the patient, with evidence spans."""
    from nlp.components.demographics import read_age, read_sex
    from nlp.components.measurements import measurement_to_lab_fact

    equivalence = equivalence or {}
    ents = list(doc.ents)
    days_ago = _days_ago(ents, _time_spans(doc))
    proxy = find_proxy(doc.text)
    conditions, therapies, counts = [], [], []
    for ent in ents:
        if ent.label_ == DRUG_LABEL:
            if ent._.ctm_is_class:
                n = _count_before(ent)
                if n is not None:
                    counts.append(TherapyCount(drug_class=ent._.ctm_concept, count=n, span=_span(ent),
                                               response=_response_for(ent)))
                    continue
            therapies.append(_therapy(ent, equivalence, days_ago.get((ent.start, ent.end)), proxy))
            continue
        conditions.append(ConditionFact(
            concept=ent._.ctm_concept or ent.text.lower(), span=_span(ent), category=ent.label_.lower(),
            code=ent._.ctm_code, qualifier=ent._.ctm_qualifier, context=_context(ent, proxy),
            days_ago=days_ago.get((ent.start, ent.end))))
    measurements = list(doc.spans["ctm_measurements"]) if "ctm_measurements" in doc.spans else []
    labs = [measurement_to_lab_fact(m) for m in measurements]
    age = _patient_age(doc, proxy, read_age)
    sex = _patient_sex(doc, proxy, read_sex)
    consent = CONSENT_RE.search(doc.text)
    return PatientProfile(
        text=doc.text,
        age_years=age.get("years") if age else None,
        age_low=age.get("low") if age and age.get("years") is None else None,
        age_high=age.get("high") if age and age.get("years") is None else None,
        age_span=age.get("span") if age else None,
        sex=sex[0] if sex else None,
        sex_span=sex[1] if sex else None,
        conditions=tuple(conditions),
        labs=tuple(l for l in labs if l is not None),
        therapies=tuple(therapies),
        therapy_counts=tuple(counts),
        consent_span=Span(consent.start(), consent.end(), consent.group(0)) if consent else None,
        healthy=bool(HEALTHY_RE.search(doc.text)) or None,
    )


def extract_profile(nlp: Language, text: str, reference_date: datetime.date | None = None,
                    deadline: float | None = None) -> PatientProfile:
    """Run the pipeline on (at most MAX_TEXT_CHARS of) ``text`` and build the profile.

    ``reference_date`` is the day the description was written: calendar dates ("in 2019",
    "in March 2020") become days ago against it. Without it they stay undated; nothing
    here reads the clock (callers at the edge pass ``datetime.date.today()``).

    ``deadline`` (a ``time.monotonic()`` value) bounds the work: the components run one by one and
    ``ExtractionBudgetExceeded`` is raised before the next step once it has passed. A component is
    never interrupted, so one step may overrun the deadline by its own running time.
    """
    import time

    from models.domain import ExtractionBudgetExceeded

    lexicon = getattr(nlp.get_pipe("ctm_terminology"), "lexicon", None)
    equivalence = lexicon.prednisone_equivalence() if lexicon is not None and hasattr(
        lexicon, "prednisone_equivalence") else {}
    from nlp.pipeline import safe_text

    def check(stage: str) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise ExtractionBudgetExceeded(stage, len(text))

    text = text[:MAX_TEXT_CHARS]
    check("tokenizer")
    doc = nlp.make_doc(safe_text(text))
    if reference_date is not None:
        if not Doc.has_extension("ctm_reference_date"):
            Doc.set_extension("ctm_reference_date", default=None)
        doc._.ctm_reference_date = reference_date
    for name, proc in nlp.pipeline:
        check(name)
        doc = proc(doc)
    check("profile")
    profile = doc_to_profile(doc, equivalence)
    return replace(profile, text=text)
