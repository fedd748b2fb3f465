"""build_pipeline: the one place that creates the spaCy pipeline (``spacy.blank("en")`` + rule components).

Order: sentences -> terminology (conditions, drugs; doc.ents) -> measurements
-> demographics -> timing -> medspaCy ConText (negation, history, family,
hypothetical, uncertainty over doc.ents, with its bundled rules extended by
``data/rules/context.json``).
"""
from __future__ import annotations

import importlib
import logging
import re
import sys
import types
from pathlib import Path
from typing import Any

import numpy
import spacy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc

logger = logging.getLogger(__name__)

RULES_DIR = Path(__file__).resolve().parents[1] / "data" / "rules"
SENTENCE_END = frozenset({".", "!", "?", ";"})
_CONTEXT_KEYS = frozenset({"literal", "category", "direction", "pattern", "max_scope", "allowed_types",
                           "excluded_types", "terminated_by", "max_targets", "on_match", "metadata"})


_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_PUNCT_RUN_RE = re.compile(r"([^\w\s])\1{7,}")
_LONG_TOKEN_RE = re.compile(r"\S{80,}")


def safe_text(text: str) -> str:
    """Defuse inputs that make the tokenizer slow, keeping every character offset.

    Runs of one punctuation character ("((((((") keep their first three
    characters and become spaces after that; whitespace-free runs longer than 80
    characters get a space every 40 characters. Offsets into the original text
    stay valid, so evidence spans quote the user's own text.
    """
    text = _SURROGATE_RE.sub("\ufffd", text)  # lone surrogates cannot be encoded; same length
    text = _PUNCT_RUN_RE.sub(lambda m: m.group(0)[:3] + " " * (len(m.group(0)) - 3), text)
    return _LONG_TOKEN_RE.sub(lambda m: "".join(c if (i + 1) % 40 else " " for i, c in enumerate(m.group(0))),
                              text)


@Language.component("ctm_sentences")
def ctm_sentences(doc: Doc) -> Doc:
    """Sentence starts after . ! ? ; and at line breaks (notes, lists, lab tables).

    Set in one array write: assigning ``token.is_sent_start`` token by token is quadratic.
    """
    if not len(doc):
        return doc
    starts = numpy.full((len(doc), 1), -1, dtype="int32").astype("uint64")
    starts[0, 0] = 1
    for i in range(1, len(doc)):
        prev = doc[i - 1]
        if prev.text in SENTENCE_END or (prev.is_space and "\n" in prev.text):
            starts[i, 0] = 1
    doc.from_array([SENT_START], starts)
    return doc


def pipeline_fingerprint() -> str:
    """A hash of everything that shapes extraction (code, rules, lexicons).

    Stored next to parsed criteria so a database parsed by an older version is re-parsed; also the key of
    the derived-data cache (:mod:`nlp.cache`).
    """
    from nlp.cache import source_fingerprint

    return source_fingerprint()


def load_context_rules(path: Path) -> list[Any]:
    """Project ConText rules from JSON, validated like medspaCy's ConTextRule.from_dict."""
    from medspacy.context import ConTextRule

    from nlp.rulefiles import read_json

    data = read_json(path, ValueError, "context rules")
    rules = []
    for i, item in enumerate(data.get("context_rules", [])):
        unknown = set(item) - _CONTEXT_KEYS
        if unknown or "literal" not in item or "category" not in item:
            raise ValueError(f"{path.name}: rule {i}: unknown keys {sorted(unknown)} or missing literal/category")
        rules.append(ConTextRule.from_dict(item))
    return rules


class _DeferredModule(types.ModuleType):
    """Stands in ``sys.modules`` for a module that is imported but not used: the real module is imported
    the first time an attribute is read from it (``__getattr__`` runs only for missing attributes)."""

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def _import_medspacy() -> None:
    """Import medspaCy (registers ``medspacy_context``) without paying for what we do not use.

    medspaCy's package imports QuickUMLS, whose module runs ``import nltk`` at import time (about 1.2 s with
    the SciPy modules NLTK pulls in) although trialmatch uses only ConText and QuickUMLS reads NLTK only
    inside its matcher. Until something reads an attribute of it, ``nltk`` is a deferred stand-in.
    """
    if "nltk" not in sys.modules and "medspacy" not in sys.modules:
        sys.modules["nltk"] = _DeferredModule("nltk")
    import medspacy  # noqa: F401


def build_pipeline(lexicon: Any = None, rules_dir: Path = RULES_DIR) -> Language:
    """A ready pipeline for patient descriptions and criterion text alike."""
    # Importing the component modules registers their factories.
    _import_medspacy()

    from nlp.components import demographics, measurements, terminology, timing  # noqa: F401

    nlp = spacy.blank("en")
    nlp.add_pipe("ctm_sentences")
    term = nlp.add_pipe("ctm_terminology")
    if lexicon is not None and hasattr(term, "use_lexicon"):
        term.use_lexicon(lexicon)
    nlp.add_pipe("ctm_measurements")
    nlp.add_pipe("ctm_demographics")
    nlp.add_pipe("ctm_timing")
    context = nlp.add_pipe("medspacy_context", config={"rules": "default"})
    extra = rules_dir / "context.json"
    if extra.exists():
        context.add(load_context_rules(extra))
    return nlp
