"""A small, thread-safe pool of PostgreSQL connections for one risk log.

Why a pool rather than one connection behind a lock (as SQLite does): a PostgreSQL commit waits
for the server's WAL flush, and the server flushes many sessions' commits together, so writers
on separate connections commit in parallel where writers queued on one connection would wait
for each other's flushes. Why not a connection per thread: a server with a thread per request
would open (and leak) a connection for every thread it ever ran. The pool opens connections on
demand, up to ``size``, and a thread that finds them all lent waits for one.

A connection comes back to the pool only when it is open, not broken, and idle (no transaction
left open by an error or an interrupt); any other is closed and replaced on demand.

Fork safety: a process forked while the pool held connections shares their sockets with the
parent. The child forgets them (keeping them referenced so that nothing closes them, which
would end the parent's sessions) and opens its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

__all__ = ["ConnectFailed", "ConnectionPool", "PoolClosed", "PoolExhausted"]

Connection = psycopg.Connection[Any]


class ConnectFailed(Exception):
    """Opening a new connection failed; ``__cause__`` is the driver's error."""


class PoolClosed(Exception):
    """The pool was closed."""


class PoolExhausted(Exception):
    """Every connection stayed lent for the whole wait."""


class ConnectionPool:
    """At most ``size`` connections made by ``connect``, lent to one thread at a time.

    Args:
        connect: Opens one configured connection (raises the driver's error on failure).
        size: Most connections open at once (>= 1).
        timeout: Seconds a thread waits for a connection when all are lent.
    """

    def __init__(self, connect: Callable[[], Connection], size: int, timeout: float) -> None:
        if size < 1:
            msg = f"pool size must be >= 1, got {size}"
            raise ValueError(msg)
        self._connect = connect
        self.size = size
        self.timeout = timeout
        self._cond = threading.Condition()
        self._idle: list[Connection] = []
        self._open = 0  # idle + lent
        self._closed = False
        self._pid = os.getpid()
        self._inherited: list[Connection] = []

    def _after_fork(self) -> None:
        """In a forked child, drop the parent's connections without closing them."""
        if os.getpid() != self._pid:
            self._inherited.extend(self._idle)
            self._idle, self._open, self._pid = [], 0, os.getpid()

    def _take(self) -> Connection:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            self._after_fork()
            while True:
                if self._closed:
                    raise PoolClosed
                if self._idle:
                    return self._idle.pop()
                if self._open < self.size:
                    self._open += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PoolExhausted
                self._cond.wait(remaining)
        try:
            return self._connect()
        except BaseException as exc:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            if isinstance(exc, psycopg.Error):
                raise ConnectFailed from exc
            raise

    def _give_back(self, conn: Connection) -> None:
        reusable = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        with self._cond:
            if os.getpid() != self._pid:
                return  # lent before a fork; the parent owns it
            if reusable and not self._closed:
                self._idle.append(conn)
                self._cond.notify()
                return
            self._open -= 1
            self._cond.notify()
        with contextlib.suppress(psycopg.Error):
            conn.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lend a connection for the block.

        Raises:
            ConnectFailed: A new connection was needed and could not be opened.
            PoolExhausted: All ``size`` connections stayed lent for ``timeout`` seconds.
            PoolClosed: :meth:`close` was called.
        """
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def close(self) -> None:
        """Close the idle connections; lent ones close when they come back."""
        with self._cond:
            self._after_fork()
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with contextlib.suppress(psycopg.Error):
                conn.close()
