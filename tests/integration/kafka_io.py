"""Small helpers for integration tests: produce contract records, read topics, run a worker."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from plba.procs import plba_process
from schemas.codec import codec
from schemas.settings import Settings
from schemas.topics import TOPICS

REPO = Path(__file__).resolve().parents[2]


def produce(
    settings: Settings,
    role: str,
    records: list[tuple[bytes | None, Any]],
    *,
    raw: bool = False,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send (key, value) pairs to a topic; values are encoded with the contract codec unless raw."""
    spec = TOPICS[role]
    enc = codec(spec.record_type) if spec.record_type and not raw else None
    p = Producer({**settings.confluent_config(), "enable.idempotence": True, "linger.ms": 5})
    for key, value in records:
        data = enc.encode(value) if enc is not None and value is not None else value
        p.produce(settings.topic(role), key=key, value=data, headers=headers)
        p.poll(0)
    assert p.flush(30) == 0


def read_topic(
    settings: Settings,
    role: str,
    *,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 60.0,
    decode: bool = True,
    alive: subprocess.Popen[bytes] | None = None,
) -> list[dict[str, Any]]:
    """Read a topic from the beginning until ``until(records)`` holds or the timeout passes.

    With ``alive``, stop early when that process has exited (its log tells why).
    """
    c = Consumer(
        {
            **settings.confluent_config(),
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([settings.topic(role)])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            if alive is not None and alive.poll() is not None:
                break
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            value = msg.value()
            rec = orjson.loads(value) if decode and value is not None else {"raw": value}
            rec["_key"] = msg.key()
            out.append(rec)
    finally:
        c.close()
    return out


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PLBA_KAFKA_BOOTSTRAP": settings.bootstrap,
            "PLBA_TOPIC_PREFIX": settings.topic_prefix,
            "PLBA_WORKER_ID": f"{settings.topic_prefix}worker",
            "PLBA_LOG_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


@contextmanager
def running(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``plba ARGS`` from the checkout in its own process group; stopped afterwards."""
    with plba_process(args, env, log_path, cwd=REPO) as proc:
        yield proc
