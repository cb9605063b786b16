"""ServingResult: per-request records -> the contract summary (latency percentiles, SLO
attainment, goodput, throughput, GPU-hours, cost, energy), computed from records only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.specs import DeviceSpec

SUMMARY_KEYS = ("requests", "completed", "dropped", "ttft_s", "tpot_s", "e2e_s",
                "slo_attainment", "goodput_rps", "throughput_tokens_per_s", "gpu_hours",
                "cost_usd", "energy_kwh")


def _pcts(values: np.ndarray, ps: tuple[int, ...]) -> dict[str, float | None]:
    if len(values) == 0:
        return {f"p{p}": None for p in ps}
    return {f"p{p}": float(np.percentile(values, p)) for p in ps}


def latency_columns(records: pd.DataFrame) -> pd.DataFrame:
    """ttft_s, tpot_s (NaN for single-token outputs) and e2e_s of completed requests."""
    done = records[records["status"] == "completed"]
    ttft = done["first_token_s"] - done["arrival_s"]
    decode_tokens = done["output_tokens"] - 1
    tpot = (done["finish_s"] - done["first_token_s"]) / decode_tokens.where(decode_tokens > 0)
    return pd.DataFrame({"ttft_s": ttft, "tpot_s": tpot, "e2e_s": done["finish_s"]
                         - done["arrival_s"]})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingResult:
    """Records (one row per request), time series, per-lane accounting and run facts."""

    records: pd.DataFrame
    timeseries: pd.DataFrame
    lanes: pd.DataFrame
    duration_s: float
    device: DeviceSpec
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    prefix_hit_rate: float | None = None
    busy_power_w: float = 0.0  # per device while stepping (hwmodels.power at mean utilization)
    notes: dict[str, Any] = field(default_factory=dict)

    def slo_met(self) -> pd.Series:
        """Per request: completed and within both SLOs (dropped/unfinished count as missed)."""
        lat = latency_columns(self.records)
        ok = pd.Series(True, index=lat.index)
        if self.slo_ttft_s is not None:
            ok &= lat["ttft_s"] <= self.slo_ttft_s
        if self.slo_tpot_s is not None:
            ok &= lat["tpot_s"].fillna(0.0) <= self.slo_tpot_s
        return ok.reindex(self.records.index, fill_value=False)

    def energy_kwh(self) -> float:
        """Devices at busy_power_w while their replica steps, idle_w otherwise."""
        lanes = self.lanes
        if lanes.empty or self.duration_s <= 0:
            return 0.0
        joules = 0.0
        for _, rep in lanes.groupby("replica"):
            devices = int(rep["devices"].iloc[0])
            busy = min(self.duration_s, float(rep["busy_s"].sum()) / len(rep))
            joules += devices * (busy * self.busy_power_w
                                 + (self.duration_s - busy) * self.device.idle_w)
        return joules / 3.6e6

    def summary(self) -> dict[str, Any]:
        """The `fleetsim simulate serve` contract keys, from the records."""
        rec = self.records
        lat = latency_columns(rec)
        completed = int((rec["status"] == "completed").sum())
        duration = self.duration_s
        devices = int(self.lanes.groupby("replica")["devices"].first().sum()) \
            if not self.lanes.empty else 0
        gpu_hours = devices * duration / 3600.0
        met = int(self.slo_met().sum())
        out_tokens = float(rec.loc[rec["status"] == "completed", "output_tokens"].sum())
        return {
            "requests": len(rec),
            "completed": completed,
            "dropped": int((rec["status"] == "dropped").sum()),
            "ttft_s": _pcts(lat["ttft_s"].to_numpy(), (50, 90, 99)),
            "tpot_s": _pcts(lat["tpot_s"].dropna().to_numpy(), (50, 90, 99)),
            "e2e_s": _pcts(lat["e2e_s"].to_numpy(), (50, 99)),
            "slo_attainment": met / len(rec) if len(rec) else 0.0,
            "goodput_rps": met / duration if duration > 0 else 0.0,
            "throughput_tokens_per_s": out_tokens / duration if duration > 0 else 0.0,
            "gpu_hours": gpu_hours,
            "cost_usd": gpu_hours * self.device.price_usd_per_hour,
            "energy_kwh": self.energy_kwh(),
        }
