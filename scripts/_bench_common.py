"""Shared helpers for the benchmark scripts in this folder (not a test module).

- :func:`synthetic_descriptions`: patient descriptions generated from templates
  with a fixed seed (age, sex, conditions with stages/receptor status, labs,
  drugs with doses and responses, negations, family history, time
  expressions). They are invented here; no benchmark or patient data is read.
- :func:`temp_runtime`: a :class:`assistant.services.Services` on a fresh SQLite
  database in a temporary folder.
- timing/memory helpers and the common ``--json`` output.

The benchmark scripts never print description text: only counts and timings.
"""
from __future__ import annotations

import json
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as `python scripts/bench_x.py` from anywhere
    sys.path.insert(0, str(ROOT))

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


def single_thread_env() -> None:
    """Limit BLAS/OpenMP pools to one thread (call before numpy/scipy are imported)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"


def pin_to_one_core() -> int | None:
    """Pin this process to one CPU; returns the CPU or None where affinity is not supported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


# --------------------------------------------------------------------------- synthetic descriptions

_CONDITIONS: list[tuple[str, list[str]]] = [
    # (phrase, possible qualifiers appended)
    ("breast cancer", ["stage II", "stage III", "stage IV", "HER2-positive", "HER2-negative", "triple negative",
                       "ER+/PR+ HER2-", "metastatic to bone", "metastatic to liver"]),
    ("triple negative breast cancer", ["stage II", "metastatic", "recurrent"]),
    ("non-small cell lung cancer", ["stage IIIB", "stage IV", "EGFR mutated", "ALK positive", "PD-L1 50%"]),
    ("small cell lung cancer", ["extensive stage", "limited stage"]),
    ("colorectal cancer", ["stage III", "metastatic", "KRAS mutant", "MSI-high"]),
    ("prostate cancer", ["castration-resistant", "metastatic", "Gleason 4+3"]),
    ("ovarian cancer", ["platinum-resistant", "stage IIIC", "BRCA1 mutated"]),
    ("pancreatic cancer", ["locally advanced", "metastatic"]),
    ("melanoma", ["stage IV", "BRAF V600E", "unresectable"]),
    ("multiple myeloma", ["relapsed", "refractory"]),
    ("diffuse large B-cell lymphoma", ["relapsed", "refractory"]),
    ("acute myeloid leukemia", ["newly diagnosed", "relapsed"]),
    ("HIV infection", ["on suppressive therapy", "treatment-naive"]),
    ("hepatitis C", ["genotype 1", "with compensated cirrhosis"]),
    ("systemic lupus erythematosus", ["with arthritis and rash", "SLEDAI-2K 10", "refractory"]),
    ("lupus nephritis", ["class IV", "class III", "biopsy-proven"]),
    ("rheumatoid arthritis", ["seropositive", "moderate to severe"]),
    ("type 2 diabetes", ["poorly controlled", "on insulin"]),
    ("type 1 diabetes", []),
    ("hypertension", ["uncontrolled", "well controlled"]),
    ("heart failure", ["NYHA class II", "NYHA class III", "with reduced ejection fraction"]),
    ("coronary artery disease", ["with prior stent"]),
    ("atrial fibrillation", ["paroxysmal", "persistent"]),
    ("asthma", ["moderate persistent", "severe eosinophilic"]),
    ("chronic obstructive pulmonary disease", ["GOLD 3", "with frequent exacerbations"]),
    ("chronic kidney disease", ["stage 3", "stage 4"]),
    ("obesity", ["BMI 36"]),
    ("Alzheimer's disease", ["mild", "early"]),
    ("Parkinson's disease", []),
    ("major depressive disorder", ["treatment-resistant"]),
    ("multiple sclerosis", ["relapsing-remitting"]),
    ("Crohn's disease", ["moderate to severe"]),
    ("ulcerative colitis", ["moderate"]),
    ("psoriasis", ["plaque"]),
    ("osteoporosis", ["postmenopausal"]),
    ("membranous nephropathy", ["primary", "anti-PLA2R positive"]),
    ("myasthenia gravis", ["generalized"]),
    ("head and neck cancer", ["HPV positive", "recurrent"]),
    ("bladder cancer", ["muscle-invasive", "non-muscle invasive"]),
    ("gastric cancer", ["HER2-positive", "advanced"]),
]
_NEGATABLE = ["diabetes", "hepatitis B", "HIV", "tuberculosis", "heart failure", "stroke", "seizures",
              "brain metastases", "interstitial lung disease", "active infection", "prior malignancy",
              "autoimmune disease", "pregnancy", "myocardial infarction", "liver cirrhosis", "kidney disease"]
_FAMILY = ["breast cancer", "colon cancer", "diabetes", "coronary artery disease", "Alzheimer's disease",
           "ovarian cancer", "lupus"]
_LABS: list[tuple[str, Any, str]] = [
    ("eGFR", (20, 110, 0), "mL/min/1.73m2"),
    ("creatinine", (0.6, 3.2, 1), "mg/dL"),
    ("HbA1c", (5.5, 11.5, 1), "%"),
    ("hemoglobin", (7.5, 15.5, 1), "g/dL"),
    ("platelets", (60, 400, 0), "x10^9/L"),
    ("ANC", (0.8, 6.0, 1), "x10^9/L"),
    ("ALT", (12, 180, 0), "U/L"),
    ("AST", (12, 160, 0), "U/L"),
    ("total bilirubin", (0.3, 3.0, 1), "mg/dL"),
    ("LVEF", (25, 65, 0), "%"),
    ("UPCR", (0.2, 6.0, 1), "g/g"),
    ("LDL cholesterol", (70, 220, 0), "mg/dL"),
    ("CD4 count", (150, 900, 0), "cells/uL"),
    ("viral load", (20, 100000, 0), "copies/mL"),
    ("BMI", (18, 44, 1), "kg/m2"),
    ("ECOG", (0, 3, 0), ""),
    ("PSA", (0.5, 80, 1), "ng/mL"),
]
_DRUGS = ["metformin", "insulin glargine", "lisinopril", "amlodipine", "atorvastatin", "trastuzumab", "pertuzumab",
          "tamoxifen", "letrozole", "paclitaxel", "carboplatin", "cisplatin", "pembrolizumab", "nivolumab",
          "osimertinib", "FOLFOX", "bevacizumab", "enzalutamide", "abiraterone", "lenalidomide", "bortezomib",
          "rituximab", "tenofovir", "dolutegravir", "sofosbuvir", "mycophenolate", "azathioprine",
          "hydroxychloroquine", "belimumab", "cyclophosphamide", "tacrolimus", "methotrexate", "adalimumab",
          "infliximab", "ustekinumab", "levodopa", "sertraline", "donepezil", "apixaban", "warfarin",
          "salmeterol", "dupilumab", "semaglutide", "denosumab"]
_STEROIDS = ["prednisone", "methylprednisolone", "prednisolone", "dexamethasone"]
_TIMES = ["2 weeks ago", "3 months ago", "6 months ago", "last year", "in 2019", "8 months ago", "18 months ago"]
_COUNT_WORDS = ["two", "three", "four", "2", "3"]
_CLASSES = ["immunosuppressants", "prior lines of chemotherapy", "biologics", "TNF inhibitors", "DMARDs"]


def _lab_sentence(rng: random.Random) -> str:
    parts = []
    for name, (lo, hi, nd), unit in rng.sample(_LABS, rng.randint(1, 4)):
        value = round(rng.uniform(lo, hi), nd)
        value_text = f"{int(value)}" if nd == 0 else f"{value}"
        if name == "ECOG":
            parts.append(f"ECOG performance status {rng.randint(0, 2)}")
            continue
        sep = rng.choice([" ", " of ", " is ", ": "])
        parts.append(f"{name}{sep}{value_text} {unit}".rstrip())
    lead = rng.choice(["Labs: ", "Recent labs show ", "", "Most recent results: "])
    return lead + ", ".join(parts) + "."


def _drug_sentence(rng: random.Random) -> str:
    kind = rng.randrange(6)
    drugs = rng.sample(_DRUGS, rng.randint(1, 3))
    joined = " and ".join(drugs) if len(drugs) < 3 else f"{drugs[0]}, {drugs[1]} and {drugs[2]}"
    if kind == 0:
        return f"Currently taking {joined}."
    if kind == 1:
        return f"{rng.choice(['Failed', 'Progressed on', 'Did not respond to', 'Intolerant of'])} {joined}."
    if kind == 2:
        return f"Previously treated with {joined} {rng.choice(_TIMES)}."
    if kind == 3:
        steroid = rng.choice(_STEROIDS)
        return f"On {steroid} {rng.choice([5, 7.5, 10, 20, 40])} mg daily and {drugs[0]}."
    if kind == 4:
        return f"Has tried {rng.choice(_COUNT_WORDS)} {rng.choice(_CLASSES)} without response."
    return f"Never received {joined}."


def _demographics(rng: random.Random) -> str:
    age = rng.randint(8, 17) if rng.random() < 0.1 else rng.randint(18, 85)
    sex = rng.choice(["woman", "man", "female", "male", "patient"])
    style = rng.randrange(4)
    if style == 0:
        return f"{age}-year-old {sex}"
    if style == 1:
        return f"{age} yo {sex}"
    if style == 2:
        return f"A {sex} aged {age}"
    return f"{sex.capitalize()}, {age} years old,"


def synthetic_description(rng: random.Random) -> str:
    """One invented patient description (1-7 sentences)."""
    main = rng.sample(_CONDITIONS, rng.randint(1, 3))
    cond_texts = []
    for phrase, qualifiers in main:
        if qualifiers and rng.random() < 0.6:
            qualifier = rng.choice(qualifiers)
            after = qualifier.startswith(("with ", "on ", "metastatic to ")) or rng.random() < 0.5
            cond_texts.append(f"{phrase}, {qualifier}" if after else f"{qualifier} {phrase}")
        else:
            cond_texts.append(phrase)
    history = " and ".join(cond_texts)
    when = f" diagnosed {rng.choice(_TIMES)}" if rng.random() < 0.4 else ""
    sentences = [f"{_demographics(rng)} with {history}{when}."]
    if rng.random() < 0.7:
        sentences.append(_drug_sentence(rng))
    if rng.random() < 0.6:
        sentences.append(_lab_sentence(rng))
    if rng.random() < 0.5:
        neg = rng.sample(_NEGATABLE, rng.randint(1, 3))
        sentences.append(rng.choice(["No history of ", "Denies ", "Negative for ", "No known "]) + " or ".join(neg)
                         + ".")
    if rng.random() < 0.25:
        sentences.append(f"Family history of {rng.choice(_FAMILY)} in {rng.choice(['mother', 'father', 'sister'])}.")
    if rng.random() < 0.3:
        sentences.append(_drug_sentence(rng))
    if rng.random() < 0.15:
        sentences.append("Willing to travel and able to give informed consent.")
    return " ".join(sentences)


def synthetic_descriptions(n: int, seed: int = 20261122) -> list[str]:
    rng = random.Random(seed)
    return [synthetic_description(rng) for _ in range(n)]


# --------------------------------------------------------------------------- runtime on a temp database


def temp_settings(folder: Path, autoload: bool = True, **overrides: Any) -> dict[str, Any]:
    from assistant.settings import load_settings

    return load_settings({"DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
                          "INSTANCE_PATH": str(folder / "instance"), "AUTOLOAD_BUNDLED": autoload, "PRELOAD": False, **overrides},
                         environ={})


# --------------------------------------------------------------------------- measuring


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of ``values``."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan"),
            "max_ms": round(max(ms), 2) if ms else float("nan")}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def code_version() -> dict[str, Any]:
    """The commit measured and how many tracked files differed from it when the run started."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=str(ROOT), capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "modified_files": len(status.splitlines()) if status else 0}


def machine_info() -> dict[str, Any]:
    import platform

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(terse=True),
            **code_version()}


def loadavg() -> list[float] | None:
    """System load average (other processes on the machine distort timings; it is reported)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def emit(result: dict[str, Any], as_json: bool, human: Iterator[str] | list[str]) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True, default=str))
    else:
        for line in human:
            print(line)


def goal(ok: bool) -> str:
    return "MEETS goal" if ok else "MISSES goal"
