"""Fetching one ``http(s)://`` source: streamed, bounded in time, size and redirects, transient
errors retried. Runs on the workers (through ``pipeline.worker.fetched``); knows no Dask.

Only the standard library (``http.client``): the worker reads the body as it arrives, so it can
count bytes against the limit, feed them to the digest, and stop the moment the limit is passed,
which also keeps a 10 GB answer from ever being read past ``max_file_bytes``. Every way it can
fail is a ``Failure`` with a stable code (``pipeline.errors``), never an exception out of here.

Proxies (``$http_proxy``) are not used: thumbflow fetches directly from each worker.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, urljoin, urlsplit

from pipeline._version import __version__
from pipeline.config import FetchSettings
from pipeline.errors import Failure, FailureCode, ImageError

BLOCK_BYTES = 1 << 16
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "User-Agent": f"thumbflow/{__version__}",
    "Accept": "image/*, */*;q=0.5",
    # The bytes hashed must be the file's bytes, not a compressed transfer of them.
    "Accept-Encoding": "identity",
}


def is_http(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


class Download(Protocol):
    """Where a fetch puts the bytes; ``restart`` forgets them before a retry."""

    def write(self, block: bytes) -> None: ...
    def restart(self) -> None: ...


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched as it is written (None if it can): a scheme other than
    http or https, no host, a port that is not a number, spaces."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return f"not a valid URL ({error})"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"{parts.scheme}://" if parts.scheme else "no scheme"
        return f"not an http(s):// URL ({scheme})"
    if not parts.hostname:
        return "no host in the URL"
    if any(character.isspace() for character in url):
        return "a URL with spaces in it (percent-encode them as %20)"
    del port
    return None


@dataclass
class _Transient(Exception):
    """A failure worth another try; ``retry_after`` is the server's own wish, in seconds."""

    failure: Failure
    retry_after: float | None = None


def _fail(code: FailureCode, message: str) -> ImageError:
    return ImageError(Failure("hash", code, message))


def fetch(url: str, settings: FetchSettings, max_bytes: int, download: Download) -> None:
    """Stream ``url``'s body into ``download``; ``ImageError`` with the reason if it cannot.

    Transient failures are tried again ``settings.retries`` times, waiting ``backoff_s``
    doubling each time, or the server's ``Retry-After`` (seconds or an HTTP date), capped at
    ``retry_after_max_s``. A timeout is final: trying again would hold the worker for another
    full timeout, and a server that stalls once usually stalls again."""
    tries = 0
    while True:
        try:
            _fetch_once(url, settings, max_bytes, download)
            return
        except _Transient as transient:
            tries += 1
            if tries > settings.retries:
                failure = transient.failure
                if settings.retries:
                    message = f"{failure.message} (tried {tries} times)"
                    failure = Failure(failure.step, failure.code, message)
                raise ImageError(failure) from None
            wait = settings.backoff_s * 2 ** (tries - 1)
            if transient.retry_after is not None:
                wait = transient.retry_after
            time.sleep(min(wait, settings.retry_after_max_s))
            download.restart()


def _connection(parts: SplitResult, timeout: float) -> http.client.HTTPConnection:
    host = parts.hostname or ""
    if parts.scheme.lower() == "https":
        return http.client.HTTPSConnection(host, parts.port, timeout=timeout)
    return http.client.HTTPConnection(host, parts.port, timeout=timeout)


def _fetch_once(url: str, settings: FetchSettings, max_bytes: int, download: Download) -> None:
    deadline = time.monotonic() + settings.deadline_s
    current = url
    visited = {url}
    for _ in range(settings.max_redirects + 1):
        problem = url_problem(current)
        if problem is not None:
            where = "" if current == url else f" (redirected to {current})"
            raise _fail("bad_url", f"{url}{where}: {problem}")
        parts = urlsplit(current)
        connection = _connection(parts, settings.timeout_s)
        try:
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            connection.request("GET", target, headers=_HEADERS)
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status in _REDIRECTS and location:
                current = urljoin(current, location.strip())
                if current in visited:
                    raise _fail(
                        "too_many_redirects",
                        f"{url}: redirects in a loop (back to {current})",
                    )
                visited.add(current)
                continue
            _check_status(url, response)
            _read_body(url, response, max_bytes, (deadline, settings.deadline_s), download)
            return
        except TimeoutError:
            raise _fail(
                "timeout", f"{url}: no answer for {settings.timeout_s:g} s (a stalled server)"
            ) from None
        except http.client.IncompleteRead as short:
            missing = short.expected or 0
            raise _Transient(_incomplete(url, len(short.partial), missing)) from None
        except (ConnectionError, http.client.RemoteDisconnected) as error:
            raise _Transient(Failure("hash", "unreachable", f"{url}: {_reason(error)}")) from None
        except http.client.HTTPException as error:
            reason = f"not a valid HTTP answer ({type(error).__name__})"
            raise _fail("http_error", f"{url}: {reason}") from None
        except OSError as error:  # no such host, no route, TLS refused
            raise _Transient(Failure("hash", "unreachable", f"{url}: {_reason(error)}")) from None
        finally:
            connection.close()
    raise _fail(
        "too_many_redirects",
        f"{url}: more than {settings.max_redirects} redirects (last to {current})",
    )


def _reason(error: OSError) -> str:
    return f"cannot connect or the connection broke ({error.strerror or error})"


def _incomplete(url: str, received: int, missing: int) -> Failure:
    announced = received + missing
    message = f"{url}: the body ended after {received:,} of the {announced:,} bytes announced"
    return Failure("hash", "incomplete_download", message)


def _retry_after(response: http.client.HTTPResponse) -> float | None:
    value = (response.getheader("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    if value:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return None


def _check_status(url: str, response: http.client.HTTPResponse) -> None:
    if response.status == 200:
        return
    failure = Failure("hash", "http_error", f"{url}: HTTP {response.status} {response.reason}")
    if response.status == 429 or response.status >= 500:
        raise _Transient(failure, _retry_after(response))
    raise ImageError(failure)


def _read_body(
    url: str,
    response: http.client.HTTPResponse,
    max_bytes: int,
    deadline: tuple[float, float],
    download: Download,
) -> None:
    """The body into ``download``, refused as soon as it is known to be too large: from
    Content-Length before a byte is read, else from the running count, reading at most one
    byte past the limit."""
    announced = _content_length(response)
    if announced is not None and announced > max_bytes:
        raise _fail(
            "too_large",
            f"{url}: announces {announced:,} bytes, over the limit of {max_bytes:,} "
            "(max_file_bytes)",
        )
    received = 0
    while True:
        # read1: whatever has arrived, so a body that drips still meets the deadline check
        block = response.read1(min(BLOCK_BYTES, max_bytes + 1 - received))
        if not block:
            break
        received += len(block)
        if received > max_bytes:
            raise _fail(
                "too_large",
                f"{url}: sent more than the limit of {max_bytes:,} bytes (max_file_bytes); "
                "stopped reading there",
            )
        download.write(block)
        if time.monotonic() > deadline[0]:
            raise _fail(
                "timeout",
                f"{url}: the body took longer than the fetch deadline ({deadline[1]:g} s)",
            )
    if announced is not None and received < announced:
        raise _Transient(_incomplete(url, received, announced - received))


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = (response.getheader("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None
