"""HorizonSelector: per-horizon choice by rolling error, demotion on degradation, reliability."""

from __future__ import annotations

import random

import pytest

from streams.forecasting.errors import ForecastingError, StateError
from streams.forecasting.selector import HorizonSelector, SelectorParams

READY = [True, True, True, True]


def feed(sel: HorizonSelector, i: int, steps: range, errors: list[float], rng: random.Random) -> None:
    """Candidates whose forecasts miss the value by about ``errors[c]``; combined = chosen mean."""
    for step in steps:
        y = 50.0
        preds = [y + e * rng.choice((-1.0, 1.0)) for e in errors]
        chosen = sel.chosen[i]
        issued = sum(preds[c] for c in chosen) / len(chosen)
        sel.observe(i, preds, issued, y, step)
        sel.select(i, step, READY)


def test_prior_until_warm_then_best_candidates_per_horizon() -> None:
    sel = HorizonSelector(4, 2, SelectorParams(top_k=2, warmup=10), prior=(2,))
    assert sel.chosen == [[2], [2]]
    rng = random.Random(1)
    feed(sel, 0, range(5), [1.0, 0.2, 3.0, 0.5], rng)
    assert sel.chosen[0] == [2] and sel.warming_up(0) and not sel.reliable[0] and sel.use[0]
    feed(sel, 0, range(5, 100), [1.0, 0.2, 3.0, 0.5], rng)
    feed(sel, 1, range(100), [1.0, 3.0, 3.0, 0.1], rng)  # another horizon, another ranking
    assert sel.chosen[0] == [1, 3] and sel.chosen[1] == [3, 0]
    assert sel.reliable == [True, True]


def test_degrading_candidate_is_demoted_then_returns() -> None:
    params = SelectorParams(top_k=1, warmup=5, half_life=500, short_half_life=5, demote_ratio=1.5, demote_steps=50)
    sel = HorizonSelector(4, 1, params)
    rng = random.Random(2)
    feed(sel, 0, range(300), [1.0, 0.2, 3.0, 3.0], rng)
    assert sel.chosen[0] == [1]
    # Candidate 1 breaks: its long error is still the best, but its short one is far above
    # last-value's, so it is demoted at once rather than after its long error catches up.
    feed(sel, 0, range(300, 310), [1.0, 5.0, 3.0, 3.0], rng)
    assert sel.demotions >= 1
    assert sel.chosen[0] != [1]
    assert sel.long[0][1] < sel.long[0][0]  # would still have been chosen on the long error alone
    # Recovered: once the demotion expires it competes again.
    feed(sel, 0, range(310, 700), [1.0, 0.2, 3.0, 3.0], rng)
    assert sel.chosen[0] == [1]


def test_unreliable_when_the_combination_loses_to_last_value() -> None:
    sel = HorizonSelector(3, 1, SelectorParams(top_k=1, warmup=5, reliable_ratio=1.05))
    for step in range(200):
        y = 50.0 + (step % 2)
        # Candidate 1 looks best on its scores, but what was issued was much worse than naive.
        sel.observe(0, [y - 1.0, y - 0.1, y + 3.0], y + 5.0, y, step)
        sel.select(0, step, [True, True, True])
    assert sel.chosen[0] == [1]
    assert not sel.reliable[0] and not sel.use[0]


def test_not_ready_candidates_are_skipped() -> None:
    sel = HorizonSelector(3, 1, SelectorParams(top_k=2, warmup=1))
    sel.observe(0, [1.0, 0.0, 0.5], 0.0, 0.0, 1)
    assert sel.select(0, 1, [True, False, True]) == [2, 0]
    assert sel.select(0, 1, [False, False, False]) == [0]


def test_state_round_trip_and_validation() -> None:
    sel = HorizonSelector(4, 2, SelectorParams(warmup=3))
    feed(sel, 0, range(40), [1.0, 0.2, 3.0, 0.5], random.Random(3))
    copy = HorizonSelector.from_state(4, 2, sel.params, sel.prior, sel.to_state())
    assert copy.to_state() == sel.to_state()
    with pytest.raises(StateError):
        HorizonSelector.from_state(5, 2, sel.params, sel.prior, sel.to_state())
    with pytest.raises(ForecastingError):
        HorizonSelector(3, 1, prior=(7,))
    with pytest.raises(ForecastingError):
        SelectorParams(top_k=0)
