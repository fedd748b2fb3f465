"""A runtime over a small trial set (the seeds, optionally with the fixture studies) and the shared pipeline."""
from __future__ import annotations

from pathlib import Path

import pytest


def runtime_over(tmp: Path, nlp, paths: list[Path]):
    from assistant.services import Services
    from assistant.settings import load_settings

    services = Services(load_settings({"DATABASE_URL": f"sqlite:///{tmp / 'trials.sqlite3'}",
                                       "INSTANCE_PATH": str(tmp), "AUTOLOAD_BUNDLED": False, "PRELOAD": False},
                                      environ={}), pipeline=nlp)
    services.ingest(paths)
    return services


@pytest.fixture(scope="module")
def seed_runtime(tmp_path_factory, nlp):
    from tests.helpers import SEEDS

    return runtime_over(tmp_path_factory.mktemp("seeds"), nlp, [SEEDS])


@pytest.fixture(scope="module")
def small_runtime(tmp_path_factory, nlp):
    from tests.helpers import FIXTURES, SEEDS

    return runtime_over(tmp_path_factory.mktemp("seed_ranking"), nlp, [SEEDS, FIXTURES / "studies_small.jsonl"])
