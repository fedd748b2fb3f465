"""The derived-data cache: what is a pure function of the data files and the code, saved once per host.

Building the lexicon from ``data/lexicons`` and preparing the terminology matcher take about a second each
time a process starts; their results depend only on the files and on the code that reads them, so they are
kept as pickles under :func:`cache_dir` and loaded by the next process instead of being computed again.

A cache file holds ``{"format", "key", "value"}``. Its key names what it was built from (for the lexicon:
:func:`source_fingerprint`, the hash of the NLP code, rules and lexicon files that the pipeline fingerprint
is). :func:`load` returns None for a missing file, another format or another key (the caller builds the value
and saves it again) and, with a warning in the log, for a file it cannot read; it never raises. :func:`save`
writes a temporary file and renames it over the old one, so a reader sees the old file or the new one, never a
part; it never raises either (a read-only home only costs the next process the build).
"""
from __future__ import annotations

import copyreg
import gc
import hashlib
import io
import logging
import os
import pickle
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

logger = logging.getLogger(__name__)
FORMAT = 1
ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path | None:
    """Where derived data is cached: ``$TRIALMATCH_CACHE_DIR`` (empty string: no cache), else
    ``$XDG_CACHE_HOME/trialmatch`` or ``~/.cache/trialmatch``."""
    env = os.environ.get("TRIALMATCH_CACHE_DIR")
    if env is not None:
        return Path(env) if env.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trialmatch"


def source_fingerprint(root: Path = ROOT) -> str:
    """A hash of everything that shapes extraction: the NLP code, ``data/rules`` and ``data/lexicons``
    (the pipeline fingerprint, :func:`nlp.pipeline.pipeline_fingerprint`)."""
    digest = hashlib.sha1()
    files = sorted([*root.joinpath("nlp").rglob("*.py"), *root.joinpath("data", "rules").glob("*"),
                    *root.joinpath("data", "lexicons").glob("*")])
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def read_only(data: dict[Any, Any]) -> Mapping[Any, Any]:
    """A read-only view of ``data`` (how a pickled ``MappingProxyType`` is restored)."""
    return MappingProxyType(data)


def _reduce_proxy(proxy: MappingProxyType) -> tuple[Any, tuple[dict[Any, Any]]]:
    return read_only, (dict(proxy),)


class _Pickler(pickle.Pickler):
    # Read-only views (entry codes of the lexicon) are pickled as the dicts they show.
    dispatch_table = {**copyreg.dispatch_table, MappingProxyType: _reduce_proxy}


def dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def load(path: Path, key: str) -> Any | None:
    """The value saved in ``path`` under ``key``; None when there is none (missing, stale, unreadable)."""
    collecting = gc.isenabled()
    gc.disable()  # unpickling creates ~10^5 objects and no garbage: collections would only add time (x2)
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - our own file, written by save()
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any damage means: build it again
        logger.warning("derived-data cache file %s is unreadable (%s); it will be rebuilt", path,
                       type(exc).__name__)
        return None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
        return None
    return data.get("value")


def save(path: Path, key: str, value: Any) -> bool:
    """Write ``value`` under ``key`` to ``path`` atomically; False (logged) when it cannot be written."""
    tmp = None
    try:
        payload = dumps({"format": FORMAT, "key": key, "python": sys.version_info[:2], "value": value})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, path)
        return True
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        logger.warning("could not write the derived-data cache file %s (%s)", path, type(exc).__name__)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False
