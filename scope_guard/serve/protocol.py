"""What the guard service and its clients exchange: request bodies, the outcome table, errors.

A request carries what :meth:`ScopeGuard.assess` takes: the exchange (the same fields as
:class:`~scope_guard.types.Exchange`) and, instead of the caller's outcome rule (a function,
which cannot travel), its **outcome table**: the outcome the caller will serve for each action
the policy may recommend. The server stamps the table's outcome on the report before the risk
record is written, so the record says what was served, as it does for a local guard. The rules
of the LangChain integration depend only on the action and the attempt, which the table
captures; a client re-applies its rule to the returned report and warns when they disagree.

Replies: ``/assess`` returns a :class:`~scope_guard.types.RiskReport` as JSON
(``model_dump(mode="json")``), ``/assess_batch`` ``{"reports": [...]}`` in request order, and
every refusal ``{"error": <kind>, "detail": <message>}`` with a 4xx status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scope_guard.errors import InputError
from scope_guard.guard_parts import to_exchange
from scope_guard.types import Action, Decision, Exchange, Outcome, RiskReport

__all__ = [
    "AssessBatchRequest",
    "AssessRequest",
    "BatchReply",
    "ErrorReply",
    "OutcomeTable",
    "check_batch",
    "outcome_table",
    "parse_exchange",
    "refuse",
    "rule_from_table",
    "validation_message",
]

OutcomeTable = dict[Action, Outcome]
"""Action -> what the caller serves when the policy recommends it."""


class AssessRequest(BaseModel):
    """The body of ``POST /assess``.

    Attributes:
        exchange: The exchange's fields (``response`` required; see :class:`Exchange`).
        outcomes: The caller's outcome table; without it the report's ``outcome`` is ``None``.
    """

    model_config = ConfigDict(extra="forbid")
    exchange: dict[str, Any]
    outcomes: OutcomeTable | None = None


class AssessBatchRequest(BaseModel):
    """The body of ``POST /assess_batch``.

    Attributes:
        exchanges: The exchanges, assessed in one batched reader pass, reported in order.
        outcomes: One outcome table per exchange (same length), or none.
    """

    model_config = ConfigDict(extra="forbid")
    exchanges: list[dict[str, Any]] = Field(min_length=1)
    outcomes: list[OutcomeTable] | None = None


class BatchReply(BaseModel):
    """The reply of ``POST /assess_batch``: one report per exchange, in request order."""

    reports: list[RiskReport]


class ErrorReply(BaseModel):
    """The body of every refusal: a machine-readable kind and a message for people."""

    error: str
    detail: str


def validation_message(exc: ValidationError) -> str:
    """The fields and problems of ``exc``, without the offending values (they may be text)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())


def parse_exchange(data: Mapping[str, Any]) -> Exchange:
    """The exchange of a request body.

    Raises:
        InputError: missing fields or wrong types (named, their values not quoted).
    """
    return to_exchange(data)


def outcome_table(rule: Callable[[RiskReport], Outcome], exchange: Exchange) -> OutcomeTable:
    """The outcome ``rule`` gives each action for ``exchange`` (its attempt and ids).

    Raises:
        InputError: the rule returns something that is not an :class:`Outcome`.
    """
    table: OutcomeTable = {}
    for action in Action:
        probe = RiskReport(
            request_id=exchange.request_id,
            root_run_id=exchange.root_run_id,
            attempt=exchange.attempt,
            created="",
            decision=Decision(action=action),
        )
        try:
            table[action] = Outcome(rule(probe))
        except ValueError as exc:
            msg = f"the outcome rule gave {action.value!r} an unknown outcome: {exc}"
            raise InputError(msg) from exc
    return table


def rule_from_table(table: Mapping[Action, Outcome]) -> Callable[[RiskReport], Outcome]:
    """The outcome rule a table stands for (an action missing from it: the answer is served)."""

    def rule(report: RiskReport) -> Outcome:
        return table.get(report.decision.action, Outcome.ANSWER)

    return rule


def check_batch(request: AssessBatchRequest) -> None:
    """Raises InputError when the outcome tables do not pair with the exchanges."""
    if request.outcomes is not None and len(request.outcomes) != len(request.exchanges):
        msg = (
            f"outcomes has {len(request.outcomes)} tables for {len(request.exchanges)} "
            "exchanges: give one per exchange, or none"
        )
        raise InputError(msg)


def refuse(kind: str, error: BaseException | str) -> dict[str, Any]:
    """An :class:`ErrorReply` as JSON data."""
    detail = validation_message(error) if isinstance(error, ValidationError) else str(error)
    return ErrorReply(error=kind, detail=detail).model_dump()
