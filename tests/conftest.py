"""Shared fixtures.

Integration tests use the real broker started by ``plba kafka up``. Outside CI they skip
themselves when no broker answers; with CI=true a missing broker is a failure, so CI can never
pass by skipping the tests that prove Kafka behaviour.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from schemas.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> str:
    from plba.localkafka import broker_ready

    if not broker_ready(base_settings.bootstrap, timeout=5.0):
        msg = f"no Kafka broker answers at {base_settings.bootstrap} (run `plba kafka up`)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return base_settings.bootstrap


@pytest.fixture
def kafka_settings(base_settings: Settings, kafka_bootstrap: str) -> Iterator[Settings]:
    """Settings with a topic prefix of this test's own, and every contract topic created."""
    from confluent_kafka.admin import AdminClient

    from plba.topic_admin import create_topics
    from schemas.topics import TOPICS

    prefix = f"test-{uuid.uuid4().hex[:10]}."
    settings = base_settings.replace(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix)
    create_topics(settings)
    yield settings
    admin = AdminClient(settings.confluent_config())
    for fut in admin.delete_topics([spec.name(prefix) for spec in TOPICS.values()]).values():
        try:
            fut.result()
        except Exception:
            pass
