"""Domain errors map to precise gRPC status codes; bugs become INTERNAL without internals."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from agents.drivers.base import (
    AlreadyExists,
    DriverError,
    DriverUnavailable,
    InsufficientCapacity,
    InvalidSpec,
    StartFailed,
    UnknownWorkload,
)
from agents.drivers.trace_series import TraceError
from agents.executor import ExecutorService, parse_listen
from agents.executor_wire import status_of
from agents.node import NodeConfigError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidSpec("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (TraceError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (UnknownWorkload("x"), grpc.StatusCode.NOT_FOUND),
        (AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
        (DriverUnavailable("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (StartFailed("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (InsufficientCapacity("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (NodeConfigError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (DriverError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_of_each_domain_error(error, code):
    assert status_of(error) == code


def test_unknown_codes_are_internal():
    class Odd(DriverError):
        code = "no_such_code"

    assert status_of(Odd("x")) == grpc.StatusCode.INTERNAL


class Aborted(Exception):
    pass


class FakeContext:
    """What the handlers use of grpc.aio.ServicerContext: abort raises, like the real one."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


class FakeNode:
    node_id = "n1"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def list_workloads(self, driver=None):
        raise self.error


def call_list(error: BaseException) -> FakeContext:
    from schemas import executor_pb2 as pb

    context = FakeContext()
    service = ExecutorService(FakeNode(error))  # type: ignore[arg-type]
    with pytest.raises(Aborted):
        asyncio.run(service.ListWorkloads(pb.ListWorkloadsRequest(), context))
    return context


def test_handler_answers_a_domain_error_with_its_status_and_message():
    context = call_list(UnknownWorkload("no workload 'w' on node n1"))
    assert (context.code, context.details) == (grpc.StatusCode.NOT_FOUND, "no workload 'w' on node n1")


def test_handler_hides_a_bug_behind_internal():
    context = call_list(KeyError("secret internals"))
    assert context.code == grpc.StatusCode.INTERNAL
    assert "secret" not in context.details and "ListWorkloads failed inside the executor" in context.details


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:50051", ("[::1]", 50051)), (":9000", ("", 9000))],
)
def test_parse_listen(listen, expected):
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["localhost", "host:port", "127.0.0.1:70000", "a b:1"])
def test_parse_listen_refuses(listen):
    with pytest.raises(NodeConfigError, match="write HOST:PORT"):
        parse_listen(listen)
