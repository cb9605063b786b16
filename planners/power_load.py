"""GPU load over time for the power planner: per-bin busy fraction and roofline utilizations
of one server, from a serving simulation (per-step accounting through simulate_serving's
step observer)
or from a synthetic training-like pattern (synchronized near-TDP compute, drops at iteration
boundaries and checkpoints)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.errors import ConfigError
from hwmodels.specs import ModelSpec
from planners.mix_profile import build_plan
from simulator.profiles import ProfileChoice
from simulator.serving import StepRecord, build_replica_setup, simulate_serving

# Training-like defaults: a GPT-3-class data-parallel step (Megatron SC'21: ~10 s iterations,
# >85% of it in compute); checkpoint stalls of tens of seconds every ~30 min (Llama 3 paper).
TRAIN_ITERATION_S = 10.0
TRAIN_COMPUTE_SHARE = 0.85
TRAIN_CHECKPOINT_EVERY = 30  # iterations
TRAIN_CHECKPOINT_S = 30.0
# Utilizations of the phases (fractions of peak FLOP/s and HBM bandwidth): dense GEMMs run at
# ~0.9 of the clock-limited peak; the gradient all-reduce tail keeps SMs mostly idle.
TRAIN_COMPUTE_UTIL, TRAIN_COMPUTE_MEM = 0.9, 0.35
TRAIN_SYNC_UTIL, TRAIN_SYNC_MEM = 0.05, 0.15


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadProfile:
    """One server's GPU load per time bin (mean over its GPUs), uncapped."""

    kind: str  # inference | training
    bin_s: float
    busy: np.ndarray  # fraction of GPU time stepping
    compute_util: np.ndarray  # while busy: achieved FLOP/s / peak
    memory_util: np.ndarray  # while busy: achieved B/s / peak bandwidth
    compute_fraction: np.ndarray  # clock-sensitive share of step time (capped_time_s)
    records: pd.DataFrame | None = None  # inference: arrival_s, first_token_s, finish_s

    @property
    def duration_s(self) -> float:
        return self.bin_s * len(self.busy)


def _bin_add(arr: np.ndarray, start: float, end: float, value: float, bin_s: float) -> None:
    """Spread `value` x (overlap seconds) of [start, end) over the bins it covers."""
    b0, b1 = int(start // bin_s), int(end // bin_s)
    if b0 >= len(arr):
        return
    if b0 == b1:
        arr[b0] += value * (end - start)
        return
    arr[b0] += value * ((b0 + 1) * bin_s - start)
    for b in range(b0 + 1, min(b1, len(arr))):
        arr[b] += value * bin_s
    if b1 < len(arr):
        arr[b1] += value * (end - b1 * bin_s)


def inference_profile(model: str | ModelSpec | Mapping[str, Any], device: str,
                      requests: pd.DataFrame, *, gpus_per_server: int, tp: int = 1,
                      bin_s: float = 1.0, seed: int = 0,
                      serving: Mapping[str, Any] | None = None,
                      profiles: ProfileChoice | None = None) -> LoadProfile:
    """Replay `requests` on one server (gpus_per_server / tp replicas, least-loaded routing)
    and account each step's FLOPs and bytes into time bins (step times from the device's
    efficiency profile: `profiles`, else bundled / catalog defaults)."""
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1 or gpus_per_server % tp:
        raise ConfigError(f"tp {tp!r} must be an integer >= 1 dividing gpus_per_server "
                          f"{gpus_per_server}", key="power.tp")
    replicas = gpus_per_server // tp
    plan = build_plan(model, device, tp, replicas=replicas, slo_ttft_s=None, slo_tpot_s=None,
                      serving=serving, profiles=profiles)
    setup = build_replica_setup(plan)
    sp = setup.step_power  # the engine's per-step power model (hwmodels.power.StepPower)
    assert sp is not None
    span = float(requests["arrival_time_s"].max()) if len(requests) else 0.0
    n_bins = max(1, int(np.ceil(span / bin_s)) + 1)
    busy = np.zeros(n_bins)
    flops_t = np.zeros(n_bins)
    bytes_t = np.zeros(n_bins)

    def on_step(step: StepRecord) -> None:
        dur = step.end_s - step.start_s
        if dur <= 0:
            return
        # per replica -> per GPU of the server: divide by gpus_per_server at the end
        _bin_add(busy, step.start_s, step.end_s, tp, bin_s)
        _bin_add(flops_t, step.start_s, step.end_s, sp.flops_per_token * step.tokens / dur,
                 bin_s)
        _bin_add(bytes_t, step.start_s, step.end_s,
                 (sp.weight_bytes * step.steps + sp.kv_bytes * step.ctx_read_tokens) / dur,
                 bin_s)

    out = simulate_serving(plan, requests, seed=seed, setup=setup, observer=on_step)
    peak, bw = sp.peak_flops, sp.bw_Bps
    busy_s = busy  # device-seconds stepping per bin
    safe = np.where(busy_s > 0, busy_s, 1.0)
    compute_s = flops_t / peak * tp  # device-seconds of ideal compute
    memory_s = bytes_t / bw * tp
    cu = np.clip(compute_s / safe, 0.0, 1.0)
    mu = np.clip(memory_s / safe, 0.0, 1.0)
    total = compute_s + memory_s
    cf = np.divide(compute_s, total, out=np.zeros_like(total), where=total > 0)
    rec = out.records[["arrival_s", "first_token_s", "finish_s", "status"]].copy()
    return LoadProfile(kind="inference", bin_s=bin_s,
                       busy=np.clip(busy_s / (gpus_per_server * bin_s), 0.0, 1.0),
                       compute_util=cu, memory_util=mu, compute_fraction=cf, records=rec)


def training_profile(*, duration_s: float, bin_s: float = 1.0,
                     iteration_s: float = TRAIN_ITERATION_S,
                     compute_share: float = TRAIN_COMPUTE_SHARE,
                     checkpoint_every: int = TRAIN_CHECKPOINT_EVERY,
                     checkpoint_s: float = TRAIN_CHECKPOINT_S) -> LoadProfile:
    """A synchronous training job: each iteration computes near TDP for compute_share of
    iteration_s, then stalls on the gradient all-reduce; every checkpoint_every iterations
    the GPUs idle for checkpoint_s. All servers of the job follow the same clock."""
    if not 0 < compute_share <= 1 or iteration_s <= 0 or duration_s <= 0:
        raise ConfigError("need 0 < compute_share <= 1, iteration_s > 0, duration_s > 0",
                          key="power.training")
    n_bins = max(1, int(np.ceil(duration_s / bin_s)))
    fine = 20  # sub-samples per bin
    t = (np.arange(n_bins * fine) + 0.5) * bin_s / fine
    period = iteration_s * checkpoint_every + checkpoint_s
    phase = np.mod(t, period)
    in_ckpt = phase >= iteration_s * checkpoint_every
    compute = (~in_ckpt) & (np.mod(phase, iteration_s) < compute_share * iteration_s)
    sync = (~in_ckpt) & ~compute
    cu_f = np.where(compute, TRAIN_COMPUTE_UTIL, np.where(sync, TRAIN_SYNC_UTIL, 0.0))
    mu_f = np.where(compute, TRAIN_COMPUTE_MEM, np.where(sync, TRAIN_SYNC_MEM, 0.0))
    busy_f = (compute | sync).astype(float)
    shape = (n_bins, fine)
    busy = busy_f.reshape(shape).mean(axis=1)
    safe = np.where(busy > 0, busy, 1.0)
    cu = cu_f.reshape(shape).mean(axis=1) / safe
    mu = mu_f.reshape(shape).mean(axis=1) / safe
    # capped_time_s share: compute phases are clock-bound, the all-reduce tail is not
    cf = (compute.astype(float).reshape(shape).mean(axis=1) * 0.95) / safe
    return LoadProfile(kind="training", bin_s=bin_s, busy=busy, compute_util=np.clip(cu, 0, 1),
                       memory_util=np.clip(mu, 0, 1), compute_fraction=np.clip(cf, 0, 1))
