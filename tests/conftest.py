"""Shared fixtures: a real LocalCluster of worker processes, sample images, the shared corpus."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from pipeline.samples import SampleSet, write_samples

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "photos").is_dir():
        pytest.skip(f"the shared test corpus is not at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def cluster_client() -> Iterator[Client]:
    """Two single-threaded worker processes, like the default LocalCluster on this machine."""
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    """Eight photo-like images (one EXIF-rotated, one with alpha), a duplicate, two broken files."""
    return write_samples(tmp_path_factory.mktemp("samples"), count=6)


@pytest.fixture(scope="session")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty 4 MP photos: a batch of them takes long enough to cancel or kill a worker midway."""
    from pipeline.samples import photo_like

    folder = tmp_path_factory.mktemp("many")
    for number in range(40):
        photo_like(2400, 1600, seed=number).save(folder / f"{number:03d}.jpg", quality=90)
    return folder


@pytest.fixture(scope="session")
def redis_binary() -> str:
    from tests.redis_server import find_redis_server

    binary = find_redis_server()
    if binary is None:
        pytest.skip("redis-server is not installed and could not be installed (not root?)")
    return binary


@pytest.fixture(scope="session")
def redis_url(redis_binary: str) -> Iterator[str]:
    """A private redis-server for the whole session, on its own port."""
    from tests.redis_server import RedisServer

    server = RedisServer(redis_binary).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _close_the_process_cluster() -> Iterator[None]:
    """Tests that submit without a client share this process's LocalCluster; close it while
    pytest still captures its logs, not at interpreter exit after the streams are gone."""
    yield
    from pipeline.cluster import close_process_cluster

    close_process_cluster()
