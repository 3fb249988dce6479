"""A development PKI: one CA, node and client certificates for gRPC mTLS, and the Kafka broker's stores.

:func:`init` writes this layout (``OUT`` is ``--out``)::

    OUT/ca.pem, ca-key.pem            the development CA (its key only signs; keep it off the nodes)
    OUT/client.pem, client-key.pem    dispatcher / CLI client certificate (clientAuth); OUT is their tls dir
    OUT/<node>/ca.pem                 a copy of the CA certificate, so OUT/<node> is that node's tls dir
    OUT/<node>/node.pem, node-key.pem serverAuth + clientAuth (executors call each other),
                                      SANs 127.0.0.1, localhost and the node id
    OUT/kafka/broker.p12              PKCS12 keystore of the local broker's SSL listener (127.0.0.1, localhost)
    OUT/kafka/truststore.p12          PKCS12 truststore holding the CA (Java's trusted-certificate form)
    OUT/kafka/store-password          the password of both stores

Private keys and the store password are written 0600 (folders 0700) and never printed or logged.
Nothing is overwritten unless ``force``: files that exist are kept, missing ones are issued with
the existing CA, so running it again is harmless and adding a node later keeps the same CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
CLIENT_CERT, CLIENT_KEY = "client.pem", "client-key.pem"
NODE_CERT, NODE_KEY = "node.pem", "node-key.pem"
KAFKA_DIR = "kafka"
KAFKA_KEYSTORE, KAFKA_TRUSTSTORE, KAFKA_STORE_PASSWORD = "broker.p12", "truststore.p12", "store-password"
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_IPS = ("127.0.0.1",)
# Node ids as the node accepts them (agents/node.py), minus what cannot be a folder of OUT.
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,252}$")
_RESERVED = {KAFKA_DIR}
_SKEW = dt.timedelta(minutes=5)  # not-before slack for clocks that disagree a little


class CertsError(RuntimeError):
    """The certificates could not be created; the message says why and what to do."""


@dataclass
class InitResult:
    """What :func:`init` did, as paths relative to the output folder."""

    out: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def parse_nodes(text: str) -> list[str]:
    """``"n1, n2"`` → ``["n1", "n2"]``; CertsError on an empty list or an unusable id."""
    nodes = [n.strip() for n in text.split(",") if n.strip()]
    if not nodes:
        raise CertsError("no node ids: write --nodes n1,n2,…")
    for node in nodes:
        if not _NODE_ID.match(node):
            raise CertsError(f"node id {node!r}: use letters, digits and . _ : @ + - (first a letter or digit)")
        if node in _RESERVED:
            raise CertsError(f"node id {node!r} is reserved (OUT/{node} holds the Kafka stores)")
    if len(set(nodes)) != len(nodes):
        raise CertsError(f"node ids repeat: {text!r}")
    return nodes


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only (0600), atomically: never a moment world-readable."""
    _write(path, data, 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def init(
    out: Path,
    nodes: Sequence[str],
    *,
    days: int = 365,
    force: bool = False,
    now: dt.datetime | None = None,
) -> InitResult:
    """Create (or complete) the development PKI in ``out``; see the module docstring for the layout."""
    if days < 1:
        raise CertsError(f"--days must be at least 1, not {days}")
    if days > 3650:
        raise CertsError(f"--days {days}: development certificates live at most 3650 days")
    nodes = list(nodes)
    parse_nodes(",".join(nodes))
    now = now or dt.datetime.now(dt.UTC)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CertsError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    result = InitResult(out=out)

    # Each group is written as a whole or kept as a whole; a half-present group is an error.
    groups: list[tuple[str, list[str]]] = [
        ("the CA", [CA_CERT, CA_KEY]),
        ("the client certificate", [CLIENT_CERT, CLIENT_KEY]),
        *[(f"node {n}", [f"{n}/{NODE_CERT}", f"{n}/{NODE_KEY}"]) for n in nodes],
        (
            "the Kafka stores",
            [f"{KAFKA_DIR}/{name}" for name in (KAFKA_KEYSTORE, KAFKA_TRUSTSTORE, KAFKA_STORE_PASSWORD)],
        ),
    ]
    todo: dict[str, bool] = {}
    for what, names in groups:
        present = [n for n in names if (out / n).exists()]
        if force or not present:
            todo[what] = True
        elif len(present) == len(names):
            todo[what] = False
            result.kept.extend(names)
        else:
            missing = sorted(set(names) - set(present))
            raise CertsError(
                f"{what} in {out} is incomplete (missing {', '.join(missing)}); "
                "remove the rest or use --force to issue everything again (a new CA)"
            )
    if todo["the CA"] and result.kept:
        raise CertsError(
            f"{out} holds certificates but not their CA ({', '.join(result.kept[:3])}…); "
            "use --force to issue everything again, or another --out"
        )
    stale_ca = [n for n in nodes if _read(out / n / CA_CERT) != _read(out / CA_CERT)]
    if todo["the CA"]:
        ca_cert, ca_key = _new_ca(now, days)
        _write(out / CA_CERT, _pem_cert(ca_cert), 0o644)
        write_private(out / CA_KEY, _pem_key(ca_key))
        result.written.extend([CA_CERT, CA_KEY])
    elif any(todo.values()) or stale_ca:
        ca_cert, ca_key = _load_ca(out)
    else:
        return result  # everything is there already

    if todo["the client certificate"]:
        cert, key = _issue(ca_cert, ca_key, "plba-client", now, days, server=False, names=())
        _write(out / CLIENT_CERT, _pem_cert(cert), 0o644)
        write_private(out / CLIENT_KEY, _pem_key(key))
        result.written.extend([CLIENT_CERT, CLIENT_KEY])
    for node in nodes:
        node_dir = out / node
        if todo[f"node {node}"]:
            cert, key = _issue(
                ca_cert, ca_key, node, now, days, server=True, names=(*LOOPBACK_IPS, *LOOPBACK_NAMES, node)
            )
            _write(node_dir / NODE_CERT, _pem_cert(cert), 0o644)
            write_private(node_dir / NODE_KEY, _pem_key(key))
            result.written.extend([f"{node}/{NODE_CERT}", f"{node}/{NODE_KEY}"])
        # A node's tls dir needs the CA beside its own pair.
        if todo["the CA"] or node in stale_ca:
            _write(node_dir / CA_CERT, _pem_cert(ca_cert), 0o644)
            result.written.append(f"{node}/{CA_CERT}")
    if todo["the Kafka stores"]:
        result.written.extend(_kafka_stores(out / KAFKA_DIR, ca_cert, ca_key, now, days))
    return result


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _kafka_stores(
    folder: Path, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int
) -> list[str]:
    cert, key = _issue(
        ca_cert, ca_key, "plba-kafka-broker", now, days, server=True, names=(*LOOPBACK_IPS, *LOOPBACK_NAMES)
    )
    password = secrets.token_urlsafe(24)
    # PBES2 with AES-256 and an HMAC-SHA256 MAC: what Java 17's PKCS12 keystore reads and writes.
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    keystore = pkcs12.serialize_key_and_certificates(b"broker", key, cert, [ca_cert], encryption)
    # Java ignores certificates in a PKCS12 file unless they carry its trusted-usage attribute,
    # which serialize_java_truststore adds.
    truststore = pkcs12.serialize_java_truststore([pkcs12.PKCS12Certificate(ca_cert, b"plba-ca")], encryption)
    write_private(folder / KAFKA_STORE_PASSWORD, password.encode())
    write_private(folder / KAFKA_KEYSTORE, keystore)
    _write(folder / KAFKA_TRUSTSTORE, truststore, 0o644)
    return [f"{KAFKA_DIR}/{name}" for name in (KAFKA_KEYSTORE, KAFKA_TRUSTSTORE, KAFKA_STORE_PASSWORD)]


def kafka_store_password(out: Path) -> str:
    """The password of the Kafka key- and truststore written by :func:`init` (for the broker's config)."""
    path = Path(out) / KAFKA_DIR / KAFKA_STORE_PASSWORD
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise CertsError(f"cannot read {path}: {exc.strerror} (run `plba certs init --out {out}`)") from exc


# --- certificates -----------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:

    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PLBA development"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # A CA only signs certificates; an ECDSA leaf signs handshakes (and may agree keys).
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _new_key() -> ec.EllipticCurvePrivateKey:

    return ec.generate_private_key(ec.SECP256R1())


def _new_ca(now: dt.datetime, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:

    key = _new_key()
    name = _name("PLBA development CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _load_ca(out: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:

    try:
        cert = x509.load_pem_x509_certificate((out / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((out / CA_KEY).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertsError(f"cannot read the CA in {out} ({type(exc).__name__}); use --force to start a new CA") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
        raise CertsError(f"{out / CA_KEY} is not the key of {out / CA_CERT}; use --force to start a new CA")
    return cert, key


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cn: str,
    now: dt.datetime,
    days: int,
    *,
    server: bool,
    names: Iterable[str],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:

    key = _new_key()
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    sans: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem_cert(cert: x509.Certificate) -> bytes:

    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
