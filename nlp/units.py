"""Unit normalization and conversion: the one place that knows unit spellings.

``normalize_unit`` maps a written unit ("mg/dl", "x 10E9/L", "/mm^3", "g/24 h",
"K/µL", "× ULN") to one canonical spelling ("mg/dL", "10^9/L", "/mm3", "g/day",
"10^9/L", "x ULN"). ``convert`` changes a value between two units of the same
quantity, using lab-specific factors where the molar mass matters (creatinine
mg/dL -> umol/L is x88.4) and returns None when the units are not convertible.

Spellings and factors are data (``data/rules/units.json``), read and validated
on first use, never at import.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from nlp.rulefiles import read_json

__all__ = [
    "UnitRulesError",
    "UnitRules",
    "DEFAULT_UNITS_PATH",
    "load_unit_rules",
    "normalize_unit",
    "is_known_unit",
    "is_relative_unit",
    "convert",
    "unit_regex",
    "MULTIPLIER_PATTERN",
]

DEFAULT_UNITS_PATH = Path(__file__).resolve().parent.parent / "data" / "rules" / "units.json"

_TOP_KEYS = frozenset({"description", "relative_units", "text_excluded", "aliases", "conversions"})
_GROUP_KEYS = frozenset({"note", "labs", "units"})

_SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+")
_SPACES = re.compile(r"\s+")
_CARET_NOT_AFTER_TEN = re.compile(r"(?<!10)\^")
# A cleaned multiplier unit: "x10^9/l", "10e9/l", "10*3/ul", "x109/l", "10^3cells/mm3".
_MULT_KEY = re.compile(
    r"(?:x|\*)?10(?:\^|\*\*?|e)?(?P<exp>-?\d{1,2})(?:cells?)?"
    r"(?:(?:/|per)(?P<per>l|ul|mm3|mm\^3|ml|dl|cumm|microliter))?"
)
_PER_SHIFT = {"l": 0, "dl": 1, "ml": 3, "ul": 6, "microliter": 6, "mm3": 6, "mm^3": 6, "cumm": 6}

#: Regex source for multiplier units written in text ("x 10^9/L", "× 10⁹/L", "10E3/uL").
MULTIPLIER_PATTERN = (
    r"(?:[x×*]\s?10\s?(?:\^|\*{1,2}|[eE])?\s?-?\d{1,2}(?![\d.,])"
    r"|10\s?(?:\^|\*{1,2}|[eE])\s?-?\d{1,2}(?![\d.,])"
    r"|(?:[x×*]\s?)?10[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]{1,3})"
    r"(?:\s?(?:cells?\s?)?(?:/|per)\s?(?:L|[uµμ]L|mm\^?3|mm³|mL|dL|cu\s?mm|microliter)(?![A-Za-z]))?"
)


class UnitRulesError(ValueError):
    """The unit rules file is malformed (the message names the file)."""


@dataclass(frozen=True)
class UnitRules:
    """Validated content of units.json."""

    path: str
    alias_to_canonical: dict[str, str]
    surface_forms: tuple[str, ...]
    relative_units: frozenset[str]
    generic_groups: tuple[dict[str, tuple[float, float]], ...]
    lab_groups: dict[str, tuple[dict[str, tuple[float, float]], ...]] = field(default_factory=dict)
    _memo: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def groups_for(self, lab: str | None) -> tuple[dict[str, tuple[float, float]], ...]:
        specific = self.lab_groups.get(lab, ()) if lab else ()
        return specific + self.generic_groups


def _clean(unit: str) -> str:
    """Fold a unit string for lookup: lower case, no spaces, u for µ/μ, ^n for superscripts."""
    s = unit.strip().lower().replace("µ", "u").replace("μ", "u").replace("×", "x")
    s = _SUPERSCRIPT_RUN.sub(lambda m: "^" + m.group().translate(_SUPERSCRIPT_DIGITS), s)
    s = _SPACES.sub("", s).replace("º", "°").rstrip(".")
    return s


def _alias_key(unit: str) -> str:
    return _CARET_NOT_AFTER_TEN.sub("", _clean(unit))


def _fail(path: str, message: str) -> UnitRulesError:
    return UnitRulesError(f"{path}: {message}")


def _parse_factor(path: str, unit: str, raw: Any) -> tuple[float, float]:
    if isinstance(raw, bool):
        raise _fail(path, f"factor of {unit!r} must be a number or [scale, offset]")
    if isinstance(raw, (int, float)) and raw > 0:
        return float(raw), 0.0
    if (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw)
        and raw[0] > 0
    ):
        return float(raw[0]), float(raw[1])
    raise _fail(path, f"factor of {unit!r} must be a positive number or [scale, offset], got {raw!r}")


def _parse_group(path: str, index: int, group: Any) -> tuple[tuple[str, ...], dict[str, tuple[float, float]]]:
    if not isinstance(group, dict):
        raise _fail(path, f"conversions[{index}] must be an object")
    unknown = sorted(set(group) - _GROUP_KEYS)
    if unknown:
        raise _fail(path, f"conversions[{index}] has unknown keys {unknown} (allowed: {sorted(_GROUP_KEYS)})")
    units = group.get("units")
    if not isinstance(units, dict) or len(units) < 1:
        raise _fail(path, f"conversions[{index}].units must be a non-empty object")
    labs = group.get("labs", [])
    if not isinstance(labs, list) or not all(isinstance(x, str) for x in labs):
        raise _fail(path, f"conversions[{index}].labs must be a list of strings")
    return tuple(labs), {u: _parse_factor(path, u, f) for u, f in units.items()}


def _normalize_with(aliases: dict[str, str], unit: str) -> str:
    """Canonical spelling of ``unit`` against an alias table."""
    cleaned = _clean(unit)
    mult = _MULT_KEY.fullmatch(cleaned)
    if mult:
        return _multiplier_unit(int(mult.group("exp")), mult.group("per"))
    return aliases.get(_CARET_NOT_AFTER_TEN.sub("", cleaned), unit.strip())


def _multiplier_unit(exp: int, per: str | None) -> str:
    if per is None:
        # "x 10^9" alone means per litre; "x 10^3" and "x 10^6" are per microlitre counts.
        shift = 6 if exp in (3, 6) else 0
    else:
        shift = _PER_SHIFT[per]
    return f"10^{exp + shift}/L"


def _parse_rules(path: str, data: Any) -> UnitRules:
    if not isinstance(data, dict):
        raise _fail(path, "top level must be an object")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise _fail(path, f"unknown keys {unknown} (allowed: {sorted(_TOP_KEYS)})")
    aliases = data.get("aliases")
    if not isinstance(aliases, dict):
        raise _fail(path, "'aliases' must be an object of canonical -> [spellings]")
    table: dict[str, str] = {}
    surfaces: list[str] = []
    for canonical, spellings in aliases.items():
        if not isinstance(spellings, list) or not all(isinstance(s, str) and s.strip() for s in spellings):
            raise _fail(path, f"aliases[{canonical!r}] must be a list of non-empty strings")
        for spelling in [canonical, *spellings]:
            table.setdefault(_alias_key(spelling), canonical)
            surfaces.append(spelling)
    excluded = data.get("text_excluded", [])
    if not isinstance(excluded, list) or not all(isinstance(x, str) for x in excluded):
        raise _fail(path, "'text_excluded' must be a list of strings")
    surfaces = [s for s in surfaces if s not in set(excluded)]
    relative = data.get("relative_units", [])
    if not isinstance(relative, list) or not all(isinstance(x, str) for x in relative):
        raise _fail(path, "'relative_units' must be a list of strings")
    generic: list[dict[str, tuple[float, float]]] = []
    by_lab: dict[str, list[dict[str, tuple[float, float]]]] = {}
    for index, group in enumerate(data.get("conversions", [])):
        labs, factors = _parse_group(path, index, group)
        factors = {_normalize_with(table, u): f for u, f in factors.items()}
        if labs:
            for lab in labs:
                by_lab.setdefault(lab, []).append(factors)
        else:
            generic.append(factors)
    return UnitRules(
        path=path,
        alias_to_canonical=table,
        surface_forms=tuple(dict.fromkeys(surfaces)),
        relative_units=frozenset(_normalize_with(table, u) for u in relative),
        generic_groups=tuple(generic),
        lab_groups={lab: tuple(groups) for lab, groups in by_lab.items()},
    )


@lru_cache(maxsize=8)
def load_unit_rules(path: str | Path | None = None) -> UnitRules:
    """Read and validate units.json (cached per path). Raises UnitRulesError naming the file."""
    resolved = str(Path(path) if path is not None else DEFAULT_UNITS_PATH)
    return _parse_rules(resolved, read_json(resolved, UnitRulesError, "unit rules"))


def normalize_unit(unit: str | None, rules: UnitRules | None = None) -> str | None:
    """Canonical spelling of a unit ("mg/dl" -> "mg/dL", "x10E9/L" -> "10^9/L").

    Unknown units come back stripped but otherwise unchanged; None stays None.
    """
    if unit is None:
        return None
    if not unit.strip():
        return ""
    rules = rules or load_unit_rules()
    found = rules._memo.get(unit)
    if found is None:
        found = _normalize_with(rules.alias_to_canonical, unit)
        if len(rules._memo) < 4096:  # bounded: units are a small vocabulary
            rules._memo[unit] = found
    return found


def is_known_unit(unit: str | None, rules: UnitRules | None = None) -> bool:
    """True when ``unit`` is a spelling listed in the rules or a 10^n multiplier unit."""
    if not unit or not unit.strip():
        return False
    rules = rules or load_unit_rules()
    cleaned = _clean(unit)
    if _MULT_KEY.fullmatch(cleaned):
        return True
    return _CARET_NOT_AFTER_TEN.sub("", cleaned) in rules.alias_to_canonical


def is_relative_unit(unit: str | None, rules: UnitRules | None = None) -> bool:
    """True for units that only make sense against a reference ("x ULN", "titer")."""
    rules = rules or load_unit_rules()
    return normalize_unit(unit, rules) in rules.relative_units


def convert(
    value: float | None,
    from_unit: str | None,
    to_unit: str | None,
    lab: str | None = None,
    rules: UnitRules | None = None,
) -> float | None:
    """Convert ``value`` from one unit to another; None when not convertible.

    Lab-specific groups (creatinine, hemoglobin, upcr, ...) are tried before the
    generic ones, so ``convert(1.4, "mg/dL", "umol/L", lab="creatinine")`` gives
    123.76 while the same call without ``lab`` returns None.
    """
    if value is None or not from_unit or not to_unit:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    rules = rules or load_unit_rules()
    source, target = normalize_unit(from_unit, rules), normalize_unit(to_unit, rules)
    if source == target:
        return number
    for group in rules.groups_for(lab):
        if source in group and target in group:
            (scale_from, offset_from), (scale_to, offset_to) = group[source], group[target]
            base = (number - offset_from) / scale_from
            result = base * scale_to + offset_to
            return round(result, 9) if math.isfinite(result) else None
    return None


def _loose_pattern(spelling: str) -> str:
    """Regex for a unit spelling that tolerates spaces, µ/μ/u, superscripts and ^."""
    out: list[str] = []
    for index, ch in enumerate(spelling):
        prev = spelling[index - 1] if index else ""
        nxt = spelling[index + 1] if index + 1 < len(spelling) else ""
        if ch == " ":
            out.append(r"\s?")
        elif ch == "/":
            out.append(r"\s?/\s?")
        elif ch == "-":
            out.append(r"[\s-]?")
        elif ch == "^":
            continue
        elif ch in "23" and prev in ("m", "^") and not nxt.isdigit():
            out.append(r"(?:\^?" + ch + ("|²)" if ch == "2" else "|³)"))
        elif ch == "u" and (index == 0 or prev in "/ ") and nxt.isalpha():
            out.append("[uµμ]")
        elif ch == "x" and index == 0 and nxt in (" ", "U", "L", "t"):
            out.append("[x×*]")
        elif ch in "°º":
            out.append("[°º]")
        else:
            out.append(re.escape(ch))
    tail = r"(?![A-Za-z0-9])" if spelling[-1].isalnum() else ""
    return "".join(out) + tail


@lru_cache(maxsize=8)
def _unit_regex_for(path: str) -> re.Pattern[str]:
    rules = load_unit_rules(path)
    spellings = sorted(set(rules.surface_forms), key=lambda s: (-len(s), s))
    alternatives = [MULTIPLIER_PATTERN] + [_loose_pattern(s) for s in spellings]
    return re.compile("(?:" + "|".join(alternatives) + ")", re.IGNORECASE)


def unit_regex(rules: UnitRules | None = None) -> re.Pattern[str]:
    """Compiled regex matching one written unit at a position (use ``.match``)."""
    return _unit_regex_for((rules or load_unit_rules()).path)
