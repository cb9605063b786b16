"""Fused / overlapped tensor-parallel communication: how much of a layer's TP collectives an
implementation hides behind the GEMMs that produce or consume them, and what the chunking
costs the GEMMs (ParallelConfig.tp_comm_overlap_impl).

exposed = max(0, comm - hidden_fraction * gemm) + gemm_slowdown * min(gemm, comm / hidden_fraction)

hidden_fraction: the share of the overlapped GEMM time under which the collective can run
(1 = all of it). gemm_slowdown: the extra GEMM time while a collective shares the chip
(SM/AI-core contention, smaller chunked GEMMs), charged on the overlapped part only.
`ideal` (1, 0) is the v0 `overlap_tp_comm` formula max(0, comm - gemm).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.parallel import TPOverlapImpl


@dataclass(frozen=True, slots=True, kw_only=True)
class TPOverlapTraits:
    """One implementation's achievable overlap (see module docstring)."""

    hidden_fraction: float
    gemm_slowdown: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.hidden_fraction <= 1.0:
            raise ValueError(f"hidden_fraction must be in [0, 1], got {self.hidden_fraction}")
        if not 0.0 <= self.gemm_slowdown < 1.0:
            raise ValueError(f"gemm_slowdown must be in [0, 1), got {self.gemm_slowdown}")


TP_OVERLAP_TRAITS: dict[TPOverlapImpl, TPOverlapTraits] = {
    TPOverlapImpl.NONE: TPOverlapTraits(hidden_fraction=0.0, gemm_slowdown=0.0),
    TPOverlapImpl.IDEAL: TPOverlapTraits(hidden_fraction=1.0, gemm_slowdown=0.0),
    # first estimates (sourced values follow in a later commit)
    TPOverlapImpl.TE_USERBUFFERS: TPOverlapTraits(hidden_fraction=0.8, gemm_slowdown=0.05),
    TPOverlapImpl.MINDSPEED_MC2: TPOverlapTraits(hidden_fraction=0.7, gemm_slowdown=0.05),
    TPOverlapImpl.XLA_COLLECTIVE_MATMUL: TPOverlapTraits(hidden_fraction=0.8, gemm_slowdown=0.05),
}


def exposed_tp_s(comm_s: float, gemm_s: float, impl: TPOverlapImpl) -> float:
    """TP communication seconds left on the critical path next to `gemm_s` of GEMMs."""
    if comm_s <= 0.0:
        return 0.0
    t = TP_OVERLAP_TRAITS[TPOverlapImpl(str(impl))]
    if t.hidden_fraction == 0.0:
        return comm_s
    hidden_gemm = t.hidden_fraction * gemm_s
    overlapped_gemm = min(gemm_s, comm_s / t.hidden_fraction)
    return max(0.0, comm_s - hidden_gemm) + t.gemm_slowdown * overlapped_gemm
