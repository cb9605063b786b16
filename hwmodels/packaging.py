"""Multi-die packages: one catalog entry per package, and the other view derived from it.

An MI250X package holds two GCDs that ROCm exposes as two GPUs; a B200 holds two dies that CUDA
exposes as one GPU. A devices.yaml entry says so once with `package: {dies, die_link_gbps,
exposed_as, package_name}`; the entry's numbers describe what the software exposes (a die for
exposed_as: die, the whole package otherwise). The package view of a die entry (`mi250x-package`)
is derived here (peaks, memory, power, price x dies; the node's die link graph collapsed to one
vertex per package), so two hand-written entries for one machine cannot disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.specs import DeviceSpec
from hwmodels.topology import ScaleUpFabric, ScaleUpKind

PACKAGE_KEYS = {"dies", "die_link_gbps", "exposed_as", "package_name", "source", "notes"}


class ExposedAs(StrEnum):
    """What the software stack shows as one device."""

    DIE = "die"  # MI250X: each GCD is a HIP device
    PACKAGE = "package"  # B200 / GB200: two dies behind NV-HBI are one CUDA device


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PackageSpec:
    """A package of `dies` identical dies joined by a die-to-die link (per direction)."""

    dies: int = 1
    die_link_Bps: float = 0.0
    exposed_as: ExposedAs = ExposedAs.PACKAGE
    package_name: str = ""  # exposed_as die: the catalog name of the derived package view

    def __post_init__(self) -> None:
        if isinstance(self.dies, bool) or not isinstance(self.dies, int) or self.dies < 1:
            raise ConfigError(f"must be an integer >= 1, got {self.dies!r}",
                              key="package.dies")
        if self.dies > 1 and not self.die_link_Bps > 0:
            raise ConfigError(f"a {self.dies}-die package needs die_link_gbps > 0",
                              key="package.die_link_gbps")
        if self.exposed_as is ExposedAs.PACKAGE and self.package_name:
            raise ConfigError("package_name names the derived package view of a die entry; "
                              "this entry already is the package", key="package.package_name",
                              allowed="omit it, or exposed_as: die")


SINGLE_DIE = PackageSpec()


def package_from_entry(name: str, raw: Any, file: str) -> PackageSpec:
    """PackageSpec from a device entry's `package:` mapping (None: a single die)."""
    key = f"{name}.package"
    if raw is None:
        return SINGLE_DIE
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping (dies, die_link_gbps, exposed_as, ...)",
                          file=file, key=key, allowed=sorted(PACKAGE_KEYS))
    unknown = sorted(set(raw) - PACKAGE_KEYS)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}'", file=file, key=f"{key}.{unknown[0]}",
                          allowed=sorted(PACKAGE_KEYS))
    link = raw.get("die_link_gbps", 0.0)
    if isinstance(link, bool) or not isinstance(link, (int, float)):
        raise ConfigError(f"expected a number, got {link!r}", file=file,
                          key=f"{key}.die_link_gbps")
    try:
        exposed = ExposedAs(str(raw.get("exposed_as", "package")))
    except ValueError:
        raise ConfigError(f"unknown value '{raw.get('exposed_as')}'", file=file,
                          key=f"{key}.exposed_as", allowed=[e.value for e in ExposedAs]) from None
    try:
        spec = PackageSpec(dies=raw.get("dies", 1), die_link_Bps=float(link) * 1e9,
                           exposed_as=exposed, package_name=str(raw.get("package_name", "")))
    except ConfigError as err:
        raise ConfigError(err.message, file=file, key=f"{name}.{err.key}",
                          allowed=err.allowed) from None
    if spec.exposed_as is ExposedAs.DIE and spec.dies > 1 and not spec.package_name:
        raise ConfigError("a die entry of a multi-die package names its package view",
                          file=file, key=f"{key}.package_name",
                          allowed="a new catalog name, e.g. <entry>-package")
    return spec


def collapse_graph(fabric: ScaleUpFabric, dies: int) -> tuple[tuple[int, int, float], ...]:
    """A node's die link graph with each package (dies consecutive local indices) as one
    vertex: inter-package bandwidth is the sum of the die links between the two packages."""
    pairs: dict[tuple[int, int], float] = {}
    for a, b, bw in fabric.edges:
        pa, pb = a // dies, b // dies
        if pa != pb:
            key = (min(pa, pb), max(pa, pb))
            pairs[key] = pairs.get(key, 0.0) + bw
    return tuple((a, b, bw) for (a, b), bw in sorted(pairs.items()))


def package_view(die: DeviceSpec, pkg: PackageSpec, name: str) -> DeviceSpec:
    """The whole-package DeviceSpec of a die entry: every per-device quantity x dies, the same
    efficiencies; a link-graph fabric collapses to packages (their per-package sum of
    inter-package links is the package's scale-up figure)."""
    if pkg.exposed_as is not ExposedAs.DIE or pkg.dies < 2:
        raise ConfigError(f"{die.name} is not a die of a multi-die package",
                          key=f"{die.name}.package")
    n = pkg.dies
    if die.devices_per_node % n:
        raise ConfigError(f"devices_per_node {die.devices_per_node} is not a multiple of the "
                          f"package's {n} dies", key=f"{die.name}.devices_per_node")
    fabric, scale_up_Bps = die.scale_up_fabric, die.scale_up_bw_Bps * n
    if fabric.kind is ScaleUpKind.GRAPH:
        edges = collapse_graph(fabric, n)
        packages = fabric.graph_size // n
        if not edges or packages < 2:
            fabric = ScaleUpFabric()
        else:
            fabric = dataclasses.replace(fabric, edges=edges, graph_size=packages,
                                         source=f"{fabric.source} (collapsed to packages)")
            scale_up_Bps = min(sum(bw for a, b, bw in edges if p in (a, b))
                               for p in range(packages))
    return dataclasses.replace(
        die, name=name,
        peak_flops=FrozenMap({dt: v * n for dt, v in die.peak_flops.items()}),
        memory_bytes=die.memory_bytes * n, memory_bw_Bps=die.memory_bw_Bps * n,
        scale_up_bw_Bps=scale_up_Bps, tdp_w=die.tdp_w * n, idle_w=die.idle_w * n,
        price_usd_per_hour=die.price_usd_per_hour * n,
        devices_per_node=die.devices_per_node // n, scale_up_fabric=fabric,
        nics_per_device=die.nics_per_device * n,
        source=f"derived from {die.name} ({n} dies per package, hwmodels.packaging); "
               f"{die.source}")
