"""The moderation policy as data: thresholds, entity and object mappings, caps, and a
version that every decision carries, so a decision can be traced to the rules that made it.

The guide hard-coded toxic > 0.7, NSFW > 0.8, sensitive = PER or ID, forbidden = weapon or
drugs. Here those are defaults of a frozen dataclass that checks itself and loads from a
dict (JSON), and the NER model's real entity types (WNUT-style tweets: person, location,
...) and the detector's real classes (circle, square, triangle, cross) are what the maps
name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from workbench.errors import UserError
from workbench.nlp.data import NER_TAGS
from workbench.vision.scenes import CLASSES

ENTITY_TYPES = tuple(sorted({t[2:] for t in NER_TAGS if t != "O"}))


def _probability(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise UserError(f"policy: {name} must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True)
class Policy:
    """Thresholds and mappings one decision is made under (see `decide`)."""

    version: str = "1"
    profanity_threshold: float = 0.7  # the guide's toxic threshold, on P(offensive)
    negative_threshold: float | None = (
        None  # flag P(negative sentiment) above it; None: report only
    )
    nsfw_threshold: float = 0.8  # the guide's, and Yahoo's own "unsafe above 0.8"
    # NER entity type -> what the sensitive-information finding is called
    sensitive_entities: dict[str, str] = field(
        default_factory=lambda: {"person": "person_name", "geo-loc": "location"}
    )
    sensitive_is_violation: bool = False  # the guide reports sensitive info, not unsafe
    redact: bool = False  # return the text with sensitive spans replaced by [TYPE]
    # detector class -> violation name (the detector knows only these four shapes)
    object_violations: dict[str, str] = field(default_factory=lambda: {"cross": "forbidden_symbol"})
    detection_threshold: float = 0.5
    max_text_chars: int = 5000
    min_image_side: int = 16
    max_image_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not self.version:
            raise UserError("policy: version must be a non-empty string")
        for name in ("profanity_threshold", "nsfw_threshold", "detection_threshold"):
            _probability(name, getattr(self, name))
        if self.negative_threshold is not None:
            _probability("negative_threshold", self.negative_threshold)
        unknown = sorted(set(self.sensitive_entities) - set(ENTITY_TYPES))
        if unknown:
            raise UserError(
                f"policy: sensitive_entities names unknown entity types {unknown}: the NER "
                f"model knows {', '.join(ENTITY_TYPES)}"
            )
        unknown = sorted(set(self.object_violations) - set(CLASSES))
        if unknown:
            raise UserError(
                f"policy: object_violations names unknown detector classes {unknown}: the "
                f"detector knows {', '.join(CLASSES)}"
            )
        for name in ("max_text_chars", "min_image_side", "max_image_pixels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"policy: {name} must be a positive integer, got {value!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """A policy from JSON-like data; unknown keys are an error (a typo must not be
        silently ignored in a safety rule)."""
        if not isinstance(data, dict):
            raise UserError(f"policy: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"policy: unknown keys {unknown}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """A short content hash, so two policies with the same version but different
        rules are told apart in results."""
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def summary(self) -> dict[str, Any]:
        """What each decision carries: version, digest and the rules."""
        return {"version": self.version, "digest": self.digest(), **self.to_json()}


DEFAULT_POLICY = Policy()
