"""The one settings object. This module is the only place PLBA reads the environment.

Every field has a default, an environment variable (``PLBA_<FIELD>`` unless stated) and a help
text; the CLI derives its options' ``--help`` from the same metadata, so a default or variable
name is written once. Values are parsed and checked here, with errors that name the variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


KafkaValue = str | int | float | bool  # what confluent-kafka accepts as a config value


class SettingsError(ValueError):
    """A setting has a value PLBA cannot use; the message names the variable or option."""


def _opt(default: Any, help: str, env: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "env": env})


def _home(sub: str) -> Path:
    return Path(os.path.expanduser("~")) / sub / "plba"


@dataclass(frozen=True)
class Settings:
    # --- Kafka client -------------------------------------------------------------------------
    kafka_bootstrap: str = _opt("", "Kafka bootstrap servers (host:port,…); empty means the local broker")
    topic_prefix: str = _opt("plba.", "Prefix of every PLBA topic name")
    kafka_security_protocol: str = _opt(
        "PLAINTEXT", "Kafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: str = _opt("", "Kafka SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
    kafka_sasl_username: str = _opt("", "Kafka SASL user name")
    kafka_sasl_password: str = _opt("", "Kafka SASL password (never logged)")
    kafka_ssl_cafile: str = _opt("", "CA certificate (PEM) to verify the Kafka brokers")
    kafka_ssl_certfile: str = _opt("", "Client certificate (PEM) for Kafka SSL")
    kafka_ssl_keyfile: str = _opt("", "Client private key (PEM) for Kafka SSL")
    max_record_bytes: int = _opt(1024 * 1024, "Largest record PLBA accepts; larger ones go to the DLQ")

    # --- Local broker (plba kafka …) ----------------------------------------------------------
    kafka_port: int = _opt(9092, "Port of the local broker's client listener (127.0.0.1)")
    kafka_controller_port: int = _opt(9093, "Port of the local broker's KRaft controller listener")
    kafka_version: str = _opt("4.1.1", "Apache Kafka version fetched from Maven Central")
    kafka_heap: str = _opt("512m", "Java heap of the local broker (-Xmx)")
    cache_dir: Path = _opt(_home(".cache"), "Where downloaded jars are cached")
    data_dir: Path = _opt(_home(".local/share"), "Where the local broker keeps its data, logs and pid file")
    kafka_local_security: str = _opt(
        "none", "Extra listener of the local broker: none, or sasl_ssl (SCRAM-SHA-512 over TLS, certs from certs_dir)"
    )
    kafka_sasl_ssl_port: int = _opt(9094, "Port of the local broker's SASL_SSL listener (with sasl_ssl security)")

    # --- Data ---------------------------------------------------------------------------------
    traces_dir: Path = _opt(REPO_ROOT.parent / "shared" / "data" / "traces", "Folder of the shared cluster traces")

    # --- Observability ------------------------------------------------------------------------
    log_level: str = _opt("INFO", "Log level: DEBUG, INFO, WARNING, ERROR")
    metrics_port: int = _opt(0, "Port of this process's Prometheus /metrics (0: none)")
    metrics_addr: str = _opt("127.0.0.1", "Address the /metrics server binds (0.0.0.0 in containers)")

    # --- Node process ---------------------------------------------------------------------------
    node_id: str = _opt("", "Node id of this node process")
    node_listen: str = _opt("127.0.0.1:50051", "host:port the node's executor gRPC server listens on")
    node_interval_seconds: float = _opt(5.0, "Telemetry sampling interval of the node agent")
    node_state_dir: Path = _opt(
        _home(".local/state"), "State folder; each node keeps its journal and workloads in <dir>/<node-id>"
    )
    node_drivers: str = _opt("sim,process,function", "Runtime drivers the node enables: sim, process, function, qemu")
    node_labels: str = _opt("", "Node labels k=v,… (the pool and zone labels place the node)")
    node_capacity_cores: float = _opt(0.0, "Cores the node offers to workloads (0: the whole host's)")
    node_capacity_memory: str = _opt("", "Memory the node offers, e.g. 8G (empty: the whole host's)")
    node_capacity_io: str = _opt("", "Disk+network bytes/s the node offers, e.g. 200M (empty: 1 GB/s)")
    fault_crash_at: str = _opt(
        "", "Test hook, never for production: ROLE:PHASE (e.g. source:transfer) makes the node exit 137 there"
    )

    # --- Stream worker ------------------------------------------------------------------------
    worker_id: str = _opt("plba-worker", "Faust application id (consumer group) of the stream worker")
    horizon_seconds: float = _opt(300.0, "Forecast horizon")
    policy: str = _opt("predictive", "Decision policy: predictive, reactive or none")
    decision_mode: str = _opt("enforce", "Decision mode: enforce, recommend or shadow")
    worker_dispatch: bool = _opt(True, "Run the dispatcher inside the worker (else run `plba dispatcher`)")
    decision_interval_seconds: float = _opt(30.0, "Event-time seconds between two decision cycles of a pool")
    forecast_interval_seconds: float = _opt(
        0.0, "Min event-time seconds between two forecasts of a series (0: every sample)"
    )
    forecast_snapshot_seconds: float = _opt(
        300.0, "Event-time seconds between two saved snapshots of a forecaster (what a restart may lose)"
    )
    forecast_horizons: str = _opt("", "Comma-separated forecast horizons in seconds (empty: 6 steps up to the horizon)")

    # --- gRPC security ------------------------------------------------------------------------
    tls_dir: Path = _opt(Path(""), "Folder with ca.pem and this process's cert/key for gRPC mTLS (empty: plaintext)")
    certs_dir: Path = _opt(
        _home(".local/share") / "certs", "Where `plba certs init` writes the development CA, certificates and stores"
    )

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers to use: the configured ones, else the local broker."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    def topic(self, role: str) -> str:
        from schemas.topics import topic_name

        return topic_name(role, self.topic_prefix)

    def confluent_config(self) -> dict[str, KafkaValue]:
        """Client settings common to every confluent-kafka producer, consumer and admin."""
        cfg: dict[str, KafkaValue] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            cfg["sasl.mechanism"] = self.kafka_sasl_mechanism
            cfg["sasl.username"] = self.kafka_sasl_username
            cfg["sasl.password"] = self.kafka_sasl_password
        for key, value in (
            ("ssl.ca.location", self.kafka_ssl_cafile),
            ("ssl.certificate.location", self.kafka_ssl_certfile),
            ("ssl.key.location", self.kafka_ssl_keyfile),
        ):
            if value:
                cfg[key] = value
        return cfg

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (values parsed like environment strings if str)."""
        parsed = {}
        for name, value in changes.items():
            if value is None:
                continue
            parsed[name] = _parse(_FIELDS[name], value, f"--{name.replace('_', '-')}")
        return dataclasses.replace(self, **parsed)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            var = env_var(f.name)
            if var in env:
                values[f.name] = _parse(f, env[var], var)
        return cls(**values)

    def __post_init__(self) -> None:
        if self.kafka_security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise SettingsError(
                f"{env_var('kafka_security_protocol')}: unknown protocol {self.kafka_security_protocol!r}"
            )
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"{env_var('log_level')}: must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        if self.policy not in ("predictive", "reactive", "none"):
            raise SettingsError(f"{env_var('policy')}: must be predictive, reactive or none, not {self.policy!r}")
        if self.decision_mode not in ("enforce", "recommend", "shadow"):
            raise SettingsError(f"{env_var('decision_mode')}: must be enforce, recommend or shadow")
        if self.kafka_local_security not in ("none", "sasl_ssl"):
            raise SettingsError(
                f"{env_var('kafka_local_security')}: must be none or sasl_ssl, not {self.kafka_local_security!r}"
            )
        for name in ("kafka_port", "kafka_controller_port", "kafka_sasl_ssl_port"):
            if not 0 < getattr(self, name) < 65536:
                raise SettingsError(f"{env_var(name)}: port out of range: {getattr(self, name)}")
        if not 0 <= self.metrics_port < 65536:
            raise SettingsError(f"{env_var('metrics_port')}: port out of range: {self.metrics_port}")
        if self.forecast_snapshot_seconds <= 0:
            raise SettingsError(f"{env_var('forecast_snapshot_seconds')}: must be positive")
        if self.decision_interval_seconds <= 0 or self.forecast_interval_seconds < 0:
            raise SettingsError("the decision interval must be positive, the forecast interval not negative")
        if self.node_capacity_cores < 0:
            raise SettingsError(f"{env_var('node_capacity_cores')}: must not be negative")
        if self.node_interval_seconds <= 0 or self.horizon_seconds <= 0:
            raise SettingsError("intervals and horizons must be positive")


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def env_var(name: str) -> str:
    """The environment variable of a settings field."""
    return _FIELDS[name].metadata.get("env") or f"PLBA_{name.upper()}"


def describe(name: str) -> tuple[str, Any, str]:
    """(help, default, env var) of a settings field, for ``--help`` texts."""
    f = _FIELDS[name]
    return f.metadata["help"], f.default, env_var(name)


def _parse(f: dataclasses.Field[Any], raw: Any, source: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable bytes from the environment or argv (surrogate escapes) would only fail
        # later, deep inside a client library.
        raise SettingsError(f"{source}: not valid UTF-8 text") from None
    kind = type(f.default)
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(raw)
            return low in ("1", "true", "yes", "on")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if issubclass(kind, Path):
            return Path(os.path.expanduser(raw)) if raw else Path("")
    except ValueError:
        raise SettingsError(f"{source}: cannot read {raw!r} as {kind.__name__}") from None
    return raw
