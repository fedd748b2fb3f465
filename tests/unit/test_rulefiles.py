"""The one reader of JSON data files: a missing or malformed file is the caller's error, naming the file."""
from __future__ import annotations

import pytest

from assistant.matching.policy import PolicyError, load_policy
from nlp.rulefiles import read_json
from nlp.units import UnitRulesError, load_unit_rules


def test_read_json_returns_the_content(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(path, ValueError) == {"a": [1, 2]}


@pytest.mark.parametrize("content", [None, "{not json", b"\xff\xfe\x00"])
def test_unreadable_files_raise_the_callers_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(UnitRulesError, match=r"broken\.json: cannot read unit rules"):
        load_unit_rules(path)
    with pytest.raises(PolicyError, match=r"broken\.json: cannot read"):
        load_policy(str(path))
