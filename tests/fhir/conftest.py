"""One app per module over the fixture trials and the two seed trials (SQLite), and the FHIR fixture bundles.

The bundles were written on AUTHORED; ``load_bundle(name, today)`` moves every full date by the days since then,
so an onset "two months ago" stays two months ago whenever the tests run.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from tests.conftest import make_test_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
AUTHORED = dt.date(2026, 11, 29)
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(.*)$")


def _shift(value, days: int):  # type: ignore[no-untyped-def]
    if isinstance(value, dict):
        return {k: _shift(v, days) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, days) for v in value]
    if isinstance(value, str):
        m = _DAY.match(value)
        if m:
            try:
                return (dt.date.fromisoformat(m.group(1)) + dt.timedelta(days=days)).isoformat() + m.group(2)
            except ValueError:  # an invalid date on purpose (the bad bundle)
                return value
    return value


def load_bundle(name: str, today: dt.date = AUTHORED) -> dict:
    return _shift(json.loads((FIXTURES / name).read_text(encoding="utf-8")), (today - AUTHORED).days)


@pytest.fixture(scope="module")
def fhir_app(tmp_path_factory, nlp, studies_file):
    app = make_test_app(tmp_path_factory.mktemp("fhir"), nlp, studies_file)
    yield app
    app.extensions["trialmatch"].engine.dispose()


@pytest.fixture(scope="module")
def fhir_client(fhir_app):
    return fhir_app.test_client()
