"""The risks scope-guard scores. Plain Python: the policy and result types import this."""

from __future__ import annotations

from enum import StrEnum

from scope_guard.errors import ConfigError

__all__ = ["Risk"]


class Risk(StrEnum):
    """What a detector estimates the probability of.

    - ``fabrication``: the response states what the retrieved context does not support.
    - ``sycophancy``: the response bends to the user's stated view rather than the evidence.
    - ``deception``: the response says what the model has reason to believe is false.
    """

    FABRICATION = "fabrication"
    SYCOPHANCY = "sycophancy"
    DECEPTION = "deception"

    @classmethod
    def parse(cls, value: str | Risk) -> Risk:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(r.value for r in cls)
            msg = f"unknown risk {value!r}; valid: {valid}"
            raise ConfigError(msg) from None
