"""A private redis-server for the tests: own port, nothing on disk, stopped (or killed, paused,
restarted on the same port) by pid.

The tests never touch a Redis they did not start. If ``redis-server`` is not installed and we
are root on a Debian-like machine (CI, a fresh VM), it is installed with apt first.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import redis


def find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 600}
    subprocess.run(["apt-get", "update"], check=False, **quiet)  # type: ignore[call-overload]
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"],
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        **quiet,  # type: ignore[arg-type]
    )
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisServer:
    binary: str
    port: int = field(default_factory=free_port)
    password: str | None = None
    # Also listen on this Unix socket (for unix:// URLs).
    unix_socket: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        # Percent-encoded, so that a password with '#', '@', '/' or spaces still makes a URL.
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.unix_socket:
            command += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a paused one would not act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """Gone at once, without a word to its clients, like a crashed or rebooted host.
        ``start`` brings it back, empty, on the same port."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        """Hung: connections are still accepted (by the kernel) but nothing is answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
