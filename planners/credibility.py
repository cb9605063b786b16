"""Is a predicted MFU one anybody has achieved? The best published MFU per device class.

The ceiling comes from the bundled published training rows (simulator/data/
training_published*.csv, every file of that name, so rows added there count). A row's MFU is,
in this order:
- "notes": the MFU the source itself publishes ("MFU 56.3%" in the row's notes);
- "tokens x 6N": tokens/s per GPU (or global_batch x seq_len / iteration_time_s per GPU) x
  6 x params / the device's dense peak (model FLOPs without attention: a lower bound of the
  source's own MFU, so the ceiling stays conservative);
- "TFLOP/s / peak": the published TFLOP/s per GPU / peak; for SC'21 (Narayanan et al., eq. 3:
  96*B*s*l*h^2*(...), four passes because every run recomputes activations) x 3/4, which turns
  hardware FLOPs back into model FLOPs (the logits term, not recomputed, is ~1% of it).
Rows timing one layer (layer_fwd_bwd_time_ms) say nothing about end-to-end MFU and are skipped.
A row whose notes say FP8 is measured against the device's FP8 peak; an MoE row (MOE-*) has no
"tokens x 6N" MFU (its params_B is the total, not the active parameters).
The device class is the catalog device name up to its first '-' (a100-40gb and a100-80gb are
both "a100"; h100-sxm and h100-pcie both "h100"; a TPU keeps its generation, "tpu-v5e"); a
row's device is the first word of its hardware column looked up in the catalog (else its first
two words joined by '-': "TPU v5e" -> tpu-v5e), its peak that device's dense bf16/fp16 peak.
Notes give an MFU as "MFU 56.3%" or "61.10% MFU".
A device class's best MFU is often a small run (llm-foundry's A100 7B on 8 GPUs: 64.2%), so a
plan is also held against the best published MFU at its scale: rows of the class with at least
1/SCALE_FRACTION of the plan's devices (1,024 A100 -> rows on >= 256: Korthikanti et al.'s 1T on
512, 56.3%); above that, the output says no run at that scale has shown it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hwmodels.catalog import load_device
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.specs import DeviceSpec

DATA_GLOB = "training_published*.csv"
_MFU_NOTE = re.compile(r"\bMFU\s*([0-9]+(?:\.[0-9]+)?)\s*%|([0-9]+(?:\.[0-9]+)?)\s*%\s*MFU\b")
# SC'21 eq. 3 counts forward + backward + recomputed forward (4 passes); model FLOPs are 3.
RECOMPUTE_COUNTED_SOURCES = ("SC21-",)
RECOMPUTE_TO_MODEL_FLOPS = 3.0 / 4.0
_FP8_NOTE = re.compile(r"\bfp8\b", re.IGNORECASE)
MOE_SOURCES = ("MOE-",)  # rows whose params_B counts every expert
# "At the plan's scale": published rows with >= num_devices / SCALE_FRACTION devices.
SCALE_FRACTION = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedMFU:
    """One published run's MFU and how it was obtained (basis: notes | tokens x 6N |
    TFLOP/s / peak)."""

    mfu: float
    basis: str
    source: str
    model: str
    n_devices: int
    hardware: str

    def describe(self) -> str:
        return (f"{self.source} {self.model} on {self.n_devices} x {self.hardware}: "
                f"MFU {self.mfu:.1%} ({self.basis})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credibility:
    """A predicted MFU against the best published one of its device class."""

    device_class: str
    predicted_mfu: float
    ceiling: PublishedMFU | None  # None: no published row for this class
    num_devices: int = 0  # the plan's devices; 0: unknown (no at-scale comparison)
    at_scale: PublishedMFU | None = None  # best row with >= num_devices / SCALE_FRACTION

    @property
    def exceeds(self) -> bool:
        return self.ceiling is not None and self.predicted_mfu > self.ceiling.mfu

    @property
    def min_devices_at_scale(self) -> int:
        return min_devices_at_scale(self.num_devices)

    @property
    def exceeds_at_scale(self) -> bool:
        """Above every published run at the plan's scale (None there counts as above: no
        run of that size is bundled)."""
        if self.num_devices <= 0 or self.ceiling is None:
            return False
        return self.at_scale is None or self.predicted_mfu > self.at_scale.mfu

    def to_dict(self) -> dict[str, Any]:
        c, a = self.ceiling, self.at_scale
        return {"device_class": self.device_class, "predicted_mfu": self.predicted_mfu,
                "best_published_mfu": None if c is None else c.mfu,
                "source": None if c is None else c.describe(), "exceeds": self.exceeds,
                "min_devices_at_scale": self.min_devices_at_scale,
                "best_published_mfu_at_scale": None if a is None else a.mfu,
                "source_at_scale": None if a is None else a.describe(),
                "exceeds_at_scale": self.exceeds_at_scale}

    def warning(self) -> str | None:
        """The line the CLI prints when the prediction is above anything published."""
        c = self.ceiling
        if c is None or not self.exceeds:
            return None
        return (f"WARNING: predicted MFU {self.predicted_mfu:.1%} exceeds the best published "
                f"{self.device_class.upper()} MFU {c.mfu:.1%} ({c.describe()}); treat this "
                "plan's speed as optimistic")

    def scale_note(self) -> str | None:
        """The line the CLI prints when the prediction is within the class's published range
        but above every published run at the plan's scale."""
        if self.exceeds or not self.exceeds_at_scale or self.ceiling is None:
            return None
        a, n = self.at_scale, self.min_devices_at_scale
        at = ("no bundled run has that many devices" if a is None else
              f"the best there is {a.mfu:.1%}, {a.describe()}")
        return (f"NOTE: predicted MFU {self.predicted_mfu:.1%} is within the published "
                f"{self.device_class.upper()} range (best {self.ceiling.mfu:.1%}, "
                f"{self.ceiling.describe()}) but above every published run on >= {n} devices "
                f"({at}): nobody has shown it at this scale")


def min_devices_at_scale(num_devices: int) -> int:
    """The fewest devices a published run needs to count as at a plan's scale (0: no plan
    size known)."""
    return -(-num_devices // SCALE_FRACTION) if num_devices > 0 else 0


def device_class(device: DeviceSpec | str) -> str:
    """'a100-80gb' -> 'a100' (the catalog name up to its first '-'); a TPU keeps its
    generation ('tpu-v5e', 'tpu-v5p': different chips under one prefix)."""
    name = (device.name if isinstance(device, DeviceSpec) else str(device)).lower()
    parts = name.split("-")
    return "-".join(parts[:2]) if parts[0] == "tpu" and len(parts) > 1 else parts[0]


def _data_files() -> list[Path]:
    import simulator

    return sorted((Path(simulator.__file__).resolve().parent / "data").glob(DATA_GLOB))


@functools.lru_cache(maxsize=1)
def load_rows() -> pd.DataFrame:
    """Every bundled published training row (all training_published*.csv files)."""
    frames = [pd.read_csv(f, comment="#") for f in _data_files()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _row_device(hardware: str) -> DeviceSpec | None:
    """The catalog device of a hardware column: its first word ('A100-80GB (Selene)'), else its
    first two words joined by '-' ('TPU v5e (2x v5e-256)' -> tpu-v5e)."""
    words = str(hardware).lower().split()
    for name in (words[:1], words[:2]):
        if not name:
            continue
        try:
            return load_device("-".join(name))
        except (ConfigError, KeyError, ValueError):
            continue
    return None


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out and out > 0 else None


def row_mfu(row: pd.Series) -> PublishedMFU | None:
    """The MFU of one published row (module docstring: bases and order), or None."""
    dev = _row_device(row.get("hardware", ""))
    common = dict(source=str(row.get("source", "")), model=str(row.get("model", "")),
                  n_devices=int(_num(row.get("n_devices")) or 0),
                  hardware=str(row.get("hardware", "")))
    m = _MFU_NOTE.search(str(row.get("notes", "")))
    if m:
        return PublishedMFU(mfu=float(m.group(1) or m.group(2)) / 100.0, basis="notes",
                            **common)
    if dev is None:
        return None
    notes = str(row.get("notes", ""))
    # an FP8 run (its notes say so) is measured against the device's FP8 peak: against the
    # 16-bit one its "MFU" would exceed what any 16-bit plan can reach (NeMo's FP8 405B row
    # read 74% of H100's bf16 peak, Gaudi 2's MLPerf FP8 GPT-3 97%)
    fp8 = _FP8_NOTE.search(notes) is not None and dev.supports(DType.FP8)
    peak = dev.peak(DType.FP8 if fp8 else DType.BF16)
    metric, value = str(row.get("metric", "")), _num(row.get("value"))
    params = _num(row.get("params_B"))
    if value is None:
        return None
    if metric == "achieved_TFLOPs_per_GPU":
        scale = (RECOMPUTE_TO_MODEL_FLOPS
                 if common["source"].startswith(RECOMPUTE_COUNTED_SOURCES) else 1.0)
        basis = "TFLOP/s / peak" + (" x 3/4 (recompute counted)" if scale != 1.0 else "")
        return PublishedMFU(mfu=value * 1e12 * scale / peak, basis=basis, **common)
    if params is None or common["source"].startswith(MOE_SOURCES):
        return None  # params_B of an MoE row is its total, not the active 6N would need
    if metric == "tokens_per_s_per_GPU":
        tokens_per_gpu_s = value
    elif metric == "iteration_time_s":
        batch, seq, n = (_num(row.get(k)) for k in ("global_batch", "seq_len", "n_devices"))
        if batch is None or seq is None or n is None:
            return None
        tokens_per_gpu_s = batch * seq / value / n
    else:
        return None
    return PublishedMFU(mfu=tokens_per_gpu_s * 6 * params * 1e9 / peak, basis="tokens x 6N",
                        **common)


@functools.lru_cache(maxsize=64)
def best_published_mfu(dev_class: str, min_devices: int = 0) -> PublishedMFU | None:
    """The highest MFU among the bundled rows of one device class run on >= min_devices
    devices (None: no such row)."""
    best: PublishedMFU | None = None
    rows = load_rows()
    for _, row in rows.iterrows():
        dev = _row_device(row.get("hardware", ""))
        if dev is None or device_class(dev) != dev_class:
            continue
        if min_devices > 0 and (_num(row.get("n_devices")) or 0) < min_devices:
            continue
        got = row_mfu(row)
        if got is not None and (best is None or got.mfu > best.mfu):
            best = got
    return best


def published_mfus(dev_class: str) -> list[PublishedMFU]:
    """Every bundled row of a device class with its MFU, best first (for reports)."""
    out = []
    for _, row in load_rows().iterrows():
        dev = _row_device(row.get("hardware", ""))
        if dev is not None and device_class(dev) == dev_class:
            got = row_mfu(row)
            if got is not None:
                out.append(got)
    return sorted(out, key=lambda r: -r.mfu)


def assess_mfu(predicted_mfu: float, device: DeviceSpec | str,
               ceiling: PublishedMFU | None = None, *, num_devices: int = 0) -> Credibility:
    """A predicted MFU against its device class's best published MFU (given, or looked up)
    and, for a plan on `num_devices` > 0, against the best at that scale."""
    cls = device_class(device)
    best = ceiling if ceiling is not None else best_published_mfu(cls)
    n = int(num_devices)
    at_scale = best_published_mfu(cls, min_devices_at_scale(n)) if n > 0 else None
    return Credibility(device_class=cls, predicted_mfu=float(predicted_mfu), ceiling=best,
                       num_devices=max(n, 0), at_scale=at_scale)
