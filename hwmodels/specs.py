"""Frozen specs of devices, links, models and clusters: the vocabulary every cost model takes.

Specs are validated on construction (ValueError naming the field); they hold facts, not costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwmodels._compat import StrEnum
from hwmodels.dtypes import DType, parse_dtype
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.topology import SWITCH_FABRIC, ScaleUpFabric, ScaleUpTopology


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None or not (value > 0):
            raise ConfigError(f"must be > 0, got {value!r}", key=f"{type(obj).__name__}.{name}")


def _non_negative(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is None or value < 0:
            raise ConfigError(f"must be >= 0, got {value!r}", key=f"{type(obj).__name__}.{name}")


def _fraction(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not (0 < value <= 1):
            raise ConfigError(f"must be in (0, 1], got {value!r}",
                              key=f"{type(obj).__name__}.{name}")


class DeviceKind(StrEnum):
    GPU = "gpu"
    NPU = "npu"
    TPU = "tpu"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSpec:
    """One accelerator (a GPU, a GCD, an NPU or a TPU chip) as the cost models see it.

    peak_flops holds *dense* peak FLOP/s per dtype (never the 2:4-sparse figure).
    The efficiency fields are defaults from public measurements; a calibration profile
    replaces them (hwmodels.profile).
    """

    name: str
    vendor: str
    kind: DeviceKind = DeviceKind.GPU
    peak_flops: FrozenMap[DType, float]
    memory_bytes: float
    memory_bw_Bps: float
    scale_up_link: str
    scale_up_bw_Bps: float  # per direction, per device, aggregate over all its links
    host_link: str = "pcie4"
    # the scale-out NIC (links.yaml) of the device's reference node (build_cluster's default);
    # "": the fastest InfiniBand generation its host link carries (hwmodels.cluster.default_nic)
    default_inter_node: str = ""
    tdp_w: float
    idle_w: float
    price_usd_per_hour: float
    # Achievable fraction of dense peak for large, well-shaped GEMMs, per dtype.
    gemm_efficiency: FrozenMap[DType, float] = field(default_factory=FrozenMap)
    # Achievable fraction of memory bandwidth for streaming kernels (copy/elementwise).
    memory_efficiency: float = 0.85
    # Flash-style attention throughput as a fraction of dense bf16/fp16 peak.
    attention_efficiency: float = 0.55
    # Fixed per-kernel overhead (launch + tail), seconds.
    kernel_overhead_s: float = 4e-6
    devices_per_node: int = 8
    # how the scale-up links are laid out (hwmodels.topology): NVSwitch-style switch by default
    scale_up_fabric: ScaleUpFabric = SWITCH_FABRIC
    # scale-out NICs per device on its reference node (build_cluster's default nics_per_node =
    # devices_per_node x this): 0.25 for a TPU v5e host (2 NICs per 8 chips), 0.5 for a
    # Frontier MI250X GCD (one Slingshot NIC per package), 3 for a Gaudi card's scale-out ports
    nics_per_device: float = 1.0
    # other scale-up links a node of this device may be built with (besides scale_up_link and
    # any host/PCIe link), e.g. an NVLink bridge on a PCIe card
    alt_scale_up_links: tuple[str, ...] = ()
    source: str = ""
    # a board power limit below TDP (W; 0: none) and the SM clock it leaves compute-bound
    # kernels, as a fraction of the uncapped clock (hwmodels.power.power_capped sets both);
    # compute time runs at compute_peak, MFU stays against the nameplate peak
    power_cap_w: float = 0.0
    sm_clock_scale: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "memory_bytes", "memory_bw_Bps", "scale_up_bw_Bps", "tdp_w",
                  "devices_per_node")
        _non_negative(self, "idle_w", "price_usd_per_hour", "kernel_overhead_s", "power_cap_w")
        _fraction(self, "memory_efficiency", "attention_efficiency", "sm_clock_scale")
        _positive(self, "nics_per_device")
        if not self.peak_flops:
            raise ConfigError("needs at least one dtype", key="DeviceSpec.peak_flops",
                              allowed=[d.value for d in DType])
        for dt, flops in self.peak_flops.items():
            if not isinstance(dt, DType) or not flops > 0:
                raise ConfigError(f"bad entry {dt}: {flops}", key="DeviceSpec.peak_flops",
                                  allowed=[d.value for d in DType])
        for dt, eff in self.gemm_efficiency.items():
            if not (0 < eff <= 1):
                raise ConfigError(f"{dt} must be in (0, 1], got {eff}",
                                  key="DeviceSpec.gemm_efficiency")
        if self.idle_w >= self.tdp_w:
            raise ConfigError(f"idle_w {self.idle_w} must be below tdp_w {self.tdp_w}",
                              key="DeviceSpec.idle_w")

    def supports(self, dtype: DType) -> bool:
        return dtype in self.peak_flops

    def peak(self, dtype: DType) -> float:
        """Dense peak FLOP/s for `dtype`; int4 weight-only runs at the bf16 rate."""
        dtype = parse_dtype(dtype)  # accept plain strings ('bf16') as well as DType members
        if dtype in self.peak_flops:
            return self.peak_flops[dtype]
        if dtype in (DType.INT4, DType.FP16) and DType.BF16 in self.peak_flops:
            return self.peak_flops[DType.BF16]
        if dtype is DType.BF16 and DType.FP16 in self.peak_flops:
            return self.peak_flops[DType.FP16]
        raise ConfigError(f"device '{self.name}' has no {dtype} peak", key="dtype",
                          allowed=[d.value for d in self.peak_flops])

    def compute_peak(self, dtype: DType) -> float:
        """FLOP/s compute-bound kernels reach the roofline of: the dense peak at the SM clock
        a power cap leaves (sm_clock_scale; 1 without a cap)."""
        return self.peak(dtype) * self.sm_clock_scale

    def gemm_eff(self, dtype: DType) -> float:
        """Large-GEMM efficiency for `dtype` (falls back to bf16's, then 0.75)."""
        if dtype in self.gemm_efficiency:
            return self.gemm_efficiency[dtype]
        return self.gemm_efficiency.get(DType.BF16, 0.75)


class LinkKind(StrEnum):
    SCALE_UP = "scale_up"  # NVLink/NVSwitch, xGMI, HCCS, ICI
    SCALE_OUT = "scale_out"  # InfiniBand, RoCE, Ethernet
    HOST = "host"  # PCIe


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSpec:
    """A fabric as one device sees it: bandwidth per direction per device (or per NIC)."""

    name: str
    kind: LinkKind
    bandwidth_Bps: float
    latency_s: float
    # Fraction of link bandwidth NCCL-style collectives reach as bus bandwidth (large messages).
    efficiency: float = 0.8
    source: str = ""

    def __post_init__(self) -> None:
        _positive(self, "bandwidth_Bps")
        _non_negative(self, "latency_s")
        _fraction(self, "efficiency")


class AttentionKind(StrEnum):
    MHA = "mha"  # includes GQA/MQA via num_kv_heads
    MLA = "mla"  # DeepSeek multi-head latent attention


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A decoder-only transformer's dimensions (HF config.json vocabulary, normalized).

    Dense models have num_experts == 0. MoE layers replace the MLP with `num_experts`
    experts of width moe_ffn_hidden_size, `experts_per_token` active, plus `num_shared_experts`
    always-on experts; the first `first_dense_layers` layers keep a dense MLP.
    """

    name: str
    model_type: str = "llama"
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_hidden_size: int
    vocab_size: int
    gated_mlp: bool = True  # SwiGLU (3 matrices) vs plain GELU (2 matrices)
    tie_embeddings: bool = False
    max_seq_len: int = 4096
    num_experts: int = 0
    experts_per_token: int = 0
    moe_ffn_hidden_size: int = 0
    num_shared_experts: int = 0
    shared_expert_ffn_hidden_size: int = 0  # 0 -> moe_ffn_hidden_size
    first_dense_layers: int = 0
    attention: AttentionKind = AttentionKind.MHA
    # MLA (DeepSeek-V2/V3) dims; zero for MHA/GQA models. For MLA, head_dim is the q/k head
    # width qk_nope_head_dim + qk_rope_head_dim and v_head_dim the value head width.
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # Small per-layer extras that only move parameter counts (hf_config sets them per family).
    qkv_bias: bool = False  # biases on the q/k/v projections (Qwen2, GPT-2, BLOOM, OPT, ...)
    linear_bias: bool = False  # biases on every linear layer (GPT-2, Megatron GPT, BLOOM, ...)
    norm_bias: bool = False  # LayerNorm with bias (vs RMSNorm / bias-free LayerNorm)
    learned_pos_emb: bool = False  # learned absolute positions, max_seq_len x hidden_size
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)
    # Trains with dropout (masks saved, dropout kernels run); None: the family rule of
    # uses_dropout (GPT-style plain-MLP models yes, gated-MLP ones no). hf_config sets it from
    # the config's dropout probabilities where it gives them.
    trains_with_dropout: bool | None = None
    source: str = ""

    def __post_init__(self) -> None:
        _positive(self, "num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                  "ffn_hidden_size", "vocab_size", "max_seq_len")
        _non_negative(self, "num_experts", "experts_per_token", "moe_ffn_hidden_size",
                      "num_shared_experts", "first_dense_layers", "kv_lora_rank", "q_lora_rank",
                      "qk_rope_head_dim", "v_head_dim", "shared_expert_ffn_hidden_size")
        if self.trains_with_dropout is not None and not isinstance(self.trains_with_dropout,
                                                                    bool):
            raise ConfigError(f"expected true, false or null, got {self.trains_with_dropout!r}",
                              key="trains_with_dropout", allowed=[True, False, None])
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"num_attention_heads {self.num_heads} not divisible by "
                f"num_key_value_heads {self.num_kv_heads}", key="num_key_value_heads")
        if self.num_experts:
            if not (0 < self.experts_per_token <= self.num_experts):
                raise ConfigError(
                    f"experts_per_token {self.experts_per_token} must be in 1..{self.num_experts}",
                    key="num_experts_per_tok")
            if self.moe_ffn_hidden_size <= 0:
                raise ConfigError("MoE model needs moe_ffn_hidden_size > 0",
                                  key="moe_intermediate_size")
        if self.first_dense_layers > self.num_layers:
            raise ConfigError("first_dense_layers exceeds num_layers", key="first_dense_layers")
        if self.attention is AttentionKind.MLA and self.kv_lora_rank <= 0:
            raise ConfigError("MLA model needs kv_lora_rank > 0", key="kv_lora_rank")
        if self.attention is AttentionKind.MLA and self.qk_rope_head_dim >= self.head_dim:
            raise ConfigError(f"MLA head_dim {self.head_dim} must exceed qk_rope_head_dim "
                              f"{self.qk_rope_head_dim}", key="qk_rope_head_dim")

    def uses_dropout(self, override: bool | None = None) -> bool:
        """Whether training runs dropout: `override`, else the config's, else the family rule
        (GPT-style plain-MLP models train with dropout 0.1, Llama-style gated ones with 0)."""
        if override is not None:
            return override
        if self.trains_with_dropout is not None:
            return self.trains_with_dropout
        return not self.gated_mlp

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def shared_ffn(self) -> int:
        return self.shared_expert_ffn_hidden_size or self.moe_ffn_hidden_size

    @property
    def qk_nope_head_dim(self) -> int:
        """MLA: the non-rotary part of the q/k head (head_dim = nope + rope); else head_dim."""
        return self.head_dim - self.qk_rope_head_dim if self.attention is AttentionKind.MLA \
            else self.head_dim

    @property
    def value_head_dim(self) -> int:
        """Per-head width of V (MLA's v_head_dim, otherwise head_dim)."""
        return self.v_head_dim or self.head_dim


class Topology(StrEnum):
    FAT_TREE = "fat-tree"
    RAIL_OPTIMIZED = "rail-optimized"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    """Nodes of identical devices: a scale-up fabric inside a node, a scale-out one across.

    inter_node bandwidth is per NIC; nics_per_node defaults to one NIC per device.
    oversubscription > 1 divides the bandwidth available above the leaf switches
    (a leaf holds `nodes_per_leaf` nodes).
    """

    device: DeviceSpec
    num_devices: int
    devices_per_node: int
    intra_node: LinkSpec
    inter_node: LinkSpec
    nics_per_node: int = 0  # 0 -> devices_per_node
    topology: Topology = Topology.RAIL_OPTIMIZED
    oversubscription: float = 1.0
    nodes_per_leaf: int = 32
    name: str = ""
    # the PCIe link between a device (and the NIC on its PCIe switch) and the host; None: not
    # modelled (build_cluster fills it from DeviceSpec.host_link)
    host_link: LinkSpec | None = None
    # the node's host side (hwmodels/catalog/hosts.yaml) for offload; "": the device's entry
    host: str = ""
    # the node's (TPU: the slice's) scale-up topology; None: a switch at intra_node's bandwidth
    scale_up: ScaleUpTopology | None = None

    def __post_init__(self) -> None:
        _positive(self, "num_devices", "devices_per_node", "oversubscription", "nodes_per_leaf")
        _non_negative(self, "nics_per_node")
        if self.num_devices > self.devices_per_node and self.num_devices % self.devices_per_node:
            raise ConfigError(
                f"num_devices {self.num_devices} is not a multiple of devices_per_node "
                f"{self.devices_per_node}", key="cluster.num_devices")
        if self.oversubscription < 1:
            raise ConfigError("must be >= 1", key="cluster.oversubscription")
        if self.scale_up is not None and self.scale_up.size != self.devices_per_node:
            raise ConfigError(f"scale-up topology of {self.scale_up.size} devices on nodes of "
                              f"{self.devices_per_node}", key="cluster.devices_per_node",
                              allowed=[self.scale_up.size])

    @property
    def num_nodes(self) -> int:
        return max(1, -(-self.num_devices // self.devices_per_node))

    @property
    def nics(self) -> int:
        return self.nics_per_node or self.devices_per_node

    def node_of(self, rank: int) -> int:
        return rank // self.devices_per_node
