"""MoE serving with expert parallelism (EP) and data-parallel (DP) attention: one MoE layer of a
serving step on one device of a PP stage (pure functions; hwmodels.step calls them).

Layout of one PP stage's `tp` devices (`serving.tp`, `serving.ep`, `serving.dp_attention`):
- `tp` is the stage's device count: SGLang's --tp N, vLLM's TP x DP (--tensor-parallel-size x
  --data-parallel-size).
- `ep` (default 1) shards the routed experts over ep groups of expert_tp = tp / ep devices;
  ep = tp is vLLM's --enable-expert-parallel (EP = TP x DP, experts not TP-split) and SGLang's
  --ep-size N (= --tp); 1 < ep < tp is SGLang's --ep-size < --tp (expert TP tp/ep inside a group).
  ep = 1 keeps today's TP-sharded experts (vLLM's default for MoE).
- `dp_attention` (default false): attention, dense MLPs, router, shared experts and logits run
  data-parallel over the tp devices (attention TP 1; vLLM --data-parallel-size tp with TP 1,
  SGLang --enable-dp-attention with --dp = --tp): each device holds its own sequences' KV with
  every KV head and no TP all-reduce; only the MoE layers' all-to-all joins the devices.
  Assumption: the DP ranks' load balancer spreads the batch evenly (each rank gets 1/tp of the
  tokens, sequences and context; the rounding of few sequences over many ranks is not modelled),
  and SGLang's option of TP-splitting the dense MLPs inside DP attention is not modelled.
Without DP attention but ep > 1 the TP group's replicated tokens are split tp ways before the
dispatch and all-gathered after the combine (vLLM's sequence-parallel MoE with the all-to-all
backends; an assumption that its naive all-gather backend would not meet), so the MoE layer's
second TP all-reduce becomes an all-gather of the hidden state.

Per MoE layer and device: the router on its tokens, the dispatch and combine all-to-all of
dispatched_tokens x top_k x hidden x bytes (times expert_tp: every device of the target
expert group needs the token; times the imbalance: the busiest device receives that much more)
over the EP group's actual ranks (NVLink inside a node, the NICs across nodes), and the grouped
expert GEMMs of its E/ep local experts at the load of the most loaded EP rank (balls-in-bins
imbalance of hwmodels.training.moe.moe_load, or a given one).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels import layers
from hwmodels.collectives import CollectiveOp, collective_time_for_group
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.layers import Gemm
from hwmodels.parallel import ParallelConfig
from hwmodels.profile import DeviceProfile
from hwmodels.specs import DeviceSpec, ModelSpec
from hwmodels.training.moe import moe_load


def _int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"must be an integer >= 1, got {value!r}", key=key)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class EPLayout:
    """How one PP stage's `tp` devices split attention and experts (see the module docstring)."""

    tp: int = 1
    ep: int = 1
    dp_attention: bool = False

    def __post_init__(self) -> None:
        _int(self.tp, "serving.tp")
        _int(self.ep, "serving.ep")
        if not isinstance(self.dp_attention, bool):
            raise ConfigError(f"must be true or false, got {self.dp_attention!r}",
                              key="serving.dp_attention", allowed=[True, False])
        if self.tp % self.ep:
            divisors = [d for d in range(1, self.tp + 1) if self.tp % d == 0]
            raise ConfigError(f"ep {self.ep} must divide the {self.tp} devices of a replica's "
                              "stage (serving.tp)", key="serving.ep", allowed=divisors)

    @property
    def active(self) -> bool:
        """Whether the MoE layers leave the TP-sharded path (ep > 1 or DP attention, tp > 1)."""
        return self.tp > 1 and (self.ep > 1 or self.dp_attention)

    @property
    def attn_tp(self) -> int:
        """TP degree of attention, dense MLPs, router, shared experts and logits."""
        return 1 if self.dp_attention else self.tp

    @property
    def attn_dp(self) -> int:
        """Data-parallel degree of attention: devices that each hold their own sequences."""
        return self.tp if self.dp_attention else 1

    @property
    def expert_tp(self) -> int:
        """Devices one expert's weights are TP-split over (tp / ep)."""
        return self.tp // self.ep


def check_layout(model: ModelSpec, *, tp: int = 1, ep: int = 1,
                 dp_attention: bool = False) -> EPLayout:
    """The layout, validated against the model: EP and DP attention need an MoE model, and ep
    must divide its routed experts."""
    layout = EPLayout(tp=tp, ep=ep, dp_attention=dp_attention)
    if not model.is_moe:
        if ep > 1:
            raise ConfigError(f"ep {ep} > 1 needs an MoE model; '{model.name}' is dense",
                              key="serving.ep", allowed=[1])
        if dp_attention:
            raise ConfigError(f"dp_attention needs an MoE model; for dense '{model.name}' "
                              "use more replicas", key="serving.dp_attention", allowed=[False])
    elif model.num_experts % ep:
        allowed = [d for d in range(1, tp + 1) if tp % d == 0 and model.num_experts % d == 0]
        raise ConfigError(f"ep {ep} does not divide num_experts {model.num_experts} of "
                          f"'{model.name}'", key="serving.ep", allowed=allowed)
    return layout


def dispatched_tokens(layout: EPLayout, tokens: float) -> float:
    """Tokens one device sends through the dispatch per MoE layer, `tokens` being the tokens
    one attention rank holds (its own batch share with DP attention, the TP group's replicated
    batch otherwise: then split tp ways)."""
    return tokens if layout.dp_attention else tokens / layout.tp


def expert_group_tokens(layout: EPLayout, tokens: float) -> float:
    """Tokens one EP rank (expert-TP group) brings to the experts, in moe_routing's sense: the
    stage's dispatched tokens over ep."""
    return dispatched_tokens(layout, tokens) * layout.expert_tp


def ep_imbalance(model: ModelSpec, layout: EPLayout, tokens: float,
                 imbalance: float | None = None) -> float:
    """Busiest EP rank's routed assignments over the mean for one MoE layer: `imbalance` when
    given (>= 1), else the balls-in-bins estimate of hwmodels.training.moe.moe_load (a lower
    bound: routers skewed by the batch's data are worse)."""
    if layout.ep == 1:
        return 1.0
    parallel = ParallelConfig(tp=1, dp=layout.ep, ep=layout.ep, moe_imbalance=imbalance)
    return moe_load(model, parallel, expert_group_tokens(layout, tokens)).imbalance


def all_to_all_bytes(model: ModelSpec, layout: EPLayout, tokens: float, *,
                     act_bytes: float, imbalance: float = 1.0) -> float:
    """One device's send buffer of one dispatch (= one combine): dispatched tokens x top_k x
    hidden x bytes, x expert_tp (each of the target group's devices needs the token), x the
    busiest rank's imbalance (it receives that much more than the mean)."""
    return (dispatched_tokens(layout, tokens) * model.experts_per_token * model.hidden_size
            * act_bytes * layout.expert_tp * imbalance)


def moe_layer_gemms(model: ModelSpec, layout: EPLayout, tokens: float, *,
                    imbalance: float = 1.0) -> list[Gemm]:
    """GEMMs of one MoE layer on one device: attention and router and shared experts on the
    attention layout, the local E/ep experts' grouped GEMMs at the busiest rank's rows, split
    over expert_tp."""
    attn_tp = layout.attn_tp
    out = layers.attention_gemms(model, tokens, attn_tp)
    out.append(Gemm(tokens, model.num_experts, model.hidden_size))
    active, rows = layers.moe_routing(model, expert_group_tokens(layout, tokens),
                                      ep=layout.ep, imbalance=imbalance)
    out += layers.mlp_gemms(model, rows, model.moe_ffn_hidden_size, layout.expert_tp,
                            groups=active)
    if model.num_shared_experts:
        out += layers.mlp_gemms(model, tokens, model.num_shared_experts * model.shared_ffn,
                                attn_tp)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class MoELayerCost:
    """One MoE layer on one device: seconds, busiest-rank imbalance and FLOPs."""

    gemm_s: float
    comm_s: float  # dispatch + combine all-to-all, plus the TP collectives left beside them
    all_to_all_s: float  # dispatch + combine alone
    imbalance: float
    flops: float  # of `tokens` (one attention rank's share)


def moe_layer_cost(model: ModelSpec, device: DeviceSpec, layout: EPLayout, tokens: float, *,
                   dtype: DType, act_bytes: float, profile: DeviceProfile, cluster: object,
                   ep_group: object, tp_group: object | None,
                   imbalance: float | None = None) -> MoELayerCost:
    """GEMM and communication seconds of one MoE layer with EP / DP attention for `tokens` on
    one attention rank; `ep_group`/`tp_group` are GroupInfo of the stage's actual ranks."""
    if tokens <= 0:
        return MoELayerCost(gemm_s=0.0, comm_s=0.0, all_to_all_s=0.0, imbalance=1.0,
                            flops=0.0)
    imb = ep_imbalance(model, layout, tokens, imbalance)
    gemm_s = layers.gemms_time(device, moe_layer_gemms(model, layout, tokens, imbalance=imb),
                               dtype, profile)

    def comm(group: object | None, op: CollectiveOp, nbytes: float) -> float:
        if group is None or nbytes <= 0:
            return 0.0
        return collective_time_for_group(cluster, group, op, nbytes,  # type: ignore[arg-type]
                                         profile=profile).time_s

    a2a = 2.0 * comm(ep_group, CollectiveOp.ALL_TO_ALL,
                     all_to_all_bytes(model, layout, tokens, act_bytes=act_bytes,
                                      imbalance=imb))
    hidden = tokens * model.hidden_size * act_bytes
    # TP attention: its all-reduce stays, the MoE output is all-gathered back to every TP rank
    tp_s = (comm(tp_group, CollectiveOp.ALL_REDUCE, hidden)
            + comm(tp_group, CollectiveOp.ALL_GATHER, hidden)) if layout.attn_tp > 1 else 0.0
    flops = sum(g.flops for g in layers.layer_gemms(model, tokens, 1, moe=True))
    return MoELayerCost(gemm_s=gemm_s, comm_s=a2a + tp_s, all_to_all_s=a2a, imbalance=imb,
                        flops=flops)
