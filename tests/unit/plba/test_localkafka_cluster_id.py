"""The KRaft cluster id the local broker is formatted with."""

from __future__ import annotations

import base64
import uuid

from plba import localkafka


def test_an_id_that_would_read_as_an_option_is_drawn_again(monkeypatch):
    # The first draw encodes to a string starting with '-' (0xf8 -> '-' in URL-safe base64).
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(int=1)])
    monkeypatch.setattr(localkafka.uuid, "uuid4", lambda: next(draws))
    cid = localkafka._cluster_id()
    assert cid == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
    assert not cid.startswith("-") and len(cid) == 22


def test_ids_never_start_with_a_dash():
    assert not any(localkafka._cluster_id().startswith("-") for _ in range(2000))
