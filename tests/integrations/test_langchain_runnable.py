"""The guarded runnable: pass, regenerate, fall back, block; feedback; every way to call it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from lc_builders import (
    FABRICATED,
    GROUNDED,
    QUESTION,
    EventSpy,
    KeyedChatModel,
    MemorySink,
    dict_rag_chain,
    make_guard,
    make_store,
    rag_chain,
)

from scope_guard.errors import ScopeViolation
from scope_guard.integrations.langchain import (
    ATTEMPT_TAG,
    DEFAULT_FALLBACK,
    REPORT_EVENT,
    GuardedRunnable,
    guard_runnable,
    wrap,
)
from scope_guard.policy import Policy, RiskThresholds
from scope_guard.types import Action

# FABRICATED scores ~0.87: with these rules it is served the fallback / blocked straight away
FALLBACK_POLICY = Policy({"fabrication": RiskThresholds(regenerate=0.6, fallback=0.8)})
BLOCK_POLICY = Policy({"fabrication": RiskThresholds(regenerate=0.6, fallback=0.7, block=0.8)})


def _model(*answers: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(answers))


def test_grounded_answer_passes_with_its_report() -> None:
    sink = MemorySink()
    spy = EventSpy()
    guarded = guard_runnable(rag_chain(_model(GROUNDED)), make_guard(sink))

    assert guarded.invoke(QUESTION, config={"callbacks": [spy]}) == GROUNDED

    [record] = sink.records
    assert (record.action, record.attempt, record.response) == ("allow", 1, GROUNDED)
    assert record.question == QUESTION
    assert len(record.contexts or []) == 3
    assert record.meta["source"] == "langchain-runnable"
    [(name, data)] = spy.events
    assert name == REPORT_EVENT
    assert data["outcome"] == "answer"
    assert data["report"]["decision"]["action"] == "allow"
    assert data["report"]["request_id"] == record.request_id


def test_report_is_in_dict_outputs() -> None:
    sink = MemorySink()
    guarded = guard_runnable(dict_rag_chain(_model(GROUNDED), make_store()), make_guard(sink))
    out = guarded.invoke({"question": QUESTION})
    assert out["answer"] == GROUNDED
    assert out["scope_guard"]["decision"]["action"] == "allow"
    assert out["scope_guard"]["scores"]["fabrication"] < 0.5
    assert sink.records[0].question == QUESTION


def test_fabricated_then_grounded_is_regenerated() -> None:
    sink = MemorySink()
    guarded = guard_runnable(rag_chain(_model(FABRICATED, GROUNDED)), make_guard(sink))

    assert guarded.invoke(QUESTION) == GROUNDED

    assert [r.attempt for r in sink.records] == [1, 2]
    assert [r.action for r in sink.records] == ["regenerate", "allow"]
    assert [r.response for r in sink.records] == [FABRICATED, GROUNDED]
    assert len({r.request_id for r in sink.records}) == 1
    assert len({r.root_run_id for r in sink.records}) == 2  # one traced run per attempt


@pytest.mark.parametrize("attempts", [1, 3])
def test_always_fabricated_gets_the_fallback_after_n_attempts(attempts: int) -> None:
    sink = MemorySink()
    spy = EventSpy()
    guarded = guard_runnable(rag_chain(_model(FABRICATED)), make_guard(sink), max_attempts=attempts)

    assert guarded.invoke(QUESTION, config={"callbacks": [spy]}) == DEFAULT_FALLBACK

    assert [r.attempt for r in sink.records] == list(range(1, attempts + 1))
    assert {r.action for r in sink.records} == {"regenerate"}
    outcomes = [data["outcome"] for _, data in spy.events]
    assert outcomes == ["retry"] * (attempts - 1) + ["fallback"]
    assert [r.outcome for r in sink.records] == ["retry"] * (attempts - 1) + ["fallback"]


def test_fallback_runnable_gets_the_original_input() -> None:
    sink = MemorySink()
    seen: list[Any] = []

    def support(question: str) -> str:
        seen.append(question)
        return "Please contact support."

    guarded = guard_runnable(
        rag_chain(_model(FABRICATED)),
        make_guard(sink),
        fallback_runnable=RunnableLambda(support),
    )
    assert guarded.invoke(QUESTION) == "Please contact support."
    assert seen == [QUESTION]
    assert len(sink.records) == 2


def test_fallback_action_is_served_at_once_and_shaped_like_the_output() -> None:
    sink = MemorySink()
    guard = make_guard(sink, policy=FALLBACK_POLICY)
    guarded = guard_runnable(dict_rag_chain(_model(FABRICATED), make_store()), guard)

    out = guarded.invoke({"question": QUESTION})

    assert out["answer"] == DEFAULT_FALLBACK
    assert out["question"] == QUESTION
    assert len(out["context"]) == 3  # the documents stay visible
    assert out["scope_guard"]["decision"]["action"] == "fallback"
    assert [r.action for r in sink.records] == ["fallback"]
    # a bare model call has no documents: only a policy that acts without them falls back
    strict = Policy(FALLBACK_POLICY.rules, no_context="assess")
    message_out = guard_runnable(_model(FABRICATED), make_guard(sink, policy=strict)).invoke(
        QUESTION
    )
    assert isinstance(message_out, AIMessage)
    assert message_out.content == DEFAULT_FALLBACK


def test_block_raises_a_typed_error_or_serves_the_fallback() -> None:
    sink = MemorySink()
    guard = make_guard(sink, policy=BLOCK_POLICY)
    with pytest.raises(ScopeViolation) as caught:
        guard_runnable(rag_chain(_model(FABRICATED)), guard).invoke(QUESTION)
    assert caught.value.decision.action is Action.BLOCK
    assert caught.value.report is not None
    assert caught.value.report.flagged_claims

    lenient = guard_runnable(rag_chain(_model(FABRICATED)), guard, on_block="fallback")
    assert lenient.invoke(QUESTION) == DEFAULT_FALLBACK
    with pytest.raises(ScopeViolation):
        asyncio.run(guard_runnable(rag_chain(_model(FABRICATED)), guard).ainvoke(QUESTION))
    with pytest.raises(ScopeViolation):
        list(guard_runnable(rag_chain(_model(FABRICATED)), guard).stream(QUESTION))


def test_feedback_reaches_a_dict_input_chain_on_regeneration() -> None:
    sink = MemorySink()
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer using only this context:\n{context}\n{scope_guard_feedback}"),
            ("human", "{question}"),
        ]
    ).partial(scope_guard_feedback="")
    chain = dict_rag_chain(_model(FABRICATED, GROUNDED), make_store(), prompt=prompt)
    out = guard_runnable(chain, make_guard(sink)).invoke({"question": QUESTION})

    assert out["answer"] == GROUNDED
    first, second = sink.records
    assert "not supported" not in (first.prompt or "")
    assert "Your previous answer was not supported by the retrieved documents." in (
        second.prompt or ""
    )
    assert "1874" in (second.prompt or "")
    assert second.question == QUESTION


def test_regenerate_with_a_stricter_chain() -> None:
    sink = MemorySink()
    strict = rag_chain(_model(GROUNDED))
    guarded = guard_runnable(
        rag_chain(_model(FABRICATED)), make_guard(sink), regenerate_with=strict
    )
    assert guarded.invoke(QUESTION) == GROUNDED
    assert [r.response for r in sink.records] == [FABRICATED, GROUNDED]


def test_invoke_ainvoke_batch_abatch_stream_astream() -> None:
    questions = [f"[q{i}] {QUESTION}" for i in range(4)]
    answers = {f"q{i}": (GROUNDED if i % 2 == 0 else FABRICATED) for i in range(4)}
    expected = [GROUNDED, DEFAULT_FALLBACK, GROUNDED, DEFAULT_FALLBACK]
    sink = MemorySink()
    guarded = guard_runnable(rag_chain(KeyedChatModel(answers=answers)), make_guard(sink))

    assert [guarded.invoke(q) for q in questions] == expected
    assert [asyncio.run(guarded.ainvoke(q)) for q in questions] == expected
    assert guarded.batch(questions) == expected
    assert asyncio.run(guarded.abatch(questions)) == expected
    streamed = ["".join(guarded.stream(q)) for q in questions]
    assert streamed == expected

    async def astreamed(q: str) -> str:
        return "".join([c async for c in guarded.astream(q)])

    assert [asyncio.run(astreamed(q)) for q in questions] == expected
    # 6 ways x (2 grounded x 1 attempt + 2 fabricated x 2 attempts)
    assert len(sink.records) == 6 * 6


def test_stream_is_buffered_until_assessed() -> None:
    sink = MemorySink()
    model = GenericFakeChatModel(
        messages=iter([AIMessage(content=FABRICATED), AIMessage(content=GROUNDED)])
    )
    chunks = list(guard_runnable(rag_chain(model), make_guard(sink)).stream(QUESTION))
    assert len(chunks) > 3  # the chain's own chunks are replayed
    assert "".join(chunks) == GROUNDED
    assert not any("1874" in c for c in chunks)  # nothing of the rejected answer leaked
    assert [r.response for r in sink.records] == [FABRICATED, GROUNDED]


def test_dict_stream_ends_with_the_report() -> None:
    sink = MemorySink()
    model = GenericFakeChatModel(messages=iter([AIMessage(content=GROUNDED)]))
    guarded = guard_runnable(dict_rag_chain(model, make_store()), make_guard(sink))

    async def collect() -> list[Any]:
        return [c async for c in guarded.astream({"question": QUESTION})]

    chunks = asyncio.run(collect())
    assert chunks[-1]["scope_guard"]["decision"]["action"] == "allow"
    assert "".join(c.get("answer", "") for c in chunks) == GROUNDED


def test_report_event_in_astream_events() -> None:
    guarded = guard_runnable(rag_chain(_model(GROUNDED)), make_guard(MemorySink()))

    async def events() -> list[Any]:
        return [e async for e in guarded.astream_events(QUESTION, version="v2")]

    custom = [e for e in asyncio.run(events()) if e["event"] == "on_custom_event"]
    assert [e["name"] for e in custom] == [REPORT_EVENT]
    assert custom[0]["data"]["report"]["decision"]["action"] == "allow"


def test_inner_events_carry_the_attempt_tag_and_can_be_left_out() -> None:
    model = GenericFakeChatModel(
        messages=iter([AIMessage(content=FABRICATED), AIMessage(content=GROUNDED)])
    )
    guarded = guard_runnable(rag_chain(model), make_guard(MemorySink()))

    async def events(**kwargs: Any) -> list[Any]:
        return [e async for e in guarded.astream_events(QUESTION, version="v2", **kwargs)]

    every = asyncio.run(events())
    tokens = [e for e in every if e["event"] == "on_chat_model_stream"]
    assert "1874" in "".join(e["data"]["chunk"].content for e in tokens)  # tracing is unfiltered
    assert all(ATTEMPT_TAG in e["tags"] for e in tokens)

    model.messages = iter([AIMessage(content=FABRICATED), AIMessage(content=GROUNDED)])
    own = asyncio.run(events(exclude_tags=[ATTEMPT_TAG]))
    assert not [e for e in own if e["event"] == "on_chat_model_stream"]
    served = [e["data"]["chunk"] for e in own if e["event"] == "on_chain_stream"]
    assert "".join(served) == GROUNDED
    assert [e["data"]["outcome"] for e in own if e["event"] == "on_custom_event"] == [
        "retry",
        "regenerated",
    ]


def test_callers_config_is_preserved() -> None:
    spy = EventSpy()
    guarded = guard_runnable(rag_chain(_model(FABRICATED, GROUNDED)), make_guard(MemorySink()))
    guarded.invoke(
        QUESTION, config={"callbacks": [spy], "tags": ["mine"], "metadata": {"user": "u1"}}
    )
    assert len(spy.model_runs) == 2
    for attempt, (tags, metadata) in enumerate(spy.model_runs, start=1):
        assert "mine" in tags
        assert metadata["user"] == "u1"
        assert metadata["scope_guard_attempt"] == attempt


def test_works_with_a_completion_model_and_composes_with_pipe() -> None:
    sink = MemorySink()
    guarded = wrap(rag_chain(FakeListLLM(responses=[GROUNDED])), make_guard(sink))
    assert isinstance(guarded, GuardedRunnable)
    composed = guarded | (lambda text: text.upper())
    assert composed.invoke(QUESTION) == GROUNDED.upper()
    assert sink.records[0].response == GROUNDED


def test_a_chain_without_text_passes_through_unassessed() -> None:
    sink = MemorySink()
    guarded = guard_runnable(RunnableLambda(lambda x: {"n": len(x)}), make_guard(sink))
    assert guarded.invoke("abc") == {"n": 3}
    assert sink.records == []


def test_a_regeneration_without_text_gets_no_stale_report() -> None:
    sink = MemorySink()
    spy = EventSpy()
    guarded = guard_runnable(
        rag_chain(_model(FABRICATED)),
        make_guard(sink),
        regenerate_with=RunnableLambda(lambda q: {"n_docs": 3}),
    )

    out = guarded.invoke(QUESTION, config={"callbacks": [spy]})

    assert out == {"n_docs": 3}  # not the first attempt's report under "scope_guard"
    assert [(r.attempt, r.action) for r in sink.records] == [(1, "regenerate")]
    assert [data["outcome"] for _, data in spy.events] == ["retry"]


def test_bad_settings_are_refused() -> None:
    guard = make_guard(MemorySink())
    with pytest.raises(ValueError, match="max_attempts"):
        guard_runnable(_model(GROUNDED), guard, max_attempts=0)
    with pytest.raises(ValueError, match="on_block"):
        guard_runnable(_model(GROUNDED), guard, on_block="ignore")  # type: ignore[arg-type]
