"""Grounding detector: claim-by-claim support of a RAG response against its retrieved contexts.

Weight-free by default (TF-IDF character n-grams fitted per request, a faiss inner-product
index, lexical checks of numbers, names and content words). Typical use::

    from detectors.grounding import GroundingDetector

    result = GroundingDetector().check(response, contexts, question=question)
    result.risk, result.unsupported_claims, result.feature_dict()
"""

from detectors.grounding.claims import Segment, split_claims
from detectors.grounding.detector import GroundingConfig, GroundingDetector
from detectors.grounding.embedders import (
    CallableEmbedder,
    Embedder,
    LangChainEmbedder,
    RequestFitted,
    TfidfCharEmbedder,
)
from detectors.grounding.features import FEATURE_NAMES, FEATURES_VERSION
from detectors.grounding.numbers import NumberMention, find_numbers
from detectors.grounding.passages import Passage, split_context
from detectors.grounding.result import ClaimResult, GroundingResult, PassageRef, SkippedSegment

__all__ = [
    "FEATURES_VERSION",
    "FEATURE_NAMES",
    "CallableEmbedder",
    "ClaimResult",
    "Embedder",
    "GroundingConfig",
    "GroundingDetector",
    "GroundingResult",
    "LangChainEmbedder",
    "NumberMention",
    "Passage",
    "PassageRef",
    "RequestFitted",
    "Segment",
    "SkippedSegment",
    "TfidfCharEmbedder",
    "find_numbers",
    "split_claims",
    "split_context",
]
