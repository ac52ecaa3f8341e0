"""The demo's RAG chain: a keyword retriever over the built-in documents, a prompt, and a
scripted chat model whose answers (grounded, fabricated, sycophantic) are fixed per question
and attempt. Real LCEL; only the model is scripted."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from langchain_core.callbacks import (
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnablePassthrough
from pydantic import PrivateAttr

from scope_guard.integrations.langchain._text import content_text
from scope_guard.integrations.langchain.runnable import REPORT_EVENT

__all__ = ["KeywordRetriever", "ReportCollector", "ScriptedChatModel", "demo_chain"]

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("a an the of to in on is are and or for how what who does do i my it".split())


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


class KeywordRetriever(BaseRetriever):
    """The ``k`` documents sharing the most words with the query (ties: document order)."""

    documents: list[Document]
    k: int = 2

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        words = _words(query)
        ranked = sorted(
            enumerate(self.documents), key=lambda d: (-len(words & _words(d[1].page_content)), d[0])
        )
        return [doc for _, doc in ranked[: self.k]]


class ScriptedChatModel(BaseChatModel):
    """Answers each question with its scripted answers in turn (the last one repeats).

    The question is found by matching the scripted questions against the last human message.
    """

    script: dict[str, list[str]]
    _calls: Counter[str] = PrivateAttr(default_factory=Counter)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "scripted-demo"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = content_text(messages[-1].content)
        question = next((q for q in self.script if q in text), None)
        if question is None:
            answer = "I don't know."
        else:
            with self._lock:
                n = self._calls[question]
                self._calls[question] += 1
            answers = self.script[question]
            answer = answers[min(n, len(answers) - 1)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


class ReportCollector(BaseCallbackHandler):
    """Keeps every risk report the guarded runnable dispatches, in order."""

    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == REPORT_EVENT:
            self.events.append(data)


def _format(docs: Sequence[Document]) -> str:
    return "\n\n".join(f"[{i}] {d.page_content}" for i, d in enumerate(docs, start=1))


def demo_chain(documents: Sequence[str], script: Mapping[str, Sequence[str]]) -> Runnable:
    """``{"question": ...}`` -> answer text: retrieve, prompt, scripted model, parse."""
    retriever = KeywordRetriever(documents=[Document(page_content=t) for t in documents], k=2)
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer the question using only the context. Be brief."),
            (
                "human",
                "Context:\n{context}\n\nQuestion: {question}{scope_guard_feedback}",
            ),
        ]
    ).partial(scope_guard_feedback="")
    model = ScriptedChatModel(script={q: list(a) for q, a in script.items()})
    return (
        RunnablePassthrough.assign(context=itemgetter("question") | retriever | _format)
        | prompt
        | model
        | StrOutputParser()
    )
