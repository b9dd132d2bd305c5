"""The benchmark harness's own pieces, on sample images, so ``python -m benchmarks`` cannot rot
unnoticed: its pools write what thumbflow writes, and its tables cover every setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import Client
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


def _rows(markdown: str) -> dict[str, list[str]]:
    """A Markdown table's body rows by their first cell."""
    rows = [line.strip("| ").split(" | ") for line in markdown.splitlines() if line.startswith("|")]
    return {row[0]: row for row in rows[2:]}


def test_stores_measures_both_parts_on_real_servers(
    cluster_client: Client, corpus: Path, tmp_path: Path
) -> None:
    """``python -m benchmarks stores`` in small: two photos through moto_server and six small
    images through the latency web server, each against local disk, every image ok on both
    sides and each server's own CPU measured (its process, not this one)."""
    from benchmarks import stores
    from benchmarks.__main__ import _parser
    from benchmarks.workloads import Workload
    from pipeline.samples import photo_like

    assert _parser().parse_args(["stores", "--url-count", "20"]).url_count == 20
    chosen = sorted(str(path) for path in (corpus / "photos").glob("*.jpg"))[:2]
    warm = str(tmp_path / "warm.jpg")
    photo_like(320, 240, seed=7).save(warm, quality=85)
    s3_part = stores.object_store(
        cluster_client, Workload("photos", chosen, "two"), 1, warm, tmp_path
    )
    folder = tmp_path / "small"
    folder.mkdir()
    small = [str(folder / f"{number}.jpg") for number in range(6)]
    for number, path in enumerate(small):
        photo_like(160, 120, seed=number).save(path, quality=85)
    url_part = stores.url_list(cluster_client, Workload("web", small, "six"), 1, 0.05, tmp_path)

    s3_rows, url_rows = _rows(s3_part), _rows(url_part)
    assert s3_rows[stores.LOCAL][-1] == s3_rows[stores.S3][-1] == "2/2"
    assert url_rows[stores.LOCAL][-1] == url_rows[stores.URLS][-1] == "6/6"
    assert float(s3_rows[stores.S3][7]) > 0  # moto_server's CPU: it served every photo
    assert s3_rows[stores.LOCAL][7] == url_rows[stores.LOCAL][7] == "-"  # no server involved
    for row in [*s3_rows.values(), *url_rows.values()]:
        if row[0] in (stores.LOCAL, stores.S3, stores.URLS):
            assert float(row[3]) > 0  # images/s
            assert 0 < float(row[4].rstrip(" %")) <= 100  # workers busy
    assert "S3 wall ≤ 1.3x local wall" in s3_rows
    assert any(name.startswith("workers busy ≥ 80 %") for name in url_rows)
    assert list(tmp_path.glob("photos-*")) == list(tmp_path.glob("urls-*-*")) == []  # cleaned
