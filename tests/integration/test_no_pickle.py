"""No pickle from the wire: a crafted pickle on an input topic is a dead letter, never code that runs.

Each payload would run ``touch <tmp>/pwned`` if anything unpickled it (the test itself only
builds it with ``pickle.dumps`` and inspects its opcodes statically). A running ``plba worker``
gets them on the workload-usage and policies topics, followed by valid records; the file must
not appear, every pickle must be in the DLQ as ``invalid_json``, and the worker must go on and
accept the valid records behind them.
"""

from __future__ import annotations

import base64
import os
import pickle
import pickletools
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest

from schemas.settings import Settings
from tests.integration.kafka_io import REPO, produce, read_topic, settings_env

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EXAMPLES = REPO / "schemas" / "examples" / "valid"


class Exploit:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def payloads(marker: Path) -> dict[str, bytes]:
    obj = Exploit(f"touch {marker}")
    raw0 = pickle.dumps(obj, protocol=0)  # text pickle: "cposix\nsystem\n…"
    raw5 = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    # What Faust's "pickle" value serializer would put on the wire (pickle, then base64).
    faust_style = base64.b64encode(raw5)
    return {"protocol-0": raw0, "protocol-5": raw5, "faust-pickle-codec": faust_style}


def calls_system(data: bytes) -> bool:
    """Static check (no unpickling) that a pickle imports os.system (posix.system on Linux)."""
    tokens = {tok for _op, arg, _pos in pickletools.genops(data) if isinstance(arg, str) for tok in arg.split()}
    return "system" in tokens and bool(tokens & {"posix", "os", "nt"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def worker(env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``plba worker`` in its own process group, with its Faust data dir under ``cwd``."""
    log = open(cwd / "worker.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "plba.cli.main", "worker"], env={**env, "PYTHONPATH": str(REPO)}, cwd=cwd,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)
        log.close()


def counters(port: int) -> dict[tuple[str, str], float]:
    """(role, "consumed") and (role, reason) → count, from the worker's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        for metric, what in (("plba_records_consumed_total{", "consumed"), ("plba_records_rejected_total{", "")):
            if line.startswith(metric):
                labels, _, value = line.rpartition(" ")
                role = labels.split('topic="', 1)[1].split('"', 1)[0]
                reason = what or labels.split('reason="', 1)[1].split('"', 1)[0]
                out[(role, reason)] = float(value)
    return out


def settled(seen: dict[tuple[str, str], float], bad_per_topic: int) -> bool:
    """The valid record of each topic was accepted, and every pickle before it rejected as invalid JSON.

    (Several processors may read a topic: each counts what it accepts; one counts the rejections.)
    """
    return all(
        seen.get((role, "consumed"), 0) >= 1 and seen.get((role, "invalid_json"), 0) >= bad_per_topic
        for role in ("workload_usage", "policies")
    )


def test_the_payloads_are_real_exploits(tmp_path):
    for name, data in payloads(tmp_path / "pwned").items():
        raw = base64.b64decode(data) if name == "faust-pickle-codec" else data
        assert calls_system(raw), name
        assert str(tmp_path / "pwned").encode() in raw


def test_a_crafted_pickle_is_refused_and_the_worker_goes_on(kafka_settings: Settings, tmp_path):
    s = kafka_settings
    marker = tmp_path / "pwned"
    bad = payloads(marker)
    usage = orjson.loads((EXAMPLES / "workload_usage" / "sim_minimal.json").read_bytes())
    policy = orjson.loads((EXAMPLES / "policy" / "app_pinned.json").read_bytes())
    usage_key = usage["workload_id"].encode()
    policy_key = f"{policy['subject_kind']}:{policy['subject']}".encode()
    metrics_port = free_port()
    env = settings_env(s, PLBA_METRICS_PORT=str(metrics_port), PLBA_WORKER_DISPATCH="false")
    with worker(env, tmp_path) as proc:
        # Same keys as the valid records, so the pickles sit before them in the same partition.
        produce(s, "workload_usage", [(usage_key, data) for data in bad.values()], raw=True)
        produce(s, "policies", [(policy_key, data) for data in bad.values()], raw=True)
        produce(s, "workload_usage", [(usage_key, usage)])
        produce(s, "policies", [(policy_key, policy)])
        sources = {s.topic("workload_usage"), s.topic("policies")}
        wanted = {(topic, data) for topic in sources for data in bad.values()}

        def dead(records: list[dict]) -> set[tuple[str, bytes]]:
            return {
                (r["source_topic"], base64.b64decode(r["value_b64"]))
                for r in records
                if r.get("source_topic") in sources and r.get("value_b64")
            }

        dlq = read_topic(s, "dlq", until=lambda r: dead(r) >= wanted, timeout=120, alive=proc)
        deadline = time.monotonic() + 60
        seen = counters(metrics_port)
        while time.monotonic() < deadline and proc.poll() is None and not settled(seen, len(bad)):
            time.sleep(0.5)
            seen = counters(metrics_port)
        alive = proc.poll() is None
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert not marker.exists(), "a pickle from the wire was unpickled"
    assert dead(dlq) >= wanted, f"missing from the DLQ: {len(wanted - dead(dlq))}; worker log:\n{log[-3000:]}"
    ours = [r for r in dlq if r.get("source_topic") in sources]
    assert {r["error_code"] for r in ours} == {"invalid_json"}
    assert alive, f"the worker stopped; log:\n{log[-3000:]}"
    assert settled(seen, len(bad)), {k: v for k, v in seen.items() if k[0] in ("workload_usage", "policies") and v}
    assert "Traceback" not in log
