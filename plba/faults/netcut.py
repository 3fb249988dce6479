"""A network link that can be cut: a TCP proxy between two executors, and killing live sockets.

:class:`LinkProxy` listens on loopback and forwards every connection to an upstream
``host:port`` (the target executor's gRPC port). Armed with :meth:`LinkProxy.arm`, it cuts the link
once the bytes it forwarded towards the upstream since arming reach a threshold, so the cut falls
in the middle of a transfer by construction, not by timing. A cut resets every live connection
(``SO_LINGER`` 0 → RST on both sides, what a failed link or a firewall reset leaves behind) and
keeps the link down for a while: new connections are accepted and reset at once. Then it heals.

:func:`kill_sockets` cuts connections that do not pass through a proxy (QEMU's migration stream
goes straight from the source QEMU to the target's), with ``ss -K`` (needs ``CAP_NET_ADMIN`` and a
kernel with ``INET_DIAG_DESTROY``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024


@dataclass
class CutRecord:
    """One cut: when, how far into the armed transfer, how many live connections it severed."""

    at: float
    bytes_forwarded: int
    connections_severed: int


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Pipe:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, not a FIN: the peer sees the connection fail, not end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.abort()


class LinkProxy:
    """See the module docstring. Use inside the event loop: ``await start()`` … ``await close()``."""

    def __init__(self, upstream: str, *, listen_host: str = "127.0.0.1") -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream_host, self.upstream_port = host, int(port)
        self.listen_host = listen_host
        self.port = 0
        self.cuts: list[CutRecord] = []
        self.forwarded = 0  # towards the upstream, since the start
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._armed_at_bytes: int | None = None
        self._cut_after = 0
        self._down_seconds = 0.0
        self._down_until = 0.0
        self.cut_event = asyncio.Event()

    @property
    def endpoint(self) -> str:
        return f"{self.listen_host}:{self.port}"

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            self._drop(pipe, reset=False)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def arm(self, after_bytes: int, down_seconds: float) -> None:
        """Cut once ``after_bytes`` more bytes went towards the upstream; stay down ``down_seconds``."""
        self._armed_at_bytes = self.forwarded
        self._cut_after = after_bytes
        self._down_seconds = down_seconds
        self.cut_event.clear()

    def cut(self) -> CutRecord:
        """Sever every live connection now and keep the link down for the armed time."""
        severed = len(self._pipes)
        start = self._armed_at_bytes if self._armed_at_bytes is not None else self.forwarded
        record = CutRecord(time.time(), self.forwarded - start, severed)
        self._armed_at_bytes = None
        self._down_until = time.monotonic() + self._down_seconds
        for pipe in list(self._pipes):
            self._drop(pipe, reset=True)
        self.cuts.append(record)
        self.cut_event.set()
        log.info(
            "link to %s:%d cut after %d bytes (%d connection(s) severed), down %.1f s",
            *(self.upstream_host, self.upstream_port, record.bytes_forwarded, severed, self._down_seconds),
        )
        return record

    def heal(self) -> None:
        """End an outage now (the link is also back by itself once its down time passed)."""
        self._down_until = 0.0

    def _drop(self, pipe: _Pipe, *, reset: bool) -> None:
        self._pipes.discard(pipe)
        current = asyncio.current_task()
        for task in pipe.tasks:
            if task is not current:
                task.cancel()
        for writer in (pipe.client, pipe.upstream):
            if reset:
                _reset(writer)
            else:
                writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:  # the link is down: the connection attempt fails
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            _reset(writer)
            return
        pipe = _Pipe(writer, up_writer)
        self._pipes.add(pipe)
        pipe.tasks = [
            asyncio.ensure_future(self._copy(reader, up_writer, pipe, towards_upstream=True)),
            asyncio.ensure_future(self._copy(up_reader, writer, pipe, towards_upstream=False)),
        ]

    async def _copy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pipe: _Pipe, *, towards_upstream: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                if not data:
                    break
                if towards_upstream and self._armed_at_bytes is not None:
                    left = self._armed_at_bytes + self._cut_after - self.forwarded
                    if len(data) >= left:
                        # Forward what fits below the threshold, then fail the link mid-stream.
                        if left > 0:
                            writer.write(data[:left])
                            self.forwarded += left
                            with contextlib.suppress(ConnectionError):
                                await writer.drain()
                        self.cut()
                        return
                writer.write(data)
                if towards_upstream:
                    self.forwarded += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            return
        if pipe in self._pipes:  # one side ended normally: end the other one too
            self._drop(pipe, reset=False)


def kill_sockets(port: int, host: str = "127.0.0.1") -> int:
    """Kill every established TCP connection to or from ``host:port`` (``ss -K``); how many it killed.

    Raises RuntimeError if ``ss`` is missing or the kernel refuses (no CAP_NET_ADMIN).
    """
    ss = shutil.which("ss")
    if ss is None:
        raise RuntimeError("ss (iproute2) is not installed: cannot cut a connection that bypasses the proxy")
    killed = 0
    for direction in ("dport", "sport"):
        side = "dst" if direction == "dport" else "src"
        cmd = [ss, "-K", "-t", "-n", "state", "established", side, host, direction, "=", str(port)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"ss -K failed ({out.returncode}): {out.stderr.strip()}")
        # ss prints a header then one line per socket it closed.
        killed += sum(1 for line in out.stdout.splitlines()[1:] if line.strip())
    return killed


_ACKED = re.compile(r"bytes_acked:(\d+)")


def bytes_acked_to(port: int, host: str = "127.0.0.1") -> int | None:
    """Bytes the peer acknowledged on the established connection to ``host:port`` (the largest if
    several), from the kernel (``ss -ti``); None while there is no such connection."""
    ss = shutil.which("ss")
    if ss is None:
        raise RuntimeError("ss (iproute2) is not installed")
    cmd = [ss, "-t", "-i", "-n", "-H", "state", "established", "dst", host, "dport", "=", str(port)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    found = [int(m) for m in _ACKED.findall(out.stdout)]
    if not found and "ESTAB" not in out.stdout and str(port) not in out.stdout:
        return None
    return max(found, default=0)


def can_kill_sockets() -> bool:
    """Whether :func:`kill_sockets` works here: tried on a loopback connection of our own."""
    if shutil.which("ss") is None:
        return False
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            accepted, _ = server.accept()
            with accepted:
                try:
                    killed = kill_sockets(port)
                except (RuntimeError, OSError, subprocess.SubprocessError):
                    return False
                if killed == 0:
                    return False
                try:
                    client.sendall(b"x")
                except OSError:
                    return True  # the kernel closed it: the cut works
                return False
