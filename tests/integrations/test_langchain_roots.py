"""Which runs make a request, and which roots are assessed: tools, bare retrievers and tools,
``with_fallbacks`` wrappers, abandoned streams."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_core.tools import BaseTool, tool
from lc_builders import (
    FABRICATED,
    FACTS,
    GROUNDED,
    PROMPT,
    QUESTION,
    FailingRetriever,
    KeyedChatModel,
    MemorySink,
    expected_contexts,
    format_docs,
    make_guard,
    make_store,
    rag_chain,
)

from scope_guard.errors import ScopeViolation
from scope_guard.integrations.langchain import (
    AsyncScopeGuardCallbackHandler,
    ScopeGuardCallbackHandler,
    guard_runnable,
)
from scope_guard.integrations.langchain._attempts import AttemptCollector
from scope_guard.types import Action

CANNED = "Please ask our support team."


def _released(handler: Any) -> bool:
    return len(handler.collector) == 0 and handler.collector.tracked_runs == 0


def _search_tools() -> tuple[BaseTool, BaseTool]:
    """A sync and an async ``@tool`` that wrap the retriever of the default store."""
    retriever = make_store().as_retriever()

    @tool
    def search_docs(query: str) -> str:
        """Search the company documents."""
        return format_docs(retriever.invoke(query))

    @tool
    async def asearch_docs(query: str) -> str:
        """Search the company documents."""
        return format_docs(await retriever.ainvoke(query))

    return search_docs, asearch_docs


def _tool_rag_chain(answer: str) -> Runnable[Any, Any]:
    """A RAG chain whose documents come from a tool (a retriever run inside a tool run)."""
    search, asearch = _search_tools()

    async def acontext(q: str) -> str:
        return await asearch.ainvoke(q)

    context = RunnableLambda(lambda q: search.invoke(q), afunc=acontext)
    return (
        {"context": context, "question": RunnablePassthrough()}
        | PROMPT
        | FakeListChatModel(responses=[answer])
        | StrOutputParser()
    )


# ---------------------------------------------------------------------- retriever inside a tool
def test_a_retriever_inside_a_tool_gives_its_documents_to_the_request() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    chain = _tool_rag_chain(GROUNDED)

    for _ in range(2):
        assert chain.invoke(QUESTION, config={"callbacks": [handler]}) == GROUNDED

    assert len(sink.records) == 2
    for record in sink.records:
        assert record.contexts == expected_contexts(make_store(), QUESTION)
        assert record.action == "allow"
    assert _released(handler)


def test_a_retriever_inside_an_async_tool_with_the_async_handler() -> None:
    sink = MemorySink()
    handler = AsyncScopeGuardCallbackHandler(make_guard(sink))
    out = asyncio.run(_tool_rag_chain(GROUNDED).ainvoke(QUESTION, config={"callbacks": [handler]}))

    assert out == GROUNDED
    [record] = sink.records
    assert record.n_contexts == 3
    assert record.action == "allow"
    assert _released(handler)


def test_the_guarded_runnable_sees_documents_retrieved_inside_a_tool() -> None:
    sink = MemorySink()
    guarded = guard_runnable(_tool_rag_chain(GROUNDED), make_guard(sink))

    assert guarded.invoke(QUESTION) == GROUNDED
    assert asyncio.run(guarded.ainvoke(QUESTION)) == GROUNDED

    assert [(r.action, r.n_contexts) for r in sink.records] == [("allow", 3), ("allow", 3)]


def test_an_attempt_is_judged_on_its_root_with_a_model_answer() -> None:
    """An answerless root ending first (here a bare retriever) does not hide the answer."""
    collector = AttemptCollector()
    bare, chain, model = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    collector.on_retriever_start({}, QUESTION, run_id=bare, parent_run_id=None)
    collector.on_retriever_end([Document(page_content=FACTS[0])], run_id=bare)
    collector.on_chain_start({}, QUESTION, run_id=chain, parent_run_id=None)
    collector.on_chat_model_start({}, [[HumanMessage(QUESTION)]], run_id=model, parent_run_id=chain)
    answer = LLMResult(generations=[[ChatGeneration(message=AIMessage(GROUNDED))]])
    collector.on_llm_end(answer, run_id=model)
    collector.on_chain_end(GROUNDED, run_id=chain)

    assert collector.capture is not None
    assert (collector.capture.root_run_id, collector.capture.response) == (chain, GROUNDED)


# ---------------------------------------------------------------------- roots with no answer
def test_bare_retriever_and_tool_calls_are_released_without_a_record() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    retriever = make_store().as_retriever()
    search, _ = _search_tools()

    for _ in range(3):
        assert len(retriever.invoke(QUESTION, config={"callbacks": [handler]})) == 3
        assert search.invoke(QUESTION, config={"callbacks": [handler]})

    assert sink.records == []
    assert _released(handler)
    assert handler.stats.skipped == 6


def test_bare_calls_with_the_async_handler_and_failing_roots_are_released() -> None:
    sink = MemorySink()
    handler = AsyncScopeGuardCallbackHandler(make_guard(sink))
    failing = FailingRetriever(error=ConnectionError("index offline"))

    @tool
    def broken(query: str) -> str:
        """Always fails."""
        raise ConnectionError("tool offline")

    async def run() -> None:
        await make_store().as_retriever().ainvoke(QUESTION, config={"callbacks": [handler]})
        with pytest.raises(ConnectionError):
            await failing.ainvoke(QUESTION, config={"callbacks": [handler]})
        with pytest.raises(ConnectionError):
            await broken.ainvoke(QUESTION, config={"callbacks": [handler]})

    asyncio.run(run())
    assert sink.records == []
    assert _released(handler)
    assert handler.stats.skipped == 1
    assert handler.stats.host_errors == 2


# ---------------------------------------------------------------------- with_fallbacks
def test_with_fallbacks_in_monitor_mode_logs_the_chain_once() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    chain = rag_chain(FakeListChatModel(responses=[GROUNDED])).with_fallbacks(
        [RunnableLambda(lambda q: CANNED)]
    )

    assert chain.invoke(QUESTION, config={"callbacks": [handler]}) == GROUNDED

    [record] = sink.records  # the wrapper (a second root, no model call) is not assessed
    assert (record.action, record.n_contexts, record.response) == ("allow", 3, GROUNDED)
    assert _released(handler)


def test_with_fallbacks_in_gate_mode_serves_the_fallback_on_a_violation() -> None:
    sink = MemorySink()
    gate = ScopeGuardCallbackHandler(make_guard(sink), mode="gate")
    chain = rag_chain(FakeListChatModel(responses=[FABRICATED])).with_fallbacks(
        [RunnableLambda(lambda q: CANNED)]
    )

    assert chain.invoke(QUESTION, config={"callbacks": [gate]}) == CANNED

    [record] = sink.records  # the canned fallback generated nothing: not assessed, not gated
    assert (record.action, record.n_contexts, record.response) == ("regenerate", 3, FABRICATED)
    assert gate.stats.violations == 1
    assert _released(gate)


def test_with_fallbacks_in_async_gate_mode_gates_a_model_fallback_too() -> None:
    sink = MemorySink()
    gate = AsyncScopeGuardCallbackHandler(make_guard(sink), mode="gate")
    chain = rag_chain(FakeListChatModel(responses=[FABRICATED])).with_fallbacks(
        [rag_chain(FakeListChatModel(responses=[GROUNDED]))]
    )

    out = asyncio.run(chain.ainvoke(QUESTION, config={"callbacks": [gate]}))

    assert out == GROUNDED
    assert [(r.action, r.n_contexts) for r in sink.records] == [("regenerate", 3), ("allow", 3)]
    assert _released(gate)
    # when every answer breaches the policy, the first violation reaches the caller
    always_bad = rag_chain(FakeListChatModel(responses=[FABRICATED])).with_fallbacks(
        [rag_chain(FakeListChatModel(responses=[FABRICATED]))]
    )
    with pytest.raises(ScopeViolation) as caught:
        asyncio.run(always_bad.ainvoke(QUESTION, config={"callbacks": [gate]}))
    assert caught.value.decision.action is Action.REGENERATE
    assert _released(gate)


# ---------------------------------------------------------------------- abandoned streams
def test_an_abandoned_stream_is_not_assessed_as_an_answer() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    chain = rag_chain(KeyedChatModel(answers={"": GROUNDED}))

    stream = chain.stream(QUESTION, config={"callbacks": [handler]})
    taken = [next(stream), next(stream)]
    stream.close()

    assert "".join(taken) != GROUNDED
    assert sink.records == []
    assert handler.stats.skipped == 1
    assert _released(handler)
    # a stream read to its end is assessed as usual
    assert "".join(chain.stream(QUESTION, config={"callbacks": [handler]})) == GROUNDED
    assert [r.response for r in sink.records] == [GROUNDED]


def test_an_abandoned_async_stream_is_not_assessed_as_an_answer() -> None:
    sink = MemorySink()
    handler = AsyncScopeGuardCallbackHandler(make_guard(sink))
    chain = rag_chain(KeyedChatModel(answers={"": GROUNDED}))

    async def take_two() -> None:
        stream = chain.astream(QUESTION, config={"callbacks": [handler]})
        await anext(stream)
        await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]

    async def take_all() -> str:
        return "".join([c async for c in chain.astream(QUESTION, config={"callbacks": [handler]})])

    asyncio.run(take_two())
    assert sink.records == []
    assert _released(handler)
    assert (handler.stats.skipped, handler.stats.host_errors) == (1, 0)
    assert asyncio.run(take_all()) == GROUNDED
    assert [r.response for r in sink.records] == [GROUNDED]
