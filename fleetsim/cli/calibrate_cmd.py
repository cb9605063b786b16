"""`fleetsim calibrate`: measure the local device (or import published kernel tables) and write a
fitted profile hwmodels loads."""

from __future__ import annotations

import math
from typing import Any

import typer

from fleetsim.cli.common import (
    check_output,
    console,
    emit_json,
    err_console,
    mkdir_option,
    new_table,
    parse_kv_list,
)
from hwmodels.errors import ConfigError


def calibrate_cmd(
    out: str = typer.Option(..., "--out", help="Profile JSON to write."),
    device: str = typer.Option("cuda", "--device", help="cuda | cuda:1 | cpu | npu | xpu | mps"),
    quick: bool = typer.Option(False, "--quick", help="Fewer, smaller shapes (minutes)."),
    catalog_name: str = typer.Option(None, "--catalog-name",
                                     help="Catalog device this profile calibrates (h100-sxm)."),
    dtypes: str = typer.Option(None, "--dtypes", help="Comma-separated, e.g. bf16,fp8."),
    peak_tflops: list[str] = typer.Option(None, "--peak-tflops",
                                          help="Override peaks, e.g. bf16=989 (repeatable)."),
    mem_bw_gbps: float = typer.Option(None, "--mem-bw-gbps"),
    validate: bool = typer.Option(False, "--validate",
                                  help="Time held-out end-to-end steps: predicted vs measured."),
    from_measurements: str = typer.Option(
        None, "--from-measurements",
        help="Fit published tables instead of measuring (Vidur layout); --device is then the "
             "catalog device (a100-80gb | h100-sxm)."),
    allow_worse: bool = typer.Option(
        False, "--allow-worse",
        help="Write the profile even if it loses to the catalog defaults on held-out shapes."),
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Microbenchmarks (GEMM, attention, memory, copies, collectives) -> fitted profile JSON.

    Example:

        fleetsim calibrate --out h100.json --device cuda --catalog-name h100-sxm --quick

        fleetsim calibrate --from-measurements ../shared/calibration-data/vidur --device a100-80gb --out a100.json
    """
    check_output(out, option="--out", suffixes=(".json",), mkdir=mkdir)
    if from_measurements is not None:
        _from_measurements(from_measurements, device, out, allow_worse, json_out)
        return
    from calibration import run_calibration

    options: dict[str, Any] = {}
    if dtypes:
        options["dtypes"] = [d.strip() for d in dtypes.split(",") if d.strip()]
    if peak_tflops:
        peaks = {}
        for k, v in parse_kv_list(peak_tflops, option="--peak-tflops").items():
            try:
                peaks[k] = float(v)
            except ValueError:
                raise ConfigError(f"expected a number for {k}, got '{v}'",
                                  key="--peak-tflops") from None
        options["peak_tflops"] = peaks
    if mem_bw_gbps is not None:
        if not (math.isfinite(mem_bw_gbps) and mem_bw_gbps > 0):
            raise ConfigError(f"must be a finite number > 0, got {mem_bw_gbps}",
                              key="--mem-bw-gbps")
        options["mem_bw_gbps"] = mem_bw_gbps
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError("calibration needs torch: pip install -e '.[calibrate]'",
                          key="--device") from None
    profile = run_calibration(device=device, quick=quick, out=out, catalog_name=catalog_name,
                              validate=validate, log=lambda m: err_console.print(m), **options)
    summary = {"out": out, "device": profile.get("device"),
               "device_reported": profile.get("device_reported"),
               "fit": profile.get("fit"), "validation": profile.get("validation")}
    if json_out:
        emit_json(summary)
        return
    console.print(f"wrote {out} for device '{summary['device']}' "
                  f"({summary['device_reported']})")
    rows = summary["validation"] or []
    if rows:
        t = new_table("validation: predicted vs measured (held-out steps)",
                      ("step", "shape", "measured ms", "profile ms", "error", "defaults ms",
                       "error"))
        for r in rows:
            t.add_row(r["step"], r["shape"], f"{r['measured_s'] * 1e3:.3f}",
                      f"{r['predicted_s'] * 1e3:.3f}", f"{r['error']:+.1%}",
                      f"{r['default_predicted_s'] * 1e3:.3f}", f"{r['default_error']:+.1%}")
        console.print(t)


def _from_measurements(root: str, device: str, out: str, allow_worse: bool,
                       json_out: bool) -> None:
    """Import, fit, gate, write; print the per-operator held-out table (profile vs defaults)."""
    from calibration import import_measurements
    from calibration.importers import DEVICES

    if device not in DEVICES:
        raise ConfigError(f"no measurement tables for device '{device}'", key="--device",
                          allowed=list(DEVICES))
    profile = import_measurements(root, device, out=out, allow_worse=allow_worse,
                                  log=lambda m: err_console.print(m))
    heldout = profile["heldout"]
    if json_out:
        emit_json({"out": out, "device": device, "name": profile["name"],
                   "source": profile["source"], "heldout": heldout})
        return
    console.print(f"wrote {out} for device '{device}' ({profile['source']['description']})")
    t = new_table("held-out |error| per operator: profile vs catalog defaults",
                  ("operator", "n", "prof med", "prof p90", "dflt med", "dflt p90"))
    ops = heldout["operators"]
    rows = [*ops.items(), *((f"all {k}", v) for k, v in heldout["families"].items()
                            if k not in ops), ("overall", heldout["overall"])]
    for name, row in rows:
        t.add_row(name, str(row["n"]), f"{row['profile']['median']:.1%}",
                  f"{row['profile']['p90']:.1%}", f"{row['defaults']['median']:.1%}",
                  f"{row['defaults']['p90']:.1%}")
    console.print(t)
    for engine, row in heldout.get("engine_overheads", {}).items():
        coeffs = ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in row["coefficients"].items())
        console.print(f"engine overheads {engine}: {coeffs}; {row['method']} median |error| "
                      f"{row['median']:.1%} (no catalog default to compare)")
    for reason in heldout.get("rejected", []):
        err_console.print(f"warning: written with --allow-worse: {reason}")
