"""The corpus snapshot: the match path reads trials from memory only, and a new corpus version is swapped in."""
from __future__ import annotations

from sqlalchemy import event

from assistant.snapshot import CorpusSnapshot, TrialStore, snapshot_key
from tests.conftest import make_test_app
from tests.helpers import fixture_studies

TEXT = "52-year-old woman with systemic lupus erythematosus and lupus nephritis class IV, failed mycophenolate."


def test_matching_never_queries_the_database(tmp_path, nlp, studies_file):
    app = make_test_app(tmp_path, nlp, studies_file)
    services = app.extensions["trialmatch"]
    statements: list[str] = []
    event.listen(services.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *args: statements.append(statement))
    result = services.match(TEXT, {"status": "ANY"}, top_k=5)
    assert result.matches and result.matches[0].criteria
    assert statements == []
    resp = app.test_client().post("/api/v1/match", json={"text": TEXT, "top_k": 5, "filters": {"status": "ANY"}})
    assert resp.status_code == 200
    assert not [s for s in statements if "trial" in s.lower() or "criterion" in s.lower()]


def test_an_ingest_swaps_in_a_new_snapshot_and_saves_it_for_other_processes(tmp_path, nlp, studies_file):
    from assistant.services import Services

    app = make_test_app(tmp_path, nlp, studies_file)
    services = app.extensions["trialmatch"]
    before = services.snapshot()
    held = before.get_many(["NCT06897930"])["NCT06897930"]
    changed = [s for s in fixture_studies() if s["protocolSection"]["identificationModule"]["nctId"] == "NCT06897930"]
    changed[0]["protocolSection"]["identificationModule"]["briefTitle"] = "A renamed CAR-T trial in lupus"
    changed[0]["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2030-01-01"}
    import json

    path = tmp_path / "changed.jsonl"
    path.write_text(json.dumps(changed[0]) + "\n", encoding="utf-8")
    services.ingest([path])
    after = services.snapshot()
    assert after is not before and after.version != before.version
    assert after.get_many(["NCT06897930"])["NCT06897930"].title == "A renamed CAR-T trial in lupus"
    assert held.title != "A renamed CAR-T trial in lupus"  # a request holding the old snapshot keeps it whole
    other = Services(services.settings, pipeline=nlp)  # another worker: loads the saved file, fits nothing
    other.refresh()
    assert other.snapshot().key == after.key and len(other.snapshot().trials) == len(after.trials)


def test_trial_store_keeps_a_bounded_number_of_decoded_records(tmp_path, nlp, studies_file):
    app = make_test_app(tmp_path, nlp, studies_file)
    snap = app.extensions["trialmatch"].snapshot()
    ids = list(snap.trials.blobs)[:6]
    store = TrialStore(dict(snap.trials.blobs), decoded_max=2)
    for nct in ids:
        assert store.get(nct).nct_id == nct
    assert len(store._decoded) == 2 and list(store._decoded) == ids[-2:]
    assert store.get("NCT00000000") is None and store.warm() == 0  # the corpus is larger than the cache


def test_a_saved_snapshot_is_used_only_for_its_own_version(tmp_path, nlp, studies_file):
    app = make_test_app(tmp_path, nlp, studies_file)
    services = app.extensions["trialmatch"]
    snap = services.snapshot()
    assert CorpusSnapshot.load(services.snapshot_path, snap.key) is not None
    assert CorpusSnapshot.load(services.snapshot_path, snapshot_key(snap.version, "another-pipeline")) is None
    services.snapshot_path.write_bytes(b"not a pickle")
    assert CorpusSnapshot.load(services.snapshot_path, snap.key) is None


def test_a_worker_picks_up_another_process_ingest_on_its_own_thread(tmp_path, nlp, studies_file):
    """The poll runs off the request path: the worker keeps serving its snapshot, then swaps in the new one."""
    import json
    import time

    from assistant.services import Services
    from assistant.settings import load_settings

    settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'poll.sqlite3'}",
                              "INSTANCE_PATH": str(tmp_path / "instance"), "AUTOLOAD_BUNDLED": False,
                              "PRELOAD": True, "SNAPSHOT_POLL_SECONDS": 0.2}, environ={})
    writer = Services(settings, pipeline=nlp)  # another process: the CLI's `trialmatch ingest`
    writer.ingest([studies_file])
    worker = Services(settings, pipeline=nlp)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while worker.load_state().status != "ready" and time.monotonic() < deadline:
            time.sleep(0.05)
        first = worker.snapshot()
        changed = [s for s in fixture_studies()
                   if s["protocolSection"]["identificationModule"]["nctId"] == "NCT06557265"][0]
        changed["protocolSection"]["identificationModule"]["briefTitle"] = "Renamed while the worker serves"
        changed["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2030-02-02"}
        path = tmp_path / "changed.jsonl"
        path.write_text(json.dumps(changed) + "\n", encoding="utf-8")
        writer.ingest([path])
        while worker.snapshot() is first and time.monotonic() < deadline:
            assert worker.match(TEXT, {"status": "ANY"}, top_k=3).matches  # still serving meanwhile
            time.sleep(0.1)
        assert worker.snapshot().version == writer.snapshot().version
        assert worker.snapshot().get_many(["NCT06557265"])["NCT06557265"].title == "Renamed while the worker serves"
    finally:
        worker.stop()
        worker.engine.dispose()
        writer.engine.dispose()
