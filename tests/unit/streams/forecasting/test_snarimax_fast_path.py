"""The unrolled SNARIMAX(2, 1, 2) path is the general recursion, float for float."""

from __future__ import annotations

import math
import random

import pytest

from streams.forecasting import models
from streams.forecasting.models import SnarimaxModel


def _series(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [40 + 20 * math.sin(k / 7) + rng.gauss(0, 4) for k in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("learned", [5, 40, 300])
def test_unrolled_path_equals_the_general_loop(seed: int, learned: int) -> None:
    model = SnarimaxModel(2, 1, 2, scale=100.0)
    for step, y in enumerate(_series(learned, seed)):
        model.learn(step, y)
    m = model._model
    fast = model.river_path(30)
    # The same inputs through the general loop (what river_path used for every order before).
    scaler, linear = m.regressor["StandardScaler"], m.regressor["LinearRegression"]
    weights = linear._weights.to_dict()
    coef = []
    for name in ("y-1", "y-2", "e-1", "e-2"):
        var = scaler.vars.get(name, 0.0)
        coef.append((scaler.means.get(name, 0.0), 1.0 / var**0.5 if var else 0.0, weights.get(name, 0.0)))
    undiff = sorted((t, c) for t, c in m.differencer.coeffs.items() if t)
    general = models._general_path(
        30, linear.intercept, coef[:2], coef[2:], undiff, list(m.y_diff), list(m.errors), list(m.y_hist)
    )
    assert fast == general  # exactly: same operations in the same order
    assert fast == pytest.approx(m.forecast(30), rel=1e-9, abs=1e-12)  # and River's own forecast
