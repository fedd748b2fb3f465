"""Settings: one typed, frozen object listing every key.

Values come from ``config/default.toml`` (the documented defaults), then an optional TOML file named in
``TRIALMATCH_CONFIG``, then environment variables ``TRIALMATCH_<KEY>`` (every key has one), then the
overrides a caller passes (tests, CLI flags). Every value is coerced to the field's type and checked:
an unknown key or a value of the wrong type is an error at start, never a silently ignored setting.

``Settings`` is also a read-only mapping (``settings["DATABASE_URL"]``), which is what Flask's
``app.config.update`` and older call sites expect.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"
DATA_DIR = ROOT / "data"
ENV_PREFIX = "TRIALMATCH_"


class SettingsError(ValueError):
    """A setting is unknown, missing or of the wrong type."""


@dataclass(frozen=True, eq=False)
class Settings(Mapping[str, Any]):
    """Every setting of trialmatch. Defaults and their documentation live in ``config/default.toml``."""

    # storage
    DATABASE_URL: str
    INSTANCE_PATH: str
    DATA_DIR: str
    AUTOLOAD_BUNDLED: bool
    # matching
    CANDIDATE_DEPTH: int
    CHECK_DEPTH: int
    RELEVANCE_FLOOR: float
    RANKER_MODEL: str
    TOP_K: int
    DEFAULT_STATUSES: list[str]
    # corpus snapshot
    PRELOAD: bool
    SNAPSHOT_POLL_SECONDS: float
    SNAPSHOT_DECODED_MAX: int
    # service
    MAX_TEXT_CHARS: int
    EXTRACTION_BUDGET_SECONDS: float
    SESSION_TTL_MINUTES: int
    PURGE_INTERVAL_SECONDS: float
    REFERRAL_RETENTION_DAYS: float
    CORS_ORIGINS: list[str]
    RATE_LIMIT: str
    RATE_LIMIT_STORAGE_URL: str
    COORDINATOR_RATE_LIMIT: str
    REFERRAL_TEAMS: dict[str, list[str]]
    DEFAULT_TEAM: str
    PROXY_HOPS: int
    WORKERS: int
    THREADS: int
    HOST: str
    PORT: int
    LOG_LEVEL: str
    TESTING: bool
    # ClinicalTrials.gov sync
    CTGOV_API_URL: str
    CTGOV_TIMEOUT_SECONDS: float
    CTGOV_MAX_ATTEMPTS: int
    CTGOV_BACKOFF_SECONDS: float
    CTGOV_MAX_BACKOFF_SECONDS: float
    CTGOV_PAGE_SIZE: int

    # -- read-only mapping interface
    def __getitem__(self, key: str) -> Any:
        if key not in _FIELD_TYPES:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_TYPES)

    def __len__(self) -> int:
        return len(_FIELD_TYPES)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some keys changed (checked like any other source)."""
        return _build({**dict(self), **changes}, source="replace()")


_FIELD_TYPES: dict[str, Any] = {f.name: f.type for f in dataclasses.fields(Settings)}


def _resolved_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    return {name: hints[name] for name in _FIELD_TYPES}


def _coerce_env(raw: str, kind: Any) -> Any:
    """Read an environment string as ``kind``."""
    origin = typing.get_origin(kind) or kind
    if kind is bool:
        value = raw.strip().lower()
        if value not in {"1", "true", "yes", "on", "0", "false", "no", "off", ""}:
            raise ValueError(f"not a boolean: {raw!r}")
        return value in {"1", "true", "yes", "on"}
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if origin is list:
        raw = raw.strip()
        if raw.startswith("["):
            return json.loads(raw)
        return [item.strip() for item in raw.split(",") if item.strip()]
    if origin is dict:
        return json.loads(raw)
    return raw


def _check(name: str, value: Any, kind: Any, source: str) -> Any:
    origin = typing.get_origin(kind) or kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = isinstance(value, origin) and not (origin in (int, float) and isinstance(value, bool))
    if ok and origin is list:
        ok = all(isinstance(v, str) for v in value)
    if ok and origin is dict:
        ok = all(isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
                 for k, v in value.items())
    if not ok:
        raise SettingsError(f"{name} from {source}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _build(values: dict[str, Any], source: str) -> Settings:
    types = _resolved_types()
    missing = sorted(set(types) - set(values))
    if missing:
        raise SettingsError(f"settings without a value: {', '.join(missing)} (add them to config/default.toml)")
    return Settings(**{k: _check(k, values[k], types[k], source) for k in types})


def _merge(target: dict[str, Any], new: Mapping[str, Any], source: str) -> None:
    unknown = sorted(set(new) - set(_FIELD_TYPES))
    if unknown:
        raise SettingsError(f"unknown setting(s) in {source}: {', '.join(unknown)}")
    target.update(new)


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The effective settings: defaults, TRIALMATCH_CONFIG file, environment, then ``overrides``."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    with open(CONFIG_DIR / "default.toml", "rb") as fh:
        _merge(values, tomllib.load(fh), "config/default.toml")
    extra = environ.get(ENV_PREFIX + "CONFIG")
    if extra:
        with open(extra, "rb") as fh:
            _merge(values, tomllib.load(fh), extra)
    types = _resolved_types()
    for key, kind in types.items():
        raw = environ.get(ENV_PREFIX + key)
        if raw is None:
            continue
        try:
            values[key] = _coerce_env(raw, kind)
        except (ValueError, json.JSONDecodeError) as exc:
            raise SettingsError(f"{ENV_PREFIX}{key}: {exc}") from None
    if overrides:
        _merge(values, overrides, "overrides")
    instance = Path(values.get("INSTANCE_PATH") or ROOT / "instance")
    values["INSTANCE_PATH"] = str(instance)
    if not values.get("DATABASE_URL"):
        values["DATABASE_URL"] = f"sqlite:///{instance / 'trialmatch.sqlite3'}"
    if not values.get("DATA_DIR"):
        values["DATA_DIR"] = str(DATA_DIR)
    return _build(values, "settings")


def as_settings(values: Mapping[str, Any]) -> Settings:
    """``values`` as a checked ``Settings`` (a Settings is returned as is)."""
    if isinstance(values, Settings):
        return values
    return _build(dict(values), "a settings mapping")
