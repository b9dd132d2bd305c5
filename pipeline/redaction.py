"""Credentials out of URLs before a URL is shown: in the CLI's output, errors, reprs and logs.

Pure string functions, used in every process. What counts as a credential:

- the password of the userinfo (``redis://user:PASSWORD@host``), and a userinfo that is a bare
  token (``redis://TOKEN@host``);
- the value of any query parameter whose name suggests a secret (``?password=``, ``?token=``,
  ``?ssl_keyfile_password=``, ``?api_key=`` …);
- a fragment: no Redis URL has one on purpose, so a ``#`` usually cut a password in two.

A URL that cannot be split into those parts for certain (a ``#``, ``/`` or ``?`` typed into a
password unencoded, a port that is not a number) is never echoed: it is called malformed, naming
its scheme, and its host only when the host can be told apart from the rest safely.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, unquote, unquote_plus, urlsplit

MASK = "***"
# Lower-cased pieces of query parameter names that carry secrets.
_SECRET_NAME_PARTS = ("pass", "pwd", "secret", "token", "key", "auth", "cred", "sig")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_HOST_AND_PORT = re.compile(r"(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?\Z")
# Where a host ends in the text after the userinfo (also the marks this module adds).
_AFTER_HOST = re.compile(r"[/?#\s\u2026]")


def redact(url: str) -> str:
    """``url`` with every credential replaced by ``***``, safe for logs, errors and reprs."""
    parts = _unambiguous_parts(url)
    if parts is None:
        return _malformed(url)
    redacted = f"{parts.scheme}://{_redacted_netloc(parts.netloc)}{parts.path}"
    if parts.query:
        redacted += f"?{_redacted_query(parts.query)}"
    if parts.fragment:
        redacted += f"#{MASK}"
    return redacted


def redact_location(location: str) -> str:
    """A local path as it is; a URL (say, an output folder on a server) redacted."""
    return redact(location) if "://" in location else location


def redact_text(text: str, url: str) -> str:
    """``text`` (say, a library's error message about ``url``) with ``url`` redacted and any
    credential of ``url`` it quotes replaced by ``***``."""
    text = text.replace(url, redact(url))
    for secret in sorted(_secrets_in(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def names_a_secret(parameter: str) -> bool:
    """Whether a query parameter of this name holds a credential."""
    lowered = parameter.lower()
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def _unambiguous_parts(url: str) -> SplitResult | None:
    """The URL's parts, or None when where the userinfo ends cannot be known for sure."""
    scheme, separator, _ = url.partition("://")
    if not separator or not _SCHEME.match(scheme):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number: often half a password
    except ValueError:
        return None
    if "@" in parts.path or "@" in parts.fragment:
        return None  # a '/' or '#' inside the password cut the userinfo short
    host = parts.netloc.rpartition("@")[2]
    if "@" in parts.query and (not host or host.endswith(":")):
        return None  # a '?' right at the start of the password
    return parts


def _redacted_netloc(netloc: str) -> str:
    userinfo, at, host = netloc.rpartition("@")
    if not at:
        return netloc
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return f"{MASK}@{host}"  # a bare token
    return f"{user}:{MASK}@{host}"


def _redacted_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and names_a_secret(unquote_plus(name)):
            value = MASK
        pairs.append(f"{name}{equals}{value}")
    return "&".join(pairs)


def _malformed(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator or not _SCHEME.match(scheme):
        return "<a malformed URL, not shown>"
    host = _safe_host(rest)
    if host is None:
        return f"{scheme}://\u2026 (a malformed URL, not shown)"
    return f"{scheme}://{host}\u2026 (a malformed URL, not shown in full)"


def _safe_host(rest: str) -> str | None:
    """The host (and port) of a malformed URL's text after ``scheme://``, if it surely is one:
    what follows the last '@', unless that '@' may sit in a query, where what follows it would
    be the tail of a value."""
    userinfo, _, after = rest.rpartition("@")
    if "?" in userinfo or "=" in userinfo:
        return None
    candidate = _AFTER_HOST.split(after, maxsplit=1)[0]
    return candidate if _HOST_AND_PORT.match(candidate) else None


def _secrets_in(url: str) -> set[str]:
    """Every credential value of ``url``, as written and decoded. For a malformed URL, every
    piece of it but the scheme and the host: which piece is secret cannot be told."""
    parts = _unambiguous_parts(url)
    if parts is None:
        rest = url.partition("://")[2] or url
        host = _safe_host(rest)
        return {piece for piece in re.split(r"[@:/?#&=]", rest) if len(piece) > 2} - {host}
    found: set[str] = set()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found.add(password if colon else user)
    for pair in parts.query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and names_a_secret(unquote_plus(name)):
            found.update((value, unquote_plus(value)))
    found.add(parts.fragment)
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if secret}
