"""Replay benchmarks of the stream cores; each prints JSON (no timed assertions in tests)."""
