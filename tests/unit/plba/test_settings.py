from __future__ import annotations

from pathlib import Path

import pytest

from schemas.settings import Settings, SettingsError, describe, env_var


def test_defaults_point_at_the_local_broker():
    s = Settings.from_env({})
    assert s.bootstrap == "127.0.0.1:9092"
    assert s.topic("orders") == "plba.orders.v1"


def test_environment_overrides_and_parses_types():
    s = Settings.from_env({"PLBA_KAFKA_PORT": "19092", "PLBA_TOPIC_PREFIX": "x.", "PLBA_DATA_DIR": "/tmp/d"})
    assert s.bootstrap == "127.0.0.1:19092"
    assert s.topic("dlq") == "x.dlq.v1"
    assert s.data_dir == Path("/tmp/d")


def test_explicit_bootstrap_wins_over_local_port():
    s = Settings.from_env({"PLBA_KAFKA_BOOTSTRAP": "k1:9092,k2:9092", "PLBA_KAFKA_PORT": "1"})
    assert s.bootstrap == "k1:9092,k2:9092"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PLBA_KAFKA_PORT": "abc"}, "PLBA_KAFKA_PORT: cannot read 'abc' as int"),
        ({"PLBA_KAFKA_PORT": "70000"}, "PLBA_KAFKA_PORT: port out of range"),
        ({"PLBA_POLICY": "magic"}, "PLBA_POLICY: must be predictive, reactive or none"),
        ({"PLBA_KAFKA_SECURITY_PROTOCOL": "TLS"}, "unknown protocol 'TLS'"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_sasl_and_ssl_pass_through_to_confluent_config():
    s = Settings.from_env(
        {
            "PLBA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PLBA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "PLBA_KAFKA_SASL_USERNAME": "u",
            "PLBA_KAFKA_SASL_PASSWORD": "p",
            "PLBA_KAFKA_SSL_CAFILE": "/ca.pem",
        }
    )
    cfg = s.confluent_config()
    assert cfg["security.protocol"] == "SASL_SSL"
    assert cfg["sasl.mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl.username"] == "u" and cfg["sasl.password"] == "p"
    assert cfg["ssl.ca.location"] == "/ca.pem"


def test_replace_parses_strings_like_the_environment():
    s = Settings.from_env({}).replace(kafka_port="29092", metrics_port=None)
    assert s.kafka_port == 29092


def test_describe_gives_help_default_and_variable():
    help_text, default, env = describe("kafka_port")
    assert "port" in help_text.lower() and default == 9092 and env == env_var("kafka_port") == "PLBA_KAFKA_PORT"
