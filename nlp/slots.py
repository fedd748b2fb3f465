"""Criterion slots for the criteria-NER evaluation: a processed Doc -> (start, end, label) spans. Pure.

Labels follow the Facebook Clinical-Trial-Parser set where trialmatch extracts
the same thing: condition (diseases, findings, cancers, infections),
treatment (drugs, drug classes, procedures), clinical_variable (a lab, vital
or score name), lower_bound / upper_bound (the numbers and time limits of a
requirement), age, gender, pregnancy.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from spacy.tokens import Doc

NUMBER_RE = re.compile(r"\d[\d,]*(?:\.\d+)?|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve)\b",
                       re.IGNORECASE)
CONDITION_LABELS = frozenset({"CONDITION", "CANCER", "INFECTION", "FINDING"})
TREATMENT_LABELS = frozenset({"DRUG", "PROCEDURE"})
PREGNANCY_CONCEPTS = frozenset({"pregnancy", "breastfeeding", "lactation"})
LOWER = frozenset({">", ">="})
UPPER = frozenset({"<", "<="})


class Slot(NamedTuple):
    start: int
    end: int
    label: str


def _bounds(text: str, offset: int, comparator: str | None, is_range: bool) -> list[Slot]:
    numbers = list(NUMBER_RE.finditer(text))
    if not numbers:
        return []
    if is_range and len(numbers) >= 2:
        return [Slot(offset + numbers[0].start(), offset + numbers[0].end(), "lower_bound"),
                Slot(offset + numbers[1].start(), offset + numbers[1].end(), "upper_bound")]
    label = "lower_bound" if comparator in LOWER else "upper_bound" if comparator in UPPER else None
    if label is None:
        return []
    first = numbers[0]
    return [Slot(offset + first.start(), offset + first.end(), label)]


def _measurement_slots(doc: Doc) -> list[Slot]:
    out = []
    for span in doc.spans["ctm_measurements"] if "ctm_measurements" in doc.spans else []:
        info = span._.ctm_measurement or {}
        text = span.text
        first_num = NUMBER_RE.search(text)
        name_end = span.start_char + (first_num.start() if first_num else len(text))
        name_text = doc.text[span.start_char:name_end].rstrip(" <>=≤≥:of").rstrip()
        if name_text:
            out.append(Slot(span.start_char, span.start_char + len(name_text), "clinical_variable"))
        if first_num:
            out += _bounds(doc.text[name_end:span.end_char], name_end, info.get("comparator"),
                           info.get("value_high") is not None)
    return out


def _age_slots(doc: Doc) -> list[Slot]:
    out = []
    for span in doc.spans["ctm_age"] if "ctm_age" in doc.spans else []:
        info = span._.ctm_age or {}
        out.append(Slot(span.start_char, span.end_char, "age"))
        is_range = info.get("low") is not None and info.get("high") is not None
        comp = info.get("comparator")
        if comp is None and not is_range:
            comp = ">=" if info.get("low") is not None else "<=" if info.get("high") is not None else None
        out += _bounds(span.text, span.start_char, comp, is_range)
    return out


def _time_slots(doc: Doc) -> list[Slot]:
    out = []
    for span in doc.spans["ctm_time"] if "ctm_time" in doc.spans else []:
        relation = (span._.ctm_time or {}).get("relation")
        label = "upper_bound" if relation == "within" else "lower_bound" if relation in ("at_least",) else None
        if label:
            out.append(Slot(span.start_char, span.end_char, label))
    return out


def extract_slots(doc: Doc) -> list[Slot]:
    slots: list[Slot] = []
    for ent in doc.ents:
        concept = ent._.ctm_concept if ent.has_extension("ctm_concept") else None
        if concept in PREGNANCY_CONCEPTS:
            slots.append(Slot(ent.start_char, ent.end_char, "pregnancy"))
        elif ent.label_ in CONDITION_LABELS:
            slots.append(Slot(ent.start_char, ent.end_char, "condition"))
        elif ent.label_ in TREATMENT_LABELS:
            slots.append(Slot(ent.start_char, ent.end_char, "treatment"))
    slots += _measurement_slots(doc) + _age_slots(doc) + _time_slots(doc)
    for span in doc.spans["ctm_sex"] if "ctm_sex" in doc.spans else []:
        if span._.ctm_sex_strength == "explicit":
            slots.append(Slot(span.start_char, span.end_char, "gender"))
    return slots
