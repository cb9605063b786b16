"""The calibration pipeline: pick the device and its peaks, measure, fit, write, (validate).

torch + numpy + standard library; hwmodels is imported lazily and only to look up catalog peaks
(when installed) and for --validate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from calibration import bench
from calibration.collectives import bench_collectives
from calibration.devices import catalog_name_for, environment, reported_name, select_device
from calibration.errors import CalibrationError
from calibration.fit import fit_curve, fit_profile, measured_peaks, work_time_s
from calibration.profile_io import write_profile
from calibration.sizes import plan_for

Log = Callable[[str], None]

# CPU mode runs torch single-threaded by default: on a shared, loaded machine (CI) intra-op
# threads wait for each other across scheduler time slices and medians jump by ~16 ms steps;
# one thread gives stable, repeatable timings (the CPU pseudo-device is "one core").
CPU_THREADS = 1


def stderr_log(message: str) -> None:
    """Progress lines go to stderr so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


def parse_peak_tflops(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """{'bf16': 989e12, ...} from 'bf16=989,fp32=67' (TFLOP/s) or a mapping of TFLOP/s."""
    if text is None or text == "":
        return {}
    items = text.items() if isinstance(text, Mapping) else (
        part.split("=", 1) if "=" in part else (part, "") for part in str(text).split(","))
    out: dict[str, float] = {}
    for dt, value in items:
        dt = str(dt).strip().lower()
        if dt not in bench.ALL_DTYPES:
            raise CalibrationError(f"unknown dtype '{dt}'", key="--peak-tflops",
                                   allowed=bench.ALL_DTYPES)
        try:
            tflops = float(value)
        except ValueError:
            raise CalibrationError(f"bad value for {dt}: {value!r}", key="--peak-tflops",
                                   allowed="DTYPE=TFLOPS[,DTYPE=TFLOPS...], e.g. bf16=989"
                                   ) from None
        if not tflops > 0:
            raise CalibrationError(f"{dt} peak must be > 0, got {value!r}", key="--peak-tflops")
        out[dt] = tflops * 1e12
    return out


def _catalog_peaks(name: str, dtypes: list[str], log: Log) -> dict[str, Any] | None:
    """Peaks of a catalog device via hwmodels (None where hwmodels is not installed)."""
    try:
        from hwmodels.catalog import list_devices, load_device
        from hwmodels.errors import UnknownNameError
    except ImportError:
        return None
    try:
        spec = load_device(name)
    except UnknownNameError:
        raise CalibrationError(f"'{name}' is not a fleetsim catalog device",
                               key="--catalog-name", allowed=["cpu", *list_devices()]) from None
    flops = {}
    for dt in dtypes:
        try:
            flops[dt] = float(spec.peak(dt))
        except ValueError:
            log(f"catalog entry {spec.name} has no {dt} peak; that dtype gets no curve")
    return {"name": spec.name, "flops": flops, "memory_bw_Bps": spec.memory_bw_Bps,
            "source": f"fleetsim catalog: {spec.name} ({spec.source})"}


def resolve_name(device: torch.device, catalog_name: str | None) -> str:
    """The catalog name the profile is written for (override, mapped, or 'cpu')."""
    if device.type == "cpu":
        if catalog_name not in (None, "cpu"):
            raise CalibrationError(f"CPU measurements cannot be written as '{catalog_name}'",
                                   key="--catalog-name", allowed=["cpu"])
        return "cpu"
    if catalog_name:
        return catalog_name.lower()
    reported = reported_name(device)
    name = catalog_name_for(reported, device.type)
    if name is None:
        raise CalibrationError(f"torch reports device '{reported}', which has no fleetsim "
                               "catalog entry mapped; pass --catalog-name NAME",
                               key="--catalog-name")
    return name


def resolve_peaks(device: torch.device, name: str, dtypes: list[str],
                  peak_tflops: dict[str, float], mem_bw_gbps: float | None,
                  log: Log) -> tuple[str, dict[str, Any] | None]:
    """(canonical name, peaks) before measuring; peaks None means 'measure them' (CPU)."""
    if device.type == "cpu" and not peak_tflops and mem_bw_gbps is None:
        return name, None
    catalog = None if device.type == "cpu" else _catalog_peaks(name, dtypes, log)
    flops = dict(catalog["flops"]) if catalog else {}
    flops.update(peak_tflops)
    bw = mem_bw_gbps * 1e9 if mem_bw_gbps is not None else (
        catalog["memory_bw_Bps"] if catalog else None)
    missing = [d for d in dtypes if d not in flops]
    if bw is None or (missing and not catalog):
        raise CalibrationError(
            f"no peak numbers for '{name}' ({'missing ' + ', '.join(missing) if missing else 'memory bandwidth'}): "
            "hwmodels is not installed here; pass --peak-tflops DTYPE=TFLOPS,... and "
            "--mem-bw-gbps GBPS (datasheet values)", key="--peak-tflops")
    source = catalog["source"] if catalog else "user: --peak-tflops/--mem-bw-gbps"
    if catalog and (peak_tflops or mem_bw_gbps is not None):
        source += "; overridden by --peak-tflops/--mem-bw-gbps"
    return (catalog["name"] if catalog else name), {
        "flops": flops, "memory_bw_Bps": float(bw), "source": source}


def measure(device: torch.device, *, quick: bool, dtypes: list[str], cpu_ranks: int,
            log: Log) -> tuple[dict[str, Any], list[str]]:
    """Every microbenchmark; returns (raw records by family, skip messages)."""
    plan = plan_for(device.type, quick)
    skipped: list[str] = []

    def note(message: str) -> None:
        if "skipped" in message:
            skipped.append(message)
        log(message)

    log(f"calibrating {device} ({reported_name(device)}), sweep '{plan.name}', "
        f"dtypes {', '.join(dtypes)}")
    raw: dict[str, Any] = {"plan": plan.name}
    raw["kernel_overhead"] = bench.bench_kernel_overhead(device, note)
    raw["gemm"] = bench.bench_gemm(device, plan, dtypes, note)
    raw["attention_prefill"] = bench.bench_attention_prefill(device, plan, note)
    raw["attention_decode"] = bench.bench_attention_decode(device, plan, note)
    raw["memory"] = bench.bench_memory(device, plan, note)
    raw["elementwise"] = bench.bench_elementwise(device, plan, note)
    raw["host_device"] = bench.bench_host_device(device, plan, note)
    raw["triton"] = bench.bench_triton(device, plan, note)
    triton_elementwise, raw["triton_gemm"], _ = bench.triton_records(raw["triton"])
    if triton_elementwise:  # frameworks run SwiGLU fused: the fused kernel is 'activation'
        raw["elementwise_unfused"] = [r for r in raw["elementwise"]
                                      if r["kind"] == "activation"]
        raw["elementwise"] = [r for r in raw["elementwise"] if r["kind"] != "activation"]
        raw["elementwise"] += triton_elementwise
    raw["collectives"] = bench_collectives(device, plan.collective_bytes, note,
                                           repeats=10 if quick else 20, cpu_ranks=cpu_ranks)
    return raw, skipped


def calibrate(device: str = "cpu", *, quick: bool = False, out: str | Path | None = None,
              catalog_name: str | None = None, validate: bool = False,
              log: Log = stderr_log, dtypes: list[str] | None = None,
              peak_tflops: str | Mapping[str, float] | None = None,
              mem_bw_gbps: float | None = None, cpu_ranks: int = 0,
              cpu_threads: int = CPU_THREADS, allow_worse: bool = False) -> dict[str, Any]:
    """Measure -> fit -> write `out` (if given) -> validate (if asked); returns the profile dict
    (with a 'validation' list of rows when validated). Raises CalibrationError on bad input.
    On the CPU, torch runs `cpu_threads` intra-op threads during the run (restored after).
    The profile is written only if it beats the defaults on held-out shapes (calibration.gate;
    else ProfileRejectedError, unless allow_worse)."""
    dev = select_device(device)
    if isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int) or cpu_threads < 1:
        raise CalibrationError(f"must be an integer >= 1, got {cpu_threads!r}",
                               key="--cpu-threads")
    if dev.type != "cpu":
        return _calibrate(dev, quick=quick, out=out, catalog_name=catalog_name,
                          validate=validate, log=log, dtypes=dtypes, peak_tflops=peak_tflops,
                          mem_bw_gbps=mem_bw_gbps, cpu_ranks=cpu_ranks,
                          allow_worse=allow_worse)
    before = torch.get_num_threads()
    torch.set_num_threads(cpu_threads)
    try:
        return _calibrate(dev, quick=quick, out=out, catalog_name=catalog_name,
                          validate=validate, log=log, dtypes=dtypes, peak_tflops=peak_tflops,
                          mem_bw_gbps=mem_bw_gbps, cpu_ranks=cpu_ranks,
                          allow_worse=allow_worse)
    finally:
        torch.set_num_threads(before)


def _calibrate(dev: torch.device, *, quick: bool, out: str | Path | None,
               catalog_name: str | None, validate: bool, log: Log, dtypes: list[str] | None,
               peak_tflops: str | Mapping[str, float] | None, mem_bw_gbps: float | None,
               cpu_ranks: int, allow_worse: bool) -> dict[str, Any]:
    if cpu_ranks and dev.type != "cpu":
        raise CalibrationError("--cpu-ranks applies to --device cpu only", key="--cpu-ranks")
    if cpu_ranks < 0 or cpu_ranks == 1:
        raise CalibrationError(f"must be 0 or >= 2, got {cpu_ranks}", key="--cpu-ranks")
    chosen = bench.check_dtypes(dev, [d.lower() for d in dtypes]) if dtypes \
        else bench.default_dtypes(dev)
    if validate and out is None:
        raise CalibrationError("--validate needs --out (the profile it validates)", key="--out")
    name = resolve_name(dev, catalog_name)
    name, peaks = resolve_peaks(dev, name, chosen, parse_peak_tflops(peak_tflops), mem_bw_gbps,
                                log)
    raw, skipped = measure(dev, quick=quick, dtypes=chosen, cpu_ranks=cpu_ranks, log=log)
    overhead_s = float(raw["kernel_overhead"]["median_s"])
    env = environment(dev)

    def fit(records: Mapping[str, Any]) -> dict[str, Any]:
        pk = peaks if peaks is not None else measured_peaks(records, overhead_s)
        data = fit_profile(records, pk, device=name, device_reported=reported_name(dev),
                           env=env, skipped=skipped)
        if not data.get("elementwise") and records.get("elementwise"):
            data["elementwise"] = elementwise_curves(records["elementwise"],
                                                     float(pk["memory_bw_Bps"]), overhead_s)
        return data

    profile = fit(raw)
    profile["fit"]["notes"] = list(profile["fit"].get("notes", [])) + \
        bench.triton_records(raw["triton"])[2]
    for family, stats in profile["fit"]["families"].items():
        log(f"fit {family}: {stats['points']} points, median |err| "
            f"{stats['median_abs_err']:.1%}, run spread {stats['median_spread']:.1%}")
    steps = _held_out(profile, raw, fit, dev, quick=quick, log=log)
    enforce_gate(profile["heldout"], allow_worse=allow_worse, log=log)
    if out is not None:
        write_profile(out, profile)
        log(f"wrote {out}")
    if validate:
        from calibration.profile_io import load_checked
        from calibration.validate import report

        assert steps is not None  # noqa: S101 - _held_out measured them (hwmodels present)
        plan, dt_name, measured = steps
        rows, op_rows = report(profile, load_checked(out, device=profile["device"]), dev,
                               plan, dt_name, measured, quick=quick, log=log)
        profile["validation"] = rows
        profile["validation_ops"] = op_rows
        write_profile(out, profile)
    return profile


def elementwise_curves(records: list[Mapping[str, Any]], bw_Bps: float, overhead_s: float
                       ) -> dict[str, dict[str, list[float]]]:
    """Per-kind efficiency curves (fraction of memory bandwidth vs bytes) from elementwise
    records, with calibration.fit's curve fitter; used where fit_profile returns none."""
    curves = {}
    for kind in sorted({r["kind"] for r in records}):
        sel = [r for r in records if r["kind"] == kind]
        curves[kind] = fit_curve([r["bytes"] for r in sel],
                                 [r["bytes"] / (bw_Bps * work_time_s(r["median_s"], overhead_s))
                                  for r in sel])
    return curves


def _held_out(profile: dict[str, Any], raw: Mapping[str, Any],
              fit: Callable[[Mapping[str, Any]], dict[str, Any]], dev: torch.device, *,
              quick: bool, log: Log) -> tuple[Any, str, dict[str, Any]] | None:
    """Attach profile["heldout"] (calibration.gate) and return the measured validation steps
    (plan, dtype, timings); without hwmodels the gate cannot run and says so in the block."""
    try:
        from calibration import gate
        from calibration.validate import device_spec_for, gate_steps, measure_validation
    except ImportError as err:
        profile["heldout"] = {"skipped": f"hwmodels is not installed here ({err}); the "
                                         "held-out gate needs its cost models", "passed": None}
        log("held-out gate: skipped (hwmodels is not installed)")
        return None
    plan, dt_name, measured = measure_validation(profile, dev, quick=quick, log=log)
    block = gate.heldout_block(raw, fit, device_spec_for, gate_steps(plan, measured, dt_name))
    profile["heldout"] = block
    for line in gate.format_block(block):
        log(line)
    return plan, dt_name, measured


def enforce_gate(block: dict[str, Any], *, allow_worse: bool, log: Log) -> None:
    """Refuse (ProfileRejectedError) a profile that lost to the defaults, unless allow_worse;
    a gate that could not run (no hwmodels) lets the profile through, as the block says."""
    if block.get("passed") is None:
        return
    if not block["passed"] and allow_worse:
        block["written_anyway"] = "--allow-worse"
        log("held-out gate: profile is worse than the defaults; written anyway (--allow-worse)")
    from calibration.gate import enforce

    enforce(block, allow_worse=allow_worse)
