"""Property-based fuzzing of `fleetsim simulate` on training scenarios (tests/fuzz/strategies.py):
valid scenarios run to a consistent answer, invalid ones exit 2 with one line. The example
count comes from the hypothesis profile (HYPOTHESIS_PROFILE=ci|nightly, tests/conftest.py)."""

from __future__ import annotations

from _common import check_case
from hypothesis import given
from strategies import FuzzCase, hypothesis_cases


@given(hypothesis_cases(kind="training", valid=True))
def test_valid_training_scenarios_run_to_a_consistent_answer(case: FuzzCase) -> None:
    check_case(case)


@given(hypothesis_cases(kind="training", valid=False))
def test_invalid_training_scenarios_exit_2_with_one_line(case: FuzzCase) -> None:
    check_case(case)
