"""Sensitive-data corpora with gold spans, the dataset schema, a regex PII detector and token masks.

Core layer: imports without torch/transformers; Faker is imported only when generating.

    from lowrankdp.data import generate, load_dataset
    path = generate("customersim", out_dir="data/cs", seed=0)
    ds = load_dataset(path)          # ds.splits["train"][0].spans, ds.canary.secret, ...

Submodules: :mod:`.records` (``Span``, ``Record``), :mod:`.schema` (canary metadata, loader, atomic
writer), :mod:`.generators`, :mod:`.detect` (regex recognisers, optional Presidio, detector scoring),
:mod:`.masks` (character spans → token masks).
See ``docs/data.md``.
"""

from __future__ import annotations

from . import detect, masks
from .generators import CANARY_TEMPLATE, DEFAULT_SIZES, GENERATORS, generate, generate_dataset
from .schema import (
    SCHEMA_VERSION, SPAN_TYPES, SPLITS, Canary, Dataset, Record, Span, load_dataset, load_jsonl,
    write_dataset,
)
from .detect import detect_spans, score_detector
from .masks import encode_with_mask, token_sensitivity_mask

__all__ = [
    "generate", "generate_dataset", "load_dataset", "load_jsonl", "write_dataset",
    "Record", "Span", "Dataset", "Canary", "SPLITS", "SPAN_TYPES", "SCHEMA_VERSION",
    "DEFAULT_SIZES", "GENERATORS", "CANARY_TEMPLATE",
    "detect", "masks", "detect_spans", "score_detector", "token_sensitivity_mask", "encode_with_mask",
]
