"""What the inputs and the output name mean: ``file://`` names, globs in URLs, hidden files,
symbolic link loops, protocols that are not installed, an output that is a file. Listing runs in
the submitting process, so most of this is checked there (fsspec's ``memory://`` stands for an
object store); one real ``thumbflow`` batch checks it end to end, with the resize modes."""

from __future__ import annotations

import importlib.util
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from PIL import Image

import pipeline
from pipeline.errors import ConfigError, InputError, InputWarning, OutputError, UnsupportedURL
from pipeline.inputs import expand_inputs, local_root
from pipeline.storage import OutputRoot
from tests.commands import THUMBFLOW, command_env
from tests.dask_processes import dask_cluster
from tests.helpers import read_rows


def thumbflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*THUMBFLOW, *args], capture_output=True, text=True, timeout=240, env=command_env()
    )


# One tree, laid out on disk and in memory: what a walk or a wildcard may list from it.
TREE = (
    "a.jpg",
    "b.png",
    ".hidden.jpg",
    ".cache/c.jpg",
    "sub/d.jpg",
    "sub/.e.jpg",
    "sub/deeper/f.jpg",
    ".git/objects/g.jpg",
)


def lay_out_on_disk(root: Path) -> Path:
    for name in TREE:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    return root


@pytest.fixture
def bucket() -> Iterator[str]:
    """The same tree in fsspec's in-memory filesystem, standing in for an object store."""
    name = f"/bucket-{uuid.uuid4().hex[:8]}"
    memory = fsspec.filesystem("memory")
    for path in TREE:
        memory.pipe(f"{name}/{path}", path.encode())
    yield f"memory://{name}"
    memory.rm(name, recursive=True)


def listed(items: list[str], root: str) -> list[str]:
    """The inputs found, relative to ``root`` (a folder or a URL)."""
    prefix = root.removeprefix("file://").rstrip("/") + "/"
    return [file.source.removeprefix(prefix) for file in expand_inputs(items)]


def local_url(path: Path) -> str:
    return f"file://{path}"


# --- file:// names are the plain paths -----------------------------------------------------


def test_file_urls_list_the_same_files_under_the_same_paths_as_plain_paths(tmp_path):
    root = lay_out_on_disk(tmp_path / "photos")
    for plain in (str(root), str(root / "a.jpg"), f"{root}/**/*.jpg", f"{root}/*"):
        as_url = expand_inputs([f"file://{plain}"])
        assert as_url == expand_inputs([plain]), plain
        assert all(file.source.startswith(str(root)) for file in as_url)  # the plain path
    # one file named both ways is one input
    assert len(expand_inputs([str(root / "a.jpg"), local_url(root / "a.jpg")])) == 1


def test_a_missing_file_url_is_refused_like_a_missing_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        expand_inputs([local_url(tmp_path / "nothing-here")])
    with pytest.raises(InputError, match="no files match"):
        expand_inputs([local_url(tmp_path / "*.jpg")])


def test_a_shared_cluster_takes_file_urls_and_globs(tmp_path):
    """The preflight of a cluster thumbflow did not start checks that local inputs exist on
    every worker: by the folder a glob starts from, and a ``file://`` name by its path."""
    assert local_root(f"file://{tmp_path}/**/*.jpg") == str(tmp_path)
    assert local_root(f"{tmp_path}/sub/d.jpg") == f"{tmp_path}/sub/d.jpg"
    assert local_root("memory://bucket/*.jpg") is None
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (64, 48), (0, 160, 0)).save(photos / "a.jpg")
    with dask_cluster(workers=1) as cluster:
        report = pipeline.run(
            [f"file://{photos}/*.jpg"], f"file://{tmp_path}/out", scheduler=cluster.address
        )
    assert report.status.ok == 1


# --- hidden files, and globs in URLs ---------------------------------------------------------

VISIBLE = ["a.jpg", "b.png", "sub/d.jpg", "sub/deeper/f.jpg"]


def test_a_folder_walk_skips_hidden_files_and_folders_on_disk_and_behind_a_url(tmp_path, bucket):
    root = lay_out_on_disk(tmp_path)
    assert listed([str(root)], str(root)) == VISIBLE
    assert listed([bucket], bucket) == VISIBLE


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("*.jpg", ["a.jpg"], id="star-skips-dot-files"),
        pytest.param("**/*.jpg", ["a.jpg", "sub/d.jpg", "sub/deeper/f.jpg"], id="double-star"),
        pytest.param("*/*.jpg", ["sub/d.jpg"], id="star-skips-dot-folders"),
        pytest.param(".*.jpg", [".hidden.jpg"], id="a-dot-pattern-takes-dot-files"),
        pytest.param(".cache/*.jpg", [".cache/c.jpg"], id="a-named-hidden-folder-is-read"),
        pytest.param("sub/.e.jpg", ["sub/.e.jpg"], id="a-named-hidden-file-is-read"),
    ],
)
def test_globs_match_alike_on_disk_and_in_urls(tmp_path, bucket, pattern, expected):
    root = lay_out_on_disk(tmp_path)
    assert listed([f"{root}/{pattern}"], str(root)) == expected
    assert listed([f"{bucket}/{pattern}"], bucket) == expected


def test_a_url_glob_that_matches_nothing_says_so(bucket):
    with pytest.raises(InputError, match="no files match"):
        expand_inputs([f"{bucket}/*.tiff"])


# --- symbolic links ----------------------------------------------------------------------


@pytest.fixture
def looped(tmp_path) -> Path:
    """photos/a.jpg, photos/sub/b.jpg, photos/sub/back → photos (a loop), photos/linked → a
    folder outside with c.jpg (followed: not a loop)."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"a")
    (root / "sub" / "b.jpg").write_bytes(b"b")
    (root / "sub" / "back").symlink_to(root, target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.jpg").write_bytes(b"c")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    return root


@pytest.mark.parametrize(
    "form", ["folder", "double-star-glob", "file-url-glob", "star-then-walk", "folder-below"]
)
def test_a_symbolic_link_loop_is_skipped_with_one_warning(looped, form):
    item = {
        "folder": str(looped),
        "double-star-glob": f"{looped}/**/*.jpg",
        "file-url-glob": f"file://{looped}/**",
        "star-then-walk": f"{looped}/*",  # sub is walked on its own, and back leads above it
        "folder-below": f"{looped}/sub",
    }[form]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = listed([item], str(looped))
    assert found == (
        ["sub/b.jpg"] if form == "folder-below" else ["a.jpg", "linked/c.jpg", "sub/b.jpg"]
    )
    loops = [str(w.message) for w in caught if issubclass(w.category, InputWarning)]
    assert len(loops) == 1, loops
    assert f"skipped {looped}/sub/back: a symbolic link loop" in loops[0]


def test_a_glob_match_whose_own_name_is_a_pattern_is_not_globbed_again(tmp_path):
    """A dangling link named ``x*`` matches ``x*`` and nothing else exists to read: it is
    listed (its hash step then says it is unreadable), not expanded over and over."""
    (tmp_path / "x*").symlink_to(tmp_path / "gone")
    (found,) = expand_inputs([f"{tmp_path}/x*"])
    assert (found.source, found.size_bytes) == (f"{tmp_path}/x*", 0)


# --- protocols that are not installed, an output that is a file -------------------------------


def missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        # s3fs is a test dependency (tests/test_object_store.py): Azure's adlfs stays missing
        pytest.param(
            "az://container/photos/*.jpg",
            "az:// needs adlfs, which is not installed; pip install 'thumbflow[az]'",
            marks=pytest.mark.skipif(not missing("adlfs"), reason="adlfs is installed"),
            id="az",
        ),
        pytest.param(
            "gcs://bucket/photos",
            "gcs:// needs gcsfs, which is not installed; pip install 'thumbflow[gcs]'",
            marks=pytest.mark.skipif(not missing("gcsfs"), reason="gcsfs is installed"),
            id="gcs",
        ),
        pytest.param("nosuch://bucket/photos", "unknown protocol nosuch://", id="unknown"),
        pytest.param("MEMORY://bucket/photos", "Protocol not known: MEMORY", id="upper-case"),
    ],
)
def test_a_url_this_installation_cannot_use_is_a_typed_error_naming_what_to_install(
    tmp_path, url, advice
):
    for attempt in (lambda: expand_inputs([url]), lambda: OutputRoot(url)):
        with pytest.raises(UnsupportedURL) as refused:
            attempt()
        assert isinstance(refused.value, ConfigError)
        assert advice in str(refused.value)
        assert "\n" not in str(refused.value)
    # through the API: refused before any cluster starts, for an output and an input alike
    with pytest.raises(UnsupportedURL, match=r"not installed|unknown protocol|not known"):
        pipeline.submit([str(tmp_path)], url)
    with pytest.raises(UnsupportedURL, match=r"not installed|unknown protocol|not known"):
        pipeline.submit([url], str(tmp_path / "out"))


def test_an_output_that_is_a_file_is_refused_in_the_cli_s_words(tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (20, 20)).save(photo)
    with pytest.raises(OutputError, match=r"output '.*photo\.jpg' is a file, not a folder"):
        OutputRoot(local_url(photo)).check_writable()
    with pytest.raises(OutputError, match=r"is a file, not a folder"):
        pipeline.submit([str(tmp_path)], photo)  # before any cluster starts


# An object store whose package this installation lacks (s3fs is installed for the tests).
MISSING_STORE = next(
    (
        (protocol, package, extra)
        for protocol, package, extra in [("gcs", "gcsfs", "gcs"), ("az", "adlfs", "az")]
        if missing(package)
    ),
    None,
)


@pytest.mark.skipif(MISSING_STORE is None, reason="gcsfs and adlfs are both installed")
@pytest.mark.parametrize("where", ["output", "input"])
def test_the_cli_says_in_one_line_what_to_install_for_an_object_store(tmp_path, where):
    assert MISSING_STORE is not None
    protocol, package, extra = MISSING_STORE
    url = f"{protocol}://bucket/out" if where == "output" else f"{protocol}://bucket/photos/*.jpg"
    arguments = [str(tmp_path), "-o", url] if where == "output" else [url, "-o", str(tmp_path)]
    done = thumbflow("run", *arguments)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"thumbflow: {url}: {protocol}:// needs {package}, which is not installed; "
        f"pip install 'thumbflow[{extra}]' (on every worker too)"
    ]


# --- one real batch: file:// inputs, hidden files, a loop, cover and pad ---------------------


def decoded(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGBA")


def test_a_batch_of_file_urls_reads_what_the_paths_name_and_keeps_the_box_shapes(tmp_path):
    photos = tmp_path / "photos"
    (photos / ".thumbnails").mkdir(parents=True)
    Image.new("RGB", (120, 90), (0, 160, 0)).save(photos / "small.jpg")  # smaller than the box
    Image.new("RGBA", (400, 200), (255, 0, 0, 255)).save(photos / "logo.png")  # with alpha
    Image.new("RGB", (50, 50)).save(photos / ".hidden.jpg")
    Image.new("RGB", (50, 50)).save(photos / ".thumbnails" / "old.jpg")
    (photos / "again").symlink_to(photos, target_is_directory=True)
    out = tmp_path / "out"
    done = thumbflow(
        "run", f"file://{photos}", f"file://{photos}/**/*.png", "-o", f"file://{out}",
        "--size", "avatar=150x150:cover", "--size", "box=200x200:pad",
        "--format", "jpeg", "--format", "webp", "--workers", "1", "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loop_lines = [line for line in done.stderr.splitlines() if "symbolic link loop" in line]
    assert loop_lines == [
        f"thumbflow: warning: skipped {photos}/again: a symbolic link loop "
        f"(it leads back to {photos}, a folder it is in)"
    ]
    manifest = next(line for line in done.stdout.splitlines() if "manifest:" in line).split()[-1]
    rows = {row["source"]: row for row in read_rows(manifest)}
    # plain paths in the manifest, the hidden files left out, logo.png once
    assert sorted(rows) == [str(photos / "logo.png"), str(photos / "small.jpg")]
    outputs = {
        (Path(row["source"]).stem, output["size"], output["format"]): out / output["path"]
        for row in rows.values()
        for output in row["outputs"]
    }
    # cover: the 120x90 source is not enlarged, but comes out square like the box
    for format_name in ("jpeg", "webp"):
        assert decoded(outputs["small", "avatar", format_name]).size == (90, 90)
    # pad: the 200x100 logo on a 200x200 canvas, clear around it in WebP, white in JPEG
    webp, jpeg = decoded(outputs["logo", "box", "webp"]), decoded(outputs["logo", "box", "jpeg"])
    assert webp.size == jpeg.size == (200, 200)
    assert webp.getpixel((100, 10))[3] == 0
    assert webp.getpixel((100, 100))[3] == 255
    assert all(channel >= 248 for channel in jpeg.getpixel((100, 10))[:3])
    assert jpeg.getpixel((100, 100))[0] >= 230
