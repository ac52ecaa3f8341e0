"""What goes wrong in labeled data: one :class:`DataProblem` per bad record, all in one error.

The one home of these names, below both :mod:`calibration.adapters` (which raise them) and
:mod:`calibration.data` (which re-exports them), so neither imports the other to get them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from scope_guard.errors import InputError

__all__ = ["DataError", "DataProblem"]

MAX_LISTED = 20
"""How many problems a :class:`DataError` message lists before summarizing the rest."""


class DataProblem(NamedTuple):
    """One bad record: the file, the 1-based line (``None`` when not line-based), what is wrong."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


class DataError(InputError):
    """Labeled data could not be read; ``problems`` lists every bad record found.

    The message lists the first :data:`MAX_LISTED` problems as ``path:line: message`` and says
    how many there are in all.

    Args:
        problems: The problems, in file order.
    """

    def __init__(self, problems: Sequence[DataProblem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} in labeled data:"]
        lines += [f"  {p}" for p in self.problems[:MAX_LISTED]]
        if n > MAX_LISTED:
            lines.append(f"  ... and {n - MAX_LISTED} more")
        super().__init__("\n".join(lines))
