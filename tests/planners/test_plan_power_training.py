"""plan power --training: nameplate provisioning is the floor of the servers it plans.

Lockstep training runs near TDP, so POLCA capping above nameplate breaks the throughput limit;
before this floor the search went *below* nameplate (60 kW: 11 of 12 servers) although
nameplate servers never need a cap.
"""

from __future__ import annotations

import pytest

from planners.power import ImpactLimits, load_server, plan_power


@pytest.mark.parametrize("budget_kw", [60.0, 200.0])
def test_training_never_plans_fewer_servers_than_nameplate(budget_kw: float) -> None:
    plan = plan_power(budget_kw, "dgx-a100", training=True, seed=1)
    nameplate = int(budget_kw * 1e3 // load_server("dgx-a100").nameplate_w)
    assert plan.nameplate_servers == nameplate
    assert plan.servers >= nameplate
    assert plan.evaluated[plan.servers]
    assert plan.row.power_w.max() <= budget_kw * 1e3  # the uncapped nameplate row fits
    assert plan.gain >= 0.0


def test_the_floor_says_why_the_capped_row_was_replaced() -> None:
    plan = plan_power(60.0, "dgx-a100", training=True, seed=1)
    note = plan.to_dict()["notes"]["nameplate_floor"]
    assert "low throughput" in note and "uncapped" in note
    assert plan.row.cap_events == 0


def test_a_tight_limit_still_keeps_the_nameplate_floor() -> None:
    strict = ImpactLimits(high_p50=0.001, high_p99=0.001, low_throughput=0.001)
    plan = plan_power(60.0, "dgx-a100", training=True, seed=1, limits=strict)
    assert plan.servers == plan.nameplate_servers == 12


def test_no_floor_when_not_even_one_server_fits_nameplate() -> None:
    plan = plan_power(3.0, "dgx-a100", training=True, seed=1)  # < one 4.85 kW server
    assert plan.nameplate_servers == 0
    assert not plan.feasible
