"""A single-node Apache Kafka (KRaft) broker on loopback, run from Maven Central's jars.

``up`` fetches ``org.apache.kafka:kafka_2.13`` and its runtime dependencies with Maven (the pom is
``compose/kafka/pom.xml``) into the cache, formats KRaft storage once, starts the broker detached
with a pid file and waits until it answers a metadata request. ``down`` stops exactly that pid.
"""

from __future__ import annotations

import logging
import os
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


def server_properties(settings: Settings, p: BrokerPaths) -> str:
    """Single-node KRaft settings: replication factors of 1, no initial rebalance delay."""
    port, ctl = settings.kafka_port, settings.kafka_controller_port
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{ctl}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
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
            "",
        ]
    )


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


def _format_storage(settings: Settings, p: BrokerPaths, java: str) -> None:
    if (p.data / "meta.properties").exists():
        return
    cluster_id = uuid.uuid4().bytes
    import base64

    cid = base64.urlsafe_b64encode(cluster_id).decode().rstrip("=")
    cmd = [java, "-cp", f"{p.libs}/*", "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(p.config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LocalKafkaError(f"formatting KRaft storage failed:\n{proc.stdout}{proc.stderr}")


def up(settings: Settings, wait_seconds: float = 90.0, log: Callable[[str], None] = print) -> str:
    """Start the local broker (if not running) and return its bootstrap address."""
    bootstrap = f"127.0.0.1:{settings.kafka_port}"
    pid = running_pid(settings)
    if pid and broker_ready(bootstrap):
        log(f"Kafka is already up at {bootstrap} (pid {pid})")
        return bootstrap
    for port in (settings.kafka_port, settings.kafka_controller_port):
        if _port_open(port):
            raise LocalKafkaError(
                f"port {port} on 127.0.0.1 is taken by another process; "
                "free it or choose other ports (PLBA_KAFKA_PORT / PLBA_KAFKA_CONTROLLER_PORT)"
            )
    java = _require("java", "the Kafka broker runs on Java 17+ (apt-get install openjdk-17-jre-headless)")
    p = paths(settings)
    fetch_jars(settings, log)
    for d in (p.data, p.logs):
        d.mkdir(parents=True, exist_ok=True)
    p.config.write_text(server_properties(settings, p))
    _format_storage(settings, p, java)
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
            log(f"Kafka is up at {bootstrap}")
            return bootstrap
        time.sleep(0.5)
    down(settings, log=lambda _m: None)
    raise LocalKafkaError(f"the broker did not answer within {wait_seconds:.0f} s:\n{tail_log(settings, 20)}")


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
    }


def tail_log(settings: Settings, lines: int = 50) -> str:
    p = paths(settings)
    text = []
    for f in (p.logs / "server.log", p.console_log):
        if f.exists():
            text.extend(f.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(text[-lines:])
