"""Helpers of the raw migration bounds that need no QEMU: sizes, percentiles, the raw copy."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agents.bench_migrate_raw import parse_size, percentiles, raw_process_copy


@pytest.mark.parametrize(
    ("text", "size"),
    [("256M", 256 * 2**20), ("10M", 10 * 2**20), ("1G", 2**30), ("64MiB", 64 * 2**20), ("512k", 512 * 1024)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_plain_bytes_and_errors() -> None:
    assert parse_size("10485760") == 10485760
    with pytest.raises(ValueError, match="not a size"):
        parse_size("ten megs")


def test_percentiles_interpolate() -> None:
    assert percentiles([1.0, 2.0, 3.0, 4.0, 5.0]) == {"p50": 3.0, "p95": pytest.approx(4.8)}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0}
    assert all(math.isnan(v) for v in percentiles([]).values())


def test_raw_process_copy_moves_every_byte(tmp_path: Path) -> None:
    size = 9 * 2**20 + 123  # three files, the last one partial
    stats = raw_process_copy(size, 2, workdir=tmp_path, chunk_bytes=256 * 1024)
    assert len(stats) == 2
    for s in stats:
        assert s.status == "completed"
        assert s.transferred_bytes == s.total_bytes == size
        assert s.downtime_seconds == s.total_seconds > 0
    assert sum(p.stat().st_size for p in (tmp_path / "source").iterdir()) == size
    assert not list(tmp_path.glob("target*"))  # each run's copy is removed


def test_raw_process_copy_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="runs"):
        raw_process_copy(10, 0)
    with pytest.raises(ValueError, match="negative"):
        raw_process_copy(-1, 1)
