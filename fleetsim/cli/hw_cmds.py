"""`fleetsim hw show` for a cluster: build it from flags or a scenario and draw its topology.

The drawing and the facts come from hwmodels.topology_render (pure); this module only parses
options, builds the ClusterSpec the way `simulate` would, and prints.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from fleetsim.cli.common import console, load_scenario_file
from hwmodels.errors import ConfigError
from hwmodels.specs import ClusterSpec

SHAPE_RE = re.compile(r"^\s*\d+(\s*[x,]\s*\d+)*\s*$")

# flag -> the build_cluster / scenario key it sets (errors from the cluster name the flag)
FLAG_KEYS = {"cluster.num_devices": "--num-devices",
             "cluster.devices_per_node": "--devices-per-node",
             "cluster.slice_shape": "--slice-shape", "cluster.intra_node": "--intra-node",
             "cluster.inter_node": "--inter-node", "cluster.nics_per_node": "--nics-per-node"}


def parse_shape(text: str) -> tuple[int, ...]:
    """'16x16' / '4x4x8' / '16,16' -> (16, 16); anything else is a ConfigError."""
    if not SHAPE_RE.match(text or ""):
        raise ConfigError(f"expected dims like 16x16 or 4x4x8, got '{text}'",
                          key="--slice-shape", allowed="positive integers joined by x")
    dims = tuple(int(p) for p in re.split(r"[x,]", text.replace(" ", "")))
    if any(d < 1 for d in dims):
        raise ConfigError(f"expected positive dims, got '{text}'", key="--slice-shape",
                          allowed="positive integers joined by x")
    return dims


def cluster_from_flags(device: str, *, num_devices: int | None = None,
                       devices_per_node: int | None = None, slice_shape: str | None = None,
                       intra_node: str | None = None, inter_node: str | None = None,
                       nics_per_node: int | None = None) -> ClusterSpec:
    """The cluster the flags describe (default: one node of the device's catalog size; with
    only --slice-shape, one slice of that shape; build_cluster makes a TPU job smaller than
    the pod its own slice). Errors name the flag, not the scenario key."""
    from hwmodels.catalog import load_device
    from hwmodels.cluster import build_cluster

    dev = load_device(device)
    shape = parse_shape(slice_shape) if slice_shape is not None else None
    for key, value in (("--num-devices", num_devices), ("--devices-per-node", devices_per_node)):
        if value is not None and value < 1:
            raise ConfigError(f"must be >= 1, got {value}", key=key, allowed="an integer >= 1")
    if nics_per_node is not None and nics_per_node < 0:
        raise ConfigError(f"must be >= 0, got {nics_per_node}", key="--nics-per-node",
                          allowed="an integer >= 0 (0: one NIC per device)")
    dpn = devices_per_node
    if dpn is None and shape is not None:
        dpn = math.prod(shape)
    n = num_devices if num_devices is not None else (dpn or dev.devices_per_node)
    kwargs: dict[str, Any] = {"devices_per_node": dpn, "intra_node": intra_node,
                              "inter_node": inter_node, "slice_shape": shape,
                              "nics_per_node": nics_per_node or 0}
    try:
        return build_cluster(dev, n, **kwargs)
    except ConfigError as err:
        flag = FLAG_KEYS.get(err.key or "")
        if flag is None:
            raise
        raise ConfigError(err.message, key=flag, allowed=err.allowed) from None


def cluster_from_scenario(path: str) -> tuple[str, ClusterSpec, list[tuple[str, tuple[int, ...]]]]:
    """(kind, the ClusterSpec a training or serving scenario simulates on, the process groups
    of a training scenario's plan (hwmodels.topology_render.plan_groups; [] for serving))."""
    from planners.sweep import scenario_kind

    raw = load_scenario_file(path)
    if scenario_kind(raw, file=str(path)) == "serving":
        from simulator.serving.scenario import scenario_cluster

        return "serving", scenario_cluster(raw, file=str(path)), []
    from hwmodels.topology_render import plan_groups
    from simulator.training import load_training_scenario

    sc = load_training_scenario(raw, file=str(path))
    groups = [] if sc.pools else plan_groups(sc.parallel)
    return "training", sc.cluster, groups


def show_cluster(device: str | None, *, scenario: str | None, num_devices: int | None,
                 devices_per_node: int | None, slice_shape: str | None,
                 intra_node: str | None, inter_node: str | None,
                 nics_per_node: int | None) -> tuple[dict[str, Any] | None, ClusterSpec]:
    """(scenario info or None, cluster) for `hw show` with cluster options or --scenario."""
    flags = {"--num-devices": num_devices, "--devices-per-node": devices_per_node,
             "--slice-shape": slice_shape, "--intra-node": intra_node,
             "--inter-node": inter_node, "--nics-per-node": nics_per_node}
    if scenario is not None:
        given = [k for k, v in flags.items() if v is not None]
        if device is not None or given:
            extra = device if device is not None else given[0]
            raise ConfigError(f"give a scenario or a device with cluster options, not both "
                              f"(got '{extra}')", key="--scenario",
                              allowed="--scenario FILE alone")
        if not Path(scenario).exists():
            raise ConfigError("no such file", file=scenario, key="--scenario",
                              allowed="a training or serving scenario YAML file")
        kind, cluster, groups = cluster_from_scenario(scenario)
        return {"file": scenario, "kind": kind, "groups": groups}, cluster
    if device is None:
        raise ConfigError("missing device name", key="NAME",
                          allowed="a catalog device or link (fleetsim hw list), or "
                                  "--scenario FILE")
    return None, cluster_from_flags(device, num_devices=num_devices,
                                    devices_per_node=devices_per_node,
                                    slice_shape=slice_shape, intra_node=intra_node,
                                    inter_node=inter_node, nics_per_node=nics_per_node)


def print_lines(lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
