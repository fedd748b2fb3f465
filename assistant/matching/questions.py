"""Follow-up questions from the unknown verdicts of the relevant trials. Pure (the template file is read once).

A question is keyed by the fact it asks for ("lab:upcr"). Its weight is the number of verdicts its answer could
change, each counted 1/(rank+1) by the rank of its trial, over the *relevant* trials only (those that study one of
the patient's conditions, ``TrialMatch.topical``) that are not already ineligible; confirming a closed-world
assumption counts ``ASSUMED_WEIGHT``. So the first question is the one that settles the most near the top of the
list, and when the top trial changes the questions still come from trials about the patient's disease.
Administrative criteria every trial shares (consent, the visit schedule, contraception) are never asked.
Wording comes from ``data/rules/questions.json`` (plain language, the patient's pronoun when the sex is known).
"""
from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.matching.checks import LAB_TITLES
from models.domain import CriterionVerdict, Question, TrialLabel, TrialMatch, Verdict
from nlp.rulefiles import read_json

MAX_QUESTIONS = 3
ASSUMED_WEIGHT = 0.25
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "rules" / "questions.json"
SECTIONS = frozenset({"_comment", "administrative", "subjects", "templates"})
KINDS = frozenset({"condition", "condition_date", "condition_detail", "condition_activity", "condition_form",
                   "therapy", "therapy_date", "therapy_count", "dose", "stable", "reaction", "lab", "age", "sex",
                   "healthy", "consent"})
PLACEHOLDERS = frozenset({"subject", "pronoun", "Pronoun", "possessive", "Possessive"})
MAX_LISTED = 8  # alternatives named in a question ("any of these: a, b, c, d"); more end in ", ..."
OR_LISTED = 3  # up to this many read "a or b or c"


class QuestionTemplateError(ValueError):
    """The question template file is malformed (the message names the file and the key)."""


@dataclass(frozen=True, slots=True)
class QuestionTemplates:
    templates: dict[str, dict[str, str]]
    subjects: dict[str, str]
    administrative: frozenset[str]

    def is_administrative(self, key: str) -> bool:
        """Asked alike by every trial: the key itself, or every alternative it names, is listed."""
        if key in self.administrative:
            return True
        kind, _, what = key.partition(":")
        return bool(what) and all(f"{kind}:{c}" in self.administrative for c in what.split("|"))

    def render(self, key: str, sex: str | None = None, fallback: str | None = None) -> str:
        """The plain-language question for ``key``; ``fallback`` (the check's own wording) for an unknown kind."""
        kind, _, what = key.partition(":")
        table = self.templates.get(kind)
        if table is None:
            return fallback or f"Can you tell me more about {what.replace('_', ' ') or kind}?"
        alternatives = what.split("|") if what else []
        template = table.get(what) or next((table[c] for c in alternatives if c in table), table["_default"])
        pronoun, possessive = {"female": ("she", "her"), "male": ("he", "his")}.get(
            sex or "", ("the patient", "the patient's"))
        text = template.format(subject=self.subject(kind, alternatives), pronoun=pronoun, possessive=possessive,
                               Pronoun=pronoun[0].upper() + pronoun[1:],
                               Possessive=possessive[0].upper() + possessive[1:])
        return text[0].upper() + text[1:]

    def subject(self, kind: str, alternatives: Sequence[str]) -> str:
        if kind == "lab":
            words = [LAB_TITLES.get(c, c.replace("_", " ")) for c in alternatives]
        elif kind == "therapy_count":  # "Which biologic treatments ...": the class names as adjectives
            words = [c.replace("_", " ") for c in alternatives]
        else:
            words = [self.subjects.get(c, c.replace("_", " ")) for c in alternatives]
        words = list(dict.fromkeys(words))
        if len(words) > OR_LISTED:
            return "any of these: " + ", ".join(words[:MAX_LISTED]) + (", ..." if len(words) > MAX_LISTED else "")
        return " or ".join(words) if words else "this"


def _fail(path: Path, message: str) -> QuestionTemplateError:
    return QuestionTemplateError(f"{path}: {message}")


def _check_template(path: Path, where: str, text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _fail(path, f"{where} must be a non-empty string")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise _fail(path, f"{where}: {exc}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        raise _fail(path, f"{where}: unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(PLACEHOLDERS)}")
    return text


def parse_templates(data: Any, path: Path = DEFAULT_PATH) -> QuestionTemplates:
    if not isinstance(data, dict):
        raise _fail(path, "top level must be an object")
    extra = set(data) - SECTIONS
    if extra:
        raise _fail(path, f"unknown section(s) {sorted(extra)}; allowed: {sorted(SECTIONS)}")
    raw = data.get("templates")
    if not isinstance(raw, dict) or not raw:
        raise _fail(path, "'templates' must be a non-empty object")
    templates: dict[str, dict[str, str]] = {}
    for kind, table in raw.items():
        if kind not in KINDS:
            raise _fail(path, f"templates.{kind}: unknown question kind; known: {sorted(KINDS)}")
        if not isinstance(table, dict) or "_default" not in table:
            raise _fail(path, f"templates.{kind} must be an object with a '_default' template")
        templates[kind] = {c: _check_template(path, f"templates.{kind}.{c}", t) for c, t in table.items()}
    subjects = data.get("subjects", {})
    if not isinstance(subjects, dict) or not all(isinstance(v, str) and v for v in subjects.values()):
        raise _fail(path, "'subjects' must map concepts to non-empty strings")
    admin = data.get("administrative", [])
    if not isinstance(admin, list) or not all(isinstance(k, str) and k for k in admin):
        raise _fail(path, "'administrative' must be a list of question keys")
    bad = [k for k in admin if k.partition(":")[0] not in KINDS]
    if bad:
        raise _fail(path, f"administrative: unknown question kind in {bad}")
    return QuestionTemplates(templates, dict(subjects), frozenset(admin))


@lru_cache(maxsize=4)
def load_templates(path: str | None = None) -> QuestionTemplates:
    """Read and validate the template file (cached per path)."""
    p = Path(path) if path else DEFAULT_PATH
    return parse_templates(read_json(p, QuestionTemplateError), p)


def _askable(v: CriterionVerdict, templates: QuestionTemplates) -> bool:
    return bool(v.question_key) and (v.verdict is Verdict.UNKNOWN or v.assumed) and not \
        templates.is_administrative(v.question_key or "")


def trial_questions(match: TrialMatch, limit: int = MAX_QUESTIONS, sex: str | None = None,
                    templates: QuestionTemplates | None = None) -> tuple[Question, ...]:
    """The questions one trial's unknown (or assumed) verdicts raise, most verdicts first."""
    templates = templates or load_templates()
    grouped: dict[str, Question] = {}
    for v in match.criteria:
        if not _askable(v, templates):
            continue
        key = v.question_key or ""
        weight = 1.0 if v.verdict is Verdict.UNKNOWN else ASSUMED_WEIGHT  # confirming an assumption counts less
        q = grouped.get(key)
        if q is None:
            grouped[key] = Question(key, templates.render(key, sex, v.question), (v.criterion_id,),
                                    (match.nct_id,), weight)
        else:
            grouped[key] = replace(q, criterion_ids=q.criterion_ids + (v.criterion_id,), weight=q.weight + weight)
    ranked = sorted(grouped.values(), key=lambda q: (-q.weight, q.key))
    return tuple(ranked[:limit])


def choose_questions(matches: Sequence[TrialMatch], limit: int = MAX_QUESTIONS,
                     asked: frozenset[str] = frozenset(), sex: str | None = None,
                     templates: QuestionTemplates | None = None) -> tuple[Question, ...]:
    """The few questions whose answers could change the most verdicts of the relevant trials, by rank."""
    templates = templates or load_templates()
    pooled: dict[str, Question] = {}
    for rank, match in enumerate(matches):
        if match.label is TrialLabel.INELIGIBLE or not match.topical:
            continue
        for q in trial_questions(match, limit=100, sex=sex, templates=templates):
            if q.key in asked:
                continue
            weight = q.weight / (rank + 1)
            have = pooled.get(q.key)
            pooled[q.key] = replace(q, weight=weight) if have is None else replace(
                have, criterion_ids=have.criterion_ids + q.criterion_ids, nct_ids=have.nct_ids + q.nct_ids,
                weight=have.weight + weight)
    ranked = sorted(pooled.values(), key=lambda q: (-q.weight, q.key))
    return tuple(replace(q, weight=round(q.weight, 3)) for q in ranked[:limit])
