"""FHIR R4 patient Bundle -> the same PatientProfile the text path builds (pure, given its readers).

``validate_bundle`` checks the shape with the ``fhir.resources`` R4B models and raises :class:`BundleError`
(the route answers it as an OperationOutcome). ``bundle_to_profile`` maps Patient, Condition, Observation,
Procedure and MedicationStatement/Request/Administration resources into facts: codes through the code tables and
the lexicon, unknown codes through their display text (the lexicon's surface forms, then the text pipeline).

The profile's ``text`` is a short plain summary of the facts ("38-year-old woman. Lupus nephritis class IV. On
mycophenolate mofetil. UPCR 2.4 g/g.") so that retrieval and the matcher's wording checks see what a writer
would have said; every fact's span points into that summary AND carries its resource reference
(``Span.source``, e.g. "Condition/ln-1") as the evidence.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from assistant.fhir.terms import FhirTerms, Marker
from models.domain import (
    Comparator,
    ConditionFact,
    Context,
    LabFact,
    PatientProfile,
    Span,
    TherapyFact,
)
from nlp.lexicon import ConditionEntry, DrugEntry, Lexicon
from nlp.profile import RESPONSE_CUES

logger = logging.getLogger(__name__)

BUNDLE_TYPES = frozenset({"transaction", "collection", "searchset"})
MAX_ENTRIES = 1000
MAX_DISPLAY_CHARS = 300
READ_TYPES = frozenset({"Patient", "Condition", "Observation", "Procedure", "MedicationStatement",
                        "MedicationRequest", "MedicationAdministration", "Medication"})
HISTORICAL_CLINICAL = frozenset({"inactive", "remission", "resolved"})
UNCERTAIN_VERIFICATION = frozenset({"unconfirmed", "provisional", "differential"})
DROPPED_STATUS = frozenset({"entered-in-error", "not-taken", "not-done", "cancelled", "draft", "unknown"})
PRIOR_STATUS = frozenset({"completed", "stopped"})
PLANNED_STATUS = frozenset({"intended", "on-hold"})
PLANNED_INTENT = frozenset({"proposal", "plan"})
DAYS_PER_UNIT = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.4375, "a": 365.25}
PERIOD_DAY = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
POSITIVE_WORDS = re.compile(r"\b(?:positive|detected|present|pos)\b", re.IGNORECASE)
NEGATIVE_WORDS = re.compile(r"\b(?:negative|not detected|absent|neg)\b", re.IGNORECASE)


class BundleError(ValueError):
    """The request is not a usable patient Bundle; ``code`` is stable, the message says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Readers:
    """What the mapping reads besides the bundle: the terminology and the text pipeline (handed in at the rim).

    ``read_text`` runs the text path on a display text; ``normalize`` converts a lab value to the lab's canonical
    unit (value, unit) -> (value, unit); ``lab_label`` gives a lab's written name ("upcr" -> "UPCR");
    ``lab_names_in`` the lab keys a display text names.
    """

    lexicon: Lexicon
    terms: FhirTerms
    read_text: Callable[[str], PatientProfile]
    normalize: Callable[[str, float, str | None], tuple[float | None, str | None]]
    lab_label: Callable[[str], str]
    lab_names_in: Callable[[str], tuple[str, ...]]


# --------------------------------------------------------------------------- validation


def unwrap_request(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(bundle, options) from a Bundle or ``{"patientData": Bundle, "top_k"?, "filters"?}``."""
    if not isinstance(data, dict):
        raise BundleError("invalid_request", "the body must be a FHIR Bundle or {\"patientData\": Bundle}")
    if "resourceType" not in data and "patientData" in data:
        unknown = set(data) - {"patientData", "top_k", "filters"}
        if unknown:
            raise BundleError("invalid_request", f"unknown field(s): {', '.join(sorted(unknown))}")
        bundle = data["patientData"]
        options = {k: data[k] for k in ("top_k", "filters") if k in data}
    else:
        bundle, options = data, {}
    if not isinstance(bundle, dict):
        raise BundleError("invalid_bundle", "patientData must be a FHIR Bundle object")
    return bundle, options


def validate_bundle(bundle: dict[str, Any]) -> None:
    """The Bundle must be a valid R4 (R4B models) transaction, collection or searchset Bundle."""
    kind = bundle.get("resourceType")
    if kind != "Bundle":
        raise BundleError("not_a_bundle", f"expected a Bundle resource, got {_short(kind)!s}")
    if not isinstance(bundle.get("type"), str) or bundle["type"] not in BUNDLE_TYPES:
        raise BundleError("invalid_bundle", f"Bundle.type must be one of {', '.join(sorted(BUNDLE_TYPES))}")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BundleError("invalid_bundle", "Bundle.entry must be a list")
    if len(entries) > MAX_ENTRIES:
        raise BundleError("too_many_entries", f"the Bundle has {len(entries)} entries; the limit is {MAX_ENTRIES}")
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    for i, entry in enumerate(entries):  # an unknown resourceType would surface as a KeyError inside the model
        resource = entry.get("resource") if isinstance(entry, dict) else None
        name = resource.get("resourceType") if isinstance(resource, dict) else None
        if resource is not None and not (isinstance(name, str) and name.isalpha() and _known_type(name)):
            raise BundleError("invalid_bundle", f"Bundle.entry[{i}].resource has an unknown resourceType")
    try:
        get_fhir_model_class("Bundle").model_validate(bundle)
    except ValidationError as exc:
        raise BundleError("invalid_bundle", _validation_message(exc)) from None
    except (KeyError, ValueError, TypeError):  # the models' own lookups on malformed nested resources
        raise BundleError("invalid_bundle", "the Bundle is not a valid FHIR R4 Bundle") from None
    if not any(_resources(bundle, "Patient")) and not any(
            r.get("resourceType") in READ_TYPES for r in _all_resources(bundle)):
        raise BundleError("no_patient_data", "the Bundle holds no Patient, Condition, Observation, Procedure or "
                                             "medication resource")
    patients = {r.get("id") for r in _resources(bundle, "Patient")}
    if len(patients) > 1:
        raise BundleError("several_patients", "the Bundle describes more than one Patient")


def _known_type(name: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError):
        return False
    return True


def _validation_message(exc: Any) -> str:
    """Where and what, never the offending value (it may be patient data)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        loc = "Bundle" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _short(value: Any) -> str:
    return repr(value)[:40] if not isinstance(value, str) else value[:40]


# --------------------------------------------------------------------------- bundle access


def _all_resources(bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            yield resource


def _resources(bundle: Mapping[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    return (r for r in _all_resources(bundle) if r.get("resourceType") == kind)


def _index(bundle: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Resources by "Type/id" and by entry fullUrl (how references inside a transaction Bundle point)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            out[_ref(resource)] = resource
            if entry.get("fullUrl"):
                out[str(entry["fullUrl"])] = resource
    return out


def _ref(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id') or '?'}"


def _codings(concept: Any) -> list[dict[str, Any]]:
    return [c for c in (concept or {}).get("coding", []) or [] if isinstance(c, dict)]


def _concept_text(concept: Any) -> str:
    """The words of a CodeableConcept: its text, else its first coding display."""
    if not isinstance(concept, dict):
        return ""
    text = concept.get("text") or next((c.get("display") for c in _codings(concept) if c.get("display")), "")
    return str(text)[:MAX_DISPLAY_CHARS].strip()


def _status_code(concept: Any) -> str | None:
    return next((c.get("code") for c in _codings(concept) if c.get("code")), None)


# --------------------------------------------------------------------------- dates


def parse_day(value: Any) -> dt.date | None:
    """The day a FHIR date/dateTime names; a year alone is mid-year, a month alone mid-month."""
    if not isinstance(value, str):
        return None
    m = PERIOD_DAY.match(value)
    if not m:
        return None
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if month is None:
            return dt.date(year, 7, 1)
        return dt.date(year, int(month), int(day) if day else 15)
    except ValueError:
        return None


def days_before(value: Any, reference: dt.date) -> float | None:
    day = parse_day(value)
    return float(max((reference - day).days, 0)) if day is not None else None


def age_years(birth_date: Any, reference: dt.date) -> float | None:
    born = parse_day(birth_date)
    if born is None or born > reference:
        return None
    years = reference.year - born.year - ((reference.month, reference.day) < (born.month, born.day))
    return float(years)


def _first_date(*values: Any) -> Any:
    return next((v for v in values if v), None)


# --------------------------------------------------------------------------- the summary text


@dataclass
class _Summary:
    """The profile text being written; ``add`` returns the span of the fact's words in it."""

    parts: list[str] = field(default_factory=list)
    length: int = 0

    def add(self, prefix: str, term: str, suffix: str, source: str, end: str = "\n") -> Span:
        start = self.length + len(prefix)
        self._write(prefix + term + suffix + end)
        return Span(start, start + len(term), term, source)

    def _write(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


# --------------------------------------------------------------------------- conditions and procedures


def _lookup_condition(readers: Readers, concept: Any) -> tuple[ConditionEntry | None, str | None]:
    """The lexicon entry a coded concept names, and its code as ``SYSTEM:code`` (the first coding's)."""
    terms, first = readers.terms, None
    for coding in _codings(concept):
        system = terms.system(coding.get("system"))
        code = coding.get("code")
        if system and code and first is None:
            first = f"{system}:{code}"
        name = terms.condition_concept(system, code)
        if name:
            return readers.lexicon.condition(name), first
    text = _concept_text(concept)
    if text:
        for form in (text, *(c.get("display") for c in _codings(concept) if c.get("display"))):
            entry = readers.lexicon.lookup_condition(str(form))
            if entry is not None:
                return entry, first
    return None, first


def _read_condition(readers: Readers, text: str, concept: str | None) -> ConditionFact | None:
    """The condition the text pipeline reads in a display text (the same concept when given, else the first)."""
    if not text:
        return None
    found = [f for f in readers.read_text(text).conditions if not f.context.negated]
    same = [f for f in found if f.concept == concept] if concept else found
    return same[0] if same else None


def _condition_fact(readers: Readers, resource: Mapping[str, Any], summary: _Summary, reference: dt.date,
                    default_category: str, context: Context, when: Any) -> ConditionFact | None:
    concept = resource.get("code")
    entry, code = _lookup_condition(readers, concept)
    display = _concept_text(concept)
    stage = " ".join(_concept_text(s.get("summary")) for s in resource.get("stage", []) or [] if isinstance(s, dict))
    read = _read_condition(readers, " ".join(p for p in (display, stage) if p), entry.concept if entry else None)
    if entry is None and read is not None:
        entry = readers.lexicon.condition(read.concept)
    if entry is None and not display:
        return None
    name = entry.concept if entry is not None else display.lower()
    category = entry.category if entry is not None else default_category
    qualifier = read.qualifier if read is not None else None
    prefix = "No " if context.negated else "Possible " if context.uncertain else "History of " if (
        context.historical) else ""
    term = name if prefix else name[:1].upper() + name[1:]
    span = summary.add(prefix, term, f" {qualifier}." if qualifier else ".", _ref(resource))
    return ConditionFact(concept=name, span=span, category=category,
                         code=(entry.code if entry is not None and entry.code else code), qualifier=qualifier,
                         context=context, days_ago=days_before(when, reference))


def _condition(readers: Readers, resource: Mapping[str, Any], summary: _Summary,
               reference: dt.date) -> ConditionFact | None:
    verification = _status_code(resource.get("verificationStatus"))
    if verification == "entered-in-error":
        return None
    clinical = _status_code(resource.get("clinicalStatus"))
    historical = clinical in HISTORICAL_CLINICAL
    context = Context(negated=verification == "refuted", historical=historical,
                      uncertain=verification in UNCERTAIN_VERIFICATION)
    onset = _first_date(resource.get("onsetDateTime"), (resource.get("onsetPeriod") or {}).get("start"))
    abated = _first_date(resource.get("abatementDateTime"), (resource.get("abatementPeriod") or {}).get("end"))
    return _condition_fact(readers, resource, summary, reference, "condition", context,
                           abated if historical and abated else onset)


def _procedure(readers: Readers, resource: Mapping[str, Any], summary: _Summary,
               reference: dt.date) -> ConditionFact | None:
    status = resource.get("status")
    if status in DROPPED_STATUS or status in ("preparation", "stopped"):
        return None
    period = resource.get("performedPeriod") or {}
    when = _first_date(resource.get("performedDateTime"), period.get("end"), period.get("start"))
    return _condition_fact(readers, resource, summary, reference, "procedure", Context(), when)


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class _Value:
    value: float | None = None
    unit: str | None = None
    comparator: Comparator = Comparator.EQ
    polarity: str | None = None


COMPARATORS = {"<": Comparator.LT, "<=": Comparator.LE, ">": Comparator.GT, ">=": Comparator.GE}


def _coded_polarity(terms: FhirTerms, concept: Any) -> str | None:
    for coding in _codings(concept):
        system = terms.system(coding.get("system")) or ("LOINC" if str(coding.get("code", "")).startswith("LA")
                                                        else None)
        found = terms.values.get(f"{system}|{coding.get('code')}")
        if found:
            return found
    return _word_polarity(_concept_text(concept))


def _word_polarity(text: str) -> str | None:
    if NEGATIVE_WORDS.search(text):
        return "negative"
    if POSITIVE_WORDS.search(text):
        return "positive"
    return None


def _unit(terms: FhirTerms, quantity: Mapping[str, Any]) -> str | None:
    from nlp import units

    for candidate in (quantity.get("unit"), quantity.get("code")):
        if isinstance(candidate, str) and candidate in terms.ucum:
            return terms.ucum[candidate] or None
        if isinstance(candidate, str) and units.is_known_unit(candidate):
            return units.normalize_unit(candidate)
    unit = quantity.get("unit") or quantity.get("code")
    return str(unit)[:40] if unit else None


def _value(terms: FhirTerms, holder: Mapping[str, Any]) -> _Value:
    """The result of an Observation (or a component): quantity, integer, coded or string value + interpretation."""
    interpretation = next((terms.interpretations.get(str(c.get("code"))) for i in holder.get("interpretation", [])
                           or [] for c in _codings(i) if terms.interpretations.get(str(c.get("code")))), None)
    quantity = holder.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), (int, float)):
        return _Value(float(quantity["value"]), _unit(terms, quantity),
                      COMPARATORS.get(str(quantity.get("comparator")), Comparator.EQ), interpretation)
    if isinstance(holder.get("valueInteger"), int) and not isinstance(holder.get("valueInteger"), bool):
        return _Value(float(holder["valueInteger"]), None, Comparator.EQ, interpretation)
    if isinstance(holder.get("valueCodeableConcept"), dict):
        return _Value(polarity=_coded_polarity(terms, holder["valueCodeableConcept"]) or interpretation)
    if isinstance(holder.get("valueBoolean"), bool):
        return _Value(polarity="positive" if holder["valueBoolean"] else "negative")
    if isinstance(holder.get("valueString"), str):
        return _Value(polarity=_word_polarity(holder["valueString"]) or interpretation)
    return _Value(polarity=interpretation)


def _loinc_codes(concept: Any, terms: FhirTerms) -> list[str]:
    return [str(c.get("code")) for c in _codings(concept) if terms.system(c.get("system")) == "LOINC"]


@dataclass
class _Observed:
    labs: list[LabFact] = field(default_factory=list)
    conditions: list[ConditionFact] = field(default_factory=list)
    receptors: dict[str, tuple[str, Span]] = field(default_factory=dict)


def _observation(readers: Readers, resource: Mapping[str, Any], summary: _Summary, reference: dt.date,
                 out: _Observed) -> None:
    if resource.get("status") in ("entered-in-error", "cancelled"):
        return
    terms = readers.terms
    period = resource.get("effectivePeriod") or {}
    days = days_before(_first_date(resource.get("effectiveDateTime"), period.get("end"), period.get("start"),
                                   resource.get("issued")), reference)
    codes = _loinc_codes(resource.get("code"), terms)
    display = _concept_text(resource.get("code"))
    source = _ref(resource)
    value = _value(terms, resource)
    if any(c in terms.pregnancy for c in codes):
        _pregnancy(readers, value, summary, source, days, out)
        return
    if any(c in terms.genetic_codes for c in codes):
        gene = next((_concept_text(c.get("valueCodeableConcept")) for c in resource.get("component", []) or []
                     if terms.gene_studied in _loinc_codes(c.get("code"), terms)), "")
        marker = terms.marker(gene) if gene else None
        if marker is not None:
            _marker(readers, marker, value, summary, source, days, out)
        return
    if not any(c in terms.labs for c in codes):
        marker = terms.marker(display)
        if marker is not None:
            _marker(readers, marker, value, summary, source, days, out)
            return
    lab = _lab_key(readers, resource.get("code"))
    components = resource.get("component", []) or []
    if lab is not None and not (components and value == _Value()):
        _add_lab(readers, lab, resource, value, summary, source, days, out)
        return
    for component in components:  # a panel: blood pressure 8480-6 + 8462-4
        lab = _lab_key(readers, component.get("code")) if isinstance(component, dict) else None
        if lab is not None:
            _add_lab(readers, lab, component, _value(terms, component), summary, source, days, out)


def _lab_key(readers: Readers, concept: Any) -> str | None:
    """The canonical lab a code names: the LOINC table, else a lab name in the display text."""
    found = next((readers.terms.labs[c] for c in _loinc_codes(concept, readers.terms) if c in readers.terms.labs),
                 None)
    if found is None:
        display = _concept_text(concept)
        names = readers.lab_names_in(display) if display else ()
        found = names[0] if names else None
    return found


def _add_lab(readers: Readers, lab: str, holder: Mapping[str, Any], value: _Value, summary: _Summary, source: str,
             days: float | None, out: _Observed) -> None:
    if lab == "ecog" and value.value is None:
        grade = next((readers.terms.ecog_answers[str(c.get("code"))]
                      for c in _codings(holder.get("valueCodeableConcept"))
                      if str(c.get("code")) in readers.terms.ecog_answers), None)
        value = _Value(float(grade)) if grade is not None else value
    if value.value is None and value.polarity is None:
        return
    out.labs.append(_lab_fact(readers, lab, value, summary, source, days))


def _lab_fact(readers: Readers, lab: str, value: _Value, summary: _Summary, source: str,
              days: float | None) -> LabFact:
    label = readers.lab_label(lab)
    if value.value is not None:
        comparator = "" if value.comparator is Comparator.EQ else value.comparator.value + " "
        written = f"{label} {comparator}{value.value:g}" + (f" {value.unit}" if value.unit else "")
        norm_value, norm_unit = readers.normalize(lab, value.value, value.unit)
    else:
        written, norm_value, norm_unit = f"{label} {value.polarity}", None, None
    span = summary.add("", written, ".", source)
    polarity = value.polarity if value.polarity in ("positive", "negative", "low", "high") else None
    if polarity == "high" and "titer" in (value.unit, norm_unit):  # an abnormal antibody titre is a positive test
        polarity = "positive"
    return LabFact(name=lab, value=value.value, span=span, unit=value.unit, comparator=value.comparator,
                   normalized_value=norm_value, normalized_unit=norm_unit, polarity=polarity, days_ago=days)


def _marker(readers: Readers, marker: Marker, value: _Value, summary: _Summary, source: str,
            days: float | None, out: _Observed) -> None:
    key, receptor, label = marker.key, marker.receptor, marker.label
    if receptor is not None:
        sign = {"positive": "+", "high": "+", "negative": "-", "low": "-"}.get(value.polarity or "")
        if sign is not None:
            out.receptors[receptor] = (sign, summary.add("", f"{receptor}{sign}", ".", source))
        return
    if value.value is None and value.polarity not in ("positive", "negative", "high", "low"):
        return
    out.labs.append(LabFact(name=key, value=value.value, unit=value.unit, comparator=value.comparator,
                            polarity=value.polarity, days_ago=days,
                            span=summary.add("", label + (
                                f" {value.value:g}{value.unit or ''}" if value.value is not None else
                                f" {value.polarity}"), ".", source)))


def _pregnancy(readers: Readers, value: _Value, summary: _Summary, source: str, days: float | None,
               out: _Observed) -> None:
    state = {"positive": "pregnant", "negative": "not_pregnant"}.get(value.polarity or "", value.polarity)
    if state not in ("pregnant", "not_pregnant", "unknown"):
        return
    entry = readers.lexicon.lookup_condition("pregnancy")
    context = Context(negated=state == "not_pregnant", uncertain=state == "unknown")
    prefix = {"pregnant": "", "not_pregnant": "Not ", "unknown": "Possible "}[state]
    span = summary.add(prefix, "pregnant" if prefix else "Pregnant", ".", source)
    out.conditions.append(ConditionFact(concept=entry.concept if entry else "pregnancy", span=span,
                                        category=entry.category if entry else "state",
                                        code=entry.code if entry else None, context=context, days_ago=days))


def _with_receptors(conditions: list[ConditionFact], receptors: Mapping[str, tuple[str, Span]],
                    lexicon: Lexicon) -> list[ConditionFact]:
    """Receptor results qualify the patient's cancers that take them, written like the text path ("ER+/HER2-")."""
    if not receptors:
        return conditions
    order = [r for r in ("ER", "PR", "HR", "HER2") if r in receptors]
    written = "/".join(f"{r}{receptors[r][0]}" for r in order)
    out = []
    for fact in conditions:
        entry = lexicon.condition(fact.concept)
        if entry is not None and "receptor" in entry.qualifiers and not fact.context.negated:
            fact = replace(fact, qualifier=f"{fact.qualifier}/{written}" if fact.qualifier else written)
        out.append(fact)
    return out


# --------------------------------------------------------------------------- medications


def _medication_concept(resource: Mapping[str, Any], bundle_index: Mapping[str, Mapping[str, Any]]) -> Any:
    if isinstance(resource.get("medicationCodeableConcept"), dict):
        return resource["medicationCodeableConcept"]
    ref = str((resource.get("medicationReference") or {}).get("reference") or "")
    if ref.startswith("#"):
        found = next((c for c in resource.get("contained", []) or [] if isinstance(c, dict)
                      and c.get("id") == ref[1:]), None)
    else:
        found = bundle_index.get(ref)
    return (found or {}).get("code")


def _lookup_drug(readers: Readers, concept: Any) -> DrugEntry | None:
    for coding in _codings(concept):
        generic = readers.terms.drugs.get(f"{readers.terms.system(coding.get('system'))}|{coding.get('code')}")
        if generic:
            return readers.lexicon.drug(generic)
    for form in (_concept_text(concept), *(c.get("display") for c in _codings(concept) if c.get("display"))):
        entry = readers.lexicon.lookup_drug(str(form)) if form else None
        if entry is not None:
            return entry
    text = _concept_text(concept)
    found = readers.read_text(text).therapies if text else ()
    return readers.lexicon.drug(found[0].name) if found else None


def _dose_mg_day(dosages: Iterable[Any]) -> float | None:
    for dosage in dosages:
        if not isinstance(dosage, dict):
            continue
        for rate in dosage.get("doseAndRate", []) or []:
            quantity = (rate or {}).get("doseQuantity") or {}
            unit = str(quantity.get("code") or quantity.get("unit") or "").lower()
            if not isinstance(quantity.get("value"), (int, float)) or unit not in ("mg", "g"):
                continue
            mg = float(quantity["value"]) * (1000 if unit == "g" else 1)
            repeat = ((dosage.get("timing") or {}).get("repeat")) or {}
            frequency, period = repeat.get("frequency") or 1, repeat.get("period") or 1
            per_days = period * DAYS_PER_UNIT.get(str(repeat.get("periodUnit") or "d"), 1.0)
            return round(mg * frequency / per_days, 3)
    return None


def _therapy(readers: Readers, resource: Mapping[str, Any], summary: _Summary, reference: dt.date,
             bundle_index: Mapping[str, Mapping[str, Any]]) -> TherapyFact | None:
    status = resource.get("status")
    if status in DROPPED_STATUS:
        return None
    kind = resource.get("resourceType")
    concept = _medication_concept(resource, bundle_index)
    entry = _lookup_drug(readers, concept)
    display = _concept_text(concept)
    if entry is None and not display:
        return None
    planned = status in PLANNED_STATUS or (kind == "MedicationRequest" and resource.get("intent") in PLANNED_INTENT)
    prior = status in PRIOR_STATUS
    state = "planned" if planned else "prior" if prior else "current"
    period = resource.get("effectivePeriod") or {}
    if kind == "MedicationRequest":
        bounds = next((((d or {}).get("timing") or {}).get("repeat", {}).get("boundsPeriod") or {}
                       for d in resource.get("dosageInstruction", []) or []), {})
        period = bounds or {"start": resource.get("authoredOn")}
    moment = resource.get("effectiveDateTime")
    when = _first_date(period.get("end"), moment, period.get("start")) if prior else _first_date(
        period.get("start"), moment)
    name = entry.generic if entry is not None else display.lower()
    classes = entry.classes if entry is not None else ()
    reasons = " ".join([_concept_text(c) for c in resource.get("statusReason", []) or []]
                       + ([_concept_text(resource.get("statusReason"))] if isinstance(resource.get("statusReason"),
                                                                                      dict) else [])
                       + [str(n.get("text", ""))[:MAX_DISPLAY_CHARS] for n in resource.get("note", []) or []
                          if isinstance(n, dict)])
    response = next((label for pattern, label in RESPONSE_CUES if pattern.search(reasons)), None)
    dosages = resource.get("dosage") or resource.get("dosageInstruction") or []
    dose = _dose_mg_day(dosages) if "corticosteroid" in classes else None
    factor = readers.lexicon.prednisone_equivalence().get(name)
    prefix = {"planned": "Planned ", "prior": "Prior ", "current": "On "}[state]
    span = summary.add(prefix, name, f", {response}." if response else ".", _ref(resource))
    return TherapyFact(name=name, span=span, classes=classes, response=response, status=state, dose_mg_day=dose,
                       prednisone_eq_mg_day=round(dose * factor, 3) if dose is not None and factor else None,
                       context=Context(historical=prior, hypothetical=planned),
                       days_ago=days_before(when, reference))


# --------------------------------------------------------------------------- the profile


def bundle_to_profile(bundle: Mapping[str, Any], readers: Readers, reference_date: dt.date) -> PatientProfile:
    """The patient a (validated) Bundle describes, as the text path's PatientProfile."""
    summary = _Summary()
    age = sex = None
    age_span = sex_span = None
    patient = next(_resources(bundle, "Patient"), None)
    if patient is not None:
        age = age_years(patient.get("birthDate"), reference_date)
        gender = patient.get("gender")
        sex = gender if gender in ("female", "male") else None
        noun = {"female": "woman", "male": "man"}.get(sex or "", "patient")
        if age is not None:
            age_span = summary.add("", f"{age:g}-year-old", "", _ref(patient), end=" ")
        sex_span = summary.add("", noun if age is not None else noun.capitalize(), ".", _ref(patient))
        if sex is None:
            sex_span = None
    index = _index(bundle)
    conditions: list[ConditionFact] = []
    therapies: list[TherapyFact] = []
    observed = _Observed()
    for resource in _all_resources(bundle):
        kind = resource.get("resourceType")
        if kind == "Condition":
            fact = _condition(readers, resource, summary, reference_date)
        elif kind == "Procedure":
            fact = _procedure(readers, resource, summary, reference_date)
        elif kind == "Observation":
            _observation(readers, resource, summary, reference_date, observed)
            continue
        elif kind in ("MedicationStatement", "MedicationRequest", "MedicationAdministration"):
            therapy = _therapy(readers, resource, summary, reference_date, index)
            if therapy is not None:
                therapies.append(therapy)
            continue
        else:
            continue
        if fact is not None:
            conditions.append(fact)
    conditions = _with_receptors(conditions + observed.conditions, observed.receptors, readers.lexicon)
    logger.info("fhir bundle mapped: %d conditions, %d labs, %d therapies", len(conditions), len(observed.labs),
                len(therapies))
    return PatientProfile(text=summary.text, age_years=age, age_span=age_span, sex=sex, sex_span=sex_span,
                          conditions=tuple(conditions), labs=tuple(observed.labs), therapies=tuple(therapies))
