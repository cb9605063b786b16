"""Which efficiency profile each device of a scenario or plan uses: the scenario key
(`cluster.profile`, `replica_groups[].profile`), the user's choice on the command line
(`--profile P.json` per device, `--no-profile`), the bundled profile, else catalog defaults.

A scenario value is a path (relative to the scenario file), the name of a bundled profile
(hwmodels.profile.bundled_profiles()) or `defaults` (CATALOG_DEFAULTS). The CLI choice
(ProfileChoice) overrides the scenario key; it is picklable, so planners ship it (and the
resolved DeviceProfiles inside plans) to worker processes and Ray.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hwmodels.catalog import load_device
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.ops import default_profile, resolve_profile
from hwmodels.profile import (
    CATALOG_DEFAULTS,
    DeviceProfile,
    bundled_profiles,
    describe_profiles,
    load_profile,
)
from hwmodels.specs import DeviceSpec

__all__ = ["ProfileChoice", "describe_used", "efficiency_lines", "resolve_scenario_profile"]


def _device(device: DeviceSpec | str) -> DeviceSpec:
    return device if isinstance(device, DeviceSpec) else load_device(device)


def resolve_scenario_profile(value: Any, device: DeviceSpec, *, file: str | None = None,
                             key: str = "cluster.profile") -> DeviceProfile:
    """A scenario's profile key for `device` -> the complete DeviceProfile: None -> the
    bundled profile for the device, else catalog defaults; 'defaults' -> catalog defaults; a
    bundled profile's name; else a path, relative to the scenario file. A profile of another
    device is a ConfigError naming the file, the key and the device."""
    if value is None:
        return resolve_profile(device, None)
    if isinstance(value, DeviceProfile):
        return _checked(value, device, file=file, key=key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"expected a profile path, a bundled profile name or "
                          f"'{CATALOG_DEFAULTS}', got {value!r}", file=file, key=key,
                          allowed=[CATALOG_DEFAULTS, *bundled_profiles(), "<path>.json"])
    text = value.strip()
    if text == CATALOG_DEFAULTS:
        return default_profile(device)
    bundled = bundled_profiles()
    if text in bundled:
        path = bundled[text]
    else:
        path = Path(text).expanduser()
        if file and not path.is_absolute():
            path = Path(file).parent / path
    try:
        prof = load_profile(path)
    except ConfigError as err:
        raise ConfigError(f"profile {path}: {err.message}", file=file, key=key,
                          allowed=err.allowed) from None
    return _checked(prof, device, file=file, key=key)


def _checked(prof: DeviceProfile, device: DeviceSpec, *, file: str | None,
             key: str) -> DeviceProfile:
    if prof.device.lower() != device.name.lower():
        raise ConfigError(f"profile {prof.source} is for device '{prof.device}', but the "
                          f"device here is '{device.name}'", file=file, key=key,
                          allowed=[f"a profile of {device.name}"])
    return resolve_profile(device, prof)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileChoice:
    """The user's choice over every scenario key: profiles by device (`--profile`, one per
    device) or catalog defaults everywhere (`--no-profile`). Empty: the scenario decides."""

    by_device: FrozenMap[str, DeviceProfile] = field(default_factory=FrozenMap)
    no_profile: bool = False
    # refuse a --profile for a device the scenario does not use (off for one sweep point of
    # many, where another point may use it)
    check_unused: bool = True

    def __post_init__(self) -> None:
        if self.no_profile and self.by_device:
            raise ConfigError("--profile and --no-profile exclude each other",
                              key="--no-profile", allowed=["--profile P.json", "--no-profile"])
        if not isinstance(self.by_device, FrozenMap):
            object.__setattr__(self, "by_device", FrozenMap(self.by_device))

    @classmethod
    def from_paths(cls, paths: Sequence[str] | None, *, no_profile: bool = False
                   ) -> ProfileChoice:
        """--profile files or bundled profile names (matched to devices by the profile's
        `device`) and --no-profile."""
        paths = [p for p in paths or [] if p is not None]
        if no_profile and paths:
            raise ConfigError("--profile and --no-profile exclude each other",
                              key="--no-profile", allowed=["--profile P.json", "--no-profile"])
        found: dict[str, DeviceProfile] = {}
        bundled = bundled_profiles()
        for path in paths:
            if path in bundled and not Path(path).exists():  # a bundled profile's name
                path = str(bundled[path])
            try:
                prof = load_profile(path)
            except ConfigError as err:
                raise err.with_context(key="--profile") from None
            try:
                device = load_device(prof.device)
            except ConfigError as err:
                raise ConfigError(f"profile device '{prof.device}' is not in the catalog",
                                  file=str(path), key="device", allowed=err.allowed) from None
            if device.name in found:
                raise ConfigError(f"two profiles for device '{device.name}' "
                                  f"({found[device.name].source}, {path})", key="--profile",
                                  allowed="one --profile per device")
            found[device.name] = resolve_profile(device, prof)
        return cls(by_device=FrozenMap(found), no_profile=no_profile)

    def lenient(self) -> ProfileChoice:
        """This choice without the unused-device check (one point of a sweep)."""
        return replace(self, check_unused=False)

    @property
    def given(self) -> bool:
        """Whether the command line chose anything."""
        return self.no_profile or bool(self.by_device)

    def for_device(self, device: DeviceSpec | str, scenario_value: Any = None, *,
                   file: str | None = None, key: str = "cluster.profile") -> DeviceProfile:
        """The complete profile for `device`: the command line's choice, else the scenario's
        key (resolve_scenario_profile)."""
        dev = _device(device)
        if self.no_profile:
            return default_profile(dev)
        prof = self.by_device.get(dev.name)
        if prof is not None:
            return prof
        return resolve_scenario_profile(scenario_value, dev, file=file, key=key)

    def check_devices(self, devices: Iterable[DeviceSpec | str], *,
                      where: str | None = None) -> None:
        """Refuse a --profile for a device the scenario/plan does not use."""
        if not self.check_unused:
            return
        names = sorted({_device(d).name for d in devices})
        extra = sorted(set(self.by_device) - set(names))
        if extra:
            raise ConfigError(f"--profile {self.by_device[extra[0]].source} is for device "
                              f"'{extra[0]}', which {where or 'the scenario'} does not use",
                              key="--profile", allowed=names)


NO_CHOICE = ProfileChoice()


def describe_used(profiles: Mapping[str, DeviceProfile] | Iterable[DeviceProfile]
                  ) -> dict[str, dict[str, Any]]:
    """{device: describe()} of the profiles a result used (what every JSON result reports)."""
    items = list(profiles.values() if isinstance(profiles, Mapping) else profiles)
    return describe_profiles(sorted(items, key=lambda p: p.device))


def efficiency_lines(described: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One 'efficiency: <name> (<source>)' line per device, for human-readable output."""
    lines = []
    for device, d in described.items():
        file = d.get("file")
        where = f"{d.get('source')}" + (f"; {file}" if file else "")
        lines.append(f"efficiency: {d.get('name')} ({where}) for {device}")
    return lines
