"""Snapshot transfer: chunks checked one by one, files byte for byte, deltas, refusals."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from agents.migration.faults import EXIT_CODE, CrashPoints
from agents.migration.snapshot import SnapshotReceiver, SnapshotSender, TransferCorrupt, TransferRefused, safe_relative
from schemas import executor_pb2 as pb


async def _aiter(chunks: Iterable[pb.TransferChunk]) -> AsyncIterator[pb.TransferChunk]:
    for chunk in chunks:
        yield chunk


async def _collect(sender: SnapshotSender, changed_only: bool = False) -> list[pb.TransferChunk]:
    return [c async for c in sender.chunks("o1", sender.plan(changed_only=changed_only))]


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "deep" / "er").mkdir(parents=True)
    (root / "a.bin").write_bytes(os.urandom(2500))
    (root / "exact.bin").write_bytes(os.urandom(1024))  # a whole number of chunks
    (root / "empty").write_bytes(b"")
    (root / "deep" / "er" / "c.txt").write_text("hello")
    (root / "link").symlink_to(root / "a.bin")  # not a regular file: skipped
    return root


def test_a_directory_arrives_byte_for_byte(tmp_path, source):
    async def scenario() -> pb.TransferResponse:
        sender = SnapshotSender(source, chunk_bytes=512)
        receiver = SnapshotReceiver(tmp_path / "dst")
        reply = await receiver.receive("o1", _aiter(await _collect(sender)))
        assert receiver.verify(sender.manifest()) == 2500 + 1024 + 5
        return reply

    reply = asyncio.run(scenario())
    expected = {k: v for k, v in _tree(source).items() if k != "link"}
    assert _tree(tmp_path / "dst") == expected
    assert reply.received_bytes == 2500 + 1024 + 5 and len(reply.files) == 4
    assert not list((tmp_path / "dst").rglob("*.plba-part"))


def test_the_second_pass_sends_only_changes_and_drops_deleted_files(tmp_path, source):
    async def scenario() -> tuple[int, int]:
        sender = SnapshotSender(source, chunk_bytes=512)
        receiver = SnapshotReceiver(tmp_path / "dst")
        await receiver.receive("o1", _aiter(await _collect(sender)))
        (source / "deep" / "er" / "c.txt").write_text("changed, and longer")
        (source / "new.bin").write_bytes(b"x" * 10)
        (source / "a.bin").unlink()
        delta = await _collect(sender, changed_only=True)
        await receiver.receive("o1", _aiter(delta))
        receiver.verify(sender.manifest())
        return len({c.path for c in delta}), len(delta)

    paths, _chunks = asyncio.run(scenario())
    assert paths == 2  # c.txt and new.bin, nothing unchanged
    assert _tree(tmp_path / "dst") == {k: v for k, v in _tree(source).items() if k != "link"}
    assert not (tmp_path / "dst" / "a.bin").exists()


def _tamper(chunks: list[pb.TransferChunk], index: int, **fields: object) -> list[pb.TransferChunk]:
    bad = pb.TransferChunk()
    bad.CopyFrom(chunks[index])
    for name, value in fields.items():
        setattr(bad, name, value)
    return [*chunks[:index], bad, *chunks[index + 1 :]]


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda c: _tamper(c, 1, data=b"Z" * len(c[1].data)), TransferCorrupt, "SHA-256 differs from its data"),
        (lambda c: c[:1] + c[2:], TransferRefused, "gap or duplicate"),
        (lambda c: [c[0], c[0], *c[1:]], TransferRefused, "gap or duplicate"),
        (lambda c: _tamper(c, 0, order_id="other"), TransferRefused, "names order 'other'"),
        (lambda c: _tamper(c, 0, path="../escape"), TransferRefused, "without '..'"),
        (lambda c: _tamper(c, 0, path="/etc/passwd"), TransferRefused, "must be relative"),
        (lambda c: c[:1], TransferRefused, "the stream ended inside"),
    ],
)
def test_broken_streams_are_refused(tmp_path, mutate, error, message):
    big = tmp_path / "src"
    big.mkdir()
    (big / "f.bin").write_bytes(os.urandom(2000))

    async def scenario() -> None:
        sender = SnapshotSender(big, chunk_bytes=512)
        chunks = await _collect(sender)
        await SnapshotReceiver(tmp_path / "dst").receive("o1", _aiter(mutate(chunks)))

    with pytest.raises(error, match=message):
        asyncio.run(scenario())
    assert not (tmp_path / "dst" / "f.bin").exists() and not list((tmp_path / "dst").rglob("*.plba-part"))


def test_a_file_digest_that_differs_is_data_loss(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"abc")

    async def scenario() -> None:
        chunks = await _collect(SnapshotSender(src))
        await SnapshotReceiver(tmp_path / "dst").receive("o1", _aiter(_tamper(chunks, 0, file_sha256=b"0" * 32)))

    with pytest.raises(TransferCorrupt, match="file's SHA-256"):
        asyncio.run(scenario())


def test_the_manifest_must_match_what_arrived(tmp_path, source):
    async def scenario() -> None:
        sender = SnapshotSender(source)
        receiver = SnapshotReceiver(tmp_path / "dst")
        await receiver.receive("o1", _aiter(await _collect(sender)))
        manifest = sender.manifest()
        manifest[0].sha256 = b"1" * 32
        receiver.verify(manifest)

    with pytest.raises(TransferCorrupt, match="differ from the source's manifest"):
        asyncio.run(scenario())


@pytest.mark.parametrize("path", ["a/b", "state/counter.json", "x.bin"])
def test_safe_paths(path):
    assert safe_relative(path).as_posix() == path


@pytest.mark.parametrize("path", ["", "a/../b", "./a", "a//b", "a\\b", "x.plba-part", "a\x00b"])
def test_unsafe_paths(path):
    with pytest.raises(TransferRefused):
        safe_relative(path)


def test_crash_points_parse_and_fire_only_where_armed():
    CrashPoints("").reach("source", "commit")
    CrashPoints("target:switch").reach("source", "switch")  # another role: nothing happens
    with pytest.raises(ValueError, match="use one of source:prepare"):
        CrashPoints("source:teleport")
    code = subprocess.run(
        [sys.executable, "-c", "from agents.migration.faults import CrashPoints; "
         "CrashPoints('source:commit').reach('source', 'commit'); print('survived')"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3], check=False,
    )  # fmt: skip
    assert code.returncode == EXIT_CODE and "survived" not in code.stdout
