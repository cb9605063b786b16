"""Collective benchmarks with torch.distributed across the visible devices of one node.

One process per device (NCCL on CUDA/ROCm, HCCL on Ascend, XCCL on Intel XPU; Gloo for the CPU
test mode), all-reduce / all-gather / reduce-scatter / all-to-all over message sizes. Sizes and
bus bandwidth follow nccl-tests (doc/PERFORMANCE.md): size is the all-reduce buffer, the gathered
all-gather output, the full reduce-scatter input, the all-to-all buffer; busbw = algbw x factor
with factor 2(n-1)/n for all-reduce and (n-1)/n for the others. torch + standard library only.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from calibration.devices import device_count
from calibration.timing import time_fn

BACKENDS = {"cuda": "nccl", "npu": "hccl", "xpu": "xccl", "cpu": "gloo"}
OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
# Collectives are timed with a fixed number of runs (ranks cannot each pick their own count
# without deadlocking); nccl-tests defaults to 5 warm-up and 20 timed iterations.
COLLECTIVE_WARMUP = 5
COLLECTIVE_REPEATS = 20
COLLECTIVE_TIMEOUT_S = 300  # a rank that fails alone must not hang the others forever


def bus_factor(op: str, world: int) -> float:
    """nccl-tests busbw / algbw factor for an op on `world` ranks."""
    return 2.0 * (world - 1) / world if op == "all_reduce" else (world - 1) / world


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _op_call(op: str, nbytes: int, world: int, device: torch.device) -> Callable[[], Any]:
    """The collective on bf16 (fp32 under Gloo) buffers of nccl-tests' `size` nbytes."""
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    elems = max(world, nbytes // dtype.itemsize // world * world)
    full = torch.ones(elems, device=device, dtype=dtype)
    shard = torch.empty(elems // world, device=device, dtype=dtype)
    if op == "all_reduce":
        return lambda: dist.all_reduce(full)
    # torch >= 2.10 names them *_single (the *_tensor names are deprecated aliases)
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    if op == "all_gather":
        return lambda: gather(full, shard)
    if op == "reduce_scatter":
        return lambda: scatter(shard, full)
    out = torch.empty_like(full)
    return lambda: dist.all_to_all_single(out, full)


def _worker(rank: int, world: int, device_type: str, port: int, sizes: list[int],
            repeats: int, result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if device_type == "cpu":
        torch.set_num_threads(1)
        device = torch.device("cpu")
    else:
        device = torch.device(device_type, rank)
        getattr(torch, device_type).set_device(rank)
    dist.init_process_group(BACKENDS[device_type], rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    records: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        for op in OPS:
            for nbytes in sizes:
                try:
                    call = _op_call(op, nbytes, world, device)
                    dist.barrier()
                    # every rank must issue the same number of calls: fixed repeats
                    timing = time_fn(call, device, warmup=COLLECTIVE_WARMUP,
                                     min_repeats=repeats, max_repeats=repeats)
                except (RuntimeError, NotImplementedError, ValueError) as err:
                    skipped.append(f"{op}: {str(err).splitlines()[0]}")
                    break
                algbw = nbytes / timing.median_s
                records.append({"family": "collective", "op": op, "world": world,
                                "bytes": float(nbytes), "algbw_Bps": algbw,
                                "busbw_Bps": algbw * bus_factor(op, world), **timing.to_json()})
    finally:
        dist.destroy_process_group()
    if rank == 0:
        Path(result_path).write_text(json.dumps({"records": records, "skipped": skipped}))


def bench_collectives(device: torch.device, sizes: tuple[int, ...], log: Callable[[str], None],
                      *, repeats: int = COLLECTIVE_REPEATS, cpu_ranks: int = 0
                      ) -> list[dict[str, Any]]:
    """Collectives over every visible device of this kind; skipped with a message if only one
    (on the CPU only when cpu_ranks > 1, a Gloo test of the same code path)."""
    world = cpu_ranks if device.type == "cpu" else device_count(device)
    if device.type not in BACKENDS or world < 2 or not sizes:
        log(f"collectives: skipped ({world} {device.type} device visible; needs 2 or more)"
            if device.type != "cpu" else
            "collectives: skipped (CPU mode; pass --cpu-ranks 2 to test the Gloo path)")
        return []
    if not dist.is_available():
        log("collectives: skipped (this torch build has no torch.distributed)")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "collectives.json"
        mp.spawn(_worker, args=(world, device.type, _free_port(), list(sizes), repeats,
                                str(result)), nprocs=world, join=True)
        data = json.loads(result.read_text())
    for msg in data["skipped"]:
        log(f"collectives: {msg} (skipped on backend {BACKENDS[device.type]})")
    ops = sorted({r["op"] for r in data["records"]})
    log(f"collectives on {world} ranks ({BACKENDS[device.type]}): {', '.join(ops) or 'none'}")
    return list(data["records"])
