"""Migrations with mTLS on: executors call each other with their node certificates; an executor
without a valid client certificate is refused before any migration RPC reaches the target."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
import pytest

from agents.drivers.base import WorkloadSpec
from agents.migration import MigrationManager
from agents.migration.peer import Peers, PeerUnreachable
from plba.certs import init
from schemas import executor_pb2 as pb
from tests.integration.migrate_helpers import migrate, order, served_node


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    good = tmp_path_factory.mktemp("pki")
    rogue = tmp_path_factory.mktemp("rogue-pki")
    init(good, ["na", "nb"])
    init(rogue, ["na"])  # another CA: same names, certificates nobody trusts
    return good, rogue


def spec() -> WorkloadSpec:
    command = f"{sys.executable} -m agents.drivers.counter_app --tick 0.1"
    return WorkloadSpec("p1", "container", "process", memory_bytes=32 << 20, params={"command": command})


def test_a_migration_over_mtls_between_two_nodes(tmp_path, pkis):
    good, _rogue = pkis

    async def scenario() -> None:
        async with (
            served_node(tmp_path, "na", ["process"], tls_dir=good / "na") as a,
            served_node(tmp_path, "nb", ["process"], tls_dir=good / "nb") as b,
        ):
            await a.client.start_workload(spec())
            # The dispatcher's own certificate (client.pem) calls the source.
            channel = grpc.aio.secure_channel(a.endpoint, _client_credentials(good))
            try:
                from schemas import executor_pb2_grpc as pb_grpc

                steps = await migrate(pb_grpc.ExecutorStub(channel), order("p1", a, b))
            finally:
                await channel.close()
            assert steps[-1].state == "completed", steps[-1]
            assert [w.spec.workload_id for w in await b.client.list_workloads()] == ["p1"]

    asyncio.run(scenario())


def test_an_executor_without_a_valid_client_certificate_is_refused(tmp_path, pkis):
    good, rogue = pkis

    async def scenario() -> None:
        async with (
            served_node(tmp_path, "na", ["process"], tls_dir=good / "na") as a,
            served_node(tmp_path, "nb", ["process"], tls_dir=good / "nb") as b,
        ):
            await a.client.start_workload(spec())
            # An executor whose node certificate comes from another CA: the target refuses the
            # handshake, no migration RPC reaches it, the order fails and the workload stays.
            impostor = tmp_path / "impostor"  # trusts the right CA, holds a certificate of another
            impostor.mkdir()
            (impostor / "ca.pem").write_bytes((good / "ca.pem").read_bytes())
            for name in ("node.pem", "node-key.pem"):
                (impostor / name).write_bytes((rogue / "na" / name).read_bytes())
            a.node._migrations = MigrationManager(a.node, tls_dir=impostor)
            steps = await migrate(a.stub, order("p1", a, b, deadline_seconds=4))
            assert steps[-1].state == "failed" and steps[-1].error.code == "target_unreachable", steps[-1]
            assert [w.spec.workload_id for w in await a.client.list_workloads()] == ["p1"]
            assert b.node.migrations.journal.get(steps[-1].order_id) is None
            assert await b.client.list_workloads() == []
            # Plaintext and a certificate-less TLS client are refused the same way.
            for peers in (Peers(None), Peers(good / "ca-only")):
                try:
                    with pytest.raises(PeerUnreachable):
                        await peers.call(b.endpoint, "MigrationStatus", pb.MigrationStatusRequest(order_id="o1"),
                                         timeout=3)  # fmt: skip
                except ValueError as exc:  # the channel cannot even be made without a certificate
                    assert "client.pem" in str(exc)
                finally:
                    await peers.close()

    (good / "ca-only").mkdir(exist_ok=True)
    (good / "ca-only" / "ca.pem").write_bytes((good / "ca.pem").read_bytes())
    asyncio.run(scenario())


def _client_credentials(pki: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client-key.pem").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )
