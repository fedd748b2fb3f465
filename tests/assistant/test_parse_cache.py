"""The parse cache: each distinct criterion text is parsed once per pipeline version, results unchanged."""
from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from assistant.ingest import (
    ingest_paths,
    iter_parses_file,
    read_parses_header,
    study_text,
    with_criteria,
    write_parses_file,
)
from models import trial as orm
from models.ctgov import parse_study
from models.domain import ParsedCriterion, Requirement, Span
from models.repository import TrialRepository, text_key
from tests.helpers import REPO, fixture_studies

FP = "fp-test"


class CountingParser:
    """Stands in for the pipeline: records every text it is asked to parse."""

    def __init__(self, inner=None) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.calls: list[list[str]] = []

    @property
    def texts(self) -> list[str]:
        return [t for call in self.calls for t in call]

    def __call__(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        if self.inner is not None:
            return self.inner(texts)
        return [_fake_parse(t) for t in texts]


def _fake_parse(t: str) -> ParsedCriterion:
    word = t.split()[0].lower() if t.split() else "x"
    return ParsedCriterion(text=t, parsed=True, logic="any" if len(t) % 2 else "all", requirements=(
        Requirement(type="condition", span=Span(0, len(word), word), concepts=(word,), present=len(t) % 3 > 0),))


def _write_jsonl(path: Path, studies: list[dict]) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in studies), encoding="utf-8")
    return path


def _stored(repo: TrialRepository) -> dict:
    return {t.nct_id: t for t in repo.iter_all()}


def _clear_trials(repo: TrialRepository) -> None:
    for nct in list(_stored(repo)):
        repo.delete(nct)


def _all_texts(studies: list[dict]) -> list[str]:
    records = [with_criteria(parse_study(s)) for s in studies]
    return [c.text for r in records for c in r.criteria] + [study_text(r) for r in records]


def test_each_distinct_text_is_parsed_once_and_a_cache_hit_skips_the_parser(repo, tmp_path):
    studies = fixture_studies()
    twice = json.loads(json.dumps(studies[0]))
    twice["protocolSection"]["identificationModule"]["nctId"] = "NCT99999999"  # same criteria, another trial
    path = _write_jsonl(tmp_path / "s.jsonl", [*studies, twice])
    parser = CountingParser()
    report = ingest_paths([path], repo, parser=parser, fingerprint=FP)
    distinct = set(_all_texts(studies))
    assert len(parser.texts) == len(set(parser.texts)) == len(distinct)  # within-batch de-duplication
    assert report.parse.parsed == len(distinct) and report.parse.cached == 0
    assert repo.parse_cache_count(FP) == len(distinct)
    first = _stored(repo)

    _clear_trials(repo)
    parser.calls.clear()
    report = ingest_paths([path], repo, parser=parser, fingerprint=FP)
    assert parser.calls == []  # every text came from the cache
    assert report.parse.cached == len(distinct) and report.parse.parsed == 0
    assert _stored(repo) == first
    with repo.session_factory() as session:
        assert set(session.scalars(select(orm.Criterion.parser_version))) == {FP}

    _clear_trials(repo)
    ingest_paths([path], repo, parser=parser, fingerprint="another-version")
    assert len(parser.texts) == len(distinct)  # another pipeline version does not reuse those parses


def test_results_are_identical_with_and_without_the_cache(runtime, tmp_path, nlp):
    repo = runtime.repo
    path = _write_jsonl(tmp_path / "s.jsonl", fixture_studies())
    ingest_paths([path], repo, parser=runtime.parse_criteria, fingerprint=FP, cache=False)
    assert repo.parse_cache_count() == 0
    uncached = _stored(repo)
    assert sum(c.parsed is not None and c.parsed.parsed for t in uncached.values() for c in t.criteria) > 100

    _clear_trials(repo)
    ingest_paths([path], repo, parser=runtime.parse_criteria, fingerprint=FP)  # cold: fills the cache
    assert _stored(repo) == uncached
    _clear_trials(repo)
    parser = CountingParser(runtime.parse_criteria)
    ingest_paths([path], repo, parser=parser, fingerprint=FP, batch_size=7)  # warm: all from the cache
    assert parser.calls == []
    assert _stored(repo) == uncached


def test_a_failed_batch_leaves_no_cache_rows(repo, tmp_path, monkeypatch):
    studies = fixture_studies()
    path = _write_jsonl(tmp_path / "s.jsonl", studies)

    def crash(self, session):  # type: ignore[no-untyped-def]  # the last statement of the batch transaction
        raise RuntimeError("power cut")

    monkeypatch.setattr(TrialRepository, "_bump_version", crash)
    with pytest.raises(RuntimeError):
        ingest_paths([path], repo, parser=CountingParser(), fingerprint=FP, stamp_parser_version=True)
    assert repo.count() == 0 and repo.parse_cache_count() == 0
    assert repo.get_meta("parser_version") is None
    monkeypatch.undo()
    parser = CountingParser()
    ingest_paths([path], repo, parser=parser, fingerprint=FP)
    assert repo.count() == len(studies) and len(parser.texts) == len(set(_all_texts(studies)))


CHILD = """
import sys, time
from pathlib import Path
from assistant.services import Services
from assistant.settings import load_settings
from assistant.ingest import ingest_paths
from tests.assistant.test_parse_cache import _fake_parse

def slow(texts):
    time.sleep(0.05)
    return [_fake_parse(t) for t in texts]

rt = Services(load_settings({"DATABASE_URL": sys.argv[1], "INSTANCE_PATH": sys.argv[3], "AUTOLOAD_BUNDLED": False},
                           environ={}))
ingest_paths([Path(sys.argv[2])], rt.repo, parser=slow, fingerprint="crash-fp", batch_size=1, stamp_parser_version=True)
"""


def test_sigkill_mid_ingest_leaves_no_orphan_cache_rows(runtime, database_url, tmp_path):
    repo = runtime.repo
    studies = fixture_studies()
    path = _write_jsonl(tmp_path / "s.jsonl", studies)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, database_url, str(path), str(tmp_path / "instance")],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    killed = False
    while time.time() < deadline and proc.poll() is None:
        if 3 <= repo.count() < len(studies) - 3:
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed, "the child finished before it could be killed"
    stored = _stored(repo)
    assert 0 < len(stored) < len(studies)
    stored_keys = {text_key(c.text) for t in stored.values() for c in t.criteria}
    stored_keys |= {text_key(study_text(t)) for t in stored.values()}
    cached = {k for k, _ in repo.parse_cache_rows("crash-fp")}
    assert cached <= stored_keys  # no cache row without its trial ...
    assert {text_key(c.text) for t in stored.values() for c in t.criteria} <= cached  # ... nor the reverse
    parser = CountingParser()
    ingest_paths([path], repo, parser=parser, fingerprint="crash-fp")  # the re-run completes it
    assert repo.count() == len(studies)
    assert not set(map(text_key, parser.texts)) & cached  # what was stored is not parsed again


# --------------------------------------------------------------------------- shipped parses and first start


def _bundle(tmp_path: Path, studies: list[dict], fingerprint: str | None) -> Path:
    """A DATA_DIR with trials/studies.jsonl.gz, trials/seeds and (optionally) trials/parses.jsonl.gz."""
    from assistant.settings import DATA_DIR

    data = tmp_path / "data"
    trials = data / "trials"
    (trials / "seeds").mkdir(parents=True)
    for name in ("rules", "lexicons", "models"):
        (data / name).symlink_to(Path(DATA_DIR) / name)
    with gzip.open(trials / "studies.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(s) + "\n" for s in studies)
    if fingerprint is not None:
        rows = {text_key(t): _fake_parse(t) for t in _all_texts(studies)}
        from models.domain import parsed_to_dict

        write_parses_file(trials / "parses.jsonl.gz", fingerprint, [(k, parsed_to_dict(p)) for k, p in rows.items()])
    return data


def _first_start_runtime(settings: dict, data: Path, monkeypatch, fingerprint: str = FP):  # type: ignore[no-untyped-def]
    from assistant.services import Services

    monkeypatch.setattr("nlp.pipeline.pipeline_fingerprint", lambda: fingerprint)
    rt = Services({**settings, "DATA_DIR": str(data), "AUTOLOAD_BUNDLED": True})
    parser = CountingParser()
    rt.parse_criteria = parser  # type: ignore[method-assign]
    return rt, parser


def test_parses_file_round_trip(tmp_path):
    rows = [("b" * 64, {"logic": "all", "parsed": True, "requirements": []}), ("a" * 64, {"logic": "any"})]
    path = tmp_path / "p.jsonl.gz"
    assert write_parses_file(path, "fp1", rows) == 2
    assert read_parses_header(path) == {"format": 1, "fingerprint": "fp1", "count": 2}
    assert list(iter_parses_file(path)) == sorted(rows)
    assert read_parses_header(tmp_path / "missing.gz") is None


def test_first_start_seeds_the_cache_and_parses_nothing(settings, tmp_path, monkeypatch):
    studies = fixture_studies()
    data = _bundle(tmp_path, studies, FP)
    rt, parser = _first_start_runtime(settings, data, monkeypatch)
    rt.ensure_trials()
    assert parser.calls == []
    assert rt.repo.count() == len(studies)
    assert rt.repo.get_meta("parser_version") == FP and rt.repo.get_meta("bundled_load") == "done"
    trial = rt.repo.get(studies[0]["protocolSection"]["identificationModule"]["nctId"])
    assert all(c.parsed == _fake_parse(c.text) for c in trial.criteria)
    rt.ensure_trials()  # second start: nothing to do
    assert parser.calls == []


def test_first_start_with_stale_shipped_parses_parses_and_logs_once(settings, tmp_path, monkeypatch, caplog):
    studies = fixture_studies()
    data = _bundle(tmp_path, studies, "an-older-pipeline")
    rt, parser = _first_start_runtime(settings, data, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="assistant.services"):
        rt.ensure_trials()
        rt._seed_shipped_parses(FP)
    assert len(parser.texts) == len(set(_all_texts(studies)))
    assert rt.repo.count() == len(studies)
    assert rt.repo.parse_cache_count("an-older-pipeline") == 0
    stale = [r for r in caplog.records if "shipped parses" in r.getMessage()]
    assert len(stale) == 1 and "an-older-pipeline" in stale[0].getMessage()


def test_interrupted_first_load_resumes_without_reparsing(settings, tmp_path, monkeypatch):
    studies = fixture_studies()
    data = _bundle(tmp_path, studies, None)
    rt, parser = _first_start_runtime(settings, data, monkeypatch)
    # the first start stored the first 10 trials (with their stamp) and was killed
    rt.repo.set_meta("bundled_load", "started")
    ingest_paths([_write_jsonl(tmp_path / "first.jsonl", studies[:10])], rt.repo, parser=parser, fingerprint=FP,
                 stamp_parser_version=True)
    done = set(parser.texts)
    parser.calls.clear()
    rt.ensure_trials()
    assert rt.repo.count() == len(studies) and rt.repo.get_meta("bundled_load") == "done"
    assert not set(parser.texts) & done  # nothing stored before the crash is parsed again
    assert set(parser.texts) == set(_all_texts(studies)) - done


def test_only_criteria_from_another_pipeline_version_are_reparsed(settings, tmp_path, monkeypatch):
    studies = fixture_studies()
    data = _bundle(tmp_path, studies, None)
    rt, parser = _first_start_runtime(settings, data, monkeypatch)
    rt.ensure_trials()
    assert rt.ensure_parsed_current() == 0
    with rt.repo.session_factory.begin() as session:
        ids = list(session.scalars(select(orm.Criterion.id).order_by(orm.Criterion.id).limit(25)))
        session.execute(update(orm.Criterion).where(orm.Criterion.id.in_(ids)).values(parser_version="old"))
    parser.calls.clear()
    assert rt.ensure_parsed_current() == 25
    assert parser.calls == []  # their texts were in the cache for the current version
    with rt.repo.session_factory() as session:
        assert session.execute(text("SELECT count(*) FROM criterion WHERE parser_version = 'old'")).scalar() == 0
    assert rt.ensure_parsed_current() == 0
