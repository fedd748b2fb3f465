"""``trialmatch sync``: page through ClinicalTrials.gov API v2 ``/studies`` and upsert every page.

Each page goes through the same ingestion path as ``trialmatch ingest`` (the caller passes it in as
``store``), so re-syncing changes nothing, a newer record replaces the stored one and a bad record is
rejected with its position (``page 3 studies[4]``) while the others land. After every stored page the
cursor (a fingerprint of the query and the next page token) is saved in the corpus meta table, so an
interrupted sync of the same query resumes at the page it had reached. ``429`` and ``5xx`` answers and
network errors are retried with bounded exponential backoff (``Retry-After`` honoured up to the bound);
when the registry still cannot be reached a :class:`SyncError` says so in one line.

Pure parts (query parameters, fingerprints, retry delays, page decoding) are functions; the network
sits in :class:`RegistryClient` (standard-library ``urllib``, a timeout on every request).
"""
from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import http.client
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from assistant.ingest import IngestReport, RawItem, items_from_document

logger = logging.getLogger(__name__)

CURSOR_KEY = "ctgov_sync_cursor"
MAX_PAGE_SIZE = 1000  # the registry coerces larger page sizes down to this
MAX_PAGE_BYTES = 256 * 1024 * 1024
RETRYABLE_STATUSES = frozenset({429}) | frozenset(range(500, 600))
USER_AGENT = "trialmatch-sync/1 (+https://clinicaltrials.gov/data-api/api)"


class SyncError(Exception):
    """The sync cannot go on; ``str(exc)`` is one line for the user."""

    exit_code = 1


class RegistryUnavailable(SyncError):
    """The registry could not be reached, or kept answering 429/5xx after every retry."""

    exit_code = 3


class RegistryRefused(SyncError):
    """The registry answered a request with a client error (4xx other than 429)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- the query (pure)


@dataclass(frozen=True, slots=True)
class SyncQuery:
    """What to fetch: condition, overall statuses, country, last update on or after ``since``."""

    condition: str | None = None
    statuses: tuple[str, ...] = ()
    country: str | None = None
    since: dt.date | None = None
    page_size: int = 100

    def params(self) -> dict[str, str]:
        """The query parameters every page of this query carries (API v2 names)."""
        out: dict[str, str] = {"format": "json"}
        if self.condition:
            out["query.cond"] = self.condition
        if self.statuses:
            out["filter.overallStatus"] = ",".join(self.statuses)
        if self.country:
            out["query.locn"] = f"AREA[LocationCountry]{self.country}"
        if self.since is not None:
            out["filter.advanced"] = f"AREA[LastUpdatePostDate]RANGE[{self.since.isoformat()},MAX]"
        return out

    def fingerprint(self, base_url: str) -> str:
        """Same registry and same filters -> same fingerprint (page size may change between pages)."""
        blob = json.dumps({"url": base_url.rstrip("/"), "params": self.params()}, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def page_params(query: SyncQuery, token: str | None, *, page_size: int | None = None) -> dict[str, str]:
    """Parameters of one page request: the first page asks for the total count, later ones carry the token."""
    params = {**query.params(), "pageSize": str(page_size or query.page_size)}
    if token:
        params["pageToken"] = token
    else:
        params["countTotal"] = "true"
    return params


def studies_url(base_url: str, params: Mapping[str, str]) -> str:
    return f"{base_url.rstrip('/')}/studies?{urllib.parse.urlencode(params)}"


# --------------------------------------------------------------------------- retries (pure)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: float = 1.0  # seconds before the second attempt; doubled each time
    max_backoff: float = 60.0  # no single wait is longer, whatever Retry-After says
    timeout: float = 30.0  # seconds, every request

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "RetryPolicy":
        return cls(max_attempts=max(1, int(settings["CTGOV_MAX_ATTEMPTS"])),
                   backoff=max(0.0, float(settings["CTGOV_BACKOFF_SECONDS"])),
                   max_backoff=max(0.0, float(settings["CTGOV_MAX_BACKOFF_SECONDS"])),
                   timeout=max(0.1, float(settings["CTGOV_TIMEOUT_SECONDS"])))


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    now = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retry_delay(attempt: int, policy: RetryPolicy, retry_after: float | None = None) -> float:
    """Wait before attempt ``attempt + 1``: Retry-After when given, else exponential; never above the bound."""
    delay = retry_after if retry_after is not None else policy.backoff * 2 ** (attempt - 1)
    return min(delay, policy.max_backoff)


# --------------------------------------------------------------------------- pages (pure)


@dataclass(frozen=True, slots=True)
class Page:
    studies: list[Any]
    next_token: str | None
    total: int | None


def decode_page(body: bytes, where: str) -> Page:
    """A ``PagedStudies`` response, or a one-line SyncError naming what is wrong with it."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise SyncError(f"the registry's answer for {where} is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("studies"), list):
        raise SyncError(f"the registry's answer for {where} has no 'studies' list")
    token = doc.get("nextPageToken")
    total = doc.get("totalCount")
    if token is not None and (not isinstance(token, str) or not token or len(token) > 4096):
        raise SyncError(f"the registry's answer for {where} has an unusable nextPageToken")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        total = None
    return Page(doc["studies"], token or None, total)


# --------------------------------------------------------------------------- the network (side effects)


def _network_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name not resolved"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    return type(reason).__name__ if not isinstance(reason, str) else reason


class RegistryClient:
    """GET pages of ``/studies`` with timeouts and bounded retries."""

    def __init__(self, base_url: str, policy: RetryPolicy, *,
                 opener: Callable[..., Any] = urllib.request.urlopen,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url.lower().startswith(("http://", "https://")):
            raise SyncError(f"CTGOV_API_URL must be an http(s) URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._open = opener
        self._sleep = sleep

    def fetch(self, params: Mapping[str, str], where: str) -> Page:
        url = studies_url(self.base_url, params)
        request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
        last = ""
        for attempt in range(1, self.policy.max_attempts + 1):
            retry_after = None
            try:
                with self._open(request, timeout=self.policy.timeout) as response:
                    body = response.read(MAX_PAGE_BYTES + 1)
                if len(body) > MAX_PAGE_BYTES:
                    raise SyncError(f"the registry's answer for {where} is larger than {MAX_PAGE_BYTES} bytes")
                return decode_page(body, where)
            except urllib.error.HTTPError as exc:
                with exc:
                    if exc.code not in RETRYABLE_STATUSES:
                        detail = _first_line(exc.read(2000))
                        raise RegistryRefused(f"the registry refused the request for {where} (HTTP {exc.code}"
                                              f"{': ' + detail if detail else ''})", exc.code) from None
                    retry_after = parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                    last = f"HTTP {exc.code}"
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                last = _network_reason(exc)
            if attempt < self.policy.max_attempts:
                delay = retry_delay(attempt, self.policy, retry_after)
                logger.info("registry %s for %s; retrying in %.1fs (attempt %d of %d)", last, where, delay,
                            attempt + 1, self.policy.max_attempts)
                self._sleep(delay)
        if last.startswith("HTTP"):
            raise RegistryUnavailable(f"the registry at {self.base_url} answered {last} to {self.policy.max_attempts} "
                                      f"attempt(s) for {where}; try again later")
        raise RegistryUnavailable(f"cannot reach the registry at {self.base_url} ({last}, "
                                  f"{self.policy.max_attempts} attempt(s)); check the network or CTGOV_API_URL")


def _first_line(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""


# --------------------------------------------------------------------------- the cursor


@dataclass(frozen=True, slots=True)
class Cursor:
    query: str  # fingerprint of the query
    token: str  # next page token
    page: int  # number of the page the token fetches


class CursorStore(Protocol):
    def load(self) -> Cursor | None: ...

    def save(self, cursor: Cursor | None) -> None: ...


class MetaCursorStore:
    """The cursor in the repository's corpus meta table (empty value: no sync in progress)."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    def load(self) -> Cursor | None:
        raw = self.repo.get_meta(CURSOR_KEY)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return Cursor(str(data["query"]), str(data["token"]), int(data["page"]))
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable sync cursor")
            return None

    def save(self, cursor: Cursor | None) -> None:
        value = "" if cursor is None else json.dumps({"query": cursor.query, "token": cursor.token,
                                                      "page": cursor.page})
        self.repo.set_meta(CURSOR_KEY, value)


# --------------------------------------------------------------------------- the sync loop


@dataclass
class SyncReport:
    pages: int = 0
    studies: int = 0
    total: int | None = None  # totalCount of the query (first page only)
    resumed_at: int | None = None  # page the run resumed at, if it resumed
    restarted: bool = False  # the saved cursor was refused and the run started over
    complete: bool = False  # the last page was reached
    ingest: IngestReport = field(default_factory=IngestReport)

    def summary(self) -> str:
        state = "complete" if self.complete else "stopped early (run again to resume)"
        return f"sync {state}: {self.pages} page(s), {self.studies} studies fetched; {self.ingest.summary()}"


Store = Callable[[Iterable[RawItem]], IngestReport]
PageHook = Callable[[int, int, IngestReport], None]


def sync(query: SyncQuery, client: RegistryClient, cursors: CursorStore, store: Store, *,
         restart: bool = False, max_pages: int | None = None, on_page: PageHook | None = None) -> SyncReport:
    """Fetch every page of ``query`` (from the saved cursor of the same query unless ``restart``) and store it.

    The cursor is saved after each stored page and cleared when the last page is stored; a page stored
    again after a crash between the two is unchanged (ingestion is idempotent).
    """
    fingerprint = query.fingerprint(client.base_url)
    saved = None if restart else cursors.load()
    report = SyncReport()
    token: str | None = None
    page_no = 1
    if saved is not None and saved.query == fingerprint:
        token, page_no = saved.token, saved.page
        report.resumed_at = page_no
    seen: set[str] = set()
    while max_pages is None or report.pages < max_pages:
        where = f"page {page_no}"
        try:
            page = client.fetch(page_params(query, token), where)
        except RegistryRefused as exc:
            if not (report.resumed_at is not None and report.pages == 0 and 400 <= exc.status < 500):
                raise
            # the saved token is no longer accepted: start over (stored studies come back unchanged)
            logger.warning("the registry refused the saved sync cursor (HTTP %d); starting from the first page",
                           exc.status)
            token, page_no, report.resumed_at, report.restarted = None, 1, None, True
            continue
        if token is None and page.total is not None:
            report.total = page.total
        result = store(items_from_document({"studies": page.studies}, where))
        report.pages += 1
        report.studies += len(page.studies)
        report.ingest += result
        if on_page is not None:
            on_page(page_no, len(page.studies), result)
        if page.next_token is None:
            cursors.save(None)
            report.complete = True
            return report
        if page.next_token in seen or page.next_token == token:
            raise SyncError(f"the registry sent the same next-page token twice (after {where}); stopping")
        seen.add(page.next_token)
        token, page_no = page.next_token, page_no + 1
        cursors.save(Cursor(fingerprint, token, page_no))
    return report


def count(query: SyncQuery, client: RegistryClient) -> int:
    """How many studies the query matches (first page with ``countTotal=true``; nothing stored)."""
    page = client.fetch(page_params(query, None, page_size=1), "the count request")
    if page.total is None:
        raise SyncError("the registry did not return totalCount for the query")
    return page.total
