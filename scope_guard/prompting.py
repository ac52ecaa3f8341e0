"""The default RAG prompt the reader reads when the generator's own prompt is not used.

Calibration data rarely carries the exact prompt its responses were generated from, so detectors
are fitted on this rendering of (question, contexts); at runtime the guard renders the same way
by default, so the reader sees the same kind of text it was calibrated on.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["render_prompt"]


def render_prompt(question: str, contexts: Sequence[str]) -> str:
    r"""The default RAG prompt, for examples that carry no ``prompt`` of their own.

    Without contexts it is the question as is. With contexts: ``"Answer using only the context
    below.\n\nContext:\n[1] <ctx 1>\n\n[2] <ctx 2>\n\nQuestion: <question>"``, the question
    block left out when ``question`` is empty. The question comes last so that prompt truncation,
    which cuts from the start, keeps it. Deterministic: the output depends on the inputs only.
    """
    if not contexts:
        return question
    numbered = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(contexts, start=1))
    prompt = f"Answer using only the context below.\n\nContext:\n{numbered}"
    return f"{prompt}\n\nQuestion: {question}" if question else prompt
