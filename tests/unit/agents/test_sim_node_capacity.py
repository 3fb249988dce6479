"""A node whose only driver is sim has a virtual capacity: any positive size, even above the host's."""

from __future__ import annotations

import psutil
import pytest
from click.testing import CliRunner

from agents.node import Capacity, NodeConfigError, virtual_capacity
from plba.cli.main import cli


def test_only_sim_is_virtual():
    assert virtual_capacity(["sim"])
    assert not virtual_capacity(["sim", "process"])
    assert not virtual_capacity(["qemu"])


def test_a_virtual_capacity_may_exceed_the_host():
    cores = float(psutil.cpu_count() or 1) * 4
    memory = int(psutil.virtual_memory().total) * 4
    capacity = Capacity.configure(cpu_cores=cores, mem_bytes=memory, virtual=True)
    assert (capacity.cpu_cores, capacity.mem_bytes, capacity.sliced) == (cores, memory, True)


@pytest.mark.parametrize("cores", [0.0, -1.0])
def test_a_virtual_capacity_must_still_be_positive(cores):
    with pytest.raises(NodeConfigError, match="positive"):
        Capacity.configure(cpu_cores=cores, virtual=True)
    with pytest.raises(NodeConfigError, match="positive"):
        Capacity.configure(mem_bytes=int(cores), virtual=True)


def test_real_drivers_keep_the_host_as_the_bound():
    too_many = float(psutil.cpu_count() or 1) + 1
    with pytest.raises(NodeConfigError, match="only a node whose sole driver is sim"):
        Capacity.configure(cpu_cores=too_many)


def test_plba_node_refuses_more_cores_than_the_host_unless_sim_only(tmp_path):
    too_many = str((psutil.cpu_count() or 1) + 6)
    common = ["node", "--node-id", "n1", "--state-dir", str(tmp_path), "--capacity-cores", too_many, "--no-telemetry"]
    out = CliRunner().invoke(cli, [*common, "--drivers", "sim,process", "--listen", "bad"])
    assert out.exit_code != 0 and "the host's" in out.output
    # sim only: the capacity passes; the run then stops at the (deliberately) bad listen address
    out = CliRunner().invoke(cli, [*common, "--drivers", "sim", "--listen", "bad"])
    assert out.exit_code != 0 and "listen address" in out.output and "cores" not in out.output
