"""'Before' predictions for the Ascend / Gaudi validation rows (issue 18): what the base commit
(c3326dd) predicts for the closest setup it can express. Uses only APIs the base has, so it
runs there: `cd /work/wt/base && PYTHONPATH=/work/wt/base python
/work/wt/npu/benchmarks/accel_before_npu.py /work/wt/npu` (argument: the tree holding the
CSVs). Writes benchmarks/data/accel_before_{ascend,gaudi}.csv under that tree.

Closest base setups: Ascend rows on the base `ascend-910b` (one 320 TF entry, hccs as a flat
196 GB/s link, no mesh), mc2 rows as `overlap_tp_comm: true` (the base's ideal overlap).
Gaudi rows: not expressible (the base catalog has no Gaudi device or its RoCE mesh).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pandas as pd

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.parallel import (
    AttentionImpl,
    KernelStack,
    ParallelConfig,
    PipelineSchedule,
    Recompute,
    TrainingConfig,
)
from simulator.training.simulate import simulate_iteration

COLUMNS = ["source", "row", "device", "metric", "published", "before_pred", "before_setup"]


def _rows(tree: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(tree / "simulator" / "data" / f"training_published_{name}.csv",
                       comment="#")


def _ascend(row: pd.Series) -> tuple[float, str]:
    notes = str(row.notes)
    tp, pp, dp = int(row.tp), int(row.pp), int(row.dp)
    found = re.search(r"VP (\d+)", notes)
    vpp = int(found.group(1)) if found else 1
    plan = ParallelConfig(
        tp=tp, pp=pp, dp=dp, vpp=vpp, zero=1 if "distributed optimizer" in notes else 0,
        schedule=PipelineSchedule.INTERLEAVED if vpp > 1 else PipelineSchedule.ONE_F_ONE_B,
        sequence_parallel=tp > 1, recompute=Recompute.NONE,
        overlap_grad_reduce="overlap grad reduce" in notes, overlap_tp_comm=tp > 1)
    training = TrainingConfig(seq_len=int(row.seq_len), global_batch=int(row.global_batch),
                              micro_batch=int(row.microbatch), dtype=DType.BF16,
                              attention_impl=AttentionImpl.AUTO, kernels=KernelStack.FUSED)
    n = int(row.n_devices)
    cluster = build_cluster("ascend-910b", n, devices_per_node=8, intra_node="hccs",
                            inter_node="roce-200g")
    result = simulate_iteration(load_model(str(row.model)), cluster, training, plan,
                                flash_attention=True)
    setup = (f"base ascend-910b (320 TF, flat hccs) x{n}, tp{tp} pp{pp} dp{dp} vpp{vpp}, "
             f"overlap_tp_comm={tp > 1} (ideal) for mc2")
    return result.tokens_per_s / n, setup


def main(tree: Path) -> None:
    out = tree / "benchmarks" / "data"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "accel_before_ascend.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for _, row in _rows(tree, "ascend").iterrows():
            pred, setup = _ascend(row)
            w.writerow([row.source, str(row.notes).split(";")[0], "ascend-910b", row.metric,
                        row.value, f"{pred:.1f}", setup])
    with open(out / "accel_before_gaudi.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for _, row in _rows(tree, "gaudi").iterrows():
            w.writerow([row.source, str(row.notes).split(";")[0], "gaudi2", row.metric,
                        row.value, "", "not expressible: the base catalog has no Gaudi device "
                        "(nor its 21-port RoCE mesh); no entry at c3326dd to run on"])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
