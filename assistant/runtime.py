"""Start-up wiring shared by the CLI and the Flask app: settings, database, bundled data.

Expensive objects (the spaCy pipeline, the fitted retriever) are created here on
first use and then reused; nothing is built at import time.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from assistant.matching.index import CorpusIndex
from models.db import create_schema, make_engine, make_session_factory
from models.domain import ParsedCriterion, PatientProfile
from models.repository import TrialRepository
from models.workflow import KeyRepository, ReferralRepository, SessionRepository

logger = logging.getLogger(__name__)
BUNDLED_LOAD_KEY = "bundled_load"  # "started" while the first load of the bundled trials runs, then "done"
_stale_shipped_logged: set[str] = set()  # shipped parses files already reported as stale (log once)


def bundled_paths(data_dir: Path) -> list[Path]:
    trials = data_dir / "trials"
    return [trials / "studies.jsonl.gz", trials / "seeds"]


class Runtime:
    """One per process (CLI invocation or app worker)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self._index: CorpusIndex | None = None
        self._index_lock = threading.Lock()

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.settings["DATABASE_URL"])
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

    def current_index_version(self) -> str | None:
        """Version of the index loaded in this process (None before the first load)."""
        return self._index.version if self._index is not None else None

    @cached_property
    def lexicon(self):  # type: ignore[no-untyped-def]
        from nlp.lexicon import default_lexicon

        return default_lexicon()

    def is_a(self, concept: str, ancestor: str) -> bool:
        """The ontology the matcher uses: curated is-a links only."""
        return bool(self.lexicon.is_a_curated(concept, ancestor))

    @cached_property
    def ranker(self):  # type: ignore[no-untyped-def]
        """The learned ranker shipped in data/models (None: the hand-set combination)."""
        from assistant.matching.learned import load_ranker

        path = self.settings.get("RANKER_MODEL")
        return load_ranker(Path(path) if path else None)

    def is_related(self, concept: str, ancestor: str) -> bool:
        """The broad ontology (all is-a links, generated ones included): what a trial is about."""
        return bool(self.lexicon.is_a(concept, ancestor))

    def category_of(self, concept: str) -> str | None:
        """The lexicon category of a condition concept (cancer, infection, procedure, ...)."""
        entry = self.lexicon.condition(concept)
        return entry.category if entry is not None else None

    @cached_property
    def pipeline(self):  # type: ignore[no-untyped-def]
        from nlp.pipeline import build_pipeline

        return build_pipeline(lexicon=self.lexicon)

    def extract(self, text: str, deadline: float | None = None) -> PatientProfile:
        import datetime

        from nlp.profile import extract_profile

        # The rim reads the clock; the pipeline itself only ever sees the date handed to it.
        return extract_profile(self.pipeline, text, reference_date=datetime.date.today(), deadline=deadline)

    def parse_criteria(self, texts: Sequence[str]) -> list[ParsedCriterion]:
        from nlp.criterion_parser import parse_criteria

        return parse_criteria(self.pipeline, texts)

    def criterion_parser(self) -> Callable[[Sequence[str]], list[ParsedCriterion]]:
        return self.parse_criteria

    @property
    def index_path(self) -> Path:
        return Path(self.settings["INSTANCE_PATH"]) / "index" / "retriever.pkl"

    def ensure_index(self) -> "CorpusIndex":
        """The retriever for the current corpus version: from memory, from disk, or fitted now."""
        version = self.repo.corpus_version()
        current = self._index
        if current is not None and current.version == version:
            return current
        with self._index_lock:  # one rebuild per process; other threads keep serving the old index
            current = self._index
            if current is not None and current.version == version:
                return current
            return self._load_or_fit(version)

    def _load_or_fit(self, version: str | None) -> CorpusIndex:
        index = CorpusIndex.load(self.index_path)
        if index is None or index.version != version:
            index = CorpusIndex.build(self.repo.iter_all(), version)
            try:
                index.save(self.index_path)
            except OSError:
                logger.warning("could not write the retrieval index to the instance folder")
        self._index = index
        return index

    def ensure_parsed_current(self) -> int:
        """Re-parse the stored criteria parsed by another version of the pipeline (or never parsed).

        Only criteria whose parse is not stamped with the current fingerprint are redone, each distinct
        text once, through the parse cache (seeded from the shipped parses when they match); every batch
        is stored with its new cache rows in one transaction, so an interrupted run resumes where it was.
        """
        from assistant.ingest import parse_cached, study_concepts, study_text
        from models.domain import TrialRecord, parsed_to_dict
        from models.repository import PARSER_VERSION_KEY
        from nlp.pipeline import pipeline_fingerprint

        fingerprint = pipeline_fingerprint()
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
        return Path(self.settings["DATA_DIR"]) / "trials" / "parses.jsonl.gz"

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

    def ensure_trials(self, progress: bool = False) -> None:
        """Load the bundled trials into an empty database (first start), or finish an interrupted first load.

        The parse cache is seeded from the shipped parses first, so nothing is parsed when they match the
        pipeline. Each batch commits with its parser stamp; the meta ``bundled_load`` stays "started" until
        the load completes, so a restart after a crash resumes it (stored trials are skipped unchanged).
        """
        resuming = self.repo.get_meta(BUNDLED_LOAD_KEY) == "started"
        if (self.repo.count() > 0 and not resuming) or not self.settings.get("AUTOLOAD_BUNDLED", True):
            if self.repo.count() > 0:
                self.ensure_parsed_current()
            return
        from assistant.ingest import ingest_paths
        from nlp.pipeline import pipeline_fingerprint

        logger.info("%s: loading the bundled trials", "resuming the first load" if resuming else "empty database")
        fingerprint = pipeline_fingerprint()
        self.repo.set_meta(BUNDLED_LOAD_KEY, "started")
        self._seed_shipped_parses(fingerprint)
        report = ingest_paths(bundled_paths(Path(self.settings["DATA_DIR"])), self.repo,
                              parser=self.criterion_parser(), progress=progress, fingerprint=fingerprint,
                              stamp_parser_version=True)
        self.repo.set_meta(BUNDLED_LOAD_KEY, "done")
        logger.info("bundled trials loaded: %s (%d distinct texts parsed, %d from the parse cache)",
                    report.summary(), report.parse.parsed, report.parse.cached)
        if resuming:
            self.ensure_parsed_current()  # batches stored before the crash may be from another pipeline version
