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

What cannot be structured stays text with ``parsed=False`` (the matcher says
"unknown", never "met").
"""
from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Sequence
from dataclasses import replace

from spacy.language import Language
from spacy.tokens import Doc
from spacy.tokens import Span as SpacySpan

from models.domain import Comparator, ParsedCriterion, Requirement, Span
from nlp.profile import doc_text

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
        reqs.append(Requirement(type="therapy", span=span, present=present, concepts=concepts, classes=classes,
                                **_window(doc, plain[0])))
    return reqs


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
    m = GUARD_RE.match(text)
    body_start = 0
    if m:
        inside = [e for e in ents if e.end_char <= m.end(1)]
        conditions = [e for e in inside if e.label_ != "DRUG"]
        drugs = [e for e in inside if e.label_ == "DRUG"]
        if inside and m.end() < len(text) - 10:
            if conditions:
                guards.append(replace(_condition_req(doc, conditions, True), within_days=None, min_days_ago=None))
            elif drugs:
                guards += [replace(r, within_days=None, min_days_ago=None) for r in _drug_reqs(doc, drugs, True)]
            body_start = m.end()
    return guards, body_start


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


def parse_doc(doc: Doc) -> ParsedCriterion:
    text = doc_text(doc)
    if CATCH_ALL_RE.search(text):
        return ParsedCriterion(text=text, parsed=False)  # investigator's judgement: a clinician decides
    ents = [e for e in doc.ents if not (e.label_ == "DRUG" and _is_anchor(doc, e))]
    guards, body_start = _guards(doc, text, ents)
    body = [e for e in ents if e.start_char >= body_start]
    absent = bool(ABSENCE_RE.match(text[body_start:]))
    reqs: list[Requirement] = []
    reqs += _age_reqs(doc)
    sex = _sex_req(doc, text)
    if sex and not guards:
        reqs.append(sex)
    reqs += _lab_reqs(doc)
    lab_spans = [(r.span.start, r.span.end) for r in reqs if r.type == "lab"]
    conditions = [e for e in body if e.label_ != "DRUG" and not getattr(e._, "is_family", False)
                  and not any(s <= e.start_char < t for s, t in lab_spans)]
    drugs = [e for e in body if e.label_ == "DRUG"]
    defined = DEFINED_RE.search(text)
    if defined and lab_spans:
        conditions = [e for e in conditions if e.start_char > defined.end()]  # the labs define the condition
    if conditions:
        negated = [e for e in conditions if _negated(e, text[body_start:])]
        affirmed = [e for e in conditions if e not in negated]
        for cluster in _conjunctive_clusters(doc, affirmed):
            reqs.append(_condition_req(doc, cluster, True))
        if negated:
            reqs.append(_condition_req(doc, negated, False))
    if drugs:
        reqs += _drug_reqs(doc, drugs, present=not (absent or all(getattr(e._, "is_negated", False)
                                                                      for e in drugs)))
    if not reqs and any(sp._.ctm_sex == "all" for sp in doc.spans.get("ctm_sex", [])):
        sp = next(sp for sp in doc.spans["ctm_sex"] if sp._.ctm_sex == "all")
        reqs.append(Requirement(type="sex", span=_span(sp), sex="all"))
    if CONSENT_RE.search(text) and not reqs:
        reqs.append(Requirement(type="consent", span=Span(0, len(text), text),
                                present=not REFUSAL_RE.search(text)))
    if HEALTHY_RE.search(text):
        reqs.append(Requirement(type="healthy_volunteer", span=Span(0, len(text), text)))
    reqs = _drop_qualifying_drugs(doc, reqs)
    logic = "any" if len(reqs) > 1 and OR_RE.search(text) and not any(r.type == "age" for r in reqs) else "all"
    if logic == "all" and len(reqs) > 1 and LIST_RE.search(text) and not any(r.type == "age" for r in reqs):
        logic = "list"  # "a; b; c": any item for an exclusion, all items for an inclusion
    return ParsedCriterion(text=text, requirements=tuple(reqs), logic=logic, parsed=bool(reqs),
                           guards=tuple(guards))


_WORKER_NLP: Language | None = None  # set in the parent before forking workers


def _parse_chunk(texts: list[str]) -> list[ParsedCriterion]:
    assert _WORKER_NLP is not None
    return _parse_serial(_WORKER_NLP, texts)


def _parse_serial(nlp: Language, texts: Sequence[str], batch_size: int = 256) -> list[ParsedCriterion]:
    from nlp.pipeline import safe_text

    return [replace(parse_doc(doc), text=t)
            for doc, t in zip(nlp.pipe((safe_text(t) for t in texts), batch_size=batch_size), texts)]


def parse_criteria(nlp: Language, texts: Sequence[str], processes: int | None = None) -> list[ParsedCriterion]:
    """Parse many criterion texts (each truncated to 5,000 characters).

    Large batches (bulk ingestion) are spread over forked worker processes that
    share the already-built pipeline; results come back in input order.
    """
    global _WORKER_NLP
    texts = [t[:5000] for t in texts]
    processes = processes if processes is not None else min(os.cpu_count() or 1, 4)
    if processes < 2 or len(texts) < 4000 or multiprocessing.current_process().daemon:
        return _parse_serial(nlp, texts)
    size = max(500, len(texts) // (processes * 4))
    chunks = [list(texts[i:i + size]) for i in range(0, len(texts), size)]
    _WORKER_NLP = nlp
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            return [p for chunk in pool.map(_parse_chunk, chunks) for p in chunk]
    finally:
        _WORKER_NLP = None
