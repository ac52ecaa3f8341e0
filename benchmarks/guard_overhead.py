"""Overhead of the LangChain integration (callback handler and guarded runnable).

Measures, per request, on a real LCEL RAG chain (in-memory vector store, prompt, LangChain's
fake chat model, output parser):

- ``chain``: the chain alone;
- ``callback``: the chain with the monitor callback handler and a guard that answers at once
  (what the integration itself costs: collecting the run, building the exchange, deciding);
- ``runnable``: the guarded runnable with the same instant guard;
- ``callback+grounding`` / ``runnable+grounding``: the same with the real weight-free guard
  (grounding check + policy + SQLite risk log), for scale: the reader's forward pass is not
  included (see the reader benchmark for it).

Overhead = median(with) - median(chain). Run from the project root:

    .venv/bin/python -m benchmarks.guard_overhead --requests 300 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from itertools import cycle
from operator import itemgetter
from pathlib import Path
from typing import Any

import torch
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from scope_guard.guard import ScopeGuard
from scope_guard.integrations.langchain import ScopeGuardCallbackHandler, guard_runnable
from scope_guard.types import Action, Decision, Exchange, RiskReport

DOCS = [
    f"Station {i} of the Lune line opened in {1900 + i} and serves {i * 7} trains a day."
    for i in range(50)
]
ANSWER = "Station 12 opened in 1912 and serves 84 trains a day."


class _Embed(Embeddings):
    def _one(self, text: str) -> list[float]:
        v = [0.0] * 32
        for w in text.lower().split():
            v[hash(w) % 32] += 1.0
        return v

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


class InstantGuard:
    """Answers at once with an allow report: isolates the integration's own cost."""

    failure_mode = "open"

    def assess(self, exchange: Exchange | dict[str, Any]) -> RiskReport:
        ex = exchange if isinstance(exchange, Exchange) else Exchange.model_validate(exchange)
        return RiskReport(
            request_id=ex.request_id,
            attempt=ex.attempt,
            created="",
            decision=Decision(action=Action.ALLOW),
        )

    async def aassess(self, exchange: Exchange | dict[str, Any]) -> RiskReport:
        return self.assess(exchange)


def _chain() -> Any:
    store = InMemoryVectorStore.from_documents([Document(page_content=d) for d in DOCS], _Embed())
    prompt = ChatPromptTemplate.from_messages(
        [
            ("human", "Context: {context}\n\nQuestion: {question}{scope_guard_feedback}"),
        ]
    ).partial(scope_guard_feedback="")
    model = GenericFakeChatModel(messages=cycle([AIMessage(content=ANSWER)]))
    retriever = store.as_retriever(search_kwargs={"k": 2})
    ctx = itemgetter("question") | retriever | (lambda d: "\n".join(x.page_content for x in d))
    return RunnablePassthrough.assign(context=ctx) | prompt | model | StrOutputParser()


def _median_ms(fn: Any, n: int) -> float:
    for _ in range(max(5, n // 20)):  # warm-up
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run(n: int) -> dict[str, Any]:
    torch.set_num_threads(2)
    question = {"question": "When did station 12 open?"}
    chain = _chain()
    instant = InstantGuard()
    log = Path(tempfile.mkdtemp()) / "risk.db"
    real = ScopeGuard(risk_log=log)
    handlers = {
        "instant": ScopeGuardCallbackHandler(instant),
        "grounding": ScopeGuardCallbackHandler(real),
    }
    cases = {
        "chain": lambda: chain.invoke(question),
        "callback": lambda: chain.invoke(question, config={"callbacks": [handlers["instant"]]}),
        "runnable": lambda: guard_runnable(chain, instant).invoke(question),
        "callback+grounding": lambda: chain.invoke(
            question, config={"callbacks": [handlers["grounding"]]}
        ),
        "runnable+grounding": lambda: guard_runnable(chain, real).invoke(question),
    }
    medians = {name: _median_ms(fn, n) for name, fn in cases.items()}
    real.close()
    base = medians["chain"]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "requests": n,
        "median_ms": medians,
        "overhead_ms": {k: v - base for k, v in medians.items() if k != "chain"},
        # Proof that every request was assessed (warm-up runs included).
        "handler_stats": {k: h.stats.as_dict() for k, h in handlers.items()},
        "guard_assessed": real.stats.assessed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.requests)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, ms in result["median_ms"].items():
        extra = f"  (+{result['overhead_ms'][name]:.2f} ms)" if name != "chain" else ""
        print(f"{name:20s} {ms:7.2f} ms{extra}")


if __name__ == "__main__":
    main()
