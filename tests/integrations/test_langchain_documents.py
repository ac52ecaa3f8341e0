"""Documents are captured however a chain gets them; an answer without any is flagged and
warned about, not replaced (unless the policy says otherwise)."""

from __future__ import annotations

import asyncio

from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.tools import tool
from lc_builders import (
    FABRICATED,
    FACTS,
    GROUNDED,
    PROMPT,
    QUESTION,
    MemorySink,
    format_docs,
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
from scope_guard.policy import Policy, RiskThresholds
from scope_guard.types import Action, Exchange, Outcome

RULES = {"fabrication": RiskThresholds(warn=0.5, regenerate=0.7, fallback=0.9)}


def _model(*answers: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(answers))


def _lambda_retriever_chain(answer: str):  # type: ignore[no-untyped-def]
    store = make_store()
    search = RunnableLambda(lambda q: store.similarity_search(q, k=3))
    return rag_chain(_model(answer), retriever=search)


def test_documents_from_a_runnable_lambda_retriever_are_captured() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    guarded = guard_runnable(_lambda_retriever_chain(GROUNDED), make_guard(sink))

    assert _lambda_retriever_chain(GROUNDED).invoke(QUESTION, {"callbacks": [handler]}) == GROUNDED
    assert guarded.invoke(QUESTION) == GROUNDED

    for record in sink.records:
        assert sorted(record.contexts or []) == sorted(FACTS)
        assert (record.action, record.n_contexts) == ("allow", 3)


def test_documents_from_a_lambda_retriever_with_the_async_handler_and_astream() -> None:
    sink = MemorySink()
    handler = AsyncScopeGuardCallbackHandler(make_guard(sink))
    guarded = guard_runnable(_lambda_retriever_chain(GROUNDED), make_guard(sink))

    async def run() -> tuple[str, str]:
        a = await _lambda_retriever_chain(GROUNDED).ainvoke(QUESTION, {"callbacks": [handler]})
        b = "".join([c async for c in guarded.astream(QUESTION)])
        return a, b

    assert asyncio.run(run()) == (GROUNDED, GROUNDED)
    assert [r.n_contexts for r in sink.records] == [3, 3]


def test_documents_returned_as_a_tool_artifact_are_captured() -> None:
    store = make_store()

    @tool(response_format="content_and_artifact")
    def search(query: str) -> tuple[str, list[Document]]:
        """Search the documents."""
        docs = store.similarity_search(query, k=3)
        return format_docs(docs), docs

    def call_tool(q: str) -> str:  # as an agent calls it: a tool call gives the artifact
        message = search.invoke(
            {"name": "search", "args": {"query": q}, "id": "1", "type": "tool_call"}
        )
        return str(message.content)

    chain = (
        {"context": RunnableLambda(call_tool), "question": RunnablePassthrough()}
        | PROMPT
        | _model(GROUNDED)
        | StrOutputParser()
    )
    sink = MemorySink()
    chain.invoke(QUESTION, config={"callbacks": [ScopeGuardCallbackHandler(make_guard(sink))]})
    [record] = sink.records
    assert record.n_contexts == 3


INPUT_PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Context:\n{context}"), ("human", "{question}")]
)


def _prompt_vars(x: dict) -> dict:  # type: ignore[type-arg]
    items = [v for k in ("context", "docs", "documents") for v in _listed(x.get(k))]
    text = "\n\n".join(d.page_content if isinstance(d, Document) else d for d in items)
    return {"question": x["question"], "context": text}


def _listed(value: object) -> list:  # type: ignore[type-arg]
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _input_docs_chain(answer: str):  # type: ignore[no-untyped-def]
    return RunnableLambda(_prompt_vars) | INPUT_PROMPT | _model(answer) | StrOutputParser()


def test_documents_passed_in_the_input_are_captured() -> None:
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))
    docs = [Document(page_content=t) for t in FACTS]
    inputs = [
        {"question": QUESTION, "context": docs},
        {"question": QUESTION, "context": "\n\n".join(FACTS)},
        {"question": QUESTION, "context": FACTS[0], "docs": FACTS[1:]},
    ]
    for value in inputs:
        out = _input_docs_chain(GROUNDED).invoke(value, config={"callbacks": [handler]})
        assert out == GROUNDED
    guarded = guard_runnable(_input_docs_chain(GROUNDED), make_guard(sink))
    assert guarded.invoke({"question": QUESTION, "documents": docs}) == GROUNDED
    assert "".join(guarded.stream({"question": QUESTION, "documents": docs})) == GROUNDED

    assert [r.n_contexts for r in sink.records] == [3, 1, 3, 3, 3]
    assert all(r.action == "allow" for r in sink.records)


def test_without_documents_the_report_says_so_and_the_answer_is_served_with_a_warning() -> None:
    sink = MemorySink()
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | _model(GROUNDED)
    guarded = guard_runnable(chain | StrOutputParser(), make_guard(sink))

    assert guarded.invoke({"question": QUESTION}) == GROUNDED  # not replaced by the fallback

    report = guarded.last_report()
    assert report is not None
    assert report.no_context is not None
    assert "no retriever run" in report.no_context
    assert report.decision.action is Action.WARN
    assert report.decision.reasons[0].startswith("no context: no documents seen")
    assert report.outcome is Outcome.ANSWER
    [record] = sink.records
    assert (record.action, record.outcome, record.n_contexts) == ("warn", "answer", 0)


def test_the_callback_flags_a_root_without_documents_too() -> None:
    handler = ScopeGuardCallbackHandler(make_guard(MemorySink()))
    _model(FABRICATED).invoke(QUESTION, config={"callbacks": [handler]})
    report = handler.last_report()
    assert report is not None
    assert report.no_context is not None
    assert report.decision.action is Action.WARN


def test_scope_guard_assess_without_contexts_takes_the_same_path() -> None:
    guard = ScopeGuard(policy=Policy(RULES))
    report = guard.assess(Exchange(question=QUESTION, response=GROUNDED))
    assert report.no_context == "the exchange came with no context documents"
    assert report.decision.action is Action.WARN
    blank = guard.assess(Exchange(question=QUESTION, contexts=["  "], response=GROUNDED))
    assert blank.no_context is not None
    with_docs = guard.assess(Exchange(question=QUESTION, contexts=FACTS, response=GROUNDED))
    assert with_docs.no_context is None
    assert with_docs.decision.action is Action.ALLOW


def test_the_policy_can_act_on_answers_without_documents() -> None:
    exchange = Exchange(question=QUESTION, response=GROUNDED)
    assessed = ScopeGuard(policy=Policy(RULES, no_context="assess")).assess(exchange)
    assert assessed.decision.action is Action.FALLBACK  # the old behaviour: nothing supported
    strict = ScopeGuard(policy=Policy(RULES, no_context="block")).assess(exchange)
    assert strict.decision.action is Action.BLOCK
