"""Shared pytest fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from fleetsim.cli.app import main


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
