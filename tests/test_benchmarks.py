"""The benchmark harness's own pieces, on sample images, so ``python -m benchmarks`` cannot rot
unnoticed: its pools write what thumbflow writes, and its tables cover every setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from benchmarks import encoders, pillow_impls, resampling
from benchmarks.spec import DERIVATIVES, Job
from pipeline.samples import SampleSet


@pytest.mark.parametrize("impl", [pillow_impls.bare, pillow_impls.tasks, pillow_impls.seed])
def test_every_pool_writes_every_derivative_at_the_same_size(
    samples: SampleSet, tmp_path: Path, impl
) -> None:
    source = str(samples.images[0])
    job = Job(0, source, str(tmp_path / impl.__name__))
    assert impl(job) == len(DERIVATIVES)
    reference = Job(0, source, str(tmp_path / "reference"))
    pillow_impls.bare(reference)
    for size, extension in DERIVATIVES:
        with (
            Image.open(job.path(size, extension)) as made,
            Image.open(reference.path(size, extension)) as expected,
        ):
            assert abs(made.width - expected.width) <= 1
            assert abs(made.height - expected.height) <= 1


def test_tasks_pool_writes_the_same_files_as_the_bare_stages(
    samples: SampleSet, tmp_path: Path
) -> None:
    """Same pixels and encoders: the split of thumbflow's overhead compares like with like."""
    source = str(samples.images[1])
    tasks, bare = Job(0, source, str(tmp_path / "tasks")), Job(0, source, str(tmp_path / "bare"))
    pillow_impls.tasks(tasks)
    pillow_impls.bare(bare)
    for derivative in DERIVATIVES:
        assert (
            Path(tasks.path(*derivative)).read_bytes() == Path(bare.path(*derivative)).read_bytes()
        )


def test_encoder_table_has_every_setting_against_its_default(samples: SampleSet) -> None:
    table = encoders.run([str(samples.images[0])])
    rows = table.splitlines()[2:]
    assert len(rows) == len(encoders.SETTINGS)
    defaults = [row for row in rows if "(default)" in row]
    assert len(defaults) == 3  # one per format
    assert all("| 1.00 |" in row and "| 1.000 |" in row for row in defaults)


def test_resampling_table_keeps_lanczos_above_the_bar(samples: SampleSet) -> None:
    table = resampling.run([str(samples.images[0])])
    lanczos = next(line for line in table.splitlines() if line.startswith("| LANCZOS"))
    assert lanczos.rstrip(" |").endswith("yes")


def test_dask_facts_pillow_rows_still_measure(samples: SampleSet) -> None:
    """The design notes' measuring script, its cheapest fact (no cluster) in quick mode."""
    from benchmarks import dask_facts

    rows = dask_facts.pillow_costs(quick=True, photo=Path(samples.images[0]))
    assert len(rows) >= 10
    assert all(fact == "9 Pillow" and "skipped" not in value for fact, _, value in rows)
    assert dask_facts.table(rows).count("\n") == len(rows) + 1
