"""Metric plumbing shared by every PLBA process: bounded label values and serving over HTTP.

Node processes (``agents``) and stream workers (``streams``) both serve ``/metrics``; this is the
one implementation, in the shared base package so that neither side imports the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry

__all__ = ["LabelCap", "MetricsServer", "serve_metrics"]


class LabelCap:
    """Keeps a label's value set bounded: known values pass, at most ``extra`` others are admitted
    (first come), anything beyond becomes ``"other"``. Thread-safe enough for CPython: a racing
    admission can exceed the cap by a value or two, never without bound."""

    def __init__(self, known: Iterable[str] = (), extra: int = 32) -> None:
        self._seen: set[str] = set(known)
        self._room = extra

    def __call__(self, value: object) -> str:
        text = str(value) if value is not None else "none"
        if text in self._seen:
            return text
        if self._room > 0 and 0 < len(text) <= 64:
            self._room -= 1
            self._seen.add(text)
            return text
        return "other"


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; ``port`` is the bound port (useful with port 0)."""

    addr: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(
    registry: CollectorRegistry | Sequence[CollectorRegistry], port: int, addr: str = "127.0.0.1"
) -> MetricsServer:
    """Serve one or several registries on ``http://addr:port/metrics`` from a daemon thread.

    ``port=0`` binds an ephemeral port; read it from the returned server's ``port``.
    """
    from prometheus_client import start_http_server

    if isinstance(registry, CollectorRegistry):
        target = registry
    else:
        target = CollectorRegistry(auto_describe=False)
        for reg in registry:
            target.register(reg)  # a registry is a collector; names are checked in each one
    server, thread = start_http_server(port, addr=addr, registry=target)
    return MetricsServer(addr, int(server.server_port), server, thread)
