"""The terminology lexicon: conditions, drugs, drug classes and a small is-a hierarchy.

Data lives in ``data/lexicons`` (written by ``scripts/build_lexicons.py`` from
packaged terminologies plus curated lists; see ``data/lexicons/SOURCES.md``):

- ``conditions.jsonl``: one condition/cancer/infection/procedure/state/finding
  concept per line;
- ``drugs.jsonl``: one drug (generic name) per line with its direct classes;
- ``drug_classes.json``: class name -> parents, mentions, members;
- ``hierarchy.json``: curated is-a edges between concepts.

Every record is validated on load (unknown or missing keys raise ``ValueError``
naming file and line, in the manner of medspaCy's ``TargetRule.from_dict``).
Nothing is read at import time: call :func:`load_lexicon` or the cached
:func:`default_lexicon`.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

LEXICON_DIR = Path(__file__).resolve().parents[1] / "data" / "lexicons"
CONDITIONS_FILE = "conditions.jsonl"
DRUGS_FILE = "drugs.jsonl"
CLASSES_FILE = "drug_classes.json"
HIERARCHY_FILE = "hierarchy.json"

CATEGORIES = ("condition", "cancer", "infection", "procedure", "state", "finding")
QUALIFIER_KINDS = frozenset({"class", "nyha", "stage", "ckd_stage", "receptor"})
DRUG_LABEL = "DRUG"
LABELS = tuple(c.upper() for c in CATEGORIES) + (DRUG_LABEL,)

_CONDITION_REQUIRED = frozenset({"concept", "category", "synonyms", "source"})
_CONDITION_ALLOWED = _CONDITION_REQUIRED | {"codes", "parents", "qualifiers"}
_DRUG_REQUIRED = frozenset({"generic", "synonyms", "classes", "source"})
_DRUG_ALLOWED = _DRUG_REQUIRED | {"codes", "prednisone_equivalence"}
_CLASS_ALLOWED = frozenset({"parents", "mentions", "members", "suffixes", "exclude", "description"})
_HIERARCHY_ALLOWED = frozenset({"is_a", "category_ancestors"})
_TERM_ALLOWED = frozenset({"term", "case_sensitive"})
_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CODE_SYSTEM = re.compile(r"^[a-z][a-z0-9_]*$")
# Preferred code system per kind, for the "SYSTEM:code" string on spans.
_CONDITION_CODE_ORDER = ("icd10cm", "mesh")
_DRUG_CODE_ORDER = ("drugbank", "mesh", "rxnorm", "medlineplus")

# Precedence when one term belongs to several entries (lower wins).
PRIORITY_CLASS, PRIORITY_CURATED_CONDITION, PRIORITY_CURATED_DRUG = 0, 1, 2
PRIORITY_CONDITION, PRIORITY_DRUG = 3, 4

# --------------------------------------------------------------------------- text helpers

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u2010": "-", "\u2011": "-",
                         "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
                         "\u00a0": " "})
_WS = re.compile(r"\s+")
_KEY_TOKENS = re.compile(r"\w+|[^\w\s]")


def clean_term(text: str) -> str:
    """Typographic quotes and dashes to ASCII, whitespace collapsed (case kept)."""
    return _WS.sub(" ", text.translate(_QUOTES)).strip()


def norm_key(text: str, lower: bool = True) -> str:
    """Lookup key: cleaned, optionally lower-cased, word and punctuation tokens joined by one space.

    "CAR-T", "car - t" and "Car T" -> "car - t"/"car t" (hyphen kept as its own token).
    """
    text = clean_term(text)
    if lower:
        text = text.lower()
    return " ".join(_KEY_TOKENS.findall(text))


def _plural(word: str) -> str | None:
    if not word or not word[-1].isalpha():
        return None
    if word.endswith(("s", "x", "ch", "sh", "ics")):
        return None
    if word.endswith("y") and len(word) > 2 and word[-2].lower() not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def mention_variants(term: str) -> list[str]:
    """Spelling variants of a drug-class mention: plural, hyphen/space, joined 'anti'.

    ``"b-cell depleting therapy"`` -> also ``"b cell depleting therapy"``,
    ``"b-cell-depleting therapy"``, ``"b-cell depleting therapies"`` ...
    """
    term = clean_term(term)
    out: dict[str, None] = {term: None}
    parts = re.split(r"([ -])", term)  # words and their joints
    joints = [i for i in range(1, len(parts), 2)]
    if 0 < len(joints) <= 3:
        for mask in range(1 << len(joints)):
            p = list(parts)
            for bit, j in enumerate(joints):
                if mask >> bit & 1:
                    p[j] = "-" if p[j] == " " else " "
            out[_WS.sub(" ", "".join(p)).strip()] = None
    elif joints:
        out[_WS.sub(" ", term.replace("-", " ")).strip()] = None
    if term.lower().startswith("anti-"):
        out["anti" + term[5:]] = None
    for variant in list(out):
        words = variant.rsplit(" ", 1)
        last = words[-1]
        plural = _plural(last.rsplit("-", 1)[-1])
        if plural is not None:
            stem = last.rsplit("-", 1)
            stem[-1] = plural
            words[-1] = "-".join(stem)
            out[" ".join(words)] = None
    return list(out)


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class ConditionEntry:
    """A condition-like concept. ``label`` is the spaCy entity label (category upper-cased)."""

    concept: str
    category: str
    synonyms: tuple[str, ...] = ()
    codes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    source: str = ""
    qualifiers: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.category.upper()

    @property
    def code(self) -> str | None:
        """Preferred code as ``"ICD10CM:M32.14"`` (ICD-10-CM before MeSH), or None."""
        return _format_code(self.codes, _CONDITION_CODE_ORDER)

    @property
    def curated(self) -> bool:
        return "curated" in self.source


@dataclass(frozen=True, slots=True)
class DrugEntry:
    """A drug (``generic``) or, with ``is_class`` True, a drug-class mention (``generic`` = class name).

    ``classes`` is the closure over class parents (e.g. rituximab -> anti_cd20,
    b_cell_depleting, monoclonal_antibody, biologic).
    """

    generic: str
    classes: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    codes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    source: str = ""
    prednisone_equivalence: float | None = None
    is_class: bool = False

    @property
    def label(self) -> str:
        return DRUG_LABEL

    @property
    def code(self) -> str | None:
        """Preferred code as ``"DRUGBANK:DB00073"`` (then MeSH, RxNorm, MedlinePlus), or None."""
        return _format_code(self.codes, _DRUG_CODE_ORDER)

    @property
    def curated(self) -> bool:
        return "curated" in self.source


class TermPattern(NamedTuple):
    """One surface form for the matcher: ``term`` (lower-case unless ``case_sensitive``) -> entry ``key``.

    ``kind`` is "condition", "drug" or "class"; ``key`` the concept, generic or class name.
    """

    term: str
    case_sensitive: bool
    kind: str
    key: str
    label: str
    priority: int


def _format_code(codes: Mapping[str, str], order: tuple[str, ...]) -> str | None:
    for system in order:
        if codes.get(system):
            return f"{system.upper()}:{codes[system]}"
    for system in sorted(codes):
        if codes[system]:
            return f"{system.upper()}:{codes[system]}"
    return None


# --------------------------------------------------------------------------- validation


def _fail(where: str, message: str) -> ValueError:
    return ValueError(f"{where}: {message}")


def _check_keys(record: Any, required: frozenset[str], allowed: frozenset[str], where: str) -> None:
    if not isinstance(record, dict):
        raise _fail(where, f"expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown} (allowed: {sorted(allowed)})")
    missing = sorted(required - set(record))
    if missing:
        raise _fail(where, f"missing required key(s) {missing}")


def _check_str(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"'{name}' must be a non-empty string")
    return value


def _check_terms(value: Any, name: str, where: str) -> list[tuple[str, bool]]:
    """Synonym/mention list: strings (lower-case, case-insensitive) or {"term", "case_sensitive"} objects."""
    if not isinstance(value, list):
        raise _fail(where, f"'{name}' must be a list")
    out = []
    for item in value:  # fast path: plain lower-case strings
        if item.__class__ is not str or not item or item != item.lower() or item.isspace():
            break
        out.append((item, False))
    else:
        return out
    out = []
    for item in value:
        if isinstance(item, str):
            if not item.strip() or item != item.lower():
                raise _fail(where, f"'{name}' entry {item!r} must be a non-empty lower-case string "
                                   "(use {\"term\": ..., \"case_sensitive\": true} for case-sensitive forms)")
            out.append((item, False))
        elif isinstance(item, dict):
            unknown = sorted(set(item) - _TERM_ALLOWED)
            if unknown or "term" not in item:
                raise _fail(where, f"'{name}' object {item!r}: unknown key(s) {unknown} or missing 'term' "
                                   f"(allowed: {sorted(_TERM_ALLOWED)})")
            term = _check_str(item["term"], "term", where)
            cs = item.get("case_sensitive", False)
            if not isinstance(cs, bool):
                raise _fail(where, f"'case_sensitive' of {term!r} must be true or false")
            out.append((term if cs else term.lower(), cs))
        else:
            raise _fail(where, f"'{name}' entries must be strings or objects, got {item!r}")
    return out


def _check_str_list(value: Any, name: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(where, f"'{name}' must be a list of non-empty strings")
    return value


def _check_codes(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(where, "'codes' must be an object")
    for system, code in value.items():
        if not _CODE_SYSTEM.match(system) or not isinstance(code, str) or not code:
            raise _fail(where, f"bad code {system!r}: {code!r} (system lower_snake_case, code a string)")
    return dict(value)


# --------------------------------------------------------------------------- the lexicon


_LookupTables = tuple[dict[str, str], dict[str, str], dict[str, tuple[str, str]], dict[str, tuple[str, str]]]


@dataclass(slots=True)
class _RawCondition:
    entry: ConditionEntry
    terms: list[tuple[str, bool]]
    where: str


@dataclass(slots=True)
class _RawDrug:
    generic: str
    terms: list[tuple[str, bool]]
    classes: list[str]
    codes: dict[str, str]
    source: str
    pe: float | None
    where: str


class Lexicon:
    """Read-only terminology built once; see the module docstring for the files.

    Public API: :meth:`lookup_condition`, :meth:`lookup_drug`, :meth:`condition`,
    :meth:`drug`, :meth:`class_members`, :meth:`drug_classes`, :meth:`synonyms`,
    :meth:`is_a`, :meth:`ancestors`, :meth:`condition_patterns`,
    :meth:`drug_patterns`, :meth:`prednisone_equivalence`, :meth:`stats`.
    """

    def __init__(self, conditions: Iterable[tuple[dict[str, Any], str]],
                 drugs: Iterable[tuple[dict[str, Any], str]],
                 classes: Mapping[str, Any], hierarchy: Mapping[str, Any],
                 classes_where: str = CLASSES_FILE, hierarchy_where: str = HIERARCHY_FILE) -> None:
        self._class_defs = self._read_classes(classes, classes_where)
        raw_conditions = [self._read_condition(r, w) for r, w in conditions]
        raw_drugs = [self._read_drug(r, w) for r, w in drugs]

        # ---- conditions
        self._conditions: dict[str, ConditionEntry] = {}
        for raw in raw_conditions:
            if raw.entry.concept in self._conditions:
                raise _fail(raw.where, f"duplicate concept {raw.entry.concept!r}")
            self._conditions[raw.entry.concept] = raw.entry
        for raw in raw_conditions:
            for parent in raw.entry.parents:
                if parent not in self._conditions:
                    raise _fail(raw.where, f"unknown parent concept {parent!r}")

        # ---- classes: parents closure, members
        self._class_ancestors = {c: self._closure(c) for c in self._class_defs}
        generics = {raw.generic for raw in raw_drugs}
        unresolved = {member.replace("-", " ") for spec in self._class_defs.values()
                      for member in spec["members"] if member not in generics}
        term_owner: dict[str, str] = {}
        if unresolved:  # a member named by a synonym ("tbo-filgrastim") belongs to that drug
            for raw in raw_drugs:
                for term, cs in raw.terms:
                    plain = term.replace("-", " ")
                    if not cs and plain in unresolved:
                        term_owner.setdefault(plain, raw.generic)
        direct: dict[str, set[str]] = {}
        for cls, spec in self._class_defs.items():
            for member in spec["members"]:
                generic = member if member in generics else term_owner.get(member.replace("-", " "), member)
                direct.setdefault(generic, set()).add(cls)

        # ---- drugs
        self._drugs: dict[str, DrugEntry] = {}
        drug_terms: dict[str, list[tuple[str, bool]]] = {}
        for raw in raw_drugs:
            if raw.generic in self._drugs:
                raise _fail(raw.where, f"duplicate generic {raw.generic!r}")
            for cls in raw.classes:
                if cls not in self._class_defs:
                    raise _fail(raw.where, f"unknown drug class {cls!r} (not in {CLASSES_FILE})")
            own = list(dict.fromkeys(raw.classes + sorted(direct.get(raw.generic, ()))))
            closure = self._expand_classes(own)
            self._drugs[raw.generic] = DrugEntry(
                generic=raw.generic, classes=closure, synonyms=tuple(t for t, _ in raw.terms),
                codes=MappingProxyType(raw.codes), source=raw.source, prednisone_equivalence=raw.pe)
            drug_terms[raw.generic] = raw.terms
        self._class_entries = {
            cls: DrugEntry(generic=cls, classes=self._expand_classes([cls]), source="curated", is_class=True,
                           synonyms=tuple(t for t, _ in spec["mention_terms"]))
            for cls, spec in self._class_defs.items()}
        members: dict[str, set[str]] = {c: set() for c in self._class_defs}
        for generic, entry in self._drugs.items():
            for cls in entry.classes:
                members[cls].add(generic)
        self._members = {c: frozenset(m) for c, m in members.items()}

        # ---- hierarchy
        self._is_a: dict[str, tuple[str, ...]] = {}
        self._curated_is_a: dict[str, tuple[str, ...]] = {}
        for concept, entry in self._conditions.items():
            if entry.parents:
                self._is_a[concept] = entry.parents
        self._category_ancestors: dict[str, str] = {}
        self._read_hierarchy(hierarchy, hierarchy_where)
        self._ancestor_cache: dict[str, frozenset[str]] = {}
        self._curated_cache: dict[tuple[str, str], bool] = {}

        # ---- patterns and lookup tables
        patterns: list[TermPattern] = []
        for cls, spec in self._class_defs.items():
            for term, cs in spec["pattern_terms"]:
                patterns.append(TermPattern(term, cs, "class", cls, DRUG_LABEL, PRIORITY_CLASS))
        for raw in raw_conditions:
            prio = PRIORITY_CURATED_CONDITION if raw.entry.curated else PRIORITY_CONDITION
            concept, label = raw.entry.concept, raw.entry.label
            for term, cs in raw.terms:
                patterns.append(TermPattern(term, cs, "condition", concept, label, prio))
        for generic, terms in drug_terms.items():
            prio = PRIORITY_CURATED_DRUG if self._drugs[generic].curated else PRIORITY_DRUG
            for term, cs in terms:
                patterns.append(TermPattern(term, cs, "drug", generic, DRUG_LABEL, prio))
        patterns.sort(key=lambda p: p.priority)  # stable: file order within a priority
        self._patterns = tuple(patterns)
        self._lookups: _LookupTables | None = None
        self._pred_eq = MappingProxyType({g: e.prednisone_equivalence for g, e in self._drugs.items()
                                          if e.prednisone_equivalence})
        # Per-tokenizer caches owned by nlp.components.terminology (token tuples of patterns).
        self.matcher_cache: dict[Any, Any] = {}
        self._cache_file: tuple[Path, str] | None = None  # (path, key) in the derived-data cache, see persist

    # ------------------------------------------------------------------ derived-data cache

    def __getstate__(self) -> dict[str, Any]:
        """What a cache file holds: the built tables and matcher indexes, not the lookup memos."""
        state = dict(self.__dict__)
        state.update(_ancestor_cache={}, _curated_cache={}, _cache_file=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def persist(self) -> None:
        """Save this lexicon, with the matcher indexes prepared on it, to its derived-data cache file (the
        default lexicon's, see :func:`default_lexicon`); a lexicon without one is not saved."""
        if self._cache_file is not None:
            from nlp import cache

            path, key = self._cache_file
            cache.save(path, key, self)

    # ------------------------------------------------------------------ readers

    @staticmethod
    def _read_classes(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
        if not isinstance(data, Mapping):
            raise _fail(where, "expected a JSON object mapping class name -> definition")
        out: dict[str, dict[str, Any]] = {}
        for name, spec in data.items():
            if name.startswith("_"):
                continue
            w = f"{where}: class {name!r}"
            if not _CLASS_NAME.match(name):
                raise _fail(w, "class names must be lower_snake_case")
            _check_keys(spec, frozenset(), _CLASS_ALLOWED, w)
            mentions = _check_terms(spec.get("mentions", []), "mentions", w)
            pattern_terms: dict[tuple[str, bool], None] = {}
            for term, cs in mentions:
                for variant in mention_variants(term):
                    pattern_terms[(variant, cs)] = None
            out[name] = {
                "parents": _check_str_list(spec.get("parents", []), "parents", w),
                "members": [m.lower() for m in _check_str_list(spec.get("members", []), "members", w)],
                "mention_terms": mentions,
                "pattern_terms": list(pattern_terms),
            }
        for name, spec in out.items():
            for parent in spec["parents"]:
                if parent not in out:
                    raise _fail(f"{where}: class {name!r}", f"unknown parent class {parent!r}")
        return out

    @staticmethod
    def _read_condition(record: Any, where: str) -> _RawCondition:
        _check_keys(record, _CONDITION_REQUIRED, _CONDITION_ALLOWED, where)
        concept = _check_str(record["concept"], "concept", where)
        if concept != concept.lower():
            raise _fail(where, f"concept {concept!r} must be lower-case")
        category = record["category"]
        if category not in CATEGORIES:
            raise _fail(where, f"category {category!r} not one of {list(CATEGORIES)}")
        terms = _check_terms(record["synonyms"], "synonyms", where)
        qualifiers = _check_str_list(record.get("qualifiers", []), "qualifiers", where)
        bad = sorted(set(qualifiers) - QUALIFIER_KINDS)
        if bad:
            raise _fail(where, f"unknown qualifier kind(s) {bad} (allowed: {sorted(QUALIFIER_KINDS)})")
        parents = _check_str_list(record.get("parents", []), "parents", where)
        codes = _check_codes(record.get("codes", {}), where)
        source = _check_str(record["source"], "source", where)
        if (concept, False) not in terms:
            terms.insert(0, (concept, False))
        entry = ConditionEntry(concept=concept, category=category, synonyms=tuple(t for t, _ in terms),
                               codes=MappingProxyType(codes), source=source, qualifiers=tuple(qualifiers),
                               parents=tuple(parents))
        return _RawCondition(entry, terms, where)

    @staticmethod
    def _read_drug(record: Any, where: str) -> _RawDrug:
        _check_keys(record, _DRUG_REQUIRED, _DRUG_ALLOWED, where)
        generic = _check_str(record["generic"], "generic", where)
        if generic != generic.lower():
            raise _fail(where, f"generic {generic!r} must be lower-case")
        terms = _check_terms(record["synonyms"], "synonyms", where)
        if (generic, False) not in terms:
            terms.insert(0, (generic, False))
        classes = _check_str_list(record["classes"], "classes", where) if record["classes"] else []
        pe = record.get("prednisone_equivalence")
        if pe is not None and (isinstance(pe, bool) or not isinstance(pe, (int, float)) or pe <= 0):
            raise _fail(where, f"'prednisone_equivalence' must be a positive number, got {pe!r}")
        codes = _check_codes(record.get("codes", {}), where)
        source = _check_str(record["source"], "source", where)
        pe_value = float(pe) if pe is not None else None
        return _RawDrug(generic, terms, list(classes), codes, source, pe_value, where)

    def _read_hierarchy(self, data: Mapping[str, Any], where: str) -> None:
        if not isinstance(data, Mapping):
            raise _fail(where, "expected a JSON object")
        keys = {k for k in data if not k.startswith("_")}
        unknown = sorted(keys - _HIERARCHY_ALLOWED)
        if unknown:
            raise _fail(where, f"unknown key(s) {unknown} (allowed: {sorted(_HIERARCHY_ALLOWED)})")
        is_a = data.get("is_a", {})
        if not isinstance(is_a, Mapping):
            raise _fail(where, "'is_a' must be an object")
        for concept, parents in is_a.items():
            w = f"{where}: is_a {concept!r}"
            parents = _check_str_list(parents, "parents", w)
            for name in (concept, *parents):
                if not self._known(name):
                    raise _fail(w, f"unknown concept {name!r} (not a condition, drug or drug class)")
            self._is_a[concept] = tuple(dict.fromkeys(self._is_a.get(concept, ()) + tuple(parents)))
            self._curated_is_a[concept] = tuple(parents)
        cat = data.get("category_ancestors", {})
        if not isinstance(cat, Mapping):
            raise _fail(where, "'category_ancestors' must be an object")
        for category, ancestor in cat.items():
            if category not in CATEGORIES:
                raise _fail(where, f"category_ancestors: unknown category {category!r}")
            if not isinstance(ancestor, str) or ancestor not in self._conditions:
                raise _fail(where, f"category_ancestors: unknown concept {ancestor!r}")
            self._category_ancestors[category] = ancestor

    def _known(self, name: str) -> bool:
        return name in self._conditions or name in self._drugs or name in self._class_defs

    def _closure(self, cls: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        stack = [cls]
        while stack:
            c = stack.pop(0)
            if c in seen:
                continue
            seen[c] = None
            stack.extend(self._class_defs[c]["parents"])
        return tuple(seen)

    def _expand_classes(self, classes: Iterable[str]) -> tuple[str, ...]:
        out: dict[str, None] = {}
        for cls in classes:
            for c in self._class_ancestors.get(cls, (cls,)):
                out[c] = None
        return tuple(out)

    # ------------------------------------------------------------------ public API

    def _lookup_tables(self) -> _LookupTables:
        """Term -> entry tables for lookup_*, built on first use (the matcher does not need them)."""
        if self._lookups is not None:
            return self._lookups
        condition_ci: dict[str, str] = {}
        condition_cs: dict[str, str] = {}
        drug_ci: dict[str, tuple[str, str]] = {}
        drug_cs: dict[str, tuple[str, str]] = {}
        for p in self._patterns:
            key = norm_key(p.term, lower=not p.case_sensitive)
            if p.kind == "condition":
                (condition_cs if p.case_sensitive else condition_ci).setdefault(key, p.key)
            else:
                (drug_cs if p.case_sensitive else drug_ci).setdefault(key, (p.kind, p.key))
        for concept in self._conditions:
            condition_ci.setdefault(norm_key(concept), concept)
        for generic in self._drugs:
            drug_ci.setdefault(norm_key(generic), ("drug", generic))
        for cls in self._class_defs:
            drug_ci.setdefault(norm_key(cls.replace("_", " ")), ("class", cls))
        self._lookups = (condition_ci, condition_cs, drug_ci, drug_cs)
        return self._lookups


    def lookup_condition(self, term: str) -> ConditionEntry | None:
        """The condition a surface form names ("SLE", "lupus nephritis", "Lupus Erythematosus, Systemic").

        Case-sensitive forms ("ALL", "MS") match only with their exact case.
        """
        ci, cs, _, _ = self._lookup_tables()
        concept = cs.get(norm_key(term, lower=False)) or ci.get(norm_key(term))
        return self._conditions.get(concept) if concept else None

    def lookup_drug(self, term: str) -> DrugEntry | None:
        """The drug ("Rituxan" -> rituximab) or drug class ("immunosuppressants") a surface form names."""
        _, _, ci, cs = self._lookup_tables()
        hit = cs.get(norm_key(term, lower=False)) or ci.get(norm_key(term))
        if hit is None:
            return None
        kind, key = hit
        return self._class_entries[key] if kind == "class" else self._drugs[key]

    def condition(self, concept: str) -> ConditionEntry | None:
        """The condition entry by preferred name."""
        return self._conditions.get(concept)

    def drug(self, generic: str) -> DrugEntry | None:
        """The drug entry by generic name (or a class entry by class name)."""
        return self._drugs.get(generic) or self._class_entries.get(generic)

    def class_entry(self, cls: str) -> DrugEntry | None:
        """The class-mention entry of a drug class (``is_class`` True)."""
        return self._class_entries.get(cls)

    def class_members(self, cls: str) -> frozenset[str]:
        """Generic names in ``cls`` or any of its sub-classes (empty for an unknown class)."""
        return self._members.get(cls, frozenset())

    def drug_classes(self, generic: str) -> tuple[str, ...]:
        """Classes of a drug (closure over class parents); () for unknown names."""
        entry = self._drugs.get(generic) or self._class_entries.get(generic)
        if entry is None:
            found = self.lookup_drug(generic)
            return found.classes if found else ()
        return entry.classes

    @property
    def classes(self) -> tuple[str, ...]:
        """All drug class names."""
        return tuple(self._class_defs)

    def class_parents(self, cls: str) -> tuple[str, ...]:
        return tuple(self._class_defs[cls]["parents"]) if cls in self._class_defs else ()

    def synonyms(self, concept: str) -> tuple[str, ...]:
        """Surface forms of a condition concept, drug generic or drug class, preferred name first."""
        entry: ConditionEntry | DrugEntry | None = (self._conditions.get(concept) or self._drugs.get(concept)
                                                    or self._class_entries.get(concept))
        if entry is None:
            return ()
        name = entry.concept if isinstance(entry, ConditionEntry) else entry.generic
        return tuple(dict.fromkeys((name, *entry.synonyms)))

    def ancestors(self, concept: str) -> frozenset[str]:
        """Everything ``concept`` is-a (transitively), excluding itself.

        Sources: hierarchy.json, generated parents in conditions.jsonl, category
        roots (every cancer is-a "malignancy", every infection is-a "infection"),
        and for drugs their classes.
        """
        cached = self._ancestor_cache.get(concept)
        if cached is not None:
            return cached
        seen: set[str] = set()
        stack = [concept]
        while stack:
            c = stack.pop()
            nexts: list[str] = list(self._is_a.get(c, ()))
            entry = self._conditions.get(c)
            if entry is not None:
                root = self._category_ancestors.get(entry.category)
                if root:
                    nexts.append(root)
            drug = self._drugs.get(c)
            if drug is not None:
                nexts.extend(drug.classes)
            elif c in self._class_defs:
                nexts.extend(self._class_defs[c]["parents"])
            for n in nexts:
                if n not in seen and n != concept:
                    seen.add(n)
                    stack.append(n)
        result = frozenset(seen)
        self._ancestor_cache[concept] = result
        return result

    def is_a_curated(self, concept: str, ancestor: str) -> bool:
        """Like :meth:`is_a` but through curated links only (hierarchy.json, category roots, drug classes).

        The matcher uses this: generated MeSH/ICD parents are broad (covid-19 is-a
        pneumonia) and would exclude patients for the wrong reasons.
        """
        if concept == ancestor:
            return True
        key = (concept, ancestor)
        cached = self._curated_cache.get(key)
        if cached is not None:
            return cached
        seen: set[str] = set()
        stack = [concept]
        found = False
        while stack and not found:
            c = stack.pop()
            nexts = list(self._curated_is_a.get(c, ()))
            entry = self._conditions.get(c)
            if entry is not None and self._category_ancestors.get(entry.category):
                nexts.append(self._category_ancestors[entry.category])
            drug = self._drugs.get(c)
            if drug is not None:
                nexts.extend(drug.classes)
            for n in nexts:
                if n == ancestor:
                    found = True
                    break
                if n not in seen:
                    seen.add(n)
                    stack.append(n)
        if len(self._curated_cache) > 200_000:
            self._curated_cache.clear()
        self._curated_cache[key] = found
        return found

    def is_a(self, concept: str, ancestor: str) -> bool:
        """True when ``concept`` is ``ancestor`` or a (transitive) kind of it.

        ``is_a("lupus nephritis", "systemic lupus erythematosus")``,
        ``is_a("breast cancer", "malignancy")``, ``is_a("rituximab", "anti_cd20")``.
        """
        return concept == ancestor or ancestor in self.ancestors(concept)

    def condition_patterns(self) -> tuple[TermPattern, ...]:
        """Surface forms of conditions, in precedence order (curated first)."""
        return tuple(p for p in self._patterns if p.kind == "condition")

    def drug_patterns(self) -> tuple[TermPattern, ...]:
        """Surface forms of drugs and drug-class mentions, in precedence order (class mentions first)."""
        return tuple(p for p in self._patterns if p.kind != "condition")

    def patterns(self) -> tuple[TermPattern, ...]:
        """All patterns in precedence order."""
        return self._patterns

    def prednisone_equivalence(self) -> Mapping[str, float]:
        """Generic -> mg prednisone per mg (prednisone 1, methylprednisolone 1.25, dexamethasone 6.67 ...)."""
        return self._pred_eq

    def conditions(self) -> Iterator[ConditionEntry]:
        return iter(self._conditions.values())

    def drugs(self) -> Iterator[DrugEntry]:
        return iter(self._drugs.values())

    def stats(self) -> dict[str, int]:
        cond_syn = sum(len(e.synonyms) for e in self._conditions.values())
        drug_syn = sum(len(e.synonyms) for e in self._drugs.values())
        return {"concepts": len(self._conditions), "condition_synonyms": cond_syn, "drugs": len(self._drugs),
                "drug_synonyms": drug_syn, "classes": len(self._class_defs),
                "class_mentions": sum(len(s["pattern_terms"]) for s in self._class_defs.values()),
                "patterns": len(self._patterns)}

    def __repr__(self) -> str:
        s = self.stats()
        return f"<Lexicon {s['concepts']} concepts, {s['drugs']} drugs, {s['classes']} classes>"


# --------------------------------------------------------------------------- loading


def _read_jsonl(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    try:  # one parse for the whole file; per line only to report an error
        records = json.loads("[" + ",".join(line for _, line in numbered) + "]")
    except json.JSONDecodeError:
        records = None
    for k, (lineno, line) in enumerate(numbered):
        where = f"{path.name}:{lineno}"
        if records is None or len(records) != len(numbered):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: invalid JSON ({exc.msg})") from None
        else:
            record = records[k]
        yield record, where


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def load_lexicon(path: Path | str | None = None) -> Lexicon:
    """Read and validate the lexicon in ``path`` (default ``data/lexicons``).

    A missing ``hierarchy.json`` means an empty hierarchy; the other three
    files are required.
    """
    base = Path(path) if path is not None else LEXICON_DIR
    for name in (CONDITIONS_FILE, DRUGS_FILE, CLASSES_FILE):
        if not (base / name).exists():
            raise FileNotFoundError(f"lexicon file {base / name} is missing (run scripts/build_lexicons.py)")
    classes = _read_json(base / CLASSES_FILE)
    hierarchy = _read_json(base / HIERARCHY_FILE) if (base / HIERARCHY_FILE).exists() else {}
    return Lexicon(_read_jsonl(base / CONDITIONS_FILE), _read_jsonl(base / DRUGS_FILE), classes, hierarchy)


def lexicon_from_records(conditions: Iterable[Mapping[str, Any]] = (),
                         drugs: Iterable[Mapping[str, Any]] = (),
                         classes: Mapping[str, Any] | None = None,
                         hierarchy: Mapping[str, Any] | None = None) -> Lexicon:
    """A lexicon from in-memory records (same schema as the files; for tests and tools)."""
    return Lexicon(((dict(r), f"<conditions>[{i}]") for i, r in enumerate(conditions)),
                   ((dict(r), f"<drugs>[{i}]") for i, r in enumerate(drugs)),
                   classes or {}, hierarchy or {}, classes_where="<classes>", hierarchy_where="<hierarchy>")


@functools.lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The lexicon in ``data/lexicons``, loaded once per process.

    From the derived-data cache (:mod:`nlp.cache`) when it holds the lexicon that these files and this code
    build (the key is the pipeline fingerprint), else read from the files; it is saved to the cache, with its
    terminology matcher index, once the pipeline has prepared that index (see :meth:`Lexicon.persist`).
    """
    from nlp import cache

    directory = cache.cache_dir()
    if directory is None:
        return load_lexicon()
    key = cache.source_fingerprint()
    path = directory / f"lexicon-{key}.pickle"
    lexicon = cache.load(path, key)
    if not isinstance(lexicon, Lexicon):
        lexicon = load_lexicon()
    lexicon._cache_file = (path, key)
    return lexicon
