"""Fault scenarios run against real components (broker, worker, node executors, QEMU).

Each scenario returns counts it measured; ``plba bench faults`` aggregates them and the integration
tests assert on them (ARCHITECTURE §11, issue #9).
"""
