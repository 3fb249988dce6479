"""Mutual TLS: the executor serves clients holding a certificate of its CA and refuses all others."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest

from agents.executor import build_server, stop_server
from agents.executor_client import ExecutorCallError, ExecutorClient
from agents.node import Node, NodeConfigError

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CA:
    """A throwaway certificate authority."""

    def __init__(self, cn: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cn: str, *, server: bool) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        # A node's certificate serves its executor and authenticates it to other executors.
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else []
        usages = usages or [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server:
            san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def write_dir(path: Path, files: dict[str, bytes]) -> Path:
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    ca, rogue = CA("plba-test-ca"), CA("rogue-ca")
    node_cert, node_key = ca.issue("n1", server=True)
    client_cert, client_key = ca.issue("dispatcher", server=False)
    rogue_cert, rogue_key = rogue.issue("intruder", server=False)
    return {
        "node": write_dir(root / "node", {"ca.pem": ca.pem(), "node.pem": node_cert, "node-key.pem": node_key}),
        "client": write_dir(
            root / "client", {"ca.pem": ca.pem(), "client.pem": client_cert, "client-key.pem": client_key}
        ),
        "rogue": write_dir(root / "rogue", {"ca.pem": ca.pem(), "client.pem": rogue_cert, "client-key.pem": rogue_key}),
        "ca_only": write_dir(root / "ca_only", {"ca.pem": ca.pem()}),
    }


async def _with_tls_server(tmp_path: Path, tls_dir: Path, check) -> object:  # type: ignore[no-untyped-def]
    node = await Node.open("n1", ["sim"], tmp_path / "n1")
    server, port = await build_server(node, "127.0.0.1:0", tls_dir=tls_dir)
    await server.start()
    try:
        return await check(f"127.0.0.1:{port}")
    finally:
        await stop_server(server, 1.0)
        await node.close()


def test_a_client_with_a_certificate_of_the_ca_is_served(tmp_path, pki):
    async def check(target: str) -> object:
        async with ExecutorClient(target, tls_dir=pki["client"], timeout_seconds=20) as client:
            return await client.check_health(), await client.list_workloads()

    assert asyncio.run(_with_tls_server(tmp_path, pki["node"], check)) == ("SERVING", [])


def test_another_node_may_call_with_its_node_certificate(tmp_path, pki):
    async def check(target: str) -> object:
        async with ExecutorClient(target, tls_dir=pki["node"], timeout_seconds=20) as client:
            return await client.check_health()

    assert asyncio.run(_with_tls_server(tmp_path, pki["node"], check)) == "SERVING"


def _refused(tmp_path: Path, pki: dict[str, Path], credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    from schemas import executor_pb2 as pb
    from schemas import executor_pb2_grpc as pb_grpc

    async def check(target: str) -> object:
        if credentials is None:
            channel = grpc.aio.insecure_channel(target)
        else:
            channel = grpc.aio.secure_channel(target, credentials)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await pb_grpc.ExecutorStub(channel).ListWorkloads(pb.ListWorkloadsRequest(), timeout=20)
            return err.value.code()

    code = asyncio.run(_with_tls_server(tmp_path, pki["node"], check))
    assert isinstance(code, grpc.StatusCode)
    return code


def test_a_client_without_a_certificate_is_refused(tmp_path, pki):
    creds = grpc.ssl_channel_credentials(root_certificates=(pki["ca_only"] / "ca.pem").read_bytes())
    assert _refused(tmp_path, pki, creds) == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_of_another_ca_is_refused(tmp_path, pki):
    rogue = pki["rogue"]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(rogue / "ca.pem").read_bytes(),
        private_key=(rogue / "client-key.pem").read_bytes(),
        certificate_chain=(rogue / "client.pem").read_bytes(),
    )
    assert _refused(tmp_path, pki, creds) == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_is_refused(tmp_path, pki):
    assert _refused(tmp_path, pki, None) == grpc.StatusCode.UNAVAILABLE


def test_the_project_client_reports_the_refusal_clearly(tmp_path, pki):
    async def check(target: str) -> object:
        async with ExecutorClient(target, tls_dir=pki["rogue"], timeout_seconds=20) as client:
            with pytest.raises(ExecutorCallError) as err:
                await client.list_workloads()
            return str(err.value)

    message = asyncio.run(_with_tls_server(tmp_path, pki["node"], check))
    assert isinstance(message, str) and message.startswith("node at 127.0.0.1:") and "is unreachable" in message


def test_an_incomplete_tls_directory_is_a_configuration_error(tmp_path, pki):
    async def build() -> None:
        node = await Node.open("n1", ["sim"], tmp_path / "n1")
        try:
            await build_server(node, "127.0.0.1:0", tls_dir=pki["ca_only"])
        finally:
            await node.close()

    with pytest.raises(
        NodeConfigError, match=r"missing node.pem, node-key.pem \(needs ca.pem, node.pem, node-key.pem\)"
    ):
        asyncio.run(build())
    with pytest.raises(ValueError, match=r"needs client\.pem and client-key\.pem"):
        ExecutorClient("127.0.0.1:1", tls_dir=pki["ca_only"])
