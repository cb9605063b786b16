"""The serving-plan search space: enumerate (device, TP, PP, scheduler + token budget,
max_num_seqs, co-located or disaggregated with a prefill:decode ratio) candidates and prune what
cannot run: TP that does not split the attention heads (hwmodels.layers.check_tp), TP wider than
a node (a replica's TP group stays on NVLink), PP deeper than the layers, and replicas whose
weights plus the KV cache of the workload's longest request do not fit (hwmodels.memory).

A candidate is one *unit*: one co-located replica, or (prefill_replicas + decode_replicas)
replicas of the same TP x PP shape for prefill/decode disaggregation. The planner finds the
largest request rate a unit sustains and deploys as many units as the workload needs.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.catalog import load_device
from hwmodels.errors import ConfigError
from hwmodels.layers import check_tp
from hwmodels.memory import kv_cache_capacity
from hwmodels.specs import DeviceSpec, ModelSpec
from simulator.serving.schedulers import SchedulerKind

DEFAULT_DEVICES = ("a100-80gb", "h100-sxm", "h200")
DEFAULT_TP = (1, 2, 4, 8)
DEFAULT_PP = (1,)
# Schedulers worth searching: vLLM's prefill-first and Sarathi's chunked prefill (stall-free);
# Orca/static batching are dominated by these for latency SLOs (Agrawal et al., OSDI'24).
DEFAULT_SCHEDULERS = ("vllm", "sarathi")
DEFAULT_CHUNK_SIZES = (512, 2048)  # Sarathi-Serve's evaluated token budgets (OSDI'24, Sec. 5)
DEFAULT_MAX_NUM_SEQS = (128, 256)  # vLLM's default max_num_seqs is 256
DEFAULT_MAX_BATCH_TOKENS = 8192  # vLLM's max_num_batched_tokens for prefill-first scheduling


class Placement(StrEnum):
    COLOCATED = "colocated"
    DISAGGREGATED = "disaggregated"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeCandidate:
    """One serving unit: replica shape, batching policy and (optionally) a p:d split."""

    device: str
    tp: int
    pp: int = 1
    scheduler: str = "vllm"
    token_budget: int = DEFAULT_MAX_BATCH_TOKENS  # sarathi: chunk_size; others: max_batch_tokens
    max_num_seqs: int = 256
    prefill_replicas: int = 0  # 0 and 0: co-located (one replica)
    decode_replicas: int = 0
    # a mixed pair's decode pool (None: the prefill pool's device / tp); pp is shared
    decode_device: str | None = None
    decode_tp: int | None = None

    def __post_init__(self) -> None:
        if (self.decode_device is None) != (self.decode_tp is None):
            raise ConfigError("a mixed pair needs both decode_device and decode_tp",
                              key="decode_device")
        if self.decode_device is not None and not self.prefill_replicas:
            raise ConfigError("a decode pool of its own needs prefill:decode replicas",
                              key="decode_device", allowed="prefill_replicas >= 1")

    @property
    def disaggregated(self) -> bool:
        return self.prefill_replicas > 0

    @property
    def mixed(self) -> bool:
        """Whether the decode pool has its own device / TP (a heterogeneous P/D pair)."""
        return self.decode_device is not None

    @property
    def decode_device_name(self) -> str:
        return self.device if self.decode_device is None else self.decode_device

    @property
    def decode_tp_degree(self) -> int:
        return self.tp if self.decode_tp is None else self.decode_tp

    @property
    def placement(self) -> Placement:
        return Placement.DISAGGREGATED if self.disaggregated else Placement.COLOCATED

    @property
    def replicas(self) -> int:
        """Replicas in one unit."""
        return self.prefill_replicas + self.decode_replicas if self.disaggregated else 1

    @property
    def gpus(self) -> int:
        """Devices in one unit."""
        if self.mixed:
            return (self.prefill_replicas * self.tp + self.decode_replicas
                    * self.decode_tp_degree) * self.pp
        return self.replicas * self.tp * self.pp

    def unit_cost_usd_per_hour(self, price: Mapping[str, float]) -> float:
        """USD per hour of one unit: each pool's devices x its device's price."""
        if self.mixed:
            return (self.prefill_replicas * self.tp * self.pp * price[self.device]
                    + self.decode_replicas * self.decode_tp_degree * self.pp
                    * price[self.decode_device_name])
        return self.gpus * price[self.device]

    def pools_label(self) -> str:
        """Both pools of a mixed pair: 'P h100-sxm TP2 x1 : D a100-80gb TP4 x2'."""
        return (f"P {self.device} TP{self.tp} x{self.prefill_replicas} : "
                f"D {self.decode_device_name} TP{self.decode_tp_degree} x{self.decode_replicas}")

    @property
    def pd_ratio(self) -> str:
        return f"{self.prefill_replicas}:{self.decode_replicas}" if self.disaggregated else ""

    def label(self) -> str:
        """Short human-readable name (tables, plots, error messages)."""
        if self.mixed:
            return (f"{self.pools_label()} pp{self.pp} {self.scheduler}/{self.token_budget} "
                    f"seqs{self.max_num_seqs}")
        pd_ = f" P:D={self.pd_ratio}" if self.disaggregated else ""
        return (f"{self.device} tp{self.tp}pp{self.pp} {self.scheduler}/{self.token_budget} "
                f"seqs{self.max_num_seqs}{pd_}")

    def serving_section(self) -> dict[str, object]:
        """The scenario `serving:` keys of this candidate (without replicas/disaggregation)."""
        out: dict[str, object] = {"tp": self.tp, "pp": self.pp, "scheduler": self.scheduler,
                                  "max_num_seqs": self.max_num_seqs}
        if self.scheduler == SchedulerKind.SARATHI:
            out["chunk_size"] = self.token_budget
        else:
            out["max_batch_tokens"] = self.token_budget
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """A candidate that cannot run, and why."""

    candidate: ServeCandidate
    reason: str


def _ints(values: Sequence[int], key: str) -> tuple[int, ...]:
    out = tuple(values)
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in out):
        raise ConfigError(f"must be a non-empty list of integers >= 1, got {values!r}", key=key)
    return out


def parse_ratios(ratios: Sequence[tuple[int, int] | str] | None) -> tuple[tuple[int, int], ...]:
    """Prefill:decode ratios as (p, d) pairs from pairs or "p:d" strings."""
    out = []
    for r in ratios or ():
        if isinstance(r, str):
            parts = r.split(":")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise ConfigError(f"expected 'P:D' with integers, got {r!r}",
                                  key="disaggregation", allowed="e.g. 1:1, 1:2, 2:1")
            r = (int(parts[0]), int(parts[1]))
        if (len(r) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                               for v in r)):
            raise ConfigError(f"expected (prefill, decode) integers >= 1, got {r!r}",
                              key="disaggregation")
        out.append((int(r[0]), int(r[1])))
    return tuple(dict.fromkeys(out))


def check_schedulers(schedulers: Sequence[str]) -> tuple[str, ...]:
    valid = [k.value for k in SchedulerKind]
    out = tuple(str(s) for s in schedulers)
    bad = [s for s in out if s not in valid]
    if not out or bad:
        raise ConfigError(f"unknown scheduler(s) {bad or out!r}", key="schedulers",
                          allowed=valid)
    return out


def feasibility(model: ModelSpec, device: DeviceSpec, tp: int, pp: int, *, dtype: str,
                min_kv_tokens: int, gpu_memory_utilization: float = 0.9,
                block_size: int = 16) -> str:
    """Why a TP x PP replica of `model` on `device` cannot serve, or "" when it can: heads must
    split over TP, TP stays within a node, PP <= layers, and weights + activations + the KV of
    the longest request fit in gpu_memory_utilization x memory."""
    try:
        check_tp(model, tp)
    except ConfigError as err:
        return f"divisibility: {err}"
    if tp > device.devices_per_node:
        return f"tp {tp} exceeds {device.devices_per_node} devices per node of {device.name}"
    if pp > model.num_layers:
        return f"pp {pp} exceeds num_layers {model.num_layers}"
    try:
        cap = kv_cache_capacity(model, device, tp=tp, pp=pp, dtype=dtype,
                                gpu_memory_utilization=gpu_memory_utilization,
                                block_size=block_size)
    except ConfigError as err:
        return f"memory: {err}"
    if cap.tokens < min_kv_tokens:
        return (f"memory: KV cache holds {cap.tokens} tokens, the longest request needs "
                f"{min_kv_tokens}")
    return ""


def enumerate_candidates(model: ModelSpec, *, devices: Sequence[str], tp: Sequence[int],
                         pp: Sequence[int], schedulers: Sequence[str],
                         chunk_sizes: Sequence[int], max_num_seqs: Sequence[int],
                         max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
                         disaggregation: Sequence[tuple[int, int] | str] | None = None,
                         colocated: bool = True, dtype: str = "bf16", min_kv_tokens: int = 1,
                         gpu_memory_utilization: float = 0.9
                         ) -> tuple[list[ServeCandidate], list[Pruned]]:
    """Every candidate of the space, split into feasible ones and pruned ones (with reasons).
    Disaggregated units use vLLM's prefill-first scheduler on both sides (chunking buys
    nothing when decode never shares a step with prefill)."""
    tps, pps = _ints(tp, "tp"), _ints(pp, "pp")
    budgets = _ints(chunk_sizes, "chunk_sizes")
    seqs = _ints(max_num_seqs, "max_num_seqs")
    scheds = check_schedulers(schedulers)
    ratios = parse_ratios(disaggregation)
    if not devices:
        raise ConfigError("needs at least one device", key="devices")
    if not colocated and not ratios:
        raise ConfigError("nothing to search: co-location off and no disaggregation ratios",
                          key="disaggregation", allowed="e.g. ['1:1', '1:2']")
    keep: list[ServeCandidate] = []
    pruned: list[Pruned] = []
    for name in dict.fromkeys(devices):
        device = load_device(name)
        for t, p in itertools.product(tps, pps):
            shapes: list[ServeCandidate] = []
            if colocated:
                for s in scheds:
                    for b in (budgets if s == SchedulerKind.SARATHI else (max_batch_tokens,)):
                        shapes += [ServeCandidate(device=device.name, tp=t, pp=p, scheduler=s,
                                                  token_budget=b, max_num_seqs=n) for n in seqs]
            for (pr, dr), n in itertools.product(ratios, seqs):
                shapes.append(ServeCandidate(device=device.name, tp=t, pp=p, scheduler="vllm",
                                             token_budget=max_batch_tokens, max_num_seqs=n,
                                             prefill_replicas=pr, decode_replicas=dr))
            why = feasibility(model, device, t, p, dtype=dtype, min_kv_tokens=min_kv_tokens,
                              gpu_memory_utilization=gpu_memory_utilization)
            if why:
                pruned += [Pruned(candidate=c, reason=why) for c in shapes]
            else:
                keep += shapes
    return keep, pruned
