"""A tiny stateful service, the ``process`` driver's default workload (``python -m agents.drivers.counter_app``).

It keeps a counter in ``<state-dir>/counter.json`` (incremented every ``--tick`` seconds and by
``POST /incr``, written atomically each time) and optionally a deterministic ballast file
``<state-dir>/ballast.bin`` of ``--state-bytes`` bytes, and answers HTTP on ``--port``:

* ``GET /`` → ``{"workload_id", "count", "pid", "started_at", "state_dir"}``
* ``GET /state`` → the same plus ``ballast_bytes`` and ``ballast_sha256``
* ``POST /incr`` → increments the counter and returns it

So a migration can be verified from outside: the count on the target continues from the one
on the source, and the ballast checksum is the same. SIGTERM writes the counter and exits 0 at
once (no interpreter shutdown: the exit is part of a migration's downtime).
Defaults come from the environment the process driver sets (``PLBA_STATE_DIR``, ``PLBA_PORT``,
``PLBA_WORKLOAD_ID``).

Standby: with ``PLBA_GO_FD`` set (a migration target started early, see the process driver) it
finishes starting, then waits for one byte on that pipe before it reads or writes its state; EOF
there means the move was called off: it exits 0 without touching the state. The ballast's
checksum is computed in the background after the port opens (``GET /state`` waits for it), so a
big state does not delay readiness.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COUNTER_FILE = "counter.json"
BALLAST_FILE = "ballast.bin"
_BLOCK = 1 << 16


class Counter:
    """The durable counter (thread-safe)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / COUNTER_FILE
        self._lock = threading.Lock()
        self.count = 0
        if self.path.exists():
            self.count = int(json.loads(self.path.read_text())["count"])

    def incr(self) -> int:
        with self._lock:
            self.count += 1
            self._write()
            return self.count

    def save(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{COUNTER_FILE}.tmp")
        tmp.write_text(json.dumps({"count": self.count, "updated_at": time.time()}))
        os.replace(tmp, self.path)


def ballast_block(index: int) -> bytes:
    """Block ``index`` of the deterministic ballast (the same bytes on every host)."""
    seed = hashlib.sha256(index.to_bytes(8, "big")).digest()
    return (seed * (_BLOCK // len(seed) + 1))[:_BLOCK]


def ensure_ballast(state_dir: Path, size: int) -> str:
    """Create the ballast file if missing or of another size; its SHA-256 (hex)."""
    path = state_dir / BALLAST_FILE
    if size <= 0:
        return ""
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as fh:
            for i in range((size + _BLOCK - 1) // _BLOCK):
                fh.write(ballast_block(i)[: min(_BLOCK, size - i * _BLOCK)])
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_handler(app: dict[str, Any], counter: Counter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, full: bool) -> dict[str, Any]:
            body = {**{k: app[k] for k in ("workload_id", "pid", "started_at", "state_dir")}, "count": counter.count}
            if full:
                app["ballast_ready"].wait(60)
                body |= {"ballast_bytes": app["ballast_bytes"], "ballast_sha256": app["ballast_sha256"]}
            return body

        def do_GET(self) -> None:
            if self.path in ("/", "/state"):
                self._reply(200, self._status(self.path == "/state"))
            else:
                self._reply(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            if self.path == "/incr":
                self._reply(200, {"count": counter.incr()})
            else:
                self._reply(404, {"error": f"no such path {self.path}"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def wait_for_go(fd_text: str) -> bool:
    """Block until the driver says go (one byte) on the pipe ``fd_text``; False on EOF."""
    fd = int(fd_text)
    try:
        return os.read(fd, 1) != b""
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.drivers.counter_app", description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", default=os.environ.get("PLBA_STATE_DIR", "."))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PLBA_PORT", "0") or 0))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between automatic increments (0: none)")
    parser.add_argument("--state-bytes", type=int, default=0, help="size of the ballast file")
    args = parser.parse_args(argv)

    if os.environ.get("PLBA_READY_FD"):  # standing by: started up, waiting for the state
        fd = int(os.environ["PLBA_READY_FD"])
        os.write(fd, b"r")
        os.close(fd)
    if os.environ.get("PLBA_GO_FD") and not wait_for_go(os.environ["PLBA_GO_FD"]):
        return 0
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    counter = Counter(state_dir)
    app: dict[str, Any] = {
        "workload_id": os.environ.get("PLBA_WORKLOAD_ID", ""),
        "pid": os.getpid(),
        "started_at": time.time(),
        "state_dir": str(state_dir),
        "ballast_bytes": max(args.state_bytes, 0),
        "ballast_sha256": "",
    }
    ballast_ready = threading.Event()
    app["ballast_ready"] = ballast_ready

    def ballast() -> None:
        app["ballast_sha256"] = ensure_ballast(state_dir, args.state_bytes)
        ballast_ready.set()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = ThreadingHTTPServer((args.host, args.port), make_handler(app, counter)) if args.port else None
    if server is not None:
        # A short poll: a SIGTERM (the quiesce of a migration) ends the process promptly.
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    threading.Thread(target=ballast, daemon=True).start()
    counter.save()
    print(f"counter_app pid={os.getpid()} port={args.port} count={counter.count}", file=sys.stderr, flush=True)
    while not stop.wait(args.tick if args.tick > 0 else None):
        counter.incr()
    # Flush, then leave at once: a SIGTERM is how a migration quiesces this process, and the
    # time until it is gone counts as downtime (nothing else needs an orderly interpreter exit).
    counter.save()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
