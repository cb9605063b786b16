"""Shared pytest fixtures, the hypothesis profiles, and the ../shared skip banner."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from fleetsim.cli.app import main

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE (default ci). ci: deterministic
# (derandomize) and small (30 examples a fuzz test, ~210 over tests/fuzz); nightly: many,
# random. Tests with their own @settings(max_examples=...) keep their count.
_HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
# ci does not shrink: a failing fuzz test reports its first failing scenario (as YAML, with
# the command) in well under a minute instead of minutes of shrinking; nightly shrinks.
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True,
                          suppress_health_check=_HEALTH, print_blob=True,
                          phases=(Phase.explicit, Phase.reuse, Phase.generate))
settings.register_profile("nightly", max_examples=2000, deadline=None,
                          suppress_health_check=_HEALTH, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ../shared (public data: full traces, published measurements) lies beside the checkout.
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_SKIP = "requires ../shared:"


def shared_path(relative: str) -> Path:
    """SHARED / relative; skips the calling test (uniform reason) when it is missing."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{SHARED_SKIP} {relative} is missing")
    return path


@pytest.fixture()
def requires_shared() -> Callable[[str], Path]:
    """`def test_x(requires_shared): p = requires_shared('traces/x.csv')` - skips loudly."""
    return shared_path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires_shared(path): needs ../shared/<path>; "
                                       "skipped (and counted in the summary) without it")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_shared"):
        for rel in mark.args:
            shared_path(rel)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """A banner when tests were skipped for want of ../shared (they test nothing then)."""
    missing = []
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(rep, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if "shared" in reason:
            missing.append(f"{rep.nodeid} ({reason.removeprefix('Skipped: ')})")
    if missing:
        tw = terminalreporter
        tw.section(f"{len(missing)} tests SKIPPED because ../shared is missing", sep="!",
                   red=True, bold=True)
        tw.write_line(f"{len(missing)} tests SKIPPED because ../shared is missing: "
                      + "; ".join(missing))


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `fleetsim ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture()
def cli_json(cli):  # type: ignore[no-untyped-def]
    """Run a --json command and parse its single JSON object."""

    def run(*args: str) -> dict:
        code, out, err = cli(*args, "--json")
        assert code == 0, err
        return json.loads(out)

    return run
