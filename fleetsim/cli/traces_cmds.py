"""`fleetsim traces stats|synth`: inspect real traces, generate synthetic ones."""

from __future__ import annotations

from typing import Any

import typer
import yaml

from fleetsim.cli.common import (
    check_output,
    console,
    emit_json,
    load_scenario_file,
    mkdir_option,
    new_table,
)
from hwmodels.errors import ConfigError

traces_app = typer.Typer(help="Workload traces: statistics and synthesis.", no_args_is_help=True)


def _kv_spec(text: str | None, key: str) -> dict[str, Any] | None:
    """'process=gamma,rate=5,cv=2' -> {'process': 'gamma', 'rate': 5, 'cv': 2}."""
    if text is None:
        return None
    out: dict[str, Any] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ConfigError(f"expected name=value pairs, got '{part}'", key=key)
        k, v = part.split("=", 1)
        out[k.strip()] = yaml.safe_load(v.strip())
    return out


@traces_app.command("stats")
def traces_stats(
    path: str = typer.Argument(..., help="Trace file (format detected) or a bundled sample name."),
    rate_scale: float = typer.Option(None, "--rate-scale", help="Replay at k x the rate."),
    start_s: float = typer.Option(None, "--start-s", help="Window start (s from first arrival)."),
    end_s: float = typer.Option(None, "--end-s", help="Window end."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Rate, inter-arrival CV, index of dispersion, token percentiles, prefix reuse.

    Example:

        fleetsim traces stats azure-conv-2023-sample --rate-scale 2
    """
    from traces.readers import read_trace
    from traces.stats import scale_trace, trace_stats, window_trace

    df = read_trace(path)
    if start_s is not None or end_s is not None:
        df = window_trace(df, start_s or 0.0, end_s)
    if rate_scale is not None:
        df = scale_trace(df, rate_scale)
    stats = trace_stats(df)
    stats["format"] = df.attrs.get("format")
    stats["warnings"] = df.attrs.get("warnings", [])
    if json_out:
        emit_json(stats)
        return
    t = new_table(f"{path} ({stats['format']})", show_header=False)
    t.add_row("requests", f"{stats['requests']:,}")
    t.add_row("duration", f"{stats['duration_s']:.1f} s")
    t.add_row("rate", f"{stats['rate_rps']:.3f} req/s")
    t.add_row("inter-arrival CV", f"{stats['interarrival_cv']:.3f}")
    t.add_row("index of dispersion 1 s / 60 s",
              f"{stats['index_of_dispersion']['1s']:.2f} / {stats['index_of_dispersion']['60s']:.2f}")
    for col in ("input_tokens", "output_tokens"):
        d = stats[col]
        t.add_row(col.replace("_", " "), "  ".join(f"{k} {v:,.0f}" for k, v in d.items()))
    if "prefix_reuse" in stats:
        t.add_row("prefix-block reuse", f"{stats['prefix_reuse']:.1%}")
    for w in stats["warnings"]:
        t.add_row("warning", str(w))
    console.print(t)


@traces_app.command("synth")
def traces_synth(
    out: str = typer.Option(..., "--out", help="Output .csv or .jsonl (generic format)."),
    spec: str = typer.Option(None, "--spec", help="YAML file with a workload.synthetic spec."),
    num_requests: int = typer.Option(None, "--num-requests"),
    duration_s: float = typer.Option(None, "--duration-s"),
    arrival: str = typer.Option("process=poisson,rate=5", "--arrival",
                                help="e.g. process=gamma,rate=5,cv=2 | process=mmpp,..."),
    input_: str = typer.Option("dist=lognormal,mean=1000,sigma=1.0,min=1,max=32768", "--input",
                               help="e.g. dist=trace,path=azure-conv-2023-sample"),
    output: str = typer.Option("dist=lognormal,mean=200,sigma=1.0,min=1,max=4096", "--output"),
    prefix: str = typer.Option(None, "--prefix", help="e.g. num_prompts=4,tokens=512"),
    seed: int = typer.Option(0, "--seed", min=0),
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Generate a seeded synthetic trace (arrivals x lengths x shared prefixes).

    Example:

        fleetsim traces synth --out trace.csv --num-requests 500 --arrival process=gamma,rate=5,cv=2
    """
    from traces.stats import trace_stats
    from traces.synth import synthesize
    from traces.writers import write_trace

    check_output(out, option="--out", suffixes=(".csv", ".jsonl"), mkdir=mkdir)

    if spec:
        raw = load_scenario_file(spec)
        body = raw.get("workload", {}).get("synthetic", raw) if isinstance(raw, dict) else raw
        df = synthesize(body, seed=seed, file=spec)
    else:
        if num_requests is None and duration_s is None:
            num_requests = 1000
        body: dict[str, Any] = {"arrival": _kv_spec(arrival, "--arrival"),
                                "input": _kv_spec(input_, "--input"),
                                "output": _kv_spec(output, "--output")}
        if num_requests is not None:
            body["num_requests"] = num_requests
        if duration_s is not None:
            body["duration_s"] = duration_s
        if prefix:
            body["prefix"] = _kv_spec(prefix, "--prefix")
        df = synthesize(body, seed=seed)
    write_trace(df, out)
    stats = trace_stats(df)
    if json_out:
        emit_json({"out": out, **stats})
        return
    console.print(f"wrote {len(df):,} requests to {out}: {stats['rate_rps']:.2f} req/s, "
                  f"inter-arrival CV {stats['interarrival_cv']:.2f}, input p50 "
                  f"{stats['input_tokens']['p50']:,.0f}, output p50 "
                  f"{stats['output_tokens']['p50']:,.0f}")
