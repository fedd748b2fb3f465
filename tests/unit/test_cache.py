"""nlp.cache: the derived-data cache (atomic files, validated on load, rebuilt when missing, stale or damaged),
and the default lexicon loaded from it: the same lexicon, the same profiles and matches as the one built from
the files."""
from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from types import MappingProxyType

import pytest

from nlp import cache
from nlp.lexicon import Lexicon, default_lexicon, lexicon_from_records, load_lexicon
from nlp.pipeline import pipeline_fingerprint

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTIONS = [
    "52-year-old woman with systemic lupus erythematosus and lupus nephritis class IV, failed mycophenolate",
    "67 yo man, metastatic castration-resistant prostate cancer after enzalutamide; ECOG 1; eGFR 48",
    "I'm 34, female, 28 weeks pregnant, type 1 diabetes on an insulin pump, no history of smoking",
    "HER2+ / ER- breast cancer stage II, s/p trastuzumab; no CHF; NYHA class I",
    "31-year-old woman with SLE and cutaneous lupus on hydroxychloroquine 400 mg, not pregnant",
    "45 yo man with ulcerative colitis, failed mesalamine and infliximab",
    "papillary thyroid cancer, stage I, after total thyroidectomy, 58-year-old woman",
]


def test_save_then_load_round_trip_with_read_only_views(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "value.pickle"
    value = {"codes": MappingProxyType({"icd10cm": "M32"}), "n": [1, 2]}
    assert cache.save(path, "k1", value)
    loaded = cache.load(path, "k1")
    assert loaded == {"codes": {"icd10cm": "M32"}, "n": [1, 2]}
    assert isinstance(loaded["codes"], MappingProxyType)
    assert [p.name for p in path.parent.iterdir()] == ["value.pickle"]  # no temporary file left


def test_missing_stale_and_damaged_files_are_none(tmp_path: Path, caplog) -> None:
    path = tmp_path / "value.pickle"
    assert cache.load(path, "k") is None
    cache.save(path, "old", 1)
    with caplog.at_level(logging.WARNING, logger="nlp.cache"):
        assert cache.load(path, "new") is None  # stale: silently rebuilt
        assert caplog.records == []
        path.write_bytes(b"\x80\x05not a pickle")
        assert cache.load(path, "new") is None
    assert "unreadable" in caplog.text and str(path) in caplog.text


def test_an_unwritable_cache_is_a_warning_not_an_error(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="nlp.cache"):
        assert cache.save(blocker / "value.pickle", "k", 1) is False
    assert "could not write" in caplog.text


def test_cache_dir_setting(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIALMATCH_CACHE_DIR", str(tmp_path))
    assert cache.cache_dir() == tmp_path
    monkeypatch.setenv("TRIALMATCH_CACHE_DIR", " ")
    assert cache.cache_dir() is None
    monkeypatch.delenv("TRIALMATCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.cache_dir() == tmp_path / "trialmatch"


def test_the_key_is_the_pipeline_fingerprint_of_the_sources(tmp_path: Path) -> None:
    assert cache.source_fingerprint() == pipeline_fingerprint()
    for part in ("nlp", "data/rules", "data/lexicons"):
        (tmp_path / part).mkdir(parents=True)
    (tmp_path / "data/lexicons/a.json").write_text("{}")
    before = cache.source_fingerprint(tmp_path)
    (tmp_path / "data/lexicons/a.json").write_text("{ }")
    assert cache.source_fingerprint(tmp_path) != before


def test_a_lexicon_pickles_without_its_memos() -> None:
    lexicon = lexicon_from_records(
        [{"concept": "lupus nephritis", "category": "condition", "synonyms": ["ln"], "source": "curated",
          "codes": {"icd10cm": "M32.14"}}],
        [{"generic": "rituximab", "synonyms": ["rituxan"], "classes": [], "source": "curated"}])
    assert lexicon.is_a("lupus nephritis", "lupus nephritis")
    assert lexicon.ancestors("rituximab") == frozenset()
    copy = pickle.loads(cache.dumps(lexicon))
    assert copy.stats() == lexicon.stats() and copy.patterns() == lexicon.patterns()
    assert copy._ancestor_cache == {} and copy.condition("lupus nephritis").code == "ICD10CM:M32.14"
    assert isinstance(copy.condition("lupus nephritis").codes, MappingProxyType)
    assert copy.persist() is None  # a copy has no cache file of its own


@pytest.fixture(scope="module")
def cached_and_built(tmp_path_factory):
    """The default lexicon and pipeline loaded from a cache file, and the ones built from the files."""
    from nlp.pipeline import build_pipeline

    directory = tmp_path_factory.mktemp("derived")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRIALMATCH_CACHE_DIR", str(directory))
    try:
        first = default_lexicon.__wrapped__()  # no file yet: built, then saved with its matcher index
        assert first.matcher_cache == {}
        build_pipeline(lexicon=first)
        files = sorted(p.name for p in directory.iterdir())
        assert f"lexicon-{pipeline_fingerprint()}.pickle" in files
        cached = default_lexicon.__wrapped__()  # from the file, the matcher index with it
        assert cached is not first and cached.matcher_cache
        cached_nlp = build_pipeline(lexicon=cached)
    finally:
        mp.undo()
    built = load_lexicon()
    return cached, cached_nlp, built, build_pipeline(lexicon=built)


def test_the_cached_lexicon_is_the_built_one(cached_and_built) -> None:
    cached, _, built, _ = cached_and_built
    assert isinstance(cached, Lexicon)
    assert cached.stats() == built.stats() and cached.patterns() == built.patterns()
    assert list(cached.conditions()) == list(built.conditions()) and list(cached.drugs()) == list(built.drugs())
    assert dict(cached.prednisone_equivalence()) == dict(built.prednisone_equivalence())
    for a, b in (("lupus nephritis", "systemic lupus erythematosus"), ("rituximab", "anti_cd20"),
                 ("breast cancer", "malignancy"), ("covid-19", "pneumonia")):
        assert cached.is_a(a, b) == built.is_a(a, b) and cached.is_a_curated(a, b) == built.is_a_curated(a, b)
    for term in ("SLE", "Rituxan", "immunosuppressants", "MS", "CellCept"):
        assert cached.lookup_condition(term) == built.lookup_condition(term)
        assert cached.lookup_drug(term) == built.lookup_drug(term)
        assert cached.synonyms(term.lower()) == built.synonyms(term.lower())


def test_profiles_from_the_cached_pipeline_are_those_of_the_built_one(cached_and_built) -> None:
    import datetime as dt

    from assistant.responses import profile_to_dict
    from nlp.profile import extract_profile

    _, cached_nlp, _, built_nlp = cached_and_built
    texts = DESCRIPTIONS + [json.loads(line)["text"] for line in
                            (ROOT / "tests/nlp/patients.jsonl").read_text(encoding="utf-8").splitlines()[:20]]
    day = dt.date(2025, 1, 15)
    for text in texts:
        got = profile_to_dict(extract_profile(cached_nlp, text, reference_date=day))
        assert got == profile_to_dict(extract_profile(built_nlp, text, reference_date=day)), text


def test_matches_with_the_cached_lexicon_are_those_of_the_built_one(cached_and_built, tmp_path, studies_file):
    from assistant.responses import match_result_to_dict
    from assistant.services import Services
    from assistant.settings import load_settings

    cached, cached_nlp, built, built_nlp = cached_and_built
    settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                              "INSTANCE_PATH": str(tmp_path / "instance"), "AUTOLOAD_BUNDLED": False},
                             environ={})
    with_built = Services(settings, pipeline=built_nlp, lexicon=built)
    with_built.ingest([studies_file])
    with_cached = Services(settings, pipeline=cached_nlp, lexicon=cached)
    with_cached.refresh()  # the snapshot saved by the first
    matched = 0
    for text in DESCRIPTIONS:
        got = match_result_to_dict(with_cached.match(text))
        assert got == match_result_to_dict(with_built.match(text)), text
        matched += bool(got["matches"])
    assert matched >= 3
    with_built.engine.dispose()
    with_cached.engine.dispose()
