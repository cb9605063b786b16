"""Public helpers that span layers: read a scenario file of either kind into typed specs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwmodels.catalog import read_yaml
from hwmodels.errors import ConfigError

#: top-level keys that only a serving scenario has
_SERVING_KEYS = frozenset({"serving", "workload", "slo"})


def profile_choice(profile: str | Path | Sequence[str | Path] | Any = None, *,
                   no_profile: bool = False) -> Any:
    """A simulator.profiles.ProfileChoice from profile file(s) (one per device) or
    no_profile=True (catalog defaults everywhere); a ProfileChoice passes through."""
    from simulator.profiles import ProfileChoice

    if isinstance(profile, ProfileChoice):
        return profile
    paths = [profile] if isinstance(profile, (str, Path)) else list(profile or [])
    return ProfileChoice.from_paths([str(p) for p in paths], no_profile=no_profile)


def load_scenario(path: str | Path, *, kind: str | None = None,
                  profile: str | Path | Sequence[str | Path] | Any = None,
                  no_profile: bool = False) -> Any:
    """A TrainingScenario or ServingScenario from a YAML file (kind 'train'/'serve' or
    detected); `profile` (file(s), one per device) / `no_profile` override cluster.profile
    as --profile / --no-profile do."""
    choice = profile_choice(profile, no_profile=no_profile)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("scenario must be a YAML mapping", file=str(path))
    if kind is None:
        kind = "serve" if _SERVING_KEYS & set(data) else "train"
    if kind == "train":
        from simulator.training import load_training_scenario

        return load_training_scenario(data, file=str(path), profiles=choice)
    if kind == "serve":
        from simulator.serving import load_serving_scenario

        return load_serving_scenario(data, file=str(path), profiles=choice)
    raise ConfigError(f"unknown scenario kind '{kind}'", key="kind", allowed=["train", "serve"])
