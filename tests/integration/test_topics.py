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


def test_the_workers_changelogs_are_made_once_compacted_with_the_tables_partitions(kafka_settings):
    from confluent_kafka.admin import AdminClient, ConfigResource

    from plba.topic_admin import create_changelogs
    from streams.worker import build_worker

    s = kafka_settings.replace(worker_id=f"{kafka_settings.topic_prefix}worker")
    wanted = build_worker(s).changelog_topics()
    assert len(wanted) == 2 and all(name.endswith("-changelog") for name in wanted)
    try:
        assert create_changelogs(s, wanted) == sorted(wanted)
        assert create_changelogs(s, wanted) == []  # a restarted worker finds them in place
        admin = AdminClient(s.confluent_config())
        meta = admin.list_topics(timeout=10).topics
        assert {n: len(meta[n].partitions) for n in wanted} == wanted
        for res, fut in admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in wanted]).items():
            assert fut.result()["cleanup.policy"].value == "compact", res.name
    finally:
        for fut in AdminClient(s.confluent_config()).delete_topics(list(wanted)).values():
            fut.exception()
