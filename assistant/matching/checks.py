"""Criterion checks: (patient profile, parsed criterion) -> verdict with reason and evidence. Pure.

Each requirement of a parsed criterion evaluates to a three-valued ``Truth``
(yes / no / unknown) with the patient evidence it used; the criterion combines
them with its logic ("all" / "any"). Reading of absent information:

* inclusion: what the description does not establish is ``unknown`` (ask);
* exclusion: a condition or therapy the description does not mention is taken
  as absent (closed world, as clinicians read a referral), but a missing lab
  value or a qualified condition ("active", "uncontrolled") stays ``unknown``.

Negated, family and hypothetical mentions never count as the patient having
the condition; uncertain ones ("possible lupus") give ``unknown``.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from typing import Any

from assistant.matching.policy import ClosedWorldPolicy, load_policy
from models.domain import (
    ConditionFact,
    CriterionKind,
    CriterionText,
    CriterionVerdict,
    LabFact,
    PatientProfile,
    Requirement,
    Span,
    TherapyFact,
    Verdict,
)
from nlp.units import convert

IsA = Callable[[str, str], bool]


class Truth(Enum):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"

    def invert(self) -> "Truth":
        return {Truth.YES: Truth.NO, Truth.NO: Truth.YES, Truth.UNKNOWN: Truth.UNKNOWN}[self]


@dataclass(frozen=True, slots=True)
class Finding:
    """Outcome of one requirement: truth, a clause for the reason, evidence, missing fact."""

    truth: Truth
    clause: str
    evidence: tuple[Span, ...] = ()
    missing: str | None = None
    assumed: bool = False  # closed-world "not mentioned" reading
    key: str | None = None  # what one answer would resolve, e.g. "lab:upcr"
    question: str | None = None
    basis: str | None = None  # the closed-world policy's reason for an assumed absence


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check needs besides the profile: the kind of criterion and the ontology."""

    kind: CriterionKind
    is_a: IsA = field(default=lambda concept, ancestor: concept == ancestor)
    closed_world: bool = False  # "not mentioned" reads as absent (set per requirement)
    study_concepts: frozenset[str] = frozenset()  # the trial's conditions under study
    absence_is_phrasing: bool = False  # exclusion worded "No X"/"Must not ...": X is what excludes
    policy: ClosedWorldPolicy | None = None  # None: the bundled data/rules/closed_world.json
    category_of: Callable[[str], str | None] = field(default=lambda concept: None)  # lexicon category
    event_dated: bool = False  # the criterion's time window dates an event (diagnosis, biopsy)
    rule_out: bool = False  # the requirement looks for a reason to rule the patient out
    reaction_to_drug: bool = False  # the criterion is about a reaction to its drugs (allergy, intolerance)
    guard: bool = False  # checking whom a conditional criterion is about ("For participants on X")
    event_days_ago: float | None = None  # the date of that event given in the description (a dated biopsy)


# --------------------------------------------------------------------------- helpers


def _concept_matches(concept: str, wanted: Iterable[str], is_a: IsA) -> bool:
    return any(concept == w or is_a(concept, w) for w in wanted)


def _within(days_ago: float | None, req: Requirement) -> Truth:
    """Does a dated fact satisfy the requirement's time window? Undated facts: unknown."""
    if req.within_days is None and req.min_days_ago is None:
        return Truth.YES
    if days_ago is None:
        return Truth.UNKNOWN
    if req.within_days is not None and days_ago > req.within_days:
        return Truth.NO
    if req.min_days_ago is not None and days_ago < req.min_days_ago:
        return Truth.NO
    return Truth.YES


def _window_text(req: Requirement) -> str:
    if req.within_days is not None:
        return f" within {_days_text(req.within_days)}"
    if req.min_days_ago is not None:
        return f" at least {_days_text(req.min_days_ago)} ago"
    return ""


def _days_text(days: float) -> str:
    if days >= 365 and days % 365.25 < 1 or days >= 730:
        return f"{days / 365.25:g} years"
    if days >= 28 and days % 30 < 3:
        return f"{round(days / 30.44):g} months"
    if days >= 7 and days % 7 == 0:
        return f"{days / 7:g} weeks"
    return f"{days:g} days"


def _key(req: Requirement) -> str:
    """Machine form of what a requirement asks about: concepts and classes joined by '|'."""
    return "|".join((*req.concepts, *req.classes)) or req.span.text.lower()


def _names(req: Requirement) -> str:
    items = list(req.concepts) + [c.replace("_", " ") for c in req.classes]
    return " or ".join(items) if items else req.span.text


# --------------------------------------------------------------------------- requirement checks


def check_age(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    low, high = req.value, req.value_high
    bounds = _age_bounds_text(req)
    if not profile.has_age:
        return Finding(Truth.UNKNOWN, f"the patient's age is not stated (criterion: {bounds})",
                       missing="the patient's age", key="age", question="How old is the patient?")
    ev = (profile.age_span,) if profile.age_span else ()
    p_low = profile.age_years if profile.age_years is not None else profile.age_low
    p_high = profile.age_years if profile.age_years is not None else profile.age_high
    assert p_low is not None and p_high is not None

    def ok(age: float) -> bool:
        if low is not None and (age < low or (req.comparator and req.comparator.value == ">" and age <= low)):
            return False
        if high is not None and (age > high + (0.999 if high == int(high) else 0)
                                 or (req.qualifier == "high_exclusive" and age >= high)):
            return False
        return True

    age_text = f"{p_low:g}" if p_low == p_high else f"{p_low:g}-{p_high:g}"
    if ok(p_low) and ok(p_high):
        return Finding(Truth.YES, f"age {age_text} is within {bounds}", ev)
    if not ok(p_low) and not ok(p_high):
        return Finding(Truth.NO, f"age {age_text} is outside {bounds}", ev)
    return Finding(Truth.UNKNOWN, f"age range {age_text} straddles {bounds}", ev, missing="the exact age",
                   key="age", question="What is the patient's exact age?")


def _age_bounds_text(req: Requirement) -> str:
    if req.value is not None and req.value_high is not None:
        return f"{req.value:g}-{req.value_high:g} years"
    if req.value is not None:
        return f"{'over' if req.comparator and req.comparator.value == '>' else 'at least'} {req.value:g} years"
    if req.value_high is not None:
        return f"{'under' if req.qualifier == 'high_exclusive' else 'at most'} {req.value_high:g} years"
    return "any age"


def check_sex(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    if req.sex in (None, "all"):
        return Finding(Truth.YES, "open to all sexes")
    if profile.sex is None:
        return Finding(Truth.UNKNOWN, f"the patient's sex is not stated (criterion: {req.sex})",
                       missing="the patient's sex", key="sex", question="What is the patient's sex?")
    ev = (profile.sex_span,) if profile.sex_span else ()
    truth = Truth.YES if profile.sex == req.sex else Truth.NO
    return Finding(truth, f"patient is {profile.sex}; criterion requires {req.sex}", ev)


def _condition_status(fact: ConditionFact) -> Truth:
    c = fact.context
    if c.negated:
        return Truth.NO
    if c.family or c.hypothetical:
        return Truth.NO  # a relative's disease or a plan is not the patient's condition
    if c.uncertain:
        return Truth.UNKNOWN
    return Truth.YES


def _qualifier_ok(fact: ConditionFact, req: Requirement) -> Truth:
    if not req.qualifier:
        return Truth.YES
    if not fact.qualifier:
        return Truth.UNKNOWN
    wanted = {q.strip().lower() for q in req.qualifier.replace("/", ",").split(",") if q.strip()}
    have = {q.strip().lower() for q in fact.qualifier.replace("/", ",").replace("+", ",").split(",") if q.strip()}
    if wanted & have or any(w in fact.qualifier.lower() for w in wanted):
        return Truth.YES
    return Truth.NO


def _under_study(concept: str, ctx: CheckContext) -> bool:
    return any(concept == s or ctx.is_a(concept, s) for s in ctx.study_concepts)


def _condition_facts(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> list[ConditionFact]:
    """Facts that match a required concept. When looking for a reason to rule the patient out, the
    disease under study never counts through a broad category ("any other autoimmune disease" does
    not exclude a lupus patient from a lupus trial); only an exact mention does."""
    out = []
    other = "other" in req.modifiers  # "no OTHER malignancy": the disease under study does not count
    for f in profile.conditions:
        if other and (_under_study(f.concept, ctx) or any(ctx.is_a(s, f.concept) for s in ctx.study_concepts)):
            continue
        if f.concept in req.concepts:
            out.append(f)
        elif _concept_matches(f.concept, req.concepts, ctx.is_a) and not (
                ctx.rule_out and _under_study(f.concept, ctx)):
            out.append(f)
    return out


def check_condition(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    names = _names(req)
    facts = _condition_facts(profile, req, ctx)
    affirmed = [f for f in facts if _condition_status(f) is Truth.YES]
    if affirmed and ctx.rule_out and all(f.concept in ctx.study_concepts for f in affirmed):
        # a trial does not rule out the disease it studies: a criterion that names it is about a form, stage or
        # course of it ("progressive MS" in an MS trial), which the bare diagnosis does not settle
        fact = affirmed[0]
        return Finding(Truth.UNKNOWN, f"{fact.concept} ({_quote(fact.span)}) is the condition this trial studies; "
                       f"the criterion is about a particular form or course of it", (fact.span,),
                       missing=f"whether the patient's {fact.concept} is of the kind the criterion names",
                       key=f"condition_form:{fact.concept}",
                       question=f"Which form, stage or course of {fact.concept} does the patient have?")
    if affirmed:
        return _affirmed_condition(affirmed, req, names, event_dated=ctx.event_dated,
                                   event_days_ago=ctx.event_days_ago)
    uncertain = [f for f in facts if _condition_status(f) is Truth.UNKNOWN]
    if uncertain:
        return Finding(Truth.UNKNOWN, f"{names} is only suspected ({_quote(uncertain[0].span)})",
                       (uncertain[0].span,), missing=f"whether {names} is confirmed",
                       key=f"condition:{_key(req)}", question=f"Has {names} been confirmed?")
    ruled_out = [f for f in facts if f.context.negated]
    if ruled_out:
        return Finding(Truth.NO, f"{names} is negated ({_quote(ruled_out[0].span)})", (ruled_out[0].span,))
    family = [f for f in facts if f.context.family]
    note = f" (only a family history: {_quote(family[0].span)})" if family else ""
    ev = (family[0].span,) if family else ()
    if ctx.closed_world:
        return Finding(Truth.NO, f"no mention of {names}{note}", ev, assumed=True)
    return Finding(Truth.UNKNOWN, f"{names}{_window_text(req)} is not mentioned{note}", ev,
                   missing=f"whether the patient has {names}{_window_text(req)}",
                   key=f"condition:{_key(req)}", question=f"Does the patient have {names}{_window_text(req)}?")


EVENT_RE = re.compile(r"\b(?:diagnos\w*|biops\w*|onset|confirmed|documented|histolog\w*|proven|"
                      r"established|detected|identified|started|initiated)\b", re.IGNORECASE)


def _biopsy_date(profile: PatientProfile, text: str) -> float | None:
    """A criterion that dates a diagnosis by its biopsy is dated by the description's dated biopsy."""
    if not re.search(r"\bbiops", text, re.IGNORECASE):
        return None
    dated = [f.days_ago for f in profile.conditions if "biopsy" in f.concept and f.days_ago is not None
             and not f.context.negated and not f.context.hypothetical]
    return min(dated) if dated else None


def _affirmed_condition(facts: Sequence[ConditionFact], req: Requirement, names: str,
                        event_dated: bool = False, event_days_ago: float | None = None) -> Finding:
    """``event_dated``: the criterion dates an event (a diagnosis, a biopsy), which an undated mention of a
    current condition does not settle; ``event_days_ago``: that event's date where the description gives it."""
    best: Finding | None = None
    for fact in facts:
        if fact.days_ago is None and event_days_ago is not None:
            fact = replace(fact, days_ago=event_days_ago)
        when = _within(fact.days_ago if not fact.context.historical or fact.days_ago is not None
                       else None, req) if (req.within_days or req.min_days_ago) else Truth.YES
        if (not fact.context.historical and fact.days_ago is None and req.within_days is not None
                and not event_dated):
            when = Truth.YES  # a current condition is within any recent window ("active infection within 2 weeks")
        qual = _qualifier_ok(fact, req)
        truth = _and([when, qual])
        clause = f"{names} is present ({_quote(fact.span)})"
        missing = None
        if qual is Truth.NO:
            clause = f"{names} is present but {fact.qualifier or 'its class'} is not {req.qualifier} ({_quote(fact.span)})"
        elif qual is Truth.UNKNOWN:
            clause += f", but {req.qualifier} is not stated"
            missing = f"the {req.qualifier} detail of {names}"
        if when is Truth.UNKNOWN:
            clause += f"; the date is not stated (criterion: {_window_text(req).strip()})"
            missing = missing or f"when {names} was diagnosed"
        elif when is Truth.NO:
            clause = f"{names} ({_quote(fact.span)}) falls outside{_window_text(req)}"
        activity = [m for m in req.modifiers if m != "other"]
        if activity and truth is Truth.YES and fact.context.historical:
            truth, missing = Truth.UNKNOWN, f"whether {names} is currently {' '.join(activity)}"
            clause += f", but only as history; the criterion asks for {' '.join(activity)} disease"
        # the key says what the answer is (a class, a date, current activity), so a bare "no" to "When was it
        # diagnosed?" is never read as denying the condition
        kind = ("condition_detail" if qual is Truth.UNKNOWN else "condition_date" if when is Truth.UNKNOWN
                else "condition_activity")
        finding = Finding(truth, clause, (fact.span,), missing, key=f"{kind}:{_key(req)}" if missing else None,
                          question=_ask(missing) if missing else None)
        if best is None or _rank(truth) > _rank(best.truth):
            best = finding
    assert best is not None
    return best


def _ask(missing: str) -> str:
    """A plain question for what is missing ("when lupus nephritis was diagnosed" -> "When was lupus nephritis
    diagnosed?")."""
    m = re.match(r"when (.+) was (diagnosed|done|given|started)$", missing)
    if m:
        return f"When was {m.group(1)} {m.group(2)}?"
    m = re.match(r"whether (.+) is currently (.+)$", missing)
    if m:
        return f"Is {m.group(1)} currently {m.group(2)}?"
    m = re.match(r"the (.+) detail of (.+)$", missing)
    if m:
        return f"What is the {m.group(1)} of the {m.group(2)}?"
    return f"Can you give {missing}?"


def _rank(t: Truth) -> int:
    return {Truth.NO: 0, Truth.UNKNOWN: 1, Truth.YES: 2}[t]


def _lab_value(fact: LabFact, req: Requirement) -> float | None:
    if req.unit is None or fact.unit is None:
        if fact.normalized_value is not None and req.unit == fact.normalized_unit:
            return fact.normalized_value
        return fact.value if (req.unit is None or fact.unit is None) else None
    if fact.normalized_unit == req.unit and fact.normalized_value is not None:
        return fact.normalized_value
    return convert(fact.value, fact.unit, req.unit, lab=req.lab)


def check_lab(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    label = (req.lab or "value").replace("_", " ")
    facts = [f for f in profile.labs if f.name == req.lab and not f.context.negated]
    negated = [f for f in profile.labs if f.name == req.lab and f.context.negated]
    wanted = _threshold_text(req)
    if not facts:
        if negated and req.qualifier == "positive":
            return Finding(Truth.NO, f"{label} is negative ({_quote(negated[0].span)})", (negated[0].span,))
        if ctx.closed_world:  # an abnormal value would have been reported; still worth asking
            return Finding(Truth.NO, f"no {label} value is given; assumed not {wanted}", assumed=True,
                           missing=f"the most recent {label}", key=f"lab:{req.lab}",
                           question=f"What was the most recent {_lab_title(req.lab)}?")
        return Finding(Truth.UNKNOWN, f"no {label} value is given (criterion: {wanted})",
                       missing=f"the most recent {label}", key=f"lab:{req.lab}",
                       question=f"What was the most recent {_lab_title(req.lab)}?")
    fact = facts[-1]  # the latest mention wins (later messages update earlier ones)
    if req.qualifier in ("positive", "negative", "low", "high", "elevated") and req.value is None:
        return _lab_polarity(fact, req, label)
    if req.value is None or req.comparator is None:
        return Finding(Truth.YES, f"{label} is reported ({_quote(fact.span)})", (fact.span,))
    if fact.value is None:
        return Finding(Truth.UNKNOWN, f"{label} is described ({_quote(fact.span)}) without a value",
                       (fact.span,), missing=f"the {label} value", key=f"lab:{req.lab}",
                       question=f"What was the most recent {_lab_title(req.lab)} value?")
    value = _lab_value(fact, req)
    if value is None:
        return Finding(Truth.UNKNOWN, f"{label} {_quote(fact.span)} cannot be compared with {wanted}",
                       (fact.span,), missing=f"{label} in {req.unit}", key=f"lab:{req.lab}",
                       question=f"What was the most recent {_lab_title(req.lab)} in {req.unit}?")
    ok = req.comparator.holds(value, req.value)
    if ok and req.value_high is not None:
        ok = value <= req.value_high
    if fact.comparator.value != "=" and not ok:
        return Finding(Truth.UNKNOWN, f"{label} is only bounded ({_quote(fact.span)}); criterion: {wanted}",
                       (fact.span,), missing=f"the exact {label}", key=f"lab:{req.lab}",
                       question=f"What was the exact {_lab_title(req.lab)}?")
    shown = f"{value:g} {req.unit or ''}".strip()
    verb = "meets" if ok else "does not meet"
    return Finding(Truth.YES if ok else Truth.NO, f"{label} {shown} ({_quote(fact.span)}) {verb} {wanted}",
                   (fact.span,))


def _lab_polarity(fact: LabFact, req: Requirement, label: str) -> Finding:
    pol = fact.polarity
    if pol is None and fact.value is not None and req.qualifier == "positive" and fact.name == "ana":
        pol = "positive" if fact.value >= 40 else "negative"  # ANA titre 1:40 or more is positive
    if pol is None:
        return Finding(Truth.UNKNOWN, f"{label} is reported ({_quote(fact.span)}) but not as {req.qualifier}",
                       (fact.span,), missing=f"whether {label} is {req.qualifier}", key=f"lab:{req.lab}",
                       question=f"Was the {_lab_title(req.lab)} {req.qualifier}?")
    same = pol == req.qualifier or (req.qualifier in ("high", "elevated") and pol in ("high", "elevated"))
    return Finding(Truth.YES if same else Truth.NO, f"{label} is {pol} ({_quote(fact.span)})", (fact.span,))


LAB_TITLES = {"upcr": "urine protein-to-creatinine ratio (UPCR)", "egfr": "eGFR", "anc": "absolute neutrophil count",
              "alt": "ALT", "ast": "AST", "sledai_2k": "SLEDAI-2K score", "ecog": "ECOG performance status",
              "hba1c": "HbA1c", "qtc": "QTc interval", "lvef": "left ventricular ejection fraction",
              "anti_dsdna": "anti-dsDNA antibody result", "ana": "ANA titre", "bmi": "BMI",
              "wbc": "white blood cell count", "sbp": "systolic blood pressure", "dbp": "diastolic blood pressure",
              "anti_pla2r": "anti-PLA2R antibody result", "anti_thsd7a": "anti-THSD7A antibody result",
              "anti_ro": "anti-Ro/SSA antibody result", "anti_la": "anti-La/SSB antibody result",
              "anti_rnp": "anti-RNP antibody result", "anti_gbm": "anti-GBM antibody result"}


def _lab_title(lab: str | None) -> str:
    return LAB_TITLES.get(lab or "", (lab or "value").replace("_", " "))


def _threshold_text(req: Requirement) -> str:
    label = (req.lab or "value").replace("_", " ")
    if req.value is None:
        return f"{label} {req.qualifier or 'reported'}"
    unit = f" {req.unit}" if req.unit else ""
    text = f"{label} {req.comparator.value if req.comparator else '='} {req.value:g}{unit}"
    if req.value_high is not None:
        text += f" and <= {req.value_high:g}{unit}"
    return text


def _therapy_matches(fact: TherapyFact, req: Requirement) -> bool:
    return fact.name in req.concepts or bool(set(fact.classes) & set(req.classes))


def _dose_finding(fact: TherapyFact, req: Requirement, names: str) -> Finding | None:
    """A dose bound on a therapy ("prednisone > 40 mg/day"): compared with the patient's daily dose; None when
    the requirement has no dose. A dose the description does not give is unknown and asked."""
    if req.value is None or req.comparator is None:
        return None
    equivalent = req.qualifier == "prednisone_equivalent"
    dose = fact.prednisone_eq_mg_day if equivalent else fact.dose_mg_day
    if dose is None and not equivalent and fact.name == "prednisone":
        dose = fact.prednisone_eq_mg_day
    bound = f"{req.comparator.value} {req.value:g}{' ' + req.unit if req.unit else ''}"
    if req.unit and "/kg" in req.unit:
        return Finding(Truth.UNKNOWN, f"{_quote(fact.span)}: the dose per kg cannot be compared (criterion {bound})",
                       (fact.span,), missing="the patient's weight and daily dose", key=f"dose:{fact.name}",
                       question=f"What is the current daily dose of {fact.name} and the patient's weight?")
    if dose is None:
        return Finding(Truth.UNKNOWN, f"{_quote(fact.span)} is reported without a daily dose (criterion {bound})",
                       (fact.span,), missing=f"the current daily dose of {fact.name}", key=f"dose:{fact.name}",
                       question=f"What is the current daily dose of {fact.name}?")
    ok = req.comparator.holds(dose, req.value) and (req.value_high is None or dose <= req.value_high)
    shown = f"{dose:g} mg/day{' prednisone-equivalent' if equivalent else ''}"
    return Finding(Truth.YES if ok else Truth.NO,
                   f"{names} at {shown} ({_quote(fact.span)}) {'meets' if ok else 'does not meet'} {bound}",
                   (fact.span,))


STABLE_RE = re.compile(r"\b(?:stable|unchanged|same dose|not changed|steady)\b", re.IGNORECASE)


def check_therapy(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    names = _names(req)
    facts = [f for f in profile.therapies if _therapy_matches(f, req)]
    taken = [f for f in facts if not (f.context.negated or f.context.hypothetical or f.context.family)
             and f.status != "planned"]
    if taken and (req.value is not None or "stable" in req.modifiers):
        return _dose_or_stable(profile, taken, req, names)
    for fact in taken:
        when = _within(fact.days_ago, req)
        if when is Truth.YES or (when is Truth.UNKNOWN and req.min_days_ago is None and req.within_days
                                 and fact.status == "current"):
            return Finding(Truth.YES, f"{names}{_window_text(req)}: {_quote(fact.span)}", (fact.span,))
    if taken:
        fact = taken[0]
        when = _within(fact.days_ago, req)
        if when is Truth.NO:
            return Finding(Truth.NO, f"{_quote(fact.span)} is outside{_window_text(req)}", (fact.span,))
        return Finding(Truth.UNKNOWN, f"{_quote(fact.span)} is not dated (criterion:{_window_text(req)})",
                       (fact.span,), missing=f"when {fact.name} was last given", key=f"therapy_date:{fact.name}",
                       question=f"When was {fact.name} last given?")
    negated = [f for f in facts if f.context.negated]
    if negated:
        return Finding(Truth.NO, f"{names} is negated ({_quote(negated[0].span)})", (negated[0].span,))
    if ctx.closed_world:
        return Finding(Truth.NO, f"no mention of {names}", assumed=True)
    return Finding(Truth.UNKNOWN, f"no mention of {names}{_window_text(req)}",
                   missing=f"whether the patient has received {names}{_window_text(req)}",
                   key=f"therapy:{_key(req)}", question=f"Has the patient received {names}{_window_text(req)}?")


def _dose_or_stable(profile: PatientProfile, taken: Sequence[TherapyFact], req: Requirement, names: str) -> Finding:
    """A therapy requirement about its dose ("<= 10 mg/day") or its stability ("stable for 4 weeks")."""
    fact = taken[-1]  # the latest mention is the current regimen
    finding = _dose_finding(fact, req, names) or Finding(Truth.YES, f"{names}: {_quote(fact.span)}", (fact.span,))
    if finding.truth is not Truth.YES or "stable" not in req.modifiers:
        return finding
    sentence = _sentence_around(profile.text, fact.span)
    if not STABLE_RE.search(sentence):
        return Finding(Truth.UNKNOWN, f"{finding.clause}, but a stable dose is not stated", (fact.span,),
                       missing=f"whether the dose of {fact.name} has been stable{_window_text(req)}",
                       key=f"stable:{fact.name}", question=f"Has the dose of {fact.name} been stable{_window_text(req)}?")
    return Finding(Truth.YES, f"{finding.clause}; stated stable", (fact.span,))


def _sentence_around(text: str, span: Span) -> str:
    start = max(text.rfind(".", 0, span.start), text.rfind("\n", 0, span.start)) + 1
    ends = [i for i in (text.find(".", span.end), text.find("\n", span.end)) if i >= 0]
    return text[start:min(ends) if ends else len(text)]


REACTION_RE = re.compile(r"\b(?:hypersensitiv\w*|allerg\w*|intoleran\w*|contraindicat\w*|anaphyla\w*|"
                         r"adverse (?:reaction|event)s?|reactions? to|sensitivity to|intolerable)\b", re.IGNORECASE)


def _drug_reaction(profile: PatientProfile, req: Requirement, ctx: CheckContext, rule_out: bool) -> Finding:
    """A criterion about a reaction to a drug ("hypersensitivity to X") needs the reaction, not the exposure: taking
    X does not show an allergy to it; an allergy the description does not mention is read as absent."""
    names = _names(req)
    text = profile.text.lower()
    taken = [f for f in profile.therapies if _therapy_matches(f, req) and not f.context.negated]
    for fact in taken:
        window = text[max(0, fact.span.start - 60):fact.span.end + 60]
        if REACTION_RE.search(window) or fact.response == "intolerant":
            return Finding(Truth.YES, f"a reaction to {names} is described ({_quote(fact.span)})", (fact.span,))
    if rule_out:
        return Finding(Truth.NO, f"no reaction to {names} is mentioned", tuple(f.span for f in taken[:1]),
                       assumed=True, basis="a referral would mention a drug allergy or intolerance")
    return Finding(Truth.UNKNOWN, f"no reaction to {names} is mentioned", missing=f"whether the patient reacted to "
                   f"{names}", key=f"reaction:{_key(req)}", question=f"Has the patient had a reaction to {names}?")


def check_therapy_count(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    need = req.min_count or 1
    names = _names(req)
    facts = [f for f in profile.therapies if _therapy_matches(f, req)
             and not (f.context.negated or f.context.hypothetical or f.context.family) and f.status != "planned"]
    distinct = {f.name for f in facts if f.name not in req.classes}
    explicit = [c for c in profile.therapy_counts if c.drug_class in req.classes]
    count = max([len(distinct)] + [c.count for c in explicit])
    ev = tuple(f.span for f in facts) + tuple(c.span for c in explicit)
    if count >= need:
        return Finding(Truth.YES, f"{count} prior {names} reported (needs {need})", ev)
    if explicit:
        return Finding(Truth.NO, f"{count} prior {names} reported (needs {need})", ev)
    denied = [f for f in profile.therapies if f.context.negated and f.name in req.classes]
    if denied:  # "never had any biologic": the class as a whole is denied, so what is listed is all there is
        return Finding(Truth.NO, f"{count} prior {names}; {_quote(denied[0].span)} denies any other (needs {need})",
                       ev + (denied[0].span,))
    return Finding(Truth.UNKNOWN, f"{count} prior {names} found in the description (needs {need})", ev,
                   missing=f"how many {names} the patient has received", key=f"therapy_count:{_key(req)}",
                   question=f"Which {names.replace(' or ', '/')} treatments has the patient received so far?")


def check_consent(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    if profile.consent_span is not None:
        return Finding(Truth.YES, f"consent/compliance is stated ({_quote(profile.consent_span)})",
                       (profile.consent_span,))
    return Finding(Truth.UNKNOWN, "willingness to consent is not stated",
                   missing="whether the patient is willing and able to consent", key="consent",
                   question="Is the patient willing and able to give informed consent?")


def check_healthy(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    affirmed = [f for f in profile.conditions if _condition_status(f) is Truth.YES and f.category != "state"]
    if affirmed:
        return Finding(Truth.NO, f"the patient has {affirmed[0].concept} ({_quote(affirmed[0].span)})",
                       (affirmed[0].span,))
    if profile.healthy:
        return Finding(Truth.YES, "the patient is described as healthy")
    return Finding(Truth.UNKNOWN, "whether the patient is healthy is not stated",
                   missing="whether the patient is a healthy volunteer", key="healthy",
                   question="Does the patient have any medical conditions?")


CHECKS: dict[str, Callable[[PatientProfile, Requirement, CheckContext], Finding]] = {
    "age": check_age,
    "sex": check_sex,
    "condition": check_condition,
    "lab": check_lab,
    "therapy": check_therapy,
    "therapy_count": check_therapy_count,
    "consent": check_consent,
    "healthy_volunteer": check_healthy,
}


def _evolve(ctx: CheckContext, **changes: Any) -> CheckContext:
    """``dataclasses.replace`` for the context of every requirement check (the hot path of a match): the same
    copy with the given fields changed, without replace()'s per-call introspection (~3x faster)."""
    new = object.__new__(CheckContext)
    for name in CheckContext.__slots__:  # type: ignore[attr-defined]
        object.__setattr__(new, name, changes[name] if name in changes else getattr(ctx, name))
    return new


def check_requirement(profile: PatientProfile, req: Requirement, ctx: CheckContext) -> Finding:
    """One requirement. Closed-world reading where the criterion looks for a condition to rule the
    patient out (an exclusion "X", an inclusion "no X"); in an exclusion a washout ("at least 6
    months before") means treatment inside that window excludes."""
    if (ctx.kind is CriterionKind.EXCLUSION and not req.present and ctx.absence_is_phrasing
            and req.type in ("condition", "therapy", "lab")):
        req = replace(req, present=True)  # "Exclusion: no evidence of X" is read as "X excludes"
    looks_for_exclusion = (ctx.kind is CriterionKind.EXCLUSION) == req.present and not ctx.guard
    policy = ctx.policy or load_policy()
    reading = policy.reading(req, ctx.is_a, ctx.category_of) if looks_for_exclusion or ctx.guard else None
    closed_world = bool(reading and reading.assume_absent)
    if ctx.closed_world is not closed_world or ctx.rule_out is not looks_for_exclusion:
        ctx = _evolve(ctx, closed_world=closed_world, rule_out=looks_for_exclusion)
    if (ctx.kind is CriterionKind.EXCLUSION and req.type == "therapy" and req.min_days_ago is not None
            and req.within_days is None):
        req = replace(req, within_days=req.min_days_ago, min_days_ago=None)
    if req.type == "therapy" and ctx.reaction_to_drug:
        return _drug_reaction(profile, req, ctx, looks_for_exclusion)
    finding = CHECKS[req.type](profile, req, ctx)
    if reading is not None and finding.assumed:
        finding = replace(finding, basis=reading.why)
    elif reading is not None and finding.truth is Truth.UNKNOWN and not finding.evidence:
        finding = replace(finding, clause=f"{finding.clause} (not assumed absent: {reading.why})")
    if req.present:
        return finding
    # "no prior CAR-T": satisfied when the patient does NOT have it
    return replace(finding, truth=finding.truth.invert(), clause="absence required: " + finding.clause)


# --------------------------------------------------------------------------- combining


# Labs that measure the same quantity in different ways; when a criterion offers them as alternatives ("UPCR
# >= 1.5 g/g or proteinuria >= 1.5 g/day") the one that was measured decides, a missing other one does not.
EQUIVALENT_MEASURES = (frozenset({"upcr", "proteinuria", "uacr", "urine_protein"}),
                       frozenset({"egfr", "creatinine_clearance"}))


def _measured_alternative(requirements: Sequence[Requirement], findings: list[Finding]) -> list[Finding]:
    out = list(findings)
    for group in EQUIVALENT_MEASURES:
        idx = [i for i, r in enumerate(requirements) if r.type == "lab" and r.lab in group]
        measured = [i for i in idx if findings[i].truth is not Truth.UNKNOWN and not findings[i].assumed]
        if measured:
            out = [f for i, f in enumerate(out) if i not in idx or i in measured or f.truth is not Truth.UNKNOWN]
    return out


def _check_guard(profile: PatientProfile, guard: Requirement, ctx: CheckContext) -> Finding:
    """Whom a conditional criterion is about: silence reads as the closed-world policy says ("For participants on
    warfarin" does not apply to a patient whose description lists no warfarin)."""
    return check_requirement(profile, guard, replace(ctx, guard=True))


def _and(truths: Sequence[Truth]) -> Truth:
    if any(t is Truth.NO for t in truths):
        return Truth.NO
    if all(t is Truth.YES for t in truths):
        return Truth.YES
    return Truth.UNKNOWN


def _or(truths: Sequence[Truth]) -> Truth:
    if any(t is Truth.YES for t in truths):
        return Truth.YES
    if truths and all(t is Truth.NO for t in truths):
        return Truth.NO
    return Truth.UNKNOWN


def _quote(span: Span | None) -> str:
    return f'"{span.text}" at {span.start}-{span.end}' if span else ""


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def combine(findings: Sequence[Finding], logic: str) -> tuple[Truth, list[Finding]]:
    """Truth of the criterion and the findings that decided it."""
    truth = _or([f.truth for f in findings]) if logic == "any" else _and([f.truth for f in findings])
    deciding = [f for f in findings if f.truth is truth] or list(findings)
    return truth, deciding


VERDICT_OF = {Truth.YES: Verdict.MET, Truth.NO: Verdict.NOT_MET, Truth.UNKNOWN: Verdict.UNKNOWN}


@lru_cache(maxsize=65_536)
def _phrasing(text: str) -> tuple[bool, bool, int | None]:
    """What a criterion's wording says, whoever the patient (read once per text): about a reaction to a drug,
    dated by an event (a biopsy), and where a negative lead-in ("No evidence of") ends."""
    negative = NEGATIVE_PHRASING_RE.match(text)
    return bool(REACTION_RE.search(text)), bool(EVENT_RE.search(text)), negative.end() if negative else None


def check_criterion(profile: PatientProfile, criterion: CriterionText, criterion_id: str,
                    ctx: CheckContext) -> CriterionVerdict:
    """Verdict of one criterion (for an exclusion MET means the exclusion applies)."""
    kind_word = "Inclusion" if criterion.kind is CriterionKind.INCLUSION else "Exclusion"
    quoted = f'{kind_word} "{_short(criterion.text)}"'
    parsed = criterion.parsed
    base = dict(criterion_id=criterion_id, kind=criterion.kind, text=criterion.text, cohort=criterion.cohort)
    if parsed is not None and parsed.guards and (not parsed.parsed or not parsed.requirements):
        # "For participants taking X: <unstructured>": the guard still decides whether it applies at all
        guard_truth, guard_findings = combine([_check_guard(profile, g, ctx) for g in parsed.guards], "all")
        if guard_truth is Truth.NO:
            return CriterionVerdict(**base, verdict=Verdict.NOT_APPLICABLE,
                                    reason=f"{quoted}: does not apply ({guard_findings[0].clause}).",
                                    evidence=_evidence(guard_findings))
    if parsed is None or not parsed.parsed or not parsed.requirements:
        return _unstructured_verdict(profile, criterion, quoted, base)
    if parsed.guards:
        guard_truth, guard_findings = combine([_check_guard(profile, g, ctx) for g in parsed.guards], "all")
        implied_only = all(g.qualifier == "implied" for g in parsed.guards)
        # only a required female-only state ("Pregnant women") fails a man; "Not pregnant or nursing" or
        # "Fertile patients must use contraception" merely do not concern him
        requires_presence = any(r.present and set(r.concepts) & FEMALE_ONLY_STATES for r in parsed.requirements
                                if r.type == "condition")
        if (guard_truth is Truth.NO and implied_only and criterion.kind is CriterionKind.INCLUSION
                and requires_presence):
            return CriterionVerdict(**base, verdict=Verdict.NOT_MET,  # e.g. "pregnant women" and a man
                                    reason=f"{quoted}: not met — {guard_findings[0].clause}.",
                                    evidence=_evidence(guard_findings))
        if guard_truth is Truth.NO:
            return CriterionVerdict(**base, verdict=Verdict.NOT_APPLICABLE,
                                    reason=f"{quoted}: does not apply ({guard_findings[0].clause}).",
                                    evidence=_evidence(guard_findings))
    reaction, event, negative_end = _phrasing(criterion.text)
    if reaction:
        ctx = replace(ctx, reaction_to_drug=True)
    if event:
        ctx = replace(ctx, event_dated=True, event_days_ago=_biopsy_date(profile, criterion.text))
    absent = [r for r in parsed.requirements if not r.present]
    if criterion.kind is CriterionKind.EXCLUSION and negative_end is not None and absent and all(
            LEAD_IN_RE.match(criterion.text[negative_end:r.span.start]) for r in absent):
        # "No evidence of X" listed as an exclusion means X excludes; "No complications of X" does not
        ctx = replace(ctx, absence_is_phrasing=True)
    requirements = parsed.requirements
    if criterion.kind is CriterionKind.EXCLUSION and all(r.type == "sex" for r in requirements):
        # "Women planning to deliver elsewhere": the sex says whom it is about; the rest is unstructured
        pop = [check_requirement(profile, r, ctx) for r in requirements]
        if _and([f.truth for f in pop]) is Truth.NO:
            return CriterionVerdict(**base, verdict=Verdict.NOT_APPLICABLE, evidence=_evidence(pop),
                                    reason=f"{quoted}: does not apply to this patient ({pop[0].clause}).")
        return _unstructured_verdict(profile, criterion, quoted, base, ignore=[r.span for r in requirements])
    if any(r.type == "sex" for r in requirements) and BOTH_SEXES_RE.search(criterion.text):
        requirements = tuple(r for r in requirements if r.type != "sex")  # "men or women": no restriction
        if not requirements:
            return _unstructured_verdict(profile, criterion, quoted, base)
    if criterion.kind is CriterionKind.INCLUSION and any(r.type == "sex" for r in requirements) and any(
            r.type not in ("age", "sex") for r in requirements):
        # sex words inside a clinical inclusion ("Hb < 11 g/dL in men", "Women must use contraception") say whom
        # the requirement is about; the registry's sex field, not this sentence, decides who may join
        sex = [check_requirement(profile, r, ctx) for r in requirements if r.type == "sex"]
        if _and([f.truth for f in sex]) is Truth.NO:
            return CriterionVerdict(**base, verdict=Verdict.NOT_APPLICABLE, evidence=_evidence(sex),
                                    reason=f"{quoted}: does not apply to this patient ({sex[0].clause}).")
        requirements = tuple(r for r in requirements if r.type != "sex")
    if criterion.kind is CriterionKind.EXCLUSION:
        population = [r for r in requirements if r.type in ("age", "sex")]
        clinical = [r for r in requirements if r.type not in ("age", "sex")]
        if population and clinical:  # "Women over 50 with X": age/sex say whom the exclusion is about
            pop = [check_requirement(profile, r, ctx) for r in population]
            if _and([f.truth for f in pop]) is Truth.NO:
                return CriterionVerdict(**base, verdict=Verdict.NOT_APPLICABLE, evidence=_evidence(pop),
                                        reason=f"{quoted}: does not apply to this patient "
                                               f"({'; '.join(f.clause for f in pop if f.truth is Truth.NO)}).")
            requirements = tuple(clinical)
    findings = [check_requirement(profile, r, ctx) for r in requirements]
    logic = parsed.logic
    if logic == "list":  # a list of items: any one excludes; every one is required for inclusion
        logic = "any" if criterion.kind is CriterionKind.EXCLUSION else "all"
    if logic == "any":
        findings = _measured_alternative(requirements, findings)
    truth, deciding = combine(findings, logic)
    policy = ctx.policy or load_policy()
    if (truth is Truth.YES and criterion.kind is CriterionKind.INCLUSION and all(f.assumed for f in deciding)
            and (not STATED_ABSENCE_RE.match(criterion.text) or policy.mentions_test(criterion.text))):
        # silence establishes an inclusion only when the whole criterion is an absence ("No prior X",
        # "Not pregnant"), not when an absence is buried in a longer requirement, and never a test result
        why = policy.test_why if policy.mentions_test(criterion.text) else "the description does not establish it"
        truth = Truth.UNKNOWN
        findings = [replace(f, truth=Truth.UNKNOWN, assumed=False, clause=f"{f.clause} ({why})",
                            missing=f.missing or f"confirmation of: {f.clause}") for f in findings]
        deciding = findings
    residue = uncovered_words(criterion.text, (*parsed.requirements, *parsed.guards))
    if truth is Truth.YES and len(residue) >= UNCOVERED_LIMIT:
        # a verdict stands only on what was read: a criterion with content the parser did not structure
        # is not settled by the part it did ("Women 18-45 living in the study area" is not met by age and sex)
        truth = Truth.UNKNOWN
        rest = ", ".join(residue[:6])
        findings = [replace(f, truth=Truth.UNKNOWN, clause=f"{f.clause}; the rest of the criterion ({rest}) was "
                            f"not checked", missing=f"a clinician's check of: {rest}", key=None, question=None)
                    for f in findings]
        deciding = findings
    verdict = VERDICT_OF[truth]
    clauses = "; ".join(dict.fromkeys(f.clause for f in deciding))
    reason = f"{quoted}: {_verdict_phrase(criterion.kind, verdict)} — {clauses}."
    missing = None
    key = question = None
    assumed = truth is not Truth.UNKNOWN and any(f.assumed for f in deciding)
    if assumed:  # a closed-world decision is still worth confirming
        asked = next((f for f in deciding if f.assumed and f.key), None)
        key, question = (asked.key, asked.question) if asked else (None, None)
    if truth is Truth.UNKNOWN:
        unknown = [f for f in findings if f.truth is Truth.UNKNOWN]
        missing = "; ".join(dict.fromkeys(f.missing for f in unknown if f.missing))
        reason += f" Missing: {missing}." if missing else ""
        asked = next((f for f in unknown if f.key), None)
        key, question = (asked.key, asked.question) if asked else (None, None)
        if logic == "any":
            key, question = _one_question(unknown) or (key, question)
    elif assumed:
        basis = next((f.basis for f in deciding if f.assumed and f.basis), "the description does not mention it")
        reason += f" (Assumed absent: {basis}.)"
    return CriterionVerdict(**base, verdict=verdict, reason=reason, evidence=_evidence(deciding),
                            missing=missing or None, question_key=key, question=question, assumed=assumed)


def _one_question(unknown: Sequence[Finding]) -> tuple[str, str] | None:
    """Alternative conditions ("arthritis, myositis, rash or ...") are asked in one question, not one at a time."""
    names = list(dict.fromkeys(c for f in unknown if f.key and f.key.startswith("condition:")
                               for c in f.key.partition(":")[2].split("|")))
    if len(names) < 2:
        return None
    return f"condition:{'|'.join(names)}", f"Does the patient have any of: {', '.join(names)}?"


FEMALE_ONLY_STATES = frozenset({"pregnancy", "breastfeeding", "lactation"})
BOTH_SEXES_RE = re.compile(r"\b(?:men|males?)\b[^.;]{0,40}\b(?:women|females?)\b|\b(?:women|females?)\b[^.;]"
                           r"{0,40}\b(?:men|males?)\b|\bboth sexes\b|\beither sex\b", re.IGNORECASE)
NEGATIVE_PHRASING_RE = re.compile(r"^\W*(?:no|not|must not|should not|may not|never|negative|free of)\b",
                                  re.IGNORECASE)
# Words between "No" and X that keep "No X" an exclusion of X: the old NCI layout lists exclusions as "No patients
# known to be HIV positive", "No patients with history of X" (the subject and copula add nothing).
LEAD_IN_RE = re.compile(r"^\s*(?:(?:evidence|history|signs?|symptoms?|diagnosis) of\s+|(?:known|active|current|"
                        r"acute|prior|significant|clinically|severe|have|has|had|received|any|patients?|subjects?|"
                        r"participants?|individuals?|women|men|with|who|are|is|be|been|to)\s+)*$", re.IGNORECASE)
STATED_ABSENCE_RE = re.compile(r"^\W*(?:(?:patients?|subjects?|participants?|women|men|they|are|is|have|has|"
                               r"had|must|should|will|be|been|currently)\s+)*(?:no|not|never|non|without|free of|"
                               r"negative|absence of)\b", re.IGNORECASE)
GENERIC_WORDS = frozenset({
    "patient", "patients", "subject", "subjects", "participant", "participants", "history", "known", "study",
    "prior", "current", "currently", "disease", "diseases", "condition", "conditions", "treatment", "therapy",
    "including", "within", "month", "months", "year", "years", "week", "weeks", "day", "days", "previous",
    "severe", "chronic", "acute", "clinically", "significant", "other", "medical", "require", "required", "requiring",
    "unable", "able", "willing", "must", "have", "having", "with", "without", "after", "before", "during", "period",
    "investigator", "opinion", "protocol", "trial", "screening", "enrollment", "entry", "time", "test", "tests",
    "evidence", "diagnosis", "diagnosed", "use", "used", "using", "receive", "received", "receiving", "taking",
    "less", "more", "than", "greater", "least", "normal", "level", "levels", "value", "values", "per", "dose",
    "doses", "drug", "drugs", "medication", "medications", "agent", "agents", "following", "defined", "based",
    "which", "that", "this", "these", "those", "their", "there", "where", "would", "could", "should", "might",
    "will", "been", "being", "also", "such", "then", "from", "into", "over", "under", "only",
})
_WORD_RE = re.compile(r"[a-z][a-z-]{3,}")
FILLER_WORDS = frozenset({
    "male", "female", "males", "females", "women", "woman", "aged", "adult", "adults", "children", "child",
    "years", "year-old", "old", "both", "either", "neither", "sexes", "gender", "inclusive", "ages", "age",
    "documented", "confirmed", "diagnosis", "history", "must", "meet", "meets", "criteria", "following", "least",
    "greater", "equal", "less", "above", "below", "more", "positive", "negative", "present", "presence",
    "absence", "absent", "prior", "previous", "previously", "current", "ongoing", "active", "any", "all",
    "other", "known", "suspected", "participants", "volunteers", "healthy", "stable", "treated",
    "mg/dl", "g/dl", "upper", "limit", "uln", "times",
    # how a diagnosis was established is part of the diagnosis (its date is checked by the time window)
    "biopsy", "biopsy-proven", "proven", "histologically", "evidenced", "established", "using",
})


@lru_cache(maxsize=65_536)
def _content_stems(text: str) -> frozenset[str]:
    return frozenset(w[:5] for w in _WORD_RE.findall(text.lower()) if w not in GENERIC_WORDS)


UNCOVERED_LIMIT = 5  # content words outside every parsed requirement that make a positive verdict unsure


def uncovered_words(text: str, requirements: Sequence[Requirement]) -> list[str]:
    """Content words of a criterion that no parsed requirement covers (in text order)."""
    return list(_uncovered(text, tuple(sorted((r.span.start, r.span.end) for r in requirements))))


@lru_cache(maxsize=65_536)
def _uncovered(text: str, covered: tuple[tuple[int, int], ...]) -> tuple[str, ...]:
    """:func:`uncovered_words`, once per criterion (it depends on the criterion only)."""
    out: list[str] = []
    for m in _WORD_RE.finditer(text.lower()):
        word = m.group(0)
        if word in GENERIC_WORDS or word in FILLER_WORDS or any(a <= m.start() < b for a, b in covered):
            continue
        if word not in out:
            out.append(word)
    return tuple(out)


def _unstructured_verdict(profile: PatientProfile, criterion: CriterionText, quoted: str,
                          base: dict, ignore: Sequence[Span] = ()) -> CriterionVerdict:
    """Lexical fallback for a criterion the parser could not structure.

    An exclusion whose content words appear nowhere in the description is read
    as not applying (closed world, said so in the reason); anything else stays
    unknown for a clinician to review. Never "met".
    """
    text = criterion.text
    for span in ignore:
        text = text.replace(span.text, " ")
    shared = _content_stems(text) & _content_stems(profile.text) - {"woman", "women", "femal", "male", "girls"}
    if criterion.kind is CriterionKind.EXCLUSION and profile.text and not shared:
        return CriterionVerdict(**base, verdict=Verdict.NOT_MET, assumed=True,
                                reason=f"{quoted}: exclusion does not apply — nothing in the description relates to "
                                       f"it (not structured; compared by wording, assumed absent).")
    why = f"the description mentions related terms ({', '.join(sorted(shared)[:4])}…)" if shared else \
        "it could not be checked automatically"
    return CriterionVerdict(**base, verdict=Verdict.UNKNOWN, reason=f"{quoted}: unknown — {why}; a clinician "
                            f"must review it.", missing="a clinician's review of this criterion")


def _evidence(findings: Iterable[Finding]) -> tuple[Span, ...]:
    seen: dict[tuple[int, int], Span] = {}
    for f in findings:
        for span in f.evidence:
            seen.setdefault((span.start, span.end), span)
    return tuple(sorted(seen.values(), key=lambda s: s.start))


def _verdict_phrase(kind: CriterionKind, verdict: Verdict) -> str:
    if kind is CriterionKind.INCLUSION:
        return {Verdict.MET: "met", Verdict.NOT_MET: "not met", Verdict.UNKNOWN: "unknown",
                Verdict.NOT_APPLICABLE: "not applicable"}[verdict]
    return {Verdict.MET: "exclusion applies", Verdict.NOT_MET: "exclusion does not apply",
            Verdict.UNKNOWN: "unknown", Verdict.NOT_APPLICABLE: "not applicable"}[verdict]
