"""The callback handlers: what they collect, when they assess, monitor vs gate, bounded state."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult
from langchain_core.prompts import PromptTemplate
from lc_builders import (
    FABRICATED,
    FACTS,
    GROUNDED,
    QUESTION,
    KeyedChatModel,
    MemorySink,
    dict_rag_chain,
    expected_contexts,
    make_guard,
    make_store,
    rag_chain,
)

from scope_guard.errors import ScopeViolation
from scope_guard.integrations.langchain import (
    AsyncScopeGuardCallbackHandler,
    ScopeGuardCallbackHandler,
)
from scope_guard.types import Action


def _released(handler: ScopeGuardCallbackHandler | AsyncScopeGuardCallbackHandler) -> bool:
    return len(handler.collector) == 0 and handler.collector.tracked_runs == 0


def test_collects_question_documents_prompt_and_response_of_a_rag_chain() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    store = make_store()
    chain = rag_chain(FakeListChatModel(responses=[GROUNDED]), store)

    assert chain.invoke(QUESTION, config={"callbacks": [handler]}) == GROUNDED

    [record] = sink.records
    contexts = expected_contexts(store, QUESTION)
    assert sorted(contexts) == sorted(FACTS)
    assert record.question == QUESTION
    assert record.contexts == contexts
    assert record.prompt == (
        "Answer using only this context:\n" + "\n\n".join(contexts) + "\n\n" + QUESTION
    )
    assert record.response == GROUNDED
    assert record.action == "allow"
    assert record.attempt == 1
    assert record.meta["source"] == "langchain-callback"
    report = handler.last_report(record.root_run_id)
    assert report is not None
    assert report.decision.action is Action.ALLOW
    assert handler.last_report() is report
    assert _released(handler)


def test_fabricated_answer_is_scored_high_and_logged_in_monitor_mode() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    chain = rag_chain(FakeListChatModel(responses=[FABRICATED]))

    assert chain.invoke(QUESTION, config={"callbacks": [handler]}) == FABRICATED

    [record] = sink.records
    assert record.action == "regenerate"
    assert record.scores["fabrication"] >= 0.7
    assert any("1874" in c["unsupported"] for c in record.flagged_claims)
    assert handler.stats.as_dict() == {
        "assessed": 1,
        "violations": 1,
        "skipped": 0,
        "host_errors": 0,
        "handler_errors": 0,
    }


def test_dict_input_question_key_and_completion_model() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    prompt = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}\nAnswer:")
    chain = dict_rag_chain(FakeListLLM(responses=[GROUNDED]), make_store(), prompt=prompt)

    out = chain.invoke({"question": QUESTION}, config={"callbacks": [handler]})

    assert out["answer"] == GROUNDED
    [record] = sink.records
    assert record.question == QUESTION
    assert sorted(record.contexts or []) == sorted(FACTS)
    assert record.prompt is not None
    assert record.prompt.startswith("Context:\n")
    assert record.prompt.endswith(f"Question: {QUESTION}\nAnswer:")
    assert record.response == GROUNDED


@pytest.mark.parametrize("key", ["input", "query"])
def test_question_from_other_input_keys(key: str) -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    chain = (lambda x: x[key]) | rag_chain(FakeListChatModel(responses=[GROUNDED]))
    chain.invoke({key: QUESTION}, config={"callbacks": [handler]})
    assert sink.records[0].question == QUESTION


def test_streaming_chain_question_and_response() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    model = GenericFakeChatModel(messages=iter([AIMessage(content=GROUNDED)]))
    chunks = list(rag_chain(model).stream(QUESTION, config={"callbacks": [handler]}))

    assert len(chunks) > 3
    assert "".join(chunks) == GROUNDED
    [record] = sink.records
    assert record.question == QUESTION  # a streamed root gets its input only at its end
    assert record.response == GROUNDED
    assert len(record.contexts or []) == 3


def test_streamed_tokens_are_used_when_the_end_event_has_no_text() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    root, llm = uuid.uuid4(), uuid.uuid4()
    handler.on_chain_start({}, {"question": QUESTION}, run_id=root, parent_run_id=None)
    handler.on_chat_model_start({}, [[HumanMessage(QUESTION)]], run_id=llm, parent_run_id=root)
    for token in GROUNDED.split(" "):
        handler.on_llm_new_token(token + " ", run_id=llm, parent_run_id=root)
    empty = LLMResult(generations=[[ChatGeneration(message=AIMessage(content=""))]])
    handler.on_llm_end(empty, run_id=llm, parent_run_id=root)
    handler.on_chain_end({"answer": ""}, run_id=root)

    [record] = sink.records
    assert record.response == GROUNDED + " "
    assert _released(handler)


def test_several_generations_take_the_first() -> None:
    class TwoCandidates(FakeListChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
            first, second = AIMessage(content=GROUNDED), AIMessage(content=FABRICATED)
            return ChatResult(
                generations=[ChatGeneration(message=first), ChatGeneration(message=second)]
            )

    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    out = rag_chain(TwoCandidates(responses=["unused"])).invoke(
        QUESTION, config={"callbacks": [handler]}
    )
    assert out == GROUNDED
    assert sink.records[0].response == GROUNDED
    assert sink.records[0].action == "allow"


def test_bare_model_call_is_assessed_at_its_end() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    model = FakeListChatModel(responses=[GROUNDED])
    model.invoke(
        [HumanMessage("Be brief."), HumanMessage(QUESTION)], config={"callbacks": [handler]}
    )

    [record] = sink.records
    assert record.question == QUESTION
    assert record.prompt == f"Be brief.\n\n{QUESTION}"
    assert record.response == GROUNDED
    assert record.n_contexts == 0
    assert _released(handler)


def test_model_with_several_calls_is_judged_on_the_last_answer() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    rewrite = FakeListChatModel(responses=["Acme founding date and place"])
    chain = rewrite | (lambda m: m.content) | rag_chain(FakeListChatModel(responses=[GROUNDED]))
    chain.invoke(QUESTION, config={"callbacks": [handler]})

    [record] = sink.records
    assert record.question == QUESTION
    assert record.response == GROUNDED
    assert record.prompt is not None
    assert record.prompt.endswith("Acme founding date and place")


def test_gate_mode_raises_scope_violation_with_decision_and_report() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink), mode="gate")
    assert handler.raise_error is True
    chain = rag_chain(FakeListChatModel(responses=[FABRICATED]))

    with pytest.raises(ScopeViolation) as caught:
        chain.invoke(QUESTION, config={"callbacks": [handler]})

    assert caught.value.decision.action is Action.REGENERATE
    assert caught.value.report is not None
    assert caught.value.report.flagged_claims
    assert len(sink.records) == 1
    assert _released(handler)
    # a grounded answer passes the gate
    assert (
        rag_chain(FakeListChatModel(responses=[GROUNDED])).invoke(
            QUESTION, config={"callbacks": [handler]}
        )
        == GROUNDED
    )


def test_async_handler_gate_and_monitor() -> None:
    asyncio.run(_async_gate_and_monitor())


async def _async_gate_and_monitor() -> None:
    sink = MemorySink()
    guard = make_guard(sink)
    gate = AsyncScopeGuardCallbackHandler(guard, mode="gate")
    with pytest.raises(ScopeViolation) as caught:
        await rag_chain(FakeListChatModel(responses=[FABRICATED])).ainvoke(
            QUESTION, config={"callbacks": [gate]}
        )
    assert caught.value.decision.action is Action.REGENERATE

    monitor = AsyncScopeGuardCallbackHandler(guard)
    out = await rag_chain(FakeListChatModel(responses=[FABRICATED])).ainvoke(
        QUESTION, config={"callbacks": [monitor]}
    )
    assert out == FABRICATED
    assert [r.action for r in sink.records] == ["regenerate", "regenerate"]
    assert sink.records[1].question == QUESTION
    assert len(sink.records[1].contexts or []) == 3
    assert _released(gate)
    assert _released(monitor)


def test_sync_gate_handler_in_an_async_run() -> None:
    """LangChain runs a sync handler in a worker thread there; the gate still raises."""
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink), mode="gate")
    chain = rag_chain(FakeListChatModel(responses=[FABRICATED]))
    with pytest.raises(ScopeViolation):
        asyncio.run(chain.ainvoke(QUESTION, config={"callbacks": [handler]}))
    assert sink.records[0].question == QUESTION
    assert _released(handler)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be 'monitor' or 'gate'"):
        ScopeGuardCallbackHandler(make_guard(MemorySink()), mode="block")  # type: ignore[arg-type]


def test_runs_that_never_end_are_dropped_beyond_the_cap() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink), max_runs=10)
    roots = [uuid.uuid4() for _ in range(100)]
    models = [uuid.uuid4() for _ in roots]
    for root, model in zip(roots, models, strict=True):
        handler.on_chain_start({}, {"question": "q"}, run_id=root, parent_run_id=None)
        handler.on_chat_model_start({}, [[HumanMessage("q")]], run_id=model, parent_run_id=root)
        handler.on_llm_new_token("never ends", run_id=model, parent_run_id=root)

    assert len(handler.collector) == 10
    assert handler.collector.tracked_runs == 20
    assert handler.collector.evicted == 90
    # a late child of a dropped root is ignored, not taken for a new root
    late = uuid.uuid4()
    handler.on_chat_model_start({}, [[HumanMessage("q")]], run_id=late, parent_run_id=roots[0])
    handler.on_llm_end(
        LLMResult(generations=[[ChatGeneration(message=AIMessage("a"))]]), run_id=late
    )
    handler.on_chain_end("a", run_id=roots[0])
    assert len(handler.collector) == 10
    assert sink.records == []
    # the kept roots still complete normally
    answer = LLMResult(generations=[[ChatGeneration(message=AIMessage(GROUNDED))]])
    handler.on_llm_end(answer, run_id=models[-1])
    handler.on_chain_end(GROUNDED, run_id=roots[-1])
    assert len(sink.records) == 1
    assert sink.records[0].response == GROUNDED


def test_runs_older_than_the_ttl_are_dropped() -> None:
    handler = ScopeGuardCallbackHandler(make_guard(MemorySink()), ttl_s=0.0)
    for _ in range(5):
        handler.on_chain_start({}, "q", run_id=uuid.uuid4(), parent_run_id=None)
    assert len(handler.collector) == 1
    assert handler.collector.evicted == 4


def test_kept_reports_are_bounded() -> None:
    handler = ScopeGuardCallbackHandler(make_guard(MemorySink()), max_reports=3)
    model = KeyedChatModel(answers={})
    for i in range(7):
        model.invoke(f"question {i}", config={"callbacks": [handler]})
    assert len(handler.reports) == 3
    assert handler.stats.assessed == 7
