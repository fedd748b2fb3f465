"""nlp.lexicon: validation on load, lookups, classes, hierarchy; the real data/lexicons files."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from nlp.lexicon import (
    CATEGORIES,
    ConditionEntry,
    DrugEntry,
    Lexicon,
    default_lexicon,
    lexicon_from_records,
    load_lexicon,
    mention_variants,
    norm_key,
)

ROOT = Path(__file__).resolve().parents[2]

SMALL_CLASSES = {
    "_comment": "test classes",
    "immunosuppressant": {"mentions": ["immunosuppressant"], "members": ["azathioprine"]},
    "biologic": {"mentions": ["biologic", "biological agent"]},
    "monoclonal_antibody": {"parents": ["biologic"], "suffixes": ["mab"]},
    "b_cell_depleting": {"mentions": ["b-cell depleting therapy"], "members": ["rituximab"]},
    "anti_cd20": {"parents": ["b_cell_depleting", "biologic"], "mentions": ["anti-cd20"], "members": ["rituximab"]},
    "corticosteroid": {"mentions": ["corticosteroid", "steroid"], "members": ["prednisone", "methylprednisolone"]},
}
SMALL_CONDITIONS = [
    {"concept": "systemic lupus erythematosus", "category": "condition", "codes": {"icd10cm": "M32", "mesh": "D008180"},
     "synonyms": ["sle", "lupus"], "source": "curated"},
    {"concept": "lupus nephritis", "category": "condition", "codes": {"icd10cm": "M32.14"},
     "synonyms": ["lupus nephritis", {"term": "LN", "case_sensitive": True}], "qualifiers": ["class"],
     "parents": ["systemic lupus erythematosus"], "source": "curated"},
    {"concept": "malignancy", "category": "cancer", "synonyms": ["cancer", "malignancies"], "source": "curated"},
    {"concept": "breast cancer", "category": "cancer", "codes": {"mesh": "D001943"}, "synonyms": ["breast carcinoma"],
     "source": "mesh"},
    {"concept": "acute lymphoblastic leukemia", "category": "cancer",
     "synonyms": [{"term": "ALL", "case_sensitive": True}], "source": "curated"},
    {"concept": "hepatitis b", "category": "infection", "synonyms": ["hbv"], "source": "curated"},
    {"concept": "infection", "category": "infection", "synonyms": ["infections"], "source": "curated"},
]
SMALL_DRUGS = [
    {"generic": "rituximab", "synonyms": ["rituxan", {"term": "RTX", "case_sensitive": True}], "classes": [],
     "codes": {"drugbank": "DB00073"}, "source": "curated+drugbank"},
    {"generic": "azathioprine", "synonyms": ["imuran"], "classes": [], "source": "curated"},
    {"generic": "prednisone", "synonyms": ["deltasone"], "classes": ["corticosteroid"],
     "prednisone_equivalence": 1, "source": "curated"},
    {"generic": "methylprednisolone", "synonyms": ["solu-medrol"], "classes": [],
     "prednisone_equivalence": 1.25, "source": "curated"},
]
SMALL_HIERARCHY = {"category_ancestors": {"cancer": "malignancy", "infection": "infection"},
                   "is_a": {"breast cancer": ["malignancy"]}}


def write_lexicon(directory: Path, conditions=SMALL_CONDITIONS, drugs=SMALL_DRUGS, classes=SMALL_CLASSES,
                  hierarchy=SMALL_HIERARCHY) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "conditions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in conditions), encoding="utf-8")
    (directory / "drugs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in drugs), encoding="utf-8")
    (directory / "drug_classes.json").write_text(json.dumps(classes), encoding="utf-8")
    (directory / "hierarchy.json").write_text(json.dumps(hierarchy), encoding="utf-8")
    return directory


@pytest.fixture()
def small() -> Lexicon:
    return lexicon_from_records(SMALL_CONDITIONS, SMALL_DRUGS, SMALL_CLASSES, SMALL_HIERARCHY)


@pytest.fixture(scope="module")
def real() -> Lexicon:
    return default_lexicon()


# --------------------------------------------------------------------------- validation


def test_load_from_files(tmp_path: Path) -> None:
    lex = load_lexicon(write_lexicon(tmp_path / "lex"))
    assert lex.stats()["concepts"] == 7
    assert lex.stats()["drugs"] == 4
    assert lex.lookup_condition("SLE").concept == "systemic lupus erythematosus"


@pytest.mark.parametrize("record, message", [
    ({"concept": "x", "category": "condition", "synonyms": [], "source": "s", "colour": "red"},
     r"conditions\.jsonl:2: unknown key\(s\) \['colour'\]"),
    ({"concept": "x", "category": "condition", "synonyms": []},
     r"conditions\.jsonl:2: missing required key\(s\) \['source'\]"),
    ({"concept": "x", "category": "disease", "synonyms": [], "source": "s"},
     r"conditions\.jsonl:2: category 'disease' not one of"),
    ({"concept": "x", "category": "condition", "synonyms": ["Upper"], "source": "s"},
     r"conditions\.jsonl:2: 'synonyms' entry 'Upper' must be a non-empty lower-case string"),
    ({"concept": "x", "category": "condition", "synonyms": [{"term": "X", "cs": True}], "source": "s"},
     r"conditions\.jsonl:2: 'synonyms' object .* unknown key\(s\) \['cs'\]"),
    ({"concept": "x", "category": "condition", "synonyms": [], "qualifiers": ["colour"], "source": "s"},
     r"conditions\.jsonl:2: unknown qualifier kind\(s\) \['colour'\]"),
    ({"concept": "x", "category": "condition", "synonyms": [], "parents": ["nothing"], "source": "s"},
     r"conditions\.jsonl:2: unknown parent concept 'nothing'"),
    ({"concept": "sle", "category": "condition", "synonyms": [], "source": "s", "codes": {"ICD": 3}},
     r"conditions\.jsonl:2: bad code 'ICD'"),
])
def test_condition_records_are_validated(tmp_path: Path, record: dict, message: str) -> None:
    conditions = [SMALL_CONDITIONS[0], record]
    with pytest.raises(ValueError, match=message):
        load_lexicon(write_lexicon(tmp_path, conditions=conditions))


@pytest.mark.parametrize("record, message", [
    ({"generic": "x", "synonyms": [], "classes": [], "source": "s", "dose": 1},
     r"drugs\.jsonl:1: unknown key\(s\) \['dose'\]"),
    ({"generic": "x", "synonyms": [], "source": "s"}, r"drugs\.jsonl:1: missing required key\(s\) \['classes'\]"),
    ({"generic": "x", "synonyms": [], "classes": ["statins"], "source": "s"},
     r"drugs\.jsonl:1: unknown drug class 'statins'"),
    ({"generic": "x", "synonyms": [], "classes": [], "source": "s", "prednisone_equivalence": -1},
     r"drugs\.jsonl:1: 'prednisone_equivalence' must be a positive number"),
    ({"generic": "X", "synonyms": [], "classes": [], "source": "s"}, r"drugs\.jsonl:1: generic 'X' must be lower-case"),
])
def test_drug_records_are_validated(tmp_path: Path, record: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_lexicon(write_lexicon(tmp_path, drugs=[record]))


def test_invalid_json_line_is_reported(tmp_path: Path) -> None:
    write_lexicon(tmp_path)
    with open(tmp_path / "drugs.jsonl", "a", encoding="utf-8") as fh:
        fh.write("{not json}\n")
    with pytest.raises(ValueError, match=r"drugs\.jsonl:5: invalid JSON"):
        load_lexicon(tmp_path)


def test_duplicate_concept_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"conditions\.jsonl:2: duplicate concept 'systemic lupus erythematosus'"):
        load_lexicon(write_lexicon(tmp_path, conditions=[SMALL_CONDITIONS[0], SMALL_CONDITIONS[0]]))


def test_class_file_and_hierarchy_are_validated(tmp_path: Path) -> None:
    bad_classes = {**SMALL_CLASSES, "statin": {"mentions": ["statin"], "drugs": ["x"]}}
    with pytest.raises(ValueError, match=r"drug_classes\.json: class 'statin': unknown key\(s\) \['drugs'\]"):
        load_lexicon(write_lexicon(tmp_path, classes=bad_classes))
    bad_name = {**SMALL_CLASSES, "Statin": {}}
    with pytest.raises(ValueError, match="lower_snake_case"):
        load_lexicon(write_lexicon(tmp_path, classes=bad_name))
    bad_parent = {**SMALL_CLASSES, "statin": {"parents": ["lipid_lowering"]}}
    with pytest.raises(ValueError, match="unknown parent class 'lipid_lowering'"):
        load_lexicon(write_lexicon(tmp_path, classes=bad_parent))
    with pytest.raises(ValueError, match=r"hierarchy\.json: is_a 'lupus': unknown concept 'lupus'"):
        load_lexicon(write_lexicon(tmp_path, hierarchy={"is_a": {"lupus": ["malignancy"]}}))
    with pytest.raises(ValueError, match=r"hierarchy\.json: unknown key\(s\) \['parents'\]"):
        load_lexicon(write_lexicon(tmp_path, hierarchy={"parents": {}}))


def test_missing_file_is_reported(tmp_path: Path) -> None:
    write_lexicon(tmp_path)
    (tmp_path / "drugs.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="drugs.jsonl"):
        load_lexicon(tmp_path)


# --------------------------------------------------------------------------- small lexicon behaviour


def test_lookups_and_case_sensitivity(small: Lexicon) -> None:
    assert small.lookup_condition("Lupus").concept == "systemic lupus erythematosus"
    assert small.lookup_condition("  LUPUS  nephritis ").concept == "lupus nephritis"
    assert small.lookup_condition("LN").concept == "lupus nephritis"
    assert small.lookup_condition("ln") is None
    assert small.lookup_condition("ALL").concept == "acute lymphoblastic leukemia"
    assert small.lookup_condition("all") is None
    assert small.lookup_drug("Rituxan").generic == "rituximab"
    assert small.lookup_drug("RTX").generic == "rituximab"
    assert small.lookup_drug("rtx") is None
    assert small.lookup_condition("nothing known") is None


def test_entries_carry_codes_and_labels(small: Lexicon) -> None:
    ln = small.condition("lupus nephritis")
    assert isinstance(ln, ConditionEntry)
    assert ln.code == "ICD10CM:M32.14"
    assert ln.label == "CONDITION"
    assert ln.qualifiers == ("class",)
    assert small.condition("breast cancer").code == "MESH:D001943"
    assert small.condition("breast cancer").label == "CANCER"
    rtx = small.drug("rituximab")
    assert isinstance(rtx, DrugEntry)
    assert rtx.code == "DRUGBANK:DB00073"
    assert rtx.label == "DRUG"


def test_drug_classes_follow_members_suffixes_and_parents(small: Lexicon) -> None:
    # rituximab is a member of anti_cd20 and b_cell_depleting; anti_cd20's parents add biologic
    assert set(small.drug_classes("rituximab")) == {"anti_cd20", "b_cell_depleting", "biologic"}
    assert small.drug_classes("prednisone") == ("corticosteroid",)
    assert small.drug_classes("unknown drug") == ()
    assert small.class_members("biologic") == frozenset({"rituximab"})
    assert small.class_members("corticosteroid") == frozenset({"prednisone", "methylprednisolone"})
    assert small.class_members("no_such_class") == frozenset()
    assert small.prednisone_equivalence() == {"prednisone": 1.0, "methylprednisolone": 1.25}


def test_class_mentions_resolve_to_class_entries(small: Lexicon) -> None:
    entry = small.lookup_drug("Immunosuppressants")
    assert entry.is_class and entry.generic == "immunosuppressant"
    assert entry.classes == ("immunosuppressant",)
    assert small.lookup_drug("B cell depleting therapies").generic == "b_cell_depleting"
    assert small.lookup_drug("anti CD20").classes == ("anti_cd20", "b_cell_depleting", "biologic")


def test_hierarchy(small: Lexicon) -> None:
    assert small.is_a("lupus nephritis", "systemic lupus erythematosus")  # generated/record parents
    assert small.is_a("breast cancer", "malignancy")
    assert small.is_a("acute lymphoblastic leukemia", "malignancy")  # category root
    assert small.is_a("hepatitis b", "infection")
    assert small.is_a("rituximab", "biologic")  # drugs are their classes
    assert small.is_a("anti_cd20", "b_cell_depleting")
    assert small.is_a("lupus nephritis", "lupus nephritis")
    assert not small.is_a("systemic lupus erythematosus", "lupus nephritis")
    assert not small.is_a("malignancy", "breast cancer")
    assert not small.is_a("malignancy", "malignancy ") and not small.is_a("sle", "malignancy")
    assert small.ancestors("lupus nephritis") == frozenset({"systemic lupus erythematosus"})


def test_synonyms_preferred_first(small: Lexicon) -> None:
    assert small.synonyms("systemic lupus erythematosus") == ("systemic lupus erythematosus", "sle", "lupus")
    assert small.synonyms("lupus nephritis") == ("lupus nephritis", "LN")
    assert small.synonyms("rituximab") == ("rituximab", "rituxan", "RTX")
    assert small.synonyms("corticosteroid") == ("corticosteroid", "steroid")
    assert small.synonyms("not a concept") == ()


def test_patterns_order_and_content(small: Lexicon) -> None:
    drug_patterns = small.drug_patterns()
    assert drug_patterns[0].kind == "class"  # class mentions come first
    terms = {(p.term, p.case_sensitive, p.key) for p in drug_patterns}
    assert ("steroids", False, "corticosteroid") in terms
    assert ("RTX", True, "rituximab") in terms
    conds = {(p.term, p.case_sensitive, p.key, p.label) for p in small.condition_patterns()}
    assert ("LN", True, "lupus nephritis", "CONDITION") in conds
    assert ("breast carcinoma", False, "breast cancer", "CANCER") in conds


def test_text_helpers() -> None:
    assert norm_key("CAR\u2013T  cells") == "car - t cells"
    assert norm_key("Crohn\u2019s") == "crohn ' s"
    assert norm_key("ALL", lower=False) == "ALL"
    variants = mention_variants("b-cell depleting therapy")
    assert {"b cell depleting therapy", "b-cell-depleting therapy", "b-cell depleting therapies"} <= set(variants)
    assert mention_variants("anti-cd20") == ["anti-cd20", "anti cd20", "anticd20"]
    assert "corticosteroids" in mention_variants("corticosteroid")


# --------------------------------------------------------------------------- the real lexicon


def test_real_lexicon_sizes(real: Lexicon) -> None:
    s = real.stats()
    assert s["concepts"] > 5000
    assert s["condition_synonyms"] > 30000
    assert s["drugs"] > 5000
    assert s["classes"] >= 80
    for name in real.classes:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name)


@pytest.mark.parametrize("term, concept, code", [
    ("SLE", "systemic lupus erythematosus", "ICD10CM:M32"),
    ("lupus", "systemic lupus erythematosus", "ICD10CM:M32"),
    ("Lupus Erythematosus, Systemic", "systemic lupus erythematosus", "ICD10CM:M32"),
    ("LN", "lupus nephritis", "ICD10CM:M32.14"),
    ("pMN", "membranous nephropathy", "MESH:D015433"),
    ("membranous nephropathy", "membranous nephropathy", "MESH:D015433"),
    ("ESRD", "end-stage kidney disease", "ICD10CM:N18.6"),
    ("T2DM", "type 2 diabetes mellitus", "ICD10CM:E11"),
    ("NSCLC", "non-small cell lung cancer", "MESH:D002289"),
    ("ALL", "acute lymphoblastic leukemia", "ICD10CM:C91.0"),
    ("MS", "multiple sclerosis", "ICD10CM:G35"),
    ("HBV", "hepatitis b", "ICD10CM:B19.1"),
    ("latent TB", "latent tuberculosis", "ICD10CM:Z22.7"),
    ("SARS-CoV-2", "covid-19", "ICD10CM:U07.1"),
    ("APS", "antiphospholipid syndrome", "ICD10CM:D68.61"),
    ("Sjögren's syndrome", "sjogren's syndrome", "ICD10CM:M35.0"),
    ("pregnant", "pregnancy", "ICD10CM:Z33.1"),
    ("hemodialysis", "hemodialysis", "MESH:D006435"),
])
def test_real_condition_lookups(real: Lexicon, term: str, concept: str, code: str) -> None:
    entry = real.lookup_condition(term)
    assert entry is not None, term
    assert entry.concept == concept
    assert entry.code == code


def test_real_categories(real: Lexicon) -> None:
    assert real.condition("pregnancy").category == "state"
    assert real.condition("breastfeeding").category == "state"
    assert real.condition("dialysis").category == "procedure"
    assert real.condition("kidney biopsy").category == "procedure"
    assert real.condition("malignancy").category == "cancer"
    assert real.condition("hiv infection").category == "infection"
    assert real.condition("proteinuria").category == "finding"
    assert {e.category for e in real.conditions()} == set(CATEGORIES)


@pytest.mark.parametrize("word", ["all", "ms", "mm", "af", "pe", "mi", "hf", "ln", "mn", "tb", "dm", "is", "as",
                                  "or", "an", "it", "at", "no", "on", "may", "can", "will", "cold", "aids", "today",
                                  "rice", "wheat", "water", "calcium", "glucose", "creatinine", "patients"])
def test_real_common_words_are_not_terms(real: Lexicon, word: str) -> None:
    assert real.lookup_condition(word) is None
    assert real.lookup_drug(word) is None


def test_real_short_abbreviations_are_case_sensitive(real: Lexicon) -> None:
    for abbr in ("ALL", "MS", "MM", "AF", "PE", "MI", "HF", "LN", "MN", "TB", "DM"):
        assert abbr in real.synonyms(real.lookup_condition(abbr).concept), abbr


@pytest.mark.parametrize("term, generic, classes", [
    ("Rituxan", "rituximab", {"anti_cd20", "b_cell_depleting", "biologic", "monoclonal_antibody"}),
    ("MMF", "mycophenolate mofetil", {"immunosuppressant", "antimetabolite"}),
    ("CellCept", "mycophenolate mofetil", {"immunosuppressant"}),
    ("Benlysta", "belimumab", {"biologic", "blys_inhibitor"}),
    ("tacrolimus", "tacrolimus", {"calcineurin_inhibitor", "immunosuppressant"}),
    ("voclosporin", "voclosporin", {"calcineurin_inhibitor", "immunosuppressant"}),
    ("cyclophosphamide", "cyclophosphamide", {"chemotherapy", "alkylating_agent", "immunosuppressant"}),
    ("Plaquenil", "hydroxychloroquine", {"antimalarial"}),
    ("inebilizumab", "inebilizumab", {"anti_cd19", "b_cell_depleting", "biologic"}),
    ("Kymriah", "tisagenlecleucel", {"car_t", "cellular_therapy", "anti_cd19"}),
    ("lisinopril", "lisinopril", {"ace_inhibitor", "ras_blockade"}),
    ("losartan", "losartan", {"arb", "ras_blockade"}),
    ("candesartan", "candesartan", {"arb", "ras_blockade"}),
    ("apixaban", "apixaban", {"doac", "anticoagulant"}),
    ("pembrolizumab", "pembrolizumab", {"anti_pd1", "checkpoint_inhibitor", "biologic"}),
    ("empagliflozin", "empagliflozin", {"sglt2_inhibitor", "antidiabetic"}),
    ("atorvastatin", "atorvastatin", {"statin"}),
    ("IVIG", "immune globulin", {"ivig"}),
    ("plasma exchange", "plasmapheresis", {"plasmapheresis"}),
    ("Zostavax", "zoster vaccine live", {"live_vaccine", "vaccine"}),
    ("AZD0120", "azd0120", {"car_t", "anti_bcma", "anti_cd19", "investigational_agent"}),
])
def test_real_drug_lookups(real: Lexicon, term: str, generic: str, classes: set[str]) -> None:
    entry = real.lookup_drug(term)
    assert entry is not None, term
    assert entry.generic == generic
    assert classes <= set(entry.classes), (term, entry.classes)
    assert not entry.is_class


def test_real_prednisone_equivalence(real: Lexicon) -> None:
    eq = real.prednisone_equivalence()
    assert eq["prednisone"] == 1.0
    assert eq["prednisolone"] == 1.0
    assert eq["methylprednisolone"] == 1.25
    assert eq["dexamethasone"] == 6.67
    assert eq["hydrocortisone"] == 0.25
    assert real.lookup_drug("Solu-Medrol").prednisone_equivalence == 1.25
    assert "corticosteroid" in real.drug_classes("dexamethasone")


def test_real_class_members(real: Lexicon) -> None:
    assert {"rituximab", "obinutuzumab", "ocrelizumab", "ofatumumab"} <= real.class_members("anti_cd20")
    assert {"rituximab", "inebilizumab", "obinutuzumab"} <= real.class_members("b_cell_depleting")
    assert {"tisagenlecleucel", "axicabtagene ciloleucel", "azd0120"} <= real.class_members("car_t")
    assert {"tisagenlecleucel", "nkx019"} <= real.class_members("cellular_therapy")
    assert {"tacrolimus", "cyclosporine", "voclosporin"} <= real.class_members("calcineurin_inhibitor")
    assert {"prednisone", "methylprednisolone", "dexamethasone"} <= real.class_members("corticosteroid")
    assert {"lisinopril", "enalapril", "losartan", "valsartan"} <= real.class_members("ras_blockade")
    assert {"cisplatin", "carboplatin", "oxaliplatin"} <= real.class_members("platinum")
    assert "cisplatin" in real.class_members("chemotherapy")
    assert "rituximab" not in real.class_members("chemotherapy")
    assert "prednisone" not in real.class_members("immunosuppressant")


@pytest.mark.parametrize("mention, cls", [
    ("immunosuppressants", "immunosuppressant"),
    ("a biologic", None),
    ("biologics", "biologic"),
    ("corticosteroids", "corticosteroid"),
    ("CAR-T cell therapy", "car_t"),
    ("CAR T", "car_t"),
    ("chimeric antigen receptor T-cell therapy", "car_t"),
    ("anti-CD19 therapy", "anti_cd19"),
    ("B-cell depleting therapy", "b_cell_depleting"),
    ("chemotherapy", "chemotherapy"),
    ("ACE inhibitors", "ace_inhibitor"),
    ("JAK inhibitors", "jak_inhibitor"),
    ("anti-PD-1", "anti_pd1"),
    ("live vaccines", "live_vaccine"),
    ("investigational agents", "investigational_agent"),
])
def test_real_class_mentions(real: Lexicon, mention: str, cls: str | None) -> None:
    entry = real.lookup_drug(mention)
    if cls is None:
        assert entry is None  # lookups take a term, not a phrase with an article
        return
    assert entry is not None and entry.is_class
    assert entry.generic == cls
    assert cls in entry.classes


@pytest.mark.parametrize("concept, ancestor", [
    ("lupus nephritis", "systemic lupus erythematosus"),
    ("neuropsychiatric lupus", "systemic lupus erythematosus"),
    ("systemic lupus erythematosus", "autoimmune disease"),
    ("breast cancer", "malignancy"),
    ("triple-negative breast cancer", "breast cancer"),
    ("non-small cell lung cancer", "lung cancer"),
    ("non-small cell lung cancer", "malignancy"),
    ("diffuse large b-cell lymphoma", "malignancy"),
    ("hepatitis b", "infection"),
    ("latent tuberculosis", "tuberculosis"),
    ("covid-19", "infection"),
    ("end-stage kidney disease", "chronic kidney disease"),
    ("hemodialysis", "dialysis"),
    ("allogeneic stem cell transplant", "transplant"),
    ("kidney transplant", "solid organ transplant"),
    ("rituximab", "anti_cd20"),
    ("rituximab", "biologic"),
    ("tisagenlecleucel", "cellular_therapy"),
])
def test_real_is_a(real: Lexicon, concept: str, ancestor: str) -> None:
    assert real.is_a(concept, ancestor)


@pytest.mark.parametrize("concept, ancestor", [
    ("systemic lupus erythematosus", "lupus nephritis"),
    ("malignancy", "breast cancer"),
    ("pregnancy", "malignancy"),
    ("hepatitis b", "malignancy"),
    ("prednisone", "immunosuppressant"),
    ("rituximab", "chemotherapy"),
])
def test_real_is_not_a(real: Lexicon, concept: str, ancestor: str) -> None:
    assert not real.is_a(concept, ancestor)


def test_real_synonyms_for_query_expansion(real: Lexicon) -> None:
    syn = real.synonyms("systemic lupus erythematosus")
    assert syn[:3] == ("systemic lupus erythematosus", "sle", "lupus")
    assert "ALL" in real.synonyms("acute lymphoblastic leukemia")
    assert real.synonyms("membranous nephropathy")[0] == "membranous nephropathy"
    assert "cellcept" in real.synonyms("mycophenolate mofetil")


def test_default_lexicon_is_cached() -> None:
    assert default_lexicon() is default_lexicon()


def test_generated_files_are_valid_and_sorted() -> None:
    base = ROOT / "data" / "lexicons"
    for name, key in (("conditions.jsonl", "concept"), ("drugs.jsonl", "generic")):
        with open(base / name, encoding="utf-8") as fh:
            keys = [json.loads(line)[key] for line in fh]
        assert keys == sorted(keys), name
    total = sum((base / n).stat().st_size for n in ("conditions.jsonl", "drugs.jsonl"))
    assert total < 6_000_000


def test_build_script_helpers() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_lexicons as build
    finally:
        sys.path.pop(0)
    assert build.clean_icd_description("Acute lymphoblastic leukemia [ALL]") == (
        ["acute lymphoblastic leukemia"], ["ALL"])
    assert build.clean_icd_description("Systemic lupus erythematosus (SLE)") == (
        ["systemic lupus erythematosus"], ["SLE"])
    assert build.clean_icd_description("Crohn's disease [regional enteritis]")[0] == [
        "crohn's disease", "regional enteritis"]
    assert build.clean_icd_description("Other sepsis") == ([], [])
    assert build.strip_ctgov("anatomic stage iv breast cancer ajcc v8") == "breast cancer"
    assert build.strip_ctgov("her2-positive metastatic breast cancer") == "breast cancer"
