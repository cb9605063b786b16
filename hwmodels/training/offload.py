"""ZeRO-Offload / ZeRO-Infinity traffic: what crosses PCIe and NVMe, and the host optimizer.

With `offload_params` (ZeRO-Infinity, Rajbhandari et al. SC'21, Sec. 5-6) each rank's 1/dp
shard of a unit's 16-bit weights is copied host -> device before the unit's all-gather, in
forward and again in backward (the recompute's copy is kept for the backward: assumption),
and its reduced 16-bit gradient shard goes device -> host after the reduce-scatter, every
microbatch (DeepSpeed accumulates offloaded grads on the host). From NVMe the copy runs at the
slower of the rank's PCIe link and its share of the node's NVMe read bandwidth (the drives
are shared by the node's GPUs). These copies ride the unit's gather / reduce on the FSDP
channel (hwmodels.training.fsdp), so `fsdp_prefetch` overlaps them with compute as DeepSpeed's
prefetch does, and a chunk can never finish before its channel: iteration >= traffic time.
The optimizer step on the host (CPU-Adam) reads/writes its state from NVMe with
`offload_optimizer: nvme` (DeepSpeed pipelines swap and compute: max of the two, assumption).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwmodels.catalog import load_link
from hwmodels.hosts import HostSpec, host_for
from hwmodels.parallel import OffloadTarget, ParallelConfig
from hwmodels.specs import ClusterSpec

# 16-bit weights fetched and 16-bit grads offloaded (ZeRO-Offload Sec. 4.1: fp16 gradients to
# the CPU, fp16 parameters back; ZeRO-Infinity keeps the same 16-bit copies on host / NVMe).
PARAM_BYTES = 2.0
GRAD_BYTES = 2.0
# Optimizer state one Adam parameter swaps with NVMe per step: fp32 master weight, m and v
# (ZeRO-Offload Sec. 3: 12 bytes of fp32 optimizer state per parameter), read and written.
NVME_STATE_BYTES = 12.0
# Host DRAM per offloaded parameter: optimizer on the host keeps the 12 B of fp32 state plus
# the fp32 gradient it accumulates (ZeRO-Offload Sec. 4: 16 B/param on the CPU side); with the
# state on NVMe the fp32 grad (4 B) stays in DRAM; 16-bit weights on the host: 2 B/param.
HOST_STATE_BYTES = 12.0
HOST_GRAD_BYTES = 4.0
# DRAM traffic of one CPU-Adam update: as the GPU step's ADAM_BYTES_PER_PARAM accounting in
# hwmodels.training.gradsync (read grad, master, m, v; write master, m, v, 16-bit copy; norm).
CPU_ADAM_DRAM_BYTES = 34.0


def active(parallel: ParallelConfig) -> bool:
    """Does the plan offload anything?"""
    return (parallel.offload_optimizer is not OffloadTarget.NONE
            or parallel.offload_params is not OffloadTarget.NONE)


@dataclass(frozen=True, slots=True, kw_only=True)
class RankRates:
    """What one rank of a node gets of its host: PCIe, NVMe, CPU-Adam (B/s, params/s)."""

    pcie_Bps: float
    nvme_read_Bps: float
    nvme_write_Bps: float
    cpu_adam_params_per_s: float
    dram_Bps: float
    ranks_per_node: int
    host: HostSpec

    @property
    def param_fetch_Bps(self) -> float:
        """Host -> device weight copy from host DRAM (PCIe)."""
        return self.pcie_Bps

    def fetch_Bps(self, target: OffloadTarget) -> float:
        """Weight copy rate from `target`: NVMe goes through host buffers, the slower wins."""
        if target is OffloadTarget.NVME:
            return min(self.pcie_Bps, self.nvme_read_Bps)
        return self.pcie_Bps


def rank_rates(cluster: ClusterSpec) -> RankRates:
    """One rank's share: its own PCIe link (host_link x efficiency, links.yaml); the node's
    NVMe, CPU and DRAM split over the ranks a node holds (host totals scaled from the host's
    gpus_per_node to the cluster's devices_per_node)."""
    link = cluster.host_link or load_link(cluster.device.host_link)
    host = host_for(cluster.device.name, cluster.host)
    ranks = max(1, min(cluster.devices_per_node, cluster.num_devices))
    scale = cluster.devices_per_node / host.gpus_per_node
    return RankRates(pcie_Bps=link.bandwidth_Bps * link.efficiency,
                     nvme_read_Bps=host.nvme_read_Bps * scale / ranks,
                     nvme_write_Bps=host.nvme_write_Bps * scale / ranks,
                     cpu_adam_params_per_s=host.cpu_adam_params_per_s * scale / ranks,
                     dram_Bps=host.dram_bw_Bps * scale / ranks, ranks_per_node=ranks,
                     host=host)


def unit_copy_s(cluster: ClusterSpec, parallel: ParallelConfig, shard_params: float
                ) -> tuple[float, float]:
    """(weight fetch seconds, grad offload seconds) of one unit whose per-rank shard holds
    `shard_params` parameters; (0, 0) without offload_params."""
    target = OffloadTarget(parallel.offload_params)
    if target is OffloadTarget.NONE or shard_params <= 0:
        return 0.0, 0.0
    r = rank_rates(cluster)
    return (shard_params * PARAM_BYTES / r.fetch_Bps(target),
            shard_params * GRAD_BYTES / r.pcie_Bps)


@dataclass(frozen=True, slots=True, kw_only=True)
class OffloadStep:
    """The optimizer step of an offloaded rank: what runs after the last backward."""

    host_transfer_s: float  # PCIe copies on the critical path (exposed)
    optimizer_s: float  # CPU-Adam, pipelined with the NVMe state swap
    cpu_optimizer_s: float
    pcie_bytes: float
    nvme_bytes: float
    nvme_s: float


def offload_step(cluster: ClusterSpec, parallel: ParallelConfig, shard_params: float
                 ) -> OffloadStep:
    """The host step on a rank's optimizer shard. Optimizer on the host without parameter
    offload: grads down + 16-bit weights up over PCIe (ZeRO-Offload). With parameter offload
    the grads already went down per microbatch and the weights stay on the host (from NVMe:
    written back, 2 B/param). NVMe optimizer: 12 B/param read and written per step."""
    r = rank_rates(cluster)
    opt = OffloadTarget(parallel.offload_optimizer)
    params = OffloadTarget(parallel.offload_params)
    cpu_s = max(shard_params / r.cpu_adam_params_per_s,
                shard_params * CPU_ADAM_DRAM_BYTES / r.dram_Bps)
    pcie_bytes = 0.0
    if params is OffloadTarget.NONE:
        pcie_bytes = shard_params * (GRAD_BYTES + PARAM_BYTES)
    nvme_read = nvme_write = 0.0
    if opt is OffloadTarget.NVME:
        nvme_read += shard_params * NVME_STATE_BYTES
        nvme_write += shard_params * NVME_STATE_BYTES
    if params is OffloadTarget.NVME:
        nvme_write += shard_params * PARAM_BYTES
    nvme_s = _nvme_s(r, nvme_read, nvme_write)
    return OffloadStep(host_transfer_s=pcie_bytes / r.pcie_Bps, optimizer_s=max(cpu_s, nvme_s),
                       cpu_optimizer_s=cpu_s, pcie_bytes=pcie_bytes,
                       nvme_bytes=nvme_read + nvme_write, nvme_s=nvme_s)


def _nvme_s(r: RankRates, read_bytes: float, write_bytes: float) -> float:
    if not read_bytes and not write_bytes:
        return 0.0
    if r.nvme_read_Bps <= 0 or r.nvme_write_Bps <= 0:
        from hwmodels.errors import ConfigError

        raise ConfigError(f"host '{r.host.name}' has no NVMe bandwidth in hosts.yaml",
                          key="parallelism.offload_optimizer", allowed=["none", "cpu"])
    return read_bytes / r.nvme_read_Bps + write_bytes / r.nvme_write_Bps


@dataclass(frozen=True, slots=True, kw_only=True)
class OffloadTraffic:
    """One iteration's offload traffic on the critical stage's rank (simulate train --json
    `breakdown.offload`): bytes and seconds at the rank's bandwidth, and what was exposed."""

    pcie_bytes: float
    pcie_s: float
    nvme_bytes: float
    nvme_s: float
    cpu_optimizer_s: float
    exposed_s: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("pcie_bytes", "pcie_s", "nvme_bytes", "nvme_s",
                                               "cpu_optimizer_s", "exposed_s")}


def iteration_traffic(cluster: ClusterSpec, parallel: ParallelConfig, *,
                      fetch_params: float, grad_params: float, microbatches: int,
                      step: OffloadStep, exposed_s: float) -> OffloadTraffic:
    """Totals of an iteration: per microbatch `fetch_params` weights copied in (forward +
    backward) and `grad_params` grads out on this rank, plus the optimizer step's copies."""
    r = rank_rates(cluster)
    target = OffloadTarget(parallel.offload_params)
    fetch_bytes = microbatches * fetch_params * PARAM_BYTES
    grad_bytes = microbatches * grad_params * GRAD_BYTES
    pcie_bytes = fetch_bytes + grad_bytes + step.pcie_bytes
    nvme_fetch = fetch_bytes if target is OffloadTarget.NVME else 0.0
    nvme_s = step.nvme_s + (nvme_fetch / r.nvme_read_Bps if nvme_fetch else 0.0)
    return OffloadTraffic(pcie_bytes=pcie_bytes, pcie_s=pcie_bytes / r.pcie_Bps,
                          nvme_bytes=step.nvme_bytes + nvme_fetch, nvme_s=nvme_s,
                          cpu_optimizer_s=step.cpu_optimizer_s, exposed_s=exposed_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostMemory:
    """Per-node host DRAM and NVMe an offloaded plan needs, and what the host has."""

    dram_bytes: float
    nvme_bytes: float
    dram_capacity_bytes: float
    nvme_capacity_bytes: float

    @property
    def fits(self) -> bool:
        return (self.dram_bytes <= self.dram_capacity_bytes
                and self.nvme_bytes <= self.nvme_capacity_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {"dram_bytes": self.dram_bytes, "nvme_bytes": self.nvme_bytes,
                "dram_capacity_bytes": self.dram_capacity_bytes,
                "nvme_capacity_bytes": self.nvme_capacity_bytes, "fits": self.fits}

    def reason(self) -> str:
        """'' or why the host does not hold the plan."""
        gib = 2.0 ** 30
        parts = []
        if self.dram_bytes > self.dram_capacity_bytes:
            parts.append(f"host DRAM needs {self.dram_bytes / gib:.0f} GiB of "
                         f"{self.dram_capacity_bytes / gib:.0f} GiB per node")
        if self.nvme_bytes > self.nvme_capacity_bytes:
            parts.append(f"NVMe needs {self.nvme_bytes / 1e12:.2f} TB of "
                         f"{self.nvme_capacity_bytes / 1e12:.2f} TB per node")
        return "; ".join(parts)


def host_memory(cluster: ClusterSpec, parallel: ParallelConfig, optimizer_shard: float,
                weight_shard: float) -> HostMemory:
    """Host bytes of one node: each of its ranks keeps its optimizer shard's fp32 state (DRAM
    or NVMe) and fp32 grads (DRAM), and with parameter offload its 16-bit weight shard."""
    r = rank_rates(cluster)
    opt = OffloadTarget(parallel.offload_optimizer)
    params = OffloadTarget(parallel.offload_params)
    dram = nvme = 0.0
    if opt is not OffloadTarget.NONE:
        dram += optimizer_shard * HOST_GRAD_BYTES
        if opt is OffloadTarget.NVME:
            nvme += optimizer_shard * HOST_STATE_BYTES
        else:
            dram += optimizer_shard * HOST_STATE_BYTES
    if params is OffloadTarget.NVME:
        nvme += weight_shard * PARAM_BYTES
    elif params is OffloadTarget.CPU:
        dram += weight_shard * PARAM_BYTES
    scale = cluster.devices_per_node / r.host.gpus_per_node
    return HostMemory(dram_bytes=dram * r.ranks_per_node,
                      nvme_bytes=nvme * r.ranks_per_node,
                      dram_capacity_bytes=r.host.dram_bytes * scale,
                      nvme_capacity_bytes=r.host.nvme_bytes * scale)
