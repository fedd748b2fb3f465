"""Helpers shared by tests (paths, fixture data)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED = REPO.parent / "shared"
FIXTURES = TESTS / "fixtures"
SEEDS = REPO / "data" / "trials" / "seeds"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is absent (a user's clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared not present ({path})")
    return path


def fixture_studies() -> list[dict]:
    with open(FIXTURES / "studies_small.jsonl", encoding="utf-8") as fh:
        studies = [json.loads(line) for line in fh]
    studies += [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SEEDS.glob("NCT*.json"))]
    return studies
