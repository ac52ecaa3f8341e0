"""Rendering a checkpoint's chat template with bounded time, memory and output.

A chat template is a Jinja program that ships with a downloaded checkpoint. transformers runs it
in Jinja's sandbox, which blocks attribute tricks but not cost: three nested ``range(100000)``
never finish, ``10 ** 10000000`` runs for seconds inside one C call, ``'x' * 10 ** 10`` asks for
10 GB. So the reader renders its template in a child process under an OS CPU-time and
address-space limit, with a wall-clock timeout, and checks the output's size. It renders once
per distinct template (cached for the process): a reader renders at load, never per request.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scope_guard.errors import ConfigError

__all__ = [
    "MAX_RENDER_BYTES",
    "MAX_RENDER_CHARS",
    "MAX_RENDER_CPU_SECONDS",
    "render_chat_template",
]

MAX_RENDER_CPU_SECONDS = 5
MAX_RENDER_BYTES = 1 << 30  # address space of the child, interpreter and transformers included
MAX_RENDER_CHARS = 1 << 20
# Wall-clock allowance: the child's start (importing transformers' renderer takes ~1 s, more on
# a busy machine) plus its CPU budget.
_WALL_SECONDS = 60.0
_CHILD = Path(__file__).with_name("_template_child.py")


def render_chat_template(
    template: str,
    messages: Sequence[Mapping[str, str]],
    special_tokens: Mapping[str, Any],
    *,
    cpu_seconds: int = MAX_RENDER_CPU_SECONDS,
    max_chars: int = MAX_RENDER_CHARS,
) -> str:
    """Render ``template`` for ``messages`` as ``tokenizer.apply_chat_template`` would
    (``tokenize=False``, special tokens as variables), under bounds.

    Raises:
        ConfigError: the template failed, ran out of CPU time or memory, timed out, rendered
            something other than a string, or more than ``max_chars`` characters.
    """
    tokens = {str(k): v for k, v in special_tokens.items() if isinstance(v, str | list)}
    key = json.dumps(
        {"t": template, "m": list(messages), "s": tokens, "c": cpu_seconds, "x": max_chars},
        sort_keys=True,
    )
    return _render_cached(key)


@functools.lru_cache(maxsize=64)
def _render_cached(key: str) -> str:
    spec = json.loads(key)
    request = {
        "template": spec["t"],
        "messages": spec["m"],
        "special_tokens": spec["s"],
        "cpu_seconds": spec["c"],
        "memory_bytes": MAX_RENDER_BYTES,
        "max_chars": spec["x"],
    }
    try:
        # Run as a plain script with -P (no script folder on sys.path): the child imports neither
        # scope-guard nor torch, only transformers' renderer.
        proc = subprocess.run(
            [sys.executable, "-P", str(_CHILD)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=_WALL_SECONDS + spec["c"],
            check=False,
        )
    except subprocess.TimeoutExpired:
        msg = "the tokenizer's chat template did not finish rendering one exchange; refusing it"
        raise ConfigError(msg) from None
    try:
        answer = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # Killed by its CPU limit (SIGXCPU) or out of memory before it could answer.
        msg = (
            f"the tokenizer's chat template did not finish rendering one exchange within "
            f"{spec['c']} s of CPU and {MAX_RENDER_BYTES >> 20} MiB; refusing it "
            f"(exit status {proc.returncode})"
        )
        raise ConfigError(msg)
    if "error" in answer:
        msg = (
            "the tokenizer's chat template cannot render a user/assistant exchange: "
            f"{answer['error']}"
        )
        raise ConfigError(msg)
    return str(answer["text"])
