"""The composition root: one ``Services`` object per process (CLI command or app worker).

It is built once from the settings, holds every collaborator (database and repositories, lexicon, spaCy
pipeline, learned ranker, corpus snapshot) and exposes the small facade every entry point uses — the
Flask views, the CLI, evaluation, training and the benchmark scripts:

* :meth:`Services.match` — text or profile plus filters -> ``MatchResult``;
* :meth:`Services.ingest` — files -> stored trials (parser stamp, referral flags, new snapshot);
* :meth:`Services.start` — the worker's background loader (first load of the bundled trials, the
  snapshot, then a poll for corpus versions made by other processes), with progress for ``/health``.

Expensive collaborators are built on first use unless passed in (tests pass the shared pipeline in);
nothing is built at import time. The request path only reads ``self.snapshot()``.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from assistant.matching.filters import Filters
from assistant.settings import Settings, as_settings
from assistant.snapshot import CorpusSnapshot, file_lock, snapshot_key
from models.db import create_schema, make_engine, make_session_factory
from models.domain import MatchResult, ParsedCriterion, PatientProfile, TrialMatch
from models.repository import PARSER_VERSION_KEY, TrialRepository
from models.workflow import KeyRepository, ReferralRecord, ReferralRepository, SessionRepository, SessionState

logger = logging.getLogger(__name__)
BUNDLED_LOAD_KEY = "bundled_load"  # "started" while the first load of the bundled trials runs, then "done"
LOAD_PROGRESS_KEY = "bundled_load_progress"  # "done/total" of that load, for workers waiting on it
_stale_shipped_logged: set[str] = set()  # shipped parses files already reported as stale (log once)


def bundled_paths(data_dir: Path) -> list[Path]:
    trials = data_dir / "trials"
    return [trials / "studies.jsonl.gz", trials / "seeds"]


class NotReady(RuntimeError):
    """The corpus snapshot is not loaded yet (first start); ``progress`` says how far loading is."""

    def __init__(self, state: "LoadState") -> None:
        super().__init__(state.status)
        self.state = state


@dataclass(frozen=True)
class LoadState:
    status: str  # "idle" | "loading" | "ready" | "error"
    done: int = 0
    total: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ChatTurn:
    messages: tuple[dict[str, Any], ...]  # the stored transcript, this turn's reply last
    result: MatchResult
    reply: str
    next_question: dict[str, Any] | None


class Services:
    """Everything a process needs, built once; see the module docstring."""

    def __init__(self, settings: Settings | dict[str, Any], *, pipeline: Any = None, lexicon: Any = None,
                 clock: Callable[[], dt.date] = dt.date.today) -> None:
        self.settings: Settings = as_settings(settings)
        self.clock = clock
        if pipeline is not None:
            self.__dict__["pipeline"] = pipeline
        if lexicon is not None:
            self.__dict__["lexicon"] = lexicon
        self._snapshot: CorpusSnapshot | None = None
        self._swap_lock = threading.Lock()
        self._state = LoadState("idle")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._load_started = self._logged_at = 0.0

    # ------------------------------------------------------------------ collaborators

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.settings.DATABASE_URL)
        create_schema(engine)
        return engine

    @cached_property
    def repo(self) -> TrialRepository:
        return TrialRepository(make_session_factory(self.engine))

    @cached_property
    def sessions(self) -> SessionRepository:
        return SessionRepository(self.repo.session_factory)

    @cached_property
    def referrals(self) -> ReferralRepository:
        return ReferralRepository(self.repo.session_factory)

    @cached_property
    def keys(self) -> KeyRepository:
        return KeyRepository(self.repo.session_factory)

    @cached_property
    def lexicon(self):  # type: ignore[no-untyped-def]
        from nlp.lexicon import default_lexicon

        return default_lexicon()

    @cached_property
    def pipeline(self):  # type: ignore[no-untyped-def]
        from nlp.pipeline import build_pipeline

        return build_pipeline(lexicon=self.lexicon)

    @cached_property
    def ranker(self):  # type: ignore[no-untyped-def]
        """The learned ranker shipped in data/models (None: the hand-set combination)."""
        from assistant.matching.learned import load_ranker

        path = self.settings.RANKER_MODEL
        return load_ranker(Path(path) if path else None)

    @cached_property
    def fingerprint(self) -> str:
        from nlp.pipeline import pipeline_fingerprint

        return pipeline_fingerprint()

    @property
    def is_a(self) -> Callable[[str, str], bool]:
        """The ontology the matcher uses: curated is-a links only (the lexicon's own method, no wrapper: the
        checks call it thousands of times a match)."""
        return self.lexicon.is_a_curated

    @property
    def is_related(self) -> Callable[[str, str], bool]:
        """The broad ontology (all is-a links, generated ones included): what a trial is about."""
        return self.lexicon.is_a

    def category_of(self, concept: str) -> str | None:
        """The lexicon category of a condition concept (cancer, infection, procedure, ...)."""
        entry = self.lexicon.condition(concept)
        return entry.category if entry is not None else None

    # ------------------------------------------------------------------ NLP

    def extract(self, text: str, deadline: float | None = None) -> PatientProfile:
        """The profile of ``text``. Past ``deadline`` (a ``time.monotonic()`` value) the pipeline stops between
        two steps with ``ExtractionBudgetExceeded``."""
        from nlp.profile import extract_profile

        # The rim reads the clock; the pipeline itself only ever sees the date handed to it.
        return extract_profile(self.pipeline, text, reference_date=self.clock(), deadline=deadline)

    def extraction_deadline(self) -> float | None:
        """The deadline of one request's text reading (EXTRACTION_BUDGET_SECONDS from now; 0: none)."""
        budget = float(self.settings.EXTRACTION_BUDGET_SECONDS)
        return time.monotonic() + budget if budget > 0 else None

    def parse_criteria(self, texts: Sequence[str]) -> list[ParsedCriterion]:
        from nlp.criterion_parser import parse_criteria

        return parse_criteria(self.pipeline, texts)

    def criterion_parser(self) -> Callable[[Sequence[str]], list[ParsedCriterion]]:
        return self.parse_criteria

    # ------------------------------------------------------------------ facade

    def match(self, patient: str | PatientProfile, filters: Filters | dict[str, Any] | None = None, *,
              top_k: int | None = None, asked: frozenset[str] = frozenset(), deadline: float | None = None,
              **overrides: Any) -> MatchResult:
        """Match a description (or an already extracted profile) against the current snapshot.

        ``overrides`` replace matching parameters for one call (evaluation: ``candidate_depth``,
        ``ranker``, ...). A filters dict is read by :func:`assistant.matching.filters.parse_filters`
        (``FilterError`` when it cannot be). Raises :class:`NotReady` before the first snapshot is loaded.
        """
        from assistant.matching.filters import parse_filters
        from assistant.service import match_profile

        if not isinstance(filters, Filters):
            filters = parse_filters(filters or {}, default_statuses=self.settings.DEFAULT_STATUSES)
        profile = self.extract(patient, deadline) if isinstance(patient, str) else patient
        return match_profile(profile, snapshot=self.snapshot(), filters=filters,
                             top_k=int(top_k if top_k is not None else self.settings.TOP_K), asked=asked,
                             **{**self.match_parameters(), **overrides})

    def chat_turn(self, state: SessionState, text: str, filters: Filters | None = None, *,
                  top_k: int | None = None, deadline: float | None = None) -> ChatTurn:
        """One chat message: read only the new text (bound to the pending question by the rule in
        :mod:`assistant.chat`), merge it into the session's facts, match, choose the next question, store the
        turn. Raises :class:`NotReady` before the first snapshot and ``ExtractionBudgetExceeded`` past
        ``deadline`` (nothing is stored then)."""
        from assistant import chat
        from assistant.responses import question_to_dict

        def extract(t: str) -> PatientProfile:
            return self.extract(t, deadline)

        messages = chat.add_turn(state.messages, text, state.pending_question, extract)
        profile = chat.session_profile(messages, extract)
        result = self.match(profile, filters, top_k=top_k, asked=frozenset(state.asked))
        question = chat.next_question(result, state.asked)
        reply = chat.reply_text(result, question)
        messages.append({"role": "assistant", "text": reply})
        asked = list(state.asked) + ([question.key] if question else [])
        pending = question_to_dict(question) if question else None
        ttl = dt.timedelta(minutes=int(self.settings.SESSION_TTL_MINUTES))
        self.sessions.save_turn(state.id, messages, asked, pending, ttl)
        return ChatTurn(tuple(messages), result, reply, pending)

    def reevaluate(self, referral: ReferralRecord) -> tuple[PatientProfile, TrialMatch | None]:
        """A referral's patient against the current version of its trial (see :meth:`evaluate_referral`)."""
        transcript = referral.snapshot.transcript if referral.snapshot is not None else ()
        return self.evaluate_referral(referral.nct_id, referral.patient_text, transcript,
                                      from_chat=bool(referral.session_id))

    def evaluate_referral(self, nct_id: str, text: str, transcript: Sequence[dict[str, Any]] = (), *,
                          from_chat: bool = False) -> tuple[PatientProfile, TrialMatch | None]:
        """The patient's profile and its match with one trial (None when the trial is not in the snapshot).

        A referral made from a chat is read as the chat read it, each answer with its question (from the
        stored transcript, or from the "Q: / A:" text of older referrals), so the coordinator sees what the
        chat showed; one made from a description is that description's profile.
        """
        from assistant import chat, referrals

        if transcript:
            messages: list[dict[str, Any]] | None = referrals.transcript_messages(transcript)
        else:
            messages = chat.parse_transcript(text) if from_chat else None
        profile = chat.session_profile(messages, self.extract) if messages else self.extract(text)
        if nct_id not in self.snapshot().trials:
            return profile, None
        result = self.match(profile, Filters(nct_ids=frozenset({nct_id})), top_k=1)
        return profile, (result.matches[0] if result.matches else None)

    def match_parameters(self) -> dict[str, Any]:
        """The collaborators and settings :func:`assistant.service.match_profile` takes."""
        return {"is_a": self.is_a, "synonyms": self.lexicon.synonyms, "category_of": self.category_of,
                "related": self.is_related, "ranker": self.ranker,
                "candidate_depth": self.settings.CANDIDATE_DEPTH, "check_depth": self.settings.CHECK_DEPTH,
                "relevance_floor": self.settings.RELEVANCE_FLOOR}

    def ingest(self, paths: Iterable[Path], **kwargs: Any):  # type: ignore[no-untyped-def]
        """:meth:`ingest_items` over the studies read from files, folders, zip and JSONL exports."""
        from assistant.ingest import iter_paths

        return self.ingest_items(iter_paths(list(paths)), **kwargs)

    def ingest_items(self, items: Iterable[Any], *, parse: bool = True, batch_size: int = 500,
                     progress: bool = False, refresh: bool = True):  # type: ignore[no-untyped-def]
        """The one ingestion path (``ingest``, ``sync``, tests): store the studies (idempotent, bad records
        rejected, never fatal), stamp the parser version of a first load, flag open referrals whose trial
        changed, and (``refresh``) build and swap in the new snapshot, saved for the other workers."""
        from assistant.ingest import ingest

        parser = self.criterion_parser() if parse else None
        was_empty = self.repo.count() == 0
        report = ingest(items, self.repo, parser=parser, batch_size=batch_size, progress=progress,
                        stamp_parser_version=was_empty and parser is not None,
                        fingerprint=self.fingerprint if parser is not None else None)
        if report.counts.changed_hashes:
            report.flagged = self.referrals.flag_changed_trials(report.counts.changed_hashes)
        if refresh:
            self.refresh()
        return report

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> CorpusSnapshot:
        """The current snapshot (the request path's only access to trials)."""
        snap = self._snapshot
        if snap is None:
            raise NotReady(self.load_state())
        return snap

    def current_version(self) -> str | None:
        snap = self._snapshot
        return snap.version if snap is not None else None

    @property
    def snapshot_path(self) -> Path:
        return Path(self.settings.INSTANCE_PATH) / "index" / "snapshot.pkl"

    def ensure_snapshot(self) -> CorpusSnapshot:
        """The snapshot of the database's current corpus version, loaded or built now (not for requests)."""
        self.refresh()
        return self.snapshot()

    def refresh(self) -> bool:
        """Load (or build, once per host) the snapshot of the current corpus version and swap it in.

        Returns True when a new snapshot was swapped in. Builds are serialized by a lock file in the
        instance folder, so two workers never fit the same version twice: the second loads the file.
        """
        with self._swap_lock:
            key = snapshot_key(self.repo.corpus_version(), self.fingerprint)
            if self._snapshot is not None and self._snapshot.key == key:
                return False
            decoded_max = self.settings.SNAPSHOT_DECODED_MAX
            snap = CorpusSnapshot.load(self.snapshot_path, key, decoded_max)
            if snap is None:
                with file_lock(self.snapshot_path.with_name("snapshot.lock")):
                    snap = CorpusSnapshot.load(self.snapshot_path, key, decoded_max)
                    if snap is None:
                        snap = self._build_snapshot(decoded_max)
            self._snapshot = snap
        logger.info("corpus snapshot %s in use: %d trials", snap.version, len(snap.trials))
        return True

    def _build_snapshot(self, decoded_max: int) -> CorpusSnapshot:
        started = time.perf_counter()
        version = self.repo.corpus_version()
        snap = CorpusSnapshot.build(self.repo.iter_all(), version, self.fingerprint, parse=self.parse_criteria,
                                    decoded_max=decoded_max)
        if snap.version != self.repo.corpus_version():  # the corpus changed while we read it: build again
            return self._build_snapshot(decoded_max)
        try:
            snap.save(self.snapshot_path)
        except OSError:
            logger.warning("could not write the corpus snapshot to the instance folder")
        logger.info("corpus snapshot built in %.1f s", time.perf_counter() - started)
        return snap

    # ------------------------------------------------------------------ start-up and background work

    def load_state(self) -> LoadState:
        if self._snapshot is not None:
            return LoadState("ready", len(self._snapshot.trials), len(self._snapshot.trials))
        state = self._state
        if state.status == "loading" and state.total == 0:  # another worker holds the first load
            try:
                raw = self.repo.get_meta(LOAD_PROGRESS_KEY) or ""
            except SQLAlchemyError:
                raw = ""
            done, _, total = raw.partition("/")
            if done.isdigit() and total.isdigit():
                return LoadState("loading", int(done), int(total))
        return state

    def start(self) -> None:
        """Start the background loader of this worker (idempotent): the port answers at once."""
        if self._threads:
            return
        loader = threading.Thread(target=self._load_then_poll, name="trialmatch-loader", daemon=True)
        self._threads.append(loader)
        loader.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def prepare(self, progress: bool | Callable[[int, int], None] = False) -> CorpusSnapshot:
        """Everything a worker needs before matching: the bundled trials on a first start (once per host),
        parses of the current pipeline version, the snapshot, the pipeline."""
        self._state = LoadState("loading")
        with file_lock(Path(self.settings.INSTANCE_PATH) / "load.lock"):
            self.ensure_trials(progress=progress)
        snap = self.ensure_snapshot()
        self.warm()
        return snap

    def warm(self) -> None:
        """Load what the match path reads from files (pipeline, unit table, closed-world policy, ranker) now,
        so that no request reads a file."""
        from assistant.matching.policy import load_policy
        from nlp.units import load_unit_rules

        _ = self.pipeline, self.ranker
        load_unit_rules()
        load_policy()

    def _load_then_poll(self) -> None:
        """The first load now, then every SNAPSHOT_POLL_SECONDS a refresh (or the first load again, if it
        failed); a new snapshot is decoded in the background before requests need its trials."""
        interval = float(self.settings.SNAPSHOT_POLL_SECONDS)
        while True:
            first = self._snapshot is None
            try:
                if first:
                    self.prepare(progress=self._report_progress)
                    self._state = LoadState("ready")
                if first or self.refresh():
                    self.snapshot().trials.warm(self._stop)
            except Exception as exc:  # noqa: BLE001 - reported by /health and logged; the poll tries again
                if first:
                    logger.exception("loading the trials failed")
                    self._state = LoadState("error", error=type(exc).__name__)
                else:
                    logger.exception("refreshing the corpus snapshot failed; serving the previous one")
            if interval <= 0 or self._stop.wait(interval):
                return

    def _report_progress(self, done: int, total: int) -> None:
        """Progress of this worker's first load, for /health and (every 10 s) the log, with an ETA."""
        now = time.monotonic()
        if self._state.status != "loading" or self._state.total == 0:
            self._load_started = now
            self._logged_at = now
        self._state = LoadState("loading", done, total)
        if now - self._logged_at >= 10 and done:
            self._logged_at = now
            eta = (now - self._load_started) / done * max(total - done, 0)
            logger.info("first start: loading the bundled trials, %d of %d (about %.0f s left)", done, total, eta)

    # ------------------------------------------------------------------ first load and re-parse

    def ensure_trials(self, progress: bool | Callable[[int, int], None] = False) -> None:
        """Load the bundled trials into an empty database (first start), or finish an interrupted first load.

        The parse cache is seeded from the shipped parses first, so nothing is parsed when they match the
        pipeline. Each batch commits with its parser stamp; the meta ``bundled_load`` stays "started" until
        the load completes, so a restart after a crash resumes it (stored trials are skipped unchanged).
        ``progress``: True for a terminal bar with total and ETA, or a callback ``(done, total)``.
        """
        resuming = self.repo.get_meta(BUNDLED_LOAD_KEY) == "started"
        stored = self.repo.count()
        if (stored > 0 and not resuming) or not self.settings.AUTOLOAD_BUNDLED:
            if stored > 0:
                self.ensure_parsed_current()
            return
        from assistant.ingest import count_studies, ingest_paths

        logger.info("%s: loading the bundled trials", "resuming the first load" if resuming else "empty database")
        fingerprint = self.fingerprint
        self.repo.set_meta(BUNDLED_LOAD_KEY, "started")
        self._seed_shipped_parses(fingerprint)
        paths = bundled_paths(Path(self.settings.DATA_DIR))
        total = count_studies(paths)
        callback = progress if callable(progress) else None
        last = {"t": 0.0}

        def on_batch(done: int) -> None:
            if callback is not None:
                callback(done, total)
            now = time.monotonic()
            if now - last["t"] >= 2.0 or done >= total:
                last["t"] = now
                try:
                    self.repo.set_meta(LOAD_PROGRESS_KEY, f"{done}/{total}")
                except SQLAlchemyError:
                    logger.warning("could not record the load progress")

        on_batch(0)
        report = ingest_paths(paths, self.repo, parser=self.criterion_parser(), progress=progress is True,
                              total=total, fingerprint=fingerprint, stamp_parser_version=True, on_batch=on_batch)
        self.repo.set_meta(BUNDLED_LOAD_KEY, "done")
        logger.info("bundled trials loaded: %s (%d distinct texts parsed, %d from the parse cache)",
                    report.summary(), report.parse.parsed, report.parse.cached)
        if resuming:
            self.ensure_parsed_current()  # batches stored before the crash may be from another pipeline version

    def ensure_parsed_current(self) -> int:
        """Re-parse the stored criteria parsed by another version of the pipeline (or never parsed).

        Only criteria whose parse is not stamped with the current fingerprint are redone, each distinct
        text once, through the parse cache (seeded from the shipped parses when they match); every batch
        is stored with its new cache rows in one transaction, so an interrupted run resumes where it was.
        """
        from assistant.ingest import parse_cached, study_concepts, study_text
        from models.domain import TrialRecord, parsed_to_dict

        fingerprint = self.fingerprint
        if self.repo.get_meta(PARSER_VERSION_KEY) == fingerprint and not self.repo.has_stale_parses(fingerprint):
            return 0
        self._seed_shipped_parses(fingerprint)
        n = 0
        for batch in self.repo.stale_criterion_batches(fingerprint):
            results, new_rows, _ = parse_cached([text for _, text in batch], self.parse_criteria, self.repo,
                                                fingerprint)
            dicts = {text: parsed_to_dict(p) for text, p in results.items()}
            self.repo.set_parsed({cid: dicts[text] for cid, text in batch}, parser_version=fingerprint,
                                 cache_rows=new_rows)
            n += len(batch)
        studies = self.repo.study_texts()
        texts = [study_text(TrialRecord(nct_id=nct, title=title, conditions=tuple(conds)))
                 for nct, title, conds in studies]
        if texts:
            results, new_rows, _ = parse_cached(texts, self.parse_criteria, self.repo, fingerprint)
            if new_rows:
                self.repo.seed_parse_cache(new_rows.items(), fingerprint)
            self.repo.set_concepts({nct: list(study_concepts(results[t])) for (nct, _, _), t in zip(studies, texts)})
        self.repo.set_meta(PARSER_VERSION_KEY, fingerprint)
        logger.info("re-parsed %d stored criteria for pipeline version %s", n, fingerprint)
        return n

    @property
    def shipped_parses_path(self) -> Path:
        return Path(self.settings.DATA_DIR) / "trials" / "parses.jsonl.gz"

    def _seed_shipped_parses(self, fingerprint: str) -> int | None:
        """Fill the parse cache from the shipped parses when they were made by this pipeline version."""
        from assistant.ingest import read_parses_header, seed_parse_cache

        path = self.shipped_parses_path
        if not path.exists():
            return None
        if self.repo.parse_cache_count(fingerprint) >= int((read_parses_header(path) or {}).get("count", -1)):
            return 0  # seeded before (an interrupted first load resuming)
        n = seed_parse_cache(self.repo, path, fingerprint)
        if n is None and str(path) not in _stale_shipped_logged:
            _stale_shipped_logged.add(str(path))
            header = read_parses_header(path)
            logger.warning("shipped parses %s were made by pipeline version %s, not %s: criteria will be parsed "
                           "(regenerate them with `python scripts/build_parses.py`)", path.name,
                           header and header.get("fingerprint"), fingerprint)
        elif n is not None:
            logger.info("parse cache seeded with %d shipped parses", n)
        return n
