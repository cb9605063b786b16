"""Storage tiers a checkpoint can be written to: bandwidth, durability and price per tier.

`plan checkpoint --tiers` turns each tier into the `run.checkpoint.storage_write_bandwidth` /
`storage_read_bandwidth` of the job (aggregate, or per node x nodes, or per provisioned TiB)
and prices the `keep` checkpoints it holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.registry import Registry

TIB = 2.0**40
HOURS_PER_MONTH = 730.0  # the 8,760 h year / 12, the convention of cloud price sheets


class StorageTier(StrEnum):
    """`--tiers` names (`scenario`: the job's own run.checkpoint bandwidths, unpriced)."""

    SCENARIO = "scenario"
    PARALLEL_FS = "parallel-fs"
    LUSTRE = "lustre"
    OBJECT_STORE = "object-store"
    NVME_LOCAL = "nvme-local"


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageTierSpec:
    """One tier: bandwidth is aggregate_*, or *_per_node x nodes, or *_per_tib x provisioned."""

    name: str
    write_bps_aggregate: float = math.inf
    read_bps_aggregate: float = math.inf
    write_bps_per_node: float = math.inf
    read_bps_per_node: float = math.inf
    write_bps_per_tib: float = math.inf  # throughput scales with provisioned capacity
    read_bps_per_tib: float = math.inf
    usd_per_gb_month: float = 0.0
    durable: bool = True  # survives the loss of the node that wrote it
    source: str = ""

    def __post_init__(self) -> None:
        for f in ("write_bps_aggregate", "read_bps_aggregate", "write_bps_per_node",
                  "read_bps_per_node", "write_bps_per_tib", "read_bps_per_tib"):
            if not getattr(self, f) > 0:
                raise ConfigError(f"must be > 0, got {getattr(self, f)!r}", key=f"tier.{f}")
        if self.usd_per_gb_month < 0:
            raise ConfigError(f"must be >= 0, got {self.usd_per_gb_month}",
                              key="tier.usd_per_gb_month")

    def bandwidths_Bps(self, *, nodes: int, stored_bytes: float) -> tuple[float, float]:
        """(write, read) bandwidth in B/s for `nodes` writers holding `stored_bytes`."""
        tib = stored_bytes / TIB
        write = min(self.write_bps_aggregate, self.write_bps_per_node * nodes,
                    self.write_bps_per_tib * tib)
        read = min(self.read_bps_aggregate, self.read_bps_per_node * nodes,
                   self.read_bps_per_tib * tib)
        return write, read

    def usd_per_hour(self, stored_bytes: float) -> float:
        """What holding `stored_bytes` costs per hour."""
        return stored_bytes / 1e9 * self.usd_per_gb_month / HOURS_PER_MONTH


STORAGE_TIERS: Registry[StorageTier, StorageTierSpec] = Registry(
    "storage tier", StorageTier, key="--tiers")

STORAGE_TIERS.add(StorageTier.PARALLEL_FS, StorageTierSpec(
    name="parallel-fs",
    # Meta's Tectonic for Llama 3: 2 TB/s sustained write, 7 TB/s peak read (arXiv 2407.21783,
    # Sec. 3.3.1) — the same figures as run.checkpoint's defaults.
    write_bps_aggregate=2e12, read_bps_aggregate=7e12,
    usd_per_gb_month=0.0,  # assumption: an on-premises cluster file system, already paid for
    source="Tectonic, Llama 3 (arXiv 2407.21783 Sec. 3.3.1); price: assumption (owned, 0)"))

STORAGE_TIERS.add(StorageTier.LUSTRE, StorageTierSpec(
    name="lustre",
    # Amazon FSx for Lustre, persistent SSD: 200 MB/s of throughput per TiB provisioned (the
    # highest of 50/100/200; docs.aws.amazon.com/fsx/latest/LustreGuide/using-fsx-lustre.html,
    # read 2026-12); provisioned here = exactly the checkpoints kept (assumption: no extra
    # capacity bought for bandwidth).
    write_bps_per_tib=200e6, read_bps_per_tib=200e6,
    # assumption: $0.29/GB-month, the us-east-1 PERSISTENT-200 SSD list price as recalled
    # from aws.amazon.com/fsx/lustre/pricing (2024); not verified against the live page.
    usd_per_gb_month=0.29,
    source="FSx for Lustre persistent SSD 200 MB/s/TiB (AWS LustreGuide); price: assumption"))

STORAGE_TIERS.add(StorageTier.OBJECT_STORE, StorageTierSpec(
    name="object-store",
    # Amazon S3 scales with prefixes (>= 3,500 PUT / 5,500 GET per s per prefix) and serves up
    # to 100 Gb/s to one EC2 instance (docs.aws.amazon.com/AmazonS3/latest/userguide/
    # optimizing-performance.html); assumption: each node reaches that 12.5 GB/s both ways.
    write_bps_per_node=12.5e9, read_bps_per_node=12.5e9,
    usd_per_gb_month=0.023,  # S3 Standard, first 50 TB/month (aws.amazon.com/s3/pricing, 2024)
    source="Amazon S3 performance guidelines (100 Gb/s per instance), S3 Standard price"))

STORAGE_TIERS.add(StorageTier.NVME_LOCAL, StorageTierSpec(
    name="nvme-local",
    # DGX H100: 8 x 3.84 TB U.2 NVMe data-cache drives (NVIDIA DGX H100 user guide); assumption:
    # ~3.5 GB/s sequential write and ~6.5 GB/s read per PCIe Gen4 enterprise drive.
    write_bps_per_node=8 * 3.5e9, read_bps_per_node=8 * 6.5e9,
    usd_per_gb_month=0.0,  # in the node already
    durable=False,  # a failed node takes its shard with it
    source="DGX H100 user guide (8 x 3.84 TB NVMe); per-drive bandwidth: assumption"))
