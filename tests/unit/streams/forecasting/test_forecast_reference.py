"""Reference values from a published table: simple exponential smoothing of the fpp2 oil series.

Source: R. J. Hyndman & G. Athanasopoulos, *Forecasting: Principles and Practice*, 2nd ed.
(OTexts, 2018), §7.1 "Simple exponential smoothing", Table 7.2: Saudi Arabian oil production
1996-2013 (``fpp2::oil``), SES fitted by ``ses(oildata)`` with alpha = 0.8339 and ℓ₀ = 446.59.
The one-step fitted values below are R's ``fitted(ses(window(oil, start = 1996)))`` to four
decimals (alpha = 0.8338901, ℓ₀ = 446.5867935 unrounded), and the forecast for 2014 onwards is
ℓ₂₀₁₃ = 542.68 (Table 7.2's last row). The inputs are themselves rounded to four decimals,
so the fitted values are matched to 2·10⁻⁴.
"""

from __future__ import annotations

import pytest

from streams.forecasting.models import EWMA, HoltWintersModel

ALPHA = 0.8338901
LEVEL0 = 446.5867935
OIL = [
    445.3641, 453.1950, 454.4096, 422.3789, 456.0371, 440.3866, 425.1944, 486.2052, 500.4291,
    521.2759, 508.9476, 488.8889, 509.8706, 456.7229, 473.8166, 525.9509, 549.8338, 542.3405,
]  # fmt: skip
FITTED = [
    446.5868, 445.5672, 451.9280, 453.9974, 427.6311, 451.3186, 442.2025, 428.0196, 476.5400,
    496.4609, 517.1539, 510.3108, 492.4472, 506.9764, 465.0705, 472.3638, 517.0495, 544.3880,
]  # fmt: skip
FORECAST_2014 = 542.68


def test_ewma_reproduces_fpp2_ses_oil() -> None:
    model = EWMA(ALPHA)
    model.learn(0, LEVEL0)  # the first value seeds the level: ℓ₀
    for year, (y, fitted) in enumerate(zip(OIL, FITTED, strict=True), start=1):
        assert model.forecast(year - 1, (1,))[0] == pytest.approx(fitted, abs=2e-4)
        model.learn(year, y)
    assert model.forecast(len(OIL), (1, 2, 5)) == pytest.approx([FORECAST_2014] * 3, abs=5e-3)


def test_river_holt_winters_reproduces_fpp2_ses_oil() -> None:
    # River's Holt-Winters without trend or season is SES; it starts from the mean of its first
    # two values, so two copies of ℓ₀ give it the book's initial level.
    model = HoltWintersModel(ALPHA)
    model.learn(0, LEVEL0)
    model.learn(1, LEVEL0)
    for year, (y, fitted) in enumerate(zip(OIL, FITTED, strict=True), start=2):
        assert model.forecast(year - 1, (1,))[0] == pytest.approx(fitted, abs=2e-4)
        model.learn(year, y)
    assert model.forecast(len(OIL) + 1, (1, 3))[0] == pytest.approx(FORECAST_2014, abs=5e-3)
