"""Public helpers that span layers: read a scenario file of either kind into typed specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwmodels.catalog import read_yaml
from hwmodels.errors import ConfigError

#: top-level keys that only a serving scenario has
_SERVING_KEYS = frozenset({"serving", "workload", "slo"})


def load_scenario(path: str | Path, *, kind: str | None = None) -> Any:
    """A TrainingScenario or ServingScenario from a YAML file (kind 'train'/'serve' or detected)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("scenario must be a YAML mapping", file=str(path))
    if kind is None:
        kind = "serve" if _SERVING_KEYS & set(data) else "train"
    if kind == "train":
        from simulator.training import load_training_scenario

        return load_training_scenario(data, file=str(path))
    if kind == "serve":
        from simulator.serving import load_serving_scenario

        return load_serving_scenario(data, file=str(path))
    raise ConfigError(f"unknown scenario kind '{kind}'", key="kind", allowed=["train", "serve"])
