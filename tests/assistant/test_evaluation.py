"""Evaluation halves, trial-level eligibility figures and the learned ranker (own synthetic data)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.evaluation import eligibility_scores, evaluate_eligibility, half_of
from assistant.matching.learned import FEATURES, TrialRanker, load_ranker
from assistant.training import train
from models.domain import TrialLabel, TrialMatch


def test_halves_are_fixed_and_both_used():
    ids = [f"patient-{i}" for i in range(200)]
    halves = [half_of(i) for i in ids]
    assert halves == [half_of(i) for i in ids]  # same on every call and machine
    assert 60 < halves.count("A") < 140


def test_eligibility_scores_balance_the_two_classes():
    pairs = [("t1", "N1", 2, False), ("t1", "N2", 2, True), ("t2", "N3", 1, True), ("t2", "N4", 1, True)]
    out = eligibility_scores(pairs)
    assert out["recall_eligible"] == 0.5 and out["recall_excluded"] == 1.0
    assert out["balanced_accuracy"] == 0.75 and out["n"] == 4 and out["n_topics"] == 2
    assert out["confusion"]["eligible"] == {"ineligible": 1, "eligible_or_possibly": 1}


def test_evaluate_eligibility_on_own_patients(tmp_path, nlp):
    from assistant.services import Services
    from assistant.settings import load_settings
    from tests.helpers import SEEDS

    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps(q) + "\n" for q in [
        {"_id": "p-ok", "text": "44-year-old woman with refractory systemic lupus erythematosus, SLEDAI-2K 11, "
                                "failed mycophenolate and azathioprine."},
        {"_id": "p-cart", "text": "50-year-old woman with systemic lupus erythematosus who received CD19 CAR-T "
                                  "cell therapy last year."}]), encoding="utf-8")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\np-ok\tNCT06897930\t2\np-cart\tNCT06897930\t1\n"
                     "p-ok\tNCT99999999\t2\n", encoding="utf-8")
    rt = Services(load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                                 "INSTANCE_PATH": str(tmp_path), "AUTOLOAD_BUNDLED": False}, environ={}),
                  pipeline=nlp)
    out = evaluate_eligibility(rt, [SEEDS], queries, qrels)
    assert out["n"] == 2  # the unknown trial is not counted
    assert out["recall_excluded"] == 1.0 and out["recall_eligible"] == 1.0
    assert set(out["halves"]) == {"A", "B"}


def test_ranker_estimator_contract_and_json_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, len(FEATURES)))
    y = (X[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(int)
    ranker = TrialRanker(C=0.5)
    assert not hasattr(ranker, "coef_")
    assert ranker.fit(X, y) is ranker
    assert ranker.coef_[0] > 0  # the informative feature gets weight
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps({"model": ranker.to_dict()}), encoding="utf-8")
    loaded = load_ranker(path)
    assert np.allclose(loaded.decision_function(X), ranker.decision_function(X))
    bad = ranker.to_dict() | {"features": ["other"]}
    with pytest.raises(ValueError, match="retrain"):
        TrialRanker.from_dict(bad)


def _topic(set_name: str, qid: str, rng: np.random.Generator) -> dict:
    rows, matches, labels = [], [], []
    for i in range(12):
        relevant = i in (5, 8, 11)  # not the first ids, so ties in the hand-set score do not find them
        row = rng.normal(size=len(FEATURES))
        row[FEATURES.index("cos_title")] += 2.0 if relevant else 0.0
        rows.append(list(row))
        matches.append(TrialMatch(nct_id=f"{qid}-{i}", title="t", score=0.5, relevance=float(rng.random()),
                                  label=TrialLabel.POSSIBLY_ELIGIBLE, criteria=()))
        labels.append(int(relevant))
    return {"set": set_name, "qid": qid, "group": f"{set_name}:{qid}", "rows": rows, "matches": matches,
            "labels": labels, "rest": [m.nct_id for m in matches],
            "qrels": {m.nct_id: 2 for m, lab in zip(matches, labels) if lab}}


def test_training_reports_out_of_fold_figures_per_fold():
    rng = np.random.default_rng(1)
    topics = [_topic("own", f"q{i}", rng) for i in range(10)]
    result = train(topics, folds=5, seed=0)
    report = result["report"]
    assert report["split"] == "GroupKFold by topic" and len(report["per_fold"]) == 5
    own = report["sets"]["own"]
    assert own["out_of_fold"]["ndcg@10"] > own["hand_set_weights"]["ndcg@10"]
    by_half = own["out_of_fold_by_half"]  # every topic counted in exactly one half
    assert set(by_half) <= {"A", "B"} and by_half and all("ndcg@10" in v for v in by_half.values())
    assert set(result["model"]) >= {"features", "coef", "mean", "scale", "intercept"}


def test_ranking_run_and_training_rows_come_from_the_products_own_match(tmp_path, nlp):
    """run_ranking lists the product's ranked trials, then the rest of the retrieval order (MatchResult.retrieved);
    training's topic rows are the same retrieve-and-check step, one feature row per checked trial."""
    from assistant.evaluation import run_ranking
    from assistant.services import Services
    from assistant.settings import load_settings
    from assistant.training import topic_rows
    from tests.helpers import SEEDS

    rt = Services(load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
                                 "INSTANCE_PATH": str(tmp_path), "AUTOLOAD_BUNDLED": False}, environ={}),
                  pipeline=nlp)
    rt.ingest([SEEDS])
    text = "38-year-old woman with lupus nephritis class IV, UPCR 2.4 g/g, failed mycophenolate."
    result = rt.match(text, {"status": []}, top_k=1)
    assert len(result.matches) == 1 and result.matches[0].nct_id in result.retrieved
    assert len(result.retrieved) >= 2  # below top_k the retrieval order is kept
    run = run_ranking(rt, {"q1": text}, {"q1": {"NCT06557265": 2}}, depth=10)
    assert set(run["q1"]) == set(result.retrieved[:10])
    topic = topic_rows(rt, "q1", text, {"NCT06557265": 2})
    assert len(topic["rows"]) == len(topic["matches"]) == len(topic["labels"]) >= 2
    assert all(len(row) == len(FEATURES) for row in topic["rows"])
    assert topic["labels"][[m.nct_id for m in topic["matches"]].index("NCT06557265")] == 1
