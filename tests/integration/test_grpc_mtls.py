"""gRPC mutual TLS with the certificates of ``plba certs init``: who an executor serves and whom it refuses.

An executor (real node, sim driver, port 0) serves with ``OUT/n1`` as its tls dir. The
dispatcher/CLI certificate (``OUT``) and another node's certificate (``OUT/n2``) are served;
no certificate, a certificate of another CA, and plaintext are refused during the handshake:
the client sees ``UNAVAILABLE`` and the executor's service never sees the call (counted by a
server interceptor).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner

from agents.executor import build_server, stop_server
from agents.executor_client import ExecutorClient
from agents.node import Node
from plba.cli.main import cli
from schemas import executor_pb2 as pb
from schemas import executor_pb2_grpc as pb_grpc
from streams.dispatcher import channel_credentials


class CountingInterceptor(grpc.aio.ServerInterceptor):
    """Counts the calls that got through the transport to the services."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        self.methods.append(handler_call_details.method)
        return await continuation(handler_call_details)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mtls")
    runner = CliRunner()
    for name in ("ours", "rogue"):
        result = runner.invoke(cli, ["certs", "init", "--out", str(root / name), "--nodes", "n1,n2", "--days", "2"])
        assert result.exit_code == 0, result.output
    ca_only = root / "ca-only"
    ca_only.mkdir()
    (ca_only / "ca.pem").write_bytes((root / "ours" / "ca.pem").read_bytes())
    return {"ours": root / "ours", "rogue": root / "rogue", "ca_only": ca_only}


def serve(tmp_path: Path, tls_dir: Path, check: Callable[[str], Awaitable[Any]]) -> tuple[Any, list[str]]:
    """Run an executor with ``tls_dir``, call ``check(target)``; return its result and the calls served."""
    counter = CountingInterceptor()

    async def scenario() -> Any:
        node = await Node.open("n1", ["sim"], tmp_path / "state-n1")
        server, port = await build_server(node, "127.0.0.1:0", tls_dir=tls_dir, interceptors=[counter])
        await server.start()
        try:
            return await check(f"127.0.0.1:{port}")
        finally:
            await stop_server(server, 1.0)
            await node.close()

    return asyncio.run(scenario()), counter.methods


async def list_with(target: str, credentials: grpc.ChannelCredentials | None, server_name: str = "") -> Any:
    """ListWorkloads over a raw channel: the reply, or the status code it failed with."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials, options=options)
    )
    async with channel:
        try:
            return await pb_grpc.ExecutorStub(channel).ListWorkloads(pb.ListWorkloadsRequest(), timeout=20)
        except grpc.aio.AioRpcError as err:
            return err.code()


def creds(folder: Path, cert: str = "client.pem", key: str = "client-key.pem") -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=(folder / "ca.pem").read_bytes(),
        private_key=(folder / key).read_bytes(),
        certificate_chain=(folder / cert).read_bytes(),
    )


def test_the_dispatcher_and_cli_certificate_is_served(tmp_path, pki):
    async def check(target: str) -> Any:
        async with ExecutorClient(target, tls_dir=pki["ours"], timeout_seconds=20) as client:
            health, workloads = await client.check_health(), await client.list_workloads()
        # The dispatcher builds its channel credentials from the same folder.
        reply = await list_with(target, channel_credentials(pki["ours"]))
        return health, workloads, reply

    (health, workloads, reply), served = serve(tmp_path, pki["ours"] / "n1", check)
    assert (health, workloads) == ("SERVING", [])
    assert isinstance(reply, pb.ListWorkloadsResponse)
    assert served.count("/plba.executor.v1.Executor/ListWorkloads") == 2


def test_another_node_calls_with_its_node_certificate(tmp_path, pki):
    async def check(target: str) -> Any:
        # Executor to executor: n2's tls dir holds node.pem/node-key.pem (clientAuth too).
        async with ExecutorClient(target, tls_dir=pki["ours"] / "n2", timeout_seconds=20, server_name="n1") as client:
            return await client.list_workloads()

    workloads, served = serve(tmp_path, pki["ours"] / "n1", check)
    assert workloads == [] and served == ["/plba.executor.v1.Executor/ListWorkloads"]


def test_the_executor_is_verified_by_its_node_id(tmp_path, pki):
    node_creds = creds(pki["ours"] / "n2", "node.pem", "node-key.pem")

    async def check(target: str) -> Any:
        return await list_with(target, node_creds, "n1"), await list_with(target, node_creds, "n2")

    (as_n1, as_n2), served = serve(tmp_path, pki["ours"] / "n1", check)
    assert isinstance(as_n1, pb.ListWorkloadsResponse)
    assert as_n2 == grpc.StatusCode.UNAVAILABLE  # n1's certificate does not name n2
    assert len(served) == 1


@pytest.mark.parametrize(
    "client",
    [
        pytest.param("no_certificate", id="no-client-certificate"),
        pytest.param("other_ca", id="certificate-of-another-ca"),
        pytest.param("plaintext", id="plaintext"),
    ],
)
def test_refused_clients_never_reach_the_executor(tmp_path, pki, client):
    credentials = {
        "no_certificate": grpc.ssl_channel_credentials(root_certificates=(pki["ca_only"] / "ca.pem").read_bytes()),
        # Signed by another CA, trusting ours (so only the server's check can refuse it).
        "other_ca": grpc.ssl_channel_credentials(
            root_certificates=(pki["ours"] / "ca.pem").read_bytes(),
            private_key=(pki["rogue"] / "client-key.pem").read_bytes(),
            certificate_chain=(pki["rogue"] / "client.pem").read_bytes(),
        ),
        "plaintext": None,
    }[client]

    async def check(target: str) -> Any:
        return await list_with(target, credentials)

    code, served = serve(tmp_path, pki["ours"] / "n1", check)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert served == []


def test_a_node_of_another_ca_cannot_call_either(tmp_path, pki):
    async def check(target: str) -> Any:
        return await list_with(target, creds(pki["rogue"] / "n2", "node.pem", "node-key.pem"), "n1")

    code, served = serve(tmp_path, pki["ours"] / "n1", check)
    assert code == grpc.StatusCode.UNAVAILABLE and served == []
