"""Calls from one executor to another (source → target, and target → source on recovery).

Every call has a deadline. With the node's TLS directory the channel uses mutual TLS and the
node's own certificate (``node.pem`` / ``node-key.pem``) as its client certificate. Migration
RPCs are idempotent by ``order_id``, so :meth:`Peers.call` may repeat one on ``UNAVAILABLE`` (and
``DEADLINE_EXCEEDED``) until a caller-given instant; any other status is an answer and raises
:class:`PeerRefused` at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from agents.executor_client import channel_credentials
from schemas import executor_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class PeerError(Exception):
    """A call to another executor failed; ``code`` is the gRPC status."""

    def __init__(self, endpoint: str, method: str, code: grpc.StatusCode, details: str) -> None:
        self.endpoint = endpoint
        self.method = method
        self.code = code
        self.details = details
        super().__init__(f"{method} at {endpoint}: {code.name}: {details}")

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT


class PeerRefused(PeerError):
    """The peer answered with an error status (it refused; repeating will not help)."""


class PeerUnreachable(PeerError):
    """The peer could not be reached (or did not answer in time) until the caller gave up."""


class Peers:
    """Channels to other executors, one per endpoint, reused across calls."""

    def __init__(
        self, tls_dir: Path | Callable[[], Path | None] | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        # A callable is read when a channel is made (the node learns its TLS folder late).
        self._tls_dir = tls_dir if callable(tls_dir) else (lambda: tls_dir)
        self._clock = clock
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}

    def stub(self, endpoint: str, node_id: str = "") -> pb_grpc.ExecutorStub:
        """A stub for the executor at ``endpoint``; with TLS its certificate must name ``node_id``
        (node certificates name the node id besides loopback), wherever the address points."""
        channel = self._channels.get((endpoint, node_id))
        if channel is None:
            options: list[tuple[str, Any]] = [
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # A restarted peer must be retried promptly, not after gRPC's 20-s reconnect back-off.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ]
            tls_dir = self._tls_dir()
            if tls_dir is not None and str(tls_dir) not in ("", "."):
                creds = channel_credentials(Path(tls_dir))
                if node_id:
                    options.append(("grpc.ssl_target_name_override", node_id))
                channel = grpc.aio.secure_channel(endpoint, creds, options=options)
            else:
                channel = grpc.aio.insecure_channel(endpoint, options=options)
            self._channels[(endpoint, node_id)] = channel
        return pb_grpc.ExecutorStub(channel)

    async def call(
        self,
        endpoint: str,
        method: str,
        request: Any,
        *,
        timeout: float,
        retry_until: float | None = None,
        backoff_seconds: float = 0.2,
        node_id: str = "",
    ) -> Any:
        """``method(request)`` at ``endpoint`` with a ``timeout`` per attempt.

        With ``retry_until`` (epoch s) a transient failure is retried until then (the last
        attempt's deadline is cut to it); raises PeerUnreachable after, PeerRefused on an answer.
        """
        attempt = 0
        while True:
            attempt += 1
            deadline = timeout
            if retry_until is not None:
                deadline = max(0.05, min(timeout, retry_until - self._clock()))
            try:
                return await getattr(self.stub(endpoint, node_id), method)(request, timeout=deadline)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
                if code not in TRANSIENT:
                    raise PeerRefused(endpoint, method, code, details) from exc
                if retry_until is None or self._clock() + backoff_seconds >= retry_until:
                    raise PeerUnreachable(endpoint, method, code, details) from exc
                if attempt in (1, 10) or attempt % 50 == 0:
                    log.info("%s at %s: %s (%s); retrying", method, endpoint, code.name, details)
                await asyncio.sleep(min(backoff_seconds * min(attempt, 5), 1.0))

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
