"""Hostile text never stalls the grounding check: every step is linear in its input.

Each pathological input runs in a child process with a hard time limit, so a regression fails the
test instead of hanging the suite (a regex stuck in backtracking holds the GIL: a thread could not
be stopped).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

N = 200_000

# Runs and repetitions that made a regex of the request path backtrack (before the fix, each took
# from seconds to hours at this length), plus their neighbours.
_SPLIT_CASES = {
    "stars": "*" * (N - 1) + "x",  # exponential in _TRAILING
    "stars-short": "*" * 44 + "x",
    "underscores": "_" * (N - 1) + "x",
    "spaces": "a" + " " * (N - 2) + "b",
    "tabs": "a" + "\t" * (N - 2) + "b",
    "nbsp": "a" + "\u00a0" * (N - 2) + "b",
    "ideographic-spaces": "a" + "\u3000" * (N - 2) + "b",
    "dots": "." * (N - 1) + "x",  # quadratic in _BOUNDARY
    "bangs": "!" * (N - 1) + "x",
    "ellipses": "\u2026" * (N - 1) + "x",
    "but": "but " * (N // 4),  # unbounded openers at every clause start
    "however": "However, " * (N // 9),
    "source-lists": "passages 1, " * (N // 12),
    "quotes": "(" * (N - 1) + "x",
}
_CONTEXT_CASES = {
    "blank-line": " " * (N - 1) + "x",  # cubic in the key: value pattern
    "blank-then-text": " " * (N - 2) + "\nx",
    "tabs": "\t" * (N - 1) + "x",
    "json-list": "[" + "1," * (N // 2 - 1) + "1]",  # a failed key search per list item
    "table-sep": "| a |\n" + " " * N + "| -- |\n| b |",
}

# The scripts time with process_time (this process's CPU time), not the wall clock: a
# linear-time step must not fail because other jobs share the cores.
_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from detectors.grounding.claims import split_claims
    from detectors.grounding.passages import split_context
    from detectors.grounding.phrases import unsupported_spans
    from detectors.grounding.lexicon import entities, tokens
    cases = json.loads(sys.stdin.read())
    out = {}
    for name, text in cases["split"].items():
        t0 = time.process_time()
        split_claims(text)
        unsupported_spans(text, [(t.start, t.end) for t in tokens(text)])
        entities(text)
        out["split:" + name] = time.process_time() - t0
    for name, text in cases["context"].items():
        t0 = time.process_time()
        split_context(text)
        out["context:" + name] = time.process_time() - t0
    print(json.dumps(out))
    """
)


def _run(script: str, payload: dict[str, object], timeout: float) -> dict[str, float]:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the grounding check stalled: no answer within {timeout:.0f} s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_text_steps_are_linear_on_pathological_runs() -> None:
    times = _run(_SCRIPT, {"split": _SPLIT_CASES, "context": _CONTEXT_CASES}, timeout=60)
    slow = {k: round(v, 2) for k, v in times.items() if v > 5.0}
    assert not slow, slow
    assert len(times) == len(_SPLIT_CASES) + len(_CONTEXT_CASES)


_DETECTOR_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from detectors.grounding import GroundingDetector
    from scope_guard.guard import ScopeGuard
    cases = json.loads(sys.stdin.read())
    det = GroundingDetector()
    det.check("Warm up.", ["Warm up."])
    ctx = ["The museum is closed on Mondays. Adult admission is 12 euros."]
    out = {}
    for name, text in cases["response"].items():
        t0 = time.process_time()
        det.check(text, ctx)
        out["response:" + name] = time.process_time() - t0
    for name, text in cases["context"].items():
        t0 = time.process_time()
        det.check("The museum is closed on Mondays, and 12 euros is the price.", [text])
        out["context:" + name] = time.process_time() - t0
    t0 = time.process_time()
    ScopeGuard().assess({"contexts": ["doc"], "response": "*" * 44 + "x"})
    out["guard:stars"] = time.process_time() - t0
    print(json.dumps(out))
    """
)


def test_detector_and_guard_do_not_stall_on_hostile_text() -> None:
    response = {
        "stars": "*" * (N - 1) + "x",
        "spaces": "a" + " " * (N - 2) + "b",
        "dots": "." * (N - 1) + "x",
        "numbers": "1 " * (N // 2),  # each number once checked against every other (quadratic)
        "names": "A " * (N // 2),
    }
    context = {"blank-line": " " * (N - 1) + "x", "json-list": "[" + "1," * (N // 2 - 1) + "1]"}
    times = _run(_DETECTOR_SCRIPT, {"response": response, "context": context}, timeout=90)
    slow = {k: round(v, 2) for k, v in times.items() if v > 15.0}
    assert not slow, slow
    assert times["guard:stars"] < 5.0
