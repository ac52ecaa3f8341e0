"""The LangChain callback hooks scope-guard listens to, in one table: each hook forwards its
arguments to a :class:`~scope_guard.integrations.langchain.collector.RunCollector` and says
what came of it (a root that ended, or one that failed).

The attempt collector and the sync and async handlers differ only in what they do with that
result, so they get their hook methods from this table (:func:`forward_hooks`) instead of
each spelling out the same dozen hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from scope_guard.integrations.langchain._text import messages_text, question_text
from scope_guard.integrations.langchain.collector import Capture, RunCollector

__all__ = ["HOOKS", "Route", "Routed", "async_hook", "forward_hooks", "sync_hook"]


class Routed(NamedTuple):
    """What a hook's event did to its root.

    Attributes:
        capture: The root ended (and was released): what it showed the guard.
        failed: The run that failed was a root (released, nothing to assess).
        error: The failure, for a failed root.
    """

    capture: Capture | None = None
    failed: bool = False
    error: BaseException | None = None


Route = Callable[..., Routed | None]
"""``route(collector, *hook_args, **hook_kwargs)``: forward one event to the collector."""


def _model_name(kwargs: Mapping[str, Any]) -> str | None:
    name = (kwargs.get("metadata") or {}).get("ls_model_name")
    return name if isinstance(name, str) else None


def _chain_start(
    c: RunCollector,
    serialized: Any,
    inputs: Any,
    *,
    run_id: UUID,
    parent_run_id: UUID | None = None,
    **kw: Any,
) -> None:
    c.chain_start(inputs, run_id=run_id, parent_run_id=parent_run_id)


def _chain_end(c: RunCollector, outputs: Any, *, run_id: UUID, **kw: Any) -> Routed:
    return Routed(c.run_end(run_id=run_id, inputs=kw.get("inputs"), outputs=outputs))


def _retriever_start(
    c: RunCollector,
    serialized: Any,
    query: str,
    *,
    run_id: UUID,
    parent_run_id: UUID | None = None,
    **kw: Any,
) -> None:
    c.retriever_start(query, run_id=run_id, parent_run_id=parent_run_id)


def _retriever_end(
    c: RunCollector,
    documents: Sequence[Any],
    *,
    run_id: UUID,
    parent_run_id: UUID | None = None,
    **kw: Any,
) -> Routed:
    return Routed(c.retriever_end(documents, run_id=run_id, parent_run_id=parent_run_id))


def _tool_start(
    c: RunCollector,
    serialized: Any,
    input_str: str,
    *,
    run_id: UUID,
    parent_run_id: UUID | None = None,
    **kw: Any,
) -> None:
    c.run_start(run_id=run_id, parent_run_id=parent_run_id)


def _tool_end(c: RunCollector, output: Any, *, run_id: UUID, **kw: Any) -> Routed:
    return Routed(c.run_end(run_id=run_id, outputs=output))


def _chat_model_start(
    c: RunCollector,
    serialized: Any,
    messages: Sequence[Sequence[BaseMessage]],
    *,
    run_id: UUID,
    parent_run_id: UUID | None = None,
    **kw: Any,
) -> None:
    first = messages[0] if messages else []
    c.model_start(
        messages_text(first),
        run_id=run_id,
        parent_run_id=parent_run_id,
        model=_model_name(kw),
        question=question_text(first),
    )


def _llm_start(
    c: RunCollector,
    serialized: Any,
    prompts: Sequence[str],
    *,
    run_id: UUID,
    parent_run_id: UUID | None = None,
    **kw: Any,
) -> None:
    prompt = prompts[0] if prompts else ""
    c.model_start(prompt, run_id=run_id, parent_run_id=parent_run_id, model=_model_name(kw))


def _llm_new_token(c: RunCollector, token: Any, *, run_id: UUID, **kw: Any) -> None:
    c.model_token(token, run_id=run_id)


def _llm_end(c: RunCollector, response: LLMResult, *, run_id: UUID, **kw: Any) -> Routed:
    return Routed(c.model_end(response, run_id=run_id))


def _llm_error(c: RunCollector, error: BaseException, *, run_id: UUID, **kw: Any) -> Routed:
    return Routed(failed=c.model_error(run_id=run_id), error=error)


def _run_error(c: RunCollector, error: BaseException, *, run_id: UUID, **kw: Any) -> Routed:
    return Routed(failed=c.run_error(run_id=run_id), error=error)


HOOKS: dict[str, Route] = {
    "on_chain_start": _chain_start,
    "on_chain_end": _chain_end,
    "on_chain_error": _run_error,
    "on_retriever_start": _retriever_start,
    "on_retriever_end": _retriever_end,
    "on_retriever_error": _run_error,
    "on_tool_start": _tool_start,
    "on_tool_end": _tool_end,
    "on_tool_error": _run_error,
    "on_chat_model_start": _chat_model_start,
    "on_llm_start": _llm_start,
    "on_llm_new_token": _llm_new_token,
    "on_llm_end": _llm_end,
    "on_llm_error": _llm_error,
}
"""LangChain hook name -> its route. Every kind of run LangChain starts has its start, end and
error here; the other hooks (``on_retry``, ``on_text``, ``on_custom_event``) start no run."""

_T = TypeVar("_T", bound=type)


def sync_hook(name: str, route: Route) -> Callable[..., Any]:
    """A hook method that hands the event to ``self._forward(name, route, args, kwargs)``."""

    def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._forward(name, route, args, kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


def async_hook(name: str, route: Route) -> Callable[..., Any]:
    """A coroutine hook method awaiting ``self._aforward(name, route, args, kwargs)``."""

    async def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._aforward(name, route, args, kwargs)

    hook.__name__ = hook.__qualname__ = name
    return hook


def forward_hooks(make: Callable[[str, Route], Callable[..., Any]]) -> Callable[[_T], _T]:
    """Class decorator: give the class every hook of :data:`HOOKS`, made by ``make``."""

    def decorate(cls: _T) -> _T:
        for name, route in HOOKS.items():
            setattr(cls, name, make(name, route))
        return cls

    return decorate
