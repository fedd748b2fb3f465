"""Split a ClinicalTrials.gov ``eligibilityCriteria`` string into criteria.

``split_criteria`` is a pure function: it turns the single markdown-ish
eligibility string of a registry record into an ordered list of
:class:`~models.domain.CriterionText` values, each tagged inclusion or
exclusion, with its nesting (``parent``/``depth``), the cohort sub-heading it
appeared under (``cohort``) and the nearest topic heading (``heading``).

The parser works in three passes, each linear in the size of the input:

1. physical lines -> :class:`_Line` (indent, list marker, content);
2. lines -> :class:`_Unit` (one logical paragraph/item, hard-wrapped
   continuation lines joined);
3. units -> criteria, via a small state machine that recognises section
   headings (inclusion/exclusion), cohort headings, topic headings, lead-in
   sentences and noise, and keeps a stack of open list items for nesting.

Only short strings (headings are short) are ever matched against the heading
regexes, and every regex is free of nested unbounded quantifiers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from models.domain import CriterionKind, CriterionText

__all__ = ["split_criteria"]

_INC = CriterionKind.INCLUSION
_EXC = CriterionKind.EXCLUSION

_PLAIN = "plain"
_MAX_CLASSIFY = 300  # characters of a line/unit looked at by classification regexes
_MAX_HEADING = 160  # longer texts are never headings

# --------------------------------------------------------------------------- regexes

_ESCAPE_RE = re.compile(r"\\([!-/:-@\[-`{-~])")
_WS_RE = re.compile(r"\s+")
_MD_HEADING_RE = re.compile(r"^#{1,6}\s*")
_DASH_HEADING_RE = re.compile(r"^-{2,}\s*([^-].{0,100}?)\s*-{2,}$")
_ESCAPED_MARKER_RE = re.compile(r"^\\([-*+])(?=\s)|^(\d{1,3})\\(?=[.)]\s)")
_LEADING_GLYPHS_RE = re.compile(r"^[\u2022\u00b7\u25aa\u25e6\u25cf\u25a0\u27a2\u25ba]\s*")
_MARKER_RE = re.compile(
    r"""^(?:
        (?P<dec>\d{1,2}(?:\.\d{1,2}){1,3})\.?\s+
      | (?P<num>\d{1,3})(?P<numd>[.)、])(?!\d)\s*
      | \((?P<pnum>\d{1,3})\)\s*
      | (?P<alpha>[a-zA-Z]{1,4})(?P<alphad>[.)])\s+
      | \((?P<palpha>[a-zA-Z]{1,4})\)\s*
      | (?P<circ>[\u2460-\u2473])\s*
      | (?P<bul>[-*+\u2022\u00b7\u25aa\u25e6\u25cb\u25cf\u25a0\u25a1\u27a2\u25ba\u2013\u2014])
        (?:\s+|(?=[A-Z(\[]))
    )""",
    re.X,
)
_ROMAN_RE = re.compile(r"^(?:x{0,3})(?:ix|iv|v?i{0,3})$")
_TERMINAL_PUNCT = (".", ":", ";", "!", "?")
_CONNECTOR_CHARS = (",", "(", "[", "/", "-", "&", "+", "=", "<", ">", "\u2265", "\u2264")
_CONT_START = "([\u00d7%/&+"
_CONNECTOR_WORDS = frozenset(
    """and or of the a an with to for in on at by from than as including include
    includes such that which who whose within without per via not no nor but if
    is are be been has have had was were either both between after before during
    under over into less greater more least equal e.g. i.e. any all its their
    his her following other""".split()
)

# Section headings: "Inclusion Criteria:", "Key exclusion criteria", "Non-inclusion criteria" ...
_SECTION_RE = re.compile(
    r"^(?P<pre>.{0,70}?)\b(?P<kw>non[- ]?inclusion|inclusions?|exclusions?|exclusionary|"
    r"exlusion|ineligibility|eligibility|entry|selection)\b\s*"
    r"(?P<crit>criteria|criterion|requirements?|characteristics)?(?P<post>.*)$",
    re.I,
)
_SECTION_PRE_WORDS = frozenset(
    """criteria criterion requirements key main major principal general basic additional
    specific other study patient patients subject subjects participant participants
    minimum common core primary protocol the for of and detailed summary list important
    selected""".split()
)
_GENERIC_WORDS = frozenset(
    "general common core shared main all both every overall key basic principal".split()
)
_HEADING_BLOCKERS = frozenset(
    """must meet meets met fulfil fulfill fulfills fulfils satisfy satisfies see any
    no not per above below following listed who that which will may can should shall
    apply applies described defined outlined mentioned specified""".split()
)
_SECTION_POST_RE = re.compile(
    r"^(?:\s*(?:include|includes|are|is|as follows|are as follows|were|apply|"
    r"applies|consist of|:)\s*)*(?P<rest>.*?)"
    r"(?:\s*(?:include|includes|are|:))*$",
    re.I,
)
_COHORT_POST_RE = re.compile(
    r"^(?:\(|\[|-|\u2013|\u2014|:|(?:for|in|to|applicable\s+to|specific\s+to)\s)\s*"
    r"(?:the\s+)?",
    re.I,
)
_ALL_RE = re.compile(r"\b(?:all|both|every|each)\b", re.I)
_COMBINED_RE = re.compile(
    r"^\s*(?:/|and|&|or)\s*(?:non[- ]?)?(?:inclusion|exclusion)\s*(?:criteria|criterion|"
    r"requirements)?[\s:.-]*(?:$|[(,\u2013\u2014-]|for\b|by\b)",
    re.I,
)
_EXC_LEADIN_RE = re.compile(
    r"\b(?:exclu\w*|not\s+(?:be\s+)?(?:eligible|qualify|allowed|permitted)|ineligible|"
    r"not\s+be\s+(?:included|enrolled)|contraindicat\w*|prohibited|disqualif\w*)",
    re.I,
)
_INC_LEADIN_RE = re.compile(r"\b(?:inclu\w*|eligible|enrol\w*|entry|qualify)\b", re.I)
_ALTERNATIVE_RE = re.compile(
    r"\b(?:one|either|at\s+least\s+\w+|two|three|four|\d+)\s+(?:or\s+more\s+)?of\b", re.I
)
_LEADIN_START_RE = re.compile(
    r"^(?:(?:all|the|a|an|any|each|every|no|potential|eligible|prospective|study|adult|male|"
    r"female)\s+)?"
    r"(?:patients?|subjects?|participants?|individuals?|volunteers?|persons?|people|"
    r"children|adults?|women|men|woman|man|child|candidates?|donors?|we|you|they|cases?)\b"
    r"|^(?:to\s+be\s+(?:eligible|included|enrolled)|in\s+order\s+to|the\s+following|"
    r"any\s+of\s+the\s+following|all\s+of\s+the\s+following|eligible|"
    r"inclusion\s+into|entry\s+into)\b",
    re.I,
)
_LEADIN_WORDS = frozenset(
    """all the a an following criteria criterion conditions condition requirements
    characteristics symptoms diseases prior previous to be eligible for this study
    trial enrolled included excluded enrollment enrolment participation inclusion
    exclusion entry if they must should will shall have has meet fulfil fulfill
    fulfils satisfy are is with who in order any of each considered entered into
    allowed not able below listed we excluded from apply as defined one or more and
    on at time screening randomization randomisation patients patient subjects subject
    participants participant individuals volunteers persons people children adults
    adult women men candidates candidate donors you also additionally need meeting
    either can may would were was protocol present already met qualify these those
    there least agree when she he her his woman man child""".split()
)
_LEADIN_VERBS = frozenset(
    """must should will shall have has are is be meet meeting fulfil fulfill satisfy
    following if who excluded included eligible need qualify""".split()
)
_LEADIN_TAILS = ("if", "if they", "if they have", "if they are", "following", "who", "when")

# Cohort headings.
_COHORT_ID_RE = re.compile(
    r"^(?:cohorts?|parts?|arms?|groups?|sub-?stud(?:y|ies)|sub-?groups?|strat(?:um|a)|"
    r"modules?|phases?|populations?|sub-?populations?|tiers?|segments?|sub-?protocols?|"
    r"baskets?)\s+(?:[A-Z0-9]{1,4}|I{1,3}|IV|V|VI{1,3})\b",
    re.I,
)
_COHORT_SUFFIX_RE = re.compile(
    r"\b(?:cohorts?|arms?|groups?|sub-?stud(?:y|ies)|populations?|part|participants|"
    r"patients|subjects|volunteers|cases|group)\s*(?:\([^()]{1,40}\))?$",
    re.I,
)
_COHORT_STRONG_SUFFIX_RE = re.compile(
    r"\b(?:cohorts?|arms?|sub-?stud(?:y|ies)|populations?)\s*(?:\([^()]{1,40}\))?$", re.I
)
_FOR_COHORT_RE = re.compile(
    r"^(?:for|in(?=\s+(?:the\s+)?(?:patients?|participants?|subjects?|cohorts?|parts?|arms?|"
    r"groups?|women|men|children|adults|case\s+of)\b))\s+"
    r"(?!example\b|instance\b|at\s+least\b|more\b|less\b|the\s+duration\b|"
    r"the\s+purpose\b|this\b|these\b|which\b|whom\b|a\s+period\b|women\s+of\s+child)"
    r"(?:the\s+)?(?P<c>.{2,90}?)"
    r"(?:\s*[,;]?\s*(?:the\s+following|following|these|additional|the\s+criteria|"
    r"criteria|inclusion|exclusion)\b.{0,60})?$",
    re.I,
)
_WHO_COHORT_RE = re.compile(
    r"^(?:patients?|participants?|subjects?|women|men|children|adults|individuals)\s+"
    r"(?:with|who\s+have|receiving|undergoing|diagnosed\s+with|on)\s+\S.{0,70}$",
    re.I,
)
_SPECIFIC_RE = re.compile(
    r"^(?:(?:additional|specific|disease[- ]specific|cohort[- ]specific|"
    r"indication[- ]specific)\s+)*(?:patient\s+)?(?:eligibility\s+)?criteria\s*"
    r"(?:for|specific\s+to|applicable\s+to|[-\u2013\u2014:])\s*(?:the\s+)?(?P<c>\S.{0,80})$"
    r"|^(?:specific|applicable|restricted)\s+to\s+(?:the\s+)?(?P<c2>\S.{0,80})$"
    r"|^(?P<c3>\S.{0,60}?)[- ]specific(?:\s+(?:criteria|requirements))?$",
    re.I,
)
_DISEASE_RE = re.compile(
    r"(?i:\w{3,}(?:itis|osis|opathy|emia|aemia|oma|omas)\b|\b(?:cancers?|carcinoma|disease|"
    r"syndrome|disorder|lupus|sle|nephritis|nephropathy|arthritis|diabetes|asthma|copd|"
    r"infection|leuka?emia|lymphoma|myeloma|sarcoma|tumou?rs?|failure|injury|stroke|"
    r"dementia|deficiency|hiv|hepatitis|aids|igan|fsgs|psoriasis|sclerosis|vasculitis|"
    r"glaucoma|amd|healthy\s+volunteers?|healthy\s+controls?|controls)\b)"
    r"|\([A-Z][A-Za-z0-9/-]{1,7}\)|\b[A-Z]{2,6}\b",
)
_CONTROL_COHORT_RE = re.compile(
    r"^(?:healthy\s+)?(?:controls?|control\s+(?:group|subjects|participants|arm|cohort)|"
    r"healthy\s+(?:volunteers?|subjects?|controls?|participants?|individuals?|donors?)|"
    r"(?:normal|healthy)\s+volunteers?|cases?)$",
    re.I,
)
_GENERIC_COHORT_RE = re.compile(
    r"^(?:(?:for|in|applicable\s+to|applies\s+to)\s+)?(?:all|both|every|each)\s+"
    r"(?:study\s+|enrolled\s+)?(?:participants|patients|subjects|cohorts|parts|arms|groups|"
    r"populations|phases|indications|volunteers|diseases)(?:\s+(?:and|&)\s+\w+)?$"
    r"|^(?:general|common|core|shared|main|basic|overall)\s+(?:eligibility\s+|inclusion\s+|"
    r"exclusion\s+)?(?:criteria|requirements)(?:\s+for\s+all\s+\w+)?$",
    re.I,
)
_MODAL_WORDS = frozenset({"must", "should", "will", "shall", "may", "can"})
_GENERIC_DISEASE_WORDS = frozenset(
    "infection infections disease diseases cancer failure injury disorder tumor tumour".split()
)
_PROCEDURAL_WORDS = frozenset(
    """registration randomization randomisation enrollment enrolment screening treatment
    phase trial entry study baseline visit period step stage pre-registration
    preregistration re-registration procurement retreatment re-treatment continuation
    extension crossover cross-over follow-up dosing infusion vaccination apheresis
    leukapheresis lymphodepletion and or the of at time first second initial
    summary shortened abbreviated continued cont list full main key other disease
    diseases cohort cohorts indication indications tumor tumour specific criteria
    criterion inclusion exclusion exclusions inclusions patient patients participants
    subjects eligibility requirements all note notes important""".split()
)
_COHORT_BLOCKERS = frozenset(
    """listed below above follows must should will shall have has had is are be been
    was were not no any following history diagnosis diagnosed including include such
    defined one either who which that receive received receiving prior known able
    willing agree consent age aged
    treated treatment less greater than least within""".split()
)

# Topic headings of old NCI records ("Hepatic:", "PRIOR CONCURRENT THERAPY:").
_TOPIC_WORDS = frozenset(
    """age sex gender performance status life expectancy hematopoietic haematopoietic
    hematologic hepatic renal cardiovascular cardiac pulmonary neurologic neurological
    other others chemotherapy radiotherapy radiation therapy surgery biologic biological
    endocrine concurrent medication medications prior co-existing coexisting condition
    conditions treatment treatments menopausal disease characteristics patient
    concurrent protocol entry criteria allowed excluded required recommended not
    permitted prohibited infection infections immunologic gastrointestinal metabolic
    laboratory lab values psychiatric reproductive contraception pregnancy general
    demographics medical history and or / - & of immunotherapy hormonal hormone
    previous symptoms signs tests findings diagnostic diagnosis clinical histology
    pathology staging stage extent lesion lesions tumor transplant
    nutritional neurology skin dermatologic""".split()
)
_CRITERION_WORDS = frozenset(
    """adequate normal sufficient acceptable documented confirmed measurable evaluable
    presence evidence history active known significant uncontrolled severe demonstrate
    has have with without physical increased decreased elevated abnormal positive
    negative of for to in on at by any all at least prior current recent""".split()
)
_QUALIFIER_HEADINGS = frozenset(
    {"allowed", "excluded", "required", "recommended", "permitted", "prohibited",
     "not allowed", "not permitted"}
)
_BOILERPLATE_RE = re.compile(
    r"^(?:(?:note:?\s*)?other\s+protocol[- ]defined\b.{0,60}|not\s+specified|"
    r"not\s+applicable|n/?a|none|nil|no\s+eligibility\s+criteria|"
    r"see\s+(?:disease|patient)\s+characteristics|see\s+above|see\s+below|"
    r"(?:note:?\s*)?(?:other\s+)?(?:protocol[- ]defined\s+)?(?:inclusion\s*/\s*exclusion\s+|"
    r"inclusion\s+and\s+exclusion\s+|additional\s+|other\s+)?criteria\s+(?:may|will)\s+apply)"
    r"[.;]?$",
    re.I,
)
_NCI_MAJOR_RE = re.compile(
    r"^((?:DISEASE|PATIENT)\s+CHARACTERISTICS|PRIOR\s*/?\s*CONCURRENT\s+THERAPY)\s*:\s*",
    re.I,
)
_NCI_LABEL_RE = re.compile(
    r"\b(?:Age|Sex|Menopausal status|Performance status|Life expectancy|Hematopoietic|"
    r"Hepatic|Renal|Cardiovascular|Pulmonary|Neurologic|Other|Biologic therapy|"
    r"Chemotherapy|Endocrine therapy|Radiotherapy|Surgery|Hormone receptor status)\s*:"
)
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_COUNT_RE = re.compile(
    r"\bof\s+the\s+(\d{1,2}|two|three|four|five|six|seven|eight)\s+(?:following|criteria|"
    r"conditions|items)\b|\bfollowing\s+(\d{1,2}|two|three|four|five|six|seven|eight)\b",
    re.I,
)
_SENTENCE_END_RE = re.compile(r"(?<=\.)\s+(?=[A-Z])|;")
_EXC_STATEMENT_RE = re.compile(
    r"\b(?:patients?|subjects?|participants?|individuals?|those|persons?|women|men|children|"
    r"volunteers?|anyone|people|cases?|infants?|adults?)\b[^.;]{0,200}?\b(?:will|shall|would|"
    r"should|must|are|is|were|was)\s+(?:also\s+|then\s+)?(?:be\s+)?(?:excluded|ineligible|"
    r"not\s+(?:be\s+)?eligible)\b"
    r"|\bexclusions?\s+(?:criteria\s+)?(?:include|included|are|were|will)\b"
    r"|^(?:also\s+)?excluded\b|\bwill\s+(?:also\s+)?exclude\b",
    re.I,
)
_NOT_EXCLUDED_RE = re.compile(r"\bnot\s+(?:be\s+)?excluded\b|\bnot\s+exclude\b", re.I)
_NOISE_WORDS = frozenset({"key", "additional", "main", "and", "&"})
_CONJUNCTIONS = frozenset({"or", "and/or", "and", "- or -", "-or-"})


# --------------------------------------------------------------------------- data


@dataclass(slots=True)
class _Line:
    indent: int
    text: str  # content after the marker, stripped
    style: str = _PLAIN
    label: str | None = None
    content_indent: int = 0
    md_heading: bool = False


@dataclass(slots=True)
class _Unit:
    indent: int
    style: str
    label: str | None
    content_indent: int
    parts: list[str]
    md_heading: bool = False


@dataclass(slots=True)
class _Frame:
    indent: int
    style: str
    label: str | None
    pos: int
    depth: int
    parent: _Frame | None
    colon: bool
    text: str
    flat_parent: _Frame | None = None
    punct_list: bool = False
    kind: CriterionKind = _INC
    sibling_words: frozenset[str] = frozenset()  # first words of earlier siblings
    child_words: set[str] = field(default_factory=set)  # first words of flat children
    n_children: int = 0
    expected: int | None = None  # "1 of the 3 following" -> 3 children


@dataclass(slots=True)
class _Item:
    kind: CriterionKind
    position: int
    text: str
    parent: int | None
    cohort: str | None
    heading: str | None
    depth: int
    block: int = 0


@dataclass(slots=True)
class _State:
    kind: CriterionKind = _INC
    cohort: str | None = None
    heading: str | None = None
    base_heading: str | None = None
    exclusion_seen: bool = False
    items_in_section: int = 0
    items_since_heading: int = 0
    weak_cohorts: int = 0
    stack: list[_Frame] = field(default_factory=list)
    counters: dict[CriterionKind, int] = field(default_factory=lambda: {_INC: 0, _EXC: 0})
    items: list[_Item] = field(default_factory=list)
    block: int = 0  # top-level numbering restarts seen in the current section
    last_top_number: int | None = None


# --------------------------------------------------------------------------- public API


def split_criteria(text: str) -> list[CriterionText]:
    """Split an ``eligibilityCriteria`` string into ordered inclusion/exclusion criteria.

    ``position`` counts from 0 within each kind in document order; sub-items
    carry ``parent`` (the parent's position) and ``depth`` >= 1. Never raises
    on string input; returns ``[]`` for empty or criteria-less text.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    lines = _physical_lines(text)
    if not lines:
        return []
    units = _build_units(lines, _wrap_width(lines))
    state = _State(weak_cohorts=_count_weak_cohorts(units))
    for unit in units:
        _note_restart(state, unit)
        _process_unit(state, unit)
    _cohorts_from_restarts(state.items)
    return [
        CriterionText(
            kind=i.kind,
            position=i.position,
            text=i.text,
            parent=i.parent,
            cohort=i.cohort,
            heading=i.heading,
            depth=i.depth,
        )
        for i in state.items
    ]


_ABBREV_RE = re.compile(r"\b(?=\w*[A-Z]\w*[A-Z])[A-Za-z][A-Za-z0-9]{1,5}\b")
_NOT_COHORT_ABBREVS = frozenset({"UPCR", "ANA", "ACR", "NIH", "ISN", "RPS", "EULAR", "CT", "MRI", "ECG", "ULN", "HIV",
                                 "II", "III", "IV", "VI", "OR", "AND", "ALT", "AST", "EF", "UACR", "GFR", "EGFR",
                                 "WBC", "ANC", "CSF", "BMI", "ECOG", "DNA", "RNA", "BP", "NRS", "INR", "CBC",
                                 "HBA1C", "PSA", "KPS", "QTC", "LVEF", "IUD", "PCR", "CRP", "ESR"})


def _note_restart(state: _State, unit: _Unit) -> None:
    """Count restarts of top-level numbering ("1." after "5.") inside the inclusion section."""
    if unit.indent > 0 or not unit.label or not unit.label.isdigit() or not unit.style.startswith("num"):
        return
    number = int(unit.label)
    if state.last_top_number is not None and number == 1 and state.last_top_number >= 1 and state.items:
        state.block += 1
    state.last_top_number = number


def _block_label(texts: list[str], others: list[str]) -> str | None:
    """A distinctive abbreviation of a block ("LN", "pMN") that its sibling blocks do not use."""
    other = " ".join(others)
    counts: dict[str, int] = {}
    for t in texts:
        for m in _ABBREV_RE.finditer(t):
            word = m.group(0)
            if word.upper() in _NOT_COHORT_ABBREVS or re.search(rf"\b{re.escape(word)}\b", other):
                continue
            counts[word] = counts.get(word, 0) + 1
    return max(counts, key=lambda w: (counts[w], -len(w))) if counts else None


def _cohorts_from_restarts(items: list[_Item]) -> None:
    """Unheaded alternative cohorts: inclusion lists whose numbering restarts two or more times.

    Some records (the NKX019 page among them) give general items, then one
    numbered list per disease, with the headings lost. With at least two
    restarted blocks the restarted blocks are read as alternative cohorts,
    labelled by a distinctive abbreviation when there is one.
    """
    inclusion = [i for i in items if i.kind is _INC and i.cohort is None]
    blocks = sorted({i.block for i in inclusion if i.block > 0})
    if len(blocks) < 2 or any(i.cohort for i in items if i.kind is _INC):
        return
    texts = {b: [i.text for i in inclusion if i.block == b] for b in blocks}
    labels = {b: _block_label(texts[b], [t for o in blocks if o != b for t in texts[o]]) for b in blocks}
    if len(blocks) > 4 or not all(labels.values()) or any(len(texts[b]) < 2 for b in blocks):
        return  # without a distinctive disease label per block, restarts may be lost section headings
    for n, block in enumerate(blocks, start=1):
        name = f"cohort {n} ({labels[block]})"
        for item in inclusion:
            if item.block == block:
                item.cohort = name


# --------------------------------------------------------------------------- pass 1: lines


def _physical_lines(text: str) -> list[_Line | None]:
    """Lines with marker parsed; ``None`` stands for a blank line."""
    out: list[_Line | None] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        raw = raw.replace("\t", "    ").replace("\u00a0", " ").rstrip()
        stripped = raw.lstrip()
        if not stripped:
            out.append(None)
            continue
        indent = len(raw) - len(stripped)
        out.extend(_split_inline_bullets(_parse_line(indent, stripped)))
    return out


def _parse_line(indent: int, s: str) -> _Line:
    md = False
    if s.startswith("#"):
        s2 = _MD_HEADING_RE.sub("", s[:_MAX_CLASSIFY]) + s[_MAX_CLASSIFY:]
        md = s2 != s
        s = s2
    if s.startswith("\\") or s[:1].isdigit():
        s = _ESCAPED_MARKER_RE.sub(lambda m: m.group(1) or m.group(2), s, count=1)
    dash = _DASH_HEADING_RE.match(s[:_MAX_HEADING]) if s.startswith("--") else None
    if dash:
        return _Line(indent, dash.group(1), md_heading=True)
    m = _MARKER_RE.match(s[:40])
    if not m:
        return _Line(indent, s, md_heading=md)
    style, label = _marker_style(m)
    if style is None:
        return _Line(indent, s, md_heading=md)
    content = s[m.end():].strip()
    return _Line(indent, content, style, label, indent + m.end(), md)


def _marker_style(m: re.Match[str]) -> tuple[str | None, str | None]:
    g = m.groupdict()
    if g["dec"]:
        return "dec", g["dec"]
    if g["num"]:
        return "num" + ("." if g["numd"] == "\u3001" else g["numd"]), g["num"]
    if g["pnum"]:
        return "(num)", g["pnum"]
    if g["alpha"]:
        return _letter_style(g["alpha"], g["alphad"])
    if g["palpha"]:
        style, label = _letter_style(g["palpha"], ")")
        return (None, None) if style is None else ("(" + style, label)
    if g["circ"]:
        return "circ", str(ord(g["circ"]) - 0x2460 + 1)
    return "bullet" + g["bul"], None


def _letter_style(letters: str, delim: str) -> tuple[str | None, str | None]:
    low = letters.lower()
    if _ROMAN_RE.match(low):
        case = "R" if letters.isupper() else "r"
        return f"roman{case}{delim}", letters
    if len(letters) == 1:
        case = "A" if letters.isupper() else "a"
        return f"alpha{case}{delim}", letters
    return None, None


def _split_inline_bullets(line: _Line) -> list[_Line]:
    """Inline bullets: 'Parent: \u2022 one \u2022 two' -> the parent line plus bulleted child lines."""
    if "\u2022" not in line.text[1:]:
        return [line]
    pieces = [p.strip() for p in line.text.split("\u2022")]
    first, rest = pieces[0], [p for p in pieces[1:] if p]
    if not rest:
        return [line]
    out: list[_Line] = []
    child_indent = line.content_indent if line.style != _PLAIN else line.indent + 2
    if first:
        out.append(_Line(line.indent, first, line.style, line.label, line.content_indent,
                         line.md_heading))
    elif line.style == _PLAIN:
        child_indent = line.indent
    for p in rest:
        out.append(_Line(child_indent, p, "bullet\u2022", None, child_indent + 2))
    return out


# --------------------------------------------------------------------------- pass 2: units


def _wrap_width(lines: list[_Line | None]) -> int:
    """Line width of a hard-wrapped record, or 0 when the record is not hard-wrapped."""
    lengths = [_line_len(ln) for ln in lines if ln is not None]
    width = max(lengths, default=0)
    if not 60 <= width <= 100:
        return 0
    near = 0
    for i in range(len(lines) - 1):
        cur, nxt = lines[i], lines[i + 1]
        if cur is not None and nxt is not None and _line_len(cur) >= width - 10:
            near += 1
    return width if near else 0


def _line_len(line: _Line) -> int:
    return (line.content_indent if line.style != _PLAIN else line.indent) + len(line.text)


def _build_units(lines: list[_Line | None], width: int) -> list[_Unit]:
    units: list[_Unit] = []
    last_label: dict[tuple[str, int], str] = {}
    prev: _Line | None = None
    blank = True
    for line in lines:
        if line is None:
            blank = True
            continue
        cur = units[-1] if units else None
        if line.style != _PLAIN:
            line = _resolve_letter(line, last_label)
        if line.style != _PLAIN and not blank and cur is not None and prev is not None:
            if not _marker_plausible(line, prev, last_label):
                line = _Line(line.indent, _unparse_marker(line), md_heading=False)
        if line.style != _PLAIN:
            if line.label is not None:
                last_label[(line.style, line.indent)] = line.label
            units.append(_new_unit(line))
        elif cur is not None and prev is not None and _continues(cur, prev, line, blank, width):
            cur.parts.append(line.text)
        else:
            units.append(_new_unit(line))
        prev = line
        blank = False
    return units


def _new_unit(line: _Line) -> _Unit:
    return _Unit(line.indent, line.style, line.label, line.content_indent, [line.text],
                 line.md_heading)


def _unparse_marker(line: _Line) -> str:
    label = line.label or ""
    s = line.style
    if s.startswith("("):
        token = f"({label})"
    elif s == "dec":
        token = label
    else:
        token = label + s[-1]
    return f"{token} {line.text}".strip()


def _resolve_letter(line: _Line, last_label: dict[tuple[str, int], str]) -> _Line:
    """Single "i"/"v"/"x" are letters when they continue a lettered list."""
    style = line.style
    if "roman" not in style or line.label is None or len(line.label) != 1:
        return line
    alpha_style = style.replace("romanR", "alphaA").replace("romanr", "alphaa")
    for (style, _indent), prev in last_label.items():
        if style == alpha_style and _succ(prev, style) == line.label:
            line.style = alpha_style
            break
    return line


def _succ(label: str, style: str = "") -> str | None:
    """The label that follows ``label`` in a list of ``style`` ("7" -> "8", "ii" -> "iii")."""
    if label.isdigit():
        return str(int(label) + 1)
    if len(label) == 1 and label.isalpha() and "roman" not in style:
        return chr(ord(label) + 1)
    if "." in label:
        head, _, last = label.rpartition(".")
        return f"{head}.{int(last) + 1}" if last.isdigit() else None
    low = label.lower()
    if _ROMAN_RE.match(low):
        nxt = _int_to_roman(_roman_to_int(low) + 1)
        return nxt.upper() if label.isupper() else nxt
    return None


def _is_first(label: str | None) -> bool:
    if label is None:
        return True
    return label.lower() in {"1", "a", "i", "0"} or label.endswith(".1")


_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10}


def _roman_to_int(s: str) -> int:
    total = 0
    for i, ch in enumerate(s):
        v = _ROMAN_VALUES[ch]
        total += -v if i + 1 < len(s) and _ROMAN_VALUES[s[i + 1]] > v else v
    return total


def _int_to_roman(n: int) -> str:
    out = []
    for value, sym in ((10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while n >= value:
            out.append(sym)
            n -= value
    return "".join(out)


def _marker_plausible(line: _Line, prev: _Line, last_label: dict[tuple[str, int], str]) -> bool:
    """Reject ordered markers that are really the start of a hard-wrapped continuation."""
    if line.label is None or line.style.startswith("bullet") or _is_first(line.label):
        return True
    family = line.style.rstrip(".)")
    for (style, _indent), last in last_label.items():
        if style.rstrip(".)") == family and _succ(last, style) == line.label:
            return True
    prev_text = prev.text
    if prev_text.endswith(_TERMINAL_PUNCT):
        return not _ends_with_connector(prev_text)
    return False


def _continues(cur: _Unit, prev: _Line, line: _Line, blank: bool, width: int) -> bool:
    """Does plain ``line`` continue unit ``cur`` (whose last physical line is ``prev``)?"""
    text = line.text
    prev_text = prev.text
    if blank:
        if not text[:1].islower():
            return False
        if cur.style == _PLAIN and len(cur.parts) == 1 and _is_strong_heading(cur.parts[0]):
            return False
        if _ends_with_connector(prev_text):
            return True
        short = len(text) <= 40 and text.count(" ") <= 3
        return short and sum(map(len, cur.parts)) >= 60 and not prev_text.endswith(
            _TERMINAL_PUNCT
        )
    if prev_text.endswith((":", "\uff1a")):
        tail = prev_text[-30:]
        labels = list(_NCI_LABEL_RE.finditer(tail))
        if not (labels and labels[-1].end() == len(tail) and len(cur.parts[0]) > 40):
            return False
    if _is_strong_heading(text):
        return False
    if len(cur.parts) == 1 and _is_strong_heading(cur.parts[0]):
        return False
    if width and _line_len(prev) + 1 + len(text.split(" ", 1)[0]) > width - 3:
        return True
    if width and cur.style != _PLAIN:
        return True  # hard-wrapped record: a bullet item owns the unbulleted lines below it
    if cur.style != _PLAIN and line.indent > cur.indent and line.indent >= cur.content_indent - 1:
        return True
    if _ends_with_connector(prev_text):
        return True
    first = text[:1]
    if (first.islower() or first in _CONT_START) and not prev_text.endswith(_TERMINAL_PUNCT):
        return True
    return False


def _ends_with_connector(text: str) -> bool:
    t = text.rstrip()
    if not t:
        return False
    if t.endswith(_CONNECTOR_CHARS) and not t.endswith(("--", "->")):
        return True
    last = t.rsplit(" ", 1)[-1].lower()
    return last in _CONNECTOR_WORDS


def _is_strong_heading(text: str) -> bool:
    """Cheap check used while joining lines: section/cohort headings never continue an item."""
    if len(text) > _MAX_HEADING:
        return False
    t = _norm_heading(text)
    if not t:
        return text.strip() in {":", "-"}
    if _section_of(t) is not None:
        return True
    if text.rstrip().endswith(":") and (_COHORT_ID_RE.match(t) or _FOR_COHORT_RE.match(t)):
        cohort = _cohort_of(t, True, False)
        return cohort is not None and cohort[1]
    if text.rstrip().endswith(":") and t.isupper() and len(t.split()) <= 6:
        return True
    return False


# --------------------------------------------------------------------------- text helpers


def _clean(text: str) -> str:
    text = _ESCAPE_RE.sub(r"\1", text)
    text = text.replace("**", "")
    return _LEADING_GLYPHS_RE.sub("", _WS_RE.sub(" ", text).strip())


def _join_parts(parts: list[str]) -> str:
    out = parts[0]
    for p in parts[1:]:
        if len(out) > 1 and out[-1] in "-/" and out[-2].isalpha() and p[:1].isalpha():
            out += p
        else:
            out += " " + p
    return out


def _norm_heading(text: str) -> str:
    t = _clean(text[:_MAX_HEADING])
    t = _MD_HEADING_RE.sub("", t)
    t = t.strip(" *_#\u2013\u2014")
    while t and t[-1] in ":\uff1a-.;,\u2013\u2014 ":
        t = t[:-1]
    while t and t[0] in "-:":
        t = t[1:].lstrip()
    return t


def _words(text: str) -> list[str]:
    return [w.strip("()[],.;:'\"").lower() for w in text.split()]


# --------------------------------------------------------------------------- classification


def _section_of(t: str) -> tuple[CriterionKind | None, str | None, bool] | None:
    """Parse a section heading: (kind, cohort, generic) or None.

    ``kind`` None means a combined "Inclusion/Exclusion criteria" heading.
    """
    if len(t) > 120:
        return None
    m = _SECTION_RE.match(t)
    if not m:
        return None
    kw = m.group("kw").lower()
    crit = m.group("crit")
    post = m.group("post")
    if kw in {"eligibility", "entry", "selection"} and not crit and post.strip():
        return None
    if kw in {"entry", "selection"} and not crit:
        return None
    if _COMBINED_RE.match(post):
        return None if _words(m.group("pre")) else (None, None, False)
    kind = _EXC if kw.startswith(("exclu", "exlu", "non", "inelig")) else _INC
    pre_words = [w for w in _words(m.group("pre")) if w]
    if any(w in _HEADING_BLOCKERS for w in pre_words) or len(pre_words) > 6:
        return None
    if any(ch in m.group("pre") for ch in ".,;!?<>=\u2264\u2265"):
        return None
    if not crit and not post.strip() and pre_words and not kw.startswith(("inclu", "exclu")):
        return None
    pm = _SECTION_POST_RE.match(post)
    rest = pm.group("rest").strip() if pm else post.strip()
    if not crit and rest.strip(" -:\u2013\u2014"):
        return None
    cohort_text, generic = _cohort_from_parts(m.group("pre"), rest)
    if cohort_text == "":  # post contains something that is not a cohort qualifier
        return None
    if not crit and kw.startswith(("inclusion", "exclusion")) and kw.endswith("s") and rest:
        return None
    return kind, cohort_text, generic


def _cohort_from_parts(pre: str, rest: str) -> tuple[str | None, bool]:
    """Cohort named around a section keyword; "" when ``rest`` disqualifies the heading."""
    pre_clean = pre.strip(" -\u2013\u2014:(")
    pre_words = [w for w in _words(pre_clean) if w]
    name_words = [w for w in pre_words if w not in _SECTION_PRE_WORDS]
    generic = any(w in _GENERIC_WORDS for w in pre_words)
    if rest:
        if _ALL_RE.search(rest) and len(rest) < 60:
            return None, True
        if not _COHORT_POST_RE.match(rest):
            return "", False
        r = _COHORT_POST_RE.sub("", rest).strip(" ()[]-\u2013\u2014:")
        rw = _words(r)
        if not r or len(rw) > 10 or any(w in _HEADING_BLOCKERS for w in rw):
            return ("", False) if r else (None, generic)
        if _GENERIC_COHORT_RE.match(r) or rw[0] in _GENERIC_WORDS:
            return None, True
        named = _cohort_name(r, True)
        return (named[0] if named else None), False
    if name_words and not generic:
        name = re.sub(r"(?i)\b(?:additional|specific|key|main|other)\b", "", pre_clean)
        name = re.sub(r"(?i)[- ]+specific\b", "", name)
        name = name.strip(" -\u2013\u2014:")
        name = re.sub(r"(?i)^(?:for|the)\s+", "", name).strip()
        named = _cohort_name(name, True) if name else None
        return (named[0] if named else None), False
    return None, generic


def _leadin_of(t: str, raw: str) -> tuple[bool, CriterionKind | None]:
    """Lead-in sentences such as "Patients must have:" are dropped (not criteria)."""
    if len(t) > _MAX_HEADING or not _LEADIN_START_RE.match(t):
        return False, None
    words = [w for w in _words(t) if w]
    if not words or len(words) > 28:
        return False, None
    stripped = raw.rstrip()
    low = t.lower()
    if not (stripped.endswith((":", "\uff1a")) or low.endswith(_LEADIN_TAILS)):
        return False, None
    content = [w for w in words if w not in _LEADIN_WORDS and not w.isdigit()]
    if len(content) > 1 or not _LEADIN_VERBS.intersection(words):
        return False, None
    kind: CriterionKind | None = None
    if _EXC_LEADIN_RE.search(t):
        kind = _EXC
    elif _INC_LEADIN_RE.search(t):
        kind = _INC
    if kind is not _EXC and _ALTERNATIVE_RE.search(t):
        return False, None
    return True, kind


def _cohort_of(t: str, colon: bool, has_marker: bool) -> tuple[str, bool] | None:
    """Cohort heading ``(name, strong)``, or None when ``t`` is not a cohort heading.

    Strong headings name a cohort/part/arm explicitly ("Cohort A:", "For patients
    with LN:", "LN cohort"); weak ones are bare disease/population names
    ("Lupus Nephritis:") and only count when a record has several of them.
    """
    if len(t) > 120 or ";" in t:
        return None
    words = [w for w in _words(t) if w]
    if not words or len(words) > 16 or words[-1] in {"include", "includes", "and", "or", "with"}:
        return None
    blocked = any(w in _COHORT_BLOCKERS for w in words)
    m = _FOR_COHORT_RE.match(t)
    if m and colon:
        name = m.group("c").strip(" ,;:-")
        nw = [w for w in _words(name) if w]
        if 0 < len(nw) <= 12 and not _MODAL_WORDS.intersection(nw):
            return _cohort_name(name[:1].upper() + name[1:], True)
        return None
    if _COHORT_ID_RE.match(t):
        head, sep, tail = t.partition(":")
        if sep and len(words) > 12:
            return _cohort_name(head.strip(), True)
        return _cohort_name(t, True) if (colon or len(words) <= 8) else None
    spec = _SPECIFIC_RE.match(t)
    if spec and not blocked:
        name = (spec.group("c") or spec.group("c2") or spec.group("c3") or "").strip()
        if name and len(_words(name)) <= 8:
            return _cohort_name(name, True)
    if blocked or len(words) > 8:
        return None
    if (_COHORT_STRONG_SUFFIX_RE.search(t) and len(words) >= 2) or (
        colon and _CONTROL_COHORT_RE.match(t)
    ):
        return _cohort_name(t, True)
    if has_marker or not colon:
        return None
    if _WHO_COHORT_RE.match(t) or (_COHORT_SUFFIX_RE.search(t) and len(words) >= 2):
        return _cohort_name(t, False)
    if len(words) == 1 and t.isupper() and t.isalpha() and 2 <= len(t) <= 6:
        if words[0] not in _TOPIC_WORDS and words[0] not in _PROCEDURAL_WORDS:
            return _cohort_name(t, False)
    probe = t.lower() if t.isupper() else t
    if len(words) <= 6 and _DISEASE_RE.search(probe) and not _is_topic_words(words):
        if len(words) == 1 and words[0] in _GENERIC_DISEASE_WORDS:
            return None
        return _cohort_name(t, False)
    return None


def _cohort_name(name: str, strong: bool) -> tuple[str, bool] | None:
    """Drop procedural "cohorts" such as "Registration" or "Randomization phase"."""
    words = [w for w in _words(name) if w]
    if not words or all(w in _PROCEDURAL_WORDS for w in words):
        return None
    return name, strong


def _is_topic_words(words: list[str]) -> bool:
    return all(w in _TOPIC_WORDS or not w for w in words)


def _topic_of(t: str, raw: str, unit: _Unit) -> str | None:
    """Plain topic heading ("DISEASE CHARACTERISTICS", "Hepatic", "## Renal function")."""
    if len(t) > 80:
        return None
    words = [w for w in _words(t) if w]
    if not words:
        return None
    colon = raw.rstrip().endswith((":", "\uff1a"))
    if unit.md_heading:
        return t if len(words) <= 12 else None
    if unit.style != _PLAIN:
        return None
    if raw.strip().startswith("**") and raw.strip().rstrip(":").endswith("**"):
        return t if len(words) <= 10 else None
    if _is_topic_words(words) and len(words) <= 5 and (colon or t.isupper()):
        return t
    if any(ch.isdigit() for ch in t) or any(c in t for c in "<>=\u2264\u2265%"):
        return None
    if any(w in _COHORT_BLOCKERS or w in _HEADING_BLOCKERS for w in words):
        return None
    if colon and len(words) <= 3 and t[:1].isupper() and not any(
        w in _CRITERION_WORDS or w.endswith(("ed", "ing")) for w in words
    ):
        return t
    if t.isupper() and len(words) <= 5 and len(t) >= 4 and words[0] not in {"no", "not"}:
        return t
    return None


# --------------------------------------------------------------------------- pass 3: state


def _process_unit(state: _State, unit: _Unit) -> None:
    raw = _join_parts(unit.parts)
    stripped = raw.strip()
    if not stripped:
        return
    if stripped.strip(" *") in {":", "\uff1a"}:
        _lone_colon(state)
        return
    t = _norm_heading(stripped) if len(stripped) <= _MAX_HEADING else ""
    if t.lower() in _CONJUNCTIONS:
        _append_conjunction(state, t)
        return
    if len(stripped) <= _MAX_HEADING and _heading_unit(state, unit, t, stripped):
        return
    nci = _nci_inline(stripped)
    if nci is not None:
        head, pieces = nci
        if head:
            _set_topic(state, head)
            state.stack.clear()
        for piece in pieces:
            _process_unit(state, _Unit(unit.indent, unit.style, None, unit.content_indent, [piece]))
        return
    inline = _inline_section(stripped)
    if inline is not None:
        while inline is not None:  # "Inclusion Criteria: Exclusion Criteria: x" stays iterative
            head, stripped = inline
            _heading_unit(state, unit, head, head + ":")
            inline = _inline_section(stripped)
        _process_unit(state, _Unit(unit.indent, _PLAIN, None, unit.indent, [stripped]))
        return
    text = _clean(raw)
    low = text.lower()
    if not text.strip("-*_=.:;,\u2022 ") or low in _NOISE_WORDS:
        return
    if low in _CONJUNCTIONS:
        _append_conjunction(state, text)
        return
    if _BOILERPLATE_RE.match(text) or _BOILERPLATE_RE.match(_strip_topic_prefix(text)):
        return
    _emit(state, unit, text, _inline_cohort(text))


def _count_weak_cohorts(units: list[_Unit]) -> int:
    """Cohort-like plain headings; bare disease names count as cohorts only if there are 2+."""
    count = 0
    for unit in units:
        if unit.style != _PLAIN or len(unit.parts) > 2:
            continue
        raw = " ".join(unit.parts).strip()
        if len(raw) > 100 or not raw.endswith((":", "\uff1a")):
            continue
        t = _norm_heading(raw)
        if not t or _section_of(t) is not None or _leadin_of(t, raw)[0]:
            continue
        if _cohort_of(t, True, False) is not None:
            count += 1
    return count


def _heading_unit(state: _State, unit: _Unit, t: str, raw: str) -> bool:
    """Handle ``unit`` if it is a heading/lead-in; return True when consumed."""
    if not t:
        return False
    colon = raw.rstrip().endswith((":", "\uff1a"))
    section = _section_of(t)
    if section is not None:
        kind, cohort, _generic = section
        if kind is not None:
            _start_section(state, kind, cohort)
        else:
            state.stack.clear()
        return True
    is_leadin, kind = _leadin_of(t, raw)
    if is_leadin:
        if kind is _EXC and state.kind is _INC:
            _start_section(state, _EXC, None)
        elif state.items_since_heading:
            state.heading = state.base_heading = None
        state.stack.clear()
        return True
    words = [w for w in _words(t) if w]
    if unit.style == _PLAIN and len(words) <= 5 and _is_topic_words(words) and (
        colon or t.isupper() or unit.md_heading
    ):
        _set_topic(state, t)
        state.stack.clear()
        return True
    if _GENERIC_COHORT_RE.match(t) and (colon or unit.style == _PLAIN or unit.md_heading):
        # "All participants:", "General criteria": back to no cohort (never a bulleted item)
        state.cohort = None
        state.stack.clear()
        return True
    cohort = _cohort_of(t, colon, unit.style != _PLAIN and not unit.md_heading)
    if cohort is not None and (cohort[1] or state.weak_cohorts >= 2):
        state.cohort = cohort[0]
        state.stack.clear()
        return True
    topic = _topic_of(t, raw, unit)
    if topic is not None:
        _set_topic(state, topic)
        state.stack.clear()
        return True
    return False


def _start_section(state: _State, kind: CriterionKind, cohort: str | None) -> None:
    state.kind = kind
    state.cohort = cohort
    state.heading = None
    state.base_heading = None
    state.items_in_section = 0
    state.stack.clear()
    if kind is _EXC:
        state.exclusion_seen = True


def _lone_colon(state: _State) -> None:
    """A bare ":" line: legacy records lost the "Exclusion Criteria" words before it."""
    if state.kind is _INC and not state.exclusion_seen and state.items_in_section:
        _start_section(state, _EXC, None)


def _set_topic(state: _State, topic: str) -> None:
    state.items_since_heading = 0
    if topic.lower() in _QUALIFIER_HEADINGS and state.base_heading:
        state.heading = f"{state.base_heading}: {topic}"
        return
    state.base_heading = topic
    state.heading = topic


def _inline_section(text: str) -> tuple[str, str] | None:
    """Inline section heading: 'Inclusion Criteria: Age 18-65' -> ('Inclusion Criteria', 'Age 18-65')."""
    head, sep, tail = text[:_MAX_CLASSIFY].partition(":")
    if not sep or not tail.strip() or len(head) > 60:
        return None
    t = _norm_heading(head)
    section = _section_of(t) if t else None
    if section is None or section[0] is None:
        return None
    return t, (tail + text[_MAX_CLASSIFY:]).strip()


def _nci_inline(text: str) -> tuple[str | None, list[str]] | None:
    """Old NCI paragraphs: "PATIENT CHARACTERISTICS: Age: 18+ Hepatic: ..." -> pieces."""
    head: str | None = None
    m = _NCI_MAJOR_RE.match(text[:60])
    body = text
    if m:
        head, body = m.group(1).strip(), text[m.end():].strip()
        if not body:
            return None
    starts = [lm.start() for lm in _NCI_LABEL_RE.finditer(body)]
    if head is None and (len(starts) < 2 or starts[0] != 0):
        return None
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = starts + [len(body)]
    pieces = [body[a:b].strip() for a, b in zip(bounds, bounds[1:])]
    return head, [p for p in pieces if p]


def _inline_cohort(text: str) -> str | None:
    """Item-level cohort: 'For lupus nephritis: Diagnosis of ...' or 'Cohort A: ...'."""
    head, sep, _tail = text[:120].partition(":")
    if not sep or len(head) > 80:
        return None
    t = head.strip()
    m = _FOR_COHORT_RE.match(t)
    if m and len(_words(t)) <= 8:
        name = m.group("c").strip(" ,;:-")
        if name and not any(w in _COHORT_BLOCKERS for w in _words(name)):
            return name
    if _COHORT_ID_RE.match(t) and len(_words(t)) <= 6:
        return t
    if _COHORT_STRONG_SUFFIX_RE.search(t) and 2 <= len(_words(t)) <= 6:
        return t
    return None


def _strip_topic_prefix(text: str) -> str:
    head, sep, tail = text[:_MAX_CLASSIFY].partition(":")
    if sep and _is_topic_words([w for w in _words(head) if w]):
        return tail.strip()
    return text


def _append_conjunction(state: _State, word: str) -> None:
    if state.items:
        last = state.items[-1]
        last.text = f"{last.text} {word.upper()}"


# --------------------------------------------------------------------------- nesting


def _emit(state: _State, unit: _Unit, text: str, item_cohort: str | None) -> None:
    parent_frame, depth = _place(state.stack, unit, text)
    if parent_frame is not None:
        kind = parent_frame.kind
        parent: int | None = parent_frame.pos
    else:
        kind = _EXC if state.kind is _INC and _states_exclusion(text) else state.kind
        parent = None
    pos = state.counters[kind]
    state.counters[kind] = pos + 1
    state.items_in_section += 1
    state.items_since_heading += 1
    state.items.append(
        _Item(kind, pos, text, parent, item_cohort or state.cohort, state.heading, depth, state.block)
    )
    frame = state.stack[-1]
    frame.pos = pos
    frame.kind = kind
    if frame.colon:
        frame.expected = _expected_children(text)
    fp = frame.flat_parent
    if fp is not None:
        fp.n_children += 1
        fp.child_words.add(_first_word(text))


def _first_word(text: str) -> str:
    return text[:40].split(" ", 1)[0].lower().strip("()[],.;:")


def _expected_children(text: str) -> int | None:
    m = _COUNT_RE.search(text[-120:])
    if not m:
        return None
    word = (m.group(1) or m.group(2)).lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS.get(word)


def _states_exclusion(text: str) -> bool:
    """A top-level item whose first sentence says it excludes ("... will be excluded.")."""
    low = text[:_MAX_CLASSIFY].lower()
    if "xclu" not in low and "ligib" not in low:
        return False
    first = _SENTENCE_END_RE.split(text[:_MAX_CLASSIFY], 1)[0]
    return bool(_EXC_STATEMENT_RE.search(first)) and not _NOT_EXCLUDED_RE.search(first)


def _place(stack: list[_Frame], unit: _Unit, text: str) -> tuple[_Frame | None, int]:
    """Find the parent of ``unit`` and push its frame; returns (parent frame, depth).

    The pushed frame's ``pos`` and ``kind`` are filled in by the caller.
    """
    style = unit.style
    ind = 0 if style == _PLAIN else unit.indent
    colon = text.endswith((":", "\uff1a"))
    if style != _PLAIN:
        while stack and stack[-1].indent >= ind + 2 and stack[-1].style != _PLAIN:
            stack.pop()
        top = stack[-1] if stack else None
        if top is not None and ind >= top.indent + 2 and (top.style != _PLAIN or top.colon):
            return _push_child(stack, top, unit, ind, text, colon, flat=False)
    j = _same_level(stack, style, ind)
    if j is not None:
        f = stack[j]
        nested = unit.label is None or _is_first(unit.label)
        if j == len(stack) - 1 and f.colon and nested:
            return _push_child(stack, f, unit, ind, text, colon, flat=True)
        fp = f.flat_parent
        if fp is not None and _flat_block_ended(f, fp, unit, text):
            k = stack.index(fp)
            del stack[k:]
            return _push_sibling(stack, fp, unit, ind, text, colon)
        if fp is not None:
            fp.punct_list = fp.punct_list or _list_punct(f.text)
        del stack[j:]
        return _push_sibling(stack, f, unit, ind, text, colon)
    top = stack[-1] if stack else None
    if top is not None and (top.colon or _subordinate(style, top.style)):
        flat = top.indent >= ind - 1 and not _subordinate(style, top.style)
        return _push_child(stack, top, unit, ind, text, colon, flat=flat)
    while stack and (stack[-1].style == _PLAIN or stack[-1].indent >= ind - 1):
        stack.pop()
    if stack and style != _PLAIN:
        return _push_child(stack, stack[-1], unit, ind, text, colon, flat=False)
    stack.clear()
    stack.append(_Frame(ind, style, unit.label, -1, 0, None, colon, text))
    return None, 0


def _same_level(stack: list[_Frame], style: str, ind: int) -> int | None:
    for j in range(len(stack) - 1, -1, -1):
        f = stack[j]
        if style == _PLAIN:
            if f.style == _PLAIN:
                return j
            continue
        if f.style == _PLAIN or f.indent < ind - 1:
            return None
        if f.style == style and abs(f.indent - ind) <= 1:
            return j
    return None


def _subordinate(style: str, parent_style: str) -> bool:
    """Lettered/roman/decimal items directly under a numbered or bulleted item nest."""
    if style == _PLAIN or parent_style == _PLAIN or style == parent_style:
        return False
    sub = ("alpha", "(alpha", "roman", "(roman", "dec", "(num)", "circ")
    return style.startswith(sub) and not (
        parent_style.startswith(("roman", "(roman")) and style.startswith(("alpha", "(alpha"))
    )


def _flat_block_ended(child: _Frame, parent: _Frame, unit: _Unit, text: str) -> bool:
    """Does ``text`` close the flat (same-indent) list under a "...:" parent?"""
    if text.endswith((":", "\uff1a")):
        return True
    if parent.expected is not None and parent.n_children >= parent.expected:
        return True
    first = _first_word(text)
    if first in parent.sibling_words and first not in parent.child_words:
        return True
    label = unit.label
    if label is not None:
        if child.label is not None and _succ(child.label, child.style) == label:
            return False
        return parent.label is not None and _succ(parent.label, parent.style) == label
    punct = parent.punct_list or _list_punct(child.text)
    return punct and child.text.rstrip().endswith(".") and not _list_punct(child.text)


def _list_punct(text: str) -> bool:
    t = text.rstrip().lower()
    return t.endswith((",", ";", " or", " and", " and/or", "; or", "; and"))


def _push_child(stack: list[_Frame], parent: _Frame, unit: _Unit, ind: int, text: str,
                colon: bool, flat: bool) -> tuple[_Frame | None, int]:
    frame = _Frame(ind, unit.style, unit.label, -1, parent.depth + 1, parent, colon, text,
                   parent if flat else None)
    stack.append(frame)
    return parent, frame.depth


def _push_sibling(stack: list[_Frame], sib: _Frame, unit: _Unit, ind: int, text: str,
                  colon: bool) -> tuple[_Frame | None, int]:
    frame = _Frame(ind, unit.style, unit.label, -1, sib.depth, sib.parent, colon, text,
                   sib.flat_parent)
    words = sib.sibling_words
    frame.sibling_words = words | {_first_word(sib.text)} if len(words) < 24 else words
    stack.append(frame)
    return sib.parent, sib.depth
