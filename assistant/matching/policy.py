"""Closed-world policy: when may silence in a description be read as absence?

The table lives in ``data/rules/closed_world.json`` and is validated on load.
A requirement is read closed-world only when the policy allows it for every
alternative it names; the policy's ``why`` is quoted in the verdict's reason.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from models.domain import Requirement
from nlp.rulefiles import read_json

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "rules" / "closed_world.json"
READINGS = ("assume_absent", "unknown", "by_concept")
IsA = Callable[[str, str], bool]
CategoryOf = Callable[[str], "str | None"]


class PolicyError(ValueError):
    """The closed-world table is malformed (the message names the file and the key)."""


@dataclass(frozen=True, slots=True)
class Reading:
    assume_absent: bool
    why: str


@dataclass(frozen=True, slots=True)
class ClosedWorldPolicy:
    types: tuple[tuple[str, str, str], ...]  # (requirement type, reading, why)
    categories: tuple[tuple[str, str], ...]  # (condition category, reading)
    absent_concepts: tuple[tuple[str, str], ...]  # (concept, why)
    unknown_concepts: tuple[tuple[str, str], ...]
    test_words: frozenset[str]
    test_why: str
    category_whys: tuple[tuple[str, str], ...] = ()  # (condition category, why) where the default does not fit

    def reading(self, req: Requirement, is_a: IsA, category_of: CategoryOf) -> Reading:
        """May silence about this requirement be read as absence?"""
        entry = next((t for t in self.types if t[0] == req.type), None)
        if entry is None:
            return Reading(False, "not covered by the closed-world policy")
        _, reading, why = entry
        if reading != "by_concept":
            return Reading(reading == "assume_absent", why)
        if not req.concepts:
            return Reading(True, why)
        readings = [self._concept_reading(c, is_a, category_of, why) for c in req.concepts]
        unknown = next((r for r in readings if not r.assume_absent), None)
        return unknown or readings[0]

    def _concept_reading(self, concept: str, is_a: IsA, category_of: CategoryOf, default_why: str) -> Reading:
        def hit(table: tuple[tuple[str, str], ...]) -> str | None:
            return next((why for c, why in table if concept == c or is_a(concept, c)), None)

        why = hit(self.unknown_concepts)
        if why:
            return Reading(False, why)
        why = hit(self.absent_concepts)
        if why:
            return Reading(True, why)
        category = category_of(concept) or "condition"
        reading = dict(self.categories).get(category, "unknown")
        why = dict(self.category_whys).get(category, default_why)
        return Reading(reading == "assume_absent",
                       why if reading == "assume_absent" else f"a {category} is not in every description")

    def mentions_test(self, text: str) -> bool:
        """Does the criterion ask for a test result (which silence never establishes)?"""
        return not self.test_words.isdisjoint(_words(text))


def _fail(path: Path, message: str) -> PolicyError:
    return PolicyError(f"{path}: {message}")


def _pairs(path: Path, data: dict[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise _fail(path, f"'{key}' must be a list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("concept"), str) or not isinstance(
                item.get("why"), str):
            raise _fail(path, f"{key}[{i}] needs string 'concept' and 'why'")
        out.append((item["concept"].lower(), item["why"]))
    return tuple(out)


def parse_policy(data: Any, path: Path = DEFAULT_PATH) -> ClosedWorldPolicy:
    if not isinstance(data, dict):
        raise _fail(path, "top level must be an object")
    types = data.get("requirement_types")
    if not isinstance(types, dict) or not types:
        raise _fail(path, "'requirement_types' must be a non-empty object")
    rows = []
    for name, spec in types.items():
        if not isinstance(spec, dict) or spec.get("reading") not in READINGS or not isinstance(spec.get("why"), str):
            raise _fail(path, f"requirement_types.{name} needs 'reading' in {list(READINGS)} and a 'why'")
        rows.append((name, spec["reading"], spec["why"]))
    categories = data.get("condition_categories", {})
    if not isinstance(categories, dict) or any(v not in READINGS[:2] for v in categories.values()):
        raise _fail(path, "condition_categories values must be 'assume_absent' or 'unknown'")
    words = data.get("test_result_words", [])
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise _fail(path, "'test_result_words' must be a list of strings")
    return ClosedWorldPolicy(types=tuple(rows), categories=tuple(categories.items()),
                             absent_concepts=_pairs(path, data, "assume_absent_concepts"),
                             unknown_concepts=_pairs(path, data, "unknown_concepts"),
                             test_words=frozenset(w.lower() for w in words),
                             category_whys=tuple((str(k), str(v)) for k, v in
                                                 (data.get("condition_categories_why") or {}).items()),
                             test_why=str(data.get("test_result_why", "a test result is never established by "
                                                                      "silence")))


@lru_cache(maxsize=65_536)
def _words(text: str) -> frozenset[str]:
    """The lower-case words of a criterion (read once per text)."""
    return frozenset(re.findall(r"[a-z][a-z-]*", text.lower()))


@lru_cache(maxsize=4)
def load_policy(path: str | None = None) -> ClosedWorldPolicy:
    """Read and validate the policy table (cached per path)."""
    p = Path(path) if path else DEFAULT_PATH
    return parse_policy(read_json(p, PolicyError), p)
