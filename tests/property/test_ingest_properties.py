"""Property tests of ingestion on malformed ClinicalTrials.gov records (JSON Lines).

Each generated file mixes valid studies, tolerated oddities (missing modules,
unknown keys with nested garbage, unparseable dates ...), malformed records
(wrong types on fields the parser reads, missing/bad NCT ids, non-object
lines, invalid JSON) and hazardous values (NaN/Infinity, huge integers, NUL
characters, lone surrogates, strings longer than a column, deep nesting).

Properties, on SQLite and PostgreSQL (the ``repo`` fixture):

* ``ingest_paths`` never raises;
* every valid or tolerated record is stored, every malformed record is in
  ``report.rejected`` with its position (``file:line`` or ``file:line [i]``) and a
  non-empty reason, and nothing valid is rejected;
* a hazardous record is either rejected (with its position) or stored and readable;
* a later batch of bad versions of stored trials leaves them (and the corpus version) unchanged.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from assistant.ingest import MAX_RECORD_BYTES, ingest_paths
from models.ctgov import MAX_TEXT_FIELD, InvalidRecord, parse_study

DELETE = object()
DEEP_MARK = "__deep_nesting_placeholder__"
_ids = itertools.count(random.Random().randrange(1_000_000, 9_000_000, 1000))  # fresh NCT ids per run
_files = itertools.count()

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


def new_nct() -> str:
    return f"NCT0{next(_ids):07d}"


def valid_study(nct_id: str) -> dict[str, Any]:
    return {
        "protocolSection": {
            "identificationModule": {"nctId": nct_id, "briefTitle": f"Study {nct_id} of drug A in lupus nephritis",
                                     "officialTitle": "A randomized study"},
            "statusModule": {"overallStatus": "RECRUITING", "lastUpdatePostDateStruct": {"date": "2024-05-01"}},
            "descriptionModule": {"briefSummary": "Summary.", "detailedDescription": "Details."},
            "conditionsModule": {"conditions": ["Lupus Nephritis"], "keywords": ["SLE"]},
            "designModule": {"studyType": "INTERVENTIONAL", "phases": ["PHASE2"], "enrollmentInfo": {"count": 40}},
            "armsInterventionsModule": {"interventions": [{"name": "Drug A", "type": "DRUG", "otherNames": ["A-1"]}]},
            "eligibilityModule": {
                "eligibilityCriteria": "Inclusion Criteria:\n\n* Age >= 18 years\n* Biopsy-proven lupus nephritis\n"
                                       "\nExclusion Criteria:\n\n* Pregnancy\n* eGFR < 30 mL/min/1.73m2",
                "sex": "ALL", "minimumAge": "18 Years", "maximumAge": "75 Years", "healthyVolunteers": False},
            "contactsLocationsModule": {"locations": [{"facility": "General Hospital", "city": "Boston",
                                                       "state": "Massachusetts", "country": "United States",
                                                       "zip": "02114", "status": "RECRUITING",
                                                       "geoPoint": {"lat": 42.36, "lon": -71.06}}]},
        },
        "derivedSection": {"miscInfoModule": {"versionHolder": "2024-05-02"}},
        "hasResults": False,
    }


def apply(study: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """Set (or delete) ``path`` in a copy of ``study``; missing intermediate objects are created."""
    study = copy.deepcopy(study)
    obj = study
    for key in path[:-1]:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    if value is DELETE:
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = value
    return study


# --------------------------------------------------------------------------- value strategies

safe_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
json_scalar = st.none() | st.booleans() | st.integers(-(2**31), 2**31 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | safe_text
garbage = st.recursive(json_scalar, lambda kids: st.lists(kids, max_size=4) |
                       st.dictionaries(safe_text, kids, max_size=4), max_leaves=15)
not_str = st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.booleans() | \
    st.lists(json_scalar, max_size=3) | st.dictionaries(safe_text, json_scalar, max_size=3)
not_obj = st.integers() | st.booleans() | safe_text | st.lists(json_scalar, max_size=3)  # non-null, non-dict
not_list = st.integers() | st.booleans() | safe_text | st.dictionaries(safe_text, json_scalar, max_size=3)

P = ("protocolSection",)
ID = P + ("identificationModule",)
STATUS = P + ("statusModule",)
DESC = P + ("descriptionModule",)
COND = P + ("conditionsModule",)
DESIGN = P + ("designModule",)
ARMS = P + ("armsInterventionsModule",)
ELIG = P + ("eligibilityModule",)
LOCS = P + ("contactsLocationsModule",)
MODULES = [ID, STATUS, DESC, COND, DESIGN, ARMS, ELIG, LOCS]
OPTIONAL_MODULES = [STATUS, DESC, COND, DESIGN, ARMS, ELIG, LOCS]
# (statusModule.lastUpdateSubmitDate is only read when lastUpdatePostDateStruct.date is absent, so it is not here)
STRING_FIELDS = [ID + ("briefTitle",), ID + ("officialTitle",), STATUS + ("overallStatus",),
                 STATUS + ("lastUpdatePostDateStruct", "date"),
                 DESC + ("briefSummary",), DESC + ("detailedDescription",), DESIGN + ("studyType",),
                 ELIG + ("eligibilityCriteria",), ELIG + ("sex",), ELIG + ("minimumAge",), ELIG + ("maximumAge",)]
LIST_FIELDS = [COND + ("conditions",), COND + ("keywords",), DESIGN + ("phases",)]
LOCATION0 = LOCS + ("locations",)


@st.composite
def must_reject(draw) -> tuple[tuple[str, ...], Any]:
    """A mutation that parse_study's contract says makes the record unusable."""
    kind = draw(st.sampled_from(["module", "protocol", "nct", "string", "list", "list_item", "interventions",
                                 "locations", "enrollment", "nested_obj"]))
    if kind == "module":
        return draw(st.sampled_from(MODULES)), draw(not_obj)
    if kind == "protocol":
        return P, draw(st.just(DELETE) | not_obj)
    if kind == "nct":
        bad_id = st.just(DELETE) | st.just("") | not_str | st.sampled_from(
            ["NCT123", "NCT0123456789", "nct01234567", "NCT0123456A", " ", "NCT01234567\nNCT01234567", "NCT０１２３４５６７"])
        return ID + ("nctId",), draw(bad_id)
    if kind == "string":
        return draw(st.sampled_from(STRING_FIELDS)), draw(not_str)
    if kind == "list":
        return draw(st.sampled_from(LIST_FIELDS)), draw(not_list)
    if kind == "list_item":
        items = draw(st.lists(safe_text, max_size=3))
        items.insert(draw(st.integers(0, len(items))), draw(not_str))
        return draw(st.sampled_from(LIST_FIELDS)), items
    if kind == "interventions":
        return ARMS + ("interventions",), draw(not_list | st.lists(
            st.dictionaries(st.sampled_from(["type", "otherNames"]), json_scalar) | not_obj, min_size=1, max_size=3)
            .filter(lambda xs: any(not isinstance(x, dict) or not isinstance(x.get("name"), str) for x in xs)))
    if kind == "locations":
        return LOCATION0, draw(not_list | st.lists(not_obj, min_size=1, max_size=3))
    if kind == "enrollment":
        return DESIGN + ("enrollmentInfo", "count"), draw(safe_text | st.lists(json_scalar, max_size=2) |
                                                           st.dictionaries(safe_text, json_scalar, max_size=2))
    path = draw(st.sampled_from([DESIGN + ("enrollmentInfo",), STATUS + ("lastUpdatePostDateStruct",)]))
    return path, draw(not_obj)


@st.composite
def tolerated(draw) -> list[tuple[tuple[str, ...], Any]]:
    """Oddities a real feed contains; the record must still be stored."""
    out = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["drop_module", "null_module", "extra", "healthy", "geo", "date", "age",
                                     "text", "criteria", "conditions", "enrollment", "status", "sex"]))
        if kind == "drop_module":
            out.append((draw(st.sampled_from(OPTIONAL_MODULES)), DELETE))
        elif kind == "null_module":
            out.append((draw(st.sampled_from(OPTIONAL_MODULES)), None))
        elif kind == "extra":
            where = draw(st.sampled_from([(), P] + MODULES))
            out.append((where + ("x" + draw(safe_text),), draw(garbage)))
        elif kind == "healthy":
            out.append((ELIG + ("healthyVolunteers",), draw(garbage)))
        elif kind == "geo":
            geo = draw(not_obj | st.fixed_dictionaries({"lat": json_scalar, "lon": json_scalar}))
            out.append((LOCATION0, [{"city": "Lyon", "geoPoint": geo}]))
        elif kind == "date":
            out.append((STATUS + ("lastUpdatePostDateStruct", "date"), draw(safe_text)))
        elif kind == "age":
            out.append((ELIG + (draw(st.sampled_from(["minimumAge", "maximumAge"])),),
                        draw(st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=64))))
        elif kind == "text":
            out.append((draw(st.sampled_from([ID + ("briefTitle",), DESC + ("briefSummary",)])), draw(safe_text)))
        elif kind == "criteria":
            out.append((ELIG + ("eligibilityCriteria",), draw(st.text(
                st.characters(codec="utf-8", exclude_characters="\x00"), max_size=400))))
        elif kind == "conditions":
            out.append((COND + ("conditions",), draw(st.lists(safe_text, max_size=5))))
        elif kind == "enrollment":
            out.append((DESIGN + ("enrollmentInfo", "count"),
                        draw(st.none() | st.booleans() | st.integers(0, 2**31 - 1) | st.floats(0, 1e9))))
        elif kind == "status":
            out.append((STATUS + ("overallStatus",), draw(st.text(
                st.characters(codec="ascii", exclude_characters="\x00"), max_size=32))))
        else:
            out.append((ELIG + ("sex",), draw(st.text(st.characters(codec="ascii", exclude_characters="\x00"),
                                                        max_size=16))))
    return out


HAZARDS: dict[str, tuple[tuple[str, ...], Any]] = {
    "nan_in_unused_field": (("x_metric",), float("nan")),
    "infinity_latitude": (LOCATION0, [{"city": "Oslo", "geoPoint": {"lat": float("inf"), "lon": 10.7}}]),
    "nan_enrollment": (DESIGN + ("enrollmentInfo", "count"), float("nan")),
    "infinity_enrollment": (DESIGN + ("enrollmentInfo", "count"), float("inf")),
    "enrollment_over_int32": (DESIGN + ("enrollmentInfo", "count"), 3 * 10**9),
    "enrollment_over_int64": (DESIGN + ("enrollmentInfo", "count"), 10**30),
    "huge_int_latitude": (LOCATION0, [{"city": "Oslo", "geoPoint": {"lat": 10**400, "lon": 1}}]),
    "huge_int_unused_field": (("x_big",), 10**400),
    "nul_in_title": (ID + ("briefTitle",), "Lupus\x00 study"),
    "nul_in_criteria": (ELIG + ("eligibilityCriteria",), "Inclusion Criteria:\n* Age\x00 >= 18"),
    "nul_in_unused_field": (("x_note",), "a\x00b"),
    "lone_surrogate_title": (ID + ("briefTitle",), "Lupus \ud800 study"),
    "lone_surrogate_unused_field": (("x_note",), "\udcff"),
    "long_status": (STATUS + ("overallStatus",), "RECRUITING" * 10),
    "long_sex": (ELIG + ("sex",), "ALL" * 10),
    "sex_grows_on_upper": (ELIG + ("sex",), "ß" * 16),
    "long_minimum_age": (ELIG + ("minimumAge",), "18 Years" + " " * 100 + "!"),
    "long_study_type": (DESIGN + ("studyType",), "INTERVENTIONAL" * 5),
    "long_city": (LOCATION0, [{"city": "C" * 500, "zip": "9" * 100, "status": "S" * 100}]),
    "deep_nesting_500": (("x_deep",), (DEEP_MARK, 500)),
    "deep_nesting_100k": (("x_deep",), (DEEP_MARK, 100_000)),
}


# --------------------------------------------------------------------------- building a file


@dataclass
class Line:
    data: bytes
    outcome: list[tuple[str, str, str | None]] = field(default_factory=list)  # (suffix, stored|rejected|either, nct)
    source: Any = None


def encode(study: Any) -> bytes:
    text = json.dumps(study, allow_nan=True)
    deep = _find_deep(study)
    if deep is not None:
        text = text.replace(json.dumps([DEEP_MARK, deep]), "[" * deep + "]" * deep)
    return text.encode("utf-8")


def _find_deep(obj: Any) -> int | None:
    if isinstance(obj, list) and len(obj) == 2 and obj[0] == DEEP_MARK:
        return obj[1]
    if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == DEEP_MARK:
        return obj[1]
    children = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    for child in children:
        found = _find_deep(child)
        if found is not None:
            return found
    return None


def build_line(spec: tuple) -> Line:
    kind = spec[0]
    nct = new_nct()
    if kind == "valid":
        study = valid_study(nct)
        for path, value in spec[1]:
            study = apply(study, path, value)
        return Line(encode(study), [("", "stored", nct)], study)
    if kind == "reject":
        path, value = spec[1]
        study = apply(valid_study(nct), path, value)
        return Line(encode(study), [("", "rejected", None)], study)
    if kind == "hazard":
        path, value = HAZARDS[spec[1]]
        study = apply(valid_study(nct), path, value)
        return Line(encode(study), [("", "either", nct)], study)
    if kind == "toplevel":
        return Line(encode(spec[1]), [("", "rejected", None)])
    if kind == "array":  # a JSON array line: each element is a study of its own
        items, outcome = [], []
        for i, element in enumerate(spec[1]):
            if element == "valid":
                element_nct = new_nct()
                items.append(valid_study(element_nct))
                outcome.append((f" [{i}]", "stored", element_nct))
            else:
                items.append(element)
                outcome.append((f" [{i}]", "rejected", None))
        return Line(encode(items), outcome)
    if kind == "truncated":
        data = encode(valid_study(nct))
        return Line(data[: max(1, int(len(data) * spec[1]))], [("", "rejected", None)])
    assert kind == "bytes"
    return Line(spec[1], [("", "rejected", None)])


non_object = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | safe_text
line_spec = st.one_of(
    st.tuples(st.just("valid"), st.just([])),
    st.tuples(st.just("valid"), tolerated()),
    st.tuples(st.just("reject"), must_reject()),
    st.tuples(st.just("toplevel"), non_object),
    st.tuples(st.just("array"), st.lists(st.just("valid") | non_object, min_size=1, max_size=3)),
    st.tuples(st.just("truncated"), st.floats(0.01, 0.99)),
    st.tuples(st.just("bytes"), st.sampled_from([b"\xff\xfe\xfd", b'{"protocolSection": "\xc3\x28"}', b"{", b"]",
                                                 b"nul\x00", b'{"a": 1} {"b": 2}', b"NaN?"])),
)
hazard_spec = st.tuples(st.just("hazard"), st.sampled_from(sorted(HAZARDS)))


def write_file(directory: Path, lines: list[Line], blank_lines: bool = True) -> Path:
    path = directory / f"batch{next(_files)}.jsonl"
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line.data + b"\n")
            if blank_lines:
                fh.write(b"   \n")  # blank lines are skipped but still counted in positions
    return path


def line_numbers(lines: list[Line], blank_lines: bool = True) -> list[int]:
    step = 2 if blank_lines else 1
    return [1 + i * step for i in range(len(lines))]


def check_report(repo, path: Path, lines: list[Line], report, blank_lines: bool = True) -> None:
    rejected = dict(report.rejected)
    assert len(rejected) == len(report.rejected), f"a position was reported twice: {report.rejected}"
    for position, reason in report.rejected:
        assert isinstance(reason, str) and reason.strip(), f"{position}: empty reason"
    expected_positions = set()
    stored = 0
    for lineno, line in zip(line_numbers(lines, blank_lines), lines):
        for suffix, outcome, nct in line.outcome:
            position = f"{path.name}:{lineno}{suffix}"
            expected_positions.add(position)
            if outcome == "rejected":
                assert position in rejected, f"{position} was not rejected: {line.data[:300]!r}"
            elif outcome == "stored":
                assert position not in rejected, f"{position} rejected ({rejected[position]}): {line.data[:300]!r}"
                record = repo.get(nct)
                expected = parse_study(json.loads(line.data) if not suffix else json.loads(line.data)[int(
                    suffix.strip(" []"))])
                assert (record.title, record.eligibility_text, record.conditions, record.overall_status,
                        record.enrollment) == (expected.title, expected.eligibility_text, expected.conditions,
                                               expected.overall_status, expected.enrollment)
                stored += 1
            else:  # either rejected, or stored and readable
                if position not in rejected:
                    assert repo.get(nct).nct_id == nct
                    stored += 1
    assert set(rejected) <= expected_positions, f"unexpected positions: {set(rejected) - expected_positions}"
    assert report.counts.added == stored


# --------------------------------------------------------------------------- tests


@SETTINGS
@given(specs=st.lists(line_spec, min_size=1, max_size=12))
def test_malformed_records_are_rejected_and_valid_ones_stored(repo, tmp_path, specs) -> None:
    lines = [build_line(s) for s in specs]
    for line in lines:  # the oracle agrees with the parser's own contract
        if line.source is not None and line.outcome[0][1] == "rejected":
            with pytest.raises(InvalidRecord):
                parse_study(json.loads(line.data))
    path = write_file(tmp_path, lines)
    report = ingest_paths([path], repo)
    check_report(repo, path, lines, report)


@settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # no shrinking: see the explicit tests
@given(specs=st.lists(line_spec | hazard_spec, min_size=1, max_size=8))
def test_hazardous_values_never_break_ingestion(repo, tmp_path, specs) -> None:
    """NaN/Infinity, huge ints, NUL, lone surrogates, over-long strings and deep nesting mixed with the rest."""
    lines = [build_line(s) for s in specs]
    path = write_file(tmp_path, lines)
    report = ingest_paths([path], repo)
    check_report(repo, path, lines, report)


@SETTINGS
@given(good=st.lists(tolerated(), min_size=1, max_size=5), bad=st.lists(must_reject(), min_size=1, max_size=5),
       junk=st.lists(line_spec.filter(lambda s: s[0] != "valid" and not (
           s[0] == "array" and "valid" in s[1])), max_size=3))
def test_later_bad_batch_leaves_stored_trials_unchanged(repo, tmp_path, good, bad, junk) -> None:
    first = [build_line(("valid", mutations)) for mutations in good]
    path = write_file(tmp_path, first, blank_lines=False)
    check_report(repo, path, first, ingest_paths([path], repo), blank_lines=False)
    ncts = [line.outcome[0][2] for line in first]
    before = {nct: repo.get(nct, with_raw=True) for nct in ncts}
    version = repo.corpus_version()
    count = repo.count()

    second = []
    for i, _nct in enumerate(ncts):  # a broken new version of every stored trial, same NCT id
        path_, value = bad[i % len(bad)]
        if path_[-1] == "nctId" or path_ in (P, ID):
            path_, value = COND + ("conditions",), "not a list"  # keep the id so it targets the stored trial
        study = apply(json.loads(first[i].data), path_, value)
        study["protocolSection"]["statusModule"] = {"overallStatus": "COMPLETED",
                                                    "lastUpdatePostDateStruct": {"date": "2030-01-01"}}
        if path_[:2] == STATUS:
            study = apply(study, path_, value)
        second.append(Line(encode(study), [("", "rejected", None)], study))
    second += [build_line(s) for s in junk]
    path2 = write_file(tmp_path, second, blank_lines=False)
    report = ingest_paths([path2], repo)
    check_report(repo, path2, second, report, blank_lines=False)
    assert report.counts.added == report.counts.updated == 0
    assert {nct: repo.get(nct, with_raw=True) for nct in ncts} == before
    assert repo.corpus_version() == version
    assert repo.count() == count


@pytest.mark.parametrize("hazard", sorted(HAZARDS))
def test_hazard_between_valid_records(repo, tmp_path, hazard) -> None:
    """One explicit reproducer per hazard class: [valid, hazard, valid] must never raise or lose the valid ones."""
    lines = [build_line(("valid", [])), build_line(("hazard", hazard)), build_line(("valid", []))]
    path = write_file(tmp_path, lines, blank_lines=False)
    report = ingest_paths([path], repo)
    check_report(repo, path, lines, report, blank_lines=False)


def test_50_mb_criteria_record_is_rejected_by_position(repo, tmp_path) -> None:
    before, after = valid_study(new_nct()), valid_study(new_nct())
    huge = apply(valid_study(new_nct()), ELIG + ("eligibilityCriteria",), "Inclusion Criteria:\n* " + "x" * 50_000_000)
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as fh:
        for study in (before, huge, after):
            fh.write(json.dumps(study).encode() + b"\n")
    del huge
    report = ingest_paths([path], repo)
    assert [p for p, _ in report.rejected] == ["huge.jsonl:2"]
    assert str(MAX_RECORD_BYTES) in report.rejected[0][1]
    assert report.counts.added == 2
    for study in (before, after):
        assert repo.get(study["protocolSection"]["identificationModule"]["nctId"])


def test_criteria_over_text_limit_is_rejected(repo, tmp_path) -> None:
    good = valid_study(new_nct())
    long = apply(valid_study(new_nct()), ELIG + ("eligibilityCriteria",), "y" * (MAX_TEXT_FIELD + 1))
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(long) + "\n" + json.dumps(good) + "\n", encoding="utf-8")
    report = ingest_paths([path], repo)
    assert [p for p, _ in report.rejected] == ["long.jsonl:1"]
    assert "eligibilityCriteria" in report.rejected[0][1]
    assert report.counts.added == 1


@pytest.mark.parametrize("nct_id", ["NCT\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width digits
                                    "NCT\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667"])  # Arabic-Indic
def test_non_ascii_digit_nct_id_is_rejected(nct_id) -> None:
    """NCT ids are ASCII; the API's path pattern ^NCT[0-9]{8}$ could never reach such a trial."""
    with pytest.raises(InvalidRecord):
        parse_study(valid_study(nct_id))


def test_hazard_encoding_helper() -> None:
    """The NaN hazard really writes a NaN token (json.dumps allow_nan), as a registry mirror might."""
    assert b"NaN" in encode({"x": math.nan})
    assert encode({"x": (DEEP_MARK, 3)}) == b'{"x": [[[]]]}'
