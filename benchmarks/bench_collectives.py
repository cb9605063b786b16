"""Speed of the collective cost model and the topology graph.

Run: python benchmarks/bench_collectives.py
Prints calls/s of collective_time (cold: every call a new size; cached: repeated queries, by
rank range and by precomputed GroupInfo) and the time to build a 16,384-GPU cluster graph.
"""

from __future__ import annotations

import time

from hwmodels.catalog import list_devices, load_device
from hwmodels.cluster import _cluster_graph, build_cluster, cluster_graph, group_info
from hwmodels.collectives import clear_caches, collective_time, collective_time_for_group
from hwmodels.dtypes import DType
from hwmodels.frozen import FrozenMap
from hwmodels.specs import DeviceSpec


def _h100() -> DeviceSpec:
    """The catalog's H100 when present, else an equivalent spec (only the links matter here)."""
    if "h100-sxm" in list_devices():
        return load_device("h100-sxm")
    return DeviceSpec(name="h100-sxm", vendor="nvidia", peak_flops=FrozenMap({DType.BF16: 989e12}),
                      memory_bytes=80 * 2**30, memory_bw_Bps=3.35e12, scale_up_link="nvlink4",
                      scale_up_bw_Bps=450e9, tdp_w=700, idle_w=100, price_usd_per_hour=2.5)


def _rate(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    """Print the measurements, one per line."""
    device = _h100()
    cluster = build_cluster(device, 16384)
    dp = range(0, 16384, 8)  # a 2048-rank data-parallel group, one GPU per node
    tp = range(8)

    clear_caches()
    start = time.perf_counter()
    g_dp = group_info(cluster, dp)
    print(f"group_info, 2048 ranks over 2048 nodes, cold: {(time.perf_counter() - start)*1e3:.2f} ms")
    start = time.perf_counter()
    group_info(cluster, list(range(16384)))
    print(f"group_info, 16384 ranks as a list, cold:      {(time.perf_counter() - start)*1e3:.2f} ms")

    n = 50_000
    cold = _rate(lambda i: collective_time_for_group(cluster, g_dp, "all_reduce", 1e6 + i), n)
    print(f"collective_time cold (new size each call):     {cold:,.0f} calls/s")
    cached_range = _rate(lambda i: collective_time(cluster, tp, "all_reduce", 1 << 24), 4 * n)
    print(f"collective_time cached (ranks as range):       {cached_range:,.0f} calls/s")
    cached_list = _rate(lambda i: collective_time(cluster, (0, 8, 16, 24), "all_gather", 1 << 24),
                        4 * n)
    print(f"collective_time cached (ranks as 4-tuple):     {cached_list:,.0f} calls/s")
    cached_group = _rate(lambda i: collective_time_for_group(cluster, g_dp, "all_reduce", 1 << 24),
                         4 * n)
    print(f"collective_time_for_group cached:              {cached_group:,.0f} calls/s")

    for topology in ("rail-optimized", "fat-tree"):
        spec = build_cluster(device, 16384, topology=topology, oversubscription=2.0)
        _cluster_graph.cache_clear()
        start = time.perf_counter()
        graph = cluster_graph(spec)
        elapsed = time.perf_counter() - start
        print(f"cluster_graph 16,384 GPUs ({topology}): {elapsed:.3f} s, "
              f"{graph.number_of_nodes():,} nodes, {graph.number_of_edges():,} edges")


if __name__ == "__main__":
    main()
