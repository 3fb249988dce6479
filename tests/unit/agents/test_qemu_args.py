"""The qemu driver's pure parts: spec → QEMU command line, version banner, QMP reply parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.drivers.base import DriverContext, DriverUnavailable, InvalidSpec, WorkloadSpec
from agents.drivers.qemu_args import (
    MIB,
    QemuConfig,
    build_command,
    config_from_spec,
    incoming_uri,
    parse_migration_uri,
    parse_version,
    progress_from_query_migrate,
    stats_from_query_migrate,
)


def spec(**kw: object) -> WorkloadSpec:
    base: dict[str, object] = {"workload_id": "vm-1", "kind": "vm", "driver": "qemu", "memory_bytes": 64 * MIB}
    return WorkloadSpec(**{**base, **kw})  # type: ignore[arg-type]


# ---- spec validation -----------------------------------------------------------------------


def test_defaults_from_a_plain_spec() -> None:
    config = config_from_spec(spec(cpu_cores=1.5))
    assert config == QemuConfig(workload_id="vm-1", memory_bytes=64 * MIB, vcpus=2)
    assert config.memory_mib == 64


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"memory_bytes": 64 * MIB + 1}, "whole number of MiB"),
        ({"memory_bytes": 16 * MIB}, "16 MiB is too small: a VM needs at least 32 MiB"),
        ({"memory_bytes": 2 * 1024 * 1024 * MIB}, "exceeds"),
        ({"cpu_cores": 65}, "vCPU limit"),
        ({"kind": "container"}, "hosts kind 'vm', not 'container'"),
        ({"driver": "process"}, "not 'qemu'"),
        ({"params": {"kernel": "/boot/vmlinuz"}}, "unknown qemu params kernel"),
        ({"params": {"machine": "virt"}}, "machine='virt': must be one of pc, q35"),
        ({"params": {"network": "tap"}}, "network='tap'"),
        ({"params": {"ram_fill": "ones"}}, "ram_fill='ones'"),
        ({"params": {"cpu": "host"}}, "cpu=host needs accel=kvm"),
    ],
)
def test_invalid_specs_are_rejected_with_the_reason(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        config_from_spec(spec(**changes))


# ---- command line --------------------------------------------------------------------------


def test_command_line_of_a_default_vm() -> None:
    argv = build_command("/usr/bin/qemu-system-x86_64", config_from_spec(spec()), pidfile=Path("/s/vm-1/qemu.pid"))
    assert argv == [
        "/usr/bin/qemu-system-x86_64",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-name",
        "guest=vm-1",
        "-machine",
        "pc,accel=tcg,memory-backend=plba.ram",
        "-cpu",
        "qemu64",
        "-smp",
        "1",
        "-m",
        "64M",
        "-object",
        "memory-backend-ram,id=plba.ram,size=64M",
        "-qmp",
        "unix:qmp.sock,server=on,wait=off",
        "-pidfile",
        "/s/vm-1/qemu.pid",
        "-msg",
        "timestamp=on",
    ]


def test_no_network_unless_asked() -> None:
    plain = build_command("q", config_from_spec(spec()), pidfile=Path("p"))
    assert not any("netdev" in a for a in plain)
    user = build_command("q", config_from_spec(spec(params={"network": "user"})), pidfile=Path("p"))
    assert user[user.index("-netdev") + 1] == "user,id=net0"
    assert "virtio-net-pci,netdev=net0,romfile=" in user


def test_incoming_target_listens_later_and_has_anonymous_ram_even_for_random_fill() -> None:
    config = config_from_spec(spec(memory_bytes=128 * MIB, params={"ram_fill": "random", "machine": "q35"}))
    argv = build_command("q", config, pidfile=Path("p"), incoming=True)
    assert argv[-2:] == ["-incoming", "defer"]
    assert "memory-backend-ram,id=plba.ram,size=128M" in argv
    assert "q35,accel=tcg,memory-backend=plba.ram" in argv


def test_random_fill_maps_the_fill_file_privately_on_the_source() -> None:
    config = config_from_spec(spec(params={"ram_fill": "random"}))
    argv = build_command("q", config, pidfile=Path("p"), fill_file=Path("/f/random-64M.bin"))
    assert "memory-backend-file,id=plba.ram,size=64M,mem-path=/f/random-64M.bin,share=off" in argv
    assert "-incoming" not in argv
    with pytest.raises(ValueError, match="fill_file"):
        build_command("q", config, pidfile=Path("p"))


# ---- version -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("banner", "version"),
    [
        (
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"
            "Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n",
            "7.2.22",
        ),
        ("QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1)\n", "8.2.2"),
        ("QEMU emulator version 9.0.50 (v9.0.0-1388-g80e8f06021)\n", "9.0.50"),
        ("QEMU emulator version 6.2\n", "6.2.0"),
    ],
)
def test_parse_version(banner: str, version: str) -> None:
    assert parse_version(banner) == version


@pytest.mark.parametrize("banner", ["", "qemu-img version 7.2.22", "QEMU emulator version x.y"])
def test_parse_version_rejects_other_text(banner: str) -> None:
    with pytest.raises(ValueError, match="not a QEMU version banner"):
        parse_version(banner)


@given(
    st.integers(0, 999),
    st.integers(0, 999),
    st.integers(0, 99999),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
)
def test_parse_version_round_trips(major: int, minor: int, micro: int, suffix: str) -> None:
    assert parse_version(f"QEMU emulator version {major}.{minor}.{micro} {suffix}") == f"{major}.{minor}.{micro}"


# ---- migration URIs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "parts"),
    [
        ("tcp:127.0.0.1:4444", ("tcp", "127.0.0.1", 4444)),
        ("tcp:node-b.example:65535", ("tcp", "node-b.example", 65535)),
        ("tcp:[::1]:5000", ("tcp", "[::1]", 5000)),
    ],
)
def test_migration_uris_accepted(uri: str, parts: tuple[str, str, int]) -> None:
    assert parse_migration_uri(uri) == parts


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("exec:cat > /tmp/x", "only tcp"),
        ("unix:/tmp/mig.sock", "only tcp"),
        ("fd:3", "only tcp"),
        ("tcp:127.0.0.1", "expected tcp:HOST:PORT"),
        ("tcp:bad host:1", "expected tcp:HOST:PORT"),
        ("tcp:h;rm -rf:1", "expected tcp:HOST:PORT"),
        ("tcp:127.0.0.1:0", "port out of range"),
        ("tcp:127.0.0.1:70000", "port out of range"),
    ],
)
def test_migration_uris_rejected(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_migration_uri(uri)


def test_incoming_uri_from_the_targets_query_migrate() -> None:
    reply = {"socket-address": [{"port": "44105", "ipv4": True, "host": "127.0.0.1", "type": "inet"}]}
    assert incoming_uri(reply) == "tcp:127.0.0.1:44105"
    assert incoming_uri(reply, advertise_host="10.0.0.7") == "tcp:10.0.0.7:44105"
    v6 = {"socket-address": [{"port": "7000", "host": "::1", "type": "inet"}]}
    assert incoming_uri(v6) == "tcp:[::1]:7000"
    with pytest.raises(ValueError, match="no listening address"):
        incoming_uri({"status": "setup"})


# ---- QEMU's migration statistics -----------------------------------------------------------

# A real reply of QEMU 7.2 (256 MiB random-filled guest, loopback).
COMPLETED = {
    "status": "completed",
    "setup-time": 3,
    "downtime": 90,
    "total-time": 195,
    "ram": {
        "total": 268967936,
        "postcopy-requests": 0,
        "dirty-sync-count": 3,
        "multifd-bytes": 0,
        "pages-per-second": 62240,
        "downtime-bytes": 62596859,
        "page-size": 4096,
        "remaining": 0,
        "postcopy-bytes": 0,
        "mbps": 2043.4906666666668,
        "transferred": 269102052,
        "precopy-bytes": 206505193,
        "duplicate": 285,
        "dirty-pages-rate": 0,
        "skipped": 0,
        "normal-bytes": 268574720,
        "normal": 65570,
    },
}


def test_stats_come_from_qemus_own_figures() -> None:
    stats = stats_from_query_migrate(COMPLETED)
    assert stats.status == "completed"
    assert stats.downtime_seconds == pytest.approx(0.090)
    assert stats.downtime_ms == pytest.approx(90.0)
    assert stats.total_ms == pytest.approx(195.0)
    assert stats.setup_ms == pytest.approx(3.0)
    assert stats.transferred_bytes == 269102052
    assert stats.total_bytes == 268967936
    assert stats.downtime_bytes == 62596859
    assert stats.iterations == 3
    assert stats.throughput_bytes_per_second == pytest.approx(2043.4906666666668e6 / 8)
    assert stats.to_dict()["downtime_seconds"] == pytest.approx(0.09)


@pytest.mark.parametrize("status", ["active", "failed", "cancelled", "none"])
def test_stats_only_from_a_completed_migration(status: str) -> None:
    with pytest.raises(ValueError, match=f"'{status}', not 'completed'"):
        stats_from_query_migrate({**COMPLETED, "status": status})


def test_progress_of_an_active_migration() -> None:
    reply = {
        "status": "active",
        "expected-downtime": 120,
        "total-time": 850,
        "setup-time": 1,
        "ram": {
            "total": 100 * MIB,
            "transferred": 40 * MIB,
            "remaining": 60 * MIB,
            "dirty-pages-rate": 250,
            "page-size": 4096,
            "mbps": 800.0,
            "dirty-sync-count": 2,
        },
    }
    p = progress_from_query_migrate(reply, at=1000.0)
    assert (p.at, p.status, p.iteration) == (1000.0, "active", 2)
    assert p.elapsed_seconds == pytest.approx(0.85)
    assert (p.transferred_bytes, p.remaining_bytes, p.total_bytes) == (40 * MIB, 60 * MIB, 100 * MIB)
    assert p.dirty_rate_bytes_per_second == 250 * 4096
    assert p.throughput_bytes_per_second == pytest.approx(100e6)
    assert p.expected_downtime_seconds == pytest.approx(0.12)
    assert p.done_ratio == pytest.approx(0.4)


def test_progress_while_setting_up_has_zeros() -> None:
    p = progress_from_query_migrate({"status": "setup"}, at=5.0)
    assert (p.transferred_bytes, p.total_bytes, p.done_ratio, p.expected_downtime_seconds) == (0, 0, 0.0, None)


# ---- driver construction -------------------------------------------------------------------


def test_missing_qemu_is_a_clear_driver_unavailable(tmp_path: Path) -> None:
    from agents.drivers.qemu import QemuDriver

    with pytest.raises(DriverUnavailable, match="qemu-system-nowhere not found on PATH: install QEMU"):
        QemuDriver(DriverContext(node_id="n", state_dir=tmp_path), binary="qemu-system-nowhere")
