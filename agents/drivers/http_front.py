"""A minimal HTTP/1.1 server on asyncio streams, for the function driver's local endpoints.

Enough HTTP for a loopback invocation endpoint and nothing more: ``Content-Length`` bodies (no
chunked requests), keep-alive, bounded headers and bodies. Using the standard library keeps the
node process light (no web framework in ``agents``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Response]]


class HttpFront:
    """Serve ``handler`` on ``host:port`` (port 0: any free port, see :attr:`port`)."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0, *, max_body_bytes: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._max_body = max_body_bytes or DEFAULT_MAX_BODY_BYTES
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()  # connections in the middle of a request
        self._closing = False
        self.port = 0
        self.bytes_in = 0
        self.bytes_out = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connection, self._host, self._port, limit=MAX_HEADER_BYTES)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self, grace_seconds: float = 0.0) -> None:
        """Stop accepting; with a grace, requests in progress finish first (idle connections close)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if grace_seconds > 0:
            for task in list(self._connections - self._busy):
                task.cancel()
            busy = list(self._busy)
            if busy:
                await asyncio.wait(busy, timeout=grace_seconds)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; whether to keep the connection open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, _error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers too large"), False)
            return False
        self.bytes_in += len(head)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await self._send(writer, _error(HTTPStatus.BAD_REQUEST, "malformed request line"), False)
            return False
        method, path, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            await self._send(writer, _error(HTTPStatus.NOT_IMPLEMENTED, "chunked bodies are not supported"), False)
            return False
        try:
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError(length)
        except ValueError:
            await self._send(writer, _error(HTTPStatus.BAD_REQUEST, "bad Content-Length"), False)
            return False
        if length > self._max_body:
            too_large = _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {self._max_body} bytes")
            await self._send(writer, too_large, False)
            return False
        task = asyncio.current_task()
        assert task is not None
        self._busy.add(task)
        try:
            body = await reader.readexactly(length) if length else b""
            self.bytes_in += length
            connection = headers.get("connection", "").lower()
            keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
            try:
                response = await self._handler(Request(method, path.split("?", 1)[0], headers, body))
            except Exception:
                log.exception("HTTP handler failed on %s %s", method, path)
                response = _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
            keep = keep and not self._closing
            await self._send(writer, response, keep)
        finally:
            self._busy.discard(task)
        return keep

    async def _send(self, writer: asyncio.StreamWriter, response: Response, keep: bool) -> None:
        reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
        head = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            f"Connection: {'keep-alive' if keep else 'close'}",
            *(f"{k}: {v}" for k, v in response.headers.items()),
        ]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
        writer.write(data)
        await writer.drain()
        self.bytes_out += len(data)


def _error(status: HTTPStatus, message: str) -> Response:
    import json

    return Response(int(status), json.dumps({"error": message}).encode())


class HttpCallError(OSError):
    """The HTTP exchange failed before a complete response arrived (refused, reset, malformed)."""


async def http_call(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    max_body_bytes: int = 16 * 1024 * 1024,
) -> Response:
    """One HTTP/1.1 request on a fresh connection (``Connection: close``); enough for loopback
    proxying between nodes. Raises HttpCallError (an OSError) when no complete response came."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http:// URL: {url!r}")
    port = parts.port or 80
    path = parts.path or "/"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname, port)
            try:
                head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
                head += [f"{k}: {v}" for k, v in (headers or {}).items()] + ["Connection: close"]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
                await writer.drain()
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                reply_headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        reply_headers[name.strip().lower()] = value.strip()
                length = int(reply_headers.get("content-length", "-1"))
                if length > max_body_bytes:
                    raise HttpCallError(f"{url}: a {length}-byte response is too large")
                data = await reader.readexactly(length) if length >= 0 else await reader.read(max_body_bytes)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
        raise HttpCallError(f"{url}: incomplete or malformed response: {exc}") from exc
    except TimeoutError as exc:
        raise HttpCallError(f"{url}: no response within {timeout:g} s") from exc
    content_type = reply_headers.pop("content-type", "application/json")
    for hop in ("content-length", "connection"):
        reply_headers.pop(hop, None)
    return Response(status, data, content_type, reply_headers)
