"""PostgreSQL URLs as the risk log sees them: recognised by scheme, shown without their password.

A URL may carry a password (``postgresql://user:secret@host/db`` or ``?password=secret``). It
is never shown: reprs, log lines, error messages and CLI output use :func:`redact_url`, and the
text of any error from the driver passes through :func:`scrub`, which replaces the password
wherever it occurs (libpq repeats parts of a malformed URL in its messages). Prefer libpq's own
sources for the password (``PGPASSWORD``, ``~/.pgpass``): a URL on a command line is visible to
every user of the machine.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["POSTGRES_SCHEMES", "has_password", "is_postgres_url", "redact_url", "scrub"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_MASK = "***"
_SECRET_PARAMS = ("password", "sslpassword")


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` is a ``postgresql://`` or ``postgres://`` URL (not a path)."""
    return isinstance(target, str) and target[:13].lower().startswith(POSTGRES_SCHEMES)


def _secrets(url: str) -> list[str]:
    """The password(s) in ``url``, raw and percent-decoded (longest first)."""
    found: set[str] = set()
    rest = url.split("://", 1)[-1]
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:
        userinfo = authority.rsplit("@", 1)[0]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
    query = url.split("?", 1)[1] if "?" in url else ""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if unquote(key).lower() in _SECRET_PARAMS:
            found.add(value)
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password itself (not through ``PGPASSWORD`` or ``.pgpass``)."""
    return bool(_secrets(url))


def scrub(text: str, url: str) -> str:
    """``text`` with every password of ``url`` replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, _MASK)
    return text


def redact_url(url: str | os.PathLike[str]) -> str:
    """``url`` with its password (in the authority or the query) replaced by ``***``.

    A URL too malformed to split is shown as its scheme only.
    """
    url = str(url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = f"{userinfo.split(':', 1)[0]}:{_MASK}"
            netloc = f"{userinfo}@{host}"
        query = parts.query
        if query:
            pairs = [
                (k, _MASK if k.lower() in _SECRET_PARAMS else v)
                for k, v in parse_qsl(query, keep_blank_values=True)
            ]
            query = urlencode(pairs, safe="*/:", quote_via=quote)
        shown = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return f"{url.split('://', 1)[0]}://{_MASK}"
    return scrub(shown, url)
