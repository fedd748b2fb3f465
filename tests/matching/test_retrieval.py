from __future__ import annotations

import numpy as np
from sklearn.base import clone

from assistant.matching.filters import Filters, Near, build_mask, haversine_km, nearest_site_km, trial_meta
from assistant.matching.index import CorpusIndex
from assistant.matching.retrieval import TfidfRanker
from models.domain import Intervention, Location, TrialRecord


def trial(nct: str, title: str, conditions=(), summary="", status="RECRUITING", phases=(), locations=()):
    return TrialRecord(nct_id=nct, title=title, conditions=tuple(conditions), brief_summary=summary,
                       overall_status=status, phases=tuple(phases), locations=tuple(locations),
                       interventions=(Intervention("placebo"),))


CORPUS = [
    trial("NCT00000001", "CAR-T cells in refractory systemic lupus erythematosus", ["Systemic Lupus Erythematosus"],
          "CD19 CAR T cell therapy for lupus nephritis", phases=["PHASE1"],
          locations=[Location(city="Boston", country="United States", status="RECRUITING", lat=42.36, lon=-71.06)]),
    trial("NCT00000002", "Metformin in type 2 diabetes", ["Type 2 Diabetes Mellitus"], "glucose control",
          status="COMPLETED", phases=["PHASE3"]),
    trial("NCT00000003", "Membranous nephropathy and rituximab", ["Membranous Nephropathy"], "anti-PLA2R",
          phases=["PHASE2"],
          locations=[Location(city="Paris", country="France", status="RECRUITING", lat=48.85, lon=2.35)]),
    trial("NCT00000004", "Asthma inhaler study", ["Asthma"], "inhaled corticosteroids", phases=["PHASE3"]),
]


def test_estimator_contract():
    ranker = TfidfRanker(ngram_range=(1, 1), min_df=1)
    assert not hasattr(ranker, "vectorizer_")
    assert ranker.fit(CORPUS) is ranker
    assert ranker.trial_ids_ == [t.nct_id for t in CORPUS]
    cloned = clone(ranker)
    assert cloned.get_params() == ranker.get_params() and not hasattr(cloned, "matrices_")


def test_search_ranks_the_topical_trial_first():
    ranker = TfidfRanker(min_df=1).fit(CORPUS)
    hits = ranker.search("woman with lupus nephritis refractory to mycophenolate", k=3)
    assert hits.ids[0] == "NCT00000001"
    assert list(hits.scores) == sorted(hits.scores, reverse=True)


def test_weighted_query_parts_and_mask():
    ranker = TfidfRanker(min_df=1).fit(CORPUS)
    mask = np.array([False, True, True, True])
    hits = ranker.search([("kidney disease", 1.0), ("membranous nephropathy", 1.0)], k=4, mask=mask)
    assert hits.ids[0] == "NCT00000003" and "NCT00000001" not in hits.ids


def test_empty_query_returns_nothing():
    ranker = TfidfRanker(min_df=1).fit(CORPUS)
    assert ranker.search("", k=5).ids == []


def test_filters_status_phase_place_and_distance():
    metas = [trial_meta(t) for t in CORPUS]
    assert build_mask(metas, Filters()) is None
    assert list(build_mask(metas, Filters(statuses=("RECRUITING",)))) == [True, False, True, True]
    assert list(build_mask(metas, Filters(phases=("PHASE3",)))) == [False, True, False, True]
    assert list(build_mask(metas, Filters(country="france"))) == [False, False, True, False]
    near_boston = Filters(near=Near(42.0, -71.0, 100))
    assert list(build_mask(metas, near_boston)) == [True, False, False, False]


def test_nearest_site_ignores_closed_sites():
    sites = [Location(status="COMPLETED", lat=0.0, lon=0.0), Location(status="RECRUITING", lat=0.0, lon=1.0)]
    assert round(nearest_site_km(sites, 0.0, 0.0)) == round(haversine_km(0, 0, 0, 1))
    assert nearest_site_km([Location(lat=None, lon=None)], 0, 0) is None


def test_index_round_trip_and_version(tmp_path):
    index = CorpusIndex.build(CORPUS, "v1", TfidfRanker(min_df=1))
    path = tmp_path / "idx.pkl"
    index.save(path)
    loaded = CorpusIndex.load(path)
    assert loaded is not None and loaded.version == "v1"
    assert loaded.search("asthma", 2, Filters()).ids[0] == "NCT00000004"
    path.write_bytes(b"garbage")
    assert CorpusIndex.load(path) is None
