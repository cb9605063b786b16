"""Serving-side validation: published TensorRT-LLM step tables and end-to-end engine runs.

Two kinds of rows (simulator/data/serving_published.csv). Step rows (TRTLLM-*) are described
below. End-to-end rows (SGL-BENCH060: SGLang v0.3.0 vs vLLM v0.6.0, Sep 2024, offline
throughput at saturation and online median TPOT/TTFT at fixed request rates) set
`num_requests` and are simulated whole (simulator.serving.validation_e2e), as are the
fixed-concurrency rows (NIM-LLAMA33-CONC: NVIDIA NIM 1.8.0 benchmark tables, TTFT / ITL /
output tokens/s at N concurrent clients; `batch` = N, metrics ending `_at_conc`). Every row names its
engine preset (`engine`); each is predicted with that preset and again kernel-only, and
`summarize_engines` reports the MAPE of both per engine.

Source: NVIDIA/TensorRT-LLM docs/source/performance.md ("Performance of TensorRT-LLM",
v0.5/v0.6.1, late 2023): peak offline throughput at a fixed batch (output tokens/s per GPU;
gptSessionBenchmark = static batching: the whole batch is prefilled, then decodes OSL steps)
and batch-1 first-token latency. H100 and L40S rows use FP8 weights and FP8 KV cache, A100
rows FP16. Rows are in simulator/data/serving_published.csv.

Each row is predicted with the same step model the serving simulator uses
(hwmodels.step.StepCostModel), so this checks the unit every serving prediction is built from.
The static-batch timeline is computed in closed form: one prefill step over batch x ISL tokens,
then OSL decode steps with contexts growing from ISL to ISL + OSL - 1 (numerically exact sum
over steps, no SimPy needed for a fixed batch).

Where we are bad (measured, see tests/simulator/test_serving_validation.py):
- Long-output throughput of the GQA models (Llama-2-70B, Falcon-180B; OSL 2048) is
  over-predicted by 59-94%, while the same rows of the MHA models (GPT-J, Llama-2-7B) are
  within 10%. Our decode attention reads each KV head once (a GQA-aware kernel, as in vLLM,
  FlashInfer and TensorRT-LLM >= 0.7's XQA); TensorRT-LLM 0.6.1's masked-MHA kernel evidently
  did not. We do not model that software generation; the rows are reported, not tuned.
- Batch-1 first-token latency of 128-token prompts is under-predicted by 20-38% (a few ms of
  fixed per-request runtime overhead that our 0.5 ms step overhead does not carry).

Constants and where they come from: the step overhead (hwmodels.step.STEP_OVERHEAD_S, 0.5 ms)
is an assumption its comment says was cross-checked against an end-to-end latency test, i.e.
not a component measurement; the only engine-level measurement bundled, Vidur's vLLM-2024 CPU
overheads (../shared/calibration-data/vidur/legacy-2024-05/a100/cpu_overheads.csv, CodeLlama-34B
TP2: schedule + sampler + prepare inputs + process outputs = 1.2 ms at batch 8 to 5.8 ms at
batch 128, medians), is a Python engine, not TensorRT-LLM's C++ runtime. The device
efficiencies are the catalog's unless `profiles` names a profile for the row's device.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from hwmodels.catalog import load_device, load_model
from hwmodels.dtypes import DType
from hwmodels.layers import ProfileArg
from hwmodels.ops import resolve_profile
from hwmodels.profile import CATALOG_DEFAULTS, DeviceProfile
from hwmodels.step import StepCostModel
from simulator.serving.validation_e2e import KERNEL_ONLY, simulate_row


def load_published() -> pd.DataFrame:
    """The bundled published serving measurements: serving_published.csv first, then every
    serving_published_<accelerator>.csv (issue 18; comment lines cite their sources)."""
    folder = resources.files("simulator") / "data"
    with resources.as_file(folder) as d:
        files = sorted(Path(d).glob("serving_published*.csv"),
                       key=lambda f: (f.name != "serving_published.csv", f.name))
        frames = [_read_rows(f) for f in files]
    return pd.concat(frames, ignore_index=True)


def _read_rows(path: Path) -> pd.DataFrame:
    """A CSV whose lines starting with '#' are comments ('#' inside a field is kept)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True)
             if not ln.startswith("#")]
    return pd.read_csv(io.StringIO("".join(lines)))


class _CostModels:
    """One StepCostModel per (model, device, tp, dtype, profile) for one validation pass:
    rows of the same setup share its step memo (no process-wide state)."""

    def __init__(self) -> None:
        self._models: dict[tuple[Any, ...], StepCostModel] = {}

    def get(self, row: pd.Series, profile: DeviceProfile,
            engine: str | None = None) -> StepCostModel:
        dtype = DType(row["precision"])
        key = (str(row.model), str(row.device), int(row.tp), dtype, profile, engine)
        cm = self._models.get(key)
        if cm is None:
            kv = DType.FP8 if dtype is DType.FP8 else DType.FP16
            extra: dict[str, Any] = {} if engine is None else {"engine": engine}
            cm = self._models[key] = StepCostModel(
                load_model(row.model), load_device(row.device), tp=int(row.tp), dtype=dtype,
                kv_dtype=kv, profile=profile, **extra)
        return cm


def _row_engine(row: pd.Series, preset: bool) -> str | None:
    """The engine preset a prediction uses: the row's (preset=True) or none (kernel-only)."""
    name = row.get("engine")
    if not preset or not isinstance(name, str) or name == KERNEL_ONLY:
        return None
    return name


def predict_row(row: pd.Series, profile: ProfileArg = CATALOG_DEFAULTS,
                cost_models: _CostModels | None = None, *, preset: bool = True) -> float:
    """Prediction of one row in the row's metric and unit, with the efficiencies of `profile`
    (a profile of the row's device, a path, CATALOG_DEFAULTS, or None = bundled) and the row's
    engine preset (preset=False: the kernel-only model)."""
    prof = resolve_profile(load_device(row.device), profile)
    engine = _row_engine(row, preset)
    if not pd.isna(row.get("num_requests")):
        return simulate_row(row, prof, engine)
    cm = (cost_models or _CostModels()).get(row, prof, engine)
    b, isl, osl = int(row.batch), int(row.input_len), int(row.output_len)
    prefill_s = cm.time_s(b * isl, b * isl * (isl / 2.0), 0, 0, prefill_seqs=b)
    if row.metric == "ttft_ms":
        return prefill_s * 1e3
    decode_s = sum(cm.time_s(0, 0.0, b, b * (isl + i)) for i in range(1, osl))
    total_s = prefill_s + decode_s
    return b * osl / total_s / int(row.tp)


def summarize(df: pd.DataFrame) -> list[dict[str, Any]]:
    """MAPE and worst row per table, plus all rows as 'ALL'."""
    summary = []
    if not len(df):
        return summary
    for name, part in list(df.groupby("source", sort=False)) + [("ALL", df)]:
        err = part.error_pct.abs()
        summary.append({"table": name, "rows": len(part), "mape_pct": float(err.mean()),
                        "max_abs_error_pct": float(err.max())})
    return summary


def summarize_engines(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per engine preset: rows, MAPE with the preset and MAPE of the kernel-only model."""
    out = []
    if not len(df):
        return out
    for name, part in list(df.groupby("engine", sort=False)) + [("ALL", df)]:
        out.append({"engine": name, "rows": len(part),
                    "tables": sorted(set(part.source)),
                    "mape_preset_pct": float(part.error_pct.abs().mean()),
                    "mape_kernel_only_pct": float(part.error_kernel_only_pct.abs().mean())})
    return out


def _config(row: pd.Series) -> str:
    """Short description of a row's setup for the tables."""
    if pd.isna(row.get("num_requests")):
        return f"{row['precision']} tp{row.tp} b{int(row.batch)} {row.input_len}/{row.output_len}"
    if str(row.metric).endswith("_at_conc"):
        load = f"c{int(row.batch)} clients"
    else:
        load = "offline" if pd.isna(row.rate_rps) else f"{row.rate_rps:g} rps"
    return (f"{row['precision']} tp{row.tp} n{int(row.num_requests)} {load} "
            f"{row.input_len}/{row.output_len}")


def validate_serving(*, profiles: Mapping[str, ProfileArg] | None = None,
                     devices: Collection[str] | None = None) -> dict[str, Any]:
    """Predicted vs published for every row, and MAPE per table (the `validate serving` JSON).

    `profiles` maps a device name to its efficiency source (DeviceProfile, path,
    CATALOG_DEFAULTS, None = the bundled profile); a device it does not name uses the catalog
    defaults. `devices` keeps only rows run on those devices.
    """
    data = load_published()
    chosen = {k.lower(): v for k, v in (profiles or {}).items()}
    wanted = None if devices is None else {d.lower() for d in devices}
    cost_models = _CostModels()
    rows = []
    for index, row in data.iterrows():
        device = load_device(row.device).name
        if wanted is not None and device not in wanted:
            continue
        prof = chosen.get(device, CATALOG_DEFAULTS)
        predicted = predict_row(row, prof, cost_models)
        kernel_only = predict_row(row, prof, cost_models, preset=False) \
            if _row_engine(row, True) is not None else predicted
        rows.append({"row": int(index), "source": row.source, "model": row.model,
                     "device": row.device, "engine": row.engine, "config": _config(row),
                     "metric": row.metric, "published": float(row.value),
                     "predicted": predicted,
                     "error_pct": 100.0 * (predicted - row.value) / row.value,
                     "predicted_kernel_only": kernel_only,
                     "error_kernel_only_pct": 100.0 * (kernel_only - row.value) / row.value})
    df = pd.DataFrame(rows)
    return {"rows": df.to_dict(orient="records"), "summary": summarize(df),
            "engines": summarize_engines(df)}
