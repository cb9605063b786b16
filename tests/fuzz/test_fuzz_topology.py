"""Property-based fuzzing of scale-up topologies (issue 18): training and serving scenarios on
a TPU torus (one or two slices, chosen or default slice_shape), an xGMI/HCCS mesh and an
NVSwitch node, with intra_node/inter_node variety, run to a consistent answer; a slice shape
that does not fit, a link the device does not have or an unknown NIC exits 2 with one line."""

from __future__ import annotations

from _common import check_case
from hypothesis import given
from strategies import FuzzCase, hypothesis_cases


@given(hypothesis_cases(kind="topology", valid=True))
def test_valid_topology_scenarios_run_to_a_consistent_answer(case: FuzzCase) -> None:
    check_case(case)


@given(hypothesis_cases(kind="topology", valid=False))
def test_invalid_topology_scenarios_exit_2_with_one_line(case: FuzzCase) -> None:
    check_case(case)
