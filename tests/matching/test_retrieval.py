from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from assistant.matching import retrieval
from assistant.matching.filters import Filters, Near, build_mask, haversine_km, nearest_site_km, trial_meta
from assistant.matching.index import CorpusIndex
from assistant.matching.retrieval import DEFAULT_FIELD_WEIGHTS, TfidfRanker, trial_fields
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
    assert not hasattr(ranker, "vocabulary_")
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


# --------------------------------------------------------------------------- fast scoring == reference formula

FIELD_CORPUS = CORPUS + [
    trial("NCT00000005", "Rituximab maintenance in lupus nephritis", ["Lupus Nephritis", "Systemic Lupus Erythematosus"],
          "B cell depletion after induction therapy for proliferative lupus nephritis"),
    trial("NCT00000006", "Inhaled corticosteroids in severe asthma", ["Asthma", "Severe Asthma"],
          "budesonide and formoterol in adults with severe asthma exacerbations"),
    trial("NCT00000007", "Metformin and kidney disease progression", ["Diabetic Nephropathy"],
          "metformin in type 2 diabetes with chronic kidney disease"),
    trial("NCT00000008", "Heart failure with preserved ejection fraction", ["Heart Failure"],
          "exercise training in older adults with heart failure"),
]
QUERIES = ["woman with lupus nephritis refractory to cyclophosphamide and rituximab",
           "adult with severe asthma on inhaled corticosteroids",
           [("type 2 diabetes", 1.0), ("chronic kidney disease metformin", 0.5)]]


def _dense_fields(ranker: TfidfRanker) -> dict[str, np.ndarray]:
    """Each field's L2-normalised TF-IDF rows, computed from the trial texts in plain numpy."""
    out = {}
    for name in DEFAULT_FIELD_WEIGHTS:
        x = ranker.transform([trial_fields(t)[name] for t in FIELD_CORPUS]).toarray().astype(np.float64)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        out[name] = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return out


def _dense_query(ranker: TfidfRanker, query) -> np.ndarray:
    parts = [(query, 1.0)] if isinstance(query, str) else query
    q = sum(w * _unit(ranker.transform([text]).toarray().ravel().astype(np.float64)) for text, w in parts)
    return _unit(q)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def _reference(fields: dict[str, np.ndarray], q: np.ndarray) -> np.ndarray:
    """Per-field cosines summed with the field weights."""
    return sum(w * (fields[name] @ q) for name, w in DEFAULT_FIELD_WEIGHTS.items())


def _reference_centroid(fields: dict[str, np.ndarray], top: np.ndarray) -> np.ndarray:
    return _unit(sum(w * fields[name][top].sum(axis=0) for name, w in DEFAULT_FIELD_WEIGHTS.items()))


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    assert scores[order[n - 1]] - scores[order[n]] > 1e-4  # the feedback documents are not a tie
    return order[:n]


def test_scoring_equals_the_per_field_reference_without_feedback():
    ranker = TfidfRanker(min_df=1, feedback_docs=0).fit(FIELD_CORPUS)
    fields = _dense_fields(ranker)
    for query in QUERIES:
        expected = _reference(fields, _dense_query(ranker, query))
        np.testing.assert_allclose(ranker.score_all(query), expected, atol=1e-5)


def test_scoring_equals_the_reference_with_unbounded_feedback():
    for terms in (None, 10**6):
        ranker = TfidfRanker(min_df=1, feedback_docs=2, feedback_weight=0.3, feedback_terms=terms).fit(FIELD_CORPUS)
        fields = _dense_fields(ranker)
        for query in QUERIES:
            q = _dense_query(ranker, query)
            top = _top(_reference(fields, q), 2)
            expanded = _unit(q + 0.3 * _reference_centroid(fields, top))
            np.testing.assert_allclose(ranker.score_all(query), _reference(fields, expanded), atol=1e-5)


def test_feedback_keeps_the_heaviest_centroid_terms():
    ranker = TfidfRanker(min_df=1, feedback_docs=2, feedback_terms=5).fit(FIELD_CORPUS)
    fields = _dense_fields(ranker)
    query = QUERIES[0]
    q = _dense_query(ranker, query)
    top = _top(_reference(fields, q), 2)
    full = _reference_centroid(fields, top)
    bounded = ranker._centroid(top)
    assert bounded.nnz == 5
    np.testing.assert_allclose(np.sort(bounded.data), np.sort(full[full > 0])[-5:], atol=1e-6)
    np.testing.assert_allclose(bounded.toarray().ravel(), full * (bounded.toarray().ravel() > 0), atol=1e-6)
    expanded = _unit(q + ranker.feedback_weight * bounded.toarray().ravel())
    np.testing.assert_allclose(ranker.score_all(query), _reference(fields, expanded), atol=1e-5)


def test_field_scores_are_the_per_field_cosines():
    ranker = TfidfRanker(min_df=1).fit(FIELD_CORPUS)
    fields = _dense_fields(ranker)
    ids = ["NCT00000005", "NCT99999999", "NCT00000001"]
    for query in QUERIES:
        q = _dense_query(ranker, query)
        got = ranker.field_scores(query, ids)
        assert set(got) == set(DEFAULT_FIELD_WEIGHTS)
        for name in DEFAULT_FIELD_WEIGHTS:
            np.testing.assert_allclose(got[name], [fields[name][4] @ q, 0.0, fields[name][0] @ q], atol=1e-5)


# --------------------------------------------------------------------------- memory-bounded fit == TfidfVectorizer

# Accents, a Greek final sigma, stop words, repeated words and an empty field: the tokenisation must be the
# vectorizer's own, including bigrams across the joined fields.
ODD_CORPUS = FIELD_CORPUS + [
    trial("NCT00000009", "Étude de la SCLÉROSE en plaques ΟΔΟΣ", ["Sclérose en plaques", "Multiple Sclerosis"],
          "the the lupus lupus lupus nephritis nephritis and asthma asthma"),
    trial("NCT00000010", "Asthma", [], ""),
]


def _plain(ranker: TfidfRanker, corpus) -> tuple[TfidfVectorizer, dict[str, object]]:
    """What the retriever fitted before: ``TfidfVectorizer.fit`` on the joined fields, then each field
    transformed, normalised and summed with the weights (scipy CSR arithmetic, float32)."""
    weights = ranker._weights()
    columns = {name: [trial_fields(t).get(name, "") for t in corpus] for name in weights}
    n = len(corpus)
    vec = TfidfVectorizer(ngram_range=ranker.ngram_range, min_df=min(ranker.min_df, n),
                          max_df=ranker.max_df if n >= 20 else 1.0, sublinear_tf=True, stop_words="english",
                          max_features=ranker.max_features, dtype=np.float32, strip_accents="unicode")
    vec.fit(" ".join(parts) for parts in zip(*columns.values()))
    matrices = {name: sparse.csr_matrix(normalize(vec.transform(texts)), dtype=np.float32)
                for name, texts in columns.items()}
    w = None
    for name, m in matrices.items():
        if weights[name]:
            part = m * np.float32(weights[name])
            w = part if w is None else w + part
    w = sparse.csc_matrix(w, dtype=np.float32)
    w.sum_duplicates()
    w.sort_indices()
    return vec, {"weighted": w, **matrices}


def _same_csr(a, b) -> bool:
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data))


@pytest.mark.parametrize("params", [
    {"min_df": 1},
    {"min_df": 2, "max_features": 25},  # the max_features cut falls on ties of the total counts
    {"min_df": 1, "ngram_range": (1, 1), "field_weights": {"title": 1.0, "summary": 0.0, "conditions": 0.5}},
    {"min_df": 1, "ngram_range": (2, 2)},
])
@pytest.mark.parametrize("chunk", [1, 3, 10_000])
def test_chunked_fit_equals_tfidf_vectorizer(monkeypatch, params, chunk):
    monkeypatch.setattr(retrieval, "FIT_CHUNK", chunk)
    corpus = ODD_CORPUS * 3  # 30 documents: max_df=0.5 applies
    ranker = TfidfRanker(**params).fit(corpus)
    vec, plain = _plain(ranker, corpus)
    assert {k: int(v) for k, v in vec.vocabulary_.items()} == ranker.vocabulary_
    assert np.array_equal(vec.idf_, ranker.idf_) and ranker.idf_.dtype == np.float32
    assert _same_csr(plain["weighted"], ranker.weighted_)
    rows = list(range(len(corpus)))
    recomputing = TfidfRanker(**params, field_rows_max_docs=0).fit(corpus)  # a large corpus keeps no field rows
    assert ranker.field_matrices_ is not None and recomputing.field_matrices_ is None
    assert _same_csr(recomputing.weighted_, ranker.weighted_)
    for name, kept, rebuilt in zip(ranker._weights(), ranker._field_rows(rows), recomputing._field_rows(rows)):
        assert _same_csr(plain[name], kept) and _same_csr(plain[name], rebuilt)  # the rows feedback/field_scores use
    text = "lupus nephritis with asthma, sclérose en plaques"
    np.testing.assert_array_equal(ranker.transform([text]).toarray(), vec.transform([text]).toarray())


def test_kept_and_recomputed_field_rows_score_alike():
    kept = TfidfRanker(min_df=1, feedback_docs=2).fit(ODD_CORPUS)
    recomputed = TfidfRanker(min_df=1, feedback_docs=2, field_rows_max_docs=0).fit(ODD_CORPUS)
    for query in QUERIES:
        np.testing.assert_array_equal(kept.score_all(query), recomputed.score_all(query))
        a, b = kept.field_scores(query, kept.trial_ids_), recomputed.field_scores(query, kept.trial_ids_)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_fit_scores_do_not_depend_on_the_chunk_size(monkeypatch):
    monkeypatch.setattr(retrieval, "FIT_CHUNK", 10_000)
    whole = TfidfRanker(min_df=1, feedback_docs=2).fit(ODD_CORPUS)
    monkeypatch.setattr(retrieval, "FIT_CHUNK", 2)
    chunked = TfidfRanker(min_df=1, feedback_docs=2).fit(ODD_CORPUS)
    for query in QUERIES:
        np.testing.assert_array_equal(whole.score_all(query), chunked.score_all(query))
        assert whole.search(query, k=5).ids == chunked.search(query, k=5).ids
        a, b = whole.field_scores(query, whole.trial_ids_), chunked.field_scores(query, whole.trial_ids_)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_fitted_ranker_survives_pickling_with_feedback_and_field_scores():
    ranker = TfidfRanker(min_df=1, feedback_docs=2).fit(FIELD_CORPUS)
    loaded = pickle.loads(pickle.dumps(ranker, protocol=pickle.HIGHEST_PROTOCOL))
    assert not hasattr(loaded, "matrices_")
    for query in QUERIES:
        np.testing.assert_array_equal(loaded.score_all(query), ranker.score_all(query))
        got, expected = loaded.field_scores(query, loaded.trial_ids_), ranker.field_scores(query, ranker.trial_ids_)
        assert all(np.array_equal(got[k], expected[k]) for k in expected) and got["all"].max() > 0


def test_fit_rejects_what_it_cannot_reproduce():
    with pytest.raises(ValueError, match="ngram_range"):
        TfidfRanker(ngram_range=(1, 3)).fit(FIELD_CORPUS)
    with pytest.raises(ValueError, match="negative"):
        TfidfRanker(field_weights={"all": 1.0, "title": -0.5}).fit(FIELD_CORPUS)
    with pytest.raises(ValueError, match="empty vocabulary"):
        TfidfRanker().fit([])


def test_nearest_site_names_the_recruiting_site_it_measured():
    from assistant.matching.filters import nearest_site, site_name

    far = Location(facility="North Clinic", city="A", country="X", status="RECRUITING", lat=0.0, lon=2.0)
    near = Location(facility="South Clinic", city="B", state="S", country="X", status="RECRUITING", lat=0.0, lon=1.0)
    closed = Location(facility="Closed", status="COMPLETED", lat=0.0, lon=0.0)
    loc, km = nearest_site([far, closed, near], 0.0, 0.0)
    assert loc == near and km == haversine_km(0, 0, 0, 1)
    assert site_name(loc) == "South Clinic, B, S, X" and site_name(Location(city="C")) == "C"
    assert nearest_site([closed], 0, 0) is None


def test_query_concepts_carry_diagnoses_not_symptoms():
    from assistant.service import build_query
    from models.domain import ConditionFact, PatientProfile, Span

    text = "Cough and night sweats for a month; sarcoidosis on biopsy."
    facts = (ConditionFact("cough", Span(0, 5, "Cough"), category="finding"),
             ConditionFact("night sweats", Span(10, 22, "night sweats"), category="finding"),
             ConditionFact("sarcoidosis", Span(36, 47, "sarcoidosis"), category="condition"))
    parts = build_query(PatientProfile(text=text, conditions=facts), lambda c: (f"{c} syn",))
    assert parts[0] == (text, 1.0)  # symptoms stay in the raw text
    concept_part = parts[1][0]
    assert "sarcoidosis" in concept_part and "sarcoidosis syn" in concept_part
    assert "cough" not in concept_part and "night sweats" not in concept_part


# --------------------------------------------------------------------------- the query path without scikit-learn

ODD_TEXTS = ["", "a I", "Sjögren's syndrome, naïve to café-au-lait ½ ﬁbrosis", "IL-6 anti-CD20 CAR-T 2nd-line",
             "the and of with", "HER2+ / ER- breast cancer; eGFR < 30 mL/min/1.73m²", "lupus lupus LUPUS nephritis",
             "Ωmega-3 ÆØÅ straße ǅ"]


def _reference_vectorizer(ranker: TfidfRanker, texts: list[str]):
    """The vectorizer the ranker replaced: TfidfVectorizer with its built-in English analysis."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=ranker.ngram_range, min_df=1, max_df=1.0, sublinear_tf=True,
                           stop_words="english", max_features=ranker.max_features, dtype=np.float32,
                           strip_accents="unicode").fit(texts)


def test_analyzer_reads_text_as_the_tfidf_vectorizer_does():
    from sklearn.feature_extraction.text import TfidfVectorizer

    ranker = TfidfRanker(min_df=1).fit(FIELD_CORPUS)
    texts = [trial_fields(t)["all"] for t in FIELD_CORPUS] + ODD_TEXTS + QUERIES[:2]
    for ngram_range in ((1, 1), (1, 2), (1, 3), (2, 3)):
        reference = TfidfVectorizer(ngram_range=ngram_range, stop_words="english",
                                    strip_accents="unicode").build_analyzer()
        analyzer = type(ranker.analyzer_)(ngram_range, ranker.analyzer_.stop_words)
        for text in texts:
            assert analyzer(text) == reference(text), (ngram_range, text)


def test_fit_and_transform_equal_the_tfidf_vectorizer_to_the_bit():
    from sklearn.preprocessing import normalize

    from assistant.matching.retrieval import l2_normalize_rows

    texts = [" ".join(trial_fields(t).values()) for t in FIELD_CORPUS]
    ranker = TfidfRanker(min_df=1, max_df=1.0).fit(FIELD_CORPUS)
    reference = _reference_vectorizer(ranker, [" ".join(trial_fields(t)[name] for name in DEFAULT_FIELD_WEIGHTS)
                                               for t in FIELD_CORPUS])  # what fit reads
    assert ranker.vocabulary_ == reference.vocabulary_
    assert np.array_equal(ranker.idf_, reference.idf_)
    for text in texts + ODD_TEXTS + QUERIES[:2]:
        expected = reference.transform([text])  # normalised already (norm="l2")
        got = ranker.transform([text])
        assert got.dtype == np.float32 and np.array_equal(got.indices, expected.indices)
        assert np.array_equal(got.data, expected.data), text
        # the query path normalises once more, as it did with the vectorizer (not always a no-op in float32)
        assert np.array_equal(l2_normalize_rows(got.copy()).data, normalize(expected).data)
    several = ranker.transform(texts[:3])
    assert np.array_equal(several.toarray(), reference.transform(texts[:3]).toarray())


def test_a_saved_index_is_loaded_and_queried_without_scikit_learn(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "idx.pkl"
    CorpusIndex.build(FIELD_CORPUS, "v1", TfidfRanker(min_df=1)).save(path)
    code = ("import sys; from pathlib import Path; from assistant.matching.index import CorpusIndex; "
            "from assistant.matching.filters import Filters; "
            f"index = CorpusIndex.load(Path({str(path)!r})); "
            "hits = index.search([('lupus nephritis', 1.0), ('rituximab', 0.25)], 3, Filters()); "
            "index.field_scores('lupus', hits.ids); "
            "print(hits.ids[0], 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["NCT00000005", "False"]
