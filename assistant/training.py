"""`trialmatch train ranker`: fit the learned ranker on judged topics, reproducibly.

For every topic the product's own path runs (extraction, retrieval, criterion checks of the best
CHECK_DEPTH trials); each checked trial becomes a feature row (assistant.matching.learned.FEATURES) labelled
relevant when judged 1 or 2. GroupKFold by topic gives out-of-fold scores (each topic ranked by a model that did
not see it): NDCG@10 with the learned scores against the hand-set combination, per fold and overall. The final
model is fitted on all rows and written as JSON with its training report.
"""
from __future__ import annotations

import argparse
import json
import logging
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np

from assistant.evaluation import HALVES, corpus_runtime, half_of, read_qrels, read_queries, score_run

logger = logging.getLogger(__name__)
DEPTH = 100


def topic_rows(runtime: Any, qid: str, text: str, judged: dict[str, int]) -> dict[str, Any]:
    """Feature rows of the checked trials of one topic (the product's own retrieve-and-check step), the
    retrieval order below them, labels."""
    from assistant.matching.filters import Filters
    from assistant.service import check_candidates, feature_rows

    snapshot = runtime.ensure_snapshot()
    profile = runtime.extract(text)
    found = check_candidates(profile, snapshot=snapshot, is_a=runtime.is_a, synonyms=runtime.lexicon.synonyms,
                             filters=Filters(), candidate_depth=DEPTH, check_depth=int(runtime.settings.CHECK_DEPTH),
                             category_of=runtime.category_of, related=runtime.is_related)
    return {"qid": qid, "matches": found.matches, "rows": feature_rows(profile, found, snapshot, runtime.is_related),
            "rest": list(found.hits.ids), "labels": [int(judged.get(m.nct_id, 0) >= 1) for m in found.matches]}


def ranked_run(topic: dict[str, Any], scores: list[float]) -> dict[str, float]:
    """The product's order (tiers, then score) of the checked trials, the retrieval order below them."""
    from dataclasses import replace

    from assistant.matching.ranking import rank_matches

    matches = [replace(m, score=float(s)) for m, s in zip(topic["matches"], scores)]
    ranked = [m.nct_id for m in rank_matches(matches)]
    ranked += [n for n in topic["rest"] if n not in set(ranked)]
    return {nct: float(DEPTH - i) for i, nct in enumerate(ranked[:DEPTH])}


def collect(sets: list[tuple[str, list[Path], Path, Path]], halves: dict[str, str]) -> list[dict[str, Any]]:
    topics = []
    for name, studies, queries_path, qrels_path in sets:
        queries, qrels = read_queries(queries_path), read_qrels(qrels_path)
        with corpus_runtime(studies) as (runtime, _):
            for qid in sorted(q for q in queries if q in qrels):
                if name in halves and half_of(qid) != halves[name]:
                    continue
                topic = topic_rows(runtime, qid, queries[qid], qrels[qid])
                topic.update(set=name, group=f"{name}:{qid}", qrels=qrels[qid])
                topics.append(topic)
        logger.info("%s: %d topics", name, sum(t["set"] == name for t in topics))
    return topics


def train(topics: list[dict[str, Any]], folds: int = 5, seed: int = 0) -> dict[str, Any]:
    from sklearn.model_selection import GroupKFold

    from assistant.matching.learned import FEATURES, TrialRanker

    random.seed(seed)
    np.random.seed(seed)
    X = np.asarray([r for t in topics for r in t["rows"]], dtype=float).reshape(-1, len(FEATURES))
    y = np.asarray([lab for t in topics for lab in t["labels"]])
    groups = np.asarray([t["group"] for t in topics for _ in t["rows"]])
    oof = np.zeros(len(y))
    fold_of: dict[str, int] = {}
    for k, (tr, te) in enumerate(GroupKFold(n_splits=folds).split(X, y, groups)):
        model = TrialRanker(random_state=seed).fit(X[tr], y[tr])
        oof[te] = model.decision_function(X[te])
        fold_of.update({g: k for g in set(groups[te])})
    start, report_sets, fold_rows = 0, {}, []
    runs_oof: dict[str, dict[str, dict[str, float]]] = {}
    runs_base: dict[str, dict[str, dict[str, float]]] = {}
    for t in topics:
        n = len(t["rows"])
        runs_oof.setdefault(t["set"], {})[t["qid"]] = ranked_run(t, list(oof[start:start + n]))
        runs_base.setdefault(t["set"], {})[t["qid"]] = ranked_run(t, [m.score for m in t["matches"]])
        start += n
    for name in runs_oof:
        qrels = {t["qid"]: t["qrels"] for t in topics if t["set"] == name}
        report_sets[name] = {"n_topics": len(qrels), "out_of_fold": score_run(qrels, runs_oof[name]),
                             "hand_set_weights": score_run(qrels, runs_base[name]),
                             "out_of_fold_by_half": {  # the topics of each half (assistant.evaluation.half_of)
                                 half: score_run({q: qrels[q] for q in qs}, {q: runs_oof[name][q] for q in qs})
                                 for half in HALVES
                                 if (qs := [q for q in runs_oof[name] if half_of(q) == half])}}
        for k in range(folds):
            qs = [t["qid"] for t in topics if t["set"] == name and fold_of.get(t["group"]) == k]
            if qs:
                fold_rows.append({"set": name, "fold": k, "n_topics": len(qs),
                                  "ndcg@10_out_of_fold": score_run({q: qrels[q] for q in qs},
                                                                   {q: runs_oof[name][q] for q in qs})["ndcg@10"],
                                  "ndcg@10_hand_set": score_run({q: qrels[q] for q in qs},
                                                                {q: runs_base[name][q] for q in qs})["ndcg@10"]})
    final = TrialRanker(random_state=seed).fit(X, y)
    return {"model": final.to_dict(),
            "report": {"features": list(FEATURES), "n_rows": int(len(y)), "n_relevant": int(y.sum()),
                       "folds": folds, "seed": seed, "split": "GroupKFold by topic", "sets": report_sets,
                       "per_fold": fold_rows,
                       "coefficients": dict(zip(FEATURES, [round(float(c), 4) for c in final.coef_]))}}


def run_cli(args: argparse.Namespace) -> int:
    sets = [(name, [Path(p) for p in studies.split(",")], Path(queries), Path(qrels))
            for name, studies, queries, qrels in args.set]
    halves = dict(h.split("=", 1) for h in args.half)
    cache = Path(args.features_cache) if args.features_cache else None
    if cache is not None and cache.exists():
        with open(cache, "rb") as fh:
            topics = pickle.load(fh)  # noqa: S301 - our own cache file, written below
    else:
        topics = collect(sets, halves)
        if cache is not None:
            with open(cache, "wb") as fh:
                pickle.dump(topics, fh)
    result = train(topics, folds=args.folds, seed=args.seed)
    result["report"]["training_sets"] = [{"name": n, "studies": [p.name for p in s], "queries": q.name,
                                          "qrels": r.name, "half": halves.get(n, "all")} for n, s, q, r in sets]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result["report"], indent=2))
    return 0
