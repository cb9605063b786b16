"""ServingResult: per-request records -> the contract summary (latency percentiles, SLO
attainment, goodput, throughput, GPU-hours, cost, energy), computed from records only; the
cluster extras (retries, drops by reason, energy per request/token, cost per million tokens,
per-group cost, power) come from the records and the replica / power frames."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwmodels.specs import DeviceSpec
from simulator.serving.request import Status

SUMMARY_KEYS = ("requests", "completed", "dropped", "ttft_s", "tpot_s", "e2e_s",
                "slo_attainment", "goodput_rps", "throughput_tokens_per_s", "gpu_hours",
                "cost_usd", "energy_kwh")
# Cluster-scale keys added by issue 7 (never remove keys; add new ones here).
CLUSTER_SUMMARY_KEYS = ("retries", "dropped_by_reason", "prefix_hit_rate", "kv_transfer_s",
                        "migrations", "replica_seconds", "energy_per_request_j",
                        "energy_per_token_j", "cost_per_million_tokens_usd", "mean_power_w",
                        "peak_row_power_w", "groups")


def _pcts(values: np.ndarray, ps: tuple[int, ...]) -> dict[str, float | None]:
    if len(values) == 0:
        return {f"p{p}": None for p in ps}
    return {f"p{p}": float(np.percentile(values, p)) for p in ps}


def latency_columns(records: pd.DataFrame) -> pd.DataFrame:
    """ttft_s, tpot_s (NaN for single-token outputs) and e2e_s of completed requests."""
    done = records[records["status"] == Status.COMPLETED]
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
    replicas: pd.DataFrame | None = None  # billed interval, group, price per replica
    power: pd.DataFrame | None = None  # per replica per bin (with a power: section)
    events: pd.DataFrame | None = None  # crashes, repairs, scaling, caps, migrations
    energy_j: float | None = None  # computed by simulate_serving (all groups)
    # original time of the trace's first arrival, subtracted by traces.read_trace so billing
    # spans the workload; in the summary only when nonzero (e.g. a Unix-epoch trace)
    trace_start_offset_s: float = 0.0
    migrations: int = 0
    # share of capped device-time whose step power stayed above the cap (0 when uncapped)
    over_cap_fraction: float = 0.0

    def power_series(self, level: str = "row") -> pd.DataFrame:
        """Power per bin summed per replica | server | row | cluster (W)."""
        if self.power is None:
            raise ValueError("no power series: add a power: section to the scenario")
        if level == "cluster":
            return self.power.groupby("time_s", as_index=False)["power_w"].sum()
        if level not in ("replica", "server", "row"):
            raise ValueError(f"level must be replica, server, row or cluster, got {level!r}")
        return self.power.groupby(["time_s", level], as_index=False)["power_w"].sum()

    def _billing(self) -> tuple[float, float, dict[str, dict[str, float]]]:
        """(device-hours, USD, per-group breakdown) from each replica's billed interval."""
        if self.replicas is None or self.replicas.empty:
            devices = int(self.lanes.groupby("replica")["devices"].first().sum()) \
                if not self.lanes.empty else 0
            hours = devices * self.duration_s / 3600.0
            return hours, hours * self.device.price_usd_per_hour, {}
        rep = self.replicas
        life_h = (rep["end_s"] - rep["start_s"]).clip(lower=0.0) / 3600.0
        dev_h = rep["devices"] * life_h
        usd = dev_h * rep["price_usd_per_hour"]
        groups = {}
        for name, idx in rep.groupby("group").groups.items():
            groups[str(name)] = {"replicas": int(len(idx)),
                                 "devices": int(rep.loc[idx, "devices"].sum()),
                                 "gpu_hours": float(dev_h[idx].sum()),
                                 "cost_usd": float(usd[idx].sum())}
        return float(dev_h.sum()), float(usd.sum()), groups

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
        """Devices at busy_power_w while their replica steps, idle_w otherwise (or the energy
        simulate_serving computed for every group / from the per-step power series)."""
        if self.energy_j is not None:
            return self.energy_j / 3.6e6
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
        completed = int((rec["status"] == Status.COMPLETED).sum())
        duration = self.duration_s
        gpu_hours, cost_usd, groups = self._billing()
        met = int(self.slo_met().sum())
        out_tokens = float(rec.loc[rec["status"] == Status.COMPLETED, "output_tokens"].sum())
        return {
            "requests": len(rec),
            "completed": completed,
            "dropped": int((rec["status"] == Status.DROPPED).sum()),
            "ttft_s": _pcts(lat["ttft_s"].to_numpy(), (50, 90, 99)),
            "tpot_s": _pcts(lat["tpot_s"].dropna().to_numpy(), (50, 90, 99)),
            "e2e_s": _pcts(lat["e2e_s"].to_numpy(), (50, 99)),
            "slo_attainment": met / len(rec) if len(rec) else 0.0,
            "goodput_rps": met / duration if duration > 0 else 0.0,
            "throughput_tokens_per_s": out_tokens / duration if duration > 0 else 0.0,
            "gpu_hours": gpu_hours,
            "cost_usd": cost_usd,
            "energy_kwh": self.energy_kwh(),
            **self._cluster_summary(rec, completed, out_tokens, cost_usd, groups),
        }

    def _cluster_summary(self, rec: pd.DataFrame, completed: int, out_tokens: float,
                         cost_usd: float, groups: dict[str, Any]) -> dict[str, Any]:
        joules = self.energy_kwh() * 3.6e6
        drops = rec.loc[rec["status"] == Status.DROPPED, "drop_reason"].value_counts()
        all_tokens = out_tokens + float(rec.loc[rec["status"] == Status.COMPLETED,
                                                "input_tokens"].sum())
        transfer = rec["kv_transfer_s"].to_numpy() if "kv_transfer_s" in rec else np.zeros(0)
        transfer = transfer[transfer > 0]
        peak_row = mean_w = None
        if self.power is not None and len(self.power):
            rows = self.power_series("row")
            peak_row = float(rows["power_w"].max())
            mean_w = float(self.power_series("cluster")["power_w"].mean())
        elif self.duration_s > 0:
            mean_w = joules / self.duration_s
        replica_s = (float((self.replicas["end_s"] - self.replicas["start_s"]).sum())
                     if self.replicas is not None else 0.0)
        return {
            "retries": int(rec["retries"].sum()) if "retries" in rec else 0,
            "dropped_by_reason": {str(k): int(v) for k, v in drops.items()},
            "prefix_hit_rate": self.prefix_hit_rate,
            "kv_transfer_s": _pcts(transfer, (50, 99)),
            "migrations": self.migrations,
            "replica_seconds": replica_s,
            "energy_per_request_j": joules / completed if completed else None,
            "energy_per_token_j": joules / all_tokens if all_tokens else None,
            "cost_per_million_tokens_usd": cost_usd / out_tokens * 1e6 if out_tokens else None,
            "mean_power_w": mean_w,
            "peak_row_power_w": peak_row,
            "groups": groups,
            **({"trace_start_offset_s": self.trace_start_offset_s}
               if self.trace_start_offset_s else {}),
            **({"over_cap_fraction": self.over_cap_fraction} if self.over_cap_fraction else {}),
            **({"closed_loop": {**self.notes["closed_loop"],
                                "request_rate_rps": len(rec) / self.duration_s
                                if self.duration_s > 0 else 0.0,
                                "mean_concurrency": self.mean_concurrency()}}
               if "closed_loop" in self.notes else {}),
        }

    def mean_concurrency(self) -> float:
        """Requests in the system (arrived, not ended) averaged over the run (Little's law:
        sum of time in system / duration); dropped requests count until their arrival only."""
        rec, d = self.records, self.duration_s
        if d <= 0 or rec.empty:
            return 0.0
        end = rec["finish_s"].fillna(rec["arrival_s"]).to_numpy(dtype=float)
        end = np.where(rec["status"].to_numpy() == Status.RUNNING.value, d, end)
        return float(np.clip(np.minimum(end, d) - rec["arrival_s"].to_numpy(), 0, None).sum() / d)
