"""The servers ``stores`` reads from, each a process of its own on a free loopback port.

A server in the harness's process would share its GIL with the client and the LocalCluster's
scheduler (which run here) and blur what each costs; as a child process its CPU time is its own
and is measured apart (psutil). ``moto_server`` is started as installed; the web server is this
module run as a script: files from one folder, each answer after a fixed latency, on threads.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

ACCESS_KEY = "AKIATHUMBFLOWBENCH"
SECRET = "thumbflow-bench-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ChildServer:
    """A server process, started by ``start`` and ended by ``stop`` (by its own id). With
    ``log``, its stdout and stderr go to that file (moto's access log: the tests count requests
    in it); without, nowhere."""

    def __init__(self, command: list[str], ready_path: str, log: Path | None = None) -> None:
        self.port = free_port()
        self._command = [*command, "-p", str(self.port)]
        self._ready_path = ready_path
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChildServer:
        if self._log is None:
            self.process = subprocess.Popen(
                self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        else:
            with self._log.open("wb") as log:
                self.process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urlopen(self.endpoint + self._ready_path, timeout=1):
                    return self
            except (URLError, OSError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{self._command[0]} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ChildServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def moto_server(log: Path | None = None) -> ChildServer:
    installed = Path(sys.executable).parent / "moto_server"
    command = [str(installed)] if installed.is_file() else [sys.executable, "-m", "moto.server"]
    return ChildServer([*command, "-H", "127.0.0.1"], "/moto-api/", log)


def s3_options(server: ChildServer) -> dict[str, Any]:
    """s3fs's options for ``server``: what a user passes as ``storage_options``."""
    return {"key": ACCESS_KEY, "secret": SECRET, "client_kwargs": {"endpoint_url": server.endpoint}}


def web_server(folder: Path, latency_s: float) -> ChildServer:
    command = [sys.executable, "-m", "benchmarks.servers", str(folder), str(latency_s)]
    return ChildServer(command, "/")


class _Listening(ThreadingHTTPServer):
    daemon_threads = True
    # the default backlog of 5 drops connections the workers open at once; the kernel retries
    # them a second later, a delay no real server adds
    request_queue_size = 256


def _handler(folder: Path, latency_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server offers

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(latency_s)  # the network's and the server's time before the answer
            name = self.path.split("?", 1)[0].lstrip("/")
            path = folder / name
            if name and "/" not in name and path.is_file():
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
            else:
                data = b""
                self.send_response(200 if not name else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _serve() -> None:
    parser = argparse.ArgumentParser(description="serve a folder's files after a latency")
    parser.add_argument("folder", type=Path)
    parser.add_argument("latency_s", type=float)
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    server = _Listening(("127.0.0.1", args.port), _handler(args.folder, args.latency_s))
    print(f"serving {args.folder} on {args.port} (pid {os.getpid()})", file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    _serve()
