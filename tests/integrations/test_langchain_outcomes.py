"""What was served is recorded: in the report, in the risk log and its summary, and for callers
of string-output chains (``last_report``/``report_for``, safe under concurrency)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from langchain_core.language_models import FakeListChatModel
from lc_builders import (
    FABRICATED,
    GROUNDED,
    QUESTION,
    KeyedChatModel,
    MemorySink,
    dict_rag_chain,
    make_guard,
    make_store,
    rag_chain,
)

from scope_guard.errors import ScopeViolation
from scope_guard.integrations.langchain import (
    DEFAULT_FALLBACK,
    ScopeGuardCallbackHandler,
    guard_runnable,
)
from scope_guard.policy import Policy, RiskThresholds
from scope_guard.risklog.summary import summarize
from scope_guard.types import Exchange, Outcome

BLOCK_POLICY = Policy({"fabrication": RiskThresholds(regenerate=0.6, fallback=0.7, block=0.8)})


def _model(*answers: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(answers))


def test_five_fallbacks_are_counted_as_served_fallbacks_in_the_log_summary() -> None:
    sink = MemorySink()
    guarded = guard_runnable(rag_chain(_model(FABRICATED)), make_guard(sink), max_attempts=2)

    for _ in range(5):
        assert guarded.invoke(QUESTION) == DEFAULT_FALLBACK

    assert [(r.attempt, r.action, r.outcome) for r in sink.records] == [
        (1, "regenerate", "retry"),
        (2, "regenerate", "fallback"),
    ] * 5
    summary = summarize(sink.records)
    assert summary.outcomes["fallback"] == 5
    assert summary.outcomes["retry"] == 5
    assert summary.outcomes["answer"] == summary.outcomes["unknown"] == 0
    assert summary.to_json()["outcomes"]["fallback"] == 5


def test_log_summary_cli_prints_the_outcomes(tmp_path, capsys) -> None:
    from scope_guard.cli.main import main
    from scope_guard.guard import ScopeGuard

    path = tmp_path / "risk.jsonl"
    guard = ScopeGuard(risk_log=path)
    guarded = guard_runnable(rag_chain(_model(FABRICATED)), guard, max_attempts=2)
    for _ in range(5):
        guarded.invoke(QUESTION)
    guard.close()

    main(["log", "summary", str(path)])
    out = capsys.readouterr().out
    section = out[out.index("outcomes") :]
    rows = [line.split()[:2] for line in section.splitlines() if line.startswith("fallback")]
    assert rows[0] == ["fallback", "5"]


def test_the_attached_report_says_what_was_served_and_what_was_recommended() -> None:
    sink = MemorySink()
    chain = dict_rag_chain(_model(FABRICATED), make_store())
    out = guard_runnable(chain, make_guard(sink), max_attempts=2).invoke({"question": QUESTION})

    report = out["scope_guard"]
    assert out["answer"] == DEFAULT_FALLBACK
    assert report["decision"]["action"] == "regenerate"  # what the policy recommended
    assert (report["outcome"], report["attempt"]) == ("fallback", 2)  # what was served


def test_answers_and_regenerated_answers_are_told_apart() -> None:
    sink = MemorySink()
    guard = make_guard(sink)
    guard_runnable(rag_chain(_model(GROUNDED)), guard).invoke(QUESTION)
    guard_runnable(rag_chain(_model(FABRICATED, GROUNDED)), guard).invoke(QUESTION)

    assert [r.outcome for r in sink.records] == ["answer", "retry", "regenerated"]


def test_a_block_is_recorded_as_blocked() -> None:
    sink = MemorySink()
    guarded = guard_runnable(rag_chain(_model(FABRICATED)), make_guard(sink, policy=BLOCK_POLICY))
    with pytest.raises(ScopeViolation) as caught:
        guarded.invoke(QUESTION)
    assert caught.value.report is not None
    assert caught.value.report.outcome is Outcome.BLOCKED
    assert [r.outcome for r in sink.records] == ["blocked"]
    assert guarded.last_report() is not None
    assert guarded.last_report().outcome is Outcome.BLOCKED  # type: ignore[union-attr]


def test_monitor_records_say_the_answer_was_served_gate_records_say_raised() -> None:
    sink = MemorySink()
    guard = make_guard(sink)
    monitor = ScopeGuardCallbackHandler(guard)
    assert rag_chain(_model(FABRICATED)).invoke(QUESTION, config={"callbacks": [monitor]}) == (
        FABRICATED
    )
    gate = ScopeGuardCallbackHandler(guard, mode="gate")
    with pytest.raises(ScopeViolation):
        rag_chain(_model(FABRICATED)).invoke(QUESTION, config={"callbacks": [gate]})

    assert [(r.action, r.outcome) for r in sink.records] == [
        ("regenerate", "answer"),  # recommended, but nothing was regenerated
        ("regenerate", "raised"),
    ]
    assert monitor.last_report() is not None
    assert monitor.last_report().outcome is Outcome.ANSWER  # type: ignore[union-attr]


def test_a_handler_report_is_found_by_the_callers_run_id() -> None:
    handler = ScopeGuardCallbackHandler(make_guard(MemorySink()))
    run_id = uuid.uuid4()
    rag_chain(_model(GROUNDED)).invoke(QUESTION, config={"callbacks": [handler], "run_id": run_id})
    report = handler.last_report(run_id)
    assert report is not None
    assert report.outcome is Outcome.ANSWER


def test_direct_assess_has_no_outcome_unless_the_caller_says() -> None:
    sink = MemorySink()
    guard = make_guard(sink)
    exchange = Exchange(question=QUESTION, contexts=[GROUNDED], response=GROUNDED)
    assert guard.assess(exchange).outcome is None
    assert guard.assess(exchange, outcome=lambda r: Outcome.ANSWER).outcome is Outcome.ANSWER
    assert [r.outcome for r in sink.records] == [None, "answer"]


# ------------------------------------------------------------------ string outputs: last_report
def test_a_string_outputs_caller_reads_the_outcome() -> None:
    guarded = guard_runnable(rag_chain(_model(FABRICATED)), make_guard(MemorySink()))
    assert guarded.last_report() is None
    run_id = uuid.uuid4()
    assert guarded.invoke(QUESTION, config={"run_id": run_id}) == DEFAULT_FALLBACK

    report = guarded.last_report()
    assert report is not None
    assert (report.outcome, report.attempt, report.request_id) == (
        Outcome.FALLBACK,
        2,
        str(run_id),
    )
    assert guarded.report_for(run_id) == report
    assert guarded.report_for(uuid.uuid4()) is None


def test_last_report_after_a_stream_and_an_astream() -> None:
    guarded = guard_runnable(rag_chain(_model(FABRICATED, GROUNDED)), make_guard(MemorySink()))
    assert "".join(guarded.stream(QUESTION)) == GROUNDED
    assert guarded.last_report().outcome is Outcome.REGENERATED  # type: ignore[union-attr]

    async def consume() -> tuple[str, Outcome | None]:
        text = "".join([c async for c in guarded.astream(QUESTION)])
        last = guarded.last_report()
        return text, last.outcome if last else None

    assert asyncio.run(consume()) == (GROUNDED, Outcome.REGENERATED)


def _keyed_guarded(sink: MemorySink):  # type: ignore[no-untyped-def]
    answers = {f"q{i}": GROUNDED if i % 2 else FABRICATED for i in range(12)}
    model = KeyedChatModel(answers=answers)
    return guard_runnable(rag_chain(model), make_guard(sink), max_attempts=1)


def _expected(i: int) -> Outcome:
    return Outcome.ANSWER if i % 2 else Outcome.FALLBACK


def test_last_report_is_per_thread_under_concurrency() -> None:
    guarded = _keyed_guarded(MemorySink())
    barrier = threading.Barrier(6)
    seen: dict[int, tuple[str, Outcome | None, str]] = {}

    def worker(i: int) -> None:
        barrier.wait()
        question = f"{QUESTION} [q{i}]"
        guarded.invoke(question)
        report = guarded.last_report()
        assert report is not None
        seen[i] = (question, report.outcome, report.request_id)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert {i: o for i, (_, o, _) in seen.items()} == {i: _expected(i) for i in range(6)}
    assert len({rid for _, _, rid in seen.values()}) == 6


def test_last_report_is_per_task_under_asyncio_concurrency() -> None:
    guarded = _keyed_guarded(MemorySink())

    async def one(i: int) -> Outcome | None:
        await guarded.ainvoke(f"{QUESTION} [q{i}]")
        await asyncio.sleep(0)  # let the other tasks finish in between
        report = guarded.last_report()
        return report.outcome if report else None

    async def main() -> list[Outcome | None]:
        return await asyncio.gather(*(one(i) for i in range(8)))

    assert asyncio.run(main()) == [_expected(i) for i in range(8)]


def test_batch_reports_by_run_id() -> None:
    guarded = _keyed_guarded(MemorySink())
    run_ids = [uuid.uuid4() for _ in range(4)]
    outputs = guarded.batch(
        [f"{QUESTION} [q{i}]" for i in range(4)], config=[{"run_id": r} for r in run_ids]
    )
    assert outputs[0] == DEFAULT_FALLBACK
    assert outputs[1] == GROUNDED
    assert [guarded.report_for(r).outcome for r in run_ids] == [  # type: ignore[union-attr]
        _expected(i) for i in range(4)
    ]
