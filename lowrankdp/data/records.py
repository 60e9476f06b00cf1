"""The two value types every part of :mod:`lowrankdp.data` shares: a gold span and a record.

Kept apart from :mod:`.schema` (loader, writer, canary metadata) so that :mod:`.detect` and :mod:`.masks`
can use them without importing the loader, and the loader can use the detector: the import graph is
``schema → detect → records`` and ``schema → records``, with no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Span", "Record"]


@dataclass(frozen=True, order=True)
class Span:
    """Half-open character range ``[start, end)`` of one personal value, with its type."""

    start: int
    end: int
    type: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "type": self.type}


@dataclass(frozen=True)
class Record:
    """One training/evaluation text. ``spans is None`` means "not annotated"."""

    id: str
    text: str
    split: str
    spans: tuple[Span, ...] | None
    canary: bool = False

    def values(self) -> list[tuple[str, str]]:
        """``(type, text[start:end])`` for every span (empty if not annotated)."""
        return [(s.type, self.text[s.start:s.end]) for s in (self.spans or ())]
