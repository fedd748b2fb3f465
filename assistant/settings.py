"""Settings: ``config/default.toml``, then an optional TOML file, then environment variables."""
from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"
DATA_DIR = ROOT / "data"
ENV_PREFIX = "TRIALMATCH_"


def _coerce(raw: str, default: Any) -> Any:
    """Read an environment string as the type of the default value."""
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, list):
        raw = raw.strip()
        if raw.startswith("["):
            return json.loads(raw)
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the effective settings as a plain dict (upper-case keys)."""
    environ = dict(os.environ) if environ is None else environ
    with open(CONFIG_DIR / "default.toml", "rb") as fh:
        settings: dict[str, Any] = tomllib.load(fh)
    extra = environ.get(ENV_PREFIX + "CONFIG")
    if extra:
        with open(extra, "rb") as fh:
            settings.update(tomllib.load(fh))
    for key, default in list(settings.items()):
        if ENV_PREFIX + key in environ:
            settings[key] = _coerce(environ[ENV_PREFIX + key], default)
    if overrides:
        settings.update(overrides)
    instance = Path(settings.get("INSTANCE_PATH") or ROOT / "instance")
    settings["INSTANCE_PATH"] = str(instance)
    if not settings.get("DATABASE_URL"):
        settings["DATABASE_URL"] = f"sqlite:///{instance / 'trialmatch.sqlite3'}"
    settings.setdefault("DATA_DIR", str(DATA_DIR))
    return settings
