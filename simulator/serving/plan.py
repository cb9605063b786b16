"""The typed serving seam: a frozen ServingPlan (model, replica groups, serving config with its
migration, links, SLO, power/failures/autoscale configs) that simulate_serving runs, and the
per-step observer protocol through which callers (the power planner) see every step."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from hwmodels.dtypes import parse_dtype
from hwmodels.engine_profiles import Admission, describe_engine, load_engine
from hwmodels.errors import ConfigError
from hwmodels.ops import resolve_profile
from hwmodels.profile import DeviceProfile
from hwmodels.serving_moe import EPLayout, check_layout
from hwmodels.specs import DeviceSpec, ModelSpec
from simulator.schema import Seconds
from simulator.serving.cluster_config import (
    AutoscaleConfig,
    DisaggregationConfig,
    FailureConfig,
    GroupSpec,
    MigrationConfig,
    PowerConfig,
    ReplicaGroup,
    Role,
    at_least,
)
from simulator.serving.kinds import PreemptionMode, enum_value
from simulator.serving.routers import RouterKind
from simulator.serving.schedulers import SCHEDULERS, SchedulerKind


class _EngineDefault(int):
    """The default of an int key the engine profile fills in: a distinct object, so YAML null
    stays an error and an explicit 0 still fails its range check."""

    def __repr__(self) -> str:
        return "<engine default>"


ENGINE_DEFAULT = _EngineDefault(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingConfig:
    """The serving: section (its fields are the YAML keys; defaults follow vLLM's).
    replica_groups / disaggregation are kept as written; the ServingPlan holds the groups
    they resolve to (parse_serving_section). `engine` names a hwmodels.engine_profiles preset
    (None: DEFAULT_ENGINE, kernel-only = the step model before engine profiles); scheduler,
    max_batch_tokens, max_num_seqs, preemption, admission and prefix_caching left unset take
    that engine's defaults (explicit keys override them) and are resolved on construction."""

    replicas: int | None = None  # None: cluster.num_devices // (tp x pp), else 1
    tp: int = 1
    pp: int = 1
    engine: str | None = None
    scheduler: SchedulerKind = ENGINE_DEFAULT  # type: ignore[assignment]
    max_batch_tokens: int = ENGINE_DEFAULT
    max_num_seqs: int = ENGINE_DEFAULT
    chunk_size: int = 512
    kv_block_size: int = 16
    preemption: PreemptionMode = ENGINE_DEFAULT  # type: ignore[assignment]
    # no-evict reserves KV for the whole output at admission (TensorRT-LLM
    # GUARANTEED_NO_EVICT); recompute / swap admit on the prompt and preempt (vLLM)
    admission: Admission = ENGINE_DEFAULT  # type: ignore[assignment]
    router: RouterKind = RouterKind.ROUND_ROBIN
    gpu_memory_utilization: float = 0.9
    dtype: str = "bf16"
    kv_dtype: str | None = None
    prefix_caching: bool = ENGINE_DEFAULT  # type: ignore[assignment]
    max_model_len: int | None = None
    horizon_s: Seconds | None = None
    fast_forward: bool = True
    replica_groups: tuple[GroupSpec, ...] | None = None
    disaggregation: DisaggregationConfig | None = None
    routers: int = 1
    migration: MigrationConfig | None = None
    client_timeout_s: Seconds | None = None
    # a fitted engine of the device profile's engine_overheads (e.g. vllm-2024): per-step host
    # overhead from its coefficients instead of hwmodels.step.STEP_OVERHEAD_S (an assumption)
    engine_overhead: str | None = None
    # MoE serving (hwmodels.serving_moe): ep shards the routed experts over ep groups of tp/ep
    # of a stage's tp devices (vLLM --enable-expert-parallel: ep = tp = TP x DP; SGLang
    # --ep-size); dp_attention runs attention/dense parts data-parallel over the tp devices
    # (vLLM --data-parallel-size tp with TP 1; SGLang --enable-dp-attention --dp tp)
    ep: int = 1
    dp_attention: bool = False
    # vLLM multi-step scheduling (--num-scheduler-steps, v0.6): decode runs in rounds of this
    # many steps that no new prompt can cut; prompts join only between rounds
    num_scheduler_steps: int = 1

    def __post_init__(self) -> None:
        w = "serving"
        self._resolve_engine_defaults()
        for key in ("replicas", "tp", "pp", "max_batch_tokens", "max_num_seqs", "chunk_size",
                    "kv_block_size", "max_model_len", "routers", "num_scheduler_steps"):
            at_least(self, w, key, 1)
        if self.num_scheduler_steps > 1 and self.scheduler is not SchedulerKind.VLLM:
            raise ConfigError(f"num_scheduler_steps {self.num_scheduler_steps} is vLLM's "
                              f"multi-step scheduling: it needs scheduler vllm, not "
                              f"{self.scheduler}", key="serving.num_scheduler_steps",
                              allowed=["1", "scheduler: vllm"])
        for key in ("horizon_s", "client_timeout_s"):
            at_least(self, w, key, 0.0, strict=True)
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"must be in (0, 1], got {self.gpu_memory_utilization!r}",
                              key="serving.gpu_memory_utilization")
        object.__setattr__(self, "dtype", str(parse_dtype(self.dtype, key="serving.dtype")))
        if self.kv_dtype is not None:
            object.__setattr__(self, "kv_dtype",
                               str(parse_dtype(self.kv_dtype, key="serving.kv_dtype")))
        object.__setattr__(self, "preemption", enum_value(PreemptionMode, self.preemption,
                                                          "serving.preemption"))
        EPLayout(tp=self.tp, ep=self.ep, dp_attention=self.dp_attention)  # raises serving.*

    def _resolve_engine_defaults(self) -> None:
        """Unset engine-dependent keys take the engine's defaults; the scheduler must be one
        the engine has."""
        eng = load_engine(self.engine)
        if self.engine is not None:
            object.__setattr__(self, "engine", eng.name)
        admission = self.admission
        if admission is ENGINE_DEFAULT:
            admission = (eng.admission if self.preemption is ENGINE_DEFAULT
                         else Admission(str(self.preemption)))
        object.__setattr__(self, "admission",
                           enum_value(Admission, admission, "serving.admission"))
        if self.preemption is ENGINE_DEFAULT:
            object.__setattr__(self, "preemption", PreemptionMode.SWAP
                               if self.admission is Admission.SWAP else PreemptionMode.RECOMPUTE)
        defaults = {"scheduler": eng.default_scheduler, "max_batch_tokens": eng.max_batch_tokens,
                    "max_num_seqs": eng.max_num_seqs, "prefix_caching": eng.prefix_caching}
        for key, value in defaults.items():
            if getattr(self, key) is ENGINE_DEFAULT:
                object.__setattr__(self, key, value)
        object.__setattr__(self, "scheduler", SCHEDULERS.kind(self.scheduler))
        eng.check_scheduler(self.scheduler)

    @property
    def engine_label(self) -> str:
        """How outputs name the engine: 'vllm-0.6' or 'kernel-only (default)'."""
        return describe_engine(self.engine)

    @property
    def sized_by_groups(self) -> bool:
        """Whether replica_groups or disaggregation, not replicas, size the cluster."""
        return self.replica_groups is not None or self.disaggregation is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingPlan:
    """Everything one serving simulation needs besides its requests (typed, frozen)."""

    model: ModelSpec
    device: DeviceSpec  # the cluster's device (homogeneous form; links default from it)
    serving: ServingConfig = ServingConfig()
    groups: tuple[ReplicaGroup, ...] = ()  # empty: serving.replicas x (tp, pp) of device
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    seed: int = 0
    intra_node: str | None = None
    inter_node: str | None = None  # None: each device's default NIC (default_inter_node)
    devices_per_node: int | None = None
    # a TPU replica's slice (cluster.slice_shape): its product is each replica's tp x pp
    slice_shape: tuple[int, ...] | None = None
    disagg_link: str | None = None
    disagg_same_node: bool = False
    prefix_block_tokens: int | None = None  # workload.prefix_block_tokens
    power: PowerConfig | None = None
    failures: FailureConfig | None = None
    autoscale: AutoscaleConfig | None = None
    file: str | None = None  # the scenario file it came from (errors name it)
    # the homogeneous form's profile (groups carry their own; None: bundled, else defaults)
    profile: DeviceProfile | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"expected an integer >= 0, got {self.seed!r}", file=self.file,
                              key="seed")
        if not isinstance(self.groups, tuple):
            object.__setattr__(self, "groups", tuple(self.groups))
        if self.power is not None and self.power.devices_per_server is None:
            per_node = self.devices_per_node or self.device.devices_per_node
            object.__setattr__(self, "power", replace(self.power, devices_per_server=per_node))
        self._check_scheduler_roles()
        self._check_moe_layout()
        for g in self.groups:  # a group's own engine must have the serving scheduler too
            if g.engine is not None:
                try:
                    load_engine(g.engine, key=f"serving.replica_groups[{g.name}].engine"
                                ).check_scheduler(self.serving.scheduler)
                except ConfigError as err:
                    raise err.with_context(file=self.file) from None
        for key in ("slo_ttft_s", "slo_tpot_s"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"must be a number > 0, got {value!r}", file=self.file,
                                  key=key.replace("slo_", "slo."))
            object.__setattr__(self, key, float(value))

    def _check_scheduler_roles(self) -> None:
        """A padding (request-level) scheduler batches whole requests prefill-to-finish; a
        prefill-only or decode-only pool has no such batch (it crashed inside SimPy), so a
        disaggregated plan must use an iteration-level scheduler."""
        if not self.disaggregated or not SCHEDULERS.get(self.serving.scheduler).pads:
            return
        allowed = [str(k) for k in SchedulerKind if not SCHEDULERS.get(k).pads]
        raise ConfigError(f"{self.serving.scheduler} batching cannot run disaggregated "
                          "prefill/decode pools",
                          file=self.file, key="serving.scheduler", allowed=allowed)

    def _check_moe_layout(self) -> None:
        """serving.ep / dp_attention against the model and every group's tp (ep divides it)."""
        sv = self.serving
        if sv.ep == 1 and not sv.dp_attention:
            return
        try:
            for g in self.replica_groups():
                check_layout(self.model, tp=g.tp, ep=sv.ep, dp_attention=sv.dp_attention)
        except ConfigError as err:
            raise err.with_context(file=self.file) from None

    def replica_groups(self) -> tuple[ReplicaGroup, ...]:
        """The groups (the homogeneous form as one group)."""
        if self.groups:
            return self.groups
        sv = self.serving
        return (ReplicaGroup(name="default", device=self.device, count=sv.replicas or 1, tp=sv.tp,
                             pp=sv.pp, profile=self.profile),)

    def engine_of(self, group: ReplicaGroup) -> str | None:
        """The engine a group's replicas run (its own, else serving.engine; None: default)."""
        return group.engine if group.engine is not None else self.serving.engine

    def profiles(self) -> dict[str, DeviceProfile]:
        """{device: the complete profile its groups' costs use}, one per device."""
        out: dict[str, DeviceProfile] = {}
        for g in self.replica_groups():
            out.setdefault(g.device.name, resolve_profile(g.device, g.profile))
        return out

    @property
    def disaggregated(self) -> bool:
        return any(g.role is not Role.BOTH for g in self.replica_groups())


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """What one lane did in one engine step (or fast-forwarded run of steps)."""

    replica: int
    group: str
    start_s: float
    end_s: float
    steps: int  # engine steps in [start_s, end_s)
    tokens: int  # prefill + decode tokens through the linear layers
    ctx_read_tokens: float  # decode context tokens read from the KV cache


class StepObserver(Protocol):
    """Receives every StepRecord of a run, in simulated-time order per lane."""

    def __call__(self, record: StepRecord) -> None: ...
