"""Text out of LangChain objects: chain inputs, messages, model results, chain outputs.

Everything here is total: any value gives a string (possibly empty) or ``None``, never an
exception, because it runs inside callbacks that must not break the host chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.prompt_values import PromptValue

__all__ = [
    "ANSWER_KEYS",
    "CONTEXT_KEYS",
    "NO_CONTEXT_REASON",
    "QUESTION_KEYS",
    "content_text",
    "document_text",
    "documents_texts",
    "input_contexts",
    "messages_text",
    "output_text",
    "question_text",
    "result_text",
    "token_text",
]

QUESTION_KEYS = ("question", "input", "query")
"""Keys of a dict chain input that hold the user's question, in order of preference."""

ANSWER_KEYS = ("answer", "output", "result", "text", "response", "content")
"""Keys of a dict chain output that hold the answer, in order of preference."""

CONTEXT_KEYS = ("context", "contexts", "documents", "docs", "source_documents")
"""Keys of a root chain input that hold the documents (texts or ``Document``s) themselves."""

NO_CONTEXT_REASON = (
    "no documents seen: no retriever run, no run returned a list of Documents, and the chain "
    f"input had none under {'/'.join(CONTEXT_KEYS)}"
)
"""Why a LangChain exchange has no contexts (said in the report's ``no_context`` flag)."""


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text blocks of a list of blocks.

    Non-text blocks (images, tool calls, reasoning) are left out.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type", "text") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return ""


def messages_text(messages: Sequence[BaseMessage]) -> str:
    """The prompt a chat model saw, as the reader's user turn: each message's text, in order,
    separated by blank lines (no role prefixes: the reader applies its own chat template)."""
    texts = [content_text(m.content) for m in messages]
    return "\n\n".join(t for t in texts if t.strip())


def question_text(inputs: Any) -> str:
    """The user's question in a chain input: the input itself when it is text, the first
    :data:`QUESTION_KEYS` entry of a dict, or the last human message of a message list."""
    if isinstance(inputs, str):
        return inputs
    if isinstance(inputs, Mapping):
        for key in QUESTION_KEYS:
            value = inputs.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, BaseMessage):
                return content_text(value.content)
        return ""
    if isinstance(inputs, BaseMessage):
        return content_text(inputs.content)
    if isinstance(inputs, PromptValue):
        return question_text(inputs.to_messages())
    if isinstance(inputs, Sequence):
        humans = [m for m in inputs if isinstance(m, BaseMessage) and m.type == "human"]
        if humans:
            return content_text(humans[-1].content)
    return ""


def document_text(document: Any) -> str:
    """A retrieved document's text (a ``Document``'s ``page_content``, or a plain string)."""
    if isinstance(document, Document):
        return document.page_content
    return document if isinstance(document, str) else ""


def documents_texts(value: Any) -> list[str] | None:
    """The texts of ``value`` when it is a ``Document`` or a non-empty list of them (what a
    retriever, a ``RunnableLambda(store.similarity_search)`` or a tool artifact returns);
    ``None`` for anything else."""
    if isinstance(value, Document):
        return [value.page_content]
    if isinstance(value, list | tuple) and value and all(isinstance(d, Document) for d in value):
        return [d.page_content for d in value]
    return None


def input_contexts(inputs: Any) -> list[str]:
    """The documents a dict chain input carries itself, under :data:`CONTEXT_KEYS`: a text, a
    ``Document``, or a list of either (empty when there are none)."""
    if not isinstance(inputs, Mapping):
        return []
    texts: list[str] = []
    for key in CONTEXT_KEYS:
        value = inputs.get(key)
        items = value if isinstance(value, list | tuple) else [value]
        texts.extend(t for t in (document_text(v) for v in items) if t.strip())
    return texts


def result_text(result: LLMResult) -> str | None:
    """The answer in a model's result: the first generation of the first prompt that has one.

    A run normally has one prompt; asking for several generations (``n > 1``) gives several
    candidates of which the first is the one a chain passes on, so it is the one assessed.
    ``None`` when the result holds no generation at all.
    """
    for candidates in result.generations:
        if not candidates:
            continue
        first = candidates[0]
        if isinstance(first, ChatGeneration):
            return content_text(first.message.content) or first.text
        return first.text if isinstance(first.text, str) else ""
    return None


def token_text(token: Any) -> str:
    """A streamed token: a string, or (newer chat models) a list of content blocks."""
    return content_text(token)


def output_text(outputs: Any) -> str | None:
    """The answer in a chain's output, for chains whose model emits no callbacks: a string, a
    message, or the first :data:`ANSWER_KEYS` entry of a dict. ``None`` when there is none."""
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, BaseMessage):
        return content_text(outputs.content)
    if isinstance(outputs, Mapping):
        for key in ANSWER_KEYS:
            value = outputs.get(key)
            if isinstance(value, str | BaseMessage):
                return output_text(value)
    return None
