"""Shaping the guarded runnable's outputs: the report in dict outputs, fallbacks shaped like the
chain's output, feedback for a regeneration, and merging streamed chunks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables.utils import AddableDict

from scope_guard.integrations.langchain._text import ANSWER_KEYS
from scope_guard.types import RiskReport

__all__ = ["add_chunks", "attach_report", "fallback_output", "feedback_text", "report_data"]


def report_data(report: RiskReport) -> dict[str, Any]:
    """The report as JSON-ready data (what dict outputs and custom events carry)."""
    return report.model_dump(mode="json")


def attach_report(output: Any, report: RiskReport | None, key: str) -> Any:
    """``output`` with the report under ``key`` when it is a dict; other outputs unchanged."""
    if report is None or not isinstance(output, Mapping):
        return output
    return AddableDict({**output, key: report_data(report)})


def fallback_output(like: Any, text: str) -> Any:
    """The canned answer ``text`` in the shape of the chain's output ``like``.

    A string gives ``text``; a message gives an ``AIMessage``; a dict keeps its other keys (the
    retrieved documents stay visible) and gets ``text`` under its answer key (the first of
    :data:`~scope_guard.integrations.langchain._text.ANSWER_KEYS` it has, else ``"answer"``).
    """
    if isinstance(like, BaseMessage):
        return AIMessage(content=text)
    if isinstance(like, Mapping):
        key = next((k for k in ANSWER_KEYS if k in like), "answer")
        return AddableDict({**like, key: text})
    return text


def feedback_text(report: RiskReport) -> str:
    """What a regeneration is told about the previous answer: its flagged claims (with the
    unsupported numbers and names), else the policy's reasons."""
    lines = ["Your previous answer was not supported by the retrieved documents."]
    claims = report.flagged_claims
    if claims:
        lines.append("These claims were not found in the documents:")
        for claim in claims:
            missing = f" (not in the documents: {', '.join(claim.unsupported)})"
            lines.append(f'- "{claim.text.strip()}"' + (missing if claim.unsupported else ""))
    elif report.decision.reasons:
        lines.append("Reason: " + "; ".join(report.decision.reasons) + ".")
    lines.append(
        "Answer again using only facts stated in the documents, and say so when they do not "
        "contain the answer."
    )
    return "\n".join(lines)


def add_chunks(total: Any, chunk: Any) -> Any:
    """Merge streamed chunks the way LangChain does (``+``), dicts key by key."""
    if total is None:
        return chunk
    if isinstance(total, Mapping) and isinstance(chunk, Mapping):
        return AddableDict(total) + AddableDict(chunk)
    try:
        return total + chunk
    except TypeError:
        return chunk
