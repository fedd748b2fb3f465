"""Shared fixtures: settings on a temporary SQLite database, the trial repository, the real pipeline."""
from __future__ import annotations

from pathlib import Path

import pytest

from assistant.settings import load_settings


@pytest.fixture
def settings(tmp_path: Path) -> dict:
    return load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite3'}",
                          "INSTANCE_PATH": str(tmp_path / "instance"), "AUTOLOAD_BUNDLED": False},
                         environ={})


@pytest.fixture
def runtime(settings: dict):
    from assistant.runtime import Runtime

    return Runtime(settings)


@pytest.fixture
def repo(runtime):
    return runtime.repo
