"""``ctm_terminology``: conditions and drugs from the lexicon as ``doc.ents``.

A rule component in the manner of spaCy's ``span_ruler``: surface forms from
:class:`nlp.lexicon.Lexicon` are matched on token sequences, case-insensitively
(the ``LOWER`` attribute) for ordinary terms and case-sensitively (``ORTH``) for
short abbreviations such as "ALL", "MS" or "LN". Matching uses a hash index of
token tuples keyed by the first token, which is what ``PhraseMatcher`` does,
but builds ~75k patterns in a fraction of the time ``PhraseMatcher.add`` needs
(patterns are tokenised with the pipeline's own tokenizer, with a verified fast
path for plain words; the prepared index is kept on the Lexicon object per
tokenizer and in the derived-data cache keyed by a hash of the patterns, see
:mod:`nlp.cache`; the default lexicon's cache file holds its index too).

Matches are made non-overlapping (longest first, then leftmost) and merged
with the entities already on the Doc according to ``ents_policy``:

- ``"longest"`` (default): existing and new spans compete, longest wins, ties
  keep the existing entity; existing entities that overlap nothing are kept;
- ``"overwrite"``: new spans win over overlapping existing entities;
- ``"keep"``: existing entities win.

Labels: CONDITION, CANCER, INFECTION, PROCEDURE, STATE, FINDING, DRUG.
Span extensions (registered when the component is created):

- ``ctm_concept``: preferred concept name / drug generic / drug class name;
- ``ctm_code``: "ICD10CM:M32.14", "MESH:D008181", "DRUGBANK:DB00073" or None;
- ``ctm_classes``: tuple of drug classes (DRUG spans only);
- ``ctm_qualifier``: "class III/IV", "NYHA III", "stage 3b", "HR+/HER2-" ...;
- ``ctm_is_class``: True for a drug-class mention ("immunosuppressants").
"""
# No ``from __future__ import annotations``: spaCy resolves the factory's type hints at runtime.
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from nlp import cache as derived
from nlp.lexicon import DRUG_LABEL, LABELS, Lexicon, TermPattern, default_lexicon, load_lexicon

_CACHE_FORMAT = 3  # bump when the index layout or tokenize_patterns changes
EXTENSIONS = ("ctm_concept", "ctm_code", "ctm_classes", "ctm_qualifier", "ctm_is_class")
ENTS_POLICIES = ("longest", "overwrite", "keep")
__all__ = ["EXTENSIONS", "LABELS", "TerminologyComponent", "make_terminology"]

_NORMALISE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2010": "-", "\u2011": "-",
                            "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-"})
_NEEDS_NORMALISE = re.compile("[\u2019\u2018\u02bc\u2010-\u2014\u2212]")
_PLAIN_WORD = re.compile(r"^(?:[^\W\d_]+|\d+)$")
# Terms the English tokenizer splits predictably: words of letters ("lupus"), digits ("19"),
# letters-hyphen-digits ("covid-19", one token) or a possessive ("crohn's" -> "crohn", "'s"),
# joined by spaces, by a hyphen before a letter ("b-cell" -> "b", "-", "cell") or by a slash
# before a letter ("r/r").
_WORD = r"(?:[^\W\d_]+(?:-\d+|'s(?= |$))?|\d+)"
_SIMPLE_TERM = re.compile(rf"^{_WORD}(?:(?: |[-/](?=[^\W\d_])){_WORD})*$")
_SIMPLE_PIECES = re.compile(r"[^\W\d_]+-\d+|[^\W\d_]+|\d+|'s|[-/]")
_MIXED = re.compile(r"\d[^\W\d_]|[^\W\d_]\d")

# "hepatitis B or C": the second letter names a sibling concept.
COORDINATION: dict[str, dict[str, str]] = {
    "hepatitis b": {"c": "hepatitis c", "d": "viral hepatitis"},
    "hepatitis c": {"b": "hepatitis b"},
}
_COORD_WORDS = frozenset({"or", "and", "/", "&", ",", "and/or"})


@dataclass(frozen=True, slots=True)
class _Target:
    label: str
    concept: str
    code: str | None
    classes: tuple[str, ...] | None
    is_class: bool
    qualifiers: tuple[str, ...]


class TermIndex:
    """Token-tuple index: ``{first token: {rest tuple: target id}}`` plus lengths per first token.

    ``match`` returns, for every start position, the longest pattern there; a
    case-sensitive pattern replaces a case-insensitive one only when longer.
    """

    __slots__ = ("ci", "cs", "ci_len", "cs_len")

    def __init__(self) -> None:
        self.ci: dict[str, dict[tuple[str, ...], int]] = {}
        self.cs: dict[str, dict[tuple[str, ...], int]] = {}
        self.ci_len: dict[str, tuple[int, ...]] = {}
        self.cs_len: dict[str, tuple[int, ...]] = {}

    def add(self, tokens: tuple[str, ...], target: int, case_sensitive: bool) -> bool:
        """Add a pattern; the first target added for a token sequence wins. Returns True if added."""
        if not tokens:
            return False
        table = self.cs if case_sensitive else self.ci
        rest = table.setdefault(tokens[0], {})
        if tokens[1:] in rest:
            return False
        rest[tokens[1:]] = target
        return True

    def freeze(self) -> None:
        for table, lengths in ((self.ci, self.ci_len), (self.cs, self.cs_len)):
            for first, rest in table.items():
                lengths[first] = tuple(sorted({len(r) + 1 for r in rest}, reverse=True))

    def __len__(self) -> int:
        return sum(len(r) for r in self.ci.values()) + sum(len(r) for r in self.cs.values())

    def match(self, lowers: list[str], orths: list[str]) -> list[tuple[int, int, int]]:
        n = len(lowers)
        ci, cs, ci_len, cs_len = self.ci, self.cs, self.ci_len, self.cs_len
        out = []
        for i in range(n):
            best_len, best = 0, -1
            low = lowers[i]
            rest = ci.get(low)
            if rest is not None:
                for length in ci_len[low]:
                    if i + length <= n:
                        target = rest.get(tuple(lowers[i + 1:i + length]))
                        if target is not None:
                            best_len, best = length, target
                            break
            orth = orths[i]
            rest = cs.get(orth)
            if rest is not None:
                for length in cs_len[orth]:
                    if length <= best_len:
                        break
                    if i + length <= n:
                        target = rest.get(tuple(orths[i + 1:i + length]))
                        if target is not None:
                            best_len, best = length, target
                            break
            if best >= 0:
                out.append((i, i + best_len, best))
        return out


def _tokenizer_key(nlp: Language) -> tuple[Any, ...]:
    tok = nlp.tokenizer
    parts: list[Any] = [nlp.lang, type(tok).__name__]
    for attr in ("prefix_search", "suffix_search", "infix_finditer", "token_match", "url_match"):
        fn = getattr(tok, attr, None)
        parts.append(getattr(getattr(fn, "__self__", None), "pattern", None))
    rules = getattr(tok, "rules", None) or {}
    parts.append(len(rules))
    return tuple(parts)


def tokenize_patterns(nlp: Language, terms: list[str]) -> list[tuple[str, ...]]:
    """Token tuples of ``terms`` as the pipeline tokenizer would split them.

    For English, terms made of plain words (letters only or digits only) joined
    by single spaces or by hyphens before a letter are split directly -- the
    tokenizer splits them the same way (checked over the whole lexicon in
    tests/unit/test_terminology.py); everything else goes through ``nlp.make_doc``.
    """
    rules = getattr(nlp.tokenizer, "rules", None) or {}
    special = {k.lower() for k in rules if _PLAIN_WORD.match(k)}
    fast = nlp.lang == "en"
    simple, pieces = _SIMPLE_TERM.match, _SIMPLE_PIECES.findall
    make_doc = nlp.make_doc
    out = []
    for term in terms:
        if fast and simple(term):
            tokens = pieces(term)
            if special.isdisjoint(tokens):
                out.append(tuple(tokens))
                continue
        out.append(tuple(t.text for t in make_doc(term)))
    return out


def _fingerprint(nlp: Language, patterns: tuple[TermPattern, ...]) -> str:
    digest = hashlib.sha256()
    digest.update(repr((_CACHE_FORMAT, spacy.__version__, _tokenizer_key(nlp))).encode())
    text = "\x00".join(f"{p.term}\x01{p.case_sensitive:d}\x01{p.kind}\x01{p.key}" for p in patterns)
    digest.update(text.encode())
    return digest.hexdigest()[:24]


def build_index(nlp: Language, lexicon: Lexicon, use_cache: bool = True) -> tuple[TermIndex, list[_Target]]:
    """The matcher index for ``lexicon`` under ``nlp``'s tokenizer.

    Kept on the Lexicon object per tokenizer (saved with the lexicon when it has a derived-data cache
    file), and (``use_cache``) in the derived-data cache, keyed by a hash of the patterns and the tokenizer
    settings.
    """
    key = ("ctm_terminology", _tokenizer_key(nlp))
    cached = lexicon.matcher_cache.get(key)
    if cached is not None:
        return cached
    # Inverted headings ("lupus erythematosus, systemic") are kept for lookups, not for matching text.
    patterns = tuple(p for p in lexicon.patterns() if ", " not in p.term)
    targets: list[_Target] = []
    target_ids: dict[tuple[str, str], int] = {}
    for p in patterns:
        tkey = (p.kind, p.key)
        if tkey not in target_ids:
            target_ids[tkey] = len(targets)
            targets.append(_make_target(lexicon, p))
    index = TermIndex()
    directory = derived.cache_dir() if use_cache else None
    fingerprint = _fingerprint(nlp, patterns) if directory is not None else ""
    path = directory / f"terminology-{fingerprint}.pickle" if directory is not None else None
    tables = derived.load(path, fingerprint) if path is not None else None
    if isinstance(tables, tuple) and len(tables) == 4 and all(isinstance(t, dict) for t in tables):
        index.ci, index.cs, index.ci_len, index.cs_len = tables
    else:
        terms = [p.term if p.case_sensitive else p.term.lower() for p in patterns]
        token_tuples = tokenize_patterns(nlp, terms)
        # The tokenizer can split a lower-case form differently ("t2dm" -> "t2", "dm" but "T2DM" stays whole):
        # add the upper-case split of mixed letter/digit terms as well.
        mixed = [i for i, p in enumerate(patterns) if not p.case_sensitive and _MIXED.search(p.term)
                 and len(token_tuples[i]) != len(p.term.split())]  # only where a word was split
        upper = tokenize_patterns(nlp, [patterns[i].term.upper() for i in mixed])
        for p, tokens in zip(patterns, token_tuples):
            index.add(tokens, target_ids[(p.kind, p.key)], p.case_sensitive)
        for i, tokens in zip(mixed, upper):
            p = patterns[i]
            index.add(tuple(t.lower() for t in tokens), target_ids[(p.kind, p.key)], False)
        index.freeze()
        if path is not None:
            derived.save(path, fingerprint, (index.ci, index.cs, index.ci_len, index.cs_len))
    result = (index, targets)
    lexicon.matcher_cache[key] = result
    if use_cache:
        lexicon.persist()  # the default lexicon's cache file: the next process loads the index with it
    return result


def _make_target(lexicon: Lexicon, p: TermPattern) -> _Target:
    if p.kind == "condition":
        entry = lexicon.condition(p.key)
        assert entry is not None
        return _Target(entry.label, entry.concept, entry.code, None, False, entry.qualifiers)
    drug = lexicon.class_entry(p.key) if p.kind == "class" else lexicon.drug(p.key)
    assert drug is not None
    return _Target(DRUG_LABEL, drug.generic, drug.code, drug.classes, drug.is_class, ())


# --------------------------------------------------------------------------- qualifiers

_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI"}
_NUM = r"(?:VI|IV|V|III|II|I|[1-6])"
_SEP = r"(?:\s*(?:[,/+&]|-|–|\band/or\b|\band\b|\bor\b|\bwith or without\b|\bwith\b|\bplus\b|\bto\b)\s*)"
_CLASS_LIST = rf"{_NUM}(?:{_SEP}(?:class\s+)?{_NUM})*"
_ISN = r"(?:\(?\s*(?:ISN\s*/\s*RPS|WHO|ISN-RPS)(?:\s*\d{4})?\s*\)?\s*)"
_CLASS_AFTER = re.compile(rf"^[\s,:;(\[-]*{_ISN}?(?:class(?:es)?|cl\.)\s*({_CLASS_LIST})\b", re.IGNORECASE)
_CLASS_BEFORE = re.compile(
    rf"\b(?:class(?:es)?|cl\.)\s*({_CLASS_LIST})\s*{_ISN}?(?:\)\s*)?(?:(?:proliferative|active|membranous|"
    rf"biopsy[- ]proven|biopsy-confirmed|pure)\s+)*$", re.IGNORECASE)
_NYHA_NUM = r"(?:IV|III|II|I|[1-4])"
_NYHA_RANGE = rf"({_NYHA_NUM}(?:\s*(?:-|–|/|to|or)\s*{_NYHA_NUM})?)"
_NYHA_NAME = r"(?:NYHA|New York Heart Association)(?:\s*\(NYHA\))?"
_NYHA_EXPR = re.compile(
    rf"(?:class\s*{_NYHA_RANGE}\s*{_NYHA_NAME}|{_NYHA_NAME}\s*(?:functional\s+)?(?:class(?:ification)?\s*)?"
    rf"(?:of\s+)?{_NYHA_RANGE}\b)", re.IGNORECASE)
_NYHA_SELF_AFTER = re.compile(
    rf"^\s*(?:\(NYHA\)\s*)?(?:functional\s+)?(?:class(?:ification)?\s*)?{_NYHA_RANGE}\b", re.IGNORECASE)
_CLASS_TAIL = re.compile(rf"\bclass\s*{_NYHA_RANGE}\s*$", re.IGNORECASE)
_STAGE_VALUE = r"((?:IV|III|II|I|0|[1-5])(?:[abcABC]\d?)?)"
_STAGE_AFTER = re.compile(rf"^[\s,(\[]*(?:stage|st\.)\s*{_STAGE_VALUE}\b", re.IGNORECASE)
_STAGE_BEFORE = re.compile(rf"\bstage\s*{_STAGE_VALUE}(?:\s*[-/]\s*{_STAGE_VALUE})?\s+(?:[\w-]+\s+){{0,3}}$",
                           re.IGNORECASE)
_CKD_SELF = re.compile(r"\bckd\s*-?\s*([1-5][ab]?)(?:d)?\b", re.IGNORECASE)
_CKD_AFTER = re.compile(
    r"^[\s,(\[]*(?:stage\s*|g)?([1-5][ab]?)\b(?!\s*(?:%|mg|g/|years?|months?|weeks?|days?))", re.IGNORECASE)
_HER2 = re.compile(r"\bHER-?2(?:/neu)?\s*(?:status\s*)?[-:]?\s*(?:(positive|pos\b|\+|\(\+\)|3\+|amplified|"
                   r"overexpress\w*)|(negative|neg\b|-|\(-\)|0\b|non-?amplified)|(low|1\+|2\+|ultra-?low))",
                   re.IGNORECASE)
_HR = re.compile(r"\b(HR|ER|PR|PgR|hormone[- ]receptor|estrogen[- ]receptor|oestrogen[- ]receptor|"
                 r"progesterone[- ]receptor)\s*[-:]?\s*(positive|negative|pos\b|neg\b|\+|-|\(\+\)|\(-\))",
                 re.IGNORECASE)
_RECEPTOR_NAMES = {"HORMONE RECEPTOR": "HR", "ESTROGEN RECEPTOR": "ER", "OESTROGEN RECEPTOR": "ER",
                   "PROGESTERONE RECEPTOR": "PR", "PGR": "PR"}
_SENTENCE_BREAK = re.compile(r"[.;\n](?=\s|$)")


def _window_before(text: str, start: int, size: int) -> str:
    before = text[max(0, start - size):start]
    cut = None
    for m in _SENTENCE_BREAK.finditer(before):
        cut = m.end()
    return before[cut:] if cut is not None else before


def _window_after(text: str, end: int, size: int) -> str:
    after = text[end:end + size]
    m = _SENTENCE_BREAK.search(after)
    return after[:m.start()] if m else after


def _roman(value: str) -> str:
    return _ROMAN.get(value, value.upper())


def _class_qualifier(group: str) -> str:
    nums = list(re.finditer(rf"\b{_NUM}\b", group, re.IGNORECASE))
    out = _roman(nums[0].group(0))
    for prev, cur in zip(nums, nums[1:]):
        sep = group[prev.end():cur.start()].lower()
        joiner = "+" if re.search(r"\+|&|\band\b(?!/)|\bplus\b|\bwith\b(?! or without)", sep) else "/"
        out += joiner + _roman(cur.group(0))
    return "class " + out


def _range(value: str) -> str:
    parts = re.split(r"\s*(-|–|/|to|or)\s*", value)
    nums = [p for p in parts[::2] if p]
    if len(nums) == 1:
        return _roman(nums[0])
    joiner = "-" if parts[1] in ("-", "–", "to") else "/"
    return joiner.join(_roman(n) for n in nums)


def _stage(value: str) -> str:
    m = re.match(r"(IV|III|II|I|0|[1-5])(.*)", value, re.IGNORECASE)
    if not m:
        return value
    head, tail = m.groups()
    return (head.upper() + tail.upper()) if head.isalpha() else (head + tail.lower())


def read_qualifier(kinds: tuple[str, ...], text: str, start: int, end: int) -> str | None:
    """The qualifier for a mention at ``text[start:end]``, read from the mention and a few words around it."""
    span_text = text[start:end]
    for kind in kinds:
        if kind == "class":
            m = _CLASS_AFTER.search(_window_after(text, end, 80))
            if m is None:
                m = _CLASS_BEFORE.search(_window_before(text, start, 60))
            if m:
                return _class_qualifier(m.group(1))
        elif kind == "nyha":
            m = _NYHA_SELF_AFTER.search(_window_after(text, end, 40)) if re.search(
                r"nyha|new york", span_text, re.IGNORECASE) else None
            if m is None and re.search(r"nyha|new york", span_text, re.IGNORECASE):
                m = _CLASS_TAIL.search(_window_before(text, start, 20))
            if m is None:
                m = _NYHA_EXPR.search(_window_before(text, start, 70) + " " + span_text + " " +
                                      _window_after(text, end, 70))
            if m:
                value = next(g for g in m.groups() if g)
                return "NYHA " + _range(value)
        elif kind in ("stage", "ckd_stage"):
            if kind == "ckd_stage":
                m = _CKD_SELF.search(span_text) or _CKD_AFTER.search(_window_after(text, end, 20))
                if m:
                    return "stage " + _stage(m.group(1))
            m = _STAGE_AFTER.search(_window_after(text, end, 30)) or _STAGE_BEFORE.search(
                _window_before(text, start, 50))
            if m:
                return "stage " + _stage(m.group(1))
        elif kind == "receptor":
            around = _window_before(text, start, 50) + " " + span_text + " " + _window_after(text, end, 50)
            parts = []
            for m in _HR.finditer(around):
                name = m.group(1).upper()
                name = _RECEPTOR_NAMES.get(name.replace("-", " "), name)
                sign = "+" if m.group(2).lower() in ("positive", "pos", "+", "(+)") else "-"
                if name + sign not in parts:
                    parts.append(name + sign)
            m = _HER2.search(around)
            if m:
                parts.append("HER2+" if m.group(1) else "HER2-" if m.group(2) else "HER2-low")
            if parts:
                return "/".join(parts)
    return None


# --------------------------------------------------------------------------- the component


class TerminologyComponent:
    """Sets ``doc.ents`` for lexicon conditions and drugs (see the module docstring)."""

    def __init__(self, nlp: Language, name: str = "ctm_terminology", *, lexicon: Lexicon | None = None,
                 ents_policy: str = "longest", qualifiers: bool = True, coordination: bool = True,
                 cache: bool = True) -> None:
        if ents_policy not in ENTS_POLICIES:
            raise ValueError(f"ents_policy must be one of {ENTS_POLICIES}, got {ents_policy!r}")
        for ext in EXTENSIONS:
            Span.set_extension(ext, default=None, force=True)
        self.nlp = nlp
        self.name = name
        self.ents_policy = ents_policy
        self.qualifiers = qualifiers
        self.coordination = coordination
        self.cache = cache
        self.lexicon: Lexicon = lexicon if lexicon is not None else default_lexicon()
        self._index, self._targets = build_index(nlp, self.lexicon, cache)
        self._concept_targets = {(t.label != DRUG_LABEL, t.concept): i for i, t in enumerate(self._targets)}

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def use_lexicon(self, lexicon: Lexicon) -> None:
        """Match against another lexicon (rebuilds the index unless cached on that lexicon)."""
        if lexicon is self.lexicon:
            return
        self.lexicon = lexicon
        self._index, self._targets = build_index(self.nlp, lexicon, self.cache)
        self._concept_targets = {(t.label != DRUG_LABEL, t.concept): i for i, t in enumerate(self._targets)}

    def match(self, doc: Doc) -> list[tuple[int, int, int]]:
        """Non-overlapping (start, end, target) matches, longest first then leftmost."""
        if _NEEDS_NORMALISE.search(doc.text):
            orths = [t.text.translate(_NORMALISE) for t in doc]
            lowers = [t.lower_.translate(_NORMALISE) for t in doc]
        else:
            orths = [t.text for t in doc]
            lowers = [t.lower_ for t in doc]
        found = self._index.match(lowers, orths)
        if len(found) > 1:
            found.sort(key=lambda m: (m[0] - m[1], m[0]))
            taken = bytearray(len(doc))
            chosen = []
            for start, end, target in found:
                if not any(taken[start:end]):
                    taken[start:end] = b"\x01" * (end - start)
                    chosen.append((start, end, target))
            found = sorted(chosen)
        if self.coordination and found:
            found = self._coordinate(doc, lowers, found)
        return found

    def _coordinate(self, doc: Doc, lowers: list[str], found: list[tuple[int, int, int]]
                    ) -> list[tuple[int, int, int]]:
        starts = {m[0] for m in found}
        extra = []
        for _start, end, target in found:
            table = COORDINATION.get(self._targets[target].concept)
            if not table or end + 1 >= len(doc) or lowers[end] not in _COORD_WORDS:
                continue
            sibling = table.get(lowers[end + 1])
            if sibling is None or end + 1 in starts:
                continue
            tid = self._concept_targets.get((True, sibling))
            if tid is not None:
                extra.append((end + 1, end + 2, tid))
        return sorted(found + extra) if extra else found

    def __call__(self, doc: Doc) -> Doc:
        if not len(doc):
            return doc
        found = self.match(doc)
        if not found:
            return doc
        text = doc.text
        new_spans = []
        for start, end, tid in found:
            t = self._targets[tid]
            span = Span(doc, start, end, label=t.label)
            new_spans.append((span, t))
        existing = list(doc.ents)
        selected = self._merge(existing, [s for s, _ in new_spans])
        keep = {(s.start, s.end) for s in selected}
        for span, t in new_spans:
            if (span.start, span.end) not in keep:
                continue
            ext = span._
            ext.ctm_concept = t.concept
            ext.ctm_code = t.code
            ext.ctm_classes = self._nested_classes(span, t.classes) if t.is_class and len(span) > 1 else t.classes
            ext.ctm_is_class = t.is_class
            if self.qualifiers and t.qualifiers:
                ext.ctm_qualifier = read_qualifier(t.qualifiers, text, span.start_char, span.end_char)
        doc.ents = sorted(selected, key=lambda s: s.start)
        return doc

    def _nested_classes(self, span: Span, classes: tuple[str, ...]) -> tuple[str, ...]:
        """A compound class mention carries the classes named inside it ("CD19 CAR-T" -> anti_cd19 + car_t)."""
        out = list(classes)
        words = [tok.text for tok in span]
        for i in range(len(words)):
            for j in range(i + 1, min(len(words), i + 5) + 1):
                if (i, j) == (0, len(words)):
                    continue
                entry = self.lexicon.lookup_drug(span[i:j].text)
                if entry is not None and entry.is_class:
                    out.extend(c for c in entry.classes if c not in out)
        return tuple(out)

    def _merge(self, existing: list[Span], new: list[Span]) -> list[Span]:
        if not existing:
            return new
        if self.ents_policy == "overwrite":
            ordered = new + existing
        elif self.ents_policy == "keep":
            ordered = existing + new
        else:
            ordered = sorted(existing + new, key=lambda s: s.start - s.end)  # stable: existing first on ties
        taken: set[int] = set()
        out = []
        for span in ordered:
            toks = range(span.start, span.end)
            if any(i in taken for i in toks):
                continue
            taken.update(toks)
            out.append(span)
        return out


@Language.factory(
    "ctm_terminology",
    assigns=["doc.ents"],
    default_config={"lexicon_path": None, "ents_policy": "longest", "qualifiers": True, "coordination": True,
                    "cache": True},
)
def make_terminology(nlp: Language, name: str, lexicon_path: str | None, ents_policy: str, qualifiers: bool,
                     coordination: bool, cache: bool) -> TerminologyComponent:
    """Factory: ``lexicon_path`` None uses :func:`nlp.lexicon.default_lexicon` (data/lexicons);
    ``cache`` keeps the prepared matcher index on disk (see :mod:`nlp.cache`)."""
    lexicon = load_lexicon(Path(lexicon_path)) if lexicon_path else default_lexicon()
    return TerminologyComponent(nlp, name, lexicon=lexicon, ents_policy=ents_policy, qualifiers=qualifiers,
                                coordination=coordination, cache=cache)
