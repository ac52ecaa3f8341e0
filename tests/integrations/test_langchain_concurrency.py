"""One handler, many concurrent runs: exactly one record per request, no cross-talk."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from lc_builders import (
    KeyedChatModel,
    MemorySink,
    expected_contexts,
    make_guard,
    make_store,
    rag_chain,
)

from scope_guard.integrations.langchain import (
    AsyncScopeGuardCallbackHandler,
    ScopeGuardCallbackHandler,
    guard_runnable,
)

THREADS, PER_THREAD, K = 8, 50, 2


def _requests(n_groups: int, per_group: int) -> dict[str, tuple[str, str, str]]:
    """Per request key: (question, its own document, its answer), all distinct."""
    out = {}
    for g in range(n_groups):
        for i in range(per_group):
            key = f"r{g}x{i}"
            amount = 1000 * g + i + 7
            out[key] = (
                f"[{key}] What is the budget of project P{g}-{i}?",
                f"Project P{g}-{i} has a budget of {amount} dollars and is led by team {key}.",
                f"The budget of project P{g}-{i} is {amount} dollars.",
            )
    return out


def _check(records, requests, store) -> None:  # type: ignore[no-untyped-def]
    assert len(records) == len(requests)
    by_question = {r.question: r for r in records}
    assert len(by_question) == len(requests)
    assert len({r.root_run_id for r in records}) == len(requests)
    for question, _, answer in requests.values():
        record = by_question[question]
        assert record.response == answer
        assert record.contexts == expected_contexts(store, question, K)
        assert record.prompt is not None
        assert record.prompt.endswith(question)


def test_threads_through_one_handler_give_one_record_per_request_without_cross_talk() -> None:
    requests = _requests(THREADS, PER_THREAD)
    store = make_store([doc for _, doc, _ in requests.values()])
    answers = {key: answer for key, (_, _, answer) in requests.items()}
    chain = rag_chain(KeyedChatModel(answers=answers), store, k=K)
    sink = MemorySink()
    handler = ScopeGuardCallbackHandler(make_guard(sink))

    def worker(thread: int) -> list[str]:
        return [
            chain.invoke(requests[f"r{thread}x{i}"][0], config={"callbacks": [handler]})
            for i in range(PER_THREAD)
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        outputs = list(pool.map(worker, range(THREADS)))

    assert [o for out in outputs for o in out] == [a for _, _, a in requests.values()]
    _check(sink.records, requests, store)
    assert handler.stats.assessed == THREADS * PER_THREAD
    assert handler.stats.handler_errors == 0
    assert len(handler.collector) == 0
    assert handler.collector.tracked_runs == 0


def test_async_gather_through_one_handler() -> None:
    requests = _requests(4, 50)
    store = make_store([doc for _, doc, _ in requests.values()])
    answers = {key: answer for key, (_, _, answer) in requests.items()}
    chain = rag_chain(KeyedChatModel(answers=answers), store, k=K)
    sink = MemorySink()
    handler = AsyncScopeGuardCallbackHandler(make_guard(sink))

    async def run_all() -> list[str]:
        return await asyncio.gather(
            *(chain.ainvoke(q, config={"callbacks": [handler]}) for q, _, _ in requests.values())
        )

    assert asyncio.run(run_all()) == [a for _, _, a in requests.values()]
    _check(sink.records, requests, store)
    assert len(handler.collector) == 0


def test_guarded_runnable_batch_keeps_requests_apart() -> None:
    requests = _requests(2, 20)
    store = make_store([doc for _, doc, _ in requests.values()])
    answers = {key: answer for key, (_, _, answer) in requests.items()}
    sink = MemorySink()
    guarded = guard_runnable(
        rag_chain(KeyedChatModel(answers=answers), store, k=K), make_guard(sink)
    )
    questions = [q for q, _, _ in requests.values()]

    outputs = guarded.batch(questions, config={"max_concurrency": 8})

    assert outputs == [a for _, _, a in requests.values()]
    _check(sink.records, requests, store)
    assert len({r.request_id for r in sink.records}) == len(requests)
