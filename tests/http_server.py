"""A web server for the URL-list tests: threads on loopback, started and stopped by the tests.

It serves registered files and every way a server misbehaves that thumbflow must survive: error
statuses, 429 then the file, bodies that drip or stall, redirects (one, and a loop), a
Content-Length larger than the body, and endless bodies made on the fly (never stored). It
counts requests per path and how many bytes each endless body managed to send.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDLESS_BLOCK = b"\xff" * (1 << 16)
TEN_GB = 10 * 1024**3


class WebServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # path → body
        self.hits: Counter[str] = Counter()
        self.hit_times: dict[str, list[float]] = {}
        self.sent: Counter[str] = Counter()  # bytes sent by the endless bodies
        self.latency_s = 0.0  # before every answer (the benchmark's)
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._server = _Listening(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def count(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1
            self.hit_times.setdefault(path, []).append(time.monotonic())

    def start(self) -> WebServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serving() -> Iterator[WebServer]:
    server = WebServer().start()
    try:
        yield server
    finally:
        server.close()


class _Listening(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections that workers open at once, and
    # each dropped one waits a second for the kernel's retry: a delay no real server adds
    request_queue_size = 128


def _handler_for(server: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests read the counters

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            server.count(path)
            if server.latency_s:
                time.sleep(server.latency_s)
            kind, _, rest = path.lstrip("/").partition("/")
            answer = getattr(self, f"_{kind.replace('-', '_')}", None)
            if answer is None:
                self._status(404)
            else:
                answer(rest)

        def _status(self, code: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _body(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _file(self, name: str) -> None:  # /file/NAME
            data = server.files.get(name)
            if data is None:
                self._status(404)
            else:
                self._body(data)

        def _status_code(self, code: str) -> None:  # /status-code/500
            self._status(int(code))

        def _busy_once(self, name: str) -> None:  # /busy-once/NAME: 429 first, then the file
            if server.hits[self.path] == 1:
                self._status(429, {"Retry-After": "1"})
            else:
                self._file(name)

        def _slow(self, name: str) -> None:  # /slow/NAME: the file in 10 pieces, 50 ms apart
            data = server.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            step = len(data) // 10 + 1
            for start in range(0, len(data), step):
                self.wfile.write(data[start : start + step])
                self.wfile.flush()
                time.sleep(0.05)

        def _stalled(self, name: str) -> None:  # /stalled/NAME: 100 bytes, then nothing
            data = server.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:100])
            self.wfile.flush()
            server.stop.wait(120)

        def _redirect(self, name: str) -> None:  # /redirect/NAME → /file/NAME
            self._status(302, {"Location": f"/file/{name}"})

        def _loop(self, side: str) -> None:  # /loop/a ↔ /loop/b
            self._status(302, {"Location": f"/loop/{'b' if side == 'a' else 'a'}"})

        def _lying(self, name: str) -> None:  # announces the file, sends half of it
            data = server.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True

        def _huge(self, announced: str) -> None:  # /huge/declared or /huge/undeclared
            self.send_response(200)
            if announced == "declared":
                self.send_header("Content-Length", str(TEN_GB))
            self.end_headers()
            self.close_connection = True
            sent = 0
            try:
                while sent < TEN_GB and not server.stop.is_set():
                    self.wfile.write(ENDLESS_BLOCK)
                    sent += len(ENDLESS_BLOCK)
                    server.sent[self.path] = sent
            except OSError:
                pass  # the reader hung up: what we want

    return Handler
