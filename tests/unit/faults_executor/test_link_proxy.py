"""The link proxy of the executor fault scenarios: forwards, cuts at the armed byte count, heals."""

from __future__ import annotations

import asyncio

import pytest

from plba.faults.netcut import LinkProxy


async def sink_server() -> tuple[asyncio.Server, list[int]]:
    """A server that counts what it receives and answers each read with b"ok"."""
    received = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                received[0] += len(data)
                writer.write(b"ok")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), received


def test_forwards_both_ways_until_armed():
    async def scenario() -> None:
        server, received = await sink_server()
        port = server.sockets[0].getsockname()[1]
        proxy = await LinkProxy(f"127.0.0.1:{port}").start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"x" * 100_000)
            await writer.drain()
            assert await reader.readexactly(2) == b"ok"
            while received[0] < 100_000:
                await asyncio.sleep(0.01)
            assert proxy.forwarded == received[0] == 100_000 and proxy.cuts == []
            writer.close()
        finally:
            await proxy.close()
            server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_cuts_exactly_at_the_armed_bytes_resets_the_connection_and_heals():
    async def scenario() -> None:
        server, received = await sink_server()
        port = server.sockets[0].getsockname()[1]
        proxy = await LinkProxy(f"127.0.0.1:{port}").start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"a" * 1000)
            await writer.drain()
            await reader.readexactly(2)
            proxy.arm(after_bytes=5000, down_seconds=30.0)
            with pytest.raises(ConnectionError):  # the peer sees a reset, not an orderly end
                for _ in range(1000):
                    writer.write(b"b" * 4096)
                    await writer.drain()
                    await asyncio.sleep(0.001)
            await asyncio.wait_for(proxy.cut_event.wait(), 30)
            (cut,) = proxy.cuts
            assert cut.bytes_forwarded == 5000 and cut.connections_severed == 1
            assert proxy.forwarded == 6000
            while received[0] < 6000:  # the upstream got every byte below the threshold, none after
                await asyncio.sleep(0.01)
            assert received[0] == 6000
            # Down: a new connection is reset at once.
            assert proxy.down
            r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                w2.write(b"c")
                await w2.drain()
                await r2.readexactly(2)
            # Healed: traffic flows again.
            proxy.heal()
            assert not proxy.down
            r3, w3 = await asyncio.open_connection("127.0.0.1", proxy.port)
            w3.write(b"d" * 10)
            await w3.drain()
            assert await r3.readexactly(2) == b"ok"
            w3.close()
        finally:
            await proxy.close()
            server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_kill_sockets_severs_a_live_connection_where_the_kernel_allows_it():
    import socket

    from plba.faults.netcut import can_kill_sockets, kill_sockets

    if not can_kill_sockets():
        pytest.skip("ss -K is not permitted here (needs CAP_NET_ADMIN)")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            accepted, _ = server.accept()
            with accepted:
                client.sendall(b"before")
                assert accepted.recv(6) == b"before"
                assert kill_sockets(port) >= 1  # one end; the other gets its reset
                with pytest.raises(OSError):
                    client.sendall(b"after")
