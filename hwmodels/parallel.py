"""Training plans: how a model is split over devices (TP/PP/DP/CP/EP, ZeRO, recompute, schedule).

`check_plan` enforces every divisibility rule in one place, so the simulator, the memory
model and the planners reject the same impossible plans with the same one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels._compat import StrEnum
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.specs import ClusterSpec, ModelSpec


class Recompute(StrEnum):
    NONE = "none"
    SELECTIVE = "selective"  # Korthikanti et al.: recompute attention softmax/dropout only
    FULL = "full"  # store only each layer's input


class PipelineSchedule(StrEnum):
    GPIPE = "gpipe"
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved"
    ZB_H1 = "zb-h1"


class FSDPImpl(StrEnum):
    """How ZeRO-3/FSDP moves weights and grads (the simulator's framework constants per value)."""

    NCCL = "nccl"  # PyTorch FSDP / Megatron: NCCL multi-channel, one gather per layer pass
    DEEPSPEED_2021 = "deepspeed-2021"  # DeepSpeed ZeRO-3 as in SC'21 Table 2 (see costs.py)


class CPMode(StrEnum):
    RING = "ring"  # ring attention: KV blocks passed around the CP group (send/recv)
    ULYSSES = "ulysses"  # all-to-all on heads (DeepSpeed-Ulysses)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingConfig:
    """What one optimizer step processes."""

    seq_len: int
    global_batch: int  # sequences per optimizer step
    micro_batch: int = 1  # sequences per microbatch per DP replica
    dtype: DType = DType.BF16

    def __post_init__(self) -> None:
        for name in ("seq_len", "global_batch", "micro_batch"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"must be > 0, got {getattr(self, name)}",
                                  key=f"training.{name}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParallelConfig:
    """The parallel plan. dp is the data-parallel degree over *non-expert* parameters.

    ep splits experts across ranks of the data-parallel x context-parallel group (Megatron's
    convention: ep must divide dp*cp). rank_order lists dimensions innermost first.
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    vpp: int = 1  # virtual pipeline chunks per stage (interleaved schedule)
    zero: int = 0  # 0..3; 1 = distributed optimizer, 3 = FSDP
    sequence_parallel: bool = False
    recompute: Recompute = Recompute.NONE
    schedule: PipelineSchedule = PipelineSchedule.ONE_F_ONE_B
    cp_mode: CPMode = CPMode.RING
    fsdp_impl: FSDPImpl = FSDPImpl.NCCL  # only read when zero == 3
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True
    overlap_tp_comm: bool = False
    rank_order: tuple[str, ...] = ("tp", "cp", "ep", "dp", "pp")

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "cp", "ep", "vpp"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}",
                                  key=f"parallelism.{name}")
        if self.zero not in (0, 1, 2, 3):
            raise ConfigError(f"unknown ZeRO stage {self.zero}", key="parallelism.zero",
                              allowed=[0, 1, 2, 3])
        if str(self.fsdp_impl) not in {m.value for m in FSDPImpl}:
            raise ConfigError(f"unknown FSDP implementation {self.fsdp_impl!r}",
                              key="parallelism.fsdp_impl", allowed=[m.value for m in FSDPImpl])
        if sorted(self.rank_order) != sorted(("tp", "cp", "ep", "dp", "pp")):
            raise ConfigError(f"bad rank order {self.rank_order}", key="parallelism.rank_order",
                              allowed="a permutation of tp, cp, ep, dp, pp")
        if self.vpp > 1 and self.schedule is not PipelineSchedule.INTERLEAVED:
            raise ConfigError("vpp > 1 needs schedule: interleaved", key="parallelism.vpp")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp * self.dp * self.cp


def num_microbatches(training: TrainingConfig, parallel: ParallelConfig) -> int:
    """Microbatches per pipeline per step: global_batch / (micro_batch * dp)."""
    return training.global_batch // (training.micro_batch * parallel.dp)


def check_plan(model: ModelSpec, cluster: ClusterSpec, training: TrainingConfig,
               parallel: ParallelConfig) -> None:
    """Raise ConfigError (one line, naming the key) for any impossible plan."""
    p = parallel
    if p.world_size != cluster.num_devices:
        raise ConfigError(
            f"tp*pp*dp*cp = {p.tp}*{p.pp}*{p.dp}*{p.cp} = {p.world_size} != num_devices "
            f"{cluster.num_devices}", key="parallelism")
    if model.num_heads % p.tp:
        raise ConfigError(f"num_heads {model.num_heads} not divisible by tp {p.tp}",
                          key="parallelism.tp")
    if model.num_kv_heads % p.tp and p.tp % model.num_kv_heads:
        raise ConfigError(
            f"num_kv_heads {model.num_kv_heads} and tp {p.tp}: one must divide the other",
            key="parallelism.tp")
    if model.num_layers % (p.pp * p.vpp):
        raise ConfigError(
            f"num_layers {model.num_layers} not divisible by pp*vpp = {p.pp * p.vpp}",
            key="parallelism.pp")
    if training.global_batch % (training.micro_batch * p.dp):
        raise ConfigError(
            f"global_batch {training.global_batch} not divisible by micro_batch*dp = "
            f"{training.micro_batch * p.dp}", key="training.global_batch")
    if training.seq_len % (2 * p.cp if p.cp > 1 else 1):
        raise ConfigError(f"seq_len {training.seq_len} not divisible by 2*cp", key="parallelism.cp")
    if p.ep > 1:
        if not model.is_moe:
            raise ConfigError("ep > 1 needs an MoE model", key="parallelism.ep")
        if model.num_experts % p.ep:
            raise ConfigError(f"ep {p.ep} does not divide num_experts {model.num_experts}",
                              key="parallelism.ep")
        if (p.dp * p.cp) % p.ep:
            raise ConfigError(f"ep {p.ep} must divide dp*cp = {p.dp * p.cp}",
                              key="parallelism.ep")
    if p.cp_mode is CPMode.ULYSSES and p.cp > 1 and model.num_heads % (p.tp * p.cp):
        raise ConfigError(f"ulysses needs num_heads divisible by tp*cp = {p.tp * p.cp}",
                          key="parallelism.cp")
    if p.schedule is PipelineSchedule.INTERLEAVED and p.vpp > 1:
        m = num_microbatches(training, p)
        if m % p.pp:
            raise ConfigError(f"interleaved schedule needs microbatches {m} divisible by pp {p.pp}",
                              key="parallelism.vpp")
