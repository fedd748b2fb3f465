"""Two versions of the fixture trials: v2 changes the title, every criterion and every location of each trial,
so a half-updated trial is visible as a mix of v1 and v2 text."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from tests.helpers import fixture_studies


def make_version(study: dict, version: int) -> dict:
    s = copy.deepcopy(study)
    p = s["protocolSection"]
    p["identificationModule"]["briefTitle"] = f"{p['identificationModule'].get('briefTitle', 'Trial')} [v{version}]"
    status = p.setdefault("statusModule", {})
    status["lastUpdatePostDateStruct"] = {"date": f"202{version}-01-01"}
    elig = p.setdefault("eligibilityModule", {})
    lines = (elig.get("eligibilityCriteria") or "Inclusion Criteria:\n\n* Adults").splitlines()
    elig["eligibilityCriteria"] = "\n".join(f"{line} [v{version}]" if line.strip().startswith(("*", "-")) or
                                            line.strip()[:1].isdigit() else line for line in lines)
    if not any("[v" in line for line in elig["eligibilityCriteria"].splitlines()):
        elig["eligibilityCriteria"] = f"Inclusion Criteria:\n\n* Adults [v{version}]"
    p.setdefault("contactsLocationsModule", {})["locations"] = [
        {"facility": f"Site [v{version}]", "city": "Boston", "country": "United States", "status": "RECRUITING"}]
    return s


def write_version(path: Path, version: int, studies: list[dict] | None = None) -> Path:
    studies = studies if studies is not None else fixture_studies()
    path.write_text("".join(json.dumps(make_version(s, version)) + "\n" for s in studies), encoding="utf-8")
    return path


def version_of(trial) -> set[int]:  # type: ignore[no-untyped-def]
    """Every version tag seen in a stored trial's title, criteria and locations."""
    texts = [trial.title] + [c.text for c in trial.criteria] + [loc.facility or "" for loc in trial.locations]
    found = set()
    for text in texts:
        for v in (1, 2):
            if f"[v{v}]" in text:
                found.add(v)
    return found
