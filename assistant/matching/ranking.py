"""Trial-level evaluation and ranking: criterion verdicts -> label and score. Pure.

A trial's verdicts are its structured fields (age limits, sex) plus every
criterion. Where the inclusion criteria fall into alternative cohorts (NKX019:
lupus nephritis OR membranous nephropathy) the patient needs to fit one cohort:
each cohort is evaluated, the best one is chosen, and the other cohorts'
criteria become ``not_applicable`` with a reason naming the chosen cohort.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from assistant.matching.checks import CheckContext, IsA, Truth, check_criterion, check_requirement
from assistant.matching.policy import ClosedWorldPolicy
from models.domain import (
    Comparator,
    CriterionKind,
    CriterionText,
    CriterionVerdict,
    PatientProfile,
    Requirement,
    Span,
    TrialLabel,
    TrialMatch,
    TrialRecord,
    Verdict,
)

RELEVANCE_WEIGHT = 0.6
ELIGIBILITY_WEIGHT = 0.4


def _field_verdicts(profile: PatientProfile, trial: TrialRecord, is_a: IsA) -> list[CriterionVerdict]:
    """Checks of the trial's structured eligibility fields (age limits, sex)."""
    out = []
    ctx = CheckContext(CriterionKind.INCLUSION, is_a)
    if trial.minimum_age_years is not None or trial.maximum_age_years is not None:
        text = f"Age {trial.minimum_age_raw or 'no minimum'} to {trial.maximum_age_raw or 'no maximum'}"
        req = Requirement(type="age", span=Span(0, len(text), text), value=trial.minimum_age_years,
                          value_high=trial.maximum_age_years, comparator=Comparator.GE)
        out.append(_structured_verdict(profile, trial, "age", text, req, ctx))
    if trial.sex in ("FEMALE", "MALE"):
        text = f"Sex: {trial.sex.lower()} only"
        req = Requirement(type="sex", span=Span(0, len(text), text), sex=trial.sex.lower())
        out.append(_structured_verdict(profile, trial, "sex", text, req, ctx))
    return out


def _structured_verdict(profile: PatientProfile, trial: TrialRecord, tag: str, text: str,
                        req: Requirement, ctx: CheckContext) -> CriterionVerdict:
    finding = check_requirement(profile, req, ctx)
    verdict = {Truth.YES: Verdict.MET, Truth.NO: Verdict.NOT_MET, Truth.UNKNOWN: Verdict.UNKNOWN}[finding.truth]
    reason = f'Inclusion "{text}" (registry field): {verdict.value.replace("_", " ")} — {finding.clause}.'
    if finding.truth is Truth.UNKNOWN and finding.missing:
        reason += f" Missing: {finding.missing}."
    return CriterionVerdict(criterion_id=f"{trial.nct_id}:{tag}", kind=CriterionKind.INCLUSION, text=text,
                            verdict=verdict, reason=reason, evidence=finding.evidence, missing=finding.missing,
                            question_key=finding.key, question=finding.question)


def _with_children(criteria: Sequence[CriterionText], verdicts: list[CriterionVerdict]) -> list[CriterionVerdict]:
    """An unparsed parent item ("as defined by:") takes its verdict from its sub-items."""
    out = list(verdicts)
    for i, crit in enumerate(criteria):
        if out[i].verdict is not Verdict.UNKNOWN or (crit.parsed and crit.parsed.parsed):
            continue
        kids = [out[j] for j, c in enumerate(criteria) if c.kind is crit.kind and c.parent == crit.position]
        if not kids:
            continue
        states = {k.verdict for k in kids}
        if Verdict.MET in states:
            new, why = Verdict.MET, "a sub-item is met"
        elif states <= {Verdict.NOT_MET, Verdict.NOT_APPLICABLE}:
            new, why = Verdict.NOT_MET, "no sub-item is met"
        else:
            continue
        out[i] = replace(out[i], verdict=new, reason=f"{out[i].reason.split(':')[0]}: decided by its sub-items "
                         f"({why}).", missing=None, question_key=None, question=None,
                         evidence=tuple(s for k in kids if k.verdict is new for s in k.evidence))
    return out


def _cohort_score(verdicts: Sequence[CriterionVerdict]) -> tuple[int, int, int]:
    not_met = sum(v.verdict is Verdict.NOT_MET for v in verdicts)
    met = sum(v.verdict is Verdict.MET for v in verdicts)
    unknown = sum(v.verdict is Verdict.UNKNOWN for v in verdicts)
    return (-not_met, met, -unknown)


def _has_cohort_condition(profile: PatientProfile, criteria: Sequence[CriterionText], cohort: str,
                          is_a: IsA) -> bool:
    """Does the patient have a condition that the cohort's inclusion criteria require (its disease)?"""
    wanted = set(required_conditions(criteria, lambda crit: crit.cohort == cohort))
    return any(h == w or is_a(h, w) for h in affirmed_concepts(profile) for w in wanted)


def _apply_cohorts(criteria: Sequence[CriterionText], verdicts: list[CriterionVerdict], profile: PatientProfile,
                   is_a: IsA) -> tuple[list[CriterionVerdict], str | None]:
    """A patient is assessed for the cohort of the disease they have; among several, the one they fit best."""
    cohorts = list(dict.fromkeys(c.cohort for c in criteria if c.cohort and c.kind is CriterionKind.INCLUSION))
    if len(cohorts) < 2:
        return verdicts, None
    by_cohort = {name: [v for c, v in zip(criteria, verdicts) if c.cohort == name
                        and c.kind is CriterionKind.INCLUSION] for name in cohorts}
    disease = {name: _has_cohort_condition(profile, criteria, name, is_a) for name in cohorts}
    best = max(cohorts, key=lambda name: (disease[name], *_cohort_score(by_cohort[name])))
    out = []
    for crit, verdict in zip(criteria, verdicts):
        if crit.cohort and crit.cohort != best and crit.kind is CriterionKind.INCLUSION:
            verdict = replace(verdict, verdict=Verdict.NOT_APPLICABLE, question_key=None, question=None,
                              reason=f"Applies to the {crit.cohort} cohort; the patient is assessed for the "
                                     f"{best} cohort. ({verdict.reason})")
        out.append(verdict)
    return out, best


def label_of(verdicts: Sequence[CriterionVerdict]) -> TrialLabel:
    for v in verdicts:
        if v.kind is CriterionKind.INCLUSION and v.verdict is Verdict.NOT_MET:
            return TrialLabel.INELIGIBLE
        if v.kind is CriterionKind.EXCLUSION and v.verdict is Verdict.MET:
            return TrialLabel.INELIGIBLE
    if any(v.verdict is Verdict.UNKNOWN for v in verdicts):
        return TrialLabel.POSSIBLY_ELIGIBLE
    return TrialLabel.ELIGIBLE


def eligibility_score(verdicts: Sequence[CriterionVerdict]) -> float:
    """Share of applicable criteria in the patient's favour (unknown counts half)."""
    points, total = 0.0, 0
    for v in verdicts:
        if v.verdict is Verdict.NOT_APPLICABLE:
            continue
        total += 1
        favourable = (v.verdict is Verdict.MET) if v.kind is CriterionKind.INCLUSION else (
            v.verdict is Verdict.NOT_MET)
        points += 1.0 if favourable else 0.5 if v.verdict is Verdict.UNKNOWN else 0.0
    return points / total if total else 0.5


def required_conditions(criteria: Iterable[CriterionText],
                        keep: Callable[[CriterionText], bool] = lambda crit: True) -> Iterator[str]:
    """Concepts of the conditions that the (kept) parsed inclusion criteria require the patient to have."""
    return (c for crit in criteria if crit.kind is CriterionKind.INCLUSION and crit.parsed and keep(crit)
            for r in crit.parsed.requirements if r.type == "condition" and r.present for c in r.concepts)


def study_concepts(trial: TrialRecord) -> frozenset[str]:
    """Conditions under study: from the title and conditions, and those the inclusion criteria require."""
    return frozenset(trial.concepts).union(required_conditions(trial.criteria))


def affirmed_concepts(profile: PatientProfile) -> frozenset[str]:
    """Conditions the patient has: not negated, not a relative's, not planned, not merely suspected."""
    return frozenset(f.concept for f in profile.conditions
                     if not (f.context.negated or f.context.family or f.context.hypothetical or f.context.uncertain))


def studied_conditions(trial: TrialRecord, is_a: IsA) -> frozenset[str]:
    """What a trial studies: its title/condition concepts and the conditions its inclusion criteria require, keeping
    only the most specific ones (a broad category such as "malignancy" in "Tumors of the Thyroid" says less than
    "thyroid cancer" next to it and would make every cancer patient look relevant)."""
    # one option of a list ("arthritis, rash or serositis") is no topic
    required = required_conditions(trial.criteria, lambda crit: crit.parsed is not None and crit.parsed.logic != "any")
    study = frozenset(trial.concepts).union(required)
    return frozenset(c for c in study if not any(o != c and is_a(o, c) for o in study))


def related_to(concept: str, others: Iterable[str], is_a: IsA) -> bool:
    """Same concept, or one is a kind of the other."""
    return any(concept == o or is_a(concept, o) or is_a(o, concept) for o in others)


def _topical(profile: PatientProfile, studied: Iterable[str], is_a: IsA) -> tuple[str, ...]:
    studied = tuple(studied)
    return tuple(sorted(c for c in affirmed_concepts(profile) if related_to(c, studied, is_a)))


def topical_concepts(profile: PatientProfile, trial: TrialRecord, is_a: IsA) -> tuple[str, ...]:
    """The patient's affirmed conditions that the trial studies (same concept, or one is a kind of the other)."""
    return _topical(profile, studied_conditions(trial, is_a), is_a)


def evaluate_trial(profile: PatientProfile, trial: TrialRecord, relevance: float, is_a: IsA,
                   max_relevance: float = 1.0, *, policy: ClosedWorldPolicy | None = None,
                   category_of: Callable[[str], str | None] | None = None,
                   related: IsA | None = None) -> TrialMatch:
    """Every verdict of one trial, its label and combined score.

    A trial is ``eligible`` only when it studies one of the patient's affirmed conditions or accepts healthy
    volunteers: passing the few criteria that could be read (often only age) does not make an unrelated trial
    a match. ``related`` is the broad ontology used for "what the trial is about" (all is-a links); ``is_a`` the
    curated one used to check criteria.
    """
    criteria = list(trial.criteria)
    study = study_concepts(trial)
    extra = {"policy": policy} if policy is not None else {}
    if category_of is not None:
        extra["category_of"] = category_of
    verdicts = [check_criterion(profile, c, trial.criterion_id(c),
                                CheckContext(c.kind, is_a, study_concepts=study, **extra))
                for c in criteria]
    verdicts = _with_children(criteria, verdicts)
    verdicts, cohort = _apply_cohorts(criteria, verdicts, profile, is_a)
    all_verdicts = _field_verdicts(profile, trial, is_a) + verdicts
    label = label_of(all_verdicts)
    studied = studied_conditions(trial, related or is_a)
    topical = _topical(profile, studied, related or is_a)
    if label is TrialLabel.ELIGIBLE and not topical and not trial.healthy_volunteers:
        label = TrialLabel.POSSIBLY_ELIGIBLE
    rel = relevance / max_relevance if max_relevance > 0 else 0.0
    score = RELEVANCE_WEIGHT * rel + ELIGIBILITY_WEIGHT * eligibility_score(all_verdicts)
    return TrialMatch(nct_id=trial.nct_id, title=trial.title, score=round(score, 4), relevance=round(relevance, 4),
                      label=label, criteria=tuple(all_verdicts), cohort=cohort,
                      overall_status=trial.overall_status, phases=trial.phases, topical=topical,
                      studied=tuple(sorted(studied)))


def is_unrelated(profile: PatientProfile, match: TrialMatch) -> bool:
    """When both the patient's conditions and the trial's studied conditions are known and none meet, the trial is
    about something else (a lupus trial for a man with lung cancer)."""
    return not match.topical and bool(match.studied) and bool(affirmed_concepts(profile))


def rank_matches(matches: Sequence[TrialMatch]) -> list[TrialMatch]:
    """Trials that study the patient's conditions first: those the patient may join (by score), then those the
    patient fails (with their "why not"); trials about other conditions after all of them."""
    return sorted(matches, key=lambda m: (not m.topical, m.label is TrialLabel.INELIGIBLE, -m.score, m.nct_id))
