"""Create and describe PLBA's topics with confluent-kafka's admin client (idempotently)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from agents.producer import LibrdkafkaLog
from schemas.settings import Settings
from schemas.topics import TOPICS, TopicSpec


class TopicAdminError(RuntimeError):
    """Topics could not be created or described; the message names the topic and the cause."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    configs: dict[str, str]
    created: bool


def _admin(settings: Settings) -> AdminClient:
    # librdkafka's own chatter (refused connections, purged queues at exit) goes to DEBUG logging;
    # failures reach the caller as exceptions.
    return AdminClient(
        {**settings.confluent_config(), "socket.timeout.ms": 10000}, logger=LibrdkafkaLog("plba.topics.librdkafka")
    )


def create_topics(settings: Settings, timeout: float = 30.0) -> list[TopicInfo]:
    """Create every topic of the contract that is missing; existing ones are left as they are."""
    admin = _admin(settings)
    specs: dict[str, TopicSpec] = {spec.name(settings.topic_prefix): spec for spec in TOPICS.values()}
    created = _create(
        admin, [NewTopic(name, spec.partitions, 1, config=spec.configs()) for name, spec in specs.items()], timeout
    )
    # Creation returns before every broker's metadata cache has the topic: wait for it, so the
    # caller can produce and consume right away.
    deadline = time.monotonic() + timeout
    while True:
        infos = describe_topics(settings, timeout)
        if len(infos) == len(specs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = set(specs) - {i.name for i in infos}
    if missing:
        raise TopicAdminError(f"topics not visible after creation: {', '.join(sorted(missing))}")
    return [TopicInfo(i.name, i.partitions, i.configs, i.name in created) for i in infos]


def _create(admin: AdminClient, topics: list[NewTopic], timeout: float) -> set[str]:
    """Create ``topics``; those that exist already are left as they are. Returns the names created."""
    created: set[str] = set()
    if not topics:  # the admin client refuses an empty list
        return created
    for name, fut in admin.create_topics(topics, request_timeout=timeout).items():
        try:
            fut.result()
            created.add(name)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TopicAdminError(f"cannot create {name}: {err.str()}") from exc
    return created


def create_changelogs(settings: Settings, partitions: dict[str, int], timeout: float = 120.0) -> list[str]:
    """Create the worker's table changelog topics (name -> partitions) that are missing, compacted,
    and wait until every partition has a leader; returns the names created.

    Faust declares them itself when it starts, but subscribes right after. When the broker's
    metadata did not list a new changelog yet, Faust's partition assignor left it out ("Ignoring
    missing topic") and the worker stayed in table recovery, never committing (seen in CI-like
    runs, 5 minutes at a time). Made first, Faust finds them in place.
    """
    if not partitions:
        return []
    admin = _admin(settings)
    try:
        present = admin.list_topics(timeout=min(timeout, 30.0)).topics
    except KafkaException as exc:
        raise TopicAdminError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    missing = [n for n in partitions if n not in present]
    created = _create(
        admin, [NewTopic(n, partitions[n], 1, config={"cleanup.policy": "compact"}) for n in missing], timeout
    )
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        unready = [
            n for n, count in partitions.items()
            if n not in topics or len(topics[n].partitions) < count
            or any(p.leader < 0 for p in topics[n].partitions.values())
        ]  # fmt: skip
        if not unready:
            return sorted(created)
        if time.monotonic() > deadline:
            raise TopicAdminError(f"changelog topics without a leader after {timeout:g} s: {', '.join(unready)}")
        time.sleep(0.2)


def describe_topics(settings: Settings, timeout: float = 30.0) -> list[TopicInfo]:
    """Partitions and the relevant configs of every contract topic that exists."""
    admin = _admin(settings)
    try:
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicAdminError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from exc
    names = [spec.name(settings.topic_prefix) for spec in TOPICS.values()]
    present = [n for n in names if n in meta.topics]
    if not present:
        return []
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present]
    wanted = ("cleanup.policy", "retention.ms", "min.cleanable.dirty.ratio", "segment.ms")
    out = []
    for res, fut in admin.describe_configs(resources, request_timeout=timeout).items():
        cfg = fut.result()
        out.append(
            TopicInfo(
                name=res.name,
                partitions=len(meta.topics[res.name].partitions),
                configs={k: cfg[k].value for k in wanted if k in cfg},
                created=False,
            )
        )
    return sorted(out, key=lambda t: names.index(t.name))


def delete_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Delete the contract topics under ``settings.topic_prefix`` (the demo's own, never the default)."""
    if settings.topic_prefix == "plba.":
        raise TopicAdminError("refusing to delete the default topics (prefix 'plba.')")
    admin = _admin(settings)
    names = [spec.name(settings.topic_prefix) for spec in TOPICS.values()]
    present = set(admin.list_topics(timeout=timeout).topics)
    doomed = [n for n in names if n in present]
    if doomed:
        for fut in admin.delete_topics(doomed, request_timeout=timeout).values():
            fut.result()
    return doomed
