"""The ``function`` driver: serverless functions served by pools of warm worker processes.

A function workload is a Python callable (``module:function``, param ``handler``; default the
built-in :func:`agents.drivers.function_worker.demo`) loaded once in each of ``workers`` worker
processes, behind its own HTTP endpoint on the node's loopback address:

* ``POST /`` (or ``/invoke``) with a JSON body → the handler's result as JSON (200), a handler
  error (500 ``{"error": …}``), a body that is not JSON (400), no idle worker within
  ``timeout_seconds`` (503) or a worker that died or overran the timeout (502/504; the worker
  is replaced);
* ``GET /healthz`` → ``{"status": "ok", "workers": N}``.

Invocations go to an idle warm worker (one invocation per worker at a time). Usage per function
is the sum over its workers (psutil), I/O is the endpoint's request+response bytes per second,
and ``extra`` carries ``invocations_total``, ``errors_total``, ``invocations_per_second`` and
``workers``. Functions are stateless and their endpoint lives in the node process: they stop
with the node (``close``) and are not adopted after a restart.

Params: ``handler`` (``module:function``), ``workers`` (1..64, default 2), ``port`` (``auto`` or
a number), ``timeout_seconds`` (per invocation, default 30), ``start_timeout_seconds``
(default 30), ``drain_seconds`` (how long a moved function's old endpoint keeps forwarding,
default 10).

Migration (method ``reroute``, no downtime): the target starts a warm pool of its own when the
move is prepared; at the switch the source's endpoint starts *forwarding* every invocation to
the target's endpoint (each answer carries ``X-PLBA-Moved-To: <new endpoint>``), while
invocations already running on the source's workers finish there. After the commit the source
keeps forwarding for ``drain_seconds`` — the placements topic tells clients the new endpoint
meanwhile — then stops accepting, lets the requests in progress finish and closes. A client
that follows the header or the placements (:class:`agents.function_router.FunctionRouter`)
never sees a failed invocation; should the target be unreachable while forwarding, the
source's own workers serve the invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from agents.drivers import params as P
from agents.drivers.base import (
    AlreadyExists,
    Driver,
    DriverContext,
    IncomingPlan,
    InvalidSpec,
    MigrationUnsupported,
    MoveFigures,
    OutgoingMove,
    StartFailed,
    UnknownWorkload,
    Usage,
    WorkloadInfo,
    WorkloadSpec,
)
from agents.drivers.function_worker import DEMO_HANDLER, MAX_MESSAGE_BYTES
from agents.drivers.http_front import HttpFront, Request, Response, http_call
from agents.drivers.process import with_project_path
from agents.drivers.psmeter import ProcessGone, ProcessTreeMeter
from agents.drivers.records import remove_workload_dir

log = logging.getLogger(__name__)

KNOWN_PARAMS = frozenset({"handler", "workers", "port", "timeout_seconds", "start_timeout_seconds", "drain_seconds"})
MOVED_HEADER = "X-PLBA-Moved-To"
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_HANDLER = re.compile(rf"^{_DOTTED}:{_DOTTED}$")
LOG_FILE = "workers.log"
_RATE_WINDOW_SECONDS = 0.5


class WorkerFailed(Exception):
    """A worker process died or broke the message protocol."""


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    handler: str
    workers: int
    port: int  # 0: any free port
    timeout_seconds: float
    start_timeout_seconds: float
    drain_seconds: float = 10.0


def config_from_spec(spec: WorkloadSpec) -> FunctionConfig:
    unknown = sorted(set(spec.params) - KNOWN_PARAMS)
    if unknown:
        raise InvalidSpec(f"unknown param {unknown[0]!r} for driver function; known: {', '.join(sorted(KNOWN_PARAMS))}")
    handler = P.text(spec, "handler") or DEMO_HANDLER
    if not _HANDLER.match(handler):
        raise InvalidSpec(f"param handler: {handler!r} is not module:function (e.g. mypkg.handlers:resize)")
    port = P.port(spec)
    if port is None:
        raise InvalidSpec("param port: a function needs an endpoint; use auto or a port number")
    return FunctionConfig(
        handler=handler,
        workers=P.integer(spec, "workers", 2, minimum=1, maximum=64),
        port=port,
        timeout_seconds=P.number(spec, "timeout_seconds", 30.0, positive=True, maximum=3600),
        start_timeout_seconds=P.number(spec, "start_timeout_seconds", 30.0, positive=True, maximum=600),
        drain_seconds=P.number(spec, "drain_seconds", 10.0, minimum=0.0, maximum=3600),
    )


class _Worker:
    """One warm worker process and its message pipe."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.meter: ProcessTreeMeter | None = None

    @classmethod
    async def spawn(cls, handler: str, log_path: Path, timeout: float) -> _Worker:
        env = with_project_path(dict(os.environ))
        with open(log_path, "ab") as log_file:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "agents.drivers.function_worker",
                handler,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                env=env,
                start_new_session=True,  # a Ctrl-C at the node's terminal is the node's to handle
            )
        worker = cls(proc)
        try:
            hello = await asyncio.wait_for(worker._read(), timeout)
        except (TimeoutError, WorkerFailed) as exc:
            await worker.kill()
            raise StartFailed(f"function worker for {handler} did not start: {exc or 'timed out'}") from exc
        if not hello.get("ready"):
            await worker.kill()
            raise InvalidSpec(f"param handler: cannot load {handler}: {hello.get('error')}")
        with contextlib.suppress(ProcessGone):
            worker.meter = ProcessTreeMeter(proc.pid)
        return worker

    async def call(self, event: Any, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        data = json.dumps({"event": event}).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise WorkerFailed(f"worker {self.proc.pid} is gone: {exc}") from exc
        return await asyncio.wait_for(self._read(), timeout)

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            head = await self.proc.stdout.readexactly(4)
            (length,) = struct.unpack(">I", head)
            if length > MAX_MESSAGE_BYTES:
                raise WorkerFailed(f"worker {self.proc.pid} sent a {length}-byte message")
            message = json.loads(await self.proc.stdout.readexactly(length))
        except asyncio.IncompleteReadError as exc:
            raise WorkerFailed(f"worker {self.proc.pid} exited") from exc
        except ValueError as exc:
            raise WorkerFailed(f"worker {self.proc.pid} broke the protocol: {exc}") from exc
        if not isinstance(message, dict):
            raise WorkerFailed(f"worker {self.proc.pid} broke the protocol: not an object")
        return message

    async def close(self, grace: float = 5.0) -> None:
        """Close its stdin (the worker exits), then SIGKILL after ``grace``."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                await self.kill()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


class _Pool:
    """The warm workers of one function and its HTTP endpoint."""

    def __init__(self, spec: WorkloadSpec, config: FunctionConfig, directory: Path, host: str) -> None:
        self.spec = spec
        self.config = config
        self.directory = directory
        self.workers: list[_Worker] = []
        self.idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self.front = HttpFront(self._route, host, config.port)
        self.host = host
        self.started_at = 0.0
        self.state = "starting"
        self.invocations_total = 0
        self.errors_total = 0
        self._rate_mark: tuple[float, int, int] | None = None  # (monotonic, invocations, bytes)
        self._rates = (0.0, 0.0)
        self._respawns: set[asyncio.Task[None]] = set()
        self.forward_to = ""  # set once the function moved: invocations go there
        self.forwarded_total = 0

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.front.port}/" if self.front.port else ""

    async def start(self, started_at: float) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started_at = started_at
        results = await asyncio.gather(
            *(self._spawn() for _ in range(self.config.workers)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise failures[0]
        await self.front.start()
        self.state = "running"

    async def _spawn(self) -> None:
        worker = await _Worker.spawn(self.config.handler, self.directory / LOG_FILE, self.config.start_timeout_seconds)
        self.workers.append(worker)
        self.idle.put_nowait(worker)

    async def _route(self, request: Request) -> Response:
        if request.path == "/healthz" and request.method == "GET":
            health = {"status": "ok", "function": self.spec.workload_id, "workers": len(self.workers)}
            return _json(HTTPStatus.OK, health)
        if request.path not in ("/", "/invoke"):
            return _json(HTTPStatus.NOT_FOUND, {"error": f"no such path {request.path}; POST / to invoke"})
        if request.method != "POST":
            return _json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST a JSON body to invoke the function"})
        if self.forward_to:
            forwarded = await self._forward(request)
            if forwarded is not None:
                return forwarded
        try:
            event = json.loads(request.body) if request.body.strip() else {}
        except ValueError as exc:
            return _json(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {exc}"})
        return await self.invoke(event)

    async def _forward(self, request: Request) -> Response | None:
        """Pass an invocation to the function's new endpoint; None if it cannot be reached there
        (the local workers serve it then: no invocation fails because of the move)."""
        target = self.forward_to
        try:
            reply = await http_call(
                target, request.body, headers={"Content-Type": "application/json"}, timeout=self.config.timeout_seconds
            )
        except OSError as exc:
            log.warning("function %s: forwarding to %s failed (%s); serving here", self.spec.workload_id, target, exc)
            return None
        self.forwarded_total += 1
        return Response(reply.status, reply.body, reply.content_type, {**reply.headers, MOVED_HEADER: target})

    async def invoke(self, event: Any) -> Response:
        timeout = self.config.timeout_seconds
        try:
            worker = await asyncio.wait_for(self.idle.get(), timeout)
        except TimeoutError:
            self.errors_total += 1
            return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"no idle worker within {timeout:g} s"})
        self.invocations_total += 1
        try:
            reply = await worker.call(event, timeout)
        except TimeoutError:
            self.errors_total += 1
            self._replace(worker)
            return _json(HTTPStatus.GATEWAY_TIMEOUT, {"error": f"the invocation ran over {timeout:g} s"})
        except WorkerFailed as exc:
            self.errors_total += 1
            self._replace(worker)
            return _json(HTTPStatus.BAD_GATEWAY, {"error": str(exc)})
        except BaseException:
            self._replace(worker)  # cancelled mid-call: the pipe may hold a half-read reply
            raise
        self.idle.put_nowait(worker)
        if not reply.get("ok"):
            self.errors_total += 1
            return _json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": reply.get("error", "handler failed")})
        return _json(HTTPStatus.OK, reply.get("result"))

    def _replace(self, worker: _Worker) -> None:
        if worker in self.workers:
            self.workers.remove(worker)

        async def respawn() -> None:
            await worker.kill()
            if self.state != "running":
                return
            try:
                await self._spawn()
            except Exception as exc:  # noqa: BLE001 - logged; the pool serves on with fewer workers
                log.error("function %s: cannot replace a worker: %s", self.spec.workload_id, exc)

        task = asyncio.get_running_loop().create_task(respawn())
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def close(self, grace_seconds: float = 0.0) -> None:
        self.state = "stopped"
        await self.front.close(grace_seconds)
        for task in list(self._respawns):
            task.cancel()
        await asyncio.gather(*self._respawns, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in self.workers), return_exceptions=True)
        self.workers.clear()

    def usage(self, now: float) -> Usage:
        cpu, rss = 0.0, 0
        for worker in list(self.workers):
            if worker.meter is None:
                continue
            try:
                reading = worker.meter.read()
            except ProcessGone:
                continue
            cpu += reading.cpu_cores
            rss += reading.rss_bytes
        mono = time.monotonic()
        traffic = self.front.bytes_in + self.front.bytes_out
        if self._rate_mark is None:
            self._rate_mark = (mono, self.invocations_total, traffic)
        elif mono - self._rate_mark[0] >= _RATE_WINDOW_SECONDS:
            elapsed = mono - self._rate_mark[0]
            self._rates = (
                (self.invocations_total - self._rate_mark[1]) / elapsed,
                (traffic - self._rate_mark[2]) / elapsed,
            )
            self._rate_mark = (mono, self.invocations_total, traffic)
        extra = {
            "invocations_total": float(self.invocations_total),
            "errors_total": float(self.errors_total),
            "invocations_per_second": self._rates[0],
            "workers": float(len(self.workers)),
        }
        return Usage(self.spec.workload_id, now, cpu, rss, self._rates[1], extra)


class FunctionDriver(Driver):
    """Pools of warm worker processes behind loopback HTTP endpoints; see the module docstring."""

    name = "function"
    kind = "function"
    migration_method = "reroute"

    def __init__(self, ctx: DriverContext, clock: Callable[[], float] = time.time) -> None:
        super().__init__(ctx)
        self._clock = clock
        self._pools: dict[str, _Pool] = {}
        self._incoming: dict[str, _Pool] = {}  # warm pools of moves not switched yet
        self._draining: dict[str, tuple[_Pool, asyncio.Task[None]]] = {}  # moved away, still forwarding

    def version(self) -> str:
        return f"python-{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"

    async def start(self, spec: WorkloadSpec) -> WorkloadInfo:
        wid = spec.workload_id
        if wid in self._pools or wid in self._incoming:
            raise AlreadyExists(f"workload {wid!r} already runs on this node")
        return self._info(await self._start_pool(spec, self._pools))

    async def _start_pool(self, spec: WorkloadSpec, into: dict[str, _Pool]) -> _Pool:
        config = config_from_spec(spec)
        wid = spec.workload_id
        pool = _Pool(spec, config, self.ctx.workload_dir(wid), self.ctx.bind_host)
        into[wid] = pool
        try:
            await pool.start(self._clock())
        except OSError as exc:  # the endpoint's port is taken
            into.pop(wid, None)
            remove_workload_dir(pool.directory)
            raise StartFailed(f"function {wid!r}: cannot listen on port {config.port}: {exc.strerror or exc}") from exc
        except BaseException:
            into.pop(wid, None)
            remove_workload_dir(pool.directory)
            raise
        return pool

    # ---- migration ------------------------------------------------------------------------

    async def migrate_in_prepare(self, spec: WorkloadSpec, staging: Path) -> IncomingPlan:
        """Warm the target: a pool of its own, serving at its own endpoint before the switch."""
        wid = spec.workload_id
        if wid in self._pools:
            raise AlreadyExists(f"workload {wid!r} already runs on this node")
        pool = self._incoming.get(wid) or await self._start_pool(spec, self._incoming)
        return IncomingPlan(params={"endpoint": pool.endpoint})

    async def migrate_in_switch(self, spec: WorkloadSpec, staging: Path) -> WorkloadInfo:
        wid = spec.workload_id
        if wid in self._pools:
            return self._info(self._pools[wid])
        pool = self._incoming.pop(wid, None)
        if pool is None:  # the warm pool died with a restarted node: warm a new one
            return await self.start(spec)
        self._pools[wid] = pool
        return self._info(pool)

    async def migrate_in_abort(self, workload_id: str, staging: Path) -> None:
        pool = self._incoming.pop(workload_id, None)
        if pool is not None:
            await pool.close()
            await asyncio.to_thread(remove_workload_dir, pool.directory)
        if workload_id in self._pools:
            await self.stop(workload_id)

    async def migrate_out_transfer(self, workload_id: str, move: OutgoingMove) -> MoveFigures:
        pool = self._pools.get(workload_id)
        if pool is None:
            raise UnknownWorkload(f"no function workload {workload_id!r} on this node")
        if pool.state != "running":
            raise MigrationUnsupported(f"function {workload_id!r} is {pool.state}: only a running function moves")
        target = move.incoming.params.get("endpoint", "")
        return MoveFigures(transferred_bytes=0, downtime_seconds=0.0, message=f"target pool warm at {target}")

    async def migrate_out_switched(self, workload_id: str, endpoint: str) -> None:
        pool = self._pools.get(workload_id)
        if pool is not None and endpoint:
            pool.forward_to = endpoint
            log.info("function %s: forwarding invocations to %s", workload_id, endpoint)

    async def migrate_out_remove(self, workload_id: str) -> None:
        """No longer hosted here; the endpoint forwards for ``drain_seconds``, then closes."""
        pool = self._pools.pop(workload_id, None)
        if pool is None:
            raise UnknownWorkload(f"no function workload {workload_id!r} on this node")
        task = asyncio.get_running_loop().create_task(self._drain(pool), name=f"drain-{workload_id}")
        self._draining[workload_id] = (pool, task)

    async def _drain(self, pool: _Pool) -> None:
        wid = pool.spec.workload_id
        try:
            await asyncio.sleep(pool.config.drain_seconds)
        finally:
            await pool.close(grace_seconds=pool.config.timeout_seconds)
            await asyncio.to_thread(remove_workload_dir, pool.directory)
            if self._draining.get(wid, (None,))[0] is pool:
                del self._draining[wid]
            log.info("function %s: old endpoint closed (%d invocations forwarded)", wid, pool.forwarded_total)

    async def migrate_out_rollback(self, workload_id: str, spec: WorkloadSpec) -> None:
        pool = self._pools.get(workload_id)
        if pool is not None:
            pool.forward_to = ""
        elif workload_id not in self._incoming:
            await self.start(spec)  # the pool died with a restarted node

    async def stop(self, workload_id: str) -> None:
        pool = self._pools.pop(workload_id, None)
        if pool is None:
            raise UnknownWorkload(f"no function workload {workload_id!r} on this node")
        await pool.close()
        await asyncio.to_thread(remove_workload_dir, pool.directory)

    def list(self) -> list[WorkloadInfo]:
        return [self._info(pool) for pool in self._pools.values()]

    def usage(self, workload_id: str, now: float) -> Usage:
        pool = self._pools.get(workload_id)
        if pool is None:
            raise UnknownWorkload(f"no function workload {workload_id!r} on this node")
        return pool.usage(now)

    async def invoke(self, workload_id: str, event: Any) -> Response:
        """Invoke a function directly (what its endpoint does), for in-process callers."""
        pool = self._pools.get(workload_id)
        if pool is None:
            raise UnknownWorkload(f"no function workload {workload_id!r} on this node")
        return await pool.invoke(event)

    async def close(self) -> None:
        """Stop every function: their endpoints live in this process."""
        for workload_id in list(self._pools):
            await self.stop(workload_id)
        for workload_id in list(self._incoming):
            await self.migrate_in_abort(workload_id, Path())
        for _pool, task in list(self._draining.values()):
            task.cancel()  # its finally closes the pool
            await asyncio.gather(task, return_exceptions=True)

    @staticmethod
    def _info(pool: _Pool) -> WorkloadInfo:
        return WorkloadInfo(pool.spec, pool.state, pool.started_at, pool.endpoint)


def _json(status: HTTPStatus, body: Any) -> Response:
    return Response(int(status), json.dumps(body).encode())
