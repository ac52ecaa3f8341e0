"""Bad inputs and failures: monitor mode never breaks the host chain, and the host's own errors
pass through unchanged with the handler's state released and nothing logged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from lc_builders import (
    FABRICATED,
    GROUNDED,
    QUESTION,
    FailingChatModel,
    FailingRetriever,
    MemorySink,
    make_guard,
    make_store,
    rag_chain,
)

from scope_guard.guard import ScopeGuard
from scope_guard.integrations.langchain import (
    AsyncScopeGuardCallbackHandler,
    ScopeGuardCallbackHandler,
    guard_runnable,
)


class ExplodingGuard:
    """A guard whose own code raises (a bug), sync and async."""

    def assess(self, exchange: Any, **kwargs: Any) -> Any:
        raise RuntimeError("guard bug")

    async def aassess(self, exchange: Any, **kwargs: Any) -> Any:
        raise RuntimeError("guard bug")


class ExplodingGrounding:
    def check(self, *args: Any, **kwargs: Any) -> Any:
        raise MemoryError("out of memory")


def _released(handler: Any) -> bool:
    return len(handler.collector) == 0 and handler.collector.tracked_runs == 0


@pytest.mark.parametrize("mode", ["monitor", "gate"])
def test_a_guard_that_raises_never_breaks_the_host_chain(mode: str) -> None:
    handler = ScopeGuardCallbackHandler(ExplodingGuard(), mode=mode)  # type: ignore[arg-type]
    out = rag_chain(FakeListChatModel(responses=[GROUNDED])).invoke(
        QUESTION, config={"callbacks": [handler]}
    )
    assert out == GROUNDED
    assert handler.stats.handler_errors == 1
    assert _released(handler)


def test_async_guard_that_raises_never_breaks_the_host_chain() -> None:
    handler = AsyncScopeGuardCallbackHandler(ExplodingGuard(), mode="gate")
    chain = rag_chain(FakeListChatModel(responses=[GROUNDED]))
    out = asyncio.run(chain.ainvoke(QUESTION, config={"callbacks": [handler]}))
    assert out == GROUNDED
    assert handler.stats.handler_errors == 1


def test_a_failing_detector_fails_open_and_is_logged_with_its_error() -> None:
    sink = MemorySink()
    guard = ScopeGuard(grounding=ExplodingGrounding(), risk_log=sink)  # type: ignore[arg-type]
    handler = ScopeGuardCallbackHandler(guard, mode="gate")
    out = rag_chain(FakeListChatModel(responses=[FABRICATED])).invoke(
        QUESTION, config={"callbacks": [handler]}
    )
    assert out == FABRICATED
    [record] = sink.records
    assert record.action == "allow"
    assert record.error is not None
    assert "MemoryError" in record.error
    assert guard.stats.failures == 1


@pytest.mark.parametrize("answer", ["", "   \n "])
def test_empty_answers_are_logged_as_allowed(answer: str) -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    out = rag_chain(FakeListChatModel(responses=[answer])).invoke(
        QUESTION, config={"callbacks": [handler]}
    )
    assert out == answer
    [record] = sink.records
    assert record.action == "allow"
    assert record.reasons == ["empty response: nothing to assess"]
    assert record.response == answer


def test_no_retrieved_documents() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    chain = rag_chain(FakeListChatModel(responses=[FABRICATED]), make_store([]))
    assert chain.invoke(QUESTION, config={"callbacks": [handler]}) == FABRICATED
    [record] = sink.records
    assert record.contexts == []
    assert record.n_contexts == 0
    assert record.question == QUESTION


def test_non_text_message_content_is_reduced_to_its_text_blocks() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    content: list[Any] = [
        {"type": "text", "text": GROUNDED},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    model = GenericFakeChatModel(messages=iter([AIMessage(content=content)]))
    chain = rag_chain(model)
    chain.invoke(QUESTION, config={"callbacks": [handler]})
    [record] = sink.records
    assert record.response == GROUNDED
    assert record.action == "allow"


def test_very_long_answer_is_assessed() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    long_answer = " ".join([GROUNDED] * 400)
    rag_chain(FakeListChatModel(responses=[long_answer])).invoke(
        QUESTION, config={"callbacks": [handler]}
    )
    assert sink.records[0].response == long_answer


@pytest.mark.parametrize("mode", ["monitor", "gate"])
@pytest.mark.parametrize("failing", ["retriever", "model"])
def test_host_errors_propagate_unchanged_and_release_state(mode: str, failing: str) -> None:
    error = ConnectionError(f"{failing} is offline")
    if failing == "retriever":
        chain = rag_chain(
            FakeListChatModel(responses=[GROUNDED]), retriever=FailingRetriever(error=error)
        )
    else:
        chain = rag_chain(FailingChatModel(error=error))
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink), mode=mode)  # type: ignore[arg-type]

    with pytest.raises(ConnectionError) as caught:
        chain.invoke(QUESTION, config={"callbacks": [handler]})

    assert caught.value is error
    assert sink.records == []
    assert _released(handler)
    assert handler.stats.host_errors == 1
    assert handler.stats.handler_errors == 0


def test_host_errors_in_async_runs_and_a_failing_bare_model() -> None:
    error = ConnectionResetError("model connection reset")
    sink = MemorySink()
    handler = AsyncScopeGuardCallbackHandler(make_guard(sink))
    with pytest.raises(ConnectionResetError) as caught:
        asyncio.run(
            rag_chain(FailingChatModel(error=error)).ainvoke(
                QUESTION, config={"callbacks": [handler]}
            )
        )
    assert caught.value is error
    sync_handler = ScopeGuardCallbackHandler(make_guard(sink))
    with pytest.raises(ConnectionResetError):
        FailingChatModel(error=error).invoke(QUESTION, config={"callbacks": [sync_handler]})
    assert sink.records == []
    assert _released(handler)
    assert _released(sync_handler)
    assert sync_handler.stats.host_errors == 1


def test_the_guarded_runnable_lets_host_errors_through() -> None:
    error = ConnectionError("index offline")
    sink = MemorySink()
    guarded = guard_runnable(
        rag_chain(FakeListChatModel(responses=[GROUNDED]), retriever=FailingRetriever(error=error)),
        make_guard(sink),
    )
    with pytest.raises(ConnectionError) as caught:
        guarded.invoke(QUESTION)
    assert caught.value is error
    with pytest.raises(ConnectionError):
        asyncio.run(guarded.ainvoke(QUESTION))
    assert sink.records == []
