"""Reading the JSON files under data/ (rules, lexicon tables, term maps): one place that turns a missing or
malformed file into the caller's own validation error naming the file. Each loader then validates the shape."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: str | Path, error: type[Exception], what: str = "") -> Any:
    """The parsed content of ``path``; a read or JSON error raises ``error("<path>: cannot read <what>: ...")``."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: cannot read{' ' + what if what else ''}: {exc}") from exc
