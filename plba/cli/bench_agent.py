"""``plba bench agent``: what telemetry costs a node, and how fast its producer publishes.

Two measurements against the real broker, on topics of a private prefix (deleted afterwards):

1. **Sampling cost.** A real :class:`agents.node.Node` with the ``sim`` driver hosts N
   workloads following a shared trace (100 Azure VMs by default); the telemetry agent samples
   it every ``interval`` seconds for ``seconds`` seconds and publishes through the buffered
   producer. Reported: the process's CPU seconds (``getrusage``: every thread, librdkafka's
   included) per sample and per workload-sample, the share of one core, and the CPU of the
   sampling thread alone. Target: 100 workloads every second under 2 % of one core.
2. **Producer throughput.** Workload-usage records are sent as fast as ``send`` accepts them
   and the time until the broker acknowledged all of them gives the sustained rate.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click
import orjson

from plba.cli.options import kafka_options, settings

log = logging.getLogger(__name__)

TARGET_CORE_RATIO = 0.02
_WIDE_TRACES = {
    "azure": "azure_v1_100vms/microsoft_avg_100.csv.gz",
    "azure-max": "azure_v1_100vms/microsoft_max_100.csv.gz",
    "bitbrains": "bitbrains_rnd/rnd_2013-8_cpu_pct_5min_500vms.csv.gz",
}


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _series(traces_dir: Path, trace: str, n: int) -> list[str]:
    path = traces_dir / _WIDE_TRACES[trace]
    if not path.is_file():
        raise click.ClickException(f"trace {trace!r} not found at {path} (set PLBA_TRACES_DIR)")
    with gzip.open(path, "rt") as f:
        columns = f.readline().strip().split(",")[1:]
    return [columns[i % len(columns)] for i in range(n)]


async def _sampling(s: Any, workloads: int, interval: float, seconds: float, trace: str) -> dict[str, Any]:
    from agents.drivers.base import WorkloadSpec
    from agents.node import Node
    from agents.producer import BufferedProducer
    from agents.telemetry import TelemetryAgent, Tick

    series = _series(Path(s.traces_dir), trace, workloads)
    with tempfile.TemporaryDirectory(prefix="plba-bench-agent-") as tmp:
        node = await Node.open("bench-node", ["sim"], Path(tmp) / "state", traces_dir=s.traces_dir,
                               labels={"pool": "bench"})  # fmt: skip
        try:
            for i, col in enumerate(series):
                spec = WorkloadSpec(
                    workload_id=f"bench-{i:04d}",
                    kind="container",
                    driver="sim",
                    memory_bytes=64 * 2**20,
                    params={"trace": trace, "series": col},
                )
                await node.start_workload(spec)
            node.endpoint = "127.0.0.1:50051"
            producer = BufferedProducer(s, name="bench-agent").start()
            agent = TelemetryAgent(node, s, producer, interval=interval)
            thread_cpu = 0.0
            real_tick = agent.run_tick

            def timed_tick(tick: Tick) -> int:
                nonlocal thread_cpu
                t0 = time.thread_time()
                try:
                    return real_tick(tick)
                finally:
                    thread_cpu += time.thread_time() - t0

            agent.run_tick = timed_tick  # type: ignore[method-assign]
            stop = asyncio.Event()
            cpu0, wall0 = _cpu_seconds(), time.monotonic()
            task = asyncio.create_task(agent.run(stop))
            await asyncio.sleep(seconds)
            stop.set()
            await task
            cpu1, wall1 = _cpu_seconds(), time.monotonic()
            left = await asyncio.to_thread(producer.flush, 60.0)
            stats = await asyncio.to_thread(producer.close, 5.0)
        finally:
            await node.close()
    samples = agent.samples
    cpu = cpu1 - cpu0
    wall = wall1 - wall0
    per_sample = cpu / samples if samples else float("nan")
    return {
        "workloads": workloads,
        "trace": trace,
        "interval_seconds": interval,
        "wall_seconds": round(wall, 3),
        "samples": samples,
        "skipped_ticks": agent.schedule.skipped_total if agent.schedule else 0,
        "records_published": stats.delivered,
        "records_unconfirmed": left,
        "process_cpu_seconds": round(cpu, 4),
        "cpu_seconds_per_sample": per_sample,
        "cpu_seconds_per_workload_sample": per_sample / workloads if samples else float("nan"),
        "core_ratio": cpu / wall,
        "core_ratio_at_1s_interval": per_sample / 1.0 if samples else float("nan"),
        "sampling_thread_cpu_seconds_per_sample": thread_cpu / samples if samples else float("nan"),
        "target_core_ratio": TARGET_CORE_RATIO,
        "meets_target": (per_sample / 1.0) * (100 / workloads) < TARGET_CORE_RATIO if samples else False,
    }


def _throughput(s: Any, records: int) -> dict[str, Any]:
    from agents.producer import BufferedProducer, BufferLimits
    from schemas import registry
    from schemas.codec import codec

    enc = codec("workload_usage")
    topic = registry.topic("workload_usage", s.topic_prefix)
    values: list[tuple[str, bytes]] = []
    for i in range(1000):
        rec = {"schema_version": 1, "workload_id": f"rate-{i:04d}", "node_id": "bench-node", "kind": "container",
               "driver": "sim", "sampled_at": time.time(), "interval_seconds": 1.0, "seq": i, "cpu_cores_used": 0.5,
               "cpu_ratio": 0.25, "mem_used_bytes": 2**28, "io_bytes_per_second": 1000.0, "priority": 50}  # fmt: skip
        values.append((f"rate-{i:04d}", enc.encode(rec)))
    limits = BufferLimits(max_records=max(records + 1, 100_000), max_inflight=50_000)
    producer = BufferedProducer(s, limits=limits, name="bench-rate").start()
    cpu0, t0 = _cpu_seconds(), time.monotonic()
    for i in range(records):
        key, value = values[i % 1000]
        producer.send(topic, value, key=key)
    sent_at = time.monotonic()
    left = producer.flush(300.0)
    t1, cpu1 = time.monotonic(), _cpu_seconds()
    stats = producer.close(5.0)
    return {
        "records": records,
        "bytes_per_record": round(sum(len(v) for _, v in values) / len(values)),
        "send_seconds": round(sent_at - t0, 3),
        "seconds_until_all_acknowledged": round(t1 - t0, 3),
        "records_per_second": records / (t1 - t0),
        "cpu_seconds_per_record": (cpu1 - cpu0) / records,
        "delivered": stats.delivered,
        "unconfirmed": left,
    }


@click.command("agent")
@kafka_options
@click.option("--workloads", default=100, show_default=True, type=click.IntRange(1, 10_000), help="Sim workloads")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.01, 60), help="Sampling interval")
@click.option("--seconds", default=30.0, show_default=True, type=click.FloatRange(1, 3600), help="Sampling duration")
@click.option("--trace", default="azure", show_default=True, type=click.Choice(sorted(_WIDE_TRACES)), help="Trace")
@click.option("--rate-records", default=200_000, show_default=True, type=click.IntRange(0), help="0: skip")
@click.option("--json", "as_json", is_flag=True, help="Print JSON")
def bench_agent_cmd(
    workloads: int, interval: float, seconds: float, trace: str, rate_records: int, as_json: bool
) -> None:
    """Telemetry cost per sample and per workload, and the producer's sustained rate (real broker)."""
    from confluent_kafka.admin import AdminClient

    from agents.fingerprint import read_host
    from plba.topic_admin import TopicAdminError, create_topics
    from schemas.topics import TOPICS

    base = settings()
    s = base.replace(topic_prefix=f"bench-agent-{uuid.uuid4().hex[:8]}.")
    try:
        create_topics(s)
    except TopicAdminError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        sampling = asyncio.run(_sampling(s, workloads, interval, seconds, trace))
        rate = _throughput(s, rate_records) if rate_records else None
    finally:
        admin = AdminClient(s.confluent_config(), logger=log)
        for fut in admin.delete_topics([spec.name(s.topic_prefix) for spec in TOPICS.values()]).values():
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - best effort cleanup of the bench's own topics
                log.debug("could not delete a bench topic: %s", exc)
    host = read_host()
    result = {
        "benchmark": "agent",
        "broker": s.bootstrap,
        "host": {"cpu_model": host.cpu_model, "logical_cores": host.logical_cores},
        "sampling": sampling,
        "producer": rate,
    }
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
        return
    smp = sampling
    click.echo(f"host: {host.cpu_model} ({host.logical_cores} cores); broker {s.bootstrap}")
    click.echo(f"sampling: {smp['workloads']} sim workloads ({trace}) every {interval:g} s for {smp['wall_seconds']} s")
    click.echo(f"  samples                       {smp['samples']} (skipped ticks {smp['skipped_ticks']})")
    click.echo(f"  records published             {smp['records_published']}")
    click.echo(f"  process CPU per sample        {smp['cpu_seconds_per_sample'] * 1000:.2f} ms")
    click.echo(f"  per workload-sample           {smp['cpu_seconds_per_workload_sample'] * 1e6:.1f} µs")
    click.echo(f"  sampling thread per sample    {smp['sampling_thread_cpu_seconds_per_sample'] * 1000:.2f} ms")
    click.echo(f"  share of one core             {smp['core_ratio'] * 100:.2f} % (target < 2 % for 100 at 1 s)")
    if rate:
        click.echo(f"producer: {rate['records']} records of {rate['bytes_per_record']} B")
        click.echo(f"  sustained rate                {rate['records_per_second']:,.0f} records/s")
        click.echo(f"  CPU per record                {rate['cpu_seconds_per_record'] * 1e6:.1f} µs")
