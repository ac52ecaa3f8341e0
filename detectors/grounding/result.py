"""Typed results of the grounding detector (pydantic models: they cross the API boundary)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from detectors.grounding.features import FEATURE_NAMES, FEATURES_VERSION

__all__ = ["ClaimResult", "GroundingResult", "PassageRef", "SkippedSegment"]


class PassageRef(BaseModel):
    """A passage that a claim was matched to."""

    model_config = ConfigDict(frozen=True)

    passage_id: int = Field(description="Index of the passage in the request's passage list.")
    context_index: int = Field(description="Which context the passage comes from.")
    start: int = Field(
        description="Start offset in that context (best effort for structured fields)."
    )
    end: int = Field(description="End offset (exclusive).")
    field: str | None = Field(description="Dotted field path for structured data, else None.")
    score: float = Field(description="Cosine similarity to the claim, in [-1, 1].")
    text: str = Field(description="The passage text used for matching.")


class ClaimResult(BaseModel):
    """One claim of the response and how well the contexts support it."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="``response[start:end]``.")
    start: int = Field(description="Start offset in the response, in code points.")
    end: int = Field(description="End offset (exclusive).")
    support: float = Field(ge=0.0, le=1.0, description="Support score (1 = fully supported).")
    supported: bool = Field(description="Whether support reaches the detector's threshold.")
    similarity: float = Field(description="Cosine similarity to the best passage, in [0, 1].")
    coverage: float = Field(description="Share of content words in the best two passages.")
    novel_rate: float = Field(description="Share of content words found in no passage.")
    best_passages: list[PassageRef] = Field(description="Best passages, best first.")
    unsupported_numbers: list[str] = Field(description="Numbers whose value no passage holds.")
    unsupported_entities: list[str] = Field(description="Names with a word no passage holds.")
    novel_words: list[str] = Field(description="Content words no passage holds.")
    negation_unsupported: bool = Field(description="The claim negates where its passages do not.")
    field_conflicts: list[str] = Field(description="Yes/no fields stated with the wrong polarity.")
    contradictions: list[str] = Field(
        default_factory=list,
        description='What the best passages contradict: "polarity: open", "moved: 12".',
    )
    unsupported_spans: list[tuple[int, int]] = Field(
        description="Response offsets of the claim's phrases that hold its unsupported items."
    )


class SkippedSegment(BaseModel):
    """A piece of the response that is not a claim."""

    model_config = ConfigDict(frozen=True)

    text: str
    start: int
    end: int
    kind: Literal["preamble", "refusal", "question", "heading"]


class GroundingResult(BaseModel):
    """Response-level grounding result.

    ``features`` follows ``feature_names`` (= :data:`detectors.grounding.FEATURE_NAMES`), the
    input of the calibrated probe; ``risk`` is an uncalibrated heuristic in [0, 1].
    """

    model_config = ConfigDict(frozen=True)

    claims: list[ClaimResult] = Field(description="Claims in response order.")
    skipped: list[SkippedSegment] = Field(description="Preambles, refusals, questions, headings.")
    risk: float = Field(
        ge=0.0, le=1.0, description="Uncalibrated risk that a claim is unsupported."
    )
    features: list[float] = Field(description="Grounding features, in the order of feature_names.")
    feature_names: tuple[str, ...] = Field(
        default=FEATURE_NAMES, description="Names of the features."
    )
    features_version: int = Field(
        default=FEATURES_VERSION, description="Version of the feature set."
    )
    n_passages: int = Field(description="Passages the contexts were split into.")

    @property
    def unsupported_claims(self) -> list[ClaimResult]:
        """Claims below the support threshold."""
        return [c for c in self.claims if not c.supported]

    @property
    def support(self) -> float:
        """Response-level support: the weakest claim's support (1.0 without claims)."""
        return min((c.support for c in self.claims), default=1.0)

    def feature_dict(self) -> dict[str, float]:
        """Features keyed by name."""
        return dict(zip(self.feature_names, self.features, strict=True))

    def feature_array(self) -> NDArray[np.float64]:
        """Features as a ``(n_features,)`` float64 array."""
        return np.asarray(self.features, dtype=np.float64)
