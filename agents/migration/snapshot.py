"""Snapshot transfer: a state directory streamed as checksummed chunks, stored and verified.

The source's :class:`SnapshotSender` walks a directory and turns its regular files into
``TransferChunk`` messages (1 MiB by default): every chunk carries the SHA-256 of its data, the
last chunk of a file carries the file's size, mode and SHA-256. It remembers what it sent
(size, mtime, inode, digest) so a second pass after the workload is quiesced sends only what
changed, and its :meth:`~SnapshotSender.manifest` describes the final state.

The target's :class:`SnapshotReceiver` checks each chunk as it arrives — the order id, the
sequence (no gap, no duplicate), a safe relative path, contiguous offsets, the chunk digest —
writes the file aside, and on its last chunk checks size and digest, fsyncs and renames it into
place. :meth:`~SnapshotReceiver.verify` compares the stored files with the source's manifest
before the workload starts on them. Any mismatch raises :class:`TransferCorrupt` (``DATA_LOSS``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from agents.drivers.base import DriverError, InvalidSpec
from schemas import executor_pb2 as pb

CHUNK_BYTES = 1024 * 1024
PART_SUFFIX = ".plba-part"
MAX_PATH = 4096


class TransferCorrupt(DriverError):
    """A chunk or file does not match its checksum, or the stored state differs from the manifest."""

    code = "data_loss"


class TransferRefused(DriverError):
    """The stream breaks the protocol (wrong order, gap in the sequence, unsafe path)."""

    code = "invalid_argument"


@dataclass(frozen=True, slots=True)
class FileState:
    size: int
    mtime_ns: int
    ino: int
    sha256: bytes


def safe_relative(path: str) -> PurePosixPath:
    """``path`` as a safe relative path (no ``..``, not absolute, not empty); TransferRefused otherwise."""
    if not path or len(path) > MAX_PATH or "\x00" in path or "\\" in path:
        raise TransferRefused(f"chunk path {path[:80]!r}: not a usable relative path")
    rel = PurePosixPath(path)
    if rel.is_absolute() or any(part in ("..", ".", "") for part in path.split("/")):
        raise TransferRefused(f"chunk path {path[:80]!r}: must be relative, without '..' or '.'")
    if rel.name.endswith(PART_SUFFIX):
        raise TransferRefused(f"chunk path {path[:80]!r}: the suffix {PART_SUFFIX} is reserved")
    return rel


def walk_files(root: Path) -> dict[str, os.stat_result]:
    """Regular files under ``root`` (relative POSIX path → stat); symlinks and others are skipped."""
    found: dict[str, os.stat_result] = {}
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                st = full.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and not name.endswith(PART_SUFFIX):
                found[full.relative_to(root).as_posix()] = st
    return found


class SnapshotSender:
    """Streams ``root``'s files; see the module docstring."""

    def __init__(self, root: Path, chunk_bytes: int = CHUNK_BYTES) -> None:
        if chunk_bytes <= 0:
            raise ValueError("chunk_bytes must be positive")
        self.root = Path(root)
        self.chunk_bytes = chunk_bytes
        self.sent: dict[str, FileState] = {}
        self.bytes_sent = 0

    def plan(self, *, changed_only: bool) -> list[tuple[str, os.stat_result]]:
        """Files to send now; files gone since the last pass leave the manifest."""
        current = walk_files(self.root)
        for gone in set(self.sent) - set(current):
            del self.sent[gone]
        if not changed_only:
            return list(current.items())
        out = []
        for rel, st in current.items():
            known = self.sent.get(rel)
            if known is None or (known.size, known.mtime_ns, known.ino) != (st.st_size, st.st_mtime_ns, st.st_ino):
                out.append((rel, st))
        return out

    async def chunks(
        self, order_id: str, files: Iterable[tuple[str, os.stat_result]]
    ) -> AsyncIterator[pb.TransferChunk]:
        """The chunks of ``files`` (``plan``'s answer), ``seq`` counting from 0."""
        seq = 0
        for rel, st in files:
            try:
                handle = open(self.root / rel, "rb")  # noqa: SIM115 - closed below, across awaits
            except FileNotFoundError:
                self.sent.pop(rel, None)  # deleted meanwhile: the manifest will not list it
                continue
            try:
                digest = hashlib.sha256()
                offset = 0
                while True:
                    data = await asyncio.to_thread(handle.read, self.chunk_bytes)
                    digest.update(data)
                    last = len(data) < self.chunk_bytes
                    chunk = pb.TransferChunk(
                        order_id=order_id,
                        seq=seq,
                        path=rel,
                        offset=offset,
                        data=data,
                        sha256=hashlib.sha256(data).digest(),
                    )
                    if last:
                        chunk.last_of_file = True
                        chunk.file_size_bytes = offset + len(data)
                        chunk.file_mode = stat.S_IMODE(st.st_mode)
                        chunk.file_sha256 = digest.digest()
                        # The stat from before the read: a file written meanwhile differs from it, so
                        # the next changed_only pass sends it again.
                        self.sent[rel] = FileState(offset + len(data), st.st_mtime_ns, st.st_ino, digest.digest())
                    seq += 1
                    offset += len(data)
                    self.bytes_sent += len(data)
                    yield chunk
                    if last:
                        break
            finally:
                handle.close()

    def manifest(self) -> list[pb.TransferredFile]:
        return [pb.TransferredFile(path=p, size_bytes=f.size, sha256=f.sha256) for p, f in sorted(self.sent.items())]


class SnapshotReceiver:
    """Stores chunks under ``staging``; see the module docstring. One receiver per incoming order."""

    def __init__(self, staging: Path) -> None:
        self.staging = Path(staging)
        self.received: dict[str, tuple[int, bytes]] = {}  # path -> (size, sha256)

    async def receive(
        self, order_id: str, chunks: AsyncIterator[pb.TransferChunk], on_first: object = None
    ) -> pb.TransferResponse:
        """Consume one Transfer call's chunks; returns what was stored (this call's files)."""
        expected_seq = 0
        current: _PartFile | None = None
        stored: list[pb.TransferredFile] = []
        total = 0
        try:
            async for chunk in chunks:
                if chunk.order_id != order_id:
                    raise TransferRefused(f"chunk {chunk.seq} names order {chunk.order_id!r}, not {order_id!r}")
                if chunk.seq != expected_seq:
                    raise TransferRefused(f"chunk seq {chunk.seq} where {expected_seq} was expected (gap or duplicate)")
                expected_seq += 1
                if hashlib.sha256(chunk.data).digest() != chunk.sha256:
                    raise TransferCorrupt(f"chunk {chunk.seq} of {chunk.path!r}: SHA-256 differs from its data")
                if current is None:
                    if chunk.offset != 0:
                        raise TransferRefused(
                            f"chunk {chunk.seq}: {chunk.path!r} starts at offset {chunk.offset}, not 0"
                        )
                    current = await asyncio.to_thread(_PartFile.open, self.staging, safe_relative(chunk.path))
                elif chunk.path != current.rel.as_posix() or chunk.offset != current.size:
                    raise TransferRefused(
                        f"chunk {chunk.seq}: {chunk.path!r}@{chunk.offset} does not continue "
                        f"{current.rel.as_posix()!r}@{current.size}"
                    )
                await asyncio.to_thread(current.write, chunk.data)
                total += len(chunk.data)
                if callable(on_first):
                    on_first()
                    on_first = None
                if chunk.last_of_file:
                    if chunk.file_size_bytes != current.size:
                        raise TransferCorrupt(
                            f"{chunk.path!r}: {current.size} bytes arrived, the source sent {chunk.file_size_bytes}"
                        )
                    if current.digest.digest() != chunk.file_sha256:
                        raise TransferCorrupt(f"{chunk.path!r}: the file's SHA-256 differs from the source's")
                    await asyncio.to_thread(current.finish, chunk.file_mode & 0o777 or 0o600)
                    self.received[chunk.path] = (current.size, chunk.file_sha256)
                    stored.append(
                        pb.TransferredFile(path=chunk.path, size_bytes=current.size, sha256=chunk.file_sha256)
                    )
                    current = None
            if current is not None:
                raise TransferRefused(f"the stream ended inside {current.rel.as_posix()!r} (no last chunk)")
        finally:
            if current is not None:
                current.discard()
        return pb.TransferResponse(order_id=order_id, chunks=expected_seq, received_bytes=total, files=stored)

    def verify(self, manifest: Iterable[pb.TransferredFile]) -> int:
        """Check the stored files against the source's final manifest; drop files it does not list.

        Returns the state's size in bytes. TransferCorrupt names the first difference.
        """
        wanted = {f.path: (f.size_bytes, bytes(f.sha256)) for f in manifest}
        for path, (size, digest) in wanted.items():
            got = self.received.get(path)
            if got is None:
                raise TransferCorrupt(f"{path!r} is in the source's manifest but never arrived")
            if got != (size, digest):
                raise TransferCorrupt(f"{path!r}: stored {got[0]} bytes / digest differ from the source's manifest")
            st = (self.staging / path).stat()
            if st.st_size != size:
                raise TransferCorrupt(f"{path!r}: {st.st_size} bytes on disk, the manifest says {size}")
        for extra in set(walk_files(self.staging)) - set(wanted):
            (self.staging / extra).unlink(missing_ok=True)
            self.received.pop(extra, None)
        return sum(size for size, _ in wanted.values())


class _PartFile:
    """One file being received: written to ``<path>.plba-part``, renamed when complete."""

    def __init__(self, final: Path, rel: PurePosixPath) -> None:
        self.final = final
        self.rel = rel
        self.part = final.with_name(final.name + PART_SUFFIX)
        self.digest = hashlib.sha256()
        self.size = 0
        self.handle = open(self.part, "wb")  # noqa: SIM115 - closed in finish/discard

    @classmethod
    def open(cls, staging: Path, rel: PurePosixPath) -> _PartFile:
        final = staging.joinpath(*rel.parts)
        if final.resolve().parent != staging.resolve().joinpath(*rel.parts[:-1]):
            raise InvalidSpec(f"chunk path {rel.as_posix()!r} leaves the staging directory")
        final.parent.mkdir(parents=True, exist_ok=True)
        return cls(final, rel)

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)

    def finish(self, mode: int) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.chmod(self.part, mode)
        os.replace(self.part, self.final)

    def discard(self) -> None:
        if not self.handle.closed:
            self.handle.close()
        self.part.unlink(missing_ok=True)


def fsync_tree(root: Path) -> None:
    """fsync every directory under ``root`` (file contents are fsync'ed as they complete)."""
    for dirpath, _dirs, _files in os.walk(root):
        fd = os.open(dirpath, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
