"""Output names and records: a name changes exactly when what shapes that file's bytes does, and
a record tells whether a file on disk is still the one it lists."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pipeline import config as config_module
from pipeline.config import Encoding, PipelineConfig, Size
from pipeline.results import OutputFile
from pipeline.storage import OutputRoot, Record, RecordedOutput, record_name

BASE = PipelineConfig(
    sizes=(Size.parse("thumbnail=150x150"), Size.parse("banner=1200x300:pad")),
    encodings=(Encoding.parse("jpeg:85"), Encoding.parse("webp:80"), Encoding.parse("avif:60")),
)


def names(config: PipelineConfig) -> dict[tuple[str, str], str]:
    return {
        (size.name, encoding.format): config.output_name(size, encoding)
        for size in config.sizes
        for encoding in config.encodings
    }


def changed(config: PipelineConfig) -> set[tuple[str, str]]:
    before, after = names(BASE), names(config)
    return {key for key in before if before[key] != after.get(key)}


def with_encoding(**knobs: object) -> PipelineConfig:
    encodings = tuple(
        dataclasses.replace(e, **{k: v for k, v in knobs.items() if hasattr(e, k)})
        if e.format == knobs["format"]
        else e
        for e in BASE.encodings
    )
    return dataclasses.replace(BASE, encodings=encodings)


ALL = set(names(BASE))


def test_an_output_name_is_its_size_a_fingerprint_and_its_extension() -> None:
    assert re.fullmatch(r"thumbnail-[0-9a-f]{12}\.jpg", names(BASE)["thumbnail", "jpeg"])
    assert len(set(names(BASE).values())) == len(ALL)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            with_encoding(format="avif", avif_speed=4),
            {(s, "avif") for s in ("thumbnail", "banner")},
            id="avif-speed",
        ),
        pytest.param(
            with_encoding(format="avif", quality=50),
            {(s, "avif") for s in ("thumbnail", "banner")},
            id="avif-quality",
        ),
        pytest.param(
            with_encoding(format="jpeg", jpeg_progressive=True),
            {(s, "jpeg") for s in ("thumbnail", "banner")},
            id="jpeg-progressive",
        ),
        pytest.param(
            with_encoding(format="webp", webp_method=6),
            {(s, "webp") for s in ("thumbnail", "banner")},
            id="webp-method",
        ),
        # JPEG flattens alpha onto the background and pad fills with it; a fitted WebP or AVIF
        # shows none of it.
        pytest.param(
            dataclasses.replace(BASE, background=(0, 0, 0)),
            ALL - {("thumbnail", "webp"), ("thumbnail", "avif")},
            id="background",
        ),
        # The cascade makes each size from the next larger one: every box shapes every output.
        pytest.param(
            dataclasses.replace(BASE, sizes=(Size.parse("thumbnail=300x300"), BASE.sizes[1])),
            ALL,
            id="one-box",
        ),
        pytest.param(dataclasses.replace(BASE, colour="keep"), ALL, id="colour"),
        pytest.param(dataclasses.replace(BASE, keep_metadata=True), ALL, id="metadata"),
        pytest.param(dataclasses.replace(BASE, max_pixels=1000, max_frames=1), set(), id="limits"),
        pytest.param(dataclasses.replace(BASE, accept_truncated=True), set(), id="truncation"),
        pytest.param(
            dataclasses.replace(BASE, encodings=BASE.encodings[::-1], sizes=BASE.sizes[::-1]),
            set(),
            id="order",
        ),
    ],
)
def test_a_name_changes_exactly_when_what_shapes_the_file_does(
    config: PipelineConfig, expected: set[tuple[str, str]]
) -> None:
    assert changed(config) == expected


def fingerprints(config: PipelineConfig) -> list[str]:
    return [config.output_fingerprint(s, e) for s in config.sizes for e in config.encodings]


def test_a_new_render_version_renames_every_output(monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprints(BASE)
    monkeypatch.setattr(config_module, "RENDER_VERSION", config_module.RENDER_VERSION + 1)
    after = fingerprints(BASE)
    assert all(old != new for old, new in zip(before, after, strict=True))


def _recorded(root: OutputRoot, path: str, data: bytes) -> RecordedOutput:
    root.write_atomic(path, data)
    return RecordedOutput.of(OutputFile(path, "thumbnail", "jpeg", 10, 10, len(data)), data)


def test_a_record_knows_its_file_exactly(tmp_path: Path) -> None:
    root = OutputRoot(str(tmp_path))
    recorded = _recorded(root, "ab/abc/thumbnail-0.jpg", b"derivative" * 10)
    assert root.holds(recorded)
    (tmp_path / "ab/abc/thumbnail-0.jpg").write_bytes(b"derivative" * 5)
    assert not root.holds(recorded)  # truncated
    (tmp_path / "ab/abc/thumbnail-0.jpg").write_bytes(b"Derivative" + b"derivative" * 9)
    assert not root.holds(recorded)  # same size, other bytes
    (tmp_path / "ab/abc/thumbnail-0.jpg").unlink()
    assert not root.holds(recorded)


def test_records_round_trip_and_anything_else_is_no_record(tmp_path: Path) -> None:
    root = OutputRoot(str(tmp_path))
    record = Record(False, (_recorded(root, "ab/abc/thumbnail-0.jpg", b"x"),))
    root.write_atomic(f"ab/abc/{record_name('f' * 16)}", json.dumps(record.to_json()).encode())
    assert Record.from_json(record.to_json()) == record
    old_layout = {"fingerprint": "0" * 16, "outputs": [{"path": "ab/abc/thumbnail.jpg"}]}
    assert Record.from_json(old_layout) is None
    assert Record.from_json(None) is None
    root.write_atomic(f"ab/abc/{record_name('1' * 16)}", b"not json")
    assert root.records_in("ab/abc") == {record_name("f" * 16): record}
    assert root.read_record(f"ab/abc/{record_name('1' * 16)}") is None
