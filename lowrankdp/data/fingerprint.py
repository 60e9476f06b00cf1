"""The content fingerprint of a dataset directory: what a run was trained on (core layer)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["data_fingerprint", "DATASET_FILES"]

DATASET_FILES = ("meta.json", "train.jsonl", "valid.jsonl", "test.jsonl")


def data_fingerprint(data_dir: str | os.PathLike) -> str:
    """SHA-256 over the dataset's files (``meta.json`` and the three JSONL splits, those present), in a fixed order
    with each file's name: equal fingerprints mean the same records and metadata."""
    h = hashlib.sha256()
    root = Path(data_dir)
    for name in DATASET_FILES:
        f = root / name
        if f.is_file():
            h.update(name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()
