"""Property-based fuzzing of the option-only commands (estimate step, hw/models show,
traces stats/synth) with odd values: exit 0, 2 or 3 with one stderr line, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness import run_cli_case
from hypothesis import given
from strategies import hypothesis_cli_argv


@given(hypothesis_cli_argv())
def test_option_values_never_traceback(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_cli_case(argv, Path(tmp))
    assert outcome.cls == "ok", f"{outcome.cls}: {outcome.detail}\npython -m fleetsim " \
                                f"{' '.join(outcome.argv)}"
