"""Workload specs: the domain checks and the request checks of the gRPC layer (field paths in messages)."""

from __future__ import annotations

import math

import pytest

from agents.drivers.base import InvalidSpec, WorkloadSpec
from agents.executor_wire import spec_from_proto, spec_to_proto
from schemas import executor_pb2 as pb


def make(**kw):
    base = {"workload_id": "w1", "kind": "vm", "driver": "sim"}
    return WorkloadSpec(**{**base, **kw})


def test_defaults_and_round_trip_through_dict_and_proto():
    spec = make(params={"trace": "azure", "series": "1"}, app="shop", user="u@x")
    assert spec.memory_bytes == 256 * 1024 * 1024 and spec.cpu_cores == 1.0 and spec.priority == 50
    assert WorkloadSpec.from_dict(spec.to_dict()) == spec
    assert spec_from_proto(spec_to_proto(spec)) == spec


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"workload_id": ""}, "workload id ''"),
        ({"workload_id": "a b"}, "workload id 'a b'"),
        ({"workload_id": "-a"}, "starting alphanumeric"),
        ({"workload_id": "x" * 129}, "1-128"),
        ({"kind": "pod"}, "kind 'pod': must be one of vm, container, function"),
        ({"driver": "Sim"}, "driver 'Sim'"),
        ({"memory_bytes": 0}, "memory must be a positive number of bytes, not 0"),
        ({"memory_bytes": 1.5}, "memory must be a positive number of bytes"),
        ({"cpu_cores": 0}, "cpu cores must be positive"),
        ({"cpu_cores": math.nan}, "cpu cores must be positive, not nan"),
        ({"cpu_cores": math.inf}, "cpu cores must be positive, not inf"),
        ({"priority": 1001}, "priority must be in 0..1000, not 1001"),
        ({"priority": -1}, "priority must be in 0..1000"),
        ({"app": "my app"}, "app 'my app'"),
        ({"params": {"1x": "v"}}, "param name '1x'"),
        ({"params": {"k": "v" * 4097}}, "param k: the value must be text of at most 4096"),
        ({"params": {f"k{i}": "v" for i in range(65)}}, "too many params: 65"),
    ],
)
def test_invalid_specs_say_what_is_wrong(kw, message):
    with pytest.raises(InvalidSpec) as err:
        make(**kw)
    assert message in str(err.value)


def kind_of(driver: str) -> str:
    return {"sim": "vm", "process": "container"}[driver]


def test_proto_unset_fields_take_defaults_and_empty_kind_the_drivers():
    spec = spec_from_proto(pb.WorkloadSpec(workload_id="p1", driver="process"), kind_of)
    assert (spec.kind, spec.memory_bytes, spec.cpu_cores, spec.priority) == ("container", 256 * 1024**2, 1.0, 50)


def test_proto_explicit_values_are_kept():
    msg = pb.WorkloadSpec(workload_id="s", driver="sim", kind="function", memory_bytes=1024, cpu_cores=0.5, priority=0)
    spec = spec_from_proto(msg, kind_of)
    assert (spec.kind, spec.memory_bytes, spec.cpu_cores, spec.priority) == ("function", 1024, 0.5, 0)


@pytest.mark.parametrize(
    ("msg", "message"),
    [
        (None, "spec: required"),
        (pb.WorkloadSpec(driver="sim"), "spec.workload_id: required"),
        (pb.WorkloadSpec(workload_id="w"), "spec.driver: required"),
        (pb.WorkloadSpec(workload_id="a/b", driver="sim"), "spec.workload_id: 'a/b'"),
        (pb.WorkloadSpec(workload_id="w", driver="sim", kind="pod"), "spec.kind: 'pod': must be one of"),
        (pb.WorkloadSpec(workload_id="w", driver="sim", memory_bytes=0), "spec.memory_bytes: must be positive, not 0"),
        (pb.WorkloadSpec(workload_id="w", driver="sim", cpu_cores=-1), "spec.cpu_cores: must be positive, not -1"),
        (pb.WorkloadSpec(workload_id="w", driver="sim", cpu_cores=math.nan), "spec.cpu_cores: must be positive"),
        (pb.WorkloadSpec(workload_id="w", driver="sim", priority=2000), "spec.priority: must be in 0..1000, not 2000"),
        (pb.WorkloadSpec(workload_id="w", driver="sim", params={"": "x"}), "spec: param name ''"),
    ],
)
def test_proto_requests_are_refused_with_the_field_path(msg, message):
    with pytest.raises(InvalidSpec) as err:
        spec_from_proto(msg, kind_of)
    assert str(err.value).startswith(message)
