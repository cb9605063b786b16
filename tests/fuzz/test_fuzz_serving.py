"""Property-based fuzzing of `fleetsim simulate` on serving scenarios (tests/fuzz/strategies.py):
valid scenarios run to a consistent answer, invalid ones exit 2 with one line. The example
count comes from the hypothesis profile (HYPOTHESIS_PROFILE=ci|nightly, tests/conftest.py)."""

from __future__ import annotations

from _common import check_case
from hypothesis import given, settings
from strategies import FuzzCase, hypothesis_cases


@given(hypothesis_cases(kind="serving", valid=True))
def test_valid_serving_scenarios_run_to_a_consistent_answer(case: FuzzCase) -> None:
    check_case(case)


@given(hypothesis_cases(kind="serving", valid=False))
def test_invalid_serving_scenarios_exit_2_with_one_line(case: FuzzCase) -> None:
    check_case(case)


@settings(max_examples=max(4, settings.default.max_examples // 5))
@given(hypothesis_cases(kind="shipped", valid=True))
def test_shipped_scenarios_mutated_still_run(case: FuzzCase) -> None:
    """simulator/scenarios/*.yaml (serving and training), shrunk and mutated in range."""
    check_case(case)
