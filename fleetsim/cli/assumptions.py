"""The `"assumptions"` key of every `plan ...` result: what its answer depends on.

Each planner names the fabric, the serving/training engine and the efficiency profile it used
(plus what else its answer rests on); human output prints them on one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fleetsim.cli.common import console


def device_fabrics(devices: Sequence[str]) -> str:
    """'h100-sxm: nvlink4 450 GB/s' per device: the scale-up link a TP group runs over."""
    from hwmodels.catalog import load_device

    specs = [load_device(d) for d in devices]
    return "; ".join(f"{s.name}: {s.scale_up_link} {s.scale_up_bw_Bps / 1e9:.0f} GB/s/device"
                     for s in specs)


def profile_names(out: Mapping[str, Any]) -> str:
    """The efficiency profile per device, from a result's "profile" key."""
    prof = out.get("profile") or {}
    return "; ".join(f"{d}: {p.get('name', '?')}" for d, p in sorted(prof.items())) or "none"


def serving_engine() -> str:
    """The serving engine profile planners simulate (they set no serving.engine)."""
    from hwmodels.engine_profiles import DEFAULT_ENGINE

    return f"{DEFAULT_ENGINE} (serving.engine unset: step costs without engine CPU overheads)"


def add_assumptions(out: dict[str, Any], *, fabric: str, engine: str,
                    **more: Any) -> dict[str, Any]:
    """`out` with "assumptions": {fabric, engine, profile, **more} (after with_profiles)."""
    out["assumptions"] = {"fabric": fabric, "engine": engine, "profile": profile_names(out),
                          **more}
    return out


def print_assumptions(out: Mapping[str, Any]) -> None:
    """The assumptions on one line: 'assumptions: fabric=...; engine=...; profile=...'."""
    items = out.get("assumptions") or {}
    console.print("assumptions: " + " | ".join(f"{k}={v}" for k, v in items.items()),
                  highlight=False, soft_wrap=True, markup=False)
