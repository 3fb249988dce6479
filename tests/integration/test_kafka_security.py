"""Kafka over SASL_SSL (SCRAM-SHA-512): confluent-kafka and Faust through the same settings.

Runs a private broker (own ports, data and certificates under the test's temporary folder) with
the SASL_SSL listener of ``plba kafka up`` and certificates of ``plba certs init``; the shared
broker other tests use is never touched. The SASL password is random per run, so finding it
anywhere in a log can only mean it was logged.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from plba import certs, localkafka
from plba.topic_admin import create_topics, describe_topics
from schemas.settings import Settings
from tests.integration.kafka_io import REPO, produce, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USER = "plba-test"
FORWARDER = """
import sys
from faust import Worker
from schemas.settings import Settings
from streams.app import build_app

settings = Settings.from_env()
app = build_app(settings, broker_session_timeout=10.0)
source, sink = app.topic(sys.argv[1]), app.topic(sys.argv[2])


@app.agent(source)
async def forward(stream):
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


Worker(app, loglevel="info", quiet=True).execute_from_commandline()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SecureBroker:
    broker: Settings  # what `plba kafka up` was given
    client: Settings  # what a PLBA process reaching the SASL_SSL listener is given
    password: str
    up_log: list[str]
    root: Path

    def env(self, password: str | None = None, **extra: str) -> dict[str, str]:
        """The environment of a PLBA process that talks to the broker over SASL_SSL."""
        c = self.client
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLBA_")}
        env.update(
            {
                "PLBA_KAFKA_BOOTSTRAP": c.bootstrap,
                "PLBA_TOPIC_PREFIX": c.topic_prefix,
                "PLBA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "PLBA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "PLBA_KAFKA_SASL_USERNAME": USER,
                "PLBA_KAFKA_SASL_PASSWORD": self.password if password is None else password,
                "PLBA_KAFKA_SSL_CAFILE": c.kafka_ssl_cafile,
                "PLBA_LOG_LEVEL": "DEBUG",
                "PYTHONPATH": str(REPO),
            }
        )
        env.update(extra)
        return env


def assert_secret_free(text: str | bytes, *secrets_: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for secret in secrets_:
        assert secret.encode() not in data, "a secret appears in the log"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    root = tmp_path_factory.mktemp("kafka-sec")
    certs.init(root / "certs", ["n1"])
    password = f"pw-{secrets.token_hex(12)}"
    broker = Settings.from_env().replace(
        kafka_bootstrap="",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_sasl_ssl_port=free_port(),
        data_dir=root / "kafka",
        certs_dir=root / "certs",
        kafka_local_security="sasl_ssl",
        kafka_sasl_username=USER,
        kafka_sasl_password=password,
    )
    if not localkafka.paths(broker).libs.is_dir():
        pytest.skip("Kafka jars are not cached (plba kafka up fetches them)")
    client = broker.replace(
        kafka_bootstrap=f"127.0.0.1:{broker.kafka_sasl_ssl_port}",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_ssl_cafile=str(root / "certs" / "ca.pem"),
        topic_prefix="sec.",
    )
    up_log: list[str] = []
    localkafka.up(broker, wait_seconds=120, log=up_log.append)
    try:
        yield SecureBroker(broker, client, password, up_log, root)
    finally:
        localkafka.down(broker, log=lambda _m: None)


def _rdkafka_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(f"tests.rdkafka.{name}")
    logger.setLevel(logging.DEBUG)
    return logger


def test_the_broker_serves_sasl_ssl_beside_plaintext(secure):
    st = localkafka.status(secure.broker)
    assert st["ready"] and st["security"] == "sasl_ssl"
    assert st["sasl_ssl_bootstrap"] == secure.client.bootstrap
    assert any("SASL_SSL (SCRAM-SHA-512, user plba-test) is served" in line for line in secure.up_log)
    # The PLAINTEXT listener for local tools is still there.
    assert localkafka.broker_ready(secure.broker.bootstrap, timeout=5.0)
    assert localkafka.paths(secure.broker).config.stat().st_mode & 0o077 == 0  # holds the store password


def test_confluent_kafka_admin_produce_consume_over_sasl_ssl(secure, caplog):
    c = secure.client
    infos = create_topics(c)
    assert {i.name for i in infos} >= {c.topic("node_usage"), c.topic("dlq")}
    assert {i.name for i in describe_topics(c)} == {i.name for i in infos}
    values = [f"record-{k}".encode() for k in range(5)]
    produce(c, "node_usage", [(f"k{k}".encode(), v) for k, v in enumerate(values)], raw=True)
    got = read_topic(c, "node_usage", until=lambda r: len(r) >= 5, timeout=60, decode=False)
    assert sorted(r["raw"] for r in got) == values
    # With librdkafka's security debugging on, the handshake is logged and the password is not.
    caplog.set_level(logging.DEBUG)
    logger = _rdkafka_logger("ok")
    p = Producer({**c.confluent_config(), "debug": "security,conf"}, logger=logger)
    p.produce(c.topic("node_usage"), b"debug")
    assert p.flush(30) == 0
    assert "SCRAM-SHA-512" in caplog.text and "sasl.password = [redacted]" in caplog.text
    assert_secret_free(caplog.text, secure.password)


def _consume(settings: Settings, topic: str, n: int, timeout: float, alive: subprocess.Popen[bytes]) -> list:
    consumer = Consumer(
        {**settings.confluent_config(), "group.id": f"t-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline and alive.poll() is None:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_a_faust_app_forwards_records_over_sasl_ssl(secure, tmp_path):
    c = secure.client
    source, sink = f"{c.topic_prefix}faust-in", f"{c.topic_prefix}faust-out"
    admin = AdminClient(c.confluent_config())
    for fut in admin.create_topics([NewTopic(source, 2, 1), NewTopic(sink, 2, 1)], request_timeout=30).values():
        fut.result()
    sent = [(f"k{k}".encode(), f"v{k}".encode()) for k in range(6)]
    p = Producer(c.confluent_config())
    for key, value in sent:
        p.produce(source, key=key, value=value)
    assert p.flush(30) == 0
    script = tmp_path / "forward.py"
    script.write_text(FORWARDER)
    log_path = tmp_path / "faust.log"
    env = secure.env(PLBA_WORKER_ID=f"sec-forward-{uuid.uuid4().hex[:6]}")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), source, sink], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        got = _consume(c, sink, len(sent), timeout=120, alive=proc)
    finally:
        _stop(proc)
    log_text = log_path.read_text(errors="replace")
    assert sorted(got) == sorted(sent), f"forwarded {got}; Faust log:\n{log_text[-3000:]}"
    assert "Worker]: Ready" in log_text
    assert_secret_free(log_text, secure.password)


def test_a_wrong_password_fails_clearly_in_confluent_kafka(secure, caplog):
    c = secure.client.replace(kafka_sasl_password="not-the-password")
    caplog.set_level(logging.DEBUG)
    errors: list[KafkaError] = []
    p = Producer(
        {**c.confluent_config(), "error_cb": errors.append, "message.timeout.ms": 10000, "debug": "security"},
        logger=_rdkafka_logger("wrong"),
    )
    reports: list[KafkaError | None] = []
    p.produce(c.topic("node_usage"), b"never", on_delivery=lambda err, _msg: reports.append(err))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (reports and any(e.code() == KafkaError._AUTHENTICATION for e in errors)):
        p.poll(0.5)
    auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
    assert auth, f"no authentication error; errors: {errors}"
    assert "Authentication failed" in auth[0].str() and "invalid credentials" in auth[0].str()
    assert reports and reports[0] is not None, "a record was delivered with a wrong password"
    assert_secret_free(caplog.text, secure.password, "not-the-password")


def test_a_wrong_password_stops_the_worker_with_the_reason(secure, tmp_path):
    log_path = tmp_path / "worker.log"
    env = secure.env(password="not-the-password", PLBA_WORKER_ID=f"sec-worker-{uuid.uuid4().hex[:6]}")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "plba.cli.main", "worker"], env=env, cwd=tmp_path, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        code = proc.wait(90)
    finally:
        _stop(proc)
    text = log_path.read_text(errors="replace")
    assert code != 0, text[-2000:]
    assert "SaslAuthenticationFailed" in text and "invalid credentials" in text, text[-2000:]
    assert_secret_free(text, secure.password, "not-the-password")


def test_a_broker_certificate_from_an_unknown_ca_is_refused(secure, tmp_path):
    other = certs.init(tmp_path / "other-pki", ["n1"]).out
    c = secure.client.replace(kafka_ssl_cafile=str(other / "ca.pem"))
    errors: list[KafkaError] = []
    admin = AdminClient({**c.confluent_config(), "error_cb": errors.append}, logger=_rdkafka_logger("ca"))
    with pytest.raises(Exception):
        admin.list_topics(timeout=10)
    admin.poll(1)
    text = " ".join(e.str() for e in errors)
    assert "certificate verify failed" in text, text


def test_the_password_never_reaches_the_brokers_files(secure):
    # Only the salted form went to the format tool; the broker's config, logs and metadata
    # (SCRAM stores derived keys) never hold the password itself.
    home = localkafka.paths(secure.broker).home
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "server.log" for p in files)
    for path in files:
        assert_secret_free(path.read_bytes(), secure.password)
    assert_secret_free("\n".join(secure.up_log), secure.password)
