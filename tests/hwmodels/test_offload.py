"""ZeRO-Offload / ZeRO-Infinity (hwmodels.training.offload): keys, traffic bounds, memory, host
capacity and the bool compatibility of parallelism.offload_optimizer."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hwmodels.catalog import load_link, load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.hosts import host_for, load_host
from hwmodels.memory import training_memory
from hwmodels.parallel import FSDPImpl, OffloadTarget, ParallelConfig, Recompute, TrainingConfig
from hwmodels.training import offload
from hwmodels.training.comm import CommModel
from hwmodels.training.estimate import estimate_iteration
from simulator.training.simulate import simulate_iteration

ROOT = Path(__file__).resolve().parents[2]
MODEL = load_model("gpt-7.5b")
TRAINING = TrainingConfig(seq_len=2048, global_batch=16, micro_batch=1)


def _zero3(**over: object) -> ParallelConfig:
    base = dict(dp=8, zero=3, recompute=Recompute.FULL, offload_optimizer="cpu",
                offload_params="cpu")
    base.update(over)
    return ParallelConfig(**base)  # type: ignore[arg-type]


def test_bool_keys_read_as_cpu_and_none_with_identical_results() -> None:
    assert ParallelConfig(offload_optimizer=True).offload_optimizer is OffloadTarget.CPU
    assert ParallelConfig(offload_optimizer=False) == ParallelConfig()
    cluster = build_cluster("a100-80gb", 8)
    t = TrainingConfig(seq_len=2048, global_batch=64, micro_batch=2)
    old = ParallelConfig(dp=8, zero=2, offload_optimizer=True)
    new = ParallelConfig(dp=8, zero=2, offload_optimizer="cpu")
    assert old == new
    a = simulate_iteration(MODEL, cluster, t, old)
    b = simulate_iteration(MODEL, cluster, t, new)
    assert a.to_dict() == b.to_dict()
    # the ZeRO-Offload step is today's: 4 B/param over the host link, CPU-Adam 0.22 s/1B x 8
    step = offload.offload_step(cluster, new, 1e9)
    link = load_link("pcie4")
    assert step.host_transfer_s == pytest.approx(4e9 / (link.bandwidth_Bps * link.efficiency))
    assert step.cpu_optimizer_s == pytest.approx(8 * 0.22)


def test_bad_offload_keys_name_the_key() -> None:
    with pytest.raises(ConfigError, match="offload_params"):
        ParallelConfig(dp=8, zero=2, offload_optimizer="cpu", offload_params="cpu")
    with pytest.raises(ConfigError, match="offload_params"):
        ParallelConfig(dp=8, zero=3, offload_params="nvme")  # optimizer still on the GPU
    with pytest.raises(ConfigError, match="offload_optimizer"):
        ParallelConfig(offload_optimizer="disk")
    with pytest.raises(ConfigError, match="cluster.host"):
        build_cluster("a100-80gb", 8, host="no-such-node")


@pytest.mark.parametrize("bad, key", [({"zero": 2, "offload_params": "cpu"}, "offload_params"),
                                      ({"offload_optimizer": "tape"}, "offload_optimizer")])
def test_cli_bad_offload_exits_2(tmp_path: Path, bad: dict, key: str) -> None:
    sc = {"model": "gpt-1.7b", "cluster": {"device": "a100-80gb", "num_devices": 8},
          "training": {"seq_len": 1024, "global_batch": 8},
          "parallelism": {"zero": 3, "offload_optimizer": "cpu", **bad}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "fleetsim", "simulate", "train", str(path),
                          "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2
    assert key in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("target", ["cpu", "nvme"])
@pytest.mark.parametrize("impl", [FSDPImpl.DEEPSPEED, FSDPImpl.FSDP2, FSDPImpl.NCCL,
                                  FSDPImpl.IDEAL])
@pytest.mark.parametrize("dp, mb", [(8, 1), (4, 2), (1, 1)])
def test_iteration_is_bounded_by_offload_traffic(target: str, impl: FSDPImpl, dp: int,
                                                 mb: int) -> None:
    cluster = build_cluster("a100-40gb", 8 * (1 if dp == 8 else 1))
    tp = 8 // dp
    t = TrainingConfig(seq_len=2048, global_batch=8 * mb, micro_batch=mb)
    p = _zero3(dp=dp, tp=tp, fsdp_impl=impl, offload_params=target, offload_optimizer=target)
    r = simulate_iteration(MODEL, cluster, t, p)
    off = r.breakdown.offload
    assert off is not None and off.pcie_bytes > 0
    assert r.iteration_time_s >= off.pcie_s
    assert r.iteration_time_s >= off.nvme_s
    assert (off.nvme_bytes > 0) == (target == "nvme")
    assert 0 <= off.exposed_s <= r.iteration_time_s
    # the closed form prices the same copies: exact at pp = 1
    e = estimate_iteration(MODEL, t, p, CommModel(cluster))
    assert e.iteration_time_s == pytest.approx(r.iteration_time_s, rel=1e-9)
    assert e.offload == off


def test_more_pcie_bandwidth_is_never_slower() -> None:
    slow = build_cluster("a100-80gb", 8)
    fast = dataclasses.replace(slow, host_link=load_link("pcie5"))
    for target in ("cpu", "nvme"):
        p = _zero3(offload_params=target)
        a = simulate_iteration(MODEL, slow, TRAINING, p)
        b = simulate_iteration(MODEL, fast, TRAINING, p)
        assert b.iteration_time_s <= a.iteration_time_s
        assert b.breakdown.offload.pcie_s < a.breakdown.offload.pcie_s


def test_offload_reduces_hbm_and_leaves_the_working_set() -> None:
    on_gpu = training_memory(MODEL, TRAINING, ParallelConfig(dp=8, zero=3))
    opt = training_memory(MODEL, TRAINING, ParallelConfig(dp=8, zero=3, offload_optimizer="cpu"))
    both = training_memory(MODEL, TRAINING, _zero3())
    assert both.total_bytes < opt.total_bytes < on_gpu.total_bytes
    assert both.optimizer_bytes == 0.0
    # only the gathered units stay: far less than the 1/dp weight shard of 7.5B params
    assert both.weights_bytes < 7.5e9 * 2 / 8


def test_host_dram_and_nvme_capacity_make_a_plan_infeasible() -> None:
    cluster = build_cluster("a100-40gb", 8)
    host = host_for("a100-40gb")
    assert host is load_host("a100-40gb") and host.nvme_bytes == pytest.approx(15.36e12)
    # 1e12 optimizer parameters per rank: 12 TB of NVMe state per rank, 96 TB per node
    mem = offload.host_memory(cluster, _zero3(offload_optimizer="nvme"), 1e12, 0.0)
    assert not mem.fits and "NVMe" in mem.reason()
    big = load_model("llama3.1-405b")
    t = TrainingConfig(seq_len=1024, global_batch=8, micro_batch=1)
    r = simulate_iteration(big, cluster, t, _zero3(offload_params="nvme"))
    assert not r.fits_memory and "host DRAM" in r.message  # 405B fp32 grads > 1 TB of DRAM
    assert r.to_dict()["host_memory"]["fits"] is False


def test_simulate_json_shows_the_offload_breakdown(tmp_path: Path) -> None:
    sc = {"model": "gpt-1.7b", "cluster": {"device": "h100-sxm", "num_devices": 8},
          "training": {"seq_len": 1024, "global_batch": 8},
          "parallelism": {"zero": 3, "offload_optimizer": "nvme", "offload_params": "nvme"}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "fleetsim", "simulate", "train", str(path),
                          "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    off = out["breakdown"]["offload"]
    assert set(off) == {"pcie_bytes", "pcie_s", "nvme_bytes", "nvme_s", "cpu_optimizer_s",
                        "exposed_s"}
    assert out["iteration_time_s"] >= max(off["pcie_s"], off["nvme_s"]) > 0


def test_traffic_dominated_step_is_paced_by_pcie_and_prefetch_hides_some() -> None:
    # short sequences: far less compute than weight copies, so PCIe sets the pace
    cluster = build_cluster("a100-80gb", 8)
    t = TrainingConfig(seq_len=128, global_batch=8, micro_batch=1)
    p = _zero3(fsdp_impl=FSDPImpl.FSDP1)
    r = simulate_iteration(MODEL, cluster, t, p)
    off = r.breakdown.offload
    assert r.breakdown.compute_s < off.pcie_s <= r.iteration_time_s
    assert off.exposed_s > 0.5 * (off.pcie_s - r.breakdown.compute_s)
    # long sequences: compute covers the copies when prefetched, not when each waits its turn
    t = TrainingConfig(seq_len=2048, global_batch=16, micro_batch=2)
    ahead = simulate_iteration(MODEL, cluster, t, p)
    serial = simulate_iteration(MODEL, cluster, t,
                                dataclasses.replace(p, overlap_param_gather=False))
    assert serial.iteration_time_s > ahead.iteration_time_s
    assert serial.breakdown.offload.exposed_s > ahead.breakdown.offload.exposed_s
