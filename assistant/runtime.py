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

    def extract(self, text: str) -> PatientProfile:
        import datetime

        from nlp.profile import extract_profile

        # The rim reads the clock; the pipeline itself only ever sees the date handed to it.
        return extract_profile(self.pipeline, text, reference_date=datetime.date.today())

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
        """Re-parse stored criteria when they were parsed by another version of the pipeline."""
        from assistant.ingest import study_concepts, study_text
        from models.domain import TrialRecord, parsed_to_dict
        from nlp.pipeline import pipeline_fingerprint

        fingerprint = pipeline_fingerprint()
        if self.repo.get_meta("parser_version") == fingerprint:
            return 0
        n = 0
        for batch in self.repo.criterion_batches():
            parsed = self.parse_criteria([text for _, text in batch])
            self.repo.set_parsed({cid: parsed_to_dict(p) for (cid, _), p in zip(batch, parsed)})
            n += len(batch)
        studies = self.repo.study_texts()
        texts = [study_text(TrialRecord(nct_id=nct, title=title, conditions=tuple(conds)))
                 for nct, title, conds in studies]
        concepts = {nct: list(study_concepts(p)) for (nct, _, _), p in zip(studies, self.parse_criteria(texts))}
        if concepts:
            self.repo.set_concepts(concepts)
        self.repo.set_meta("parser_version", fingerprint)
        logger.info("re-parsed %d stored criteria for pipeline version %s", n, fingerprint)
        return n

    def ensure_trials(self, progress: bool = False) -> None:
        """Load the bundled trials into an empty database (first start)."""
        if self.repo.count() > 0 or not self.settings.get("AUTOLOAD_BUNDLED", True):
            if self.repo.count() > 0:
                self.ensure_parsed_current()
            return
        from assistant.ingest import ingest_paths

        logger.info("empty database: loading the bundled trials")
        from nlp.pipeline import pipeline_fingerprint

        report = ingest_paths(bundled_paths(Path(self.settings["DATA_DIR"])), self.repo,
                              parser=self.criterion_parser(), progress=progress)
        self.repo.set_meta("parser_version", pipeline_fingerprint())
        logger.info("bundled trials loaded: %s", report.summary())
