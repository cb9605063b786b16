"""Errors raised for bad input: each names where (file), what (key) and what is allowed."""

from __future__ import annotations

from collections.abc import Iterable


class FleetsimError(ValueError):
    """Base for every user-facing input error; the CLI prints str(err) on one line, exits 2."""


class ConfigError(FleetsimError):
    """A value in a spec, scenario, catalog file or trace is missing or out of range."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        allowed: Iterable[object] | str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.key = key
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        parts = []
        if file:
            parts.append(str(file))
        if key:
            parts.append(f"key '{key}'")
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)

    def with_context(self, *, file: str | None = None, key: str | None = None) -> ConfigError:
        """This error with `file` / `key` filled in where it names none (never prefixed twice:
        the bare message, key and allowed values are carried, not its formatted text)."""
        if (self.file or not file) and (self.key or not key):
            return self
        out = ConfigError(self.message, file=self.file or file, key=self.key or key,
                          allowed=self.allowed)
        out.__cause__ = self.__cause__
        return out


class UnknownNameError(ConfigError):
    """A catalog or registry lookup for a name that does not exist."""

    def __init__(self, kind: str, name: str, valid: Iterable[str], *, file: str | None = None,
                 key: str | None = None) -> None:
        super().__init__(f"unknown {kind} '{name}'", file=file, key=key or kind,
                         allowed=sorted(valid))


class InfeasibleError(FleetsimError):
    """The input is valid but asks for the impossible (a plan that does not fit memory,
    a search with no feasible point); the CLI exits 3 unless --allow-infeasible was given."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.hint = hint
        super().__init__(message + (f"; {hint}" if hint else ""))


class InvariantError(RuntimeError):
    """A simulation ended in a state that cannot be right (a request lost or finished twice,
    KV blocks leaked, time moving backwards, NaN in a summary). Always a fleetsim bug, never
    a number to report: the CLI prints it on one line naming the scenario and exits 4."""

    exit_code = 4

    def __init__(self, invariant: str, detail: str, *, scenario: str | None = None) -> None:
        self.invariant = invariant
        self.detail = detail
        self.scenario = scenario
        where = f"scenario '{scenario}': " if scenario else ""
        super().__init__(f"{where}invariant '{invariant}' violated: {detail}")
