"""The capability fingerprint: classes, digests, labels, drivers."""

from __future__ import annotations

import pytest

from agents.fingerprint import (
    KINDS_LABEL,
    FingerprintError,
    HostInfo,
    build_fingerprint,
    flags_digest,
    memory_class,
    read_host,
)
from schemas.codec import codec

GiB = 2**30
HOST = HostInfo("x86_64", "Test CPU", frozenset({"avx2", "sse4_2"}), 4, 16 * GiB)


class Drv:
    def __init__(self, kind: str, version: str = "9.2.0", kinds: tuple[str, ...] = ()) -> None:
        self.kind, self._v, self.kinds = kind, version, kinds

    def version(self) -> str:
        if self._v == "boom":
            raise RuntimeError("no runtime")
        return self._v


@pytest.mark.parametrize(
    ("size", "cls"),
    [(int(15.6 * GiB), "16Gi"), (16 * GiB, "16Gi"), (int(16.3 * GiB), "16Gi"), (24 * GiB, "32Gi"),
     (8 * GiB, "8Gi"), (512 * 2**20, "512Mi"), (3 * 2**40, "4Ti"), (1, "1Mi")],
)  # fmt: skip
def test_memory_class(size, cls):
    assert memory_class(size) == cls


def test_memory_class_rejects_nonpositive():
    with pytest.raises(FingerprintError, match="memory must be positive"):
        memory_class(0)


def test_flags_digest_ignores_order_and_duplicates():
    assert flags_digest(["b", "a", "a"]) == flags_digest(["a", "b"])
    assert flags_digest(["a"]) != flags_digest(["a", "b"])
    assert len(flags_digest([])) == 16


def test_fingerprint_is_schema_valid_with_kinds_pool_zone():
    fp = build_fingerprint(
        HOST,
        cores=2.5,
        mem_bytes=8 * GiB,
        drivers={"qemu": Drv("vm"), "sim": Drv("container", "1", kinds=("vm", "container", "function")),
                 "process": Drv("container", "boom")},
        labels={"pool": "gpu", "zone": "eu-1", "rack": "r7"},
    )  # fmt: skip
    assert fp["cores"] == 3 and fp["memory_class"] == "8Gi"
    assert fp["drivers"] == {"process": "unknown", "qemu": "9.2.0", "sim": "1"}
    assert fp["labels"][KINDS_LABEL] == "container,function,vm"
    assert (fp["pool"], fp["zone"], fp["labels"]["rack"]) == ("gpu", "eu-1", "r7")
    record = {
        "schema_version": 1, "node_id": "n1", "sampled_at": 1.0, "interval_seconds": 1.0, "cpu_ratio": 0.1,
        "mem_used_bytes": 1, "mem_total_bytes": 2, "disk_read_bytes_per_second": 0, "disk_write_bytes_per_second": 0,
        "net_rx_bytes_per_second": 0, "net_tx_bytes_per_second": 0,
        "capacity": {"cpu_cores": 2.5, "mem_bytes": 8 * GiB, "io_bytes_per_second": 1e9},
        "fingerprint": fp, "workloads": [], "executor_endpoint": None,
    }  # fmt: skip
    codec("node_usage").validate(record)


@pytest.mark.parametrize(
    ("labels", "drivers", "message"),
    [
        ({"bad key!": "x"}, {}, "label name 'bad key!'"),
        ({"pool": "has space"}, {}, "pool 'has space'"),
        ({"zone": ""}, {}, "zone ''"),
        ({"k": "v" * 300}, {}, "longer than 256"),
        ({}, {"Qemu": Drv("vm")}, "driver name 'Qemu'"),
    ],
)
def test_bad_labels_and_driver_names_are_rejected(labels, drivers, message):
    with pytest.raises(FingerprintError, match=message):
        build_fingerprint(HOST, cores=1, mem_bytes=GiB, drivers=drivers, labels=labels)


def test_read_host_parses_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Fancy  CPU   X\nflags\t\t: fpu sse avx\n\n"
        "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n"
    )
    host = read_host(info)
    assert host.cpu_model == "Fancy CPU X"
    assert host.flags == frozenset({"fpu", "sse", "avx"})
    assert host.logical_cores >= 1 and host.mem_total_bytes > 0


def test_read_host_without_cpuinfo_still_gives_a_model(tmp_path):
    host = read_host(tmp_path / "missing")
    assert host.cpu_model and host.arch
