"""Topic creation against the real broker: partitions, cleanup policies, idempotence."""

from __future__ import annotations

import pytest

from plba.topic_admin import create_topics, describe_topics
from schemas.topics import TOPICS

pytestmark = pytest.mark.kafka


def test_every_topic_has_its_partitions_and_cleanup(kafka_settings):
    infos = {i.name: i for i in describe_topics(kafka_settings)}
    assert len(infos) == len(TOPICS)
    for spec in TOPICS.values():
        info = infos[spec.name(kafka_settings.topic_prefix)]
        assert info.partitions == spec.partitions
        assert info.configs["cleanup.policy"] == spec.cleanup
        if spec.retention_ms is not None:
            assert info.configs["retention.ms"] == str(spec.retention_ms)


def test_create_is_idempotent(kafka_settings):
    again = create_topics(kafka_settings)
    assert len(again) == len(TOPICS)
    assert not any(i.created for i in again)
