"""A single-node Apache Kafka (KRaft) broker on loopback, run from Maven Central's jars.

``up`` fetches ``org.apache.kafka:kafka_2.13`` and its runtime dependencies with Maven (the pom is
``compose/kafka/pom.xml``) into the cache, formats KRaft storage once, starts the broker detached
with a pid file and waits until it answers a metadata request. ``down`` stops exactly that pid.

With ``kafka_local_security = "sasl_ssl"`` the broker also listens for SASL_SSL on
``kafka_sasl_ssl_port``: TLS with the keystore of ``plba certs init`` (in ``certs_dir``) and
SCRAM-SHA-512 for the user ``kafka_sasl_username``, created when the storage is formatted (only its
salted form is passed to the format tool) or, on storage formatted earlier, through the admin API.
The PLAINTEXT listener stays for local tools.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schemas.settings import REPO_ROOT, KafkaValue, Settings

POM = REPO_ROOT / "compose" / "kafka" / "pom.xml"
LOG4J_CONFIG = REPO_ROOT / "compose" / "kafka" / "log4j2.properties"
MAIN_CLASS = "kafka.Kafka"
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
_SCRAM_USER = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")  # no , = ] " that the format tool's syntax would split on
_QUIET = logging.getLogger("plba.localkafka.probe")
_QUIET.setLevel(logging.CRITICAL)
_QUIET.propagate = False


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerPaths:
    libs: Path
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def console_log(self) -> Path:
        return self.logs / "console.log"


def paths(settings: Settings) -> BrokerPaths:
    return BrokerPaths(
        libs=settings.cache_dir / f"kafka-{settings.kafka_version}" / "libs",
        home=settings.data_dir / f"kafka-{settings.kafka_port}",
    )


def server_properties(settings: Settings, p: BrokerPaths, store_password: str = "") -> str:
    """Single-node KRaft settings: replication factors of 1, no initial rebalance delay.

    ``store_password`` unlocks the SASL_SSL listener's key- and truststore (sasl_ssl only).
    """
    port, ctl = settings.kafka_port, settings.kafka_controller_port
    sasl = settings.kafka_local_security == "sasl_ssl"
    extra_listener = f",SASL_SSL://127.0.0.1:{settings.kafka_sasl_ssl_port}" if sasl else ""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{ctl}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}{extra_listener}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}{extra_listener}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
            + (",SASL_SSL:SASL_SSL" if sasl else ""),
            f"log.dirs={p.data}",
            "num.partitions=3",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=12",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Faust's client relies on topics being created explicitly (plba topics create);
            # auto-creation would hide a missing topic behind a one-partition default.
            "auto.create.topics.enable=false",
            "log.retention.check.interval.ms=60000",
            *(_sasl_ssl_properties(settings, store_password) if sasl else []),
            "",
        ]
    )


def _sasl_ssl_properties(settings: Settings, store_password: str) -> list[str]:
    from plba.certs import KAFKA_DIR, KAFKA_KEYSTORE, KAFKA_TRUSTSTORE

    stores = settings.certs_dir / KAFKA_DIR
    mech = SCRAM_MECHANISM.lower()
    return [
        f"listener.name.sasl_ssl.sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        # The broker side of SCRAM needs no credentials of its own: users live in the cluster metadata.
        f"listener.name.sasl_ssl.{mech}.sasl.jaas.config={_SCRAM_LOGIN}",
        "listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
        f"listener.name.sasl_ssl.ssl.keystore.location={stores / KAFKA_KEYSTORE}",
        f"listener.name.sasl_ssl.ssl.keystore.password={store_password}",
        f"listener.name.sasl_ssl.ssl.key.password={store_password}",
        "listener.name.sasl_ssl.ssl.truststore.type=PKCS12",
        f"listener.name.sasl_ssl.ssl.truststore.location={stores / KAFKA_TRUSTSTORE}",
        f"listener.name.sasl_ssl.ssl.truststore.password={store_password}",
        "listener.name.sasl_ssl.ssl.client.auth=none",
    ]


def sasl_ssl_client_config(settings: Settings) -> dict[str, KafkaValue]:
    """confluent-kafka settings reaching the local broker's SASL_SSL listener as the configured user."""
    from plba.certs import CA_CERT

    return {
        "bootstrap.servers": f"127.0.0.1:{settings.kafka_sasl_ssl_port}",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": settings.kafka_sasl_password,
        "ssl.ca.location": str(settings.certs_dir / CA_CERT),
    }


def _check_sasl_settings(settings: Settings) -> str:
    """The keystore password, after checking that the user, password and stores are there."""
    from plba.certs import CertsError, kafka_store_password

    if not _SCRAM_USER.match(settings.kafka_sasl_username) or not settings.kafka_sasl_password:
        raise LocalKafkaError(
            "the SASL_SSL listener needs a SCRAM user: set PLBA_KAFKA_SASL_USERNAME (letters, digits, . _ @ -) "
            "and PLBA_KAFKA_SASL_PASSWORD"
        )
    try:
        return kafka_store_password(settings.certs_dir)
    except CertsError as exc:
        raise LocalKafkaError(str(exc)) from exc


def scram_salted_password(password: str, salt: bytes, iterations: int, mechanism: str = SCRAM_MECHANISM) -> bytes:
    """SCRAM's SaltedPassword = Hi(password, salt, i) (RFC 5802): PBKDF2 with the mechanism's HMAC."""
    digest = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
    return hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)


def _scram_format_argument(settings: Settings) -> str:
    # The salted form keeps the password itself off the format tool's command line (and /proc).
    salt = secrets.token_bytes(32)
    salted = scram_salted_password(settings.kafka_sasl_password, salt, SCRAM_ITERATIONS)
    b64 = base64.b64encode
    return (
        f"{SCRAM_MECHANISM}=[name={settings.kafka_sasl_username},iterations={SCRAM_ITERATIONS},"
        f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]'
    )


def _upsert_scram_user(settings: Settings, timeout: float = 30.0) -> None:
    """Create or update the SCRAM user through the PLAINTEXT listener (storage formatted earlier)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{settings.kafka_port}"}, logger=_QUIET)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    change = UserScramCredentialUpsertion(settings.kafka_sasl_username, info, settings.kafka_sasl_password.encode())
    try:
        for fut in admin.alter_user_scram_credentials([change], request_timeout=timeout).values():
            fut.result()
    except KafkaException as exc:
        raise LocalKafkaError(f"could not create the SCRAM user {settings.kafka_sasl_username!r}: {exc}") from exc


def _require(tool: str, why: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise LocalKafkaError(f"{tool} not found on PATH: {why}")
    return path


def fetch_jars(settings: Settings, log: Callable[[str], None] = print) -> Path:
    """Download the broker's jars into the cache (once per version) and return the folder."""
    p = paths(settings)
    if p.libs.is_dir() and any(p.libs.glob("kafka_2.13-*.jar")):
        return p.libs
    mvn = _require("mvn", "Maven fetches the Kafka broker jars from Maven Central (apt-get install maven)")
    _require("java", "the Kafka broker runs on Java 17+ (apt-get install openjdk-17-jre-headless)")
    log(f"fetching Apache Kafka {settings.kafka_version} jars from Maven Central …")
    tmp = p.libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={settings.kafka_version}",
        "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise LocalKafkaError(f"Maven could not fetch Kafka {settings.kafka_version}:\n{tail}")
    tmp.rename(p.libs)  # atomic: a half-finished download is never taken for a cache hit
    return p.libs


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def running_pid(settings: Settings) -> int | None:
    """The pid of the broker this project started, if it is still alive."""
    p = paths(settings)
    try:
        pid = int(p.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    # Guard against pid reuse: only a java process running our config counts.
    if MAIN_CLASS.encode() in cmdline and str(p.config).encode() in cmdline:
        return pid
    return None


def broker_ready(bootstrap: str, timeout: float = 2.0, extra: dict[str, KafkaValue] | None = None) -> bool:
    """True when the broker answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not _port_open(int(port), host or "127.0.0.1"):
        return False
    cfg: dict[str, KafkaValue] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(timeout * 1000),
        **(extra or {}),
    }
    try:
        # librdkafka would print every refused connection while the broker starts: keep it quiet.
        AdminClient(cfg, logger=_QUIET).list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    return True


def _cluster_id() -> str:
    """A random KRaft cluster id (URL-safe base64 of a UUID) that does not start with '-'.

    The storage tool's argument parser reads an id starting with '-' as an option and fails
    ("argument --cluster-id/-t: expected one argument"), one format in 64; Kafka's own
    ``Uuid.randomUuid`` draws again in that case, and so does this.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _format_storage(settings: Settings, p: BrokerPaths, java: str) -> bool:
    """Format the KRaft storage unless done before; True if it was formatted now."""
    if (p.data / "meta.properties").exists():
        return False
    cid = _cluster_id()
    cmd = [java, "-cp", f"{p.libs}/*", "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(p.config)]
    if settings.kafka_local_security == "sasl_ssl":
        cmd += ["--add-scram", _scram_format_argument(settings)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LocalKafkaError(f"formatting KRaft storage failed:\n{proc.stdout}{proc.stderr}")
    return True


def up(settings: Settings, wait_seconds: float = 90.0, log: Callable[[str], None] = print) -> str:
    """Start the local broker (if not running) and return its bootstrap address."""
    bootstrap = f"127.0.0.1:{settings.kafka_port}"
    sasl = settings.kafka_local_security == "sasl_ssl"
    pid = running_pid(settings)
    if pid and broker_ready(bootstrap):
        if sasl and not _port_open(settings.kafka_sasl_ssl_port):
            raise LocalKafkaError(
                f"Kafka is up at {bootstrap} (pid {pid}) without a SASL_SSL listener on port "
                f"{settings.kafka_sasl_ssl_port}: stop it first (plba kafka down)"
            )
        log(f"Kafka is already up at {bootstrap} (pid {pid})")
        return bootstrap
    store_password = _check_sasl_settings(settings) if sasl else ""
    ports = (settings.kafka_port, settings.kafka_controller_port, *((settings.kafka_sasl_ssl_port,) if sasl else ()))
    for port in ports:
        if _port_open(port):
            raise LocalKafkaError(
                f"port {port} on 127.0.0.1 is taken by another process; free it or choose other ports "
                "(PLBA_KAFKA_PORT / PLBA_KAFKA_CONTROLLER_PORT / PLBA_KAFKA_SASL_SSL_PORT)"
            )
    java = _require("java", "the Kafka broker runs on Java 17+ (apt-get install openjdk-17-jre-headless)")
    p = paths(settings)
    fetch_jars(settings, log)
    for d in (p.data, p.logs):
        d.mkdir(parents=True, exist_ok=True)
    _write_private(p.config, server_properties(settings, p, store_password))
    formatted_now = _format_storage(settings, p, java)
    cmd = [
        java, f"-Xmx{settings.kafka_heap}", f"-Xms{settings.kafka_heap}", "-XX:+UseG1GC",
        "-Djava.awt.headless=true", f"-Dkafka.logs.dir={p.logs}",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp", f"{p.libs}/*", MAIN_CLASS, str(p.config),
    ]  # fmt: skip
    with open(p.console_log, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    p.pid_file.write_text(f"{proc.pid}\n")
    log(f"starting Kafka {settings.kafka_version} at {bootstrap} (pid {proc.pid}, data {p.home})")
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalKafkaError(f"the broker exited with code {proc.returncode}:\n{tail_log(settings, 20)}")
        if broker_ready(bootstrap, timeout=1.0):
            if sasl:
                _open_sasl_ssl(settings, formatted_now, deadline, log)
            log(f"Kafka is up at {bootstrap}")
            return bootstrap
        time.sleep(0.5)
    down(settings, log=lambda _m: None)
    raise LocalKafkaError(f"the broker did not answer within {wait_seconds:.0f} s:\n{tail_log(settings, 20)}")


def _open_sasl_ssl(settings: Settings, formatted_now: bool, deadline: float, log: Callable[[str], None]) -> None:
    """Make sure the SCRAM user exists, then wait until a SASL_SSL client is served."""
    if not formatted_now:
        _upsert_scram_user(settings)
    sasl_bootstrap = f"127.0.0.1:{settings.kafka_sasl_ssl_port}"
    client = sasl_ssl_client_config(settings)
    while True:
        if broker_ready(sasl_bootstrap, timeout=2.0, extra=client):
            log(f"SASL_SSL ({SCRAM_MECHANISM}, user {settings.kafka_sasl_username}) is served at {sasl_bootstrap}")
            return
        if time.monotonic() > deadline:
            down(settings, log=lambda _m: None)
            raise LocalKafkaError(
                f"the broker does not serve SASL_SSL clients at {sasl_bootstrap}:\n{tail_log(settings, 20)}"
            )
        time.sleep(0.5)


def _write_private(path: Path, text: str) -> None:
    # server.properties holds the keystore password: owner-only from the first byte.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def down(settings: Settings, timeout: float = 30.0, log: Callable[[str], None] = print) -> bool:
    """Stop the broker this project started; True if one was stopped."""
    p = paths(settings)
    pid = running_pid(settings)
    if pid is None:
        p.pid_file.unlink(missing_ok=True)
        log("Kafka is not running (no broker started by plba)")
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        _reap(pid)
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap(pid)
    p.pid_file.unlink(missing_ok=True)
    log(f"Kafka stopped (pid {pid})")
    return True


def _reap(pid: int) -> None:
    # When the broker is our own child (tests), collect it so it does not linger as a zombie.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(settings: Settings) -> dict[str, object]:
    p = paths(settings)
    pid = running_pid(settings)
    bootstrap = f"127.0.0.1:{settings.kafka_port}"
    return {
        "running": pid is not None,
        "pid": pid,
        "bootstrap": bootstrap,
        "ready": bool(pid) and broker_ready(bootstrap, timeout=1.0),
        "version": settings.kafka_version,
        "data_dir": str(p.home),
        **_security_status(settings, p, running=pid is not None),
    }


def _security_status(settings: Settings, p: BrokerPaths, *, running: bool) -> dict[str, object]:
    # A running broker is described by its own config; a stopped one by what `up` would start.
    if running:
        try:
            match = re.search(r"^listeners=.*SASL_SSL://([^,\s]+)", p.config.read_text(), re.M)
        except OSError:
            match = None
        sasl_bootstrap = match.group(1) if match else None
    elif settings.kafka_local_security == "sasl_ssl":
        sasl_bootstrap = f"127.0.0.1:{settings.kafka_sasl_ssl_port}"
    else:
        sasl_bootstrap = None
    if sasl_bootstrap is None:
        return {"security": "none"}
    return {"security": "sasl_ssl", "sasl_ssl_bootstrap": sasl_bootstrap}


def tail_log(settings: Settings, lines: int = 50) -> str:
    p = paths(settings)
    text = []
    for f in (p.logs / "server.log", p.console_log):
        if f.exists():
            text.extend(f.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(text[-lines:])
