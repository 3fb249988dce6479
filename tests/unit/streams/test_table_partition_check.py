"""The forecaster tables' co-partitioning check: unknown changelog metadata is no mismatch."""

from __future__ import annotations

from typing import Any

import pytest
from faust.exceptions import PartitionsMismatch

from schemas.settings import Settings
from streams.app import build_app


class _Consumer:
    def __init__(self, counts: dict[str, int | None]) -> None:
        self.counts = counts

    def topic_partitions(self, topic: str) -> int | None:
        return self.counts.get(topic)


def _table(tmp_path: Any, counts: dict[str, int | None]) -> Any:
    app = build_app(Settings().replace(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"))
    table = app.Table("t", partitions=6, key_type=bytes, value_type=bytes)
    app.consumer = _Consumer({table.changelog_topic_name if k == "changelog" else k: v for k, v in counts.items()})
    return table


@pytest.mark.parametrize("changelog", [0, None])
def test_a_changelog_without_known_partitions_is_checked_again_later(tmp_path, changelog):
    table = _table(tmp_path, {"source": 6, "changelog": changelog})
    table._verify_source_topic_partitions("source")  # no PartitionsMismatch
    assert "source" not in table._verified_source_topics_for_partitions
    table.app.consumer.counts[table.changelog_topic_name] = 6
    table._verify_source_topic_partitions("source")
    assert "source" in table._verified_source_topics_for_partitions


def test_a_real_mismatch_still_raises(tmp_path):
    table = _table(tmp_path, {"source": 6, "changelog": 3})
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions("source")
