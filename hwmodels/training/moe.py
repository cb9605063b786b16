"""MoE training terms: expert load (imbalance, capacity, dropped tokens), expert tensor
parallelism, and how much of the expert-parallel all-to-all a schedule hides.

Pure functions of the model and plan; hwmodels.training.costs calls them per layer kind
(memoized there). Three choices are explicit and switchable on ParallelConfig:
- `moe_imbalance` (busiest EP rank's routed tokens over the mean). None: the balls-in-bins
  estimate below, i.e. the statistical fluctuation of a router that is balanced *in expectation*
  (aux-loss or DeepSeek's bias balancing). It is a lower bound: real routers are skewed by the
  data of a batch; give a measured value when you have one.
- `moe_capacity_factor` (GShard, Lepikhin et al. 2020, Sec. 2.2; Switch, Fedus et al. 2021,
  Sec. 2.2): capacity = factor x mean tokens per expert, computed per rank on its local tokens
  (Megatron-core moe_utils.get_capacity); assignments above it are dropped, so the busiest rank
  is capped at `factor` x mean and the dropped fraction is reported. None: dropless.
- `ep_overlap`: none (dispatch/combine on the critical path) or dualpipe (hidden behind another
  microbatch's compute at the cost of the SMs the communication kernels hold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from hwmodels.dtypes import DType
from hwmodels.layers import Gemm, gemms_time, moe_gemms
from hwmodels.parallel import EPOverlap, ParallelConfig
from hwmodels.profile import DeviceProfile
from hwmodels.specs import DeviceSpec, ModelSpec

# DeepSeek-V3 technical report (arXiv 2412.19437, 2024), Sec. 3.2.2: its cross-node all-to-all
# kernels "fully utilize the bandwidths of IB and NVLink" with 20 of the H800's 132 SMs (10
# communication channels, warp-specialized), and Sec. 3.2.1: DualPipe overlaps them with another
# microbatch's compute. While they run, compute has the other 112 SMs: a kernel-level resource
# share, not a fitted end-to-end number. Applied to every device (the SM share a communication
# kernel needs for line rate is of the same order on other GPUs; no measurement for them here).
DUALPIPE_COMM_SM_FRACTION = 20.0 / 132.0

_STD_NORMAL = NormalDist()


def expected_max_std_normal(n: int) -> float:
    """E[max of n iid standard normals] by Blom's approximation (Blom, 1958):
    Phi^-1((n - 0.375) / (n + 0.25)); 0 for n = 1, 0.59 for 2 (exact 0.564), 1.43 for 8
    (exact 1.424), 2.34 for 64 (exact 2.41)."""
    if n <= 1:
        return 0.0
    return _STD_NORMAL.inv_cdf((n - 0.375) / (n + 0.25))


def expert_tp(parallel: ParallelConfig) -> int:
    """Tensor-parallel degree of the routed experts (Megatron --expert-tensor-parallel-size;
    unset = tp, Megatron's default)."""
    return parallel.tp if parallel.expert_tp is None else parallel.expert_tp


def local_tokens(tokens: float, parallel: ParallelConfig) -> float:
    """Tokens one rank dispatches per MoE layer and microbatch: sequence parallel splits the
    TP group's `tokens` by tp (Megatron's alltoall dispatcher sends each rank's shard over EP,
    then all-gathers it over the expert-TP group); without it every TP rank holds them all."""
    p = parallel
    return tokens / p.tp if (p.sequence_parallel and p.tp > 1) else tokens


def expert_tokens(tokens: float, parallel: ParallelConfig) -> float:
    """Tokens of the expert-TP group that a rank's experts serve (the routed GEMMs' input before
    top-k): local tokens x expert_tp, = `tokens` when expert_tp = tp."""
    p = parallel
    if p.sequence_parallel and p.tp > 1:
        return local_tokens(tokens, p) * expert_tp(p)
    return tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class MoELoad:
    """Routed load of the busiest EP rank and what the capacity factor drops."""

    routed_imbalance: float  # busiest EP rank's assignments over the mean, before capacity
    imbalance: float  # the same after the capacity cap (what the GEMMs and all-to-all carry)
    capacity_factor: float | None
    dropped_fraction: float  # expected share of token-expert assignments over capacity
    source: str  # "given" (ParallelConfig.moe_imbalance) or "balls-in-bins"


def _hypergeometric_rank_cv(model: ModelSpec, ep: int, tokens: float) -> float:
    """Coefficient of variation of one EP rank's assignments when the ep ranks' `tokens` each
    pick k distinct of E experts uniformly (the rank holds E/ep of them): per token the count
    landing on the rank is hypergeometric, mean k/ep, variance k (1/ep)(1 - 1/ep)(E-k)/(E-1)."""
    e, k = model.num_experts, model.experts_per_token
    n = tokens * ep
    if ep <= 1 or n <= 0 or e <= 1:
        return 0.0
    var = n * k * (1.0 / ep) * (1.0 - 1.0 / ep) * (e - k) / (e - 1)
    return math.sqrt(var) / (n * k / ep)


def _expert_cv(model: ModelSpec, tokens: float) -> float:
    """Coefficient of variation of one expert's assignments among `tokens` tokens (binomial,
    p = k/E per token)."""
    e, k = model.num_experts, model.experts_per_token
    mean = tokens * k / e
    if mean <= 0 or k >= e:
        return 0.0
    return math.sqrt(tokens * (k / e) * (1.0 - k / e)) / mean


def overflow_fraction(cv: float, capacity_factor: float) -> float:
    """E[(X - c*mu)+] / mu for X ~ Normal(mu, (cv*mu)^2): the share of assignments over capacity."""
    if cv <= 0:
        return max(0.0, 1.0 - capacity_factor)
    z = (capacity_factor - 1.0) / cv
    return cv * (_STD_NORMAL.pdf(z) - z * (1.0 - _STD_NORMAL.cdf(z)))


def moe_load(model: ModelSpec, parallel: ParallelConfig, tokens: float) -> MoELoad:
    """Busiest-EP-rank load and dropped fraction for one MoE layer and microbatch, `tokens` being
    the TP group's tokens (micro_batch x seq_len / cp).

    Default imbalance: 1 + E[max of ep normals] x CV of a rank's assignments (hypergeometric
    over the EP group's tokens, _hypergeometric_rank_cv). Drops: each expert's load on one
    rank's local tokens is binomial (CV from _expert_cv), or, for a given imbalance ι, the
    per-expert CV that makes the busiest of ep ranks ι (rank CV (ι-1)/E[max], per expert
    x sqrt(E/ep) for independent experts); the overflow above capacity is its normal tail.
    """
    p = parallel
    ep = p.ep
    t_local = local_tokens(tokens, p)
    z = expected_max_std_normal(ep)
    if p.moe_imbalance is not None:
        routed, source = float(p.moe_imbalance), "given"
    else:
        routed = 1.0 + z * _hypergeometric_rank_cv(model, ep, t_local)
        source = "balls-in-bins"
    cf = p.moe_capacity_factor
    if cf is None:
        return MoELoad(routed_imbalance=routed, imbalance=routed, capacity_factor=None,
                       dropped_fraction=0.0, source=source)
    if source == "given" and ep > 1 and routed > 1.0 and z > 0:
        cv = (routed - 1.0) / z * math.sqrt(model.num_experts / ep)
    else:
        cv = _expert_cv(model, t_local)
    dropped = min(1.0, max(0.0, overflow_fraction(cv, cf)))
    return MoELoad(routed_imbalance=routed, imbalance=min(routed, max(cf, 1.0)),
                   capacity_factor=cf, dropped_fraction=dropped, source=source)


def ep_exposed_s(comm_s: float, compute_s: float, overlap: EPOverlap | str) -> float:
    """Exposed time of `comm_s` of EP all-to-all next to `compute_s` of compute it may hide
    behind. none: all of it. dualpipe: the communication kernels hold a share f of the SMs
    while they run (DUALPIPE_COMM_SM_FRACTION), so compute overlapped with them slows down:
    the pair takes max(comm, compute + f x comm), i.e. exposed = max(comm - compute, f x comm).
    """
    if comm_s <= 0:
        return 0.0
    if EPOverlap(str(overlap)) is EPOverlap.NONE:
        return comm_s
    return max(comm_s - compute_s, DUALPIPE_COMM_SM_FRACTION * comm_s)


def _routed_gemms(model: ModelSpec, tokens: float, tp: int, ep: int, imbalance: float,
                  etp: int | None) -> list[Gemm]:
    """The routed-expert GEMMs of moe_gemms (router and shared experts left out)."""
    with_routed = moe_gemms(model, tokens, tp, ep=ep, imbalance=imbalance, expert_tp=etp)
    n_shared = 2 if model.num_shared_experts else 0
    return with_routed[1:len(with_routed) - n_shared]


def expert_tp_delta_s(model: ModelSpec, device: DeviceSpec, *, tokens: float,
                      parallel: ParallelConfig, imbalance: float, dtype: DType,
                      profile: DeviceProfile) -> tuple[float, float, float]:
    """(forward, backward, of which weight-grad) seconds to add to a layer costed at tp when the
    routed experts run at expert_tp instead (0 when they are equal): the grouped expert GEMMs
    over expert_tokens rows at width ffn/expert_tp minus the same over `tokens` at ffn/tp.
    The memory-bound MoE kernels keep their tp-split cost (same bytes per rank in total)."""
    p = parallel
    etp = expert_tp(p)
    if etp == p.tp:
        return 0.0, 0.0, 0.0
    at_tp = _routed_gemms(model, tokens, p.tp, p.ep, imbalance, None)
    at_etp = _routed_gemms(model, expert_tokens(tokens, p), p.tp, p.ep, imbalance, etp)

    def times(gemms: list[Gemm]) -> tuple[float, float, float]:
        fwd = gemms_time(device, gemms, dtype, profile)
        dgrad = gemms_time(device, [Gemm(g.m, g.k, g.n, g.groups) for g in gemms], dtype,
                           profile)
        wgrad = gemms_time(device, [Gemm(g.k, g.n, g.m, g.groups) for g in gemms], dtype,
                           profile)
        return fwd, dgrad + wgrad, wgrad

    a, b = times(at_etp), times(at_tp)
    return a[0] - b[0], a[1] - b[1], a[2] - b[2]
