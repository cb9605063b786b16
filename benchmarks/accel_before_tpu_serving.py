"""'Before' figures of the TPU v5e serving rows (issue 18): what a fleetsim checkout predicts
for simulator/data/serving_published_tpu.csv with the kernel-only step model (no engine).

Run it against the base commit, whose model has no fixed-shape engine:
    cd /work/wt/base && PYTHONPATH=/work/wt/base python \
        /work/wt/jetstream/benchmarks/accel_before_tpu_serving.py \
        /work/wt/jetstream/simulator/data/serving_published_tpu.csv > before.csv
Closest setup the base can express: one TP-8 replica of the flat tpu-v5e entry, the row's
dtype and KV dtype, max_num_seqs = the row's slots, offline fixed-length requests (the same
workload as the validation), kernel-only engine.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.ops import resolve_profile
from hwmodels.profile import CATALOG_DEFAULTS
from simulator.serving.plan import ServingPlan
from simulator.serving.scenario import parse_serving_section
from simulator.serving.simulate import simulate_serving


def _rows(path: str) -> pd.DataFrame:
    with open(path, encoding="utf-8") as f:
        text = "".join(ln for ln in f if not ln.startswith("#"))
    return pd.read_csv(io.StringIO(text))


def _keys(raw: object) -> dict[str, str]:
    if not isinstance(raw, str):
        return {}
    return dict(item.split("=", 1) for item in raw.split(";"))


def before(row: pd.Series) -> tuple[float, str]:
    """(offline output tokens/s, setup description) of one row, kernel-only."""
    keys = _keys(row.serving)
    device = load_device(row.device)
    section = {"replicas": 1, "tp": int(row.tp), "dtype": str(row.precision),
               "max_num_seqs": int(keys["max_num_seqs"])}
    if "kv_dtype" in keys:
        section["kv_dtype"] = keys["kv_dtype"]
    prof = resolve_profile(device, CATALOG_DEFAULTS)
    cfg, groups = parse_serving_section(section, device=device, num_devices=int(row.tp),
                                        profile=prof)
    plan = ServingPlan(model=load_model(row.model), device=device, serving=cfg, groups=groups,
                       slo_ttft_s=None, slo_tpot_s=None, profile=groups[0].profile)
    n = int(row.num_requests)
    work = pd.DataFrame({"arrival_time_s": np.zeros(n),
                         "input_tokens": np.full(n, int(row.input_len), dtype=np.int64),
                         "output_tokens": np.full(n, int(row.output_len), dtype=np.int64)})
    rec = simulate_serving(plan, work, seed=0).records
    value = float(rec["output_tokens"].sum()) / float(rec["finish_s"].max()
                                                       - rec["arrival_s"].min())
    setup = (f"kernel-only tp{int(row.tp)} {row.precision} kv {keys.get('kv_dtype', 'bf16')} "
             f"max_num_seqs {section['max_num_seqs']} offline n{n} "
             f"{row.input_len}/{row.output_len}; live-context decode attention (no "
             f"preallocated cache, no fixed slots, no prefill buckets: not expressible)")
    return value, setup


def main(path: str) -> None:
    out = []
    for _, row in _rows(path).iterrows():
        value, setup = before(row)
        out.append({"source": row.source, "row": str(row.notes).split(";")[0].split()[-1],
                    "device": row.device, "metric": row.metric, "published": row.value,
                    "before_pred": round(value, 1), "before_setup": setup})
    pd.DataFrame(out).to_csv(sys.stdout, index=False)


if __name__ == "__main__":
    main(sys.argv[1])
