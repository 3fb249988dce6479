"""Live stages: the pure cores of the worker's processors (records in, records out, time as input)."""
