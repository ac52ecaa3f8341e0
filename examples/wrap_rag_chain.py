"""Wrap an existing LangChain RAG chain: first monitor it, then let the guard act.

Runs offline in seconds: a real LCEL RAG chain (in-memory vector store, prompt, chat model,
output parser) whose model is LangChain's own fake chat model, so its answers are scripted.

    python examples/wrap_rag_chain.py [--bundle DIR] [--log PATH.db]

Without ``--bundle`` the guard uses the weight-free grounding check (its uncalibrated heuristic
stands in for a calibrated fabrication detector). With a bundle from ``scope-guard calibrate``,
its calibrated detectors (and, for SAE probes, its Gemma reader) are used instead.
"""

from __future__ import annotations

import argparse
import tempfile
from operator import itemgetter
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from scope_guard.guard import ScopeGuard

DOCS = [
    "The Alder Bridge in Fenwick opened in 1931 and spans 412 metres across the Lune estuary.",
    "Fenwick's central library holds 180,000 books and opens at 9:00 on weekdays.",
    "The Fenwick marathon is run every April; the course record is 2:11:48.",
]


class BagOfWordsEmbeddings(Embeddings):
    """A tiny deterministic embedding (hashed bag of words) so retrieval is meaningful offline.
    Any LangChain ``Embeddings`` of your app works the same way."""

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in text.lower().split():
            vector[sum(map(ord, word.strip(".,;:?!"))) % 64] += 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def rag_chain(answers: list[str]):
    """Your existing chain: question dict in, answer text out."""
    store = InMemoryVectorStore.from_documents(
        [Document(page_content=d) for d in DOCS], BagOfWordsEmbeddings()
    )
    retriever = store.as_retriever(search_kwargs={"k": 1})
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "Answer only from the context."),
            ("human", "Context: {context}\n\nQuestion: {question}{scope_guard_feedback}"),
        ]
    ).partial(scope_guard_feedback="")
    model = GenericFakeChatModel(messages=iter([AIMessage(content=a) for a in answers]))
    context = itemgetter("question") | retriever | (lambda docs: docs[0].page_content)
    return RunnablePassthrough.assign(context=context) | prompt | model | StrOutputParser()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", help="a bundle from scope-guard calibrate")
    default_log = Path(tempfile.mkdtemp(prefix="sg-wrap-")) / "risk.db"
    parser.add_argument("--log", type=Path, default=default_log)
    args = parser.parse_args()
    guard = (
        ScopeGuard.from_bundle(args.bundle, risk_log=args.log)
        if args.bundle
        else ScopeGuard(risk_log=args.log)
    )
    question = {"question": "When did the Alder Bridge open and how long is it?"}

    # 1. Monitor: two lines. Scores and logs every request; never changes or breaks the chain.
    chain = rag_chain(["It opened in 1958 and is 900 metres long, designed by Ove Arup."])
    answer = chain.invoke(question, config={"callbacks": [guard.callback("monitor")]})
    print(f"monitor: served as is: {answer!r}")

    # 2. Guard: one more line. A fabricated answer is regenerated (with the flagged claims as
    #    feedback), and the fallback is served if the answers stay fabricated.
    chain = rag_chain(
        [
            "It opened in 1958 and is 900 metres long.",
            "The Alder Bridge opened in 1931 and spans 412 metres.",
        ]
    )
    guarded = guard.wrap(chain, max_attempts=2)
    print(f"guard:   served: {guarded.invoke(question)!r}")

    guard.close()
    print(f"risk log: {args.log}  (scope-guard log tail {args.log})")


if __name__ == "__main__":
    main()
