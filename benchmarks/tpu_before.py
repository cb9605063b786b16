"""'Before' figures for the TPU validation rows: what the base commit (c3326dd, before issue 18)
predicts for the closest setup it can express. Run from a base checkout:

    cd /work/wt/base && PYTHONPATH=/work/wt/base python /work/wt/tpu/benchmarks/tpu_before.py \
        /work/wt/tpu/simulator/data/training_published_tpu.csv > .../accel_before_tpu.csv

Closest setup at the base: tpu-v5e as one flat 256-chip node (switch at the catalog's 180 GB/s,
no torus); several slices as nodes of 256 over the device's default NIC (eth-100g, there being
no DCN link) with ZeRO-3 over every chip (no hybrid sharding), the TP collectives ideally
overlapped (overlap_tp_comm, the only TP-overlap knob), the same model, batch and recompute.
tpu-v5p and tpu-v6e are not in the base catalog: those rows are "not expressible". Uses only names the base
has (no import of this branch's modules).
"""

from __future__ import annotations

import csv
import math
import re
import sys

from hwmodels.cluster import build_cluster
from hwmodels.dtypes import DType
from hwmodels.parallel import FSDPImpl, KernelStack, ParallelConfig, Recompute, TrainingConfig
from hwmodels.specs import ModelSpec
from simulator.training.simulate import simulate_iteration

REMAT = {"full": Recompute.FULL, "minimal": Recompute.SELECTIVE}
DEVICES = {"MAXTEXT-V5E": "tpu-v5e", "MAXTEXT-V5P": "tpu-v5p", "MAXTEXT-V6E": "tpu-v6e"}


def main(path: str) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["source", "row", "device", "metric", "published", "before_pred", "before_setup"])
    with open(path) as fh:
        rows = [r for r in csv.DictReader(line for line in fh if not line.startswith("#"))]
    for r in rows:
        notes = r["notes"]
        rid = re.search(r"id=(\S+?);", notes).group(1)
        device = DEVICES[r["source"]]
        if device != "tpu-v5e":
            out.writerow([r["source"], rid, device, r["metric"], r["value"], "",
                          f"not expressible: no {device} in the base catalog"])
            continue
        n, tp, dp = int(r["n_devices"]), int(r["tp"]), int(r["dp"])
        seq = int(r["seq_len"])
        model = ModelSpec(name=r["model"], model_type="maxtext", num_layers=int(r["layers"]),
                          hidden_size=int(r["hidden"]), num_heads=int(r["heads"]),
                          num_kv_heads=int(r["heads"]), head_dim=256,
                          ffn_hidden_size=int(r["ffn"]), vocab_size=int(r["vocab"]),
                          gated_mlp=False, tie_embeddings=True, max_seq_len=seq)
        remat = re.search(r"remat_policy=(\w+)", notes).group(1)
        plan = ParallelConfig(tp=tp, dp=dp, zero=3, fsdp_impl=FSDPImpl.IDEAL,
                              sequence_parallel=tp > 1, overlap_tp_comm=tp > 1,
                              recompute=REMAT[remat])
        training = TrainingConfig(seq_len=seq, global_batch=int(r["global_batch"]),
                                  micro_batch=int(r["microbatch"]), dtype=DType.BF16,
                                  kernels=KernelStack.FUSED)
        cluster = build_cluster(device, n, devices_per_node=256)
        res = simulate_iteration(model, cluster, training, plan, flash_attention=True)
        pred = res.tokens_per_s / n
        assert math.isfinite(pred)
        setup = (f"flat {min(n, 256)}-chip node(s) x{n // 256} over {cluster.inter_node.name}, "
                 f"zero3 dp{dp} over all chips" + (f", tp{tp} ideal overlap" if tp > 1 else ""))
        out.writerow([r["source"], rid, device, r["metric"], r["value"], f"{pred:.2f}", setup])


if __name__ == "__main__":
    main(sys.argv[1])
