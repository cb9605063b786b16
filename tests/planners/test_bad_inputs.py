"""Bad planner inputs found by trying them: one ConfigError line (exit 2), never a traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("args", "needle"), [
    (("plan", "power", "--budget-kw", "60", "--tp", "0"), "power.tp"),  # was ZeroDivisionError
    (("plan", "power", "--budget-kw", "1e12", "--training"), "power.budget_kw"),  # was 5 TiB alloc
    (("plan", "serve", "--model", "llama3-8b", "--devices", "l4", "--slo-ttft", "1",
      "--slo-tpot", "0.1", "--confirm-top", "-1"), "confirm_top"),  # was accepted silently
])
def test_bad_planner_input_is_one_line(cli, args, needle) -> None:
    code, _, err = cli(*args)
    assert code == 2, err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
