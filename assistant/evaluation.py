"""Benchmark evaluations: criteria-NER slots, criterion verdicts, patient-to-trial ranking.

Every figure computed here is printed (``--json`` for machine-readable output).
Ranking metrics come from ir-measures (pytrec_eval), not hand-written code.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import re
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant.matching.checks import CheckContext, check_criterion
from models.domain import CriterionKind, CriterionText, Verdict

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- halves

HALVES = ("A", "B")


def half_of(key: str) -> str:
    """The fixed half of a patient or topic id: "A" (tune on it, read its errors) or "B" (check only).

    A hash, not an order or a random draw, so the split is the same on every machine and run.
    """
    return HALVES[hashlib.sha256(str(key).encode("utf-8")).digest()[0] % 2]


# --------------------------------------------------------------------------- NER

NER_LABEL_MAP = {"chronic_disease": "condition", "cancer": "condition", "treatment": "treatment",
                 "clinical_variable": "clinical_variable", "bmi": "clinical_variable",
                 "lower_bound": "lower_bound", "upper_bound": "upper_bound", "age": "age", "gender": "gender",
                 "pregnancy": "pregnancy"}
NUMBER_TOKEN = "@NUMBER"
NUMBER_STANDIN = "30"  # a plausible number (age, lab value, duration) in place of the masked one


def unmask_numbers(text: str) -> tuple[str, list[int]]:
    """Text with @NUMBER replaced by a real number, and the map from new offsets to original offsets."""
    out: list[str] = []
    index: list[int] = []
    i = 0
    while i < len(text):
        if text.startswith(NUMBER_TOKEN, i):
            out.append(NUMBER_STANDIN)
            index.extend([i] * len(NUMBER_STANDIN))
            i += len(NUMBER_TOKEN)
        else:
            out.append(text[i])
            index.append(i)
            i += 1
    index.append(len(text))
    return "".join(out), index


def _to_original(start: int, end: int, index: list[int], original: str) -> tuple[int, int]:
    o_start = index[start]
    o_end = index[end - 1] + 1 if end > start else o_start
    if original.startswith(NUMBER_TOKEN, index[end - 1]) and end > start:
        o_end = index[end - 1] + len(NUMBER_TOKEN)
    return o_start, o_end


def read_ner_file(path: Path) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Lines ``start:end:label,...<TAB>text`` with 1-based start and exclusive end."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if "\t" not in line:
                continue
            ann, text = line.split("\t", 1)
            spans = []
            for item in filter(None, ann.split(",")):
                start, end, label = item.split(":", 2)
                spans.append((int(start) - 1, int(end) - 1, label))
            rows.append((text, spans))
    return rows


def _prf(tp_pred: int, n_pred: int, tp_gold: int, n_gold: int) -> dict[str, float]:
    p = tp_pred / n_pred if n_pred else 0.0
    r = tp_gold / n_gold if n_gold else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "n_pred": n_pred, "n_gold": n_gold}


def evaluate_ner(nlp: Any, rows: Sequence[tuple[str, list[tuple[int, int, str]]]]) -> dict[str, Any]:
    from nlp.slots import extract_slots

    unmasked = [unmask_numbers(text) for text, _ in rows]
    counts: dict[str, Counter] = defaultdict(Counter)
    unmapped: Counter = Counter()
    for doc, (_text, index), (original, gold_all) in zip(nlp.pipe((t for t, _ in unmasked), batch_size=256),
                                                         unmasked, rows):
        gold = [(s, e, NER_LABEL_MAP[l]) for s, e, l in gold_all if l in NER_LABEL_MAP]
        ignored = [(s, e) for s, e, l in gold_all if l not in NER_LABEL_MAP]
        unmapped.update(l for _, _, l in gold_all if l not in NER_LABEL_MAP)
        mapped = {p._replace(start=a, end=b) for p in extract_slots(doc)
                  for a, b in [_to_original(p.start, p.end, index, original)]}
        preds = [p for p in mapped
                 if not any(p.start < e and s < p.end for s, e in ignored)
                 or any(p.start < e and s < p.end and l == p.label for s, e, l in gold)]
        for label in {l for *_, l in gold} | {p.label for p in preds}:
            g = [(s, e) for s, e, l in gold if l == label]
            pr = [(p.start, p.end) for p in preds if p.label == label]
            c = counts[label]
            c["n_gold"] += len(g)
            c["n_pred"] += len(pr)
            c["tp_pred"] += sum(any(ps < ge and gs < pe for gs, ge in g) for ps, pe in pr)
            c["tp_gold"] += sum(any(ps < ge and gs < pe for ps, pe in pr) for gs, ge in g)
            c["exact"] += len(set(g) & set(pr))
    total = sum(counts.values(), Counter())
    micro = _prf(total["tp_pred"], total["n_pred"], total["tp_gold"], total["n_gold"])
    exact = _prf(total["exact"], total["n_pred"], total["exact"], total["n_gold"])
    return {
        "n_lines": len(rows), "micro_f1": micro["f1"], "micro_precision": micro["precision"],
        "micro_recall": micro["recall"], "exact_micro_f1": exact["f1"],
        "per_label": {label: {**_prf(c["tp_pred"], c["n_pred"], c["tp_gold"], c["n_gold"]),
                              "exact_f1": _prf(c["exact"], c["n_pred"], c["exact"], c["n_gold"])["f1"]}
                      for label, c in sorted(counts.items())},
        "label_map": NER_LABEL_MAP, "unmapped_gold_labels": dict(unmapped.most_common()),
    }


# --------------------------------------------------------------------------- criteria

INCLUSION_LABELS = {Verdict.MET: "included", Verdict.NOT_MET: "not included",
                    Verdict.UNKNOWN: "not enough information", Verdict.NOT_APPLICABLE: "not applicable"}
EXCLUSION_LABELS = {Verdict.MET: "excluded", Verdict.NOT_MET: "not excluded",
                    Verdict.UNKNOWN: "not enough information", Verdict.NOT_APPLICABLE: "not applicable"}
NOTE_NUMBER_RE = re.compile(r"^\s*\d+\.\s+", re.MULTILINE)


def predict_criteria(runtime: Any, items: Sequence[dict[str, Any]], with_reasons: bool = False) -> list[Any]:
    """TrialGPT label predicted for every (note, criterion) item, in order (with the reason if asked)."""
    from assistant.ingest import study_concepts

    profiles: dict[str, Any] = {}
    texts = [str(it.get("criterion_text") or "") for it in items]
    parsed = runtime.parse_criteria(texts)
    titles = sorted({str(it.get("trial_title") or "") for it in items})
    studied = {t: frozenset(study_concepts(p)) for t, p in zip(titles, runtime.parse_criteria(titles))}
    is_a = runtime.is_a
    out = []
    for item, text, structure in zip(items, texts, parsed):
        note = NOTE_NUMBER_RE.sub("", item.get("note") or "")
        if note not in profiles:
            profiles[note] = runtime.extract(note)
        kind = CriterionKind.EXCLUSION if item.get("criterion_type") == "exclusion" else CriterionKind.INCLUSION
        criterion = CriterionText(kind=kind, position=0, text=text, parsed=structure if text.strip() else None)
        ctx = CheckContext(kind, is_a, study_concepts=studied[str(item.get("trial_title") or "")],
                           category_of=runtime.category_of)
        result = check_criterion(profiles[note], criterion, "eval", ctx)
        label = (EXCLUSION_LABELS if kind is CriterionKind.EXCLUSION else INCLUSION_LABELS)[result.verdict]
        out.append((label, result.reason) if with_reasons else label)
    return out


def evaluate_criteria(runtime: Any, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, per-label figures and confusion on all items, and accuracy per half (by patient id)."""
    gold = [str(it.get("expert_eligibility")) for it in items]
    pred = predict_criteria(runtime, items)
    out = criteria_scores(items, gold, pred)
    out["halves"] = {}
    for half in HALVES:
        idx = [i for i, it in enumerate(items) if half_of(str(it.get("patient_id"))) == half]
        sub = criteria_scores([items[i] for i in idx], [gold[i] for i in idx], [pred[i] for i in idx])
        out["halves"][half] = {"n": sub["n"], "n_patients": len({items[i].get("patient_id") for i in idx}),
                               "accuracy": sub["accuracy"],
                               "recall": {k: v["recall"] for k, v in sub["per_label"].items()}}
    return out


def criteria_errors(runtime: Any, items: Sequence[dict[str, Any]], half: str = "A") -> list[dict[str, Any]]:
    """The items of one half that trialmatch labels wrongly, with its reason (for error analysis)."""
    chosen = [it for it in items if half_of(str(it.get("patient_id"))) == half]
    details = predict_criteria(runtime, chosen, with_reasons=True)
    return [{"patient_id": it.get("patient_id"), "trial_id": it.get("trial_id"), "kind": it.get("criterion_type"),
             "criterion": it.get("criterion_text"), "gold": it.get("expert_eligibility"), "pred": label,
             "reason": reason}
            for it, (label, reason) in zip(chosen, details) if label != it.get("expert_eligibility")]


def criteria_scores(items: Sequence[dict[str, Any]], gold: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = sorted(set(gold) | set(pred))
    p, r, f, support = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    matrix = confusion_matrix(gold, pred, labels=labels)
    gpt4 = [it.get("gpt4_eligibility") for it in items]
    n = len(items)
    return {
        "n": n,
        "accuracy": round(sum(g == q for g, q in zip(gold, pred)) / n, 4) if n else 0.0,
        "per_label": {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                            "f1": round(float(f[i]), 4), "support": int(support[i])} for i, lab in enumerate(labels)},
        "confusion": {"labels": labels, "rows_gold_cols_pred": matrix.tolist()},
        "gpt4_accuracy": round(sum(g == q for g, q in zip(gold, gpt4)) / n, 4) if n else 0.0,
        "n_empty_criterion_text": sum(not str(it.get("criterion_text") or "").strip() for it in items),
    }


# --------------------------------------------------------------------------- ranking


def read_queries(path: Path) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                out[str(row["_id"])] = row["text"]
    return out


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TSV ``query-id corpus-id score`` (header optional); several judgments per query."""
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.strip().split("\t")
            if len(parts) < 3 or parts[2] == "score" or not parts[2].lstrip("-").isdigit():
                continue
            qrels[parts[0]][parts[1]] = int(parts[2])
    return dict(qrels)


def score_run(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    import ir_measures
    from ir_measures import P, R, nDCG

    measures = [nDCG @ 10, P(rel=1) @ 10, R(rel=1) @ 100]
    agg = ir_measures.calc_aggregate(measures, qrels, run)
    return {"ndcg@10": round(float(agg[nDCG @ 10]), 4), "p@10": round(float(agg[P(rel=1) @ 10]), 4),
            "recall@100": round(float(agg[R(rel=1) @ 100]), 4)}


def run_ranking(runtime: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]], pool: str = "all",
                depth: int = 100, ranker: Any = "default") -> dict[str, dict[str, float]]:
    from assistant.matching.filters import Filters

    run: dict[str, dict[str, float]] = {}
    for qid, text in queries.items():
        if qid not in qrels:
            continue
        filters = Filters(nct_ids=frozenset(qrels[qid])) if pool == "judged" else Filters()
        profile = runtime.extract(text)
        result = runtime.match(profile, filters, top_k=depth,
                               candidate_depth=max(depth, int(runtime.settings.CANDIDATE_DEPTH)),
                               ranker=runtime.ranker if ranker == "default" else ranker)
        ranked = [m.nct_id for m in result.matches]
        # below the checked trials, the rest of the retrieval ranking (not returned by the product)
        shown = set(ranked)
        ranked += [nct for nct in result.retrieved if nct not in shown]
        ranked = ranked[:depth]
        run[qid] = {nct: float(depth - i) for i, nct in enumerate(ranked)}
    return run


@contextlib.contextmanager
def corpus_runtime(studies: Iterable[Path], settings_overrides: dict[str, Any] | None = None) -> Iterator[Any]:
    """A runtime over a temporary SQLite database holding the given trial records (and its ingest report)."""
    from assistant.services import Services
    from assistant.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="trialmatch-eval-") as tmp:
        settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp}/eval.sqlite3", "INSTANCE_PATH": tmp,
                                  "AUTOLOAD_BUNDLED": False, **(settings_overrides or {})})
        runtime = Services(settings)
        report = runtime.ingest(list(studies), batch_size=2000)
        try:
            yield runtime, report
        finally:
            runtime.engine.dispose()


def evaluate_ranking(studies: Iterable[Path], queries_path: Path, qrels_path: Path, pool: str = "all",
                     settings_overrides: dict[str, Any] | None = None, ranker: Any = "default") -> dict[str, Any]:
    queries = read_queries(queries_path)
    qrels = read_qrels(qrels_path)
    with corpus_runtime(studies, settings_overrides) as (runtime, report):
        run = run_ranking(runtime, queries, qrels, pool=pool, ranker=ranker)
    judged = {q: j for q, j in qrels.items() if q in run}
    halves = {}
    for half in HALVES:
        sub_run = {q: r for q, r in run.items() if half_of(q) == half}
        if sub_run:
            halves[half] = {"n_queries": len(sub_run), **score_run({q: judged[q] for q in sub_run}, sub_run)}
    return {"n_queries": len(run), **score_run(judged, run), "halves": halves, "pool": pool, "n_trials": report.counts.added
            + report.counts.updated + report.counts.unchanged, "rejected": len(report.rejected)}


# --------------------------------------------------------------------------- trial-level eligibility

EXCLUDED, ELIGIBLE = 1, 2  # TREC CT grades among judged-relevant pairs


def load_trials(paths: Iterable[Path], wanted: set[str], parse: Any) -> dict[str, Any]:
    """The wanted trials that have eligibility criteria, split and parsed (no database needed)."""
    from assistant.ingest import attach_parsed, read_studies, with_criteria
    from models.ctgov import InvalidRecord, parse_study

    records = {}
    for path in paths:
        for item in read_studies(path):
            if item.obj is None:
                continue
            try:
                record = parse_study(item.obj)
            except InvalidRecord:
                continue
            if record.nct_id in wanted and record.nct_id not in records and record.eligibility_text:
                record = with_criteria(record)
                if record.criteria:
                    records[record.nct_id] = record
    parsed = attach_parsed(list(records.values()), parse)
    return {r.nct_id: r for r in parsed}


def eligibility_scores(pairs: Sequence[tuple[str, str, int, bool]]) -> dict[str, Any]:
    """pairs: (topic, nct, grade, predicted_ineligible) -> balanced accuracy over excluded vs eligible."""
    conf = Counter((grade, pred) for _, _, grade, pred in pairs)
    n_ex = conf[(EXCLUDED, True)] + conf[(EXCLUDED, False)]
    n_el = conf[(ELIGIBLE, True)] + conf[(ELIGIBLE, False)]
    rec_ex = conf[(EXCLUDED, True)] / n_ex if n_ex else 0.0
    rec_el = conf[(ELIGIBLE, False)] / n_el if n_el else 0.0
    return {"n": len(pairs), "n_topics": len({t for t, *_ in pairs}),
            "balanced_accuracy": round((rec_ex + rec_el) / 2, 4),
            "recall_eligible": round(rec_el, 4), "recall_excluded": round(rec_ex, 4),
            "confusion": {"excluded": {"ineligible": conf[(EXCLUDED, True)], "eligible_or_possibly":
                                       conf[(EXCLUDED, False)]},
                          "eligible": {"ineligible": conf[(ELIGIBLE, True)], "eligible_or_possibly":
                                       conf[(ELIGIBLE, False)]}}}


def predict_eligibility(runtime: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                        trials: dict[str, Any]) -> list[tuple[str, str, int, bool]]:
    """(topic, nct, grade, predicted ineligible) for every judged-relevant pair whose trial has criteria."""
    from assistant.matching.ranking import evaluate_trial
    from models.domain import TrialLabel

    out = []
    for qid, judged in sorted(qrels.items()):
        pairs = [(nct, g) for nct, g in sorted(judged.items()) if g in (EXCLUDED, ELIGIBLE) and nct in trials]
        if qid not in queries or not pairs:
            continue
        profile = runtime.extract(queries[qid])
        for nct, grade in pairs:
            match = evaluate_trial(profile, trials[nct], 1.0, runtime.is_a, category_of=runtime.category_of,
                                   related=runtime.is_related)
            out.append((qid, nct, grade, match.label is TrialLabel.INELIGIBLE))
    return out


def evaluate_eligibility(runtime: Any, studies: Iterable[Path], queries_path: Path,
                         qrels_path: Path) -> dict[str, Any]:
    """Trial-level triage: trialmatch's ineligible vs eligible/possibly against TREC excluded (1) vs eligible (2)."""
    queries = read_queries(queries_path)
    qrels = read_qrels(qrels_path)
    wanted = {nct for q, j in qrels.items() if q in queries for nct, g in j.items() if g in (EXCLUDED, ELIGIBLE)}
    trials = load_trials(studies, wanted, runtime.parse_criteria)
    pairs = predict_eligibility(runtime, queries, qrels, trials)
    out = eligibility_scores(pairs)
    out["halves"] = {h: eligibility_scores([p for p in pairs if half_of(p[0]) == h]) for h in HALVES}
    return out


# --------------------------------------------------------------------------- CLI


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


def run_cli(args: argparse.Namespace) -> int:
    from assistant.services import Services
    from assistant.settings import load_settings

    if args.what == "ranking":
        data = evaluate_ranking([Path(s) for s in args.studies], Path(args.queries), Path(args.qrels), pool=args.pool,
                                ranker=None if args.no_ranker else "default")
        _print(data, args.json)
        return 0
    runtime = Services(load_settings({"AUTOLOAD_BUNDLED": False, "PRELOAD": False}))
    if args.what == "eligibility":
        data = evaluate_eligibility(runtime, [Path(s) for s in args.studies], Path(args.queries), Path(args.qrels))
        _print(data, args.json)
        return 0
    if args.what == "ner":
        data = evaluate_ner(runtime.pipeline, read_ner_file(Path(args.file)))
    else:
        with open(args.file, encoding="utf-8") as fh:
            items = json.load(fh)
        if not isinstance(items, list):
            print("criteria file must hold a JSON list", file=sys.stderr)
            return 2
        if getattr(args, "errors", None):
            for row in criteria_errors(runtime, items, half=args.errors):
                print(json.dumps(row, ensure_ascii=False))
            return 0
        data = evaluate_criteria(runtime, items)
    _print(data, args.json)
    return 0
