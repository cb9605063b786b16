"""InvariantError raised inside a SimPy process (a request ending twice, a KV pool over- or
under-allocated). SimPy re-raises a process's exception as `type(exc)(*exc.args)`, which
InvariantError's (invariant, detail) signature does not survive (the run died with a
TypeError); this subclass keeps (invariant, detail) as its args so the copy is faithful, and
simulate_serving adds the scenario's name on the way out."""

from __future__ import annotations

from hwmodels.errors import InvariantError


class RunInvariantError(InvariantError):
    """An invariant broken mid-run; survives SimPy's exception copy."""

    def __init__(self, invariant: str, detail: str, *, scenario: str | None = None) -> None:
        super().__init__(invariant, detail, scenario=scenario)
        self._message = super().__str__()
        self.args = (invariant, detail)

    def __str__(self) -> str:
        return self._message
