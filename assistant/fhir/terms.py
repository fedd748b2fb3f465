"""The code tables of FHIR patient resources (``data/fhir/codes.json``), validated on load.

SNOMED CT and RxNorm codes name lexicon concepts and drugs through the table; ICD-10-CM codes go through
the lexicon's own codes (no table); LOINC codes name the canonical lab keys of ``data/rules/labs.json``.
A code the tables do not know falls back to its display text (see :mod:`assistant.fhir.inbound`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nlp.lexicon import Lexicon
from nlp.rulefiles import read_json

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "fhir" / "codes.json"
POLARITIES = frozenset({"positive", "negative", "high", "low", "pregnant", "not_pregnant", "unknown"})
_TOP_KEYS = frozenset({"description", "systems", "conditions", "drugs", "labs", "ecog_answers", "pregnancy",
                       "values", "interpretations", "markers", "genetic_codes", "gene_studied", "ucum"})


class FhirTermsError(ValueError):
    """codes.json is malformed or names something the lexicon or the lab rules do not know."""


@dataclass(frozen=True, slots=True)
class Marker:
    """A tumour marker: ``receptor`` set (HER2, ER, PR) makes it a qualifier of a cancer, else a lab ``key``."""

    key: str
    pattern: re.Pattern[str]
    receptor: str | None = None
    label: str = ""  # how the summary text writes it ("EGFR mutation")


@dataclass(frozen=True)
class FhirTerms:
    systems: Mapping[str, str]
    conditions: Mapping[str, str]
    drugs: Mapping[str, str]
    labs: Mapping[str, str]
    ecog_answers: Mapping[str, int]
    pregnancy: frozenset[str]
    values: Mapping[str, str]
    interpretations: Mapping[str, str]
    markers: tuple[Marker, ...]
    genetic_codes: frozenset[str]
    gene_studied: str
    ucum: Mapping[str, str]
    icd10: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def system(self, url: str | None) -> str | None:
        """Short name of a code system URL ("http://snomed.info/sct" -> "SNOMED")."""
        return self.systems.get(url or "")

    def condition_concept(self, system: str | None, code: str | None) -> str | None:
        """The lexicon concept a coded condition names (ICD-10-CM: the code, then its shorter parents)."""
        if not system or not code:
            return None
        if system in ("ICD10CM", "ICD10"):
            key = code.strip().upper()
            while key:
                if key in self.icd10:
                    return self.icd10[key]
                key = key[:-1].rstrip(".")
            return None
        return self.conditions.get(f"{system}|{code}")

    def marker(self, text: str) -> Marker | None:
        return next((m for m in self.markers if m.pattern.search(text)), None)


def _fail(where: str, message: str) -> FhirTermsError:
    return FhirTermsError(f"{where}: {message}")


def _str_map(data: Any, name: str, where: str) -> dict[str, str]:
    value = data.get(name, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail(where, f"'{name}' must map strings to strings")
    return value


def _str_list(data: Any, name: str, where: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, f"'{name}' must be a list of strings")
    return value


def _markers(raw: Any, where: str) -> tuple[Marker, ...]:
    if not isinstance(raw, dict):
        raise _fail(where, "'markers' must be an object")
    out = []
    for key, spec in raw.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", key) or not isinstance(spec, dict) or set(spec) - {"words",
                                                                                                   "receptor", "label"}:
            raise _fail(where, f"marker {key!r}: a lower_snake key with 'words' and an optional 'receptor'")
        words = _str_list(spec, "words", f"{where}: marker {key!r}")
        if not words:
            raise _fail(where, f"marker {key!r} needs words")
        receptor = spec.get("receptor")
        if receptor is not None and receptor not in ("HER2", "ER", "PR", "HR"):
            raise _fail(where, f"marker {key!r}: receptor must be HER2, ER, PR or HR")
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        label = spec.get("label", words[0])
        if not isinstance(label, str) or not label:
            raise _fail(where, f"marker {key!r}: 'label' must be a non-empty string")
        out.append(Marker(key, re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])"), receptor, label))
    return tuple(out)


def parse_terms(data: Any, lexicon: Lexicon, lab_names: frozenset[str], where: str = "codes.json") -> FhirTerms:
    """Validate the tables: every concept, drug and lab they name must exist."""
    if not isinstance(data, dict):
        raise _fail(where, "top level must be an object")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise _fail(where, f"unknown keys {unknown}")
    systems = _str_map(data, "systems", where)
    short_names = set(systems.values()) | {"LOINC"}
    conditions = _str_map(data, "conditions", where)
    drugs = _str_map(data, "drugs", where)
    for key, concept in conditions.items():
        if key.split("|")[0] not in short_names or lexicon.condition(concept) is None:
            raise _fail(where, f"conditions[{key!r}]: unknown system or lexicon concept {concept!r}")
    for key, generic in drugs.items():
        if key.split("|")[0] not in short_names or lexicon.drug(generic) is None:
            raise _fail(where, f"drugs[{key!r}]: unknown system or lexicon drug {generic!r}")
    labs = _str_map(data, "labs", where)
    for code, lab in labs.items():
        if lab not in lab_names:
            raise _fail(where, f"labs[{code!r}]: {lab!r} is not a lab of labs.json")
    values = _str_map(data, "values", where)
    interpretations = _str_map(data, "interpretations", where)
    for name, table in (("values", values), ("interpretations", interpretations)):
        bad = sorted(set(table.values()) - POLARITIES)
        if bad:
            raise _fail(where, f"{name}: unknown polarities {bad} (allowed: {sorted(POLARITIES)})")
    ecog = data.get("ecog_answers", {})
    if not isinstance(ecog, dict) or not all(isinstance(v, int) and 0 <= v <= 5 for v in ecog.values()):
        raise _fail(where, "'ecog_answers' must map answer codes to grades 0..5")
    gene = data.get("gene_studied")
    if not isinstance(gene, str):
        raise _fail(where, "'gene_studied' must be a LOINC code")
    icd10 = {}
    for entry in lexicon.conditions():
        code = entry.codes.get("icd10cm")
        if code:
            icd10.setdefault(code.upper(), entry.concept)
    return FhirTerms(
        systems=MappingProxyType(systems), conditions=MappingProxyType(conditions), drugs=MappingProxyType(drugs),
        labs=MappingProxyType(labs), ecog_answers=MappingProxyType(dict(ecog)),
        pregnancy=frozenset(_str_list(data, "pregnancy", where)), values=MappingProxyType(values),
        interpretations=MappingProxyType(interpretations), markers=_markers(data.get("markers", {}), where),
        genetic_codes=frozenset(_str_list(data, "genetic_codes", where)), gene_studied=gene,
        ucum=MappingProxyType(_str_map(data, "ucum", where)), icd10=MappingProxyType(icd10))


@lru_cache(maxsize=4)
def _load(path: str, lexicon: Lexicon) -> FhirTerms:
    from nlp.components.measurements import load_lab_rules

    return parse_terms(read_json(path, FhirTermsError), lexicon, frozenset(load_lab_rules().labs), where=path)


def load_terms(lexicon: Lexicon, path: Path | str | None = None) -> FhirTerms:
    """The validated tables (cached per file and lexicon)."""
    return _load(str(path or DEFAULT_PATH), lexicon)

