"""Builders for the LangChain integration tests: a memory risk-log sink, a guard, a document
store with deterministic embeddings, a real LCEL RAG chain, and a keyed chat model."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from scope_guard.guard import ScopeGuard
from scope_guard.risklog.record import RiskRecord

FACTS = [
    "Acme Corp was founded in 1990 in Oslo by Kari Nordmann.",
    "Acme Corp employs 120 people and sells industrial valves.",
    "The Acme valve V2 has a maximum pressure of 40 bar.",
]
QUESTION = "When and where was Acme Corp founded?"
GROUNDED = "Acme Corp was founded in 1990 in Oslo by Kari Nordmann."
FABRICATED = "Acme Corp was founded in 1874 in Berlin by Johann Schmidt, with 4500 employees."


class MemorySink:
    """A thread-safe in-memory risk-log sink (``write``/``close``)."""

    def __init__(self) -> None:
        self.records: list[RiskRecord] = []
        self.closed = False
        self._lock = threading.Lock()

    def write(self, record: RiskRecord) -> None:
        with self._lock:
            self.records.append(record)

    def close(self) -> None:
        self.closed = True


def make_guard(sink: MemorySink, **kwargs: Any) -> ScopeGuard:
    """A weight-free guard (grounding heuristic as the fabrication score) logging raw text."""
    return ScopeGuard(risk_log=sink, log_text=True, **kwargs)


def make_store(texts: Sequence[str] = FACTS) -> InMemoryVectorStore:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    store.add_documents([Document(page_content=t, metadata={"i": i}) for i, t in enumerate(texts)])
    return store


def format_docs(docs: Sequence[Document]) -> str:
    return "\n\n".join(d.page_content for d in docs)


PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer using only this context:\n{context}"),
        ("human", "{question}"),
    ]
)


def rag_chain(
    model: Runnable[Any, Any],
    store: InMemoryVectorStore | None = None,
    k: int = 3,
    prompt: Any = PROMPT,
    retriever: Runnable[Any, Any] | None = None,
) -> Runnable:
    """The classic LCEL RAG chain: retriever | format docs | prompt | model | parser, with a
    ``str`` input (the question)."""
    if retriever is None:
        retriever = (store or make_store()).as_retriever(search_kwargs={"k": k})
    return (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )


def dict_rag_chain(
    model: Runnable[Any, Any], store: InMemoryVectorStore, k: int = 3, prompt: Any = PROMPT
) -> Runnable:
    """A dict-in, dict-out RAG chain built with ``RunnablePassthrough.assign``: input
    ``{"question": ...}``, output ``{"question", "context", "answer"}``."""
    retriever = store.as_retriever(search_kwargs={"k": k})
    answer = (
        RunnableLambda(lambda x: {**x, "context": format_docs(x["context"])})
        | prompt
        | model
        | StrOutputParser()
    )
    return RunnablePassthrough.assign(context=(lambda x: x["question"]) | retriever).assign(
        answer=answer
    )


def expected_contexts(store: InMemoryVectorStore, question: str, k: int = 3) -> list[str]:
    return [d.page_content for d in store.as_retriever(search_kwargs={"k": k}).invoke(question)]


class KeyedChatModel(BaseChatModel):
    """A chat model whose answer is picked by the first ``[key]`` tag found in its prompt:
    safe to share between threads (unlike the list-cycling fakes), so concurrent requests get
    their own answers. Streams word by word."""

    answers: dict[str, str]

    @property
    def _llm_type(self) -> str:
        return "keyed-fake"

    def _answer(self, messages: Sequence[BaseMessage]) -> str:
        text = "\n".join(str(m.content) for m in messages)
        match = re.search(r"\[(\w+)\]", text)
        return self.answers.get(match.group(1) if match else "", "I do not know.")

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = AIMessage(content=self._answer(messages))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in re.split(r"(\s+)", self._answer(messages)):
            if not word:
                continue
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager is not None:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk


class FailingChatModel(BaseChatModel):
    """A chat model that raises ``error`` (the host's own failure)."""

    error: Exception

    @property
    def _llm_type(self) -> str:
        return "failing-fake"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise self.error


class FailingRetriever(BaseRetriever):
    """A retriever that raises ``error``."""

    error: Exception

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise self.error


class EventSpy(BaseCallbackHandler):
    """Records custom events and the tags/metadata each model call ran with."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.model_runs: list[tuple[list[str], dict[str, Any]]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.events.append((name, data))

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.model_runs.append((list(kwargs.get("tags") or []), dict(kwargs.get("metadata") or {})))


def records_by_question(records: Sequence[RiskRecord]) -> Mapping[str, RiskRecord]:
    return {r.question or "": r for r in records}
