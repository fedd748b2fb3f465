"""scripts/probe.py talks to loopback only: any other target is refused before anything is sent."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("url", ["http://192.0.2.1:5000", "http://127.0.0.1.example.com:5000",
                                 "https://127.0.0.1:5000", "http://[2001:db8::1]:5000"])
def test_probe_refuses_non_loopback_targets(url, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TRIALMATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'never.sqlite3'}"}
    proc = subprocess.run([sys.executable, "scripts/probe.py", "--url", url], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "only talks to loopback" in proc.stderr
    assert not (tmp_path / "never.sqlite3").exists()  # refused before the database was opened
