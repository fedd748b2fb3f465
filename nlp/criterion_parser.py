"""Criterion text -> ParsedCriterion: polarity and requirement shape (pure over a processed Doc).

Examples of what comes out::

    "Age 18-70"                                   age 18..70
    "UPCR >= 1.5 g/g and <= 7"                    lab upcr >= 1.5 g/g
    ">= 2 prior immunosuppressants including >= 1 biologic"
                                                  therapy_count immunosuppressant >= 2, biologic >= 1
    "No prior CAR-T"                              therapy car_t, present=False
    "biopsy class III/IV within 6 months"         condition lupus nephritis, class III/IV, within 183 days
    "ANA >= 1:80 OR anti-dsDNA OR anti-Sm"        any(lab ana >= 80, anti_dsdna positive, anti_sm positive)
    "For lupus nephritis: ..."                    guard: condition lupus nephritis
    "Pregnant or breastfeeding"                   guard: sex female; condition pregnancy|breastfeeding
    "active fungal or viral infection"            any(fungal infection, viral infection), both "active"
    "prednisone > 20 mg/day"                      therapy prednisone, comparator >, value 20, unit mg/day
    "If on X, dose stable for >= 4 weeks"         guard: therapy X; therapy X, modifiers stable, min 28 days
    "SLE-related organ involvement such as: a, b" any(a, b) (the disease only qualifies the list)

What cannot be structured stays text with ``parsed=False`` (the matcher says
"unknown", never "met").
"""
from __future__ import annotations

import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan

from models.domain import Comparator, ParsedCriterion, Requirement, Span
from nlp.components.measurements import MENTIONS_KEY, read_comparator
from nlp.profile import doc_text

Lookup = Callable[[str], "str | None"]  # surface form -> condition concept (the lexicon), None if unknown

FEMALE_ONLY_CONCEPTS = frozenset({"pregnancy", "breastfeeding", "lactation", "childbearing potential"})
FEMALE_CUES = re.compile(r"\b(?:pregnan\w*|breast[- ]?feeding|lactat\w*|nursing|child[- ]?bearing|contracept\w*|"
                         r"women of|wocbp|menopaus\w*)\b", re.IGNORECASE)
GUARD_RE = re.compile(r"^\s*(?:for|in|if)\s+(?:patients?|subjects?|participants?|those|women|men)?\s*"
                      r"(?:with|who have|who has|on|taking|receiving)?\s*([^:,]{3,80})[:,]", re.IGNORECASE)
IF_FEMALE_RE = re.compile(r"^\s*(?:if|for)\s+(?:a\s+)?(?:female|women|woman)\b|^\s*(?:female|women) "
                          r"(?:patients|subjects|participants)?\s*(?:of child|who|must|should)", re.IGNORECASE)
IF_MALE_RE = re.compile(r"^\s*(?:if|for)\s+(?:a\s+)?(?:male|men|man)\b|^\s*(?:male|men) (?:patients|subjects|"
                        r"participants)?\s*(?:who|must|should|with partners)", re.IGNORECASE)
ABSENCE_RE = re.compile(r"^\s*(?:no|not|without|absence of|never|free of|negative)\b", re.IGNORECASE)
CONSENT_RE = re.compile(r"\b(?:consent\w*|assent|voluntar\w*|willing(?:ness)? (?:and able )?to|"
                        r"able to (?:comply|understand|provide|give|sign)|sign(?:ed)? (?:the |an )?(?:informed )?"
                        r"consent|comply with (?:the )?(?:study|protocol))", re.IGNORECASE)
REFUSAL_RE = re.compile(r"\b(?:unable|unwilling|inability|refus\w*|no|not|lack|fail\w*|unreliable|cannot|"
                        r"can't|incapable|declin\w*|withdraw\w*)\b", re.IGNORECASE)
NOT_HEALTHY_RE = re.compile(r"healthy volunteers?\s*:\s*no\b", re.IGNORECASE)
HEALTHY_RE = re.compile(r"\bhealthy (?:volunteers?|subjects?|adults?|individuals?|participants?)\b", re.IGNORECASE)
MODIFIER_RE = re.compile(r"\b(active|uncontrolled|untreated|severe|significant|clinically significant|unstable|"
                         r"symptomatic|requiring|decompensated|progressive|progressing|current|other|another|"
                         r"additional|second|concomitant|overlapping)\b", re.IGNORECASE)
COUNT_RE = re.compile(r"(?:(?:≥|>=|>|at least|a minimum of|minimum of|more than)\s*)?\b(\d+|one|two|three|four|five)"
                      r"\s+(?:or more\s+)?(?:prior\s+|previous\s+|different\s+|standard\s+|lines? of\s+|courses? of\s+)*",
                      re.IGNORECASE)
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
OR_RE = re.compile(r"\bor\b|\beither\b|\bany of\b|\bone of\b", re.IGNORECASE)
CATCH_ALL_RE = re.compile(r"opinion of the (?:principal )?investigator|investigator'?s?\W+(?:opinion|judg)|"
                          r"judg(?:e)?ment of the (?:principal )?investigator|in the (?:investigator'?s?|physician'?s?) "
                          r"(?:opinion|judg)", re.IGNORECASE)
ANCHOR_RE = re.compile(r"(?:prior to|before|after|of|since)\s+(?:the\s+)?(?:first|initial|last|start of)?\s*"
                       r"(?:dose|doses|infusion|administration|treatment|dosing)\s+(?:of|with)\s+(?:the\s+)?$",
                       re.IGNORECASE)
DURATION_RE = re.compile(r"\b(?:for|lasting|of)\s+(?:a\s+(?:minimum|period)\s+of\s+)?$|\bstable\b[^.;]{0,25}$",
                         re.IGNORECASE)
CONJUNCTIVE_RE = re.compile(r"^\W*(?:\w+\s+){0,2}(?:affected by|with|due to|secondary to|caused by|associated "
                            r"with|complicated by|in combination with|in the setting of)\s+(?:\w+\s+){0,2}$",
                            re.IGNORECASE)
LIST_RE = re.compile(r";|,\s")
QUALIFYING_RE = re.compile(r"\b(?:requir\w*|treated with|treatment with|managed with|controlled (?:with|by)|despite|"
                           r"on|needing)\s+(?:\w+\s+){0,3}$", re.IGNORECASE)
DEFINED_RE = re.compile(r"\b(?:defined (?:as|by)|as evidenced by|as measured by|documented by)\b", re.IGNORECASE)
LAB_COMPARATORS = {c.value: c for c in Comparator}
# "Patients on X must ...": a subject restricted by a therapy (or condition) before a modal verb is a guard.
GUARD_SUBJECT_RE = re.compile(r"^\s*(?:patients?|subjects?|participants?|those|individuals?|women|men)\s+"
                              r"(?:who\s+(?:are|were)\s+)?(?:currently\s+)?(?:on|taking|receiving|treated\s+with|"
                              r"using)\s+([^:;,]{3,80}?)\s+(?:must|should|need|needs|are\s+required|is\s+required|"
                              r"will\s+need|have\s+to|has\s+to|require)\b", re.IGNORECASE)
# A body that names no drug of its own but speaks of dosing is about the guard's drug ("If on X, dose stable").
DOSING_RE = re.compile(r"\b(?:dose|doses|dosage|dosing|regimen|stable|mg|g/day)\b", re.IGNORECASE)
STABLE_RE = re.compile(r"\bstable\b|\bunchanged\b|\bno\s+(?:dose\s+)?change", re.IGNORECASE)
# Coordinated pre-modifiers share the head noun: "viral or bacterial infection" = viral infection | bacterial ...
COORD_RE = re.compile(r"((?:\b[A-Za-z][\w-]*\s*,\s*){0,4}\b[A-Za-z][\w-]*)\s*,?\s+(and/or|or|and)\s+$")
COORD_WORD_RE = re.compile(r"[A-Za-z][\w-]*")
# A disease followed by "(-related) organ involvement / manifestations such as:" only qualifies the list.
INVOLVEMENT_RE = re.compile(r"[\s-]{0,3}(?:(?:related|associated|induced|attributable|specific)\s+)?"
                            r"(?:(?:major\s+|end[- ])?(?:organ|system|organ[- ]system)\s+)?(?:disease\s+)?"
                            r"(?:involvement|manifestations?|features?|symptoms?|complications?|activity|flares?)"
                            r"\s*,?\s*(?:such\s+as|including|like|e\.\s?g\.?|i\.\s?e\.?|for\s+example|"
                            r"defined\s+as)?\s*[:(]?\s*", re.IGNORECASE)
LIST_CUE_RE = re.compile(r"such\s+as|including|like|e\.\s?g|i\.\s?e|for\s+example|defined\s+as|[:(]\s*$",
                         re.IGNORECASE)
LIST_ITEM_SEP_RE = re.compile(r"\s*(?:,|/|;|\band/or\b|\bor\b|\band\b)\s*", re.IGNORECASE)
INVOLVEMENT_FORMS = ("{} involvement", "{} disease", "{}")  # "renal" in an involvement list = renal involvement
# Items of a list of alternatives are joined only by separators and conjunctions.
LIST_GAP_RE = re.compile(r"^[\s,;/()]*(?:and/or|or|and)?[\s,()]*$", re.IGNORECASE)
# An antibody test named alone as a requirement is required to be positive.
ANTIBODY_RE = re.compile(r"anti|antibod|\bab\b", re.IGNORECASE)
# A dose written next to a drug (after it, or before "of <drug>") caps or floors that therapy.
DOSE_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?)(?:\s{0,2}(?:-|–|to)\s{0,2}(?P<high>\d+(?:\.\d+)?))?\s{0,2}"
                     r"(?P<unit>mg|g|mcg|µg|ug)(?![A-Za-z])(?P<kg>\s{0,2}/\s{0,2}kg)?"
                     r"(?P<day>\s{0,2}(?:/\s{0,2}(?:day|d)\b|per\s+day\b|daily\b|a\s+day\b|qd\b))?", re.IGNORECASE)
DOSE_BEFORE_TAIL_RE = re.compile(r"^\s{0,2}(?:of\s+)?(?:oral\s+|iv\s+|intravenous\s+)?$", re.IGNORECASE)
# "X-equivalent", "X (or equivalent)", "X or equivalent dose": X names the dose scale of a drug class.
EQUIVALENT_RE = re.compile(r"^[\s-]{0,2}(?:\(\s?)?(?:or\s+(?:an?\s+)?)?(?:dose\s+)?equivalents?\b", re.IGNORECASE)
# "immunosuppressants other than X": X is carved out of the requirement, not part of it.
EXCEPT_RE = re.compile(r"\b(?:other\s+than|except(?:\s+for)?|excluding|apart\s+from|besides)\s+(?:\w+\s+){0,2}$",
                       re.IGNORECASE)
DOSE_SCALE = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "µg": 0.001, "ug": 0.001}
DOSE_WINDOW = 45


def _span(s: SpacySpan) -> Span:
    return Span(s.start_char, s.end_char, s.text)


def _window(doc: Doc, ent: SpacySpan) -> dict[str, float | None]:
    """Time window of the criterion that applies to ``ent`` (nearest 'within'/'at least' expression)."""
    within = min_days = None
    for t in doc.spans.get("ctm_time", []) if "ctm_time" in doc.spans else []:
        info = t._.ctm_time or {}
        days = info.get("days")
        if days is None or DURATION_RE.search(doc_text(doc)[max(0, t.start_char - 40):t.start_char]):
            continue  # "for at least 90 days", "stable for >= 14 days" are durations, not windows
        if info.get("relation") == "within":
            within = days if within is None else min(within, days)
        elif info.get("relation") == "at_least":
            min_days = days
    return {"within_days": within, "min_days_ago": min_days}


def _modifiers(doc: Doc, ent: SpacySpan) -> tuple[str, ...]:
    before = doc_text(doc)[max(0, ent.start_char - 30):ent.start_char]
    after = doc_text(doc)[ent.end_char:ent.end_char + 25]
    found = [m.group(1).lower() for m in MODIFIER_RE.finditer(before)]
    found = ["other" if f in ("another", "additional", "second", "concomitant", "overlapping") else f for f in found]
    found += [m.group(1).lower() for m in MODIFIER_RE.finditer(after) if m.group(1).lower() == "requiring"]
    return tuple(dict.fromkeys(found))


def _count_for(doc: Doc, ent: SpacySpan) -> int | None:
    before = doc_text(doc)[max(0, ent.start_char - 40):ent.start_char]
    match = None
    for m in COUNT_RE.finditer(before):
        if m.end() >= len(before) - 1:
            match = m
    if match is None:
        return None
    raw = match.group(1).lower()
    return NUMBER_WORDS.get(raw) or (int(raw) if raw.isdigit() and int(raw) < 20 else None)


def _negated(ent: SpacySpan, text: str) -> bool:
    return bool(getattr(ent._, "is_negated", False)) or bool(ABSENCE_RE.match(text))


def _condition_req(doc: Doc, ents: list[SpacySpan], present: bool) -> Requirement:
    main = [e for e in ents if not (e.label_ == "PROCEDURE" and "biops" in (e._.ctm_concept or e.text).lower())]
    ents = main or ents  # "biopsy-proven X", "X by renal biopsy": the biopsy is evidence, not a requirement
    first = ents[0]
    span = Span(first.start_char, ents[-1].end_char, doc_text(doc)[first.start_char:ents[-1].end_char])
    qualifiers = [e._.ctm_qualifier for e in ents if e._.ctm_qualifier]
    window = _window(doc, first)
    return Requirement(type="condition", span=span, present=present,
                       concepts=tuple(dict.fromkeys(e._.ctm_concept or e.text.lower() for e in ents)),
                       qualifier=qualifiers[0] if qualifiers else None,
                       modifiers=tuple(dict.fromkeys(m for e in ents for m in _modifiers(doc, e))), **window)


def _drug_reqs(doc: Doc, drugs: list[SpacySpan], present: bool) -> list[Requirement]:
    reqs = []
    plain = []
    for ent in drugs:
        count = _count_for(doc, ent) if ent._.ctm_is_class else None
        if count is not None:
            reqs.append(Requirement(type="therapy_count", span=_span(ent), classes=(ent._.ctm_concept,),
                                    min_count=count))
        else:
            plain.append(ent)
    counts = [r for r in reqs if r.type == "therapy_count"]
    for outer, inner in zip(counts, counts[1:]):
        between = doc_text(doc)[outer.span.end:inner.span.start]
        if re.search(r"\b(?:including|incl\.?|of which|at least one of which)\b", between, re.IGNORECASE):
            # ">= 2 immunosuppressants (including >= 1 biologic)": the biologic is one of the two
            merged = replace(outer, classes=tuple(dict.fromkeys(outer.classes + inner.classes)))
            reqs[reqs.index(outer)] = merged
    if plain:
        concepts = tuple(dict.fromkeys(e._.ctm_concept for e in plain if not e._.ctm_is_class and e._.ctm_concept))
        classes = tuple(dict.fromkeys(e._.ctm_concept for e in plain if e._.ctm_is_class and e._.ctm_concept))
        span = Span(plain[0].start_char, plain[-1].end_char, doc_text(doc)[plain[0].start_char:plain[-1].end_char])
        req = Requirement(type="therapy", span=span, present=present, concepts=concepts, classes=classes,
                          **_window(doc, plain[0]))
        reqs.append(_with_dose(doc, req, plain))
    return reqs


def _dose_fields(match: re.Match[str], comparator: str | None, equivalent: bool) -> dict[str, object]:
    """Requirement fields of a dose: mg (per day when stated per day), comparator, range high."""
    scale = DOSE_SCALE.get(match.group("unit").lower(), 1.0)
    value = round(float(match.group("num")) * scale, 6)
    high = round(float(match.group("high")) * scale, 6) if match.group("high") else None
    unit = "mg" + ("/kg" if match.group("kg") else "") + ("/day" if match.group("day") else "")
    comp = Comparator.GE if high is not None else LAB_COMPARATORS.get(comparator or "=", Comparator.EQ)
    return {"value": value, "value_high": high, "comparator": comp, "unit": unit,
            "qualifier": "prednisone_equivalent" if equivalent else None}


def _comparator_before(text: str) -> str | None:
    """The comparator that ends ``text`` ("prednisone ≤ ", "at a dose of no more than ")."""
    stripped = text.rstrip()
    for start in range(max(0, len(stripped) - 30), len(stripped)):
        if start and stripped[start - 1].isalpha() and stripped[start].isalpha():
            continue
        found = read_comparator(stripped, start)
        if found and found[1] == len(stripped):
            return found[0]
    return None


def _dose_near(doc: Doc, ent: SpacySpan, stop: int) -> dict[str, object] | None:
    """Dose cap/floor written right after a drug ("X <= 10 mg/day") or before it ("> 20 mg/day of X")."""
    text = doc_text(doc)
    clause = re.split(r"[;.](?:\s|$)", text[ent.end_char:ent.end_char + DOSE_WINDOW + 25], maxsplit=1)[0]
    equivalent = "equivalent" in clause.lower()
    after = clause[:max(0, min(stop - ent.end_char, DOSE_WINDOW))]
    m = DOSE_RE.search(after)
    if m:
        return _dose_fields(m, _comparator_before(after[:m.start()]), equivalent)
    before = text[max(0, ent.start_char - DOSE_WINDOW):ent.start_char]
    for m in DOSE_RE.finditer(before):
        if DOSE_BEFORE_TAIL_RE.match(before[m.end():]):
            return _dose_fields(m, _comparator_before(before[:m.start()]), equivalent)
    return None


def _excepted(doc: Doc, ent: SpacySpan) -> bool:
    return bool(EXCEPT_RE.search(doc_text(doc)[max(0, ent.start_char - 40):ent.start_char]))


def _is_equivalence_unit(doc: Doc, ent: SpacySpan) -> bool:
    """"20 mg/day prednisone equivalent": the drug names the dose scale, not a required drug."""
    return bool(EQUIVALENT_RE.match(doc_text(doc)[ent.end_char:ent.end_char + 20]))


def _with_dose(doc: Doc, req: Requirement, ents: list[SpacySpan]) -> Requirement:
    stops = sorted(e.start_char for e in doc.ents if e.label_ == "DRUG" and not _is_equivalence_unit(doc, e))
    for ent in ents:
        stop = next((s for s in stops if s > ent.start_char), len(doc_text(doc)))
        dose = _dose_near(doc, ent, stop)
        if dose is not None:
            return replace(req, **dose)  # type: ignore[arg-type]
    return req


def _lab_reqs(doc: Doc) -> list[Requirement]:
    reqs = []
    for m in doc.spans["ctm_measurements"] if "ctm_measurements" in doc.spans else []:
        info = m._.ctm_measurement or {}
        name = info.get("name")
        if not name:
            continue
        value = info.get("normalized_value")
        unit = info.get("normalized_unit")
        if value is None:
            value, unit = info.get("value"), info.get("unit")
        comparator = LAB_COMPARATORS.get(info.get("comparator") or "")
        high = info.get("normalized_value_high") if info.get("normalized_value") is not None else info.get(
            "value_high")
        if high is not None:
            comparator = Comparator.GE
        reqs.append(Requirement(type="lab", span=_span(m), lab=name, value=value, value_high=high, unit=unit,
                                comparator=comparator if value is not None else None,
                                qualifier=info.get("polarity") if value is None else None))
    return reqs


TRAILING_HIGH_RE = re.compile(r"^[^.;]{0,40}?\band\s*(?:≤|<=|<|=<|no more than|not more than|at most|up to)\s*"
                              r"(\d+(?:\.\d+)?)\s*([a-zA-Z/%]+)?(?P<either>[^.;]{0,30}\b(?:either|each|both|all)\b)?")


def _shared_upper_bound(text: str, reqs: list[Requirement]) -> list[Requirement]:
    """An upper bound written after a list of alternative measures ("UPCR >= 1.5 g/g or proteinuria >= 1.5 g/day
    and <= 7 g/day by either measure") applies to every measure of the list that has no upper bound of its own:
    to those in the same unit, or to all when the text says "either/each/both"."""
    labs = [r for r in reqs if r.type == "lab" and r.value is not None and r.value_high is None
            and r.comparator in (Comparator.GE, Comparator.GT)]
    if not labs:
        return reqs
    m = TRAILING_HIGH_RE.match(text[max(r.span.end for r in labs):])
    if not m:
        return reqs
    high, unit = float(m.group(1)), (m.group(2) or "").lower()
    out = []
    for r in reqs:
        if r in labs and (m.group("either") or not unit or (r.unit or "").lower() == unit):
            r = replace(r, value_high=high)
        out.append(r)
    return out


def _age_reqs(doc: Doc) -> list[Requirement]:
    reqs = []
    for s in doc.spans["ctm_age"] if "ctm_age" in doc.spans else []:
        info = s._.ctm_age or {}
        low, high, years = info.get("low"), info.get("high"), info.get("years")
        comp = info.get("comparator")
        if low is None and high is None and years is not None:
            if comp in (">", ">="):
                low = years
            elif comp in ("<", "<="):
                high = years
            else:
                continue  # a bare age in a criterion is not a bound
        if low is None and high is None:
            continue
        reqs.append(Requirement(
            type="age", span=_span(s), value=low, value_high=high,
            comparator=Comparator.GT if low is not None and info.get("low_inclusive") is False else Comparator.GE,
            qualifier="high_exclusive" if high is not None and info.get("high_inclusive") is False else None))
    return reqs[:1]


def _sex_req(doc: Doc, text: str) -> Requirement | None:
    if FEMALE_CUES.search(text):
        return None  # pregnancy/contraception wording makes sex a guard, not a requirement
    for s in doc.spans["ctm_sex"] if "ctm_sex" in doc.spans else []:
        if s._.ctm_sex in ("female", "male") and s._.ctm_sex_strength == "explicit":
            return Requirement(type="sex", span=_span(s), sex=s._.ctm_sex)
    return None


def _guards(doc: Doc, text: str, ents: list[SpacySpan]) -> tuple[list[Requirement], int]:
    """Guards and the character offset where the criterion body starts."""
    guards: list[Requirement] = []
    if IF_FEMALE_RE.search(text):
        guards.append(Requirement(type="sex", span=Span(0, min(len(text), 20), text[:20]), sex="female"))
    elif FEMALE_CUES.search(text):  # pregnancy wording: only a woman can meet or trigger it
        guards.append(Requirement(type="sex", span=Span(0, min(len(text), 20), text[:20]), sex="female",
                                  qualifier="implied"))
    elif IF_MALE_RE.search(text):
        guards.append(Requirement(type="sex", span=Span(0, min(len(text), 20), text[:20]), sex="male"))
    m = GUARD_RE.match(text) or GUARD_SUBJECT_RE.match(text)
    body_start = 0
    if m:
        inside = [e for e in ents if m.start(1) <= e.start_char and e.end_char <= m.end(1)
                  and not _excepted(doc, e)]
        conditions = [e for e in inside if e.label_ != "DRUG"]
        drugs = [e for e in inside if e.label_ == "DRUG"]
        if inside and m.end() < len(text) - 10:
            if conditions:
                guards.append(replace(_condition_req(doc, conditions, True), within_days=None, min_days_ago=None))
            elif drugs:
                guards += [replace(r, within_days=None, min_days_ago=None, value=None, value_high=None,
                                   comparator=None, unit=None, qualifier=None) for r in _drug_reqs(doc, drugs, True)]
            body_start = m.end() if m.re is GUARD_RE else m.end(1)
    return guards, body_start


def _guard_drug_body(doc: Doc, guards: list[Requirement], body_start: int) -> list[Requirement]:
    """"If on X, the dose must be stable / <= 10 mg/day": a body naming no drug is about the guard drug."""
    text = doc_text(doc)
    drug_guards = [g for g in guards if g.type == "therapy"]
    body = text[body_start:]
    if not drug_guards or not DOSING_RE.search(body):
        return []
    guard = drug_guards[0]
    lead = len(body) - len(body.lstrip())
    req = replace(guard, span=Span(body_start + lead, len(text), body.strip()))
    dose = DOSE_RE.search(body)
    if dose:
        req = replace(req, **_dose_fields(dose, _comparator_before(body[:dose.start()]),  # type: ignore[arg-type]
                                          "equivalent" in body.lower()))
    stable = STABLE_RE.search(body)
    if stable:  # "stable for >= 4 weeks": on the drug at least that long, dose unchanged (modifier "stable")
        after = body_start + stable.start()
        days = [t._.ctm_time.get("days") for t in doc.spans.get("ctm_time", [])
                if t.start_char >= after and t._.ctm_time and t._.ctm_time.get("days")]
        req = replace(req, modifiers=("stable",), min_days_ago=days[0] if days else None)
    return [req]


def _coordinated(doc: Doc, ent: SpacySpan, lookup: Lookup | None) -> tuple[list[tuple[Span, str]], str | None]:
    """Concepts of the pre-modifiers coordinated with ``ent``'s first word, and the conjunction.

    "active viral or bacterial infection" -> [("viral", "viral infection")], "or"; a word only counts
    when "<word> <head>" is a known concept, so "fever or bacterial infection" is not split.
    """
    words = ent.text.split()
    if lookup is None or len(words) < 2:
        return [], None
    head = " ".join(words[1:])
    start = max(0, ent.start_char - 60)
    before = doc_text(doc)[start:ent.start_char]
    m = COORD_RE.search(before)
    if not m:
        return [], None
    own = ent._.ctm_concept or ent.text.lower()
    found = []
    for w in COORD_WORD_RE.finditer(m.group(1)):
        concept = lookup(f"{w.group()} {head}")
        if concept and concept != own:
            begin = start + m.start(1) + w.start()
            found.append((Span(begin, begin + len(w.group()), w.group()), concept))
    return found, m.group(2).lower() if found else None


def _distribute(doc: Doc, ents: list[SpacySpan], req: Requirement,
                lookup: Lookup | None) -> tuple[list[Requirement], str | None]:
    """Requirements for coordinated pre-modifiers sharing the head noun and the shared modifiers of ``req``."""
    out: list[Requirement] = []
    conj = None
    for ent in ents:
        found, word = _coordinated(doc, ent, lookup)
        conj = conj or word
        out += [replace(req, span=span, concepts=(concept,), qualifier=None) for span, concept in found]
    return out, conj


def _involvement_lists(doc: Doc, conditions: list[SpacySpan],
                       lookup: Lookup | None) -> tuple[list[SpacySpan], list[Requirement]]:
    """"<disease>-related organ involvement such as: a, b or c": the disease is context; items are alternatives.

    Returns the entities used up (the qualifying disease and the items) and one requirement per item.
    """
    text = doc_text(doc)
    for i, ent in enumerate(conditions):
        m = INVOLVEMENT_RE.match(text, ent.end_char)
        if not m or not LIST_CUE_RE.search(text[ent.end_char:m.end()]):
            continue
        end = len(re.split(r"[;.](?:\s|$)", text[m.end():], maxsplit=1)[0]) + m.end()
        items = [e for e in conditions[i + 1:] if e.start_char >= m.end() and e.end_char <= end]
        shared = _modifiers(doc, ent)
        reqs = [replace(_condition_req(doc, [e], True), modifiers=tuple(dict.fromkeys(
            shared + _modifiers(doc, e)))) for e in items]
        reqs += _bare_items(text, m.end(), end, items, shared, lookup)
        if reqs:
            return [ent, *items], sorted(reqs, key=lambda r: r.span.start)
    return [], []


def _bare_items(text: str, start: int, end: int, items: list[SpacySpan], shared: tuple[str, ...],
                lookup: Lookup | None) -> list[Requirement]:
    """List items that are no entity: an organ adjective ("renal") stands for that organ's involvement."""
    if lookup is None:
        return []
    out = []
    pos = start
    for piece in [*LIST_ITEM_SEP_RE.split(text[start:end])]:
        begin = text.find(piece, pos, end) if piece else -1
        if begin < 0:
            continue
        pos = begin + len(piece)
        word = piece.strip(" )(").strip()
        if not word or any(e.start_char < pos and begin < e.end_char for e in items):
            continue
        concept = next((c for c in (lookup(f.format(word)) for f in INVOLVEMENT_FORMS) if c), None)
        if concept:
            out.append(Requirement(type="condition", span=Span(begin, pos, piece), concepts=(concept,),
                                   modifiers=shared))
    return out


def _bare_lab_reqs(doc: Doc, reqs: list[Requirement], ents: list[SpacySpan]) -> list[Requirement]:
    """Tests named without a value in a list of lab alternatives take the list's result.

    "ANA >= 1:80, anti-Sm positive or anti-dsDNA": anti-dsDNA inherits "positive" from its neighbour; an
    antibody next to a numeric threshold is required to be positive.
    """
    text = doc_text(doc)
    labs = [r for r in reqs if r.type == "lab"]
    made: list[Requirement] = []
    pending = [m for m in doc.spans.get(MENTIONS_KEY, []) if not any(
        r.span.start <= m.start_char < r.span.end for r in labs) and not any(
        e.start_char <= m.start_char < e.end_char for e in ents)]
    changed = bool(labs)
    while pending and changed:
        changed = False
        for m in list(pending):
            known = labs + made
            if any(r.lab == m.label_ for r in known):
                pending.remove(m)
                continue
            near = [r for r in known if LIST_GAP_RE.match(
                text[r.span.end:m.start_char] if r.span.end <= m.start_char else text[m.end_char:r.span.start])]
            if not near:
                continue
            neighbour = min(near, key=lambda r: min(abs(r.span.end - m.start_char), abs(m.end_char - r.span.start)))
            qualifier = neighbour.qualifier if neighbour.value is None else (
                "positive" if ANTIBODY_RE.search(m.text) or ANTIBODY_RE.search(m.label_) else None)
            pending.remove(m)
            if qualifier:
                made.append(Requirement(type="lab", span=_span(m), lab=m.label_, qualifier=qualifier))
                changed = True
    return made


def _conjunctive_clusters(doc: Doc, ents: list[SpacySpan]) -> list[list[SpacySpan]]:
    """Split conditions joined by 'affected by', 'with', 'due to' (all needed) from plain lists (alternatives)."""
    if not ents:
        return []
    clusters: list[list[SpacySpan]] = [[ents[0]]]
    for prev, ent in zip(ents, ents[1:]):
        between = doc_text(doc)[prev.end_char:ent.start_char]
        if CONJUNCTIVE_RE.match(between) and "," not in between and " or " not in between:
            clusters.append([ent])
        else:
            clusters[-1].append(ent)
    return clusters


def _drop_qualifying_drugs(doc: Doc, reqs: list[Requirement]) -> list[Requirement]:
    """'asthma requiring daily oral steroids': the drug qualifies the condition, it is not an alternative."""
    if not any(r.type == "condition" for r in reqs):
        return reqs
    return [r for r in reqs if not (r.type == "therapy" and QUALIFYING_RE.search(
        doc_text(doc)[max(0, r.span.start - 30):r.span.start]))]


def _is_anchor(doc: Doc, ent: SpacySpan) -> bool:
    """'prior to the first dose of NKX019': the study drug as a time anchor, not a requirement."""
    return bool(ANCHOR_RE.search(doc_text(doc)[max(0, ent.start_char - 45):ent.start_char]))


def parse_doc(doc: Doc, lookup: Lookup | None = None) -> ParsedCriterion:
    """Structure of one processed criterion; ``lookup`` (surface form -> concept) enables coordination."""
    text = doc_text(doc)
    if CATCH_ALL_RE.search(text):
        return ParsedCriterion(text=text, parsed=False)  # investigator's judgement: a clinician decides
    ents = [e for e in doc.ents if not (e.label_ == "DRUG" and _is_anchor(doc, e))]
    guards, body_start = _guards(doc, text, ents)
    reqs, logic = _body(doc, text, ents, guards, body_start, lookup)
    subject_guard = GUARD_SUBJECT_RE.match(text)
    if not reqs and subject_guard and any(g.type == "condition" for g in guards):
        # "Patients with X must ..." with nothing structured after it: X itself is what is required
        guards = [g for g in guards if g.type == "sex"]
        reqs, logic = _body(doc, text, ents, guards, 0, lookup)
    return ParsedCriterion(text=text, requirements=tuple(reqs), logic=logic, parsed=bool(reqs),
                           guards=tuple(guards))


def _body(doc: Doc, text: str, ents: list[SpacySpan], guards: list[Requirement], body_start: int,
          lookup: Lookup | None) -> tuple[list[Requirement], str]:
    """Requirements of the criterion body (after any guard) and their logic."""
    body = [e for e in ents if e.start_char >= body_start]
    absent = bool(ABSENCE_RE.match(text[body_start:]))
    reqs: list[Requirement] = []
    reqs += _age_reqs(doc)
    sex = _sex_req(doc, text)
    if sex and not guards:
        reqs.append(sex)
    reqs += _lab_reqs(doc)
    reqs += _bare_lab_reqs(doc, reqs, list(doc.ents))
    reqs = _shared_upper_bound(text, reqs)
    lab_spans = [(r.span.start, r.span.end) for r in reqs if r.type == "lab"]
    conditions = [e for e in body if e.label_ != "DRUG" and not getattr(e._, "is_family", False)
                  and not any(s <= e.start_char < t for s, t in lab_spans)]
    drugs = _required_drugs(doc, [e for e in body if e.label_ == "DRUG" and not _excepted(doc, e)], guards)
    defined = DEFINED_RE.search(text)
    if defined and lab_spans:
        conditions = [e for e in conditions if e.start_char > defined.end()]  # the labs define the condition
    forced: str | None = None
    if conditions:
        used, listed = _involvement_lists(doc, conditions, lookup)
        if listed:
            conditions = [e for e in conditions if e not in used]
            reqs += listed
            forced = "any"
        negated = [e for e in conditions if _negated(e, text[body_start:])]
        affirmed = [e for e in conditions if e not in negated]
        for cluster in _conjunctive_clusters(doc, affirmed):
            req = _condition_req(doc, cluster, True)
            extra, conj = _distribute(doc, cluster, req, lookup)
            reqs += extra + [req]
            if extra:
                forced = forced or ("list" if conj == "and" else "any")
        if negated:
            reqs.append(_condition_req(doc, negated, False))
    if drugs:
        reqs += _drug_reqs(doc, drugs, present=not (absent or all(getattr(e._, "is_negated", False)
                                                                      for e in drugs)))
        reqs = [_equivalence_classes(doc, r, drugs) for r in reqs]
    else:
        reqs += _guard_drug_body(doc, guards, body_start)
    if not reqs and any(sp._.ctm_sex == "all" for sp in doc.spans.get("ctm_sex", [])):
        sp = next(sp for sp in doc.spans["ctm_sex"] if sp._.ctm_sex == "all")
        reqs.append(Requirement(type="sex", span=_span(sp), sex="all"))
    if CONSENT_RE.search(text) and not reqs:
        reqs.append(Requirement(type="consent", span=Span(0, len(text), text),
                                present=not REFUSAL_RE.search(text)))
    if HEALTHY_RE.search(text) and not NOT_HEALTHY_RE.search(text):  # "Accepts Healthy Volunteers: No" asks nothing
        reqs.append(Requirement(type="healthy_volunteer", span=Span(0, len(text), text)))
    reqs = _drop_qualifying_drugs(doc, reqs)
    return reqs, _logic(text, reqs, forced)


def _logic(text: str, reqs: list[Requirement], forced: str | None) -> str:
    if len(reqs) < 2 or any(r.type == "age" for r in reqs):
        return "all"
    if OR_RE.search(text):
        return "any"
    if forced:
        return forced  # distributed coordinations and involvement lists are alternatives
    return "list" if LIST_RE.search(text) else "all"  # "a; b; c": any item for an exclusion, all for inclusion


def _required_drugs(doc: Doc, drugs: list[SpacySpan], guards: list[Requirement]) -> list[SpacySpan]:
    """Drop drugs that only name a dose scale ("prednisone equivalent") when another drug is meant."""
    scales = [e for e in drugs if _is_equivalence_unit(doc, e)]
    if scales and (len(scales) < len(drugs) or any(g.type == "therapy" for g in guards)):
        return [e for e in drugs if e not in scales]
    return drugs


def _equivalence_classes(doc: Doc, req: Requirement, drugs: list[SpacySpan]) -> Requirement:
    """"> 20 mg/day prednisone equivalent" alone: any drug of prednisone's class at that equivalent dose."""
    if req.type != "therapy" or not drugs or not all(_is_equivalence_unit(doc, e) for e in drugs):
        return req
    classes = tuple(c for e in drugs for c in (getattr(e._, "ctm_classes", None) or ()) if c == "corticosteroid")
    if not classes:
        return req
    return replace(req, concepts=(), classes=classes, qualifier="prednisone_equivalent")


_WORKER_NLP: Language | None = None  # set in the parent before forking workers
PARALLEL_MIN_CHUNK = 150  # texts per worker below which forking costs more than it saves


def default_processes() -> int:
    """Worker processes for a large parse: every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _parse_chunk(texts: list[str]) -> list[ParsedCriterion]:
    assert _WORKER_NLP is not None
    return _parse_serial(_WORKER_NLP, texts)


def concept_lookup(nlp: Language) -> Lookup | None:
    """Condition concept of a surface form, from the pipeline's lexicon (None without one)."""
    if "ctm_terminology" not in nlp.pipe_names:
        return None
    lexicon = getattr(nlp.get_pipe("ctm_terminology"), "lexicon", None)
    if lexicon is None or not hasattr(lexicon, "lookup_condition"):
        return None

    def lookup(term: str) -> str | None:
        entry = lexicon.lookup_condition(term)
        return entry.concept if entry is not None else None

    return lookup


def _parse_serial(nlp: Language, texts: Sequence[str], batch_size: int = 256) -> list[ParsedCriterion]:
    from nlp.pipeline import safe_text

    lookup = concept_lookup(nlp)
    return [replace(parse_doc(doc, lookup), text=t)
            for doc, t in zip(nlp.pipe((safe_text(t) for t in texts), batch_size=batch_size), texts)]


def parse_criteria(nlp: Language, texts: Sequence[str], processes: int | None = None) -> list[ParsedCriterion]:
    """Parse many criterion texts (each truncated to 5,000 characters).

    Batches of more than a few hundred texts (bulk ingestion, the parse-cache misses of a batch) are
    spread over forked worker processes, one per core by default, that share the already-built
    pipeline; results come back in input order.
    """
    global _WORKER_NLP
    texts = [t[:5000] for t in texts]
    processes = processes if processes is not None else default_processes()
    processes = min(processes, len(texts) // PARALLEL_MIN_CHUNK)
    if (processes < 2 or multiprocessing.current_process().daemon
            or threading.current_thread() is not threading.main_thread()):
        # never fork from a request thread: forking a threaded process can deadlock the child
        return _parse_serial(nlp, texts)
    size = max(PARALLEL_MIN_CHUNK, -(-len(texts) // (processes * 4)))
    chunks = [list(texts[i:i + size]) for i in range(0, len(texts), size)]
    _WORKER_NLP = nlp
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            return [p for chunk in pool.map(_parse_chunk, chunks) for p in chunk]
    finally:
        _WORKER_NLP = None
