"""Online forecasting core: per-series forecasters, their candidates, intervals and events.

Plain Python with time as an input (no Kafka, no clock reads); the Faust processors and the
replay benchmark call the same code.
"""

from streams.forecasting.bank import ForecasterBank, SeriesKey
from streams.forecasting.errors import ForecastingError, SampleError, StateError
from streams.forecasting.events import ActiveEvent, EventEffects
from streams.forecasting.forecaster import Forecast, ForecasterConfig, SeriesForecaster

__all__ = [
    "ActiveEvent",
    "EventEffects",
    "Forecast",
    "ForecasterBank",
    "ForecasterConfig",
    "ForecastingError",
    "SampleError",
    "SeriesForecaster",
    "SeriesKey",
    "StateError",
]
