"""ctm_terminology: entity spans, extensions, qualifiers and merging, on spacy.blank("en")."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, Span

import nlp.components.terminology as terminology
from nlp.components.terminology import (
    EXTENSIONS,
    TerminologyComponent,
    read_qualifier,
    tokenize_patterns,
)
from nlp.lexicon import LABELS, Lexicon, default_lexicon, lexicon_from_records

CLASSES = {
    "immunosuppressant": {"mentions": ["immunosuppressant", "immunosuppressive therapy"],
                          "members": ["mycophenolate mofetil"]},
    "biologic": {"mentions": ["biologic", "biological agent"]},
    "b_cell_depleting": {"mentions": ["b-cell depleting therapy"], "members": ["rituximab"]},
    "anti_cd20": {"parents": ["b_cell_depleting", "biologic"], "mentions": ["anti-cd20"], "members": ["rituximab"]},
    "cellular_therapy": {"mentions": ["cell therapy"]},
    "car_t": {"parents": ["cellular_therapy"], "mentions": ["car-t", "car-t cell therapy", "car t-cell"]},
    "corticosteroid": {"mentions": ["corticosteroid", "steroid"], "members": ["prednisone"]},
}
CONDITIONS = [
    {"concept": "systemic lupus erythematosus", "category": "condition", "codes": {"icd10cm": "M32"},
     "synonyms": ["sle", "lupus"], "source": "curated"},
    {"concept": "lupus nephritis", "category": "condition", "codes": {"icd10cm": "M32.14", "mesh": "D008181"},
     "synonyms": ["lupus nephritis", {"term": "LN", "case_sensitive": True}], "qualifiers": ["class"],
     "source": "curated"},
    {"concept": "acute lymphoblastic leukemia", "category": "cancer", "codes": {"icd10cm": "C91.0"},
     "synonyms": ["acute lymphoblastic leukemia", {"term": "ALL", "case_sensitive": True}], "source": "curated"},
    {"concept": "breast cancer", "category": "cancer", "synonyms": ["breast carcinoma"],
     "qualifiers": ["receptor", "stage"], "source": "curated"},
    {"concept": "chronic kidney disease", "category": "condition", "synonyms": ["ckd"], "qualifiers": ["ckd_stage"],
     "source": "curated"},
    {"concept": "heart failure", "category": "condition", "synonyms": ["chf", "congestive heart failure"],
     "qualifiers": ["nyha"], "source": "curated"},
    {"concept": "hepatitis b", "category": "infection", "synonyms": ["hbv"], "source": "curated"},
    {"concept": "hepatitis c", "category": "infection", "synonyms": ["hcv"], "source": "curated"},
    {"concept": "pregnancy", "category": "state", "synonyms": ["pregnant"], "source": "curated"},
    {"concept": "hemodialysis", "category": "procedure", "synonyms": ["haemodialysis"], "source": "curated"},
    {"concept": "proteinuria", "category": "finding", "synonyms": [], "source": "curated"},
    {"concept": "crohn's disease", "category": "condition", "synonyms": ["crohn disease"], "source": "curated"},
]
DRUGS = [
    {"generic": "rituximab", "synonyms": ["rituxan"], "classes": [], "codes": {"drugbank": "DB00073"},
     "source": "curated"},
    {"generic": "mycophenolate mofetil", "synonyms": ["mmf", "cellcept", "mycophenolate"], "classes": [],
     "source": "curated"},
    {"generic": "prednisone", "synonyms": [], "classes": [], "prednisone_equivalence": 1.0, "source": "curated"},
]


@pytest.fixture(scope="module")
def blank():
    return spacy.blank("en")


@pytest.fixture(scope="module")
def small_lexicon() -> Lexicon:
    return lexicon_from_records(CONDITIONS, DRUGS, CLASSES, {"category_ancestors": {}})


@pytest.fixture(scope="module")
def small_nlp(blank, small_lexicon: Lexicon):
    return blank, TerminologyComponent(blank, "ctm_terminology", lexicon=small_lexicon)


def run(small_nlp, text: str) -> Doc:
    nlp, component = small_nlp
    return component(nlp.make_doc(text))


def ents(doc: Doc) -> list[tuple[str, str, str]]:
    return [(e.text, e.label_, e._.ctm_concept) for e in doc.ents]


@pytest.fixture(scope="module")
def real_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("ctm_terminology")
    return nlp


# --------------------------------------------------------------------------- behaviour on a small lexicon


def test_extensions_and_labels_are_registered(small_nlp) -> None:
    for name in EXTENSIONS:
        assert Span.has_extension(name)
    assert EXTENSIONS == ("ctm_concept", "ctm_code", "ctm_classes", "ctm_qualifier", "ctm_is_class")
    assert LABELS == ("CONDITION", "CANCER", "INFECTION", "PROCEDURE", "STATE", "FINDING", "DRUG")
    assert small_nlp[1].labels == LABELS


def test_conditions_drugs_and_extension_values(small_nlp) -> None:
    doc = run(small_nlp, "Woman with SLE and lupus nephritis, failed CellCept and rituximab.")
    assert ents(doc) == [("SLE", "CONDITION", "systemic lupus erythematosus"),
                         ("lupus nephritis", "CONDITION", "lupus nephritis"),
                         ("CellCept", "DRUG", "mycophenolate mofetil"),
                         ("rituximab", "DRUG", "rituximab")]
    sle, ln, mmf, rtx = doc.ents
    assert sle._.ctm_code == "ICD10CM:M32" and sle._.ctm_classes is None and sle._.ctm_is_class is False
    assert ln._.ctm_code == "ICD10CM:M32.14"
    assert mmf._.ctm_classes == ("immunosuppressant",) and mmf._.ctm_code is None
    assert rtx._.ctm_code == "DRUGBANK:DB00073"
    assert set(rtx._.ctm_classes) == {"anti_cd20", "b_cell_depleting", "biologic"}
    assert rtx._.ctm_is_class is False


def test_longest_match_wins(small_nlp) -> None:
    doc = run(small_nlp, "lupus nephritis")
    assert ents(doc) == [("lupus nephritis", "CONDITION", "lupus nephritis")]
    doc = run(small_nlp, "active lupus without nephritis")
    assert ents(doc) == [("lupus", "CONDITION", "systemic lupus erythematosus")]


def test_case_sensitive_abbreviations(small_nlp) -> None:
    assert ents(run(small_nlp, "all patients with all of the following")) == []
    assert ents(run(small_nlp, "relapsed ALL after chemotherapy")) == [
        ("ALL", "CANCER", "acute lymphoblastic leukemia")]
    assert ents(run(small_nlp, "biopsy-proven LN")) == [("LN", "CONDITION", "lupus nephritis")]
    assert ents(run(small_nlp, "ln of x")) == []
    # case-insensitive terms match in any case
    assert ents(run(small_nlp, "ACUTE LYMPHOBLASTIC LEUKEMIA")) == [
        ("ACUTE LYMPHOBLASTIC LEUKEMIA", "CANCER", "acute lymphoblastic leukemia")]


@pytest.mark.parametrize("text, span, cls", [
    ("No prior CAR-T cell therapy", "CAR-T cell therapy", "car_t"),
    ("no prior CAR T cell therapy", "CAR T cell therapy", "car_t"),
    ("CAR T-cells given in 2022", "CAR T-cells", "car_t"),
    ("failed two immunosuppressants", "immunosuppressants", "immunosuppressant"),
    ("on a biologic", "biologic", "biologic"),
    ("no biologics", "biologics", "biologic"),
    ("prior B-cell depleting therapy", "B-cell depleting therapy", "b_cell_depleting"),
    ("prior B cell-depleting therapies", "B cell-depleting therapies", "b_cell_depleting"),
    ("anti-CD20 antibodies", "anti-CD20", "anti_cd20"),
    ("anti CD20", "anti CD20", "anti_cd20"),
    ("systemic corticosteroids", "corticosteroids", "corticosteroid"),
    ("Steroids", "Steroids", "corticosteroid"),
])
def test_class_mentions(small_nlp, text: str, span: str, cls: str) -> None:
    doc = run(small_nlp, text)
    assert [e.text for e in doc.ents] == [span]
    ent = doc.ents[0]
    assert ent.label_ == "DRUG"
    assert ent._.ctm_concept == cls
    assert ent._.ctm_is_class is True
    assert ent._.ctm_classes[0] == cls


def test_class_mention_classes_include_parents(small_nlp) -> None:
    ent = run(small_nlp, "CAR-T").ents[0]
    assert ent._.ctm_classes == ("car_t", "cellular_therapy")


@pytest.mark.parametrize("text, qualifier", [
    ("lupus nephritis class IV on biopsy", "class IV"),
    ("lupus nephritis (ISN/RPS class III+V)", "class III+V"),
    ("lupus nephritis class III/IV", "class III/IV"),
    ("lupus nephritis Class III or Class IV with or without Class V", "class III/IV/V"),
    ("Class III, IV or V LN according to ISN/RPS", "class III/IV/V"),
    ("biopsy: ISN/RPS class 4 lupus nephritis", "class IV"),
    ("lupus nephritis since 2019", None),
    ("CKD stage 3b", "stage 3b"),
    ("CKD 4, on dialysis", "stage 4"),
    ("stage 5 CKD", "stage 5"),
    ("CKD for 10 years", None),
    ("NYHA class III heart failure", "NYHA III"),
    ("heart failure (NYHA II-III)", "NYHA II-III"),
    (">= Class III New York Heart Association (NYHA) congestive heart failure", "NYHA III"),
    ("HER2+ breast cancer", "HER2+"),
    ("HR-positive, HER2-negative breast cancer", "HR+/HER2-"),
    ("breast cancer, ER+/PR- HER2 3+", "ER+/PR-/HER2+"),
    ("stage IIIb breast cancer", "stage IIIB"),
    ("breast carcinoma, stage 2a", "stage 2a"),
    ("breast cancer", None),
])
def test_qualifiers(small_nlp, text: str, qualifier: str | None) -> None:
    doc = run(small_nlp, text)
    target = [e for e in doc.ents if e.label_ != "DRUG"]
    assert target, text
    assert target[-1]._.ctm_qualifier == qualifier


def test_read_qualifier_directly() -> None:
    text = "Class III, IV or V LN"
    assert read_qualifier(("class",), text, text.index("LN"), len(text)) == "class III/IV/V"
    assert read_qualifier(("nyha",), "NYHA class IV", 0, 4) == "NYHA IV"
    assert read_qualifier((), "anything", 0, 3) is None


def test_coordinated_hepatitis(small_nlp) -> None:
    doc = run(small_nlp, "Patients with active hepatitis B or C")
    assert [(e.text, e._.ctm_concept) for e in doc.ents] == [("hepatitis B", "hepatitis b"), ("C", "hepatitis c")]
    assert doc.ents[1].label_ == "INFECTION"
    doc = run(small_nlp, "hepatitis C and B positive")
    assert [e._.ctm_concept for e in doc.ents] == ["hepatitis c", "hepatitis b"]
    doc = run(small_nlp, "hepatitis B or C")
    assert len(doc.ents) == 2


def test_typographic_variants(small_nlp) -> None:
    doc = run(small_nlp, "Crohn\u2019s disease; anti\u2013CD20")
    assert [(e.text, e._.ctm_concept) for e in doc.ents] == [("Crohn\u2019s disease", "crohn's disease"),
                                                           ("anti\u2013CD20", "anti_cd20")]


def test_existing_entities_longest_policy(small_nlp) -> None:
    nlp, component = small_nlp
    doc = nlp.make_doc("52 years old with lupus nephritis on prednisone")
    doc.ents = [Span(doc, 0, 3, label="AGE"), Span(doc, 5, 6, label="OTHER")]  # "lupus" alone
    doc = component(doc)
    assert [(e.text, e.label_) for e in doc.ents] == [("52 years old", "AGE"), ("lupus nephritis", "CONDITION"),
                                                      ("prednisone", "DRUG")]


def test_existing_entities_keep_and_overwrite(blank, small_lexicon: Lexicon) -> None:
    nlp = blank
    for policy, expected in (("keep", [("lupus", "OTHER"), ("prednisone", "DRUG")]),
                             ("overwrite", [("lupus nephritis", "CONDITION"), ("prednisone", "DRUG")])):
        component = TerminologyComponent(nlp, lexicon=small_lexicon, ents_policy=policy)
        doc = nlp.make_doc("lupus nephritis on prednisone")
        doc.ents = [Span(doc, 0, 1, label="OTHER")]
        assert [(e.text, e.label_) for e in component(doc).ents] == expected
    # an equal-length existing entity survives under "longest"
    component = TerminologyComponent(nlp, lexicon=small_lexicon)
    doc = nlp.make_doc("prednisone daily")
    doc.ents = [Span(doc, 0, 1, label="MEDICATION")]
    assert [(e.text, e.label_) for e in component(doc).ents] == [("prednisone", "MEDICATION")]
    with pytest.raises(ValueError, match="ents_policy"):
        TerminologyComponent(nlp, lexicon=small_lexicon, ents_policy="merge")


def test_empty_and_unmatched_docs(small_nlp) -> None:
    assert ents(run(small_nlp, "")) == []
    assert ents(run(small_nlp, "Nothing of interest here.")) == []


def test_factory_reads_lexicon_path(tmp_path: Path) -> None:
    (tmp_path / "conditions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CONDITIONS), encoding="utf-8")
    (tmp_path / "drugs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in DRUGS), encoding="utf-8")
    (tmp_path / "drug_classes.json").write_text(json.dumps(CLASSES), encoding="utf-8")
    nlp = spacy.blank("en")
    nlp.add_pipe("ctm_terminology", config={"lexicon_path": str(tmp_path), "qualifiers": False})
    doc = nlp("lupus nephritis class IV, on MMF")
    assert [(e.text, e._.ctm_concept, e._.ctm_qualifier) for e in doc.ents] == [
        ("lupus nephritis", "lupus nephritis", None), ("MMF", "mycophenolate mofetil", None)]
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("conditions.jsonl", "drugs.jsonl", "drug_classes.json"):
        (bad / name).write_text((tmp_path / name).read_text(encoding="utf-8"), encoding="utf-8")
    with open(bad / "drugs.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"generic": "x", "synonyms": [], "classes": [], "source": "s", "route": "iv"}) + "\n")
    with pytest.raises(ValueError, match=r"drugs\.jsonl:4: unknown key\(s\) \['route'\]"):
        spacy.blank("en").add_pipe("ctm_terminology", config={"lexicon_path": str(bad)})


def test_use_lexicon_swaps_index(small_lexicon: Lexicon) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("ctm_terminology", config={"lexicon_path": None})
    component = nlp.get_pipe("ctm_terminology")
    assert component.lexicon is default_lexicon()
    component.use_lexicon(small_lexicon)
    assert component.lexicon is small_lexicon
    assert [e._.ctm_concept for e in nlp("MMF for SLE").ents] == ["mycophenolate mofetil",
                                                                    "systemic lupus erythematosus"]


def test_index_is_cached_per_lexicon(blank, small_lexicon: Lexicon) -> None:
    a = TerminologyComponent(blank, lexicon=small_lexicon)
    b = TerminologyComponent(spacy.blank("en"), lexicon=small_lexicon)
    assert a._index is b._index


# --------------------------------------------------------------------------- the real lexicon


@pytest.mark.parametrize("text, expected", [
    ("52-year-old woman with SLE, lupus nephritis class IV on biopsy, failed mycophenolate and belimumab, "
     "UPCR 2.1 g/g",
     [("SLE", "CONDITION", "systemic lupus erythematosus", None),
      ("lupus nephritis", "CONDITION", "lupus nephritis", "class IV"),
      ("biopsy", "PROCEDURE", "biopsy", None),
      ("mycophenolate", "DRUG", "mycophenolate mofetil", None),
      ("belimumab", "DRUG", "belimumab", None)]),
    ("No prior CAR-T cell therapy", [("CAR-T cell therapy", "DRUG", "car_t", None)]),
    ("Patients with active hepatitis B or C",
     [("hepatitis B", "INFECTION", "hepatitis b", None), ("C", "INFECTION", "hepatitis c", None)]),
    ("History of malignancy within 5 years", [("malignancy", "CANCER", "malignancy", None)]),
    ("All patients must have ALL in first remission",
     [("ALL", "CANCER", "acute lymphoblastic leukemia", None)]),
    ("Evidence of pMN by renal biopsy during screening",
     [("pMN", "CONDITION", "membranous nephropathy", None), ("renal biopsy", "PROCEDURE", "kidney biopsy", None)]),
    ("T2DM, HTN and CAD s/p MI, AF on apixaban",
     [("T2DM", "CONDITION", "type 2 diabetes mellitus", None), ("HTN", "CONDITION", "hypertension", None),
      ("CAD", "CONDITION", "coronary artery disease", None), ("MI", "CONDITION", "myocardial infarction", None),
      ("AF", "CONDITION", "atrial fibrillation", None), ("apixaban", "DRUG", "apixaban", None)]),
    ("CKD stage 3b on prednisone 10 mg daily",
     [("CKD", "CONDITION", "chronic kidney disease", "stage 3b"), ("prednisone", "DRUG", "prednisone", None)]),
    ("Class III, IV or V LN according to the WHO 2003 ISN/RPS classification",
     [("LN", "CONDITION", "lupus nephritis", "class III/IV/V")]),
    ("HER2-positive metastatic breast cancer", [("metastatic breast cancer", "CANCER", "breast cancer", "HER2+")]),
    ("Stage IV NSCLC", [("NSCLC", "CANCER", "non-small cell lung cancer", "stage IV")]),
    ("Pregnant or breastfeeding women", [("Pregnant", "STATE", "pregnancy", None),
                                          ("breastfeeding women", "STATE", "breastfeeding", None)]),
    ("Currently requiring renal dialysis", [("renal dialysis", "PROCEDURE", "dialysis", None)]),
    ("Received allogenic stem cell transplant or autologous stem cell transplant.",
     [("allogenic stem cell transplant", "PROCEDURE", "allogeneic stem cell transplant", None),
      ("autologous stem cell transplant", "PROCEDURE", "autologous stem cell transplant", None)]),
    ("Active tuberculosis (TB) or latent TB requiring suppressive therapy",
     [("tuberculosis", "INFECTION", "tuberculosis", None), ("TB", "INFECTION", "tuberculosis", None),
      ("latent TB", "INFECTION", "latent tuberculosis", None)]),
    ("ms. jones has ms symptoms", []),
])
def test_real_sentences(real_nlp, text: str, expected: list) -> None:
    doc = real_nlp(text)
    assert [(e.text, e.label_, e._.ctm_concept, e._.ctm_qualifier) for e in doc.ents] == expected


def test_real_drug_classes_on_spans(real_nlp) -> None:
    doc = real_nlp("Prior rituximab; now prednisone 10 mg and Solu-Medrol pulses; tried CellCept.")
    by_text = {e.text: e for e in doc.ents}
    assert {"anti_cd20", "b_cell_depleting", "biologic"} <= set(by_text["rituximab"]._.ctm_classes)
    assert by_text["rituximab"]._.ctm_code == "DRUGBANK:DB00073"
    assert by_text["prednisone"]._.ctm_classes == ("corticosteroid",)
    assert by_text["Solu-Medrol"]._.ctm_concept == "methylprednisolone"
    assert "immunosuppressant" in by_text["CellCept"]._.ctm_classes
    assert all(e._.ctm_is_class is False for e in doc.ents)


@pytest.mark.parametrize("text, span, cls", [
    ("Have used at least two standard immunosuppressants (including one biological agent).",
     "biological agent", "biologic"),
    ("Have received any therapy that is targeted to CD19 and/or BCMA", "targeted to CD19", "anti_cd19"),
    ("For subjects on B-cell-depleting or -modulating drugs (ie, rituximab, belimumab)",
     "B-cell-depleting or -modulating drugs", "b_cell_depleting"),
    ("Progression despite maximal doses of renin-angiotensin system (RAS) blockade agents",
     "renin-angiotensin system (RAS) blockade agents", "ras_blockade"),
    ("Prior anti-CD19 therapy", "anti-CD19 therapy", "anti_cd19"),
    ("chronic corticosteroids", "corticosteroids", "corticosteroid"),
    ("Live vaccines within 4 weeks", "Live vaccines", "live_vaccine"),
    ("any investigational agent within 30 days", "investigational agent", "investigational_agent"),
    ("Prior cellular therapy", "cellular therapy", "cellular_therapy"),
    ("received CAR-NK cells", "CAR-NK cells", "car_nk"),
    ("on ACE inhibitors or ARBs", "ARBs", "arb"),
    ("treated with anti-TNF therapy", "anti-TNF therapy", "tnf_inhibitor"),
    ("prior chemotherapy", "chemotherapy", "chemotherapy"),
])
def test_real_class_mentions(real_nlp, text: str, span: str, cls: str) -> None:
    doc = real_nlp(text)
    hits = [e for e in doc.ents if e.text == span]
    assert hits, [(e.text, e._.ctm_concept) for e in doc.ents]
    assert hits[0]._.ctm_concept == cls
    assert hits[0]._.ctm_is_class is True
    assert cls in hits[0]._.ctm_classes


def test_real_lexicon_fast_tokenization_matches_spacy(real_nlp) -> None:
    """The shortcut in tokenize_patterns gives exactly what the tokenizer gives, for every real pattern."""
    lexicon = default_lexicon()
    terms = sorted({p.term if p.case_sensitive else p.term.lower() for p in lexicon.patterns()})
    fast = tokenize_patterns(real_nlp, terms)
    assert sum(1 for t in terms if terminology._SIMPLE_TERM.match(t)) > 0.9 * len(terms)
    mismatches = [(t, f) for t, f in zip(terms, fast) if f != tuple(tok.text for tok in real_nlp.make_doc(t))]
    assert mismatches == []


def test_disk_cache_is_written_and_reused(tmp_path: Path, monkeypatch, blank) -> None:
    monkeypatch.setenv("TRIALMATCH_CACHE_DIR", str(tmp_path))
    lexicon = lexicon_from_records(CONDITIONS, DRUGS, CLASSES, {})
    first = TerminologyComponent(blank, lexicon=lexicon)
    files = list(tmp_path.glob("terminology-*.pickle"))
    assert len(files) == 1
    # a fresh Lexicon object (no in-memory index) reads the file
    again = lexicon_from_records(CONDITIONS, DRUGS, CLASSES, {})
    second = TerminologyComponent(blank, lexicon=again)
    assert second._index.ci == first._index.ci and second._index.cs == first._index.cs
    assert [e._.ctm_concept for e in second(blank.make_doc("LN on MMF")).ents] == ["lupus nephritis",
                                                                                 "mycophenolate mofetil"]
    # a damaged file is ignored and rebuilt
    files[0].write_bytes(b"not a pickle")
    third = TerminologyComponent(blank, lexicon=lexicon_from_records(CONDITIONS, DRUGS, CLASSES, {}))
    assert third._index.ci == first._index.ci
    # other patterns, other file; cache off writes nothing
    other = lexicon_from_records(CONDITIONS[:3], DRUGS, CLASSES, {})
    TerminologyComponent(blank, lexicon=other)
    assert len(list(tmp_path.glob("terminology-*.pickle"))) == 2
    monkeypatch.setenv("TRIALMATCH_CACHE_DIR", "")
    TerminologyComponent(blank, lexicon=lexicon_from_records(CONDITIONS[:2], DRUGS, CLASSES, {}))
    assert len(list(tmp_path.glob("terminology-*.pickle"))) == 2
