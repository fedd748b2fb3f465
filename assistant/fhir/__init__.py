"""FHIR R4 in and out: a patient Bundle -> PatientProfile (:mod:`.inbound`), a MatchResult -> a searchset Bundle
of ResearchStudy (:mod:`.outbound`), the code tables (:mod:`.terms`). docs/fhir.md describes the mapping.

:func:`runtime_readers` is the rim: it hands the mapping the runtime's lexicon and text pipeline.
"""
from __future__ import annotations

from typing import Any

from assistant.fhir.inbound import Readers


def runtime_readers(runtime: Any) -> Readers:
    """The terminology and text readers of the Services (the same lexicon and pipeline the text path uses)."""
    from assistant.fhir.terms import load_terms
    from nlp.components.measurements import load_lab_rules

    lexicon = runtime.lexicon
    extractor = runtime.pipeline.get_pipe("ctm_measurements").extractor
    rules = load_lab_rules()

    def normalize(lab: str, value: float, unit: str | None) -> tuple[float | None, str | None]:
        rule = rules.labs.get(lab)
        if rule is None:
            return None, None
        # the extractor's own conversion to the lab's canonical unit (one implementation of it)
        return extractor._normalize(rule, value, unit)  # noqa: SLF001

    def lab_label(lab: str) -> str:
        rule = rules.labs.get(lab)
        return (rule.synonyms or rule.cs_synonyms or (lab,))[0] if rule is not None else lab

    def lab_names_in(text: str) -> tuple[str, ...]:
        return tuple(name for _, _, names in extractor.mentions(text) for name in names)

    return Readers(lexicon=lexicon, terms=load_terms(lexicon), read_text=runtime.extract, normalize=normalize,
                   lab_label=lab_label, lab_names_in=lab_names_in)
