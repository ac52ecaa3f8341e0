"""Rendering a checkpoint's chat template with bounded time and output.

A chat template is a Jinja program that ships with a downloaded checkpoint. transformers runs it
in Jinja's sandbox, which blocks attribute tricks but not loops: three nested ``range(100000)``
never finish. The reader renders its template once, at load, so a bound there is enough: a
trace function stops the rendering when it runs past its time, and the output is checked
against a size limit (a rendered one-turn exchange is a few hundred characters).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from scope_guard.errors import ConfigError

__all__ = ["MAX_RENDER_CHARS", "MAX_RENDER_SECONDS", "render_bounded"]

MAX_RENDER_SECONDS = 2.0
MAX_RENDER_CHARS = 1 << 20


class _RenderTimeout(BaseException):
    """Raised from the trace function; a BaseException, so no ``except Exception`` inside the
    template machinery can swallow it."""


def render_bounded(
    render: Callable[[], Any],
    *,
    seconds: float = MAX_RENDER_SECONDS,
    max_chars: int = MAX_RENDER_CHARS,
) -> str:
    """Call ``render()`` (a chat-template rendering) under a time and output-size bound.

    Raises:
        ConfigError: the template ran longer than ``seconds``, rendered more than ``max_chars``
            characters, rendered something other than a string, or failed.
    """
    deadline = time.monotonic() + seconds

    def tracer(_frame: FrameType, _event: str, _arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _RenderTimeout
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        rendered = render()
    except _RenderTimeout:
        msg = (
            f"the tokenizer's chat template did not finish rendering one exchange within "
            f"{seconds:g} s; refusing it (a template that loops would stall every load)"
        )
        raise ConfigError(msg) from None
    except Exception as exc:  # jinja raises its own types; report them as a config problem
        msg = f"the tokenizer's chat template cannot render a user/assistant exchange: {exc}"
        raise ConfigError(msg) from exc
    finally:
        sys.settrace(previous)
    if not isinstance(rendered, str):
        msg = f"the chat template rendered {type(rendered).__name__}, expected str"
        raise ConfigError(msg)
    if len(rendered) > max_chars:
        msg = (
            f"the chat template rendered {len(rendered):,} characters for one short exchange "
            f"(limit {max_chars:,}); refusing it"
        )
        raise ConfigError(msg)
    return rendered
