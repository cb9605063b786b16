"""End-to-end serving rows of the validation: a whole engine run simulated, not one step.

Rows whose `num_requests` is set are published serving-benchmark runs (offline throughput at
saturation: every request at t=0; online: Poisson arrivals at `rate_rps`; fixed concurrency:
metrics ending `_at_conc`, `batch` = the client count, replayed by that many closed-loop
clients with zero think time, as genai-perf/AIPerf --concurrency and vLLM/SGLang
bench_serving --max-concurrency drive a server). Each is replayed on one replica by
`simulate_serving`, with the row's engine preset (`serving.engine`) and again with the
kernel-only model, so the per-engine table shows what the preset's per-step costs buy.

Fixed-concurrency rows: every client starts at t=0, so the first wave's prefills collide
(a burst a long benchmark amortises); the first `batch` requests are left out of the
statistics and `num_requests` counts the measured ones (then the stop: batch + num_requests
requests in all). TTFT and ITL are the means over the measured requests (ITL = TPOT: decode
time / (output - 1), AIPerf's definition); throughput is output tokens per second by Little's
law, clients x output_len / mean end-to-end latency (zero think time, steady state).

Workload approximation (stated, not hidden): the published runs sample ShareGPT conversations;
we replay fixed lengths at the dataset's means (input_len / output_len of the row, sources in
the CSV notes). Length variance changes batch composition, so short-tail effects are not
captured. No constant is fitted to these rows: they validate only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.errors import ConfigError
from hwmodels.profile import DeviceProfile
from simulator.serving.metrics import latency_columns
from simulator.serving.plan import ServingPlan
from simulator.serving.scenario import parse_serving_section
from simulator.serving.simulate import simulate_serving
from traces.closed_loop import ClientsSpec, parse_clients

KERNEL_ONLY = "kernel-only"
# Online rows: arrivals drawn from this seed (the published runs' own seeds are not ours).
ARRIVAL_SEED = 0
CONC_METRICS = ("ttft_ms_at_conc", "itl_ms_at_conc", "out_tokens_per_s_at_conc")
E2E_METRICS = ("out_tokens_per_s", "median_tpot_ms", "median_ttft_ms") + CONC_METRICS


def _workload(row: pd.Series) -> pd.DataFrame:
    """Fixed-length requests: all at t=0 (offline) or Poisson at rate_rps (online)."""
    n = int(row.num_requests)
    if pd.isna(row.rate_rps):
        arrivals = np.zeros(n)
    else:
        gaps = np.random.default_rng(ARRIVAL_SEED).exponential(1.0 / float(row.rate_rps), n)
        arrivals = np.cumsum(gaps) - gaps[0]
    return pd.DataFrame({"arrival_time_s": arrivals,
                         "input_tokens": np.full(n, int(row.input_len), dtype=np.int64),
                         "output_tokens": np.full(n, int(row.output_len), dtype=np.int64)})


def _clients(row: pd.Series) -> ClientsSpec:
    """`batch` closed-loop clients, zero think time, fixed lengths; the first wave is extra."""
    conc = int(row.batch)
    return parse_clients({"count": conc, "input": int(row.input_len),
                          "output": int(row.output_len),
                          "num_requests": conc + int(row.num_requests)})


# `serving` column keys that state the published run's numerics (not an engine flag): applied
# to the kernel-only prediction too, and the only keys whose value is a name, not an integer.
NUMERIC_KEYS = ("kv_dtype",)


def _serving_keys(row: pd.Series) -> dict[str, int | str]:
    """The row's `serving` column ('key=int;key=int'): engine flags the published run used
    (e.g. vLLM --num-scheduler-steps 10), applied with the engine preset only; NUMERIC_KEYS
    (kv_dtype=int8) take a dtype name."""
    raw = row.get("serving")
    if raw is None or (isinstance(raw, float) and pd.isna(raw)) or not str(raw).strip():
        return {}
    out: dict[str, int | str] = {}
    for item in str(raw).split(";"):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if sep and key in NUMERIC_KEYS and value:
            out[key] = value
            continue
        if not sep or not value.isdigit():
            raise ConfigError(f"expected key=integer, got {item!r}", key="serving",
                              file="serving_published.csv")
        out[key] = int(value)
    return out


def simulate_row(row: pd.Series, profile: DeviceProfile, engine: str | None) -> float:
    """Prediction of one end-to-end row in its metric's unit; `engine` None = kernel-only."""
    if row.metric not in E2E_METRICS:
        raise ConfigError(f"unknown end-to-end metric '{row.metric}'", key="metric",
                          allowed=E2E_METRICS)
    device = load_device(row.device)
    section: dict[str, Any] = {"replicas": 1, "tp": int(row.tp), "dtype": str(row.precision)}
    keys = _serving_keys(row)
    section.update({k: keys.pop(k) for k in NUMERIC_KEYS if k in keys})  # e.g. int8 KV
    if engine is not None:
        section["engine"] = engine
        section.update(keys)  # the published run's own engine flags
    cfg, groups = parse_serving_section(section, device=device, num_devices=int(row.tp),
                                        profile=profile)
    plan = ServingPlan(model=load_model(row.model), device=device, serving=cfg, groups=groups,
                       slo_ttft_s=None, slo_tpot_s=None, profile=groups[0].profile)
    conc = row.metric in CONC_METRICS
    res = simulate_serving(plan, _clients(row) if conc else _workload(row), seed=ARRIVAL_SEED)
    rec = res.records
    if conc:
        return _conc_metric(row, rec)
    if row.metric == "out_tokens_per_s":
        span = float(rec["finish_s"].max() - rec["arrival_s"].min())
        return float(rec["output_tokens"].sum()) / span
    lat = latency_columns(rec)
    col = "tpot_s" if row.metric == "median_tpot_ms" else "ttft_s"
    return float(lat[col].median()) * 1e3


def _conc_metric(row: pd.Series, rec: pd.DataFrame) -> float:
    """A fixed-concurrency metric over the requests after the first wave (see the docstring)."""
    conc = int(row.batch)
    measured = rec.sort_values("arrival_s", kind="stable").iloc[conc:]
    lat = latency_columns(measured)
    if len(lat) < len(measured):
        raise ConfigError(f"{len(measured) - len(lat)} requests of a {conc}-client run did not "
                          "complete", key="batch", file="serving_published.csv")
    if row.metric == "ttft_ms_at_conc":
        return float(lat["ttft_s"].mean()) * 1e3
    if row.metric == "itl_ms_at_conc":
        return float(lat["tpot_s"].mean()) * 1e3
    return conc * int(row.output_len) / float(lat["e2e_s"].mean())
