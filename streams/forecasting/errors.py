"""The exception root of :mod:`streams.forecasting`."""

from __future__ import annotations


class ForecastingError(ValueError):
    """Root of every error raised by the forecasting core (bad arguments, bad samples, bad state)."""


class SampleError(ForecastingError):
    """A sample the forecaster cannot learn from (not finite, or older than the last one).

    The stream processor turns it into a DLQ record; the forecaster's state is unchanged.
    """


class StateError(ForecastingError):
    """A state dict that is not a valid snapshot of this forecaster (wrong version or shape)."""
