"""StepTimer: decode runs in closed form match the exact hwmodels step model (steptime.py's claims)."""

from __future__ import annotations

import math

import pytest

from hwmodels.catalog import load_device, load_model
from hwmodels.step import StepCostModel
from simulator.serving.steptime import StepTimer, step_cost_from_model


@pytest.fixture(scope="module")
def timer_and_cost():
    cost = step_cost_from_model(StepCostModel(load_model("llama2-70b"), load_device("h100-sxm"),
                                              tp=8, pp=1))
    return StepTimer(cost), cost


@pytest.mark.parametrize("n", [1, 7, 64, 256])
@pytest.mark.parametrize("ctx_per_seq", [20, 333, 4000])
def test_one_decode_step_within_1e3_of_exact(timer_and_cost, n: int, ctx_per_seq: int) -> None:
    timer, cost = timer_and_cost
    c0 = n * ctx_per_seq
    exact = cost(0, 0, n, c0, 0, 0)
    assert math.isclose(timer.decode_sum(n, c0, 1), exact, rel_tol=1e-3)


@pytest.mark.parametrize(("n", "c0", "k"), [(1, 5, 300), (16, 16 * 90, 77), (128, 128 * 1500, 40)])
def test_k_steps_at_once_equal_k_single_steps(timer_and_cost, n: int, c0: int, k: int) -> None:
    timer, _ = timer_and_cost
    singles = sum(timer.decode_sum(n, c0 + j * n, 1) for j in range(k))
    assert math.isclose(timer.decode_sum(n, c0, k), singles, rel_tol=1e-9)


def test_steps_until_is_the_first_boundary_at_or_after(timer_and_cost) -> None:
    timer, _ = timer_and_cost
    n, c0, k = 32, 32 * 700, 50
    elapsed = timer.decode_sum(n, c0, 20) - 1e-9
    j = timer.decode_steps_until(n, c0, k, elapsed)
    assert j == 20
    assert timer.decode_sum(n, c0, j - 1) < elapsed <= timer.decode_sum(n, c0, j)
    assert timer.decode_steps_until(n, c0, k, 1e9) == k
