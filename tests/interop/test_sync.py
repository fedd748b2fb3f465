"""`trialmatch sync` against a local stub of ClinicalTrials.gov API v2 serving recorded pages.

The stub listens on 127.0.0.1 only; its pages are built from records of tests/fixtures/studies_small.jsonl.
Everything runs through the CLI entry point (`assistant.cli.main`) except the retry-delay checks, which
drive `RegistryClient` with a recording sleep.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant.cli import main
from assistant.sync import (
    CURSOR_KEY,
    RegistryClient,
    RegistryUnavailable,
    RetryPolicy,
    SyncQuery,
    page_params,
    parse_retry_after,
)
from tests.helpers import fixture_studies


def _nct(study: dict) -> str:
    return study["protocolSection"]["identificationModule"]["nctId"]


STUDIES = fixture_studies()[:5]
IDS = [_nct(s) for s in STUDIES]


class StubRegistry:
    """Pages keyed by page token ("" = first page), scripted failures per token, every request recorded."""

    def __init__(self) -> None:
        self.pages: dict[str, dict] = {}
        self.failures: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.requests: list[dict[str, str]] = []
        self.delay = 0.0  # seconds before answering (a registry slower than the client's timeout)
        self.url = ""

    def fail(self, token: str, status: int, times: int = 1, headers: dict[str, str] | None = None,
             body: bytes = b"") -> None:
        self.failures.setdefault(token, []).extend([(status, headers or {}, body)] * times)

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(query)
        if path != "/api/v2/studies":
            return 404, {"Content-Type": "text/plain"}, b"not found"
        token = query.get("pageToken", "")
        if self.failures.get(token):
            return self.failures[token].pop(0)
        if token not in self.pages:
            return 400, {"Content-Type": "text/plain"}, b"Invalid pageToken\nsecond line"
        page = dict(self.pages[token])
        if not token and query.get("countTotal") == "true":
            page["totalCount"] = sum(len(p["studies"]) for p in self.pages.values())
        return 200, {"Content-Type": "application/json"}, json.dumps(page).encode("utf-8")


def paged(studies: list[dict], size: int) -> dict[str, dict]:
    """Recorded pages of ``size`` studies chained by tokens tok-2, tok-3, ..."""
    chunks = [studies[i:i + size] for i in range(0, len(studies), size)] or [[]]
    pages = {}
    for n, chunk in enumerate(chunks, start=1):
        page: dict = {"studies": chunk}
        if n < len(chunks):
            page["nextPageToken"] = f"tok-{n + 1}"
        pages["" if n == 1 else f"tok-{n}"] = page
    return pages


@pytest.fixture
def registry():
    stub = StubRegistry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
            status, headers, body = stub.answer(parts.path, query)
            time.sleep(stub.delay)
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def env(monkeypatch, tmp_path, registry):
    monkeypatch.setenv("TRIALMATCH_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("TRIALMATCH_AUTOLOAD_BUNDLED", "false")
    monkeypatch.setenv("TRIALMATCH_CTGOV_API_URL", registry.url)
    monkeypatch.setenv("TRIALMATCH_CTGOV_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("TRIALMATCH_CTGOV_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("TRIALMATCH_CTGOV_TIMEOUT_SECONDS", "5")
    return registry


def _repo(database_url: str):
    from assistant.services import Services
    from assistant.settings import load_settings

    return Services(load_settings({"DATABASE_URL": database_url, "AUTOLOAD_BUNDLED": False}))


def sync(database_url: str, *args: str) -> int:
    return main(["--database-url", database_url, "sync", "-q", "--no-parse", "--page-size", "2", *args])


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_pages_through_every_page_and_a_second_sync_changes_nothing(env, database_url, capsys):
    env.pages = paged(STUDIES, 2)
    assert sync(database_url, "--condition", "lupus", "--status", "RECRUITING,NOT_YET_RECRUITING") == 0
    out = capsys.readouterr().out
    assert "5 studies match the query" in out
    assert "sync complete: 3 page(s), 5 studies fetched; added 5, updated 0, unchanged 0, rejected 0" in out
    first, second, third = env.requests
    assert first == {"format": "json", "query.cond": "lupus", "filter.overallStatus": "RECRUITING,NOT_YET_RECRUITING",
                     "pageSize": "2", "countTotal": "true"}
    # later pages carry the same filters and the token, not countTotal
    assert second == {**{k: v for k, v in first.items() if k != "countTotal"}, "pageToken": "tok-2"}
    assert third["pageToken"] == "tok-3"
    rt = _repo(database_url)
    assert sorted(t.nct_id for t in rt.repo.iter_all()) == sorted(IDS)
    assert rt.repo.get_meta(CURSOR_KEY) == ""  # finished: nothing to resume

    env.requests.clear()
    assert sync(database_url, "--condition", "lupus", "--status", "RECRUITING,NOT_YET_RECRUITING") == 0
    out = capsys.readouterr().out
    assert "added 0, updated 0, unchanged 5, rejected 0" in out
    assert "resumed" not in out and "pageToken" not in env.requests[0]
    rt.engine.dispose()


def test_since_and_country_become_the_registry_filters(env, tmp_path, capsys):
    env.pages = paged(STUDIES[:1], 2)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert sync(url, "--since", "2026-01-15", "--country", "United States") == 0
    (request,) = env.requests
    assert request["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2026-01-15,MAX]"
    assert request["query.locn"] == "AREA[LocationCountry]United States"
    assert "query.cond" not in request and "filter.overallStatus" not in request
    env.requests.clear()
    assert sync(url, "--status", "recruiting", "--status", "not yet recruiting,Recruiting") == 0
    assert env.requests[0]["filter.overallStatus"] == "RECRUITING,NOT_YET_RECRUITING"
    assert "filter.advanced" not in env.requests[0]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        sync(url, "--since", "15/01/2026")
    assert exc.value.code == 2 and "expected a date YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sync(url, "--status", "OPEN")
    assert "unknown status OPEN" in capsys.readouterr().err
    assert len(env.requests) == 1  # bad arguments never reach the registry (the one above is the status run)


def test_an_interrupted_sync_resumes_at_the_page_it_reached(env, database_url, capsys):
    env.pages = paged(STUDIES, 2)
    env.fail("tok-3", 503, times=3)  # every attempt at page 3 fails: the run stops there
    assert sync(database_url, "--condition", "lupus") == 3
    captured = capsys.readouterr()
    line = _one_line_error(captured.err)
    assert line.startswith("sync failed: the registry at http://127.0.0.1:") and "HTTP 503" in line
    assert "page 3" in line and "3 attempt(s)" in line
    rt = _repo(database_url)
    assert rt.repo.count() == 4  # pages 1 and 2 are stored
    assert json.loads(rt.repo.get_meta(CURSOR_KEY))["page"] == 3

    env.requests.clear()
    assert sync(database_url, "--condition", "lupus") == 0
    out = capsys.readouterr().out
    assert "resumed an interrupted sync at page 3" in out
    assert "sync complete: 1 page(s), 1 studies fetched; added 1, updated 0, unchanged 0" in out
    assert env.requests == [{"format": "json", "query.cond": "lupus", "pageSize": "2", "pageToken": "tok-3"}]
    assert rt.repo.count() == 5 and rt.repo.get_meta(CURSOR_KEY) == ""
    rt.engine.dispose()


def test_another_query_or_restart_does_not_resume_and_a_refused_cursor_starts_over(env, tmp_path, capsys):
    env.pages = paged(STUDIES, 2)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env.fail("tok-2", 500, times=3)
    assert sync(url, "--condition", "lupus") == 3
    env.requests.clear()
    env.fail("tok-2", 500, times=3)
    assert sync(url, "--condition", "nephritis") == 3  # another query: from its own first page
    assert "pageToken" not in env.requests[0] and env.requests[0]["query.cond"] == "nephritis"
    env.requests.clear()
    assert sync(url, "--condition", "nephritis", "--restart") == 0
    assert "pageToken" not in env.requests[0]

    # the registry no longer knows the saved token (400): the sync starts over; stored studies are unchanged
    env.fail("tok-3", 503, times=3)
    assert sync(url, "--condition", "nephritis", "--restart") == 3
    env.pages["tok-3b"] = env.pages.pop("tok-3")
    env.pages["tok-2"]["nextPageToken"] = "tok-3b"
    capsys.readouterr()
    env.requests.clear()
    assert sync(url, "--condition", "nephritis") == 0
    out = capsys.readouterr().out
    assert "started again from the first page" in out
    assert [r.get("pageToken") for r in env.requests] == ["tok-3", None, "tok-2", "tok-3b"]
    assert "added 0, updated 0, unchanged 5" in out


def test_429_waits_for_retry_after_then_succeeds(env, tmp_path, capsys):
    env.pages = paged(STUDIES[:2], 2)
    env.fail("", 429, headers={"Retry-After": "1"})
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    started = time.monotonic()
    assert sync(url) == 0
    assert time.monotonic() - started >= 1.0  # Retry-After, not the 0.01 s backoff setting
    assert len(env.requests) == 2 and "added 2" in capsys.readouterr().out


def test_backoff_is_exponential_bounded_and_honours_retry_after(env):
    env.pages = paged(STUDIES[:1], 2)
    waits: list[float] = []
    client = RegistryClient(env.url, RetryPolicy(max_attempts=5, backoff=0.5, max_backoff=3.0, timeout=5),
                            sleep=waits.append)
    env.fail("", 503)
    env.fail("", 502)
    env.fail("", 429, headers={"Retry-After": "1"})
    env.fail("", 429, headers={"Retry-After": "3600"})
    page = client.fetch(page_params(SyncQuery(), None), "page 1")
    assert [_nct(s) for s in page.studies] == IDS[:1] and page.total == 1
    assert waits == [0.5, 1.0, 1.0, 3.0]  # doubling; Retry-After honoured, but never beyond the bound

    waits.clear()
    env.fail("", 500, times=5)
    with pytest.raises(RegistryUnavailable, match="answered HTTP 500 to 5 attempt"):
        client.fetch(page_params(SyncQuery(), None), "page 1")
    assert waits == [0.5, 1.0, 2.0, 3.0]  # four waits between five attempts, then it gives up


def test_retry_after_as_seconds_or_http_date():
    now = dt.datetime(2026, 11, 29, 20, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Sun, 29 Nov 2026 20:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 29 Nov 2026 19:00:00 GMT", now) == 0.0  # in the past: no wait
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


def test_5xx_on_every_attempt_is_a_clear_failure_with_nothing_stored(env, tmp_path, capsys):
    env.pages = paged(STUDIES, 2)
    env.fail("", 502, times=3)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert sync(url) == 3
    captured = capsys.readouterr()
    assert "HTTP 502" in _one_line_error(captured.err) and "sync complete" not in captured.out
    assert len(env.requests) == 3
    assert _repo(url).repo.count() == 0


def test_offline_registry_says_so_in_one_line(env, tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TRIALMATCH_CTGOV_API_URL", f"http://127.0.0.1:{port}/api/v2")
    assert sync(f"sqlite:///{tmp_path / 'db.sqlite3'}", "--condition", "lupus") == 3
    line = _one_line_error(capsys.readouterr().err)
    assert line == (f"sync failed: cannot reach the registry at http://127.0.0.1:{port}/api/v2 (connection refused, "
                    "3 attempt(s)); check the network or CTGOV_API_URL")
    monkeypatch.setenv("TRIALMATCH_CTGOV_API_URL", "ftp://example.invalid/api")
    assert sync(f"sqlite:///{tmp_path / 'db.sqlite3'}") == 1
    assert "must be an http(s) URL" in _one_line_error(capsys.readouterr().err)


def test_refused_query_and_garbage_answers_are_one_line_errors(env, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env.fail("", 400, body=b"Unknown filter.advanced area\nat position 5")
    assert sync(url) == 1
    assert _one_line_error(capsys.readouterr().err) == (
        "sync failed: the registry refused the request for page 1 (HTTP 400: Unknown filter.advanced area)")
    env.fail("", 200, body=b"<html>maintenance</html>")
    assert sync(url) == 1
    assert _one_line_error(capsys.readouterr().err) == "sync failed: the registry's answer for page 1 is not JSON"
    env.fail("", 200, body=b'{"items": []}')
    assert sync(url) == 1
    assert "has no 'studies' list" in _one_line_error(capsys.readouterr().err)


def test_empty_pages(env, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env.pages = {"": {"studies": []}}  # nothing matches
    assert sync(url) == 0
    assert "sync complete: 1 page(s), 0 studies fetched; added 0" in capsys.readouterr().out
    # an empty page in the middle (the API allows it) does not end the sync
    env.pages = {"": {"studies": STUDIES[:1], "nextPageToken": "tok-2"}, "tok-2": {"studies": [], "nextPageToken": "tok-3"},
                 "tok-3": {"studies": STUDIES[1:3]}}
    assert sync(url) == 0
    assert "sync complete: 3 page(s), 3 studies fetched; added 3" in capsys.readouterr().out


def test_a_bad_record_is_skipped_and_reported_the_others_stored(env, tmp_path, capsys):
    bad = copy.deepcopy(STUDIES[3])
    bad["protocolSection"]["identificationModule"]["nctId"] = "NCT123"
    env.pages = paged([*STUDIES[:3], bad, STUDIES[4]], 2)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert sync(url) == 0
    captured = capsys.readouterr()
    assert "added 4, updated 0, unchanged 0, rejected 1" in captured.out
    (rejected,) = [line for line in captured.err.splitlines() if line.startswith("rejected")]
    assert rejected.startswith("rejected page 2 studies[1]: ") and "NCT123" in rejected
    assert sorted(t.nct_id for t in _repo(url).repo.iter_all()) == sorted(IDS[:3] + IDS[4:])


def test_dry_run_counts_without_writing(env, tmp_path, capsys):
    env.pages = paged(STUDIES, 2)
    db = tmp_path / "db.sqlite3"
    assert main(["--database-url", f"sqlite:///{db}", "sync", "--dry-run", "--condition", "lupus",
                 "--page-size", "2"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"dry run: would fetch 5 studies (3 page(s) of 2) from {env.url}; nothing written")
    assert env.requests == [{"format": "json", "query.cond": "lupus", "pageSize": "1", "countTotal": "true"}]
    assert not db.exists()


def test_a_changed_trial_flags_its_open_referrals(env, database_url, capsys):
    env.pages = paged(STUDIES[:2], 2)
    assert sync(database_url) == 0
    rt = _repo(database_url)
    ref = rt.referrals.create(IDS[0], "41-year-old woman with SLE", "clinic-1", "widget", trial_hash=None)
    newer = copy.deepcopy(STUDIES[0])
    newer["protocolSection"]["statusModule"]["overallStatus"] = "WITHDRAWN"
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2027-01-01"}
    env.pages = paged([newer, STUDIES[1]], 2)
    capsys.readouterr()
    assert sync(database_url) == 0
    out = capsys.readouterr().out
    assert "added 0, updated 1, unchanged 1" in out and "1 open referral(s) flagged for review" in out
    assert rt.repo.get(IDS[0]).overall_status == "WITHDRAWN" and rt.referrals.get(ref.id).needs_review
    rt.engine.dispose()


def test_sync_parses_criteria_and_stamps_the_parser_version_like_ingest(env, tmp_path, capsys):
    from nlp.pipeline import pipeline_fingerprint

    env.pages = paged(STUDIES[:2], 1)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert main(["--database-url", url, "sync", "-q", "--page-size", "1"]) == 0
    rt = _repo(url)
    assert rt.repo.get_meta("parser_version") == pipeline_fingerprint()
    criteria = [c for t in rt.repo.iter_all() for c in t.criteria]
    assert criteria and all(c.parsed is not None for c in criteria)
    assert rt.repo.parse_cache_count(pipeline_fingerprint()) > 0


def test_max_pages_stops_early_and_the_next_run_goes_on(env, tmp_path, capsys):
    env.pages = paged(STUDIES, 2)
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert sync(url, "--max-pages", "1") == 0
    assert "sync stopped early (run again to resume): 1 page(s), 2 studies fetched; added 2" in capsys.readouterr().out
    assert sync(url) == 0
    out = capsys.readouterr().out
    assert "resumed an interrupted sync at page 2" in out and "sync complete: 2 page(s), 3 studies fetched" in out
    with pytest.raises(SystemExit):
        sync(url, "--max-pages", "0")


def test_a_registry_slower_than_the_timeout_is_reported(env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRIALMATCH_CTGOV_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("TRIALMATCH_CTGOV_MAX_ATTEMPTS", "2")
    env.pages = paged(STUDIES[:1], 2)
    env.delay = 3.0
    assert sync(f"sqlite:///{tmp_path / 'db.sqlite3'}") == 3
    assert "(timed out, 2 attempt(s))" in _one_line_error(capsys.readouterr().err)
    assert len(env.requests) == 2

    client = RegistryClient(env.url, RetryPolicy(max_attempts=2, backoff=0.0, timeout=0.3))
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match="timed out"):
        client.fetch(page_params(SyncQuery(), None), "page 1")
    assert time.monotonic() - started < 2.0  # each attempt gave up after its timeout, not the 3 s answer
