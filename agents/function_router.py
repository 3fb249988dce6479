"""Invoke a PLBA function wherever it runs, through its moves, without failed invocations.

The placements topic is the routing table: the dispatcher publishes a workload's new endpoint
when its migration completes. Between that moment and the client noticing, the function's old
endpoint forwards invocations to the new one (the function driver's drain) and says so in the
``X-PLBA-Moved-To`` header. :class:`FunctionRouter` follows that header at once, and when an
endpoint cannot be reached at all (the old one closed after its drain) it asks ``resolve`` —
e.g. :func:`placement_resolver`, a read of the placements table — and retries there. Only
connections refused or reset before an answer are retried (a draining endpoint closes only
connections whose request it has not started; a timeout is never retried, the invocation may
have run); an answer, even an error status, is returned as it is.

>>> router = FunctionRouter("fn1", "http://127.0.0.1:8080/")           # doctest: +SKIP
>>> status, body = router.invoke({"n": 1000})                          # doctest: +SKIP
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MOVED_HEADER = "X-PLBA-Moved-To"
Resolver = Callable[[str], "str | None"]


class RouterError(RuntimeError):
    """No endpoint of the function could be reached before the retry budget ran out."""


class FunctionRouter:
    """A client of one function (thread-safe). ``endpoint``: its URL when the router starts."""

    def __init__(
        self,
        workload_id: str,
        endpoint: str,
        *,
        resolve: Resolver | None = None,
        timeout_seconds: float = 30.0,
        retry_seconds: float = 15.0,
        backoff_seconds: float = 0.05,
    ) -> None:
        self.workload_id = workload_id
        self.endpoint = endpoint
        self._resolve = resolve
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._backoff = backoff_seconds
        self._lock = threading.Lock()
        self.moves_followed = 0
        self.retries = 0

    def invoke(self, event: Any) -> tuple[int, Any]:
        """POST ``event`` as JSON; (status, decoded JSON body). RouterError if nothing answers."""
        body = json.dumps(event).encode()
        give_up = time.monotonic() + self._retry
        tried = self.endpoint
        while True:
            try:
                status, headers, data = self._post(tried, body)
            except ConnectionError as exc:  # refused or reset before an answer; never a timeout
                self.retries += 1
                fresh = self._elsewhere(tried)
                if time.monotonic() > give_up:
                    raise RouterError(f"function {self.workload_id}: no endpoint answered: {exc}") from exc
                if fresh == tried:
                    time.sleep(self._backoff)
                tried = fresh
                continue
            moved = headers.get(MOVED_HEADER.lower())
            if moved:
                self._follow(tried, moved)
            elif tried != self.endpoint:
                self._follow(self.endpoint, tried)
            try:
                return status, json.loads(data) if data else None
            except ValueError:
                return status, data.decode(errors="replace")

    def _elsewhere(self, failed: str) -> str:
        """Where to try after ``failed`` did not answer: a newer known endpoint or the resolver's."""
        with self._lock:
            if self.endpoint != failed:
                return self.endpoint
        if self._resolve is not None:
            try:
                found = self._resolve(self.workload_id)
            except Exception as exc:  # noqa: BLE001 - a failed lookup is one more retry, not an error
                log.debug("resolving %s failed: %s", self.workload_id, exc)
                found = None
            if found:
                return found
        return failed

    def _follow(self, old: str, new: str) -> None:
        with self._lock:
            if self.endpoint == old and new != old:
                log.info("function %s moved: %s -> %s", self.workload_id, old, new)
                self.endpoint = new
                self.moves_followed += 1

    def _post(self, url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// endpoint: {url!r}")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=self._timeout)
        try:
            conn.request(
                "POST",
                parts.path or "/",
                body=body,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            reply = conn.getresponse()
            data = reply.read()
            return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data
        finally:
            conn.close()


def placement_resolver(settings: Any, *, timeout: float = 10.0) -> Resolver:
    """A resolver reading the placements table (the compacted placements topic) on each call."""

    def resolve(workload_id: str) -> str | None:
        from agents.client import read_table

        record = read_table(settings, "placement", timeout=timeout).records.get(workload_id) or {}
        endpoint = record.get("endpoint")
        return str(endpoint) if endpoint else None

    return resolve
