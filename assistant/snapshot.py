"""The corpus snapshot: everything the match path reads, immutable, one per corpus version.

A snapshot holds the fitted retrieval index (with each trial's filter metadata) and every trial record
with its parsed criteria. It is built from the database once per corpus version (at start, after an
ingest, or when another process changed the corpus), saved in the instance folder so other workers and
CLI commands load it instead of rebuilding it, and swapped in by replacing one reference: a request
holds the snapshot it started with and never sees a half-updated corpus, never reads trials from the
database, never parses and never fits.

Trial records are kept as compressed pickles (about 3 KB a trial) and decoded on first use into a
bounded cache, so 100k trials fit in memory; a corpus of at most ``decoded_max`` trials is decoded
entirely in the background once the snapshot is in place.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from assistant.matching.filters import Filters
from assistant.matching.index import CorpusIndex
from assistant.matching.retrieval import Hits
from models.domain import CriterionText, ParsedCriterion, TrialRecord

logger = logging.getLogger(__name__)
# 2: the retrieval index keeps its vocabulary and IDF instead of a scikit-learn vectorizer (index format 3)
# 3: the retriever keeps compressed token ids instead of the per-field matrices (index format 4)
# 4: a small corpus's retriever keeps its per-field rows as well (index format 5)
FORMAT = 4
Parser = Callable[[Sequence[str]], Sequence[ParsedCriterion]]


def snapshot_key(corpus_version: str | None, fingerprint: str) -> str:
    """Which snapshot a database state needs: its corpus version read by this pipeline version."""
    return hashlib.sha256(f"{corpus_version}|{fingerprint}".encode()).hexdigest()[:16]


class TrialStore:
    """Trial records by NCT id: compressed pickles plus a bounded cache of decoded records (thread-safe)."""

    def __init__(self, blobs: dict[str, bytes], decoded_max: int = 20_000) -> None:
        self._blobs = blobs
        self._max = max(0, decoded_max)
        self._decoded: OrderedDict[str, TrialRecord] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def encode(record: TrialRecord) -> bytes:
        return zlib.compress(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL), 1)

    def __len__(self) -> int:
        return len(self._blobs)

    def __contains__(self, nct_id: object) -> bool:
        return nct_id in self._blobs

    @property
    def blobs(self) -> dict[str, bytes]:
        return self._blobs

    def get(self, nct_id: str) -> TrialRecord | None:
        with self._lock:
            record = self._decoded.get(nct_id)
            if record is not None:
                self._decoded.move_to_end(nct_id)
                return record
        blob = self._blobs.get(nct_id)
        if blob is None:
            return None
        record = pickle.loads(zlib.decompress(blob))  # noqa: S301 - our own snapshot, built by this process
        self._remember(nct_id, record)
        return record

    def get_many(self, nct_ids: Iterable[str]) -> dict[str, TrialRecord]:
        out = {}
        for nct_id in nct_ids:
            record = self.get(nct_id)
            if record is not None:
                out[nct_id] = record
        return out

    def _remember(self, nct_id: str, record: TrialRecord) -> None:
        if self._max == 0:
            return
        with self._lock:
            self._decoded[nct_id] = record
            self._decoded.move_to_end(nct_id)
            while len(self._decoded) > self._max:
                self._decoded.popitem(last=False)

    def warm(self, stop: threading.Event | None = None) -> int:
        """Decode every trial when the whole corpus fits in the cache (run off the request path)."""
        if len(self._blobs) > self._max:
            return 0
        n = 0
        for nct_id in list(self._blobs):
            if stop is not None and stop.is_set():
                break
            self.get(nct_id)
            n += 1
            if n % 50 == 0:
                time.sleep(0.002)  # hand the interpreter to request threads between small chunks
        return n


@dataclass(frozen=True)
class CorpusSnapshot:
    key: str
    version: str | None
    fingerprint: str
    index: CorpusIndex
    trials: TrialStore

    def search(self, query: str | list[tuple[str, float]], k: int, filters: Filters) -> Hits:
        return self.index.search(query, k=k, filters=filters)

    def get_many(self, nct_ids: Iterable[str]) -> dict[str, TrialRecord]:
        return self.trials.get_many(nct_ids)

    # ------------------------------------------------------------------ build, save, load

    @classmethod
    def build(cls, records: Iterable[TrialRecord], version: str | None, fingerprint: str,
              parse: Parser | None = None, decoded_max: int = 20_000) -> "CorpusSnapshot":
        """Fit the index and encode the records. Criteria stored without a parse are parsed here (in
        batches), never on the request path."""
        blobs: dict[str, bytes] = {}

        def encoded() -> Iterator[TrialRecord]:
            for record in _parsed(records, parse):
                blobs[record.nct_id] = TrialStore.encode(record)
                yield record

        index = CorpusIndex.build(encoded(), version)
        return cls(snapshot_key(version, fingerprint), version, fingerprint, index, TrialStore(blobs, decoded_max))

    def save(self, path: Path) -> None:
        """Write atomically: readers see the previous file or this one, never a part."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        data = {"format": FORMAT, "key": self.key, "version": self.version, "fingerprint": self.fingerprint,
                "index": self.index, "blobs": self.trials.blobs}
        with open(tmp, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, key: str, decoded_max: int = 20_000) -> "CorpusSnapshot | None":
        """The saved snapshot when it is the one ``key`` names, else None."""
        try:
            with open(path, "rb") as fh:
                data = pickle.load(fh)  # noqa: S301 - our own file in the instance folder
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
            return None
        return cls(key, data["version"], data["fingerprint"], data["index"],
                   TrialStore(data["blobs"], decoded_max))


def _parsed(records: Iterable[TrialRecord], parse: Parser | None, batch: int = 200) -> Iterator[TrialRecord]:
    """The records with every criterion parsed (those stored without a parse are parsed in batches)."""
    pending: list[TrialRecord] = []

    def flush() -> Iterator[TrialRecord]:
        todo = list(dict.fromkeys(c.text for t in pending for c in t.criteria if c.parsed is None))
        parsed = dict(zip(todo, parse(todo))) if todo and parse is not None else {}
        for t in pending:
            crits: list[CriterionText] = [c if c.parsed is not None or c.text not in parsed
                                          else replace(c, parsed=parsed[c.text]) for c in t.criteria]
            yield replace(t, criteria=tuple(crits)) if parsed else t
        pending.clear()

    for record in records:
        if parse is None or all(c.parsed is not None for c in record.criteria):
            if pending:
                yield from flush()
            yield record
            continue
        pending.append(record)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of one host (gunicorn workers, CLI commands).

    Where ``fcntl`` does not exist the lock is a no-op: the work it guards is idempotent, only repeated.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
