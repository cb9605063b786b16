"""Shared body of the fuzz properties: run a case, fail with its reproducer."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness import reproducer, run_case
from strategies import FuzzCase


def check_case(case: FuzzCase) -> None:
    """Valid: exit 0 (training may say infeasible, 3) and the numbers pass the checks;
    invalid: exit 2 with one 'fleetsim: error:' line. Never a traceback or exit 4."""
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_case(case, Path(tmp))
    assert outcome.cls == "ok", f"{outcome.cls}: {outcome.detail}\n{reproducer(case, outcome)}"
