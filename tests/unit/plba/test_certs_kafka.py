"""The local broker's SASL_SSL listener, without starting it: config lines, SCRAM credential, refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

import pytest

from plba import certs, localkafka
from schemas.settings import Settings, SettingsError


@pytest.fixture
def sasl(tmp_path: Path) -> Settings:
    certs.init(tmp_path / "certs", ["n1"])
    return Settings.from_env({}).replace(
        data_dir=tmp_path / "data",
        certs_dir=tmp_path / "certs",
        kafka_local_security="sasl_ssl",
        kafka_sasl_ssl_port=19094,
        kafka_sasl_username="alice",
        kafka_sasl_password="pencil-42",
    )


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_without_security_the_config_has_no_sasl_ssl_listener(sasl):
    plain = sasl.replace(kafka_local_security="none")
    props = _props(localkafka.server_properties(plain, localkafka.paths(plain)))
    assert (
        props["listeners"]
        == f"PLAINTEXT://127.0.0.1:{plain.kafka_port},CONTROLLER://127.0.0.1:{plain.kafka_controller_port}"
    )
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert not [k for k in props if "sasl" in k or "ssl" in k]


def test_sasl_ssl_adds_a_listener_with_the_stores_of_certs_init(sasl):
    password = certs.kafka_store_password(sasl.certs_dir)
    props = _props(localkafka.server_properties(sasl, localkafka.paths(sasl), password))
    assert props["listeners"].endswith(",SASL_SSL://127.0.0.1:19094")
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{sasl.kafka_port},SASL_SSL://127.0.0.1:19094"
    assert props["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(sasl.certs_dir / "kafka" / "broker.p12")
    assert props["listener.name.sasl_ssl.ssl.keystore.password"] == password
    assert Path(props["listener.name.sasl_ssl.ssl.truststore.location"]).is_file()
    # The SCRAM user lives in the cluster metadata, never in the config.
    assert "pencil-42" not in localkafka.server_properties(sasl, localkafka.paths(sasl), password)


def test_the_client_config_reaches_the_listener_with_the_ca(sasl):
    cfg = localkafka.sasl_ssl_client_config(sasl)
    assert cfg["bootstrap.servers"] == "127.0.0.1:19094"
    assert (cfg["security.protocol"], cfg["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert cfg["ssl.ca.location"] == str(sasl.certs_dir / "ca.pem")


def test_the_format_argument_carries_only_the_salted_password(sasl):
    arg = localkafka._scram_format_argument(sasl)
    match = re.fullmatch(r'SCRAM-SHA-512=\[name=alice,iterations=(\d+),salt="([^"]+)",saltedpassword="([^"]+)"\]', arg)
    assert match, arg
    iterations, salt, salted = int(match[1]), base64.b64decode(match[2]), base64.b64decode(match[3])
    assert iterations >= 4096 and len(salt) >= 16  # Kafka's minimum for SCRAM-SHA-512
    assert salted == hashlib.pbkdf2_hmac("sha512", b"pencil-42", salt, iterations)
    assert "pencil-42" not in arg
    assert localkafka._scram_format_argument(sasl) != arg  # a fresh salt each time


def test_scram_salted_password_matches_rfc_7677():
    # RFC 7677 §3: user "user", password "pencil"; the client proof it publishes must follow.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = localkafka.scram_salted_password("pencil", salt, 4096, "SCRAM-SHA-256")
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    signature = hmac.new(stored_key, auth_message.encode(), "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kafka_sasl_username": ""}, "needs a SCRAM user"),
        ({"kafka_sasl_username": "a,b"}, "needs a SCRAM user"),
        ({"kafka_sasl_username": 'x"]'}, "needs a SCRAM user"),
        ({"kafka_sasl_password": ""}, "needs a SCRAM user"),
    ],
)
def test_up_refuses_a_missing_or_unsafe_scram_user_before_starting(sasl, changes, message):
    with pytest.raises(localkafka.LocalKafkaError, match=message):
        localkafka.up(sasl.replace(**changes), log=lambda _m: None)
    assert not localkafka.paths(sasl).home.exists()  # nothing written, nothing started


def test_up_without_certificates_says_how_to_make_them(sasl, tmp_path):
    with pytest.raises(localkafka.LocalKafkaError, match=r"run `plba certs init --out"):
        localkafka.up(sasl.replace(certs_dir=tmp_path / "none"), log=lambda _m: None)


def test_status_of_a_stopped_broker_shows_the_listener_it_would_open(sasl):
    st = localkafka.status(sasl)
    assert (st["running"], st["security"], st["sasl_ssl_bootstrap"]) == (False, "sasl_ssl", "127.0.0.1:19094")
    assert localkafka.status(sasl.replace(kafka_local_security="none"))["security"] == "none"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PLBA_KAFKA_LOCAL_SECURITY": "ssl"}, "must be none or sasl_ssl"),
        ({"PLBA_KAFKA_SASL_SSL_PORT": "70000"}, "PLBA_KAFKA_SASL_SSL_PORT: port out of range"),
    ],
)
def test_settings_refuse_bad_values(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
