"""Shaping the guarded runnable's outputs: the report in dict outputs, fallbacks shaped like the
chain's output, feedback for a regeneration, and merging streamed chunks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables.utils import AddableDict

from scope_guard.errors import ConfigError
from scope_guard.integrations.langchain._text import ANSWER_KEYS, content_text
from scope_guard.types import RiskReport

__all__ = [
    "add_chunks",
    "attach_report",
    "check_answer_place",
    "fallback_output",
    "feedback_text",
    "report_data",
]


def report_data(report: RiskReport) -> dict[str, Any]:
    """The report as JSON-ready data (what dict outputs and custom events carry)."""
    return report.model_dump(mode="json")


def attach_report(output: Any, report: RiskReport | None, key: str) -> Any:
    """``output`` with the report under ``key`` when it is a dict; other outputs unchanged."""
    if report is None or not isinstance(output, Mapping):
        return output
    return AddableDict({**output, key: report_data(report)})


def _holds(text: str, answer: str) -> bool:
    return bool(answer) and answer in text


def _replace(value: Any, answer: str, text: str) -> tuple[Any, int]:
    """``value`` with every string or message holding ``answer`` replaced by ``text`` (through
    dicts, lists and tuples), and how many were."""
    if isinstance(value, str):
        return (text, 1) if _holds(value, answer) else (value, 0)
    if isinstance(value, BaseMessage):
        if not _holds(content_text(value.content), answer):
            return value, 0
        if isinstance(value, AIMessage):  # a chunk too: what is served is a whole message
            return AIMessage(content=text, id=value.id), 1
        return value.model_copy(update={"content": text}), 1
    if isinstance(value, Document):  # retrieved context, not generated text
        return value, 0
    if isinstance(value, Mapping):
        pairs = {k: _replace(v, answer, text) for k, v in value.items()}
        n = sum(c for _, c in pairs.values())
        if not n:
            return value, 0
        return AddableDict({k: v for k, (v, _) in pairs.items()}), n
    if isinstance(value, list | tuple):
        items = [_replace(v, answer, text) for v in value]
        n = sum(c for _, c in items)
        if not n:
            return value, 0
        return type(value)(v for v, _ in items), n
    return value, 0


def _keyed(output: Any, output_key: str | None) -> str | None:
    """The key of a dict output named to hold the answer: ``output_key``, else the first
    :data:`~scope_guard.integrations.langchain._text.ANSWER_KEYS` key it has."""
    if not isinstance(output, Mapping):
        return None
    if output_key is not None:
        return output_key
    return next((k for k in ANSWER_KEYS if k in output), None)


def check_answer_place(output: Any, answer: str, output_key: str | None) -> None:
    """Refuse a dict or list output in which the fallback would have no place to go.

    The place is every value holding the assessed ``answer`` verbatim, ``output_key``, or an
    answer key. An output with none (the answer was parsed or transformed) cannot be
    answered with a fallback without serving the rejected content, so it is refused up front,
    on every call, whatever the decision.

    Raises:
        ConfigError: no place for the fallback; the message asks for ``output_key=``.
    """
    if not isinstance(output, Mapping | list | tuple):
        return
    if _keyed(output, output_key) is not None or _replace(output, answer.strip(), "")[1]:
        return
    keys = sorted(map(str, output)) if isinstance(output, Mapping) else None
    shape = f"dict output (keys {keys})" if keys is not None else f"{type(output).__name__} output"
    msg = (
        f"the guarded chain's {shape} holds no verbatim copy of the assessed answer, so a "
        "fallback could not replace it: pass output_key= (the key whose value is the answer) to "
        "guard_runnable()/wrap()"
    )
    raise ConfigError(msg)


def fallback_output(like: Any, text: str, answer: str = "", output_key: str | None = None) -> Any:
    """The canned answer ``text`` in the shape of the chain's output ``like``, with no trace of
    the rejected ``answer``.

    A string gives ``text``; a message gives an ``AIMessage``. In a dict or list (nested ones
    too) every string or message holding ``answer`` is replaced by ``text``, the other values
    (the question, the retrieved documents) stay; so does ``output_key``'s value, or the first
    :data:`~scope_guard.integrations.langchain._text.ANSWER_KEYS` key's when nothing else held
    the answer (see :func:`check_answer_place`).
    """
    if isinstance(like, BaseMessage):
        return AIMessage(content=text)
    if not isinstance(like, Mapping | list | tuple):
        return text
    replaced, n = _replace(like, answer.strip(), text)
    key = _keyed(like, output_key)
    if key is not None and (output_key is not None or not n):
        old = like.get(key) if isinstance(like, Mapping) else None
        replaced = AddableDict(
            {**replaced, key: AIMessage(content=text) if isinstance(old, BaseMessage) else text}
        )
    return replaced


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
