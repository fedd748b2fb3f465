from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest

from assistant.ingest import ingest_paths, read_studies
from models.repository import TrialNotFound
from tests.helpers import fixture_studies, shared_path


def _write_jsonl(path: Path, studies: list[dict]) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in studies), encoding="utf-8")
    return path


def test_ingest_jsonl_then_again_is_unchanged(repo, tmp_path):
    studies = fixture_studies()
    path = _write_jsonl(tmp_path / "s.jsonl", studies)
    first = ingest_paths([path], repo)
    assert first.counts.added == len(studies) and not first.rejected
    assert repo.count() == len(studies)
    version = repo.corpus_version()
    second = ingest_paths([path], repo)
    assert second.counts.unchanged == len(studies)
    assert second.counts.added == second.counts.updated == 0
    assert repo.corpus_version() == version  # nothing changed, no re-index


def test_bad_lines_are_named_and_the_rest_loads(repo, tmp_path):
    studies = fixture_studies()[:5]
    lines = [json.dumps(s) for s in studies]
    missing = copy.deepcopy(studies[0])
    del missing["protocolSection"]["identificationModule"]["nctId"]
    lines.insert(2, json.dumps(missing))
    lines.insert(4, json.dumps(studies[1])[:120])  # truncated line
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ingest_paths([path], repo)
    assert report.counts.added == 5
    positions = [p for p, _ in report.rejected]
    assert positions == ["bad.jsonl:3", "bad.jsonl:5"]
    reasons = dict(report.rejected)
    assert "nctId" in reasons["bad.jsonl:3"]
    assert "invalid JSON" in reasons["bad.jsonl:5"]


def test_bad_record_never_corrupts_stored_data(repo, tmp_path):
    study = fixture_studies()[0]
    ingest_paths([_write_jsonl(tmp_path / "a.jsonl", [study])], repo)
    before = repo.get(study["protocolSection"]["identificationModule"]["nctId"])
    broken = copy.deepcopy(study)
    broken["protocolSection"]["conditionsModule"] = {"conditions": "not a list"}
    report = ingest_paths([_write_jsonl(tmp_path / "b.jsonl", [broken])], repo)
    assert len(report.rejected) == 1
    assert repo.get(before.nct_id) == before


def test_newer_record_replaces_older_is_ignored(repo, tmp_path):
    study = copy.deepcopy(fixture_studies()[-1])
    status = study["protocolSection"].setdefault("statusModule", {})
    status["lastUpdatePostDateStruct"] = {"date": "2025-01-01"}
    ingest_paths([_write_jsonl(tmp_path / "v1.jsonl", [study])], repo)
    newer = copy.deepcopy(study)
    newer["protocolSection"]["statusModule"].update(lastUpdatePostDateStruct={"date": "2025-06-01"},
                                                    overallStatus="COMPLETED")
    report = ingest_paths([_write_jsonl(tmp_path / "v2.jsonl", [newer])], repo)
    assert report.counts.updated == 1
    nct = study["protocolSection"]["identificationModule"]["nctId"]
    assert repo.get(nct).overall_status == "COMPLETED"
    older = copy.deepcopy(study)
    older["protocolSection"]["statusModule"].update(lastUpdatePostDateStruct={"date": "2024-01-01"},
                                                    overallStatus="WITHDRAWN")
    report = ingest_paths([_write_jsonl(tmp_path / "v0.jsonl", [older])], repo)
    assert report.counts.unchanged == 1
    assert repo.get(nct).overall_status == "COMPLETED"


def test_every_file_shape(repo, tmp_path):
    studies = fixture_studies()[:6]
    (tmp_path / "one.json").write_text(json.dumps(studies[0]), encoding="utf-8")
    (tmp_path / "search.json").write_text(json.dumps({"studies": studies[1:3], "nextPageToken": "x"}),
                                          encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(studies[3]), encoding="utf-8")
    with zipfile.ZipFile(tmp_path / "bulk.zip", "w") as archive:
        for s in studies[4:6]:
            archive.writestr(f"ctg-studies/{s['protocolSection']['identificationModule']['nctId']}.json",
                             json.dumps(s))
    paths = [tmp_path / "one.json", tmp_path / "search.json", folder, tmp_path / "bulk.zip"]
    items = [item for p in paths for item in read_studies(p)]
    assert [i.position for i in items][:3] == ["one.json", "search.json studies[0]", "search.json studies[1]"]
    report = ingest_paths(paths, repo)
    assert report.counts.added == 6 and not report.rejected


def test_missing_path_is_reported(repo, tmp_path):
    report = ingest_paths([tmp_path / "nope.json"], repo)
    assert report.rejected == [(str(tmp_path / "nope.json"), "no such file or directory")]


def test_criteria_are_split_and_stored(repo, tmp_path):
    seed = next(s for s in fixture_studies()
                if s["protocolSection"]["identificationModule"]["nctId"] == "NCT06897930")
    ingest_paths([_write_jsonl(tmp_path / "s.jsonl", [seed])], repo)
    trial = repo.get("NCT06897930")
    kinds = [c.kind.value for c in trial.criteria]
    assert kinds.count("inclusion") >= 9 and kinds.count("exclusion") >= 6
    assert any("CAR T" in c.text for c in trial.criteria if c.kind.value == "exclusion")


def test_unknown_trial_raises(repo):
    with pytest.raises(TrialNotFound):
        repo.get("NCT00000000")


@pytest.mark.shared
def test_full_shared_corpus_loads(repo):
    path = shared_path("trials", "studies.jsonl")
    report = ingest_paths([path], repo, batch_size=1000)
    assert report.counts.added == 3748 and not report.rejected


def test_stale_parses_are_redone_after_a_pipeline_upgrade(runtime, tmp_path, nlp):
    seed = next(s for s in fixture_studies()
                if s["protocolSection"]["identificationModule"]["nctId"] == "NCT06557265")
    ingest_paths([_write_jsonl(tmp_path / "s.jsonl", [seed])], runtime.repo)  # stored without parses
    assert all(c.parsed is None for c in runtime.repo.get("NCT06557265").criteria)
    runtime.repo.set_meta("parser_version", "an-older-version")
    assert runtime.ensure_parsed_current() > 20
    trial = runtime.repo.get("NCT06557265")
    assert all(c.parsed is not None for c in trial.criteria)
    assert trial.concepts  # conditions under study read from the title
    assert runtime.ensure_parsed_current() == 0  # current now: nothing to do
