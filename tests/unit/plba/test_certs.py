"""``plba certs init``: layout, key usages, SANs, permissions, idempotence and refusals."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from plba import certs
from plba.cli.main import cli

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, ValueError (issuer mismatch), TypeError
        return False
    return True


def _usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    out = tmp_path / "pki"
    result = certs.init(out, ["n1", "n2"], days=30, now=NOW)
    assert result.kept == []
    return out


def test_layout_and_chain(pki):
    ca = _cert(pki / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in ("client.pem", "n1/node.pem", "n2/node.pem"):
        assert _signed_by(_cert(pki / leaf), ca), leaf
    for node in ("n1", "n2"):
        assert (pki / node / "ca.pem").read_bytes() == (pki / "ca.pem").read_bytes()
    rogue = certs.init(pki.parent / "other", ["n1"], now=NOW)
    assert not _signed_by(_cert(rogue.out / "client.pem"), ca)


def test_node_certificates_serve_and_call_with_their_sans(pki):
    cert = _cert(pki / "n1" / "node.pem")
    assert _usages(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    dns, ips = _sans(cert)
    assert set(dns) == {"localhost", "n1"} and ips == ["127.0.0.1"]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_certificate_is_client_only(pki):
    cert = _cert(pki / "client.pem")
    assert _usages(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}


def test_an_ip_node_id_becomes_an_ip_san(tmp_path):
    out = certs.init(tmp_path / "p", ["10.0.0.7"], now=NOW).out
    dns, ips = _sans(_cert(out / "10.0.0.7" / "node.pem"))
    assert ipaddress.ip_address("10.0.0.7") in {ipaddress.ip_address(i) for i in ips} and "10.0.0.7" not in dns


def test_keys_match_certificates_and_are_owner_only(pki):
    for cert_name, key_name in (("ca.pem", "ca-key.pem"), ("client.pem", "client-key.pem"),
                                ("n1/node.pem", "n1/node-key.pem")):  # fmt: skip
        key = serialization.load_pem_private_key((pki / key_name).read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key() == _cert(pki / cert_name).public_key()
        assert _mode(pki / key_name) == 0o600, key_name
    assert _mode(pki / "kafka" / "store-password") == 0o600
    assert _mode(pki / "kafka" / "broker.p12") == 0o600
    assert _mode(pki) == 0o700
    assert not list(pki.rglob(".*"))  # no temporary files left behind


def test_validity_follows_days(pki):
    cert = _cert(pki / "n1" / "node.pem")
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=30)
    assert cert.not_valid_before_utc < NOW


def test_kafka_stores_open_with_their_password(pki):
    password = certs.kafka_store_password(pki).encode()
    keystore = pkcs12.load_pkcs12((pki / "kafka" / "broker.p12").read_bytes(), password)
    assert keystore.cert is not None and keystore.key is not None
    broker = keystore.cert.certificate
    assert _signed_by(broker, _cert(pki / "ca.pem"))
    assert ExtendedKeyUsageOID.SERVER_AUTH in _usages(broker)
    assert _sans(broker)[1] == ["127.0.0.1"]
    truststore = pkcs12.load_pkcs12((pki / "kafka" / "truststore.p12").read_bytes(), password)
    assert [c.certificate for c in truststore.additional_certs] == [_cert(pki / "ca.pem")]
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12((pki / "kafka" / "broker.p12").read_bytes(), b"wrong")


def test_running_again_keeps_everything(pki):
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    result = certs.init(pki, ["n1", "n2"], now=NOW)
    assert result.written == [] and len(result.kept) == 11
    assert {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()} == before


def test_a_new_node_is_issued_by_the_existing_ca(pki):
    ca_before = (pki / "ca.pem").read_bytes()
    result = certs.init(pki, ["n1", "n2", "n3"], now=NOW)
    assert result.written == ["n3/node.pem", "n3/node-key.pem", "n3/ca.pem"]
    assert (pki / "ca.pem").read_bytes() == ca_before
    assert _signed_by(_cert(pki / "n3" / "node.pem"), _cert(pki / "ca.pem"))


def test_force_starts_a_new_ca(pki):
    old_ca = _cert(pki / "ca.pem")
    result = certs.init(pki, ["n1"], force=True, now=NOW)
    assert "ca.pem" in result.written and "n1/node.pem" in result.written
    assert _cert(pki / "ca.pem") != old_ca
    assert _signed_by(_cert(pki / "n1" / "node.pem"), _cert(pki / "ca.pem"))
    assert (pki / "n1" / "ca.pem").read_bytes() == (pki / "ca.pem").read_bytes()


def test_a_half_present_pair_is_refused(pki):
    (pki / "n2" / "node-key.pem").unlink()
    with pytest.raises(certs.CertsError, match=r"node n2 in .* is incomplete \(missing n2/node-key.pem\)"):
        certs.init(pki, ["n1", "n2"], now=NOW)
    assert not (pki / "n2" / "node-key.pem").exists()


def test_certificates_without_their_ca_are_refused(pki):
    (pki / "ca.pem").unlink()
    (pki / "ca-key.pem").unlink()
    with pytest.raises(certs.CertsError, match="holds certificates but not their CA"):
        certs.init(pki, ["n1"], now=NOW)


def test_a_foreign_ca_key_is_refused(pki, tmp_path):
    other = certs.init(tmp_path / "other", ["n1"], now=NOW).out
    (pki / "ca-key.pem").write_bytes((other / "ca-key.pem").read_bytes())
    with pytest.raises(certs.CertsError, match="is not the key of"):
        certs.init(pki, ["n1", "n9"], now=NOW)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no node ids"),
        (" , ", "no node ids"),
        ("n1,n1", "repeat"),
        ("../etc", "use letters"),
        ("a b", "use letters"),
        ("kafka", "reserved"),
        ("-x", "use letters"),
    ],
)
def test_bad_node_lists(text, message):
    with pytest.raises(certs.CertsError, match=message):
        certs.parse_nodes(text)


def test_cli_writes_refuses_and_never_prints_keys(tmp_path):
    out = tmp_path / "cli"
    runner = CliRunner()
    first = runner.invoke(cli, ["certs", "init", "--out", str(out), "--nodes", "a,b", "--days", "10"])
    assert first.exit_code == 0, first.output
    assert f"wrote {out / 'a' / 'node-key.pem'}" in first.output
    secrets = [
        (out / name).read_text().strip()
        for name in ("ca-key.pem", "client-key.pem", "a/node-key.pem", "kafka/store-password")
    ]
    second = runner.invoke(cli, ["certs", "init", "--out", str(out), "--nodes", "a,b"])
    assert second.exit_code == 0 and "nothing to do" in second.output
    bad = runner.invoke(cli, ["certs", "init", "--out", str(out), "--nodes", "a,,kafka"])
    assert bad.exit_code == 1 and "reserved" in bad.output
    days = runner.invoke(cli, ["certs", "init", "--out", str(out), "--days", "0"])
    assert days.exit_code == 2
    for result in (first, second, bad):
        for secret in secrets:
            for line in secret.splitlines():
                assert line.startswith("-----") or line not in result.output


def test_cli_reports_an_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["certs", "init", "--out", str(blocker)])
    assert result.exit_code == 1 and "is not a folder" in result.output
    result = CliRunner().invoke(cli, ["certs", "init", "--out", str(blocker / "sub")])
    assert result.exit_code == 1 and "cannot write" in result.output


def test_help_documents_the_layout():
    result = CliRunner().invoke(cli, ["certs", "init", "--help"])
    assert result.exit_code == 0
    for text in ("ca-key.pem", "client-key.pem", "node-key.pem", "broker.p12", "truststore.p12", "PLBA_CERTS_DIR"):
        assert text in result.output
