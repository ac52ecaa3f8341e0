"""A few scored rows with their per-token risk over the response, for the report to highlight.

The report is built from the user's own labeled data, so it may show a few of their responses:
per detector that reads the reader, the highest-scoring risky row, the highest-scoring safe
row (a false alarm when above the threshold) and the lowest-scoring risky row (a miss when
below), each read again and scored token by token by a detector that never saw it (the held-out
detector, or under cross-validation the fold's). Bounded: at most :data:`MAX_EXAMPLES` rows per
detector, each response cut to :data:`MAX_RESPONSE_CHARS` characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from calibration.data import LabeledDataset, prompt_of
from calibration.report_model import TokenExample
from scope_guard.errors import ConfigError

if TYPE_CHECKING:
    from detectors.grounding import GroundingDetector, GroundingResult
    from detectors.probe import ProbeDetector
    from scope_guard.reader import Reader, Reading

__all__ = ["MAX_EXAMPLES", "MAX_RESPONSE_CHARS", "ExampleScorer", "check_examples", "pick_rows"]

MAX_EXAMPLES = 10
"""Most example rows per detector (a report, not a dump of the data)."""
MAX_RESPONSE_CHARS = 1500
"""Characters of one example's response shown; its spans past the cut are left out."""


def check_examples(n: int) -> int:
    """``n`` if it is a valid number of examples per detector.

    Raises:
        ConfigError: not an integer in ``0 .. MAX_EXAMPLES``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_EXAMPLES:
        msg = f"examples per detector must be an integer in 0..{MAX_EXAMPLES}, got {n!r}"
        raise ConfigError(msg)
    return n


def pick_rows(y: np.ndarray, probs: np.ndarray, n: int) -> list[tuple[int, str]]:
    """Up to ``n`` positions into ``y``/``probs``, each with why it was picked.

    First the highest-scoring risky row, the highest-scoring safe row and the lowest-scoring
    risky row; then the next highest-scoring rows. Deterministic (ties by position).
    """
    y, probs = np.asarray(y), np.asarray(probs, dtype=np.float64)
    by_score = list(np.argsort(-probs, kind="stable"))
    positive = [int(i) for i in by_score if y[i] == 1]
    negative = [int(i) for i in by_score if y[i] == 0]
    candidates = [
        (positive[:1], "the highest-scoring risky row"),
        (negative[:1], "the highest-scoring safe row"),
        (positive[-1:], "the lowest-scoring risky row"),
    ]
    out: list[tuple[int, str]] = []
    for rows, why in candidates:
        if rows and rows[0] not in {i for i, _ in out}:
            out.append((rows[0], why))
    for i in by_score:
        if int(i) not in {j for j, _ in out}:
            out.append((int(i), "a high-scoring row"))
    return out[:n]


class ExampleScorer:
    """Reads and grounds example rows once, however many detectors score them.

    Args:
        data: The labeled rows (positions below index it).
        reader: The reader the detectors read with.
        grounding: The grounding detector, for detectors with a grounding block.
    """

    def __init__(
        self, data: LabeledDataset, reader: Reader, grounding: GroundingDetector | None = None
    ) -> None:
        self.data = data
        self.reader = reader
        self.grounding = grounding
        self._readings: dict[int, Reading] = {}
        self._groundings: dict[int, GroundingResult] = {}

    def _inputs(self, row: int, detector: ProbeDetector) -> tuple[Reading, GroundingResult | None]:
        example = self.data[row]
        if row not in self._readings:
            self._readings[row] = self.reader.read(prompt_of(example), example.response)
        found = None
        if detector.needs_grounding and self.grounding is not None:
            if row not in self._groundings:
                self._groundings[row] = self.grounding.check(
                    example.response, example.contexts, question=example.question or None
                )
            found = self._groundings[row]
        return self._readings[row], found

    def examples(
        self,
        detectors: Sequence[ProbeDetector],
        rows: Sequence[int] | np.ndarray,
        y: np.ndarray,
        probs: np.ndarray,
        n: int,
    ) -> list[TokenExample]:
        """Up to ``n`` examples among scored ``rows`` (positions into the data).

        Args:
            detectors: Per scored row, the detector that scored it without having seen it.
            rows: The scored rows.
            y: Their labels.
            probs: Their held-out probabilities.
            n: How many (see :func:`check_examples`).
        """
        out = []
        for position, why in pick_rows(y, probs, check_examples(n)):
            row, detector = int(rows[position]), detectors[position]
            if not detector.needs_reader:  # no per-token risk to show
                continue
            reading, grounding = self._inputs(row, detector)
            score = detector.score(reading, grounding, top_k=0, per_token=True)
            if score.token_spans is None or score.span_threshold is None:
                continue
            response = reading.response[:MAX_RESPONSE_CHARS]
            shown = len(response)
            out.append(
                TokenExample(
                    label=int(y[position]),
                    probability=float(probs[position]),
                    why=why,
                    response=response,
                    cut=len(reading.response) > shown or reading.response_truncated,
                    spans=[(a, b, r) for a, b, r in score.token_spans if b <= shown],
                    risky=[(a, min(b, shown), r) for a, b, r in score.risky_spans if a < shown],
                    span_threshold=score.span_threshold,
                    source=score.token_risk_source or "detector",
                )
            )
        return out
