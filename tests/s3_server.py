"""A private S3-compatible server for the tests: moto's ``moto_server``, on its own loopback
port, started as a subprocess and stopped by pid. s3fs and botocore talk real HTTP to it.

Its credentials are dummies (moto accepts any), but distinctive ones: the tests grep everything a
batch wrote or said for the secret, which would show a leak.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from benchmarks.servers import ChildServer, moto_server

ACCESS_KEY = "AKIATHUMBFLOWTEST"
SECRET = "thumbflow-s3-secret-5e1d0c9a"


# One line of moto's access log: ``127.0.0.1 - - [date] "PUT /bucket/key?query HTTP/1.1" 200 -``
_REQUEST = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # /bucket/key, unquoted
    query: str
    status: int


@dataclass
class S3Server:
    """moto_server started the way the benchmarks start it (``benchmarks.servers``), its access
    log kept in ``log``."""

    log: Path
    server: ChildServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = moto_server(self.log)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def storage_options(self) -> dict[str, Any]:
        """What a user passes to ``pipeline.submit(..., storage_options=...)`` for s3fs."""
        return {
            "key": ACCESS_KEY,
            "secret": SECRET,
            "client_kwargs": {"endpoint_url": self.endpoint},
        }

    def environment(self) -> dict[str, str]:
        """The same through the environment: botocore's variables, fsspec's for the endpoint."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "FSSPEC_S3_ENDPOINT_URL": self.endpoint,
        }

    def start(self) -> S3Server:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def requests(self, bucket: str) -> list[Request]:
        """Every request the server has logged for ``bucket``, in order."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = _REQUEST.search(line)
            if match is None:
                continue
            path, _, query = match["target"].partition("?")
            path = unquote(path)
            if path == f"/{bucket}" or path.startswith(f"/{bucket}/"):
                found.append(Request(match["method"], path, query, int(match["status"])))
        return found

    def filesystem(self) -> Any:
        """A fresh s3fs filesystem of this server (no cached listings)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())

    def new_bucket(self) -> str:
        bucket = f"thumbflow-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(bucket)
        return bucket


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto_server for the session; each test takes its own bucket (``bucket``)."""
    server = S3Server(log=tmp_path_factory.mktemp("moto") / "requests.log").start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()
