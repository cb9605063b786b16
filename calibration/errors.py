"""The calibration package's input error (stdlib only: the benchmark path never imports hwmodels).

`python -m calibration` prints it on one line and exits 2. The public API (run_calibration,
validate_profile) re-raises it as hwmodels.errors.ConfigError via `to_config_error`, so the
fleetsim CLI handles it like every other input error.
"""

from __future__ import annotations

from collections.abc import Iterable


class CalibrationError(ValueError):
    """Bad calibration input: unavailable device, unsupported dtype, bad profile file."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 allowed: Iterable[object] | str | None = None) -> None:
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.message, self.file, self.key, self.allowed = message, file, key, allowed
        prefix = ": ".join(p for p in (file, f"key '{key}'" if key else None) if p)
        text = f"{prefix}: {message}" if prefix else message
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


def to_config_error(err: CalibrationError) -> ValueError:
    """The same error as hwmodels.errors.ConfigError where hwmodels is installed."""
    try:
        from hwmodels.errors import ConfigError
    except ImportError:  # bare box
        return err
    return ConfigError(err.message, file=err.file, key=err.key, allowed=err.allowed)


class ProfileRejectedError(RuntimeError):
    """A fitted profile that does not beat the catalog defaults on its own held-out shapes.

    Nothing is written; the CLI exits 3 with this one line (`--allow-worse` writes it anyway,
    marked as such). `heldout` carries the comparison (median error of profile vs defaults).
    """

    def __init__(self, message: str, *, heldout: dict[str, object] | None = None) -> None:
        self.message = message
        self.heldout = heldout or {}
        super().__init__(message)
