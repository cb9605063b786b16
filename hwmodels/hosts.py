"""The host side of a node (DRAM, CPU-Adam, NVMe): what ZeRO-Offload / ZeRO-Infinity use.

Catalog data in `catalog/hosts.yaml`, keyed by device name (the device's reference node);
`cluster.host` names another entry, a device without one gets `generic`. Figures are per node
of `gpus_per_node` devices; `per_device` gives one device's share, which is what a cluster
with any devices_per_node scales by.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from hwmodels.catalog import _entries, _entry_error, _Fields
from hwmodels.errors import ConfigError
from hwmodels.units import GiB

FALLBACK_HOST = "generic"
_HOST_KEYS = {"gpus_per_node", "dram_gib", "dram_bw_gbps", "cpu_adam_s_per_gparam", "nvme_tb",
              "nvme_read_gbps", "nvme_write_gbps", "source", "notes"}


@dataclass(frozen=True, slots=True, kw_only=True)
class HostSpec:
    """One node's host: DRAM, CPU optimizer throughput and NVMe, all node totals."""

    name: str
    gpus_per_node: int
    dram_bytes: float
    dram_bw_Bps: float
    cpu_adam_params_per_s: float  # DeepSpeed CPU-Adam, the node's CPUs together
    nvme_bytes: float
    nvme_read_Bps: float
    nvme_write_Bps: float
    source: str = ""

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise ConfigError(f"must be >= 1, got {self.gpus_per_node}",
                              key=f"{self.name}.gpus_per_node")
        for key in ("dram_bytes", "dram_bw_Bps", "cpu_adam_params_per_s"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"must be > 0, got {getattr(self, key)}",
                                  key=f"{self.name}.{key}")

    def per_device(self, value: float) -> float:
        """One device's share of a node total (what each rank of a node may use)."""
        return value / self.gpus_per_node


def list_hosts() -> list[str]:
    """Host entries of the catalog."""
    return sorted(_entries("hosts"))


@functools.lru_cache(maxsize=64)  # bounded: names come from the catalog or cluster.host
def load_host(name: str, *, key: str = "cluster.host") -> HostSpec:
    """HostSpec by name (a device name or a hosts.yaml entry); unknown names are a ConfigError
    on `key` listing the entries."""
    entries = _entries("hosts")
    lower = name.lower()
    if lower not in entries:
        raise ConfigError(f"unknown host '{name}'", key=key, allowed=sorted(entries))
    path, entry = entries[lower]
    f = _Fields(entry, path, lower, _HOST_KEYS)
    try:
        return HostSpec(
            name=lower,
            gpus_per_node=int(f.num("gpus_per_node")),
            dram_bytes=f.num("dram_gib") * GiB,
            dram_bw_Bps=f.num("dram_bw_gbps") * 1e9,
            cpu_adam_params_per_s=1e9 / f.num("cpu_adam_s_per_gparam"),
            nvme_bytes=f.num("nvme_tb", 0.0, positive=False) * 1e12,
            nvme_read_Bps=f.num("nvme_read_gbps", 0.0, positive=False) * 1e9,
            nvme_write_Bps=f.num("nvme_write_gbps", 0.0, positive=False) * 1e9,
            source=f.text("source", ""))
    except ConfigError as err:
        raise _entry_error(err, path, lower) from None


def host_for(device_name: str, host: str = "") -> HostSpec:
    """The host of a cluster: `host` if given (cluster.host), else the device's entry, else
    the generic one."""
    if host:
        return load_host(host)
    if device_name.lower() in _entries("hosts"):
        return load_host(device_name)
    return load_host(FALLBACK_HOST)
