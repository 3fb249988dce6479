"""Bad input into a running pipeline: random and mutated records interleaved with valid ones, counted.

A real ``plba worker`` (forecasting, decisions and the dispatcher) runs on private topics with a
small record limit (so oversized records stay cheap). Into each input topic go ``bad`` records of
every kind of :mod:`plba.faults.bad_records` shuffled among valid ones. The producer's delivery
reports give each record's coordinates, so the count is exact, not statistical:

- every bad record must appear in the DLQ at its own (topic, partition, offset) with the code its
  kind expects (``bad_records_in_dlq``; wrong codes and missing ones are counted apart);
- no valid record may appear there (``valid_records_in_dlq``);
- the worker must process every valid record: its group commits every offset, and the owning
  processors' ``plba_records_consumed_total`` (valid records only) reaches the valid count;
  each valid order (already past its deadline) is answered by an ``expired`` status;
- the worker stays up and no Faust agent crashes (``worker_crashes``).
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from plba.bench_support import committed, private_topics, worker_process
from plba.faults import bad_records as br
from plba.faults.rig import free_port
from plba.faults.topic_read import FaultRunError, metric, read_to_end, scrape_when_up
from schemas.settings import Settings

Progress = Callable[[str], None]

# Faust logs an agent that died on an exception as "Crashed reason=…"; a cancelled one (a rebalance)
# is restarted and is not a crash.
_CRASH = re.compile(r"Crashed reason=(?!CancelledError)")


def worker_crashes(log_path: Path, exited: bool) -> int:
    """Agent crashes in a worker's log, plus one if the process itself is gone."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return len(_CRASH.findall(text)) + (1 if exited else 0)


def crash_reasons(log_path: Path, limit: int = 5) -> list[str]:
    """The distinct "Crashed reason=…" lines of a worker's log, each with the traceback line that
    names the exception's origin (the last ``File`` line after it), so a failed run says why."""
    if not log_path.exists():
        return []
    lines = log_path.read_text(errors="replace").splitlines()
    seen: dict[str, None] = {}
    for i, line in enumerate(lines):
        m = _CRASH.search(line)
        if m is None:
            continue
        origin = ""
        for follow in lines[i + 1 : i + 80]:
            if follow.lstrip().startswith("File "):
                origin = follow.strip()
            elif follow and not follow[0].isspace() and not follow.startswith("Traceback"):
                break
        seen.setdefault(f"{line[m.start() :][:300]} at {origin[:200]}", None)
        if len(seen) >= limit:
            break
    return list(seen)


class _Injector:
    """Produces records and keeps each one's coordinates (from the delivery reports) with its kind."""

    def __init__(self, settings: Settings) -> None:
        self.p = Producer(
            {
                **settings.confluent_config(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "queue.buffering.max.messages": 200_000,
            }
        )
        self.landed: dict[tuple[str, int, int], str | None] = {}  # (topic, partition, offset) -> kind
        self.failed = 0

    def send(self, topic: str, key: bytes, value: bytes | None, kind: str | None) -> None:
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                self.failed += 1
            else:
                self.landed[(msg.topic(), msg.partition(), msg.offset())] = kind

        while True:
            try:
                self.p.produce(topic, key=key, value=value, on_delivery=done)
                break
            except BufferError:
                self.p.poll(0.05)
        self.p.poll(0)

    def flush(self, timeout: float = 120.0) -> None:
        left = self.p.flush(timeout)
        if left or self.failed:
            raise FaultRunError(f"injection: {left} records undelivered, {self.failed} failed")


def _wait_committed(
    settings: Settings, worker: Any, targets: dict[str, int], timeout: float, progress: Progress | None
) -> dict[str, int]:
    """Poll the worker group's committed offsets until they reach ``targets``; fail after ``timeout``
    seconds without progress (a slow worker on a busy machine is fine, a stuck one is not)."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        if worker.proc.poll() is not None:
            raise FaultRunError(f"the worker exited with {worker.proc.returncode}; see {worker.log_path}")
        done = {role: committed(settings, worker.group, role) for role in targets}
        if all(done[r] >= n for r, n in targets.items()):
            return done
        now = time.monotonic()
        if done != seen:
            seen, deadline = done, now + timeout
        elif now > deadline:
            raise FaultRunError(f"the worker committed {done} of {targets} and nothing more for {timeout:.0f} s")
        if progress is not None and now - last_report >= 10.0:
            last_report = now
            progress("  worker committed " + ", ".join(f"{r} {done[r]}/{n}" for r, n in targets.items()))
        time.sleep(0.5)


def _dlq_index(settings: Settings) -> tuple[dict[tuple[str, int, int], str], int, dict[str, Counter[str]]]:
    """DLQ records as (source topic, partition, offset) -> error code, how many were repeats, and which
    processor wrote them per source topic (each topic's dead letters have one owner)."""
    index: dict[tuple[str, int, int], str] = {}
    writers: dict[str, Counter[str]] = {}
    repeats = 0
    for rec in read_to_end(settings, "dlq"):
        if rec.value is None:
            continue
        env = orjson.loads(rec.value)
        if env.get("partition") is None or env.get("offset") is None:
            continue  # a processor's own invalid output, not an input record
        coord = (env["source_topic"], int(env["partition"]), int(env["offset"]))
        repeats += coord in index
        index[coord] = env["error_code"]
        writers.setdefault(env["source_topic"], Counter())[env["processor"]] += 1
    return index, repeats, writers


def run_bad_input(
    settings: Settings,
    workdir: Path,
    bad_per_topic: int = 10_000,
    progress: Progress | None = None,
    *,
    valid_per_topic: int | None = None,
    max_record_bytes: int = 8192,
    seed: int = 9,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Inject ``bad_per_topic`` bad records (and ``valid_per_topic``, default a quarter as many, valid
    ones) into each input topic of a running worker; returns the counts (see the module docstring)."""
    say = progress or (lambda _m: None)
    n_valid = bad_per_topic // 4 if valid_per_topic is None else valid_per_topic
    rng = random.Random(seed)
    roles = br.INPUT_ROLES
    workdir.mkdir(parents=True, exist_ok=True)
    with private_topics(settings, "inject") as s:
        port = free_port()
        env = {
            "PLBA_WORKER_DISPATCH": "true",  # orders are the dispatcher's input
            "PLBA_POLICY": "none",  # only intake is under test: no orders of the worker's own
            "PLBA_MAX_RECORD_BYTES": str(max_record_bytes),
            "PLBA_METRICS_PORT": str(port),
        }
        with worker_process(s, workdir, "inject-worker", **env) as worker:
            inj = _Injector(s)
            now = time.time()
            # One valid record per topic first: the worker is running (it committed them) before the mix.
            for role in roles:
                rec = br.valid(role, 0, now)
                inj.send(s.topic(role), br.key_of(role, rec), br.encode(rec), None)
            inj.flush()
            say(f"bad input: worker up on {s.topic_prefix}*, waiting for its first commits")
            _wait_committed(s, worker, dict.fromkeys(roles, 1), timeout, progress)
            scrape_when_up(port)
            plans = {role: br.plan(role, bad_per_topic, n_valid, rng) for role in roles}
            say(
                f"bad input: injecting {bad_per_topic} bad and {n_valid} valid records into each of {len(roles)} topics"
            )
            counters = dict.fromkeys(roles, 0)
            for j in range(bad_per_topic + n_valid):
                for role in roles:  # round robin across topics: every processor sees a mix at once
                    kind = plans[role][j]
                    counters[role] += 1
                    i = counters[role]
                    if kind is None:
                        rec = br.valid(role, i, time.time())
                        inj.send(s.topic(role), br.key_of(role, rec), br.encode(rec), None)
                    else:
                        data = br.bad(role, kind, rng, time.time(), max_record_bytes, i)
                        inj.send(s.topic(role), f"{kind}-{i}".encode(), data, kind)
            inj.flush()
            totals = {role: 1 + bad_per_topic + n_valid for role in roles}
            say("bad input: injected; waiting until the worker has committed every offset")
            _wait_committed(s, worker, totals, timeout, progress)
            result = _count(s, inj.landed, port, timeout, say)
            result["worker_crashes"] = worker_crashes(worker.log_path, worker.proc.poll() is not None)
            result["worker_crash_reasons"] = crash_reasons(worker.log_path)
    return result


def _count(
    s: Settings, landed: dict[tuple[str, int, int], str | None], port: int, timeout: float, say: Progress
) -> dict[str, Any]:
    role_of = {s.topic(r): r for r in br.INPUT_ROLES}
    expected = {c: br.EXPECTED_CODE[k] for c, k in landed.items() if k is not None}
    valid = {c for c, k in landed.items() if k is None}
    # The DLQ writes come before the commits of their records, but read until they are all there
    # (or nothing new arrives for a while) rather than trust the order.
    deadline = time.monotonic() + timeout
    found = -1
    while True:
        index, repeats, writers = _dlq_index(s)
        matched = sum(1 for c, code in expected.items() if index.get(c) == code)
        if matched == len(expected):
            break
        if matched != found:
            found, deadline = matched, time.monotonic() + min(timeout, 60.0)
        elif time.monotonic() > deadline:
            break
        time.sleep(1.0)
    samples = scrape_when_up(port)
    consumed = {r: int(metric(samples, "plba_records_consumed_total", topic=r)) for r in br.INPUT_ROLES}
    statuses = read_to_end(s, "migrations")
    expired = set()
    for m in statuses:
        status = orjson.loads(m.value) if m.value else {}
        if status.get("state") == "expired" and str(status.get("order_id", "")).startswith("f-ord-"):
            expired.add(status["order_id"])
    in_dlq_codes = Counter(index[c] for c in expected if c in index)
    say(f"bad input: {matched}/{len(expected)} bad records in the DLQ with their expected code")
    return {
        "bad_records_injected": len(expected),
        "bad_records_in_dlq": matched,
        "bad_records_wrong_code": sum(1 for c, code in expected.items() if c in index and index[c] != code),
        "bad_records_missing_from_dlq": sum(1 for c in expected if c not in index),
        "dlq_repeats": repeats,
        "valid_records_injected": len(valid),
        "valid_records_in_dlq": sum(1 for c in valid if c in index),
        "valid_records_processed": sum(consumed.values()),
        "valid_orders_answered": len(expired),
        "injected_by_reason": dict(sorted(Counter(expected.values()).items())),
        "dlq_by_reason": dict(sorted(in_dlq_codes.items())),
        "dlq_writers": {role_of[t]: dict(c) for t, c in sorted(writers.items()) if t in role_of},
        "injected_by_topic": {
            role_of[t]: n for t, n in sorted(Counter(t for (t, _p, _o) in expected).items()) if t in role_of
        },
    }
