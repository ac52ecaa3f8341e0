"""Per-root-run collection of what the guard needs: question, documents, prompt, response.

A run is a *root* when this collector has not seen its parent: the outermost run the handler
is attached to (``parent_run_id is None`` for ``chain.invoke(x, {"callbacks": [h]})``, or the
chain's own run when the handler was added to a nested step or to the guarded runnable's inner
call). Every later run (chain, model, retriever or tool: every kind of run LangChain starts) is
mapped to its root through the ``parent_run_id`` chain; the other hooks (``on_retry``,
``on_text``, ``on_custom_event``...) report on a run that already exists and start none.

The documents of a root are those of every retriever run under it, of every run (a
``RunnableLambda(store.similarity_search)``, a tool's artifact) whose output is a list of
``Document``s, and those the root's own input carries under a
:data:`~scope_guard.integrations.langchain._text.CONTEXT_KEYS` key.

What a root is judged on is the answer a model generated in it: the last model call that ended.
A root in which no model call ended (a bare retriever or tool call, or a wrapper such as
``with_fallbacks`` that hands its own config on, so that its inner runnable shows up as a root
of its own) has no generated answer, and a root that ends while a model call is still in flight
(a stream the consumer abandoned) has only part of one: both are released with
``response=None``, i.e. nothing to assess.

Memory is bounded: at most ``max_runs`` roots are in flight (default 1024; the earliest started
is dropped first) and a root older than ``ttl_s`` seconds (default one hour) is dropped at the
next root's start. A root holds its child run ids, at most ``max_contexts`` document texts, and
the prompts and streamed tokens of its unfinished model calls, all released when it ends, fails
or is dropped. The run ids of dropped roots are remembered (the last ``max(4096, 16 *
max_runs)``) so that their late children are ignored rather than taken for new roots. Dropping
is logged as a warning and counted (:attr:`RunCollector.evicted`). All methods are thread-safe
(one lock, held only for dictionary updates).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.outputs import LLMResult

from scope_guard.integrations.langchain._text import (
    document_text,
    documents_texts,
    input_contexts,
    question_text,
    result_text,
    token_text,
)

__all__ = ["Capture", "RunCollector"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capture:
    """What one root run showed the guard.

    Attributes:
        root_run_id: The root run.
        question: The chain input's question ("" when none was found).
        contexts: Texts of the retrieved documents, in retrieval order (exact repeats dropped).
        prompt: The prompt of the model call that produced ``response`` (``None`` if unseen).
        response: The last model response of the run; ``None`` when no model call ended in it,
            or when the root ended with a model call still in flight (nothing to assess).
        model: The model's name when LangChain reported it (``ls_model_name``).
    """

    root_run_id: UUID
    question: str
    contexts: tuple[str, ...]
    prompt: str | None
    response: str | None
    model: str | None = None


@dataclass
class _Root:
    run_id: UUID
    started: float
    is_model: bool = False
    question: str = ""
    query: str = ""
    contexts: list[str] = field(default_factory=list)
    prompt: str | None = None
    response: str | None = None
    model: str | None = None
    runs: set[UUID] = field(default_factory=set)
    prompts: dict[UUID, tuple[str, str | None]] = field(default_factory=dict)
    tokens: dict[UUID, list[str]] = field(default_factory=dict)

    def capture(self) -> Capture:
        # a model call still in flight: the stream was abandoned, the answer is partial
        complete = not self.prompts
        return Capture(
            root_run_id=self.run_id,
            question=self.question or self.query,
            contexts=tuple(self.contexts),
            prompt=self.prompt if complete else None,
            response=self.response if complete else None,
            model=self.model,
        )


class RunCollector:
    """Collects, per root run, the pieces of an :class:`~scope_guard.types.Exchange`.

    Args:
        max_runs: Most root runs in flight at once; the oldest is dropped beyond it.
        ttl_s: Seconds after which a root that never ended is dropped (``None``: never).
        max_contexts: Most documents kept per root (later ones are ignored).
    """

    def __init__(
        self, *, max_runs: int = 1024, ttl_s: float | None = 3600.0, max_contexts: int = 256
    ) -> None:
        if max_runs < 1:
            msg = f"max_runs must be at least 1, got {max_runs}"
            raise ValueError(msg)
        self.max_runs = max_runs
        self.ttl_s = ttl_s
        self.max_contexts = max_contexts
        self.evicted = 0
        self._lock = threading.Lock()
        self._roots: OrderedDict[UUID, _Root] = OrderedDict()
        self._root_of: dict[UUID, UUID] = {}
        self._dropped: OrderedDict[UUID, None] = OrderedDict()

    def __len__(self) -> int:
        """Root runs in flight."""
        return len(self._roots)

    @property
    def tracked_runs(self) -> int:
        """Runs (roots and their children) currently mapped to a root."""
        return len(self._root_of)

    # ------------------------------------------------------------------ run starts
    def chain_start(self, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None) -> None:
        with self._lock:
            root = self._register(run_id, parent_run_id)
            if root is not None and root.run_id == run_id:
                root.question = question_text(inputs)
                self._add_contexts(root, input_contexts(inputs))

    def retriever_start(self, query: str, *, run_id: UUID, parent_run_id: UUID | None) -> None:
        with self._lock:
            root = self._register(run_id, parent_run_id)
            if root is not None and not root.query and isinstance(query, str):
                root.query = query

    def retriever_end(
        self, documents: Sequence[Any], *, run_id: UUID, parent_run_id: UUID | None
    ) -> Capture | None:
        """Keep the documents; returns the (answerless) capture when the retriever was the root
        (a bare ``retriever.invoke``), which is then released."""
        texts = [document_text(d) for d in documents]
        with self._lock:
            root = self._lookup(run_id, parent_run_id)
            if root is None:
                return None
            self._add_contexts(root, texts)
            if root.run_id == run_id:
                return self._finish(root).capture()
        return None

    def run_start(self, *, run_id: UUID, parent_run_id: UUID | None) -> None:
        """A run with nothing to collect at its start (a tool) starts: it is mapped to its
        parent's root, so that the runs it starts (a retriever inside a tool) are too."""
        with self._lock:
            self._register(run_id, parent_run_id)

    def model_start(
        self,
        prompt: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None,
        model: str | None = None,
        question: str | None = None,
    ) -> None:
        """A model call starts; ``question`` (the last human message, or the prompt) is used
        when the model call is itself the root (a bare model call has no chain input)."""
        with self._lock:
            root = self._register(run_id, parent_run_id, is_model=True)
            if root is not None:
                root.prompts[run_id] = (prompt, model)
                if root.run_id == run_id and not root.question:
                    root.question = prompt if question is None else question

    # ------------------------------------------------------------------ model output
    def model_token(self, token: Any, *, run_id: UUID) -> None:
        text = token_text(token)
        with self._lock:
            root = self._lookup(run_id, None)
            if root is not None and text:
                root.tokens.setdefault(run_id, []).append(text)

    def model_end(self, result: LLMResult, *, run_id: UUID) -> Capture | None:
        """Record a model's answer; returns the capture when the model call was the root."""
        text = result_text(result)
        with self._lock:
            root = self._lookup(run_id, None)
            if root is None:
                return None
            streamed = "".join(root.tokens.pop(run_id, []))
            if not (text or "").strip() and streamed:
                text = streamed  # a streaming model whose end event carries no text
            prompt, model = root.prompts.pop(run_id, (None, None))
            root.response = text or ""
            root.prompt = prompt
            root.model = model or root.model
            if root.run_id == run_id:
                return self._finish(root).capture()
        return None

    def model_error(self, *, run_id: UUID) -> bool:
        """Forget a failed model call; True when it was the root (the root is released)."""
        with self._lock:
            root = self._lookup(run_id, None)
            if root is None:
                return False
            root.tokens.pop(run_id, None)
            root.prompts.pop(run_id, None)
            if root.run_id == run_id:
                self._finish(root)
                return True
        return False

    # ------------------------------------------------------------------ run end
    def run_end(self, *, run_id: UUID, inputs: Any = None, outputs: Any = None) -> Capture | None:
        """A chain or tool run ends; returns the capture (and releases the root) when ``run_id``
        is a root. ``inputs``: the run's input, when LangChain gives it at the end; ``outputs``:
        its output, kept as documents when it is a list of ``Document``s (or a tool message
        whose artifact is)."""
        documents = documents_texts(outputs)
        if documents is None:
            documents = documents_texts(getattr(outputs, "artifact", None))
        with self._lock:
            found = self._lookup(run_id, None)
            if found is not None and documents:
                self._add_contexts(found, documents)
            root = self._roots.get(run_id)
            if root is None:
                return None
            if inputs is not None and root.run_id == run_id:
                if not root.question:  # streamed: the input comes at the end
                    root.question = question_text(inputs)
                self._add_contexts(root, input_contexts(inputs))
            self._finish(root)
        if root.prompts:
            logger.debug(
                "scope-guard: run %s ended with a model call in flight (an abandoned stream); "
                "released unassessed",
                run_id,
            )
        return root.capture()

    def run_error(self, *, run_id: UUID) -> bool:
        """Release a root that failed; True when ``run_id`` was a root."""
        with self._lock:
            root = self._roots.get(run_id)
            if root is None:
                return False
            self._finish(root)
            return True

    # ------------------------------------------------------------------ bookkeeping (locked)
    def _add_contexts(self, root: _Root, texts: Sequence[str]) -> None:
        for text in texts:
            if len(root.contexts) >= self.max_contexts:
                return
            if text and text not in root.contexts:
                root.contexts.append(text)

    def _lookup(self, run_id: UUID, parent_run_id: UUID | None) -> _Root | None:
        root_id = self._root_of.get(run_id)
        if root_id is None and parent_run_id is not None:
            root_id = self._root_of.get(parent_run_id)
        return self._roots.get(root_id) if root_id is not None else None

    def _register(
        self, run_id: UUID, parent_run_id: UUID | None, *, is_model: bool = False
    ) -> _Root | None:
        if run_id in self._dropped or (
            parent_run_id is not None and parent_run_id in self._dropped
        ):
            self._remember_dropped(run_id)
            return None
        root = self._lookup(run_id, parent_run_id)
        if root is None:  # parent unseen: a new root
            self._evict(time.monotonic())
            root = _Root(run_id=run_id, started=time.monotonic(), is_model=is_model)
            self._roots[run_id] = root
        root.runs.add(run_id)
        self._root_of[run_id] = root.run_id
        return root

    def _evict(self, now: float) -> None:
        while self._roots:
            oldest = next(iter(self._roots.values()))
            expired = self.ttl_s is not None and now - oldest.started > self.ttl_s
            if len(self._roots) < self.max_runs and not expired:
                return
            self._finish(oldest)
            for run in oldest.runs:
                self._remember_dropped(run)
            self.evicted += 1
            logger.warning(
                "scope-guard dropped run %s: it never ended (cap %d runs, ttl %s s)",
                oldest.run_id,
                self.max_runs,
                self.ttl_s,
            )

    def _remember_dropped(self, run_id: UUID) -> None:
        self._dropped[run_id] = None
        while len(self._dropped) > max(4096, 16 * self.max_runs):
            self._dropped.popitem(last=False)

    def _finish(self, root: _Root) -> _Root:
        self._roots.pop(root.run_id, None)
        for run in root.runs:
            self._root_of.pop(run, None)
        return root
