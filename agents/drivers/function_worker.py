"""A warm worker of the function driver: ``python -m agents.drivers.function_worker MODULE:FUNCTION``.

It imports the handler once, then serves invocations over its stdin/stdout: each message is a
4-byte big-endian length and a JSON document. The first message it writes says whether the
handler loaded (``{"ready": true, "pid": …}`` or ``{"ready": false, "error": …}``); then for
each ``{"event": …}`` it reads it writes ``{"ok": true, "result": …}`` or ``{"ok": false,
"error": …}``. It exits when its stdin closes. Whatever a handler prints goes to stderr (the
pool's log), never into the message stream.

``demo`` is the built-in function: a little CPU work, and who served it.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEMO_HANDLER = "agents.drivers.function_worker:demo"


def demo(event: Any) -> dict[str, Any]:
    """Sum of squares below ``n`` (default 20,000, at most 10,000,000), and the worker's pid."""
    n = 20_000
    if isinstance(event, dict) and "n" in event:
        n = max(0, min(int(event["n"]), 10_000_000))
    total = sum(i * i for i in range(n))
    echo = event.get("echo") if isinstance(event, dict) else None
    return {"n": n, "sum": total, "pid": os.getpid(), "echo": echo}


def load_handler(spec: str) -> Callable[[Any], Any]:
    module_name, _, attr_path = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj  # type: ignore[no-any-return]


def write_message(out: BinaryIO, message: dict[str, Any] | bytes) -> None:
    data = message if isinstance(message, bytes) else json.dumps(message).encode()
    out.write(struct.pack(">I", len(data)) + data)
    out.flush()


def read_message(inp: BinaryIO) -> dict[str, Any] | None:
    head = inp.read(4)
    if len(head) < 4:
        return None
    (length,) = struct.unpack(">I", head)
    if length > MAX_MESSAGE_BYTES:
        raise ValueError(f"message of {length} bytes is too large")
    data = inp.read(length)
    if len(data) < length:
        return None
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = args[0] if args else DEMO_HANDLER
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the handler's prints go to the log, not into the message stream
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer
    try:
        handler = load_handler(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the pool, which refuses the spec
        write_message(out, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_message(out, {"ready": True, "pid": os.getpid()})
    while True:
        message = read_message(inp)
        if message is None:
            return 0
        try:
            reply = json.dumps({"ok": True, "result": handler(message.get("event"))}).encode()
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the caller's answer
            reply = json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}).encode()
        write_message(out, reply)


if __name__ == "__main__":
    sys.exit(main())
