"""Predicted vs published training performance for every row of the bundled validation data.

Each row's model is built from its dims, its cluster from its hardware, its plan from its
parallel columns plus what the source paper states (documented per table below). Nothing is
fitted per row, but two constants were chosen against these tables themselves (see "Fitted to
these rows" at the end), so the tables they touch are not independent checks of them.
The efficiency source is an argument (`profiles`: device -> DeviceProfile / path /
CATALOG_DEFAULTS / None = bundled); a device it does not name uses the catalog defaults.

Assumptions per source:
- SC21-T1/T2 (Narayanan et al. SC'21): fp16 mixed precision; full activation recomputation
  (the paper's FLOP count, eq. 3, 96*B*s*l*h^2*(1 + s/6h + V/16lh), counts the recomputed
  forward, and Sec. 5 says all runs checkpoint activations); no sequence parallelism (it came
  with Korthikanti et al.); Megatron's unfused softmax attention (pre-FlashAttention); gradient
  all-reduce after the backward, not overlapped (Megatron 2021); interleaved schedule with the
  layers per virtual stage the notes give, vpp = 1 where the sc21 scripts set no vpp flag.
  The metric is hardware TFLOP/s per GPU (the 96-factor count). ZeRO-3 rows: DeepSpeed ZeRO-3
  (zero=3) with the same recompute; the paper's TFLOP/s use the same formula. They run with
  fsdp_impl = deepspeed-2021, whose framework constants (costs.FSDP_TRAITS) are: gathers per
  sub-module (6 per layer), a re-gather for the checkpointed recompute (3 gathers + 1
  reduce-scatter per layer per microbatch), and one NCCL channel (one HDR NIC, ~22 GB/s per
  rank) instead of NCCL's 8-NIC multi-ring ideal. The last is inferred from this table (its
  768- and 1536-GPU iterations both take ~67 s: fixed per-rank traffic at ~21 GB/s), so the
  Table 2 ZeRO-3 rows check the shape of the collapse, not an independent prediction. With
  NCCL's multi-channel bandwidth the collapse disappears (~210 TFLOP/s flat). The smallest
  scale of each model (384 / 640 GPUs) is over-predicted by ~26-31%: the prefetch model
  (gather hidden behind the previous layer's compute) overlaps more than DeepSpeed did.
  Per-sub-module latency of 1536/2240-rank rings (~2.4/3.4 ms per gather) costs ~2-5%.
- KORTH-* (Korthikanti et al. MLSys'23): fp16, unfused attention, "full" rows = full recompute
  without SP, "selective" rows = SP + selective recompute; schedules as in the notes; no
  gradient-reduce overlap (Sec. 6.3 states it); the Sec. 6.3 row is Table 5's 530B setting
  (interleaved, 3 virtual stages) with DP = 8. T4 rows: one 22B layer fwd+bwd on TP8, micro
  batch 4, including its exposed TP collectives.
- FOUNDRY-H100 (llm-foundry): bf16, FSDP FULL_SHARD = ZeRO-3 over all GPUs, AC = full
  recompute, FlashAttention; MosaicML H100 nodes: 8x H100-SXM, NVLink4, 8x 400 Gb/s NDR NICs
  (3.2 Tb/s per node, MosaicML/Databricks cluster description).
Clusters: Selene DGX A100 nodes (8x A100-80GB, NVLink3, 8x 200 Gb/s HDR InfiniBand).
Fitted to these rows (end-to-end rows are meant for validation only; both are defects of the
catalog kept because changing them moves the goldens, and a profile fitted to kernel timings
replaces the first):
- A100 bf16/fp16 gemm_efficiency 0.72 (devices.yaml, a100-40gb/a100-80gb) was chosen as the
  value that makes SC21-T1 + KORTH-* fit (TARGET MAPE 4.6%; 12.5% at 0.82). The kernel-level
  measurement says otherwise: Vidur's A100 mlp_up_proj at 4096 tokens (58 shapes of 8 models,
  TP 1-8, ../shared/calibration-data/vidur) runs at a median 0.764 of the 312 TFLOP/s peak
  (0.70-0.86). With 0.764 as the plateau the TARGET MAPE is 7.4% (worst row 17.5%, SC21-T1).
  So the TARGET tables at catalog defaults validate a constant tuned on them.
- FSDP_TRAITS[deepspeed-2021].channels = 1 (hwmodels/training/costs.py) is inferred from
  SC21-T2's own ZeRO-3 rows (their 768/1536-GPU iterations): those rows check the shape of
  the collapse, not an independent prediction.
FOUNDRY-H100 rows are reported, not tuned: over-predicted by 22-54% (predicted MFU 0.51-0.64 vs
published 0.37-0.46) with almost no exposed communication, i.e. the gap is in compute
efficiency, not in FSDP traffic. It is not the GEMM plateau: Vidur's H100 mlp_up_proj at 4096
tokens runs at a median 0.724 of 989 TFLOP/s, the catalog's 0.72 (an isolated-GEMM figure, not
fitted to these rows); FA3-level attention 0.55 and no eager-PyTorch elementwise overhead are
the untested suspects. No principled constant was found for it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.layers import ProfileArg
from hwmodels.ops import resolve_profile
from hwmodels.parallel import FSDPImpl, ParallelConfig, PipelineSchedule, Recompute, TrainingConfig
from hwmodels.profile import CATALOG_DEFAULTS, DeviceProfile
from hwmodels.specs import ClusterSpec, ModelSpec
from hwmodels.training.comm import CommModel
from hwmodels.training.costs import ChunkCostModel
from hwmodels.training.placement import pipeline_groups
from simulator.training.simulate import simulate_iteration

DATA_FILE = "training_published.csv"
# The tables whose MAPE is the fidelity target of issue 3 (and of the validation test).
TARGET_TABLES = ("SC21-T1", "KORTH-T3T5", "KORTH-s6.3", "KORTH-T4")
MAPE_TARGET_PCT = 10.0
MAX_ROW_ERROR_PCT = 20.0


def load_published() -> pd.DataFrame:
    """The bundled validation CSV (comment lines cite the sources)."""
    return pd.read_csv(Path(__file__).resolve().parents[1] / "data" / DATA_FILE, comment="#")


@dataclass(frozen=True, slots=True, kw_only=True)
class RowSetup:
    model: ModelSpec
    cluster: ClusterSpec
    training: TrainingConfig
    parallel: ParallelConfig
    flash_attention: bool
    config: str


def _gpt(row: pd.Series) -> ModelSpec:
    return load_model({
        "name": str(row.model), "model_type": "gpt2", "n_layer": int(row.layers),
        "n_embd": int(row.hidden), "n_head": int(row.heads), "n_inner": int(row.ffn),
        "n_positions": int(row.seq_len), "vocab_size": 51200, "tie_word_embeddings": True})


def _mpt(row: pd.Series) -> ModelSpec:
    return load_model({
        "name": str(row.model), "model_type": "mpt", "n_layers": int(row.layers),
        "d_model": int(row.hidden), "n_heads": int(row.heads),
        "expansion_ratio": int(row.ffn) // int(row.hidden), "max_seq_len": int(row.seq_len),
        "vocab_size": 50368, "no_bias": True, "learned_pos_emb": True})


@functools.lru_cache(maxsize=8)
def _selene(n: int) -> ClusterSpec:
    return build_cluster("a100-80gb", n, devices_per_node=8, intra_node="nvlink3",
                         inter_node="ib-hdr")


@functools.lru_cache(maxsize=8)
def _mosaic_h100(n: int) -> ClusterSpec:
    return build_cluster("h100-sxm", n, devices_per_node=8, intra_node="nvlink4",
                         inter_node="ib-ndr")


def _vpp(row: pd.Series) -> int:
    """Virtual stages from the notes' "N layers/virtual stage" or "N virtual stages"; Sec. 6.3
    of Korthikanti et al. reruns its Table 5 530B setting (3 virtual stages) with DP = 8."""
    notes = str(row.notes)
    if str(row.source) == "KORTH-s6.3":
        return 3
    layers_per_stage = int(row.layers) // int(row.pp)
    if "layers/virtual stage" in notes or "layer/virtual stage" in notes:
        per_virtual = int(notes.split("(")[1].split(" ")[0])
        return layers_per_stage // per_virtual
    if "virtual stages" in notes:
        return int(notes.split("interleaved ")[1].split(" ")[0])
    return 1


def row_setup(row: pd.Series) -> RowSetup:
    """Model, cluster, training and plan of one published row (assumptions in the docstring)."""
    notes = str(row.notes)
    source = str(row.source)
    n, tp, pp, dp = int(row.n_devices), int(row.tp), int(row.pp), int(row.dp)
    micro = int(row.microbatch)
    if source.startswith("FOUNDRY"):
        recompute = Recompute.FULL if "; AC" in notes else Recompute.NONE
        plan = ParallelConfig(tp=tp, pp=pp, dp=dp, zero=3, recompute=recompute,
                              overlap_grad_reduce=True)
        training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                                  micro_batch=micro, dtype=DType.BF16)
        return RowSetup(model=_mpt(row), cluster=_mosaic_h100(n), training=training,
                        parallel=plan, flash_attention=True,
                        config=f"FSDP dp{dp} mb{micro} {recompute}")
    if source == "KORTH-T4":
        sp = "sequence parallel" in notes
        recompute = (Recompute.FULL if "full recompute" in notes else
                     Recompute.SELECTIVE if "selective" in notes else Recompute.NONE)
        model = _gpt(row)  # the table times one layer; the layer count does not enter
        plan = ParallelConfig(tp=tp, sequence_parallel=sp, recompute=recompute)
        training = TrainingConfig(seq_len=int(row.seq_len), global_batch=micro,
                                  micro_batch=micro, dtype=DType.FP16)
        return RowSetup(model=model, cluster=_selene(n), training=training, parallel=plan,
                        flash_attention=False, config=f"tp{tp} sp={sp} {recompute}")
    vpp = _vpp(row)
    if source.startswith("KORTH"):
        selective = "selective" in notes
        recompute = Recompute.SELECTIVE if selective else Recompute.FULL
        sp = selective and tp > 1
    else:
        recompute, sp = Recompute.FULL, False
    zero = 3 if "ZeRO-3" in notes else 0
    schedule = PipelineSchedule.INTERLEAVED if vpp > 1 else PipelineSchedule.ONE_F_ONE_B
    plan = ParallelConfig(tp=tp, pp=pp, dp=dp, vpp=vpp, zero=zero, sequence_parallel=sp,
                          recompute=recompute, schedule=schedule, overlap_grad_reduce=False,
                          fsdp_impl=FSDPImpl.DEEPSPEED_2021 if zero == 3 else FSDPImpl.NCCL)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=micro, dtype=DType.FP16)
    config = (f"tp{tp} pp{pp} dp{dp}" + (f" vpp{vpp}" if vpp > 1 else "")
              + (" zero3" if zero else "") + (" sp" if sp else "") + f" {recompute}")
    return RowSetup(model=_gpt(row), cluster=_selene(n), training=training, parallel=plan,
                    flash_attention=False, config=config)


def row_device(row: pd.Series) -> str:
    """Catalog name of the device a published row ran on (the cluster row_setup builds)."""
    return row_setup(row).cluster.device.name


def _layer_fwd_bwd_ms(setup: RowSetup, profile: DeviceProfile) -> float:
    """One layer's forward + backward (with recompute) incl. exposed TP comm, milliseconds."""
    groups = pipeline_groups(setup.parallel)
    costs = ChunkCostModel(setup.model, setup.training, setup.parallel,
                           CommModel(setup.cluster, profile), groups, profile=profile,
                           flash_attention=setup.flash_attention)
    fwd, bwd = costs.layer(0, False)
    return 1e3 * (fwd.compute_s + fwd.exposed_s + bwd.compute_s + bwd.exposed_s)


def predict_row(row: pd.Series, profile: ProfileArg = CATALOG_DEFAULTS) -> tuple[str, float]:
    """(config description, predicted value of the row's metric) with the efficiencies of
    `profile` (a profile of the row's device, a path, CATALOG_DEFAULTS, or None = bundled)."""
    setup = row_setup(row)
    prof = resolve_profile(setup.cluster.device, profile)
    metric = str(row.metric)
    if metric == "layer_fwd_bwd_time_ms":
        return setup.config, _layer_fwd_bwd_ms(setup, prof)
    result = simulate_iteration(setup.model, setup.cluster, setup.training, setup.parallel,
                                profile=prof, flash_attention=setup.flash_attention)
    if metric == "iteration_time_s":
        return setup.config, result.iteration_time_s
    if metric == "achieved_TFLOPs_per_GPU":
        return setup.config, result.hardware_tflops_per_gpu
    if metric == "tokens_per_s_per_GPU":
        return setup.config, result.tokens_per_s / setup.cluster.num_devices
    raise ValueError(f"unknown metric {metric}")


def validate_training(sources: tuple[str, ...] | None = None, *,
                      profiles: Mapping[str, ProfileArg] | None = None,
                      devices: Collection[str] | None = None) -> pd.DataFrame:
    """One row per published measurement: row (index in the CSV), source, model, device,
    config, metric, published, predicted, error_pct (signed, (predicted - published) /
    published), notes.

    `profiles` maps a device name to its efficiency source (DeviceProfile, path,
    CATALOG_DEFAULTS, None = the bundled profile); a device it does not name uses the catalog
    defaults, so a plain call reproduces the tolerances the validation tests pin. `devices`
    keeps only rows run on those devices.
    """
    data = load_published()
    chosen = {k.lower(): v for k, v in (profiles or {}).items()}
    wanted = None if devices is None else {d.lower() for d in devices}
    rows: list[dict[str, Any]] = []
    for index, row in data.iterrows():
        if sources is not None and row.source not in sources:
            continue
        device = row_device(row)
        if wanted is not None and device not in wanted:
            continue
        config, predicted = predict_row(row, chosen.get(device, CATALOG_DEFAULTS))
        published = float(row.value)
        rows.append({"row": int(index), "source": row.source, "model": row.model,
                     "device": device, "config": config, "metric": row.metric,
                     "published": published, "predicted": predicted,
                     "error_pct": 100.0 * (predicted - published) / published,
                     "notes": row.notes})
    return pd.DataFrame(rows, columns=["row", "source", "model", "device", "config", "metric",
                                       "published", "predicted", "error_pct", "notes"])


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """MAPE and worst row per table, plus the target set (TARGET_TABLES) as 'TARGET'."""
    out = []
    groups = [(src, df[df.source == src]) for src in df.source.unique()]
    target = df[df.source.isin(TARGET_TABLES)]
    if len(target):
        groups.append(("TARGET", target))
    for name, part in groups:
        err = part.error_pct.abs()
        out.append({"table": name, "rows": len(part), "mape_pct": err.mean(),
                    "max_abs_error_pct": err.max()})
    return pd.DataFrame(out, columns=["table", "rows", "mape_pct", "max_abs_error_pct"])
