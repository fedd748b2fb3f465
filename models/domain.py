"""Domain values shared by every layer: frozen dataclasses and enums.

Nothing here touches the database, Flask or spaCy. ORM rows are converted to
these values inside ``models/repository.py`` and never leave it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class CriterionKind(str, Enum):
    INCLUSION = "inclusion"
    EXCLUSION = "exclusion"


class Verdict(str, Enum):
    """Per-criterion verdict. For an exclusion criterion MET means the exclusion applies."""

    MET = "met"
    NOT_MET = "not_met"
    UNKNOWN = "unknown"
    NOT_APPLICABLE = "not_applicable"


class TrialLabel(str, Enum):
    ELIGIBLE = "eligible"
    POSSIBLY_ELIGIBLE = "possibly_eligible"
    INELIGIBLE = "ineligible"


class Comparator(str, Enum):
    EQ = "="
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="

    def holds(self, value: float, threshold: float) -> bool:
        return {
            Comparator.EQ: value == threshold,
            Comparator.GT: value > threshold,
            Comparator.GE: value >= threshold,
            Comparator.LT: value < threshold,
            Comparator.LE: value <= threshold,
        }[self]


# --------------------------------------------------------------------------- trials


@dataclass(frozen=True, slots=True)
class CriterionText:
    """One eligibility criterion as split from the ``eligibilityCriteria`` string.

    ``position`` is 0-based within its kind; ``parent`` is the position of the
    item this one is nested under (same kind), ``cohort`` the nearest cohort or
    disease sub-heading ("Lupus Nephritis Cohort"), ``heading`` the section
    heading it appeared under ("DISEASE CHARACTERISTICS").
    """

    kind: CriterionKind
    position: int
    text: str
    parent: int | None = None
    cohort: str | None = None
    heading: str | None = None
    depth: int = 0
    parsed: ParsedCriterion | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Intervention:
    name: str
    type: str | None = None
    other_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Location:
    facility: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    zip: str | None = None
    status: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class TrialRecord:
    nct_id: str
    title: str
    official_title: str | None = None
    brief_summary: str | None = None
    detailed_description: str | None = None
    conditions: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    interventions: tuple[Intervention, ...] = ()
    phases: tuple[str, ...] = ()
    study_type: str | None = None
    overall_status: str | None = None
    minimum_age_years: float | None = None
    maximum_age_years: float | None = None
    minimum_age_raw: str | None = None
    maximum_age_raw: str | None = None
    sex: str | None = None  # ALL | FEMALE | MALE
    healthy_volunteers: bool | None = None
    enrollment: int | None = None
    last_update: dt.date | None = None
    locations: tuple[Location, ...] = ()
    eligibility_text: str = ""
    criteria: tuple[CriterionText, ...] = ()
    concepts: tuple[str, ...] = ()  # normalized conditions under study (title + conditions)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def criterion_id(self, criterion: CriterionText) -> str:
        tag = "inc" if criterion.kind is CriterionKind.INCLUSION else "exc"
        return f"{self.nct_id}:{tag}:{criterion.position}"


# --------------------------------------------------------------------------- extracted facts


@dataclass(frozen=True, slots=True)
class Span:
    """Character span of evidence in the text it was read from (end exclusive).

    ``source`` is the record the fact was coded in when it came from structured data (a FHIR resource
    reference such as "Condition/abc"); None for facts read from free text.
    """

    start: int
    end: int
    text: str
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end, "text": self.text}
        if self.source is not None:
            out["source"] = self.source
        return out


@dataclass(frozen=True, slots=True)
class Context:
    """ConText-style assertion flags of a mention."""

    negated: bool = False
    historical: bool = False
    family: bool = False
    hypothetical: bool = False
    uncertain: bool = False

    @property
    def affirmed_current(self) -> bool:
        """True when the mention says the patient has it (possibly in the past)."""
        return not (self.negated or self.family or self.hypothetical or self.uncertain)


@dataclass(frozen=True, slots=True)
class ConditionFact:
    """A condition, finding, procedure or state mentioned in the text.

    ``concept`` is the lexicon's preferred name (lower case), ``category`` one of
    condition | cancer | infection | procedure | state | finding.
    ``qualifier`` keeps details such as "class IV" or "NYHA III".
    """

    concept: str
    span: Span
    category: str = "condition"
    code: str | None = None
    qualifier: str | None = None
    context: Context = Context()
    days_ago: float | None = None


@dataclass(frozen=True, slots=True)
class LabFact:
    """A measurement or score: ``name`` is the canonical lab key (e.g. ``upcr``)."""

    name: str
    value: float | None
    span: Span
    unit: str | None = None
    comparator: Comparator = Comparator.EQ
    value_high: float | None = None  # for ranges "1.5-7"
    normalized_value: float | None = None
    normalized_unit: str | None = None
    polarity: str | None = None  # positive | negative | low | high | elevated (qualitative results)
    context: Context = Context()
    days_ago: float | None = None


@dataclass(frozen=True, slots=True)
class TherapyFact:
    """A drug or therapy: ``name`` is the generic/preferred name, ``classes`` its drug classes."""

    name: str
    span: Span
    classes: tuple[str, ...] = ()
    response: str | None = None  # failed | refractory | intolerant | responded
    status: str | None = None  # current | prior | planned
    dose_mg_day: float | None = None
    prednisone_eq_mg_day: float | None = None
    context: Context = Context()
    days_ago: float | None = None


@dataclass(frozen=True, slots=True)
class TherapyCount:
    """An explicit count such as "failed three immunosuppressants"."""

    drug_class: str
    count: int
    span: Span
    response: str | None = None


@dataclass(frozen=True, slots=True)
class PatientProfile:
    text: str = ""
    age_years: float | None = None
    age_low: float | None = None  # "in her 40s" -> 40..49
    age_high: float | None = None
    age_span: Span | None = None
    sex: str | None = None  # female | male
    sex_span: Span | None = None
    conditions: tuple[ConditionFact, ...] = ()
    labs: tuple[LabFact, ...] = ()
    therapies: tuple[TherapyFact, ...] = ()
    therapy_counts: tuple[TherapyCount, ...] = ()
    consent_span: Span | None = None  # "will provide informed consent"
    healthy: bool | None = None  # stated healthy volunteer

    @property
    def has_age(self) -> bool:
        return self.age_years is not None or self.age_low is not None


# --------------------------------------------------------------------------- criterion structure


@dataclass(frozen=True, slots=True)
class Requirement:
    """One structured requirement read from a criterion.

    ``type`` is one of: age, sex, condition, lab, therapy, therapy_count,
    consent, healthy_volunteer. For ``age``, ``value``/``value_high`` are the
    bounds in years (``comparator`` GT makes the low bound exclusive,
    ``qualifier`` "high_exclusive" the high one). ``present`` False means the criterion text states the
    absence ("no prior CAR-T", "not pregnant"). Fields not used by a type stay
    None. ``concepts``/``classes`` are alternatives (any one satisfies).
    For ``therapy``, ``value``/``value_high``/``comparator``/``unit`` are a dose bound in mg (``unit``
    "mg/day", "mg" or "mg/kg/day"), ``qualifier`` "prednisone_equivalent" compares prednisone-equivalent
    doses, and ``modifiers`` ("stable",) asks for an unchanged dose (for ``min_days_ago`` days when given).
    """

    type: str
    span: Span
    present: bool = True
    concepts: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    lab: str | None = None
    comparator: Comparator | None = None
    value: float | None = None
    value_high: float | None = None
    unit: str | None = None
    min_count: int | None = None
    within_days: float | None = None
    qualifier: str | None = None
    sex: str | None = None
    modifiers: tuple[str, ...] = ()  # "active", "uncontrolled", "requiring ..." on a condition
    min_days_ago: float | None = None  # "at least 6 months before screening"


@dataclass(frozen=True, slots=True)
class ParsedCriterion:
    """Structure of one criterion: ``logic`` "all" or "any" over ``requirements``.

    ``guards`` make a criterion conditional ("If female, ...", "For lupus
    nephritis: ..."): when a guard does not hold the criterion is not applicable.

    ``parsed`` False means nothing could be structured; the text is kept and
    the matcher treats it as unknown (never silently met).
    """

    text: str
    requirements: tuple[Requirement, ...] = ()
    logic: str = "all"
    parsed: bool = False
    guards: tuple[Requirement, ...] = ()  # "For lupus nephritis: ..." -> applies only if the guard holds


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CriterionVerdict:
    criterion_id: str
    kind: CriterionKind
    text: str
    verdict: Verdict
    reason: str
    evidence: tuple[Span, ...] = ()
    missing: str | None = None
    cohort: str | None = None
    question_key: str | None = None  # groups unknowns that one answer resolves, e.g. "lab:upcr"
    question: str | None = None
    assumed: bool = False  # decided by the closed-world reading ("not mentioned, assumed absent/normal")


@dataclass(frozen=True, slots=True)
class Question:
    key: str
    text: str
    criterion_ids: tuple[str, ...] = ()
    nct_ids: tuple[str, ...] = ()
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class TrialMatch:
    nct_id: str
    title: str
    score: float
    relevance: float
    label: TrialLabel
    criteria: tuple[CriterionVerdict, ...]
    questions: tuple[Question, ...] = ()
    cohort: str | None = None
    overall_status: str | None = None
    phases: tuple[str, ...] = ()
    nearest_site_km: float | None = None
    nearest_site: str | None = None  # "facility, city, state, country" of that site
    topical: tuple[str, ...] = ()  # the patient's affirmed conditions that the trial studies
    studied: tuple[str, ...] = ()  # the conditions the trial studies (most specific ones)


@dataclass(frozen=True, slots=True)
class MatchResult:
    profile: PatientProfile
    matches: tuple[TrialMatch, ...]
    questions: tuple[Question, ...] = ()
    notice: str | None = None  # e.g. "no relevant recruiting trial found"
    retrieved: tuple[str, ...] = ()  # every retrieved candidate in retrieval order (evaluation reads below top_k)


# --------------------------------------------------------------------------- (de)serialization


def requirement_to_dict(req: Requirement) -> dict[str, Any]:
    out: dict[str, Any] = {"type": req.type, "span": [req.span.start, req.span.end, req.span.text]}
    for name in Requirement.__slots__:  # type: ignore[attr-defined]
        if name in ("type", "span"):
            continue
        value = getattr(req, name)
        if value is None or value == () or (name == "present" and value is True):
            continue
        out[name] = value.value if isinstance(value, Enum) else (list(value) if isinstance(value, tuple) else value)
    return out


def requirement_from_dict(data: dict[str, Any]) -> Requirement:
    start, end, text = data["span"]
    kwargs: dict[str, Any] = {k: v for k, v in data.items() if k not in ("type", "span")}
    for key in ("concepts", "classes", "modifiers"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    if "comparator" in kwargs:
        kwargs["comparator"] = Comparator(kwargs["comparator"])
    return Requirement(type=data["type"], span=Span(start, end, text), **kwargs)


def parsed_to_dict(parsed: ParsedCriterion) -> dict[str, Any]:
    out: dict[str, Any] = {"logic": parsed.logic, "parsed": parsed.parsed,
                           "requirements": [requirement_to_dict(r) for r in parsed.requirements]}
    if parsed.guards:
        out["guards"] = [requirement_to_dict(r) for r in parsed.guards]
    return out


def parsed_from_dict(text: str, data: dict[str, Any]) -> ParsedCriterion:
    return ParsedCriterion(text=text, logic=data.get("logic", "all"), parsed=bool(data.get("parsed")),
                           requirements=tuple(requirement_from_dict(r) for r in data.get("requirements", ())),
                           guards=tuple(requirement_from_dict(r) for r in data.get("guards", ())))


class ExtractionBudgetExceeded(RuntimeError):
    """The pipeline passed its deadline: the text is too long or too costly to read within the budget.

    ``stage`` names the step that was due next (a pipeline component, or "profile"); no text is carried.
    """

    def __init__(self, stage: str, chars: int) -> None:
        super().__init__(f"extraction budget exceeded before {stage} ({chars} characters)")
        self.stage = stage
        self.chars = chars
