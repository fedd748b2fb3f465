"""Refreshing trials from a newer export: changed trials replaced, closed ones marked, referrals flagged."""
from __future__ import annotations

import copy
import json

from assistant.cli import main
from tests.helpers import fixture_studies


def _write(path, studies):
    path.write_text("".join(json.dumps(s) + "\n" for s in studies), encoding="utf-8")
    return path


def test_newer_export_updates_statuses_and_flags_open_referrals(tmp_path, database_url, capsys, monkeypatch):
    monkeypatch.setenv("TRIALMATCH_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("TRIALMATCH_AUTOLOAD_BUNDLED", "false")
    seed = next(s for s in fixture_studies() if s["protocolSection"]["identificationModule"]["nctId"] == "NCT06897930")
    other = fixture_studies()[0]
    old = _write(tmp_path / "old.jsonl", [seed, other])
    assert main(["--database-url", database_url, "ingest", "-q", "--no-parse", str(old)]) == 0

    from assistant.services import Services
    from assistant.settings import load_settings

    rt = Services(load_settings({"DATABASE_URL": database_url, "AUTOLOAD_BUNDLED": False}))
    ref = rt.referrals.create("NCT06897930", "41-year-old woman with SLE", "clinic-1", "widget", trial_hash=None)
    closed_ref = rt.referrals.create("NCT06897930", "another patient", "clinic-2", "widget")
    rt.referrals.change_status(closed_ref.id, "enrolled", "coord", None)

    newer = copy.deepcopy(seed)
    newer["protocolSection"]["statusModule"]["overallStatus"] = "WITHDRAWN"
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2027-01-01"}
    new = _write(tmp_path / "new.jsonl", [newer, other])
    capsys.readouterr()
    assert main(["--database-url", database_url, "ingest", "-q", "--no-parse", str(new)]) == 0
    out = capsys.readouterr().out
    assert "added 0, updated 1, unchanged 1" in out
    assert "1 open referral(s) flagged" in out
    assert rt.repo.get("NCT06897930").overall_status == "WITHDRAWN"
    flagged = rt.referrals.get(ref.id)
    assert flagged.needs_review and flagged.events[-1].action == "trial_changed"
    assert not rt.referrals.get(closed_ref.id).needs_review  # closed referrals are left alone
    rt.engine.dispose()
