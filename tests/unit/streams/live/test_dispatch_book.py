"""The dispatcher's pure core: duplicates, expiry, superseded orders; and waiting for endpoints."""

from __future__ import annotations

import asyncio
import itertools

from streams.dispatcher import ENDPOINT_WAIT_SECONDS, Dispatcher
from streams.live.dispatch import DRY_RUN, DUPLICATE, EXPIRED, IN_PROGRESS, RUN, SUPERSEDED, DispatchBook


def order(oid: str, workload: str = "w1", issued: float = 100.0, deadline: float = 1000.0, **kw: object) -> dict:
    return {
        "order_id": oid, "workload_id": workload, "issued_at": issued, "deadline_at": deadline,
        "source_node": "a", "target_node": "b", "method": "simulated", "kind": "vm", **kw,
    }  # fmt: skip


def test_an_order_runs_once_and_its_redelivery_is_a_duplicate():
    book = DispatchBook()
    assert book.admit(order("o1"), 150.0) == RUN
    assert book.admit(order("o1"), 151.0) == IN_PROGRESS
    book.finish("o1", "completed")
    assert book.admit(order("o1"), 152.0) == DUPLICATE


def test_dry_run_and_expired_orders_never_run():
    book = DispatchBook()
    assert book.admit(order("o1", dry_run=True), 150.0) == DRY_RUN
    assert book.admit(order("o2", deadline=120.0), 150.0) == EXPIRED


def test_an_order_older_than_one_admitted_for_the_workload_is_superseded():
    book = DispatchBook()
    assert book.admit(order("new", issued=200.0), 210.0) == RUN
    # still running, and after it finished: the older order must not move the workload back
    assert book.admit(order("old", issued=150.0), 211.0) == SUPERSEDED
    book.finish("new", "completed")
    assert book.admit(order("old", issued=150.0), 212.0) == SUPERSEDED
    # other workloads and newer orders are unaffected
    assert book.admit(order("other", workload="w2", issued=150.0), 213.0) == RUN
    assert book.admit(order("newer", issued=300.0), 310.0) == RUN


def test_a_superseding_order_that_expired_does_not_supersede_anything():
    book = DispatchBook()
    assert book.admit(order("late", issued=200.0, deadline=205.0), 210.0) == EXPIRED
    assert book.admit(order("old", issued=150.0), 211.0) == RUN


def test_the_book_stays_bounded():
    book = DispatchBook(capacity=3)
    for i in range(10):
        oid = f"o{i}"
        assert book.admit(order(oid, workload=f"w{i}"), 150.0) == RUN
        book.finish(oid, "completed")
    assert len(book.finished) == 3 and len(book.newest) == 3


def test_an_order_waits_for_its_endpoints_then_is_rejected_if_they_never_appear():
    ticks = itertools.count()
    clock = lambda: 100.0 + next(ticks)  # noqa: E731 - one second per reading
    d = Dispatcher(lambda node: None, clock=clock, retry_backoff_seconds=0.0)

    async def run() -> list:
        return [rec async for rec in d.execute(order("o1", deadline=10_000.0))]

    out = asyncio.run(run())
    assert [(role, rec["state"], rec["error"]["code"]) for role, rec in out] == [
        ("migrations", "rejected", "unknown_node")
    ]
    assert out[0][1]["at"] >= 100.0 + ENDPOINT_WAIT_SECONDS  # it waited before giving up


def test_an_endpoint_learned_while_waiting_is_used():
    known: dict[str, str] = {}
    asked: list[str] = []

    def endpoint_of(node: str) -> str | None:
        asked.append(node)
        if len(asked) > 6:  # learned from the nodes' next telemetry
            known.update(a="127.0.0.1:1", b="127.0.0.1:2")
        return known.get(node)

    d = Dispatcher(endpoint_of, retry_backoff_seconds=0.0)
    assert asyncio.run(d._endpoints(order("o1", deadline=1e12))) == ("127.0.0.1:1", "127.0.0.1:2")
