"""The secret behind the risk log's text hashes.

Records carry a hash of the question, prompt and response (and of each flagged claim), so that
records can be joined and deduplicated without keeping the text. A plain hash of a short text
can be confirmed by anyone who guesses the text ("Is my HIV test positive?"), so the hashes are
keyed: HMAC-SHA256 with a secret that is kept beside the log, not in it.

Where the key comes from, first match wins:

1. the ``log_key=`` argument of :class:`~scope_guard.ScopeGuard` (str or bytes, >= 16 bytes);
2. the environment variable ``SCOPE_GUARD_LOG_KEY`` (>= 16 characters);
3. the key a database log keeps itself (``stored_log_key()``: PostgreSQL's one-row table
   ``scope_guard_log_key``, shared by every host; see :mod:`scope_guard.risklog.postgres`);
4. the file ``<log>.key`` beside a SQLite or JSONL log (``risk.db`` -> ``risk.db.key``),
   created on first use with 32 random bytes and permissions 0600;
5. otherwise (a logging or custom sink, no key given) a random key for the life of the process.

What the keyed hash protects: someone who holds the log but not the key cannot confirm a
guessed text, nor compare hashes with another log or with a plain sha256. What it does not
protect: whoever holds the key can confirm guesses exactly as with a plain hash; equal texts
have equal hashes within one key, so the log shows which requests repeated a question; lengths,
claim offsets and counts are stored in clear. Records hashed with different keys do not join:
each record names its key by :attr:`LogKey.key_id` (``hash_key``). Keep the key file with the
same care as the texts; deleting it makes the stored hashes unjoinable with new ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scope_guard.errors import ArtifactError, ConfigError

__all__ = ["KEY_ENV", "KEY_SUFFIX", "LogKey", "key_path", "process_key", "resolve_log_key"]

logger = logging.getLogger(__name__)

KEY_ENV = "SCOPE_GUARD_LOG_KEY"
KEY_SUFFIX = ".key"
_MIN_KEY_BYTES = 16
_HEX_CHARS = 32  # 128 bits: collisions stay negligible over billions of records
_PROCESS_LOCK = threading.Lock()
_PROCESS_KEY: LogKey | None = None


@dataclass(frozen=True)
class LogKey:
    """A secret for :meth:`hash`, and where it came from.

    Attributes:
        secret: The HMAC key (never shown by ``repr``).
        source: ``"argument"``, ``"environment"``, ``"file:<path>"``, ``"table:<table> in <url>"``
            or ``"process"``.
    """

    secret: bytes = field(repr=False)
    source: str = "process"

    def __post_init__(self) -> None:
        if len(self.secret) < _MIN_KEY_BYTES:
            msg = f"a risk log key needs at least {_MIN_KEY_BYTES} bytes, got {len(self.secret)}"
            raise ConfigError(msg)

    @classmethod
    def coerce(cls, value: str | bytes, source: str = "argument") -> LogKey:
        """A key from a str (UTF-8) or bytes.

        Raises:
            ConfigError: Shorter than 16 bytes, or of another type.
        """
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        if not isinstance(value, bytes | bytearray):
            msg = f"a risk log key must be str or bytes, got {type(value).__name__}"
            raise ConfigError(msg)
        return cls(bytes(value), source)

    def hash(self, text: str | None) -> str | None:
        """The keyed hash of ``text`` (32 hex characters), or None for None.

        Any Python string hashes, lone surrogates included (``surrogatepass``).
        """
        if text is None:
            return None
        digest = hmac.new(self.secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:_HEX_CHARS]

    @property
    def key_id(self) -> str:
        """A short public name of the key: records with the same id join by their hashes."""
        return hmac.new(self.secret, b"scope-guard key id", hashlib.sha256).hexdigest()[:12]


def key_path(log_path: str | os.PathLike[str]) -> Path:
    """Where the key of the log at ``log_path`` lives: ``<log>.key``."""
    path = Path(log_path)
    return path.with_name(path.name + KEY_SUFFIX)


def _read_key_file(path: Path) -> LogKey:
    try:
        text = path.read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        msg = f"risk log key {path} is not readable as a hex key: {exc}"
        raise ArtifactError(msg) from exc
    if len(secret) < _MIN_KEY_BYTES:
        msg = f"risk log key {path} holds {len(secret)} bytes; at least {_MIN_KEY_BYTES} needed"
        raise ArtifactError(msg)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("risk log key %s is accessible to other users (mode %o)", path, mode & 0o777)
    return LogKey(secret, f"file:{path}")


def load_or_create_key_file(path: Path) -> LogKey:
    """Read the key at ``path``, creating it (0600, 32 random bytes) when missing.

    Creation is atomic: the key is written to a private temporary file and hard-linked into
    place, so concurrent writers of one log agree on one key and never read a half-written one.

    Raises:
        ArtifactError: The file exists but is not a key, or cannot be created.
    """
    if path.exists():
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another writer won: use its key
            os.link(tmp, path)
    except OSError as exc:
        msg = f"cannot create the risk log key {path}: {exc}"
        raise ArtifactError(msg) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return _read_key_file(path)


def process_key() -> LogKey:
    """A random key shared by every guard of this process (hashes join within the process)."""
    global _PROCESS_KEY
    with _PROCESS_LOCK:
        if _PROCESS_KEY is None:
            _PROCESS_KEY = LogKey(secrets.token_bytes(32), "process")
        return _PROCESS_KEY


def _stored_key(sink: Any) -> LogKey | None:
    """The key a database sink keeps itself, or that of the first such sink in a MultiRiskLog."""
    stored = getattr(sink, "stored_log_key", None)
    if callable(stored):
        key = stored()
        if isinstance(key, LogKey):
            return key
    for inner in getattr(sink, "sinks", ()) or ():
        found = _stored_key(inner)
        if found is not None:
            return found
    return None


def _log_path(sink: Any) -> Path | None:
    """The file of a SQLite/JSONL sink, or of the first such sink inside a MultiRiskLog."""
    path = getattr(sink, "path", None)
    if isinstance(path, Path):
        return path
    for inner in getattr(sink, "sinks", ()) or ():
        found = _log_path(inner)
        if found is not None:
            return found
    return None


def resolve_log_key(sink: Any, key: str | bytes | LogKey | None = None) -> LogKey:
    """The key a guard writing to ``sink`` hashes with (see the module docstring for the order).

    Raises:
        ConfigError: ``key`` or ``SCOPE_GUARD_LOG_KEY`` is too short.
        ArtifactError: The key file beside the log is unusable.
    """
    if isinstance(key, LogKey):
        return key
    if key is not None:
        return LogKey.coerce(key, "argument")
    env = os.environ.get(KEY_ENV)
    if env:
        if len(env.encode("utf-8", "surrogatepass")) < _MIN_KEY_BYTES:
            msg = f"{KEY_ENV} must hold at least {_MIN_KEY_BYTES} characters"
            raise ConfigError(msg)
        return LogKey.coerce(env, "environment")
    stored = _stored_key(sink)
    if stored is not None:
        return stored
    path = _log_path(sink)
    if path is not None:
        return load_or_create_key_file(key_path(path))
    logger.info(
        "risk log %r has no file to keep a key beside: text hashes use a per-process key "
        "(set %s for hashes that join across processes)",
        sink,
        KEY_ENV,
    )
    return process_key()
