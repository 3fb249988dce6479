"""PLBA contracts: JSON Schemas, typed records, the validating codec, topics and settings.

This package is the shared base of the dependency graph (``agents -> schemas <- streams``):
it imports neither side, and neither Faust nor River.
"""
