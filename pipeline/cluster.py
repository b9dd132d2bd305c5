"""Getting a Dask client: the user's own, a scheduler address, or this process's LocalCluster.
Runs in the submitting process."""

from __future__ import annotations

import logging
import os
import socket
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import dask
from distributed import Client, LocalCluster, Security
from distributed.comm import registry
from distributed.comm.addressing import parse_address
from distributed.versions import VersionMismatchWarning

from pipeline.dask_logs import dask_logs_silenced, worker_log_level
from pipeline.errors import ClusterError, ConfigError
from pipeline.interrupts import terminal_interrupts_ignored
from pipeline.preflight import check_versions

logger = logging.getLogger(__name__)

# Measured on image work (docs/design.md): the worker's statistical profiler and the nanny forcing
# MALLOC_TRIM_THRESHOLD_ cost 5-15 % together; a cluster we start for a batch needs neither.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}


@dataclass
class Connection:
    """A client, the LocalCluster it talks to if that runs in this process, and whether closing
    them is ours to do (``owned``), or someone else's to hear about (``on_close``)."""

    client: Client
    cluster: LocalCluster | None = None
    owned: bool = False
    on_close: Callable[[], None] | None = None

    @property
    def dashboard_link(self) -> str | None:
        link = self.client.dashboard_link
        return str(link) if link else None

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()
        if not self.owned:
            return
        with dask_logs_silenced():
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


# A cluster we start for one user's batch answers only on this machine: its scheduler and
# workers run whatever they are sent, and its dashboard shows file names.
LOOPBACK = "127.0.0.1"
DASHBOARD_PORT = 8787  # Dask's usual one, so a bookmark of it keeps working when it is free


def _dashboard_port(host: str) -> int:
    """``DASHBOARD_PORT`` if nothing listens there, else 0 (any free port). Distributed would
    find another port itself, but says so in a three-line warning meant for Dask users."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as the dashboard's own server binds: a port held only by TIME_WAIT counts as free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, DASHBOARD_PORT))
        except OSError:
            return 0
    return DASHBOARD_PORT


def start_local_cluster(
    workers: int | None = None, dashboard_address: str | None = None, host: str = LOOPBACK
) -> Connection:
    """A LocalCluster of single-threaded worker processes, one per core by default: Pillow
    releases the GIL in places but not all, so processes beat threads for image work.

    Scheduler, workers and dashboard listen on ``host`` (loopback unless asked otherwise); a
    ``dashboard_address`` without a host (``":8787"``, ``":0"``) means that host too. By
    default the dashboard takes port 8787, or any free one if that is taken (another cluster);
    ``dashboard_link`` says which. Dask's own log messages are shown in the workers no more
    than in this process (``pipeline.dask_logs``).
    """
    count = workers or os.cpu_count() or 1
    if count < 1:
        raise ConfigError(f"workers must be at least 1, got {count}")
    if dashboard_address is None:
        dashboard_address = f":{_dashboard_port(host)}"
    if dashboard_address.startswith(":"):
        dashboard_address = (
            f"[{host}]{dashboard_address}" if ":" in host else host + dashboard_address
        )
    with (
        dask.config.set(LOCAL_CLUSTER_CONFIG),
        terminal_interrupts_ignored(),
        warnings.catch_warnings(),
    ):
        # Should another process take the port between our look and the bind, distributed
        # moves on to a free one; the link we print names it, so its warning would add nothing.
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            host=host,
            dashboard_address=dashboard_address,
            silence_logs=worker_log_level(),
        )
        client = Client(cluster, set_as_default=False)
    return Connection(client, cluster, owned=True)


def _probe(address: str, timeout: float) -> None:
    """Fail in milliseconds when nothing listens at a tcp:// or tls:// address; distributed
    itself would retry for the whole connect timeout before saying so."""
    protocol, _, location = address.rpartition("://")
    if protocol not in ("tcp", "tls", ""):
        return
    host, _, port = location.rpartition(":")
    if not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {reason}") from error


TLS_NEEDED = (
    "a tls:// address needs TLS settings: security=distributed.Security(tls_ca_file=..., "
    "tls_client_cert=..., tls_client_key=...), the --tls-* options, or distributed.comm.tls.* "
    "in the Dask config"
)


def _check_address(address: str, security: Security | None) -> None:
    """Refuse, before a ``Client`` exists, the addresses distributed refuses only half-way
    through making one: that half-made client closes itself at interpreter exit, which takes
    20 s and prints a traceback after our message."""
    try:
        protocol, _ = parse_address(address)
        registry.get_backend(protocol)
    except ValueError as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    if protocol in ("tls", "wss"):
        arguments = (security or Security()).get_connection_args("client")
        if arguments.get("ssl_context") is None:
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {TLS_NEEDED}")


def _client_of(scheduler: str, security: Security | None, timeout: float) -> Client:
    """A client of a scheduler we do not own. Distributed warns with a table of every package
    whose version differs between here, the scheduler and the workers; that table is kept
    back until our own preflight has had its say: if this thumbflow cannot run there, our
    refusal is the whole message; if it can, the table is shown as distributed gave it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", VersionMismatchWarning)
        try:
            remote = Client(scheduler, timeout=timeout, security=security, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as error:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler}: {error}"
            ) from error
    mismatches = [w for w in caught if issubclass(w.category, VersionMismatchWarning)]
    if mismatches:
        try:
            check_versions(remote)
        except BaseException:
            with dask_logs_silenced():
                remote.close()
            raise
    for warning in caught:  # ours to keep back were only the tables
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return remote


def connect(
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    security: Security | None = None,
    timeout: float = 10.0,
) -> Connection:
    """The user's ``client`` as given; else a client of ``scheduler`` (``tls://`` addresses take
    ``security``, a ``distributed.Security``); else this process's LocalCluster."""
    if client is not None and scheduler is not None:
        raise ConfigError("give either client= or scheduler=, not both")
    if client is not None:
        # A client of a LocalCluster in this process: its workers were started from this
        # interpreter, so they import this thumbflow and see these files (preflight is moot),
        # and the cluster ends with this process (so it cannot run a detached batch).
        local = client.cluster if isinstance(client.cluster, LocalCluster) else None
        return Connection(client, local)
    if scheduler is not None:
        _check_address(scheduler, security)
        _probe(scheduler, timeout)
        return Connection(_client_of(scheduler, security, timeout), owned=True)
    return process_cluster(workers)


# -- the one LocalCluster of this process ---------------------------------------------------
#
# The first submit() that brings neither client= nor scheduler= starts it; later ones reuse it
# (a second cluster would double the workers on the same cores, and two clusters racing to shut
# down at exit made one batch's images fail with "cannot schedule new futures after shutdown").
# It is closed when the interpreter exits, after the batches running on it have been cancelled
# and have settled (pipeline.driver.run), or earlier by close_process_cluster().

_lock = threading.Lock()
_cluster: Connection | None = None
_users = 0  # batches holding a connection to it


def process_cluster(workers: int | None = None) -> Connection:
    """A connection to this process's LocalCluster, started with ``workers`` processes if there
    is none yet. Closing the connection releases it; the cluster itself lives on."""
    global _cluster, _users
    with _lock:
        if _cluster is not None and _cluster.cluster is not None:
            running = len(_cluster.cluster.workers)
            if _cluster.cluster.status.name in ("closing", "closed"):
                _cluster, _users = None, 0
            elif workers is not None and workers != running:
                if _users:
                    raise ConfigError(
                        f"this process's LocalCluster runs {running} workers for batches still "
                        f"running; it cannot also have {workers} (wait for them, or leave "
                        "workers= unset to share it)"
                    )
                _close_locked()
        if _cluster is None:
            _cluster = start_local_cluster(workers)
        _users += 1
        return Connection(_cluster.client, _cluster.cluster, on_close=_release)


def _release() -> None:
    global _users
    with _lock:
        _users = max(0, _users - 1)


def close_process_cluster() -> None:
    """Close this process's LocalCluster, if it has one (at exit, or to free its workers)."""
    with _lock:
        _close_locked()


def _close_locked() -> None:
    global _cluster, _users
    if _cluster is None:
        return
    cluster, _cluster, _users = _cluster, None, 0
    try:
        cluster.close()
    except Exception as error:  # closing at exit must not hide what the batch itself said
        logger.debug("closing the LocalCluster: %s", error)
