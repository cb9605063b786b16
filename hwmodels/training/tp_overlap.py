"""Fused / overlapped tensor-parallel communication: how much of a layer's TP collectives an
implementation hides behind the GEMMs that produce or consume them, and what sharing the chip
costs those GEMMs (ParallelConfig.tp_comm_overlap_impl).

Every non-ideal implementation here decomposes the collective and its GEMM into `n` pieces
and pipelines them: piece i's transfer runs under piece i-1's GEMM (TE userbuffers' ring
exchange, XLA's collective matmul, Ascend MC2's local-shard-first tiling). The GEMM of one
piece (the last for all-gather+matmul, the first for matmul+reduce-scatter) has no transfer to
hide, so a pipeline of n pieces hides the collective behind (1 - 1/n) of the GEMM time:

    exposed = max(0, comm - (1 - 1/n) * gemm) + gemm_slowdown * gemm_overlapped

n = `pieces` (0: one piece per TP rank, the ring decomposition; the pieces are then tp), and
gemm_slowdown is the extra GEMM time while a collective shares the chip (SMs / AI cores taken
by communication kernels, HBM contention), charged on the GEMM time that runs under
communication, min(gemm, comm / hidden_fraction). `ideal` (everything hidden, no slowdown) is
the formula `overlap_tp_comm: true` always used, max(0, comm - gemm); `none` exposes it all.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwmodels.parallel import TPOverlapImpl


@dataclass(frozen=True, slots=True, kw_only=True)
class TPOverlapTraits:
    """One implementation's pipelining (module docstring): `pieces` (0 = tp pieces, -1 = no
    overlap, None = ideal) and the GEMM slowdown while communication runs beside it."""

    pieces: int | None
    gemm_slowdown: float
    source: str = ""

    def __post_init__(self) -> None:
        if self.pieces is not None and (isinstance(self.pieces, bool) or self.pieces < -1):
            raise ValueError(f"pieces must be None, -1, 0 or a count >= 1, got {self.pieces}")
        if not 0.0 <= self.gemm_slowdown < 1.0:
            raise ValueError(f"gemm_slowdown must be in [0, 1), got {self.gemm_slowdown}")

    def hidden_fraction(self, tp: int) -> float:
        """Share of the GEMM time the collective can run under, for a TP group of `tp`."""
        if self.pieces is None:
            return 1.0
        if self.pieces < 0 or tp <= 1:
            return 0.0
        n = tp if self.pieces == 0 else self.pieces
        return 1.0 - 1.0 / n


TP_OVERLAP_TRAITS: dict[TPOverlapImpl, TPOverlapTraits] = {
    TPOverlapImpl.NONE: TPOverlapTraits(pieces=-1, gemm_slowdown=0.0,
                                        source="no overlap: collectives on the critical path"),
    TPOverlapImpl.IDEAL: TPOverlapTraits(pieces=None, gemm_slowdown=0.0,
                                         source="v0 overlap_tp_comm: max(0, comm - gemm)"),
    # Transformer Engine userbuffers as NeMo configures it (nemo/collections/llm/recipes/
    # tp_overlap_configs/userbuffers.py, userbuffers_bf16_h100_h12288_tp4_mbs1_seqlen2048, the
    # GPT-3 175B H100 preset): 5 of the 10 per-layer TP GEMM overlaps are ring exchanges (tp
    # pieces, P2P copies on the copy engines, 0-1 SMs), 4 are bulk overlaps with 2-4 SMs and
    # proj_fprop is a 4-split pipeline on 24 SMs; pieces = tp (the ring). Slowdown: the SMs the
    # communication kernels hold, weighted by each GEMM's FLOPs (qkv 3, proj 1, fc1 4, fc2 4
    # per h^2 forward, x2 backward) over H100's 132 SMs: forward (1 x 24 + 4 x 1) / 132 / 12 =
    # 1.8%, backward (3 x 4 + 3 x 4 + 4 x 2 + 4 x 4) / 132 / 24 = 1.5%; 0.016 overall. The
    # smaller chunked GEMMs' own efficiency loss is not counted (no kernel-level figure found).
    TPOverlapImpl.TE_USERBUFFERS: TPOverlapTraits(
        pieces=0, gemm_slowdown=0.016,
        source="NeMo userbuffers preset GPT-3 175B H100 TP4 (SM shares); ring of tp pieces"),
    # Ascend MC2 fused operators (CANN ops-transformer mc2/ all_gather_matmul tiling, MindSpeed
    # --use-ascend-mc2 / --use-mc2, docs/features/mc2.md): the local shard's matmul runs first
    # while the (tp-1) remote shards arrive over the full HCCS mesh (COMM_ALG_FULL_MESH), each
    # remote shard cut into >= 1 tiles along M (commTurn <= 64); pieces = tp is the one-tile
    # lower bound. The transfers are issued by the AI CPU / SDMA and the reductions run on the
    # vector cores, which on 910B are separate from the 24 (20) cube cores (CANN platform
    # config cube_vector_combine=split), so only HBM/L2 is shared: gemm_slowdown 0.02 is an
    # estimate (no public MC2 overlap measurement found).
    TPOverlapImpl.MINDSPEED_MC2: TPOverlapTraits(
        pieces=0, gemm_slowdown=0.02,
        source="CANN mc2 AllGatherMatmul tiling (local shard first, tiles per remote shard); "
               "slowdown estimate"),
    # XLA collective matmul (Wang et al., "Overlap Communication with Dependent Computation via
    # Decomposition in Large Deep Learning Models", ASPLOS'23): the all-gather / reduce-scatter
    # and its einsum are decomposed into tp steps of a (bidirectional) ring of collective
    # permutes, each step's permute under the previous step's partial einsum: pieces = tp. ICI
    # transfers are DMA, not MXU work; gemm_slowdown 0.02 is an estimate for the smaller
    # per-step einsums (the paper reports end-to-end speedups, not a per-step efficiency).
    TPOverlapImpl.XLA_COLLECTIVE_MATMUL: TPOverlapTraits(
        pieces=0, gemm_slowdown=0.02,
        source="Wang et al. ASPLOS'23 decomposition (tp ring steps); slowdown estimate"),
}

def traits(impl: TPOverlapImpl | str) -> TPOverlapTraits:
    """The traits of one implementation (a str is read as TPOverlapImpl)."""
    return TP_OVERLAP_TRAITS[TPOverlapImpl(str(impl))]


def exposed_tp_s(comm_s: float, gemm_s: float, impl: TPOverlapImpl | str, tp: int) -> float:
    """TP communication seconds left on the critical path next to `gemm_s` of GEMMs, for a TP
    group of `tp` ranks (module docstring)."""
    if comm_s <= 0.0:
        return 0.0
    t = traits(impl)
    f = t.hidden_fraction(tp)
    if f == 0.0:
        return comm_s
    overlapped_gemm = min(gemm_s, comm_s / f)
    return max(0.0, comm_s - f * gemm_s) + t.gemm_slowdown * overlapped_gemm
