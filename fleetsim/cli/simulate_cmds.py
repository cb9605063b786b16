"""`fleetsim simulate train|serve`: what-if simulations from a scenario YAML."""

from __future__ import annotations

from typing import Any

import typer

from fleetsim.cli.common import (
    NO_PROFILE_OPTION,
    PLOT_SUFFIXES,
    PROFILE_OPTION,
    RESULTS_SUFFIXES,
    check_output,
    console,
    emit_json,
    mkdir_option,
    new_table,
    print_efficiency,
    profile_choice,
    scenario_errors,
    scenario_with_overrides,
    with_profiles,
)
from hwmodels.errors import ConfigError

simulate_app = typer.Typer(help="Simulate a training or serving scenario.", no_args_is_help=True)

TRAIN_SET_HELP = "Override a scenario key, e.g. --set parallelism.tp=4 (repeatable)."
SERVE_SET_HELP = "Override a scenario key, e.g. --set serving.tp=4 (repeatable)."


def _train_table(title: str, out: dict[str, Any]) -> Any:
    t = new_table(title, show_header=False)
    bd = out["breakdown"]
    rows = [
        ("iteration time", f"{out['iteration_time_s']:.3f} s"),
        ("tokens/s", f"{out['tokens_per_s']:,.0f}"),
        ("TFLOP/s per GPU (model)", f"{out['tflops_per_gpu']:.1f}"),
        ("MFU / HFU", f"{out['mfu']:.1%} / {out['hfu']:.1%}"),
        ("peak memory", f"{out['peak_memory_gib']:.1f} GiB of {out['memory_capacity_gib']:.1f}"
                        f" ({'fits' if out['fits_memory'] else 'DOES NOT FIT'})"),
        ("compute", f"{bd['compute_s']:.3f} s"),
    ]
    terms = bd.get("compute_terms") or {}
    for key, label in (("gemm_s", "  GEMMs"), ("attention_s", "  attention"),
                       ("elementwise_s", "  memory-bound kernels"),
                       ("launch_s", "  kernel launch gaps")):
        if key in terms:
            share = terms[key] / bd["compute_s"] if bd["compute_s"] > 0 else 0.0
            rows.append((label, f"{terms[key]:.3f} s ({share:.0%})"))
    rows += [
        ("exposed communication", f"{bd['exposed_comm_s']:.3f} s"),
        ("pipeline bubble", f"{bd['bubble_s']:.3f} s"),
        ("optimizer", f"{bd['optimizer_s']:.3f} s"),
    ]
    if out.get("attention_kernel"):
        rows.append(("kernels", f"{out.get('kernel_stack', '')}, attention "
                                f"{out['attention_kernel']}"))
    if out.get("pipeline_split") and len(out.get("layers_per_stage", ())) > 1:
        rows.append(("layers per stage", out["pipeline_split"]))
    if out.get("message"):
        rows.append(("note", out["message"]))
    if "ettr" in out:
        rows += [("ETTR", f"{out['ettr']:.3f}"),
                 ("goodput tokens/s", f"{out['goodput_tokens_per_s']:,.0f}"),
                 ("interruptions", ", ".join(f"{k}: {v}" for k, v in
                                             out["interruptions"].items()) or "none")]
    for k, v in rows:
        t.add_row(k, v)
    return t


def _long_run(sc: Any, iteration: Any, *, seed: int | None, seeds: int | None, file: str,
              progress_plot: str | None) -> dict[str, Any]:
    """The run: section: failures, checkpoints, stragglers over weeks (iteration-level events)."""
    from simulator.longrun.plot import plot_progress
    from simulator.longrun.simulate import (
        default_iteration_time_fn,
        simulate_run,
        simulate_run_seeds,
    )

    if seeds is not None and seeds < 1:
        raise ConfigError(f"must be >= 1, got {seeds}", key="--seeds")
    full_dp, full_time_s = sc.parallel.dp, iteration.iteration_time_s
    other = default_iteration_time_fn(sc)

    def iteration_time_s(dp: int) -> float:
        return full_time_s if dp == full_dp else other(dp)

    if seeds is None:
        seeds = sc.run.seeds  # run.seeds is the default, as --seeds' help says
    if seeds == 1:
        run = simulate_run(sc, seed=seed, iteration_time_fn=iteration_time_s)
        runs = [run]
    else:
        summary = simulate_run_seeds(sc, seeds=seeds, seed=seed,
                                     iteration_time_fn=iteration_time_s)
        run, runs = summary, list(summary.runs)
    if progress_plot:
        plot_progress(runs, progress_plot)
    out = run.to_dict()
    hint = run.diagnosis()  # what dominated the lost time, when something did
    if hint:
        from fleetsim.cli.common import err_console

        out["hint"] = hint
        err_console.print(f"hint: {hint}", highlight=False, soft_wrap=True)
    return out


@simulate_app.command("train")
def simulate_train(
    scenario: str = typer.Argument(..., help="Training scenario YAML."),
    set_: list[str] = typer.Option(None, "--set", help=TRAIN_SET_HELP),
    timeline: str = typer.Option(None, "--timeline", help="Write a Chrome/Perfetto trace JSON."),
    plot: str = typer.Option(None, "--plot",
                             help="Write the pipeline Gantt chart (.png/.pdf/.svg)."),
    seed: int = typer.Option(None, "--seed", min=0,
                             help="Seed for the run: section (default: run.seed)."),
    seeds: int = typer.Option(None, "--seeds", min=1,
                              help="Run the run: section with N seeds (default: run.seeds)."),
    progress_plot: str = typer.Option(None, "--progress-plot",
                                      help="With run:, plot progress vs wall-clock "
                                           "(.png/.pdf/.svg)."),
    allow_infeasible: bool = typer.Option(
        False, "--allow-infeasible", help="Report a plan that does not fit memory (exit 0)."),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """One training iteration (and, with a run: section, a long run with failures).

    A plan that does not fit device memory exits 3 unless --allow-infeasible.

    Example:

        fleetsim simulate train simulator/scenarios/gpt3-175b-a100.yaml --set parallelism.tp=4 --timeline t.json
    """
    from simulator.training import load_training_scenario, simulate_training

    check_output(timeline, option="--timeline", suffixes=(".json",), mkdir=mkdir)
    check_output(plot, option="--plot", suffixes=PLOT_SUFFIXES, mkdir=mkdir)
    check_output(progress_plot, option="--progress-plot", suffixes=PLOT_SUFFIXES, mkdir=mkdir)
    choice = profile_choice(profile, no_profile)
    raw = scenario_with_overrides(scenario, set_)
    sc = load_training_scenario(raw, file=scenario, profiles=choice)
    want_events = bool(timeline or plot)
    with scenario_errors(scenario):
        result = simulate_training(sc.plan(timeline=want_events))
        out = result.to_dict()
        if not result.fits_memory and not allow_infeasible:
            from hwmodels.errors import InfeasibleError

            raise InfeasibleError(f"{scenario}: the plan {result.message}",
                                  hint="more devices, a larger tp/pp, recompute or ZeRO")
        if sc.run is not None:
            out.update(_long_run(sc, result, seed=seed, seeds=seeds, file=scenario,
                                 progress_plot=progress_plot))
    from hwmodels.cluster import describe_fabric

    pools = [p.cluster for p in sc.pools] or [sc.cluster]
    out["fabric"] = "; ".join(describe_fabric(c) for c in pools)
    with_profiles(out, sc.profiles())
    if timeline:
        from simulator.training.timeline import write_chrome_trace

        write_chrome_trace(result.timeline or (), timeline)
    if plot:
        from simulator.training.plot import plot_pipeline

        plot_pipeline(result.timeline or (), plot, title=sc.name or scenario,
                      parallel=sc.parallel, mfu=result.mfu)
    if json_out:
        emit_json(out)
        return
    machines = " + ".join(f"{c.num_devices} x {c.device.name}" for c in pools)
    console.print(_train_table(f"{sc.name or scenario}: {sc.model.name} on {machines}", out))
    console.print(f"fabric: {out['fabric']}", highlight=False, soft_wrap=True)
    print_efficiency(out)


def _serve_table(title: str, s: dict[str, Any]) -> Any:
    t = new_table(title, show_header=False)

    def pct(d: dict[str, Any], unit: float = 1e3, suffix: str = " ms") -> str:
        return " / ".join(f"{k} {v * unit:.1f}{suffix}" if v is not None else f"{k} -"
                          for k, v in d.items())

    rows = [
        ("requests", f"{s['requests']:,} ({s['completed']:,} completed, {s['dropped']:,} dropped)"),
        ("TTFT", pct(s["ttft_s"])),
        ("TPOT", pct(s["tpot_s"])),
        ("end-to-end", pct(s["e2e_s"], 1.0, " s")),
        ("SLO attainment", f"{s['slo_attainment']:.1%}"),
        ("goodput", f"{s['goodput_rps']:.2f} req/s"),
        ("throughput", f"{s['throughput_tokens_per_s']:,.0f} output tokens/s"),
        ("GPU-hours / cost", f"{s['gpu_hours']:.2f} h / ${s['cost_usd']:.2f}"),
        ("energy", f"{s['energy_kwh']:.2f} kWh"),
    ]
    for key, value in s.items():
        if key not in {"requests", "completed", "dropped", "ttft_s", "tpot_s", "e2e_s",
                       "slo_attainment", "goodput_rps", "throughput_tokens_per_s", "gpu_hours",
                       "cost_usd", "energy_kwh"} and not isinstance(value, (dict, list)):
            rows.append((key.replace("_", " "), f"{value:.4g}" if isinstance(value, float)
                         else str(value)))
    for k, v in rows:
        t.add_row(k, v)
    return t


@simulate_app.command("serve")
def simulate_serve(
    scenario: str = typer.Argument(..., help="Serving scenario YAML."),
    trace: str = typer.Option(None, "--trace", help="Replay this trace file instead."),
    set_: list[str] = typer.Option(None, "--set", help=SERVE_SET_HELP),
    seed: int = typer.Option(None, "--seed", min=0, help="Override the scenario seed."),
    records: str = typer.Option(None, "--records", help="Write per-request records (.csv/.parquet)."),
    plots: str = typer.Option(None, "--plots", help="Directory for latency CDF and time plots."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Rich progress bar."),
    find_capacity: bool = typer.Option(
        False, "--find-capacity",
        help="Bisect rate_scale (closed loop: clients) for the largest load meeting the "
             "scenario's slo at --slo-percentile without a growing queue."),
    sweep_rates: str = typer.Option(
        None, "--sweep-rates",
        help="Throughput-latency table at these loads, e.g. 0.5,1,2 (rate_scale "
             "multipliers; closed loop: client counts)."),
    probe_s: float = typer.Option(900.0, "--probe-s",
                                  help="Simulated seconds of arrivals per probe."),
    slo_percentile: int = typer.Option(90, "--slo-percentile",
                                       help="SLO percentile of TTFT and TPOT: 50|90|95|99."),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Replay a trace (or synthetic load, or closed-loop clients) on the scenario's replicas;
    print latency and cost. --find-capacity / --sweep-rates probe several loads instead.

    Example:

        fleetsim simulate serve simulator/scenarios/llama2-70b-h100-azure.yaml --set serving.tp=4 --records r.csv
    """
    from pathlib import Path

    import pandas as pd
    from rich.progress import Progress

    from simulator.serving import (
        load_serving_scenario,
        load_workload,
        simulate_serving,
    )

    check_output(records, option="--records", suffixes=RESULTS_SUFFIXES, mkdir=mkdir)
    check_output(plots, option="--plots", kind="dir", mkdir=mkdir)
    if records:
        from planners.sweep import check_results_path

        check_results_path(records)
    choice = profile_choice(profile, no_profile)
    raw = scenario_with_overrides(scenario, set_)
    sc = load_serving_scenario(raw, file=scenario, profiles=choice)
    if find_capacity or sweep_rates:
        if records or plots:
            raise ConfigError("--records / --plots describe one run, not a load search",
                              key="--records" if records else "--plots")
        from fleetsim.cli.serve_load import run_load_command

        run_load_command(sc, scenario, find=find_capacity, sweep=sweep_rates, probe_s=probe_s,
                         percentile=slo_percentile, trace=trace, seed=seed, json_out=json_out)
        return
    with scenario_errors(scenario):
        df = load_workload(sc, trace=trace, seed=seed)
    with scenario_errors(scenario):
        if json_out or not progress:
            result = simulate_serving(sc, df, seed=seed)
        else:
            horizon = (float(df["arrival_time_s"].max()) if isinstance(df, pd.DataFrame)
                       and len(df) else 1.0)
            with Progress(transient=True, console=console) as bar:
                task = bar.add_task("simulating", total=max(horizon, 1e-9))
                result = simulate_serving(sc, df, seed=seed,
                                          progress=lambda now: bar.update(task, completed=now))
    summary = with_profiles(result.summary(), sc.profiles())
    summary["engine"] = _engine_label(sc)
    if records:
        from planners.sweep import write_results

        write_results(result.records, records)
    if plots:
        from simulator.serving.plots import plot_latency_cdfs, plot_timeseries

        plot_latency_cdfs(result, Path(plots) / "latency_cdf.png")
        plot_timeseries(result, Path(plots) / "timeseries.png")
    if json_out:
        emit_json(summary)
        return
    groups = " + ".join(
        f"{g.count} x TP{g.tp}/PP{g.pp} {g.device.name}"
        + ("" if str(g.role) == "both" else f" ({g.role})") for g in sc.replica_groups())
    console.print(_serve_table(f"{sc.name or scenario}: {sc.model.name} on {groups}, "
                               f"{sc.serving.scheduler}", summary))
    print_efficiency(summary)


def _engine_label(sc: object) -> str:
    """The engine the scenario's replicas run ('kernel-only (default)' when unset; per group
    when groups pick their own)."""
    from hwmodels.engine_profiles import describe_engine

    groups = sc.replica_groups()  # type: ignore[attr-defined]
    labels = {g.name: describe_engine(sc.engine_of(g)) for g in groups}  # type: ignore
    if len(set(labels.values())) == 1:
        return next(iter(labels.values()))
    return ", ".join(f"{name}: {label}" for name, label in labels.items())
