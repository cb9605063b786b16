"""`fleetsim plan spot`: spot vs on-demand training, checkpoint interval and break-even rate."""

from __future__ import annotations

import typer

from fleetsim.cli.assumptions import add_assumptions, print_assumptions
from fleetsim.cli.common import console, emit_json, load_scenario_file, with_profiles
from hwmodels.errors import ConfigError


def _with_assumptions(out: dict, sc: object, cfg: object) -> dict:  # type: ignore[type-arg]
    """Fabric, engine and profile of the iteration the long runs are built on, and the spot
    market terms the answer rests on."""
    import math

    from hwmodels.cluster import describe_fabric
    from hwmodels.ops import resolve_profile

    plan = sc.plan()  # type: ignore[attr-defined]
    dev = plan.cluster.device
    out = with_profiles(out, {dev.name: resolve_profile(dev, plan.profile)})
    spot = cfg.spot  # type: ignore[attr-defined]
    return add_assumptions(out, fabric=describe_fabric(plan.cluster),
                           engine="long-run simulator (simulator.longrun) over one simulated "
                                  "training iteration", warning_s=spot.warning_s,
                           replacement_s=("never" if math.isinf(spot.replacement_s)
                                          else spot.replacement_s), spot_fraction=spot.fraction)


def plan_spot_cmd(
    scenario: str = typer.Argument(..., help="Training scenario YAML with run.spot."),
    set_: list[str] = typer.Option(None, "--set", help="Override a scenario key (repeatable)."),
    rate: float = typer.Option(None, "--preemptions-per-node-hour"),
    warning_s: float = typer.Option(None, "--warning-s", help="AWS 120, GCP 30."),
    spot_price: float = typer.Option(None, "--spot-price", help="USD per GPU-hour."),
    on_demand_price: float = typer.Option(None, "--on-demand-price", help="USD per GPU-hour."),
    seeds: int = typer.Option(2, "--seeds", help="Simulated runs per candidate."),
    seed: int = typer.Option(0, "--seed", min=0),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Spot training: cost and time to train at a preemption rate against on-demand.

    Example:

        fleetsim plan spot simulator/scenarios/llama3-70b-h100-spot.yaml --json
    """
    from planners.spot import plan_spot
    from simulator.longrun.simulate import default_iteration_time_fn, run_config
    from simulator.training import apply_overrides, load_training_scenario

    if seeds < 1:
        raise ConfigError(f"must be >= 1, got {seeds}", key="--seeds")
    raw = load_scenario_file(scenario)
    spot_raw = (raw.get("run") or {}).get("spot") if isinstance(raw, dict) else None
    if not isinstance(spot_raw, dict):
        raise ConfigError("needs a run.spot section", file=scenario, key="run.spot")
    sets = list(set_ or [])
    if rate is not None:
        spot_raw.pop("trace", None)
        sets.append(f"run.spot.preemptions_per_node_hour={rate!r}")
    for key, value in (("warning_s", warning_s), ("price_usd_per_gpu_hour", spot_price),
                       ("on_demand_price_usd_per_gpu_hour", on_demand_price)):
        if value is not None:
            sets.append(f"run.spot.{key}={value!r}")
    sc = load_training_scenario(apply_overrides(raw, sets), file=scenario)
    cfg, job = run_config(sc)
    plan = plan_spot(cfg, job, default_iteration_time_fn(sc), seeds=seeds, seed=seed)
    out = _with_assumptions(plan.to_dict(), sc, cfg)
    if json_out:
        emit_json(out)
        return
    s, od = plan.spot, plan.on_demand
    console.print(f"{sc.name or scenario}: {plan.preemptions_per_node_hour:g} preemptions per "
                  f"node-hour, checkpoint every {plan.checkpoint.best_interval_s / 60:.1f} min "
                  f"(Daly {plan.checkpoint.daly_interval_s / 60:.1f} min)")
    for name, f in (("spot", s), ("on-demand", od)):
        ttt = f["time_to_train_s"]
        console.print(f"  {name:9s} time to train {ttt / 3600 if ttt else float('nan'):.2f} h, "
                      f"cost ${f['cost_usd']:,.0f}, ${f['cost_per_million_tokens_usd'] or 0:.4f}"
                      f" per M tokens, ETTR {f['ettr']:.4f}")
    others = ", ".join(
        f"{k}: " + (f"${f['cost_per_million_tokens_usd'] or 0:.4f}/M tokens" if "error" not in f
                    else f"not run ({f['error']})")
        for k, f in plan.by_shortage.items() if k != plan.shortage)
    console.print(f"  while preempted: {plan.shortage} (cheapest per token; {others})",
                  highlight=False, markup=False)
    be = plan.break_even_preemptions_per_node_hour
    console.print("  break-even: on-demand cheaper above "
                  + (f"{be:.4g} preemptions per node-hour" if be is not None else
                     f"no swept rate (up to {plan.sweep[-1]['preemptions_per_node_hour']:g})"))
    print_assumptions(out)
