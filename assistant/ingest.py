"""Read ClinicalTrials.gov API v2 study JSON in every shape users have and upsert it.

Shapes: one study object, a search response ``{"studies": [...]}``, a JSON array,
JSON Lines (optionally gzip-compressed), a folder of such files, and the bulk
download zip of study JSON files. A malformed record is reported with its
position and reason and skipped; every batch is one transaction.
"""
from __future__ import annotations

import gzip
import json
import logging
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy.exc import SQLAlchemyError

from models.ctgov import InvalidRecord, parse_study
from models.domain import CriterionText, ParsedCriterion, TrialRecord, parsed_from_dict, parsed_to_dict
from models.repository import PARSER_VERSION_KEY, TrialRepository, UpsertCounts, text_key
from nlp.criteria import split_criteria

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 5_000_000  # one study larger than this is rejected
CriterionParser = Callable[[Sequence[str]], Sequence[ParsedCriterion]]
PARSES_FORMAT = 1  # version of the shipped parses file layout (data/trials/parses.jsonl.gz)


class RawItem(NamedTuple):
    position: str
    obj: Any  # the decoded study object, or None when ``error`` is set
    error: str | None = None


@dataclass
class ParseStats:
    """Texts sent for parsing: all of them, distinct per batch, found in the parse cache, parsed now."""

    texts: int = 0
    distinct: int = 0
    cached: int = 0
    parsed: int = 0

    def __iadd__(self, other: "ParseStats") -> "ParseStats":
        self.texts += other.texts
        self.distinct += other.distinct
        self.cached += other.cached
        self.parsed += other.parsed
        return self


@dataclass
class IngestReport:
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    parse: ParseStats = field(default_factory=ParseStats)
    flagged: int = 0  # open referrals flagged for review because their trial changed

    def __iadd__(self, other: "IngestReport") -> "IngestReport":
        self.counts += other.counts
        self.rejected.extend(other.rejected)
        self.seconds += other.seconds
        self.parse += other.parse
        self.flagged += other.flagged
        return self

    @property
    def processed(self) -> int:
        c = self.counts
        return c.added + c.updated + c.unchanged + len(self.rejected)

    def summary(self) -> str:
        c = self.counts
        rate = self.processed / self.seconds if self.seconds > 0 else 0.0
        return (f"added {c.added}, updated {c.updated}, unchanged {c.unchanged}, rejected {len(self.rejected)} "
                f"in {self.seconds:.1f}s ({rate:.0f} trials/s)")


# --------------------------------------------------------------------------- readers


def items_from_document(doc: Any, position: str) -> Iterator[RawItem]:
    if isinstance(doc, dict) and isinstance(doc.get("studies"), list):
        for i, study in enumerate(doc["studies"]):
            yield RawItem(f"{position} studies[{i}]", study)
    elif isinstance(doc, list):
        for i, study in enumerate(doc):
            yield RawItem(f"{position} [{i}]", study)
    else:
        yield RawItem(position, doc)


def _read_lines(lines: Iterable[bytes], name: str) -> Iterator[RawItem]:
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        position = f"{name}:{lineno}"
        if len(line) > MAX_RECORD_BYTES:
            yield RawItem(position, None, f"record of {len(line)} bytes exceeds {MAX_RECORD_BYTES}")
            continue
        try:
            doc = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            yield RawItem(position, None, f"invalid JSON ({exc.msg if hasattr(exc, 'msg') else exc})")
            continue
        except RecursionError:
            yield RawItem(position, None, "invalid JSON (nested too deeply)")
            continue
        yield from items_from_document(doc, position)


def _read_blob(data: bytes, name: str) -> Iterator[RawItem]:
    """A .json blob: one document, or JSON Lines when it is not one document."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError:
        yield from _read_lines(data.splitlines(), name)
        return
    except RecursionError:
        yield RawItem(name, None, "invalid JSON (nested too deeply)")
        return
    except UnicodeDecodeError as exc:
        yield RawItem(name, None, f"not UTF-8 text ({exc.reason})")
        return
    yield from items_from_document(doc, name)


def _read_zip(path: Path) -> Iterator[RawItem]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.lower().endswith((".json", ".jsonl", ".ndjson")):
                continue
            name = f"{path.name}!{info.filename}"
            if info.file_size > 50 * MAX_RECORD_BYTES:
                yield RawItem(name, None, f"member of {info.file_size} bytes is too large")
                continue
            yield from _read_blob(archive.read(info), name)


def read_studies(path: Path) -> Iterator[RawItem]:
    """Yield every study object found at ``path`` with its position."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix.lower() in {".json", ".jsonl", ".ndjson", ".zip", ".gz"}:
                yield from read_studies(child)
        return
    name = path.name
    lower = name.lower()
    if lower.endswith(".zip"):
        yield from _read_zip(path)
    elif lower.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            yield from _read_lines(fh, name)
    elif lower.endswith((".jsonl", ".ndjson")):
        with open(path, "rb") as fh:
            yield from _read_lines(fh, name)
    else:
        yield from _read_blob(path.read_bytes(), name)


def count_studies(paths: Iterable[Path]) -> int:
    """How many records ``paths`` hold (a line-delimited file is counted by its lines, without parsing)."""
    total = 0
    for path in paths:
        if path.is_file() and path.name.lower().endswith((".jsonl.gz", ".ndjson.gz", ".jsonl", ".ndjson")):
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "rb") as fh:
                total += sum(1 for line in fh if line.strip())
        elif path.exists():
            total += sum(1 for _ in read_studies(path))
    return total


# --------------------------------------------------------------------------- ingestion


def with_criteria(record: TrialRecord) -> TrialRecord:
    """The record with its eligibility text split into criteria."""
    return replace(record, criteria=tuple(split_criteria(record.eligibility_text)))


def study_text(record: TrialRecord) -> str:
    """What a trial is about, for reading its conditions under study."""
    return f"{record.title}. {'; '.join(record.conditions)}"[:2000]


def study_concepts(parsed: ParsedCriterion) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c for r in parsed.requirements if r.type == "condition" and r.present
                               for c in r.concepts))


def parse_cached(texts: Iterable[str], parser: CriterionParser, repo: TrialRepository | None,
                 fingerprint: str | None) -> tuple[dict[str, ParsedCriterion], dict[str, dict[str, Any]], ParseStats]:
    """Parse each distinct text once: from the parse cache when it holds it, else with ``parser``.

    Returns the parse of every distinct text, the new cache rows (text hash -> parsed dict; the caller
    writes them in the transaction that stores the parses) and the counts. Without ``repo`` or
    ``fingerprint`` there is no cache: every distinct text is parsed.
    """
    texts = list(texts)
    distinct = list(dict.fromkeys(texts))
    stats = ParseStats(texts=len(texts), distinct=len(distinct))
    results: dict[str, ParsedCriterion] = {}
    new_rows: dict[str, dict[str, Any]] = {}
    missing = distinct
    if repo is not None and fingerprint:
        keys = {t: text_key(t) for t in distinct}
        found = repo.cached_parses(keys.values(), fingerprint)
        missing = []
        for t in distinct:
            data = found.get(keys[t])
            if data is None:
                missing.append(t)
            else:
                results[t] = parsed_from_dict(t[:5000], data)
        stats.cached = len(distinct) - len(missing)
    if missing:
        parsed = list(parser(missing))
        if len(parsed) != len(missing):
            raise ValueError(f"the parser returned {len(parsed)} results for {len(missing)} texts")
        for t, p in zip(missing, parsed):
            results[t] = p
            if repo is not None and fingerprint:
                new_rows[text_key(t)] = parsed_to_dict(p)
    stats.parsed = len(missing)
    return results, new_rows, stats


def attach_parsed(records: list[TrialRecord], parser: CriterionParser) -> list[TrialRecord]:
    """The records with their criteria parsed (each distinct text once) and their study concepts read."""
    return _attach_parsed_cached(records, parser)[0]


def _attach_parsed_cached(records: list[TrialRecord], parser: CriterionParser, repo: TrialRepository | None = None,
                          fingerprint: str | None = None
                          ) -> tuple[list[TrialRecord], dict[str, dict[str, Any]], ParseStats]:
    texts = [c.text for r in records for c in r.criteria] + [study_text(r) for r in records]
    results, new_rows, stats = parse_cached(texts, parser, repo, fingerprint)
    out = []
    for record in records:
        criteria: list[CriterionText] = [replace(c, parsed=results[c.text]) for c in record.criteria]
        out.append(replace(record, criteria=tuple(criteria), concepts=study_concepts(results[study_text(record)])))
    return out, new_rows, stats


def _rows_of(record: TrialRecord, rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The new cache rows among ``rows`` that ``record``'s texts produced."""
    if not rows:
        return {}
    keys = {text_key(c.text) for c in record.criteria} | {text_key(study_text(record))}
    return {k: rows[k] for k in keys if k in rows}


def ingest(items: Iterable[RawItem], repo: TrialRepository, *, parser: CriterionParser | None = None,
           batch_size: int = 500, progress: bool = False, total: int | None = None,
           fingerprint: str | None = None, cache: bool = True, stamp_parser_version: bool = False,
           on_batch: Callable[[int], None] | None = None) -> IngestReport:
    """Upsert the studies of ``items`` in batches; bad records are rejected, never fatal.

    With a ``parser``, criterion texts are parsed once per distinct text per batch, through the parse
    cache keyed by ``fingerprint`` (default: the pipeline fingerprint; ``cache=False`` bypasses it).
    New cache rows are written in the batch's transaction, and with ``stamp_parser_version`` so is
    the corpus meta ``parser_version`` (the first load of an empty database). ``on_batch`` is called
    with the number of records read so far after every stored batch (progress for /health).
    """
    report = IngestReport()
    if parser is not None and fingerprint is None:
        from nlp.pipeline import pipeline_fingerprint

        fingerprint = pipeline_fingerprint()
    cache_repo = repo if parser is not None and cache else None
    meta = {PARSER_VERSION_KEY: fingerprint} if parser is not None and stamp_parser_version and fingerprint else None
    version = fingerprint if parser is not None else None
    started = time.perf_counter()
    batch: dict[str, TrialRecord] = {}
    positions: dict[str, str] = {}
    bar = None
    seen = {"n": 0}
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="trial", desc="loading trials", leave=False, mininterval=1.0,
                   bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]" if total else None)


    def flush() -> None:
        if not batch:
            return
        stored = repo.stored_state(batch)
        todo = [with_criteria(r) for r in batch.values() if not repo.is_unchanged(r, stored.get(r.nct_id))]
        report.counts.unchanged += len(batch) - len(todo)
        new_rows: dict[str, dict[str, Any]] = {}
        if parser is not None and todo:
            todo, new_rows, stats = _attach_parsed_cached(todo, parser, cache_repo, fingerprint)
            report.parse += stats
        try:
            report.counts += repo.upsert(todo, parser_version=version, cache_rows=new_rows, meta=meta)
        except SQLAlchemyError:
            # the database refused the batch (it rolled back as a whole): store record by record so
            # one bad record is rejected with its reason and the others still land
            for record in todo:
                try:
                    report.counts += repo.upsert([record], parser_version=version,
                                                 cache_rows=_rows_of(record, new_rows), meta=meta)
                except SQLAlchemyError as exc:
                    cause = getattr(exc, "orig", None) or exc
                    report.rejected.append((positions[record.nct_id], f"database refused it ({type(cause).__name__})"))
        batch.clear()
        positions.clear()
        if on_batch is not None:
            on_batch(seen["n"])

    for item in items:
        seen["n"] += 1
        if bar is not None:
            bar.update(1)
        if item.error is not None:
            report.rejected.append((item.position, item.error))
            continue
        try:
            record = parse_study(item.obj)
        except InvalidRecord as exc:
            report.rejected.append((item.position, str(exc)))
            continue
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a shape parse_study missed
            report.rejected.append((item.position, f"unreadable record ({type(exc).__name__})"))
            continue
        if record.nct_id in batch:  # duplicate inside one batch: the later one wins at flush
            flush()
        batch[record.nct_id] = record
        positions[record.nct_id] = item.position
        if len(batch) >= batch_size:
            flush()
    flush()
    if bar is not None:
        bar.close()
    report.seconds = time.perf_counter() - started
    logger.info("ingest finished: %s", report.summary())
    return report


def iter_paths(paths: Iterable[Path]) -> Iterator[RawItem]:
    """The studies of every path in turn; a missing path is one rejected item."""
    for path in paths:
        if not path.exists():
            yield RawItem(str(path), None, "no such file or directory")
            continue
        yield from read_studies(path)


def ingest_paths(paths: Iterable[Path], repo: TrialRepository, **kwargs: Any) -> IngestReport:
    return ingest(iter_paths(paths), repo, **kwargs)


# --------------------------------------------------------------------------- shipped parses


def read_parses_header(path: Path) -> dict[str, Any] | None:
    """The header of a parses file (``{"format", "fingerprint", "count"}``), None when missing or unreadable."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            header = json.loads(fh.readline())
    except (OSError, EOFError, ValueError):
        return None
    if not isinstance(header, dict) or header.get("format") != PARSES_FORMAT or not header.get("fingerprint"):
        return None
    return header


def iter_parses_file(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(text sha256, parsed dict) of every line after the header."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        fh.readline()
        for line in fh:
            if line.strip():
                key, parsed = json.loads(line)
                yield key, parsed


def write_parses_file(path: Path, fingerprint: str, rows: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Write (text sha256, parsed dict) rows, sorted by hash, under a header naming the fingerprint."""
    ordered = sorted(rows, key=lambda r: r[0])
    tmp = path.with_name(path.name + ".tmp")
    # mtime=0: the same parses give the same bytes (a stable file in version control)
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        header = {"format": PARSES_FORMAT, "fingerprint": fingerprint, "count": len(ordered)}
        gz.write((json.dumps(header) + "\n").encode("utf-8"))
        for key, parsed in ordered:
            gz.write((json.dumps([key, parsed], separators=(",", ":"), sort_keys=True)
                      + "\n").encode("utf-8"))
    tmp.replace(path)
    return len(ordered)


def seed_parse_cache(repo: TrialRepository, path: Path, fingerprint: str) -> int | None:
    """Load a shipped parses file into the parse cache when it was made by ``fingerprint``.

    Returns the number of rows read, or None when the file is missing or from another pipeline
    version (then ingest parses what it needs).
    """
    header = read_parses_header(path)
    if header is None or header["fingerprint"] != fingerprint:
        return None
    return repo.seed_parse_cache(iter_parses_file(path), fingerprint)
