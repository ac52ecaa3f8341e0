"""A fallback never lets the rejected text through, whatever the output's shape."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from lc_builders import (
    FABRICATED,
    PROMPT,
    QUESTION,
    MemorySink,
    format_docs,
    make_guard,
    make_store,
)

from scope_guard.errors import ConfigError
from scope_guard.integrations.langchain import DEFAULT_FALLBACK, guard_runnable
from scope_guard.policy import Policy, RiskThresholds

REJECT = Policy({"fabrication": RiskThresholds(fallback=0.8)})
REPORT_KEY = "scope_guard"


def _model(*answers: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(answers) * 4)


def _texts(value: Any) -> list[str]:
    """Every text in an output but the report (whose flagged claims quote the answer)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, BaseMessage):
        return [str(value.content)]
    if isinstance(value, Document):
        return [value.page_content]
    if isinstance(value, dict):
        return [t for k, v in value.items() if k != REPORT_KEY for t in _texts(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return []


def _leaks(out: Any) -> bool:
    return any("1874" in t or "Berlin" in t for t in _texts(out))


def _assign_chain(key: str = "generation"):  # type: ignore[no-untyped-def]
    retriever = make_store().as_retriever(search_kwargs={"k": 3})
    answer = (
        RunnableLambda(lambda x: {**x, "context": format_docs(x["context"])})
        | PROMPT
        | _model(FABRICATED)
        | StrOutputParser()
    )
    return RunnablePassthrough.assign(context=(lambda x: x["question"]) | retriever).assign(
        **{key: answer}
    )


def _guard():  # type: ignore[no-untyped-def]
    return make_guard(MemorySink(), policy=REJECT)


def test_assign_generation_gets_the_fallback_in_place() -> None:
    out = guard_runnable(_assign_chain(), _guard()).invoke({"question": QUESTION})
    assert out["generation"] == DEFAULT_FALLBACK
    assert "answer" not in out
    assert out["question"] == QUESTION
    assert len(out["context"]) == 3  # the documents stay
    assert not _leaks(out)


def test_assign_generation_streamed_and_async() -> None:
    guarded = guard_runnable(_assign_chain(), _guard())
    chunks = list(guarded.stream({"question": QUESTION}))
    assert not any(_leaks(c) for c in chunks)
    assert chunks[-1]["generation"] == DEFAULT_FALLBACK
    out = asyncio.run(guarded.ainvoke({"question": QUESTION}))
    assert out["generation"] == DEFAULT_FALLBACK
    assert not _leaks(out)


def test_nested_outputs_and_message_lists_are_cleaned() -> None:
    inner = _assign_chain()
    nested = inner | RunnableLambda(lambda x: {"result": x, "trace": [x["generation"]]})
    out = guard_runnable(nested, _guard()).invoke({"question": QUESTION})
    assert out["result"]["generation"] == DEFAULT_FALLBACK
    assert out["trace"] == [DEFAULT_FALLBACK]
    assert not _leaks(out)

    messages = (
        {
            "context": make_store().as_retriever() | format_docs,
            "question": RunnablePassthrough(),
        }
        | PROMPT
        | _model(FABRICATED)
        | RunnableLambda(lambda m: [HumanMessage(content=QUESTION), m])
    )
    listed = guard_runnable(messages, _guard()).invoke(QUESTION)
    assert isinstance(listed, list)
    assert isinstance(listed[1], AIMessage)
    assert listed[1].content == DEFAULT_FALLBACK
    assert listed[0].content == QUESTION


def test_message_outputs_and_streamed_message_chunks() -> None:
    chain = (
        {
            "context": make_store().as_retriever() | format_docs,
            "question": RunnablePassthrough(),
        }
        | PROMPT
        | _model(FABRICATED)
    )
    guarded = guard_runnable(chain, _guard())
    out = guarded.invoke(QUESTION)
    assert isinstance(out, AIMessage)
    assert out.content == DEFAULT_FALLBACK
    chunks = list(guarded.stream(QUESTION))
    assert [c.content for c in chunks] == [DEFAULT_FALLBACK]


def test_an_output_without_a_place_for_the_fallback_is_refused_until_output_key_names_it() -> None:
    # the answer is transformed (upper-cased into a custom key): nothing holds it verbatim
    chain = _assign_chain() | RunnableLambda(
        lambda x: {"question": x["question"], "shout": x["generation"].upper()}
    )
    with pytest.raises(ConfigError, match="output_key"):
        guard_runnable(chain, _guard()).invoke({"question": QUESTION})
    out = guard_runnable(chain, _guard(), output_key="shout").invoke({"question": QUESTION})
    assert out["shout"] == DEFAULT_FALLBACK
    assert not _leaks(out)
    with pytest.raises(ConfigError, match="output_key"):
        guard_runnable(chain, _guard(), output_key="")
