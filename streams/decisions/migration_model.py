"""Predicted migration duration and downtime: the shared model of :mod:`schemas.migration_model`.

The formula lives in ``schemas`` so the decision policy and the node's ``sim`` driver use the
same one (``agents`` must not import ``streams``); this module keeps the policy's import path.

>>> MigrationModel(bandwidth_bytes_per_second=125e6).estimate("reroute", 1_000_000_000).downtime_seconds
0.0
"""

from __future__ import annotations

from schemas.migration_model import (
    METHODS,
    MigrationEstimate,
    MigrationModel,
    MigrationModelError,
    method_for,
)

__all__ = ["METHODS", "MigrationEstimate", "MigrationModel", "MigrationModelError", "method_for"]
