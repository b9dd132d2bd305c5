"""The implementations a comparison can run, by the short name used on the command line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import peers, pillow_impls
from benchmarks.spec import Job

THUMBFLOW = "thumbflow"
SEED = "seed"


@dataclass(frozen=True)
class PoolImpl:
    """Per-image code run by a bare ``ProcessPoolExecutor(2)``."""

    name: str
    label: str
    process: Callable[[Job], int]
    prepare: Callable[[], None] | None = None
    needs: str | None = None  # a module that must import, for the optional peers

    def unavailable(self) -> str | None:
        return peers.missing(self.needs) if self.needs else None


POOLS: dict[str, PoolImpl] = {
    impl.name: impl
    for impl in (
        PoolImpl("bare", "thumbflow's stages, bare ProcessPool(2)", pillow_impls.bare),
        PoolImpl("tasks", "thumbflow's task functions, bare ProcessPool(2)", pillow_impls.tasks),
        PoolImpl(SEED, "seed-style Pillow, ProcessPool(2)", pillow_impls.seed),
        PoolImpl(
            "opencv",
            "OpenCV style, ProcessPool(2)",
            peers.opencv,
            peers.prepare_opencv,
            needs="cv2",
        ),
        PoolImpl(
            "pyvips",
            "pyvips style, ProcessPool(2)",
            peers.pyvips_style,
            peers.prepare_pyvips,
            needs="pyvips",
        ),
    )
}
LABELS = {THUMBFLOW: "thumbflow, Dask LocalCluster(2)"} | {n: i.label for n, i in POOLS.items()}
ALL = (THUMBFLOW, *POOLS)
# "The fastest reference pool": the implementations that are not thumbflow's own code.
REFERENCES = ("seed", "opencv", "pyvips")
