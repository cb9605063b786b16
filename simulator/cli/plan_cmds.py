"""`fleetsim plan ...`: searched plans confirmed by simulation."""

from __future__ import annotations

import typer
from rich.table import Table

from hwmodels.errors import ConfigError
from simulator.cli.common import console, emit_json, load_scenario_file

plan_app = typer.Typer(help="Search for the best plan.", no_args_is_help=True)


@plan_app.command("checkpoint")
def plan_checkpoint_cmd(
    scenario: str = typer.Argument(..., help="Training scenario YAML with a run: section."),
    set_: list[str] = typer.Option(None, "--set", help="Override a scenario key (repeatable)."),
    seeds: int = typer.Option(4, "--seeds", help="Simulated runs per candidate interval."),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The checkpoint interval that maximizes simulated ETTR, beside Young's and Daly's."""
    from planners.checkpoint import plan_checkpoint_for_scenario
    from simulator.training import apply_overrides, load_training_scenario

    sc = load_training_scenario(apply_overrides(load_scenario_file(scenario), set_ or []),
                                file=scenario)
    if sc.run_section_raw is None:
        raise ConfigError("needs a run: section (duration, failures, checkpoint)", file=scenario,
                          key="run")
    if seeds < 1:
        raise ConfigError(f"must be >= 1, got {seeds}", key="--seeds")
    plan = plan_checkpoint_for_scenario(sc, seeds=seeds, seed=seed)
    if json_out:
        emit_json(plan.to_dict())
        return
    t = Table(title=f"{sc.name or scenario}: job MTTF {plan.mttf_s / 3600:.2f} h, "
                    f"checkpoint stall {plan.stall_s:.1f} s, restart {plan.restart_s:.0f} s")
    for col in ("rule", "interval", "ETTR mean", "5-95%", "closed form (Kokolis)"):
        t.add_column(col)
    for r in plan.rows:
        best = " *" if r["interval_s"] == plan.best_interval_s else ""
        t.add_row(f"{r['rule']}{best}", f"{r['interval_s'] / 60:.1f} min",
                  f"{r['ettr_mean']:.4f}", f"{r['ettr_p5']:.4f}-{r['ettr_p95']:.4f}",
                  f"{r['kokolis_ettr']:.4f}")
    console.print(t)
    console.print(f"best interval {plan.best_interval_s / 60:.1f} min (ETTR {plan.best_ettr:.4f});"
                  f" Young {plan.young_interval_s / 60:.1f} min, Daly "
                  f"{plan.daly_interval_s / 60:.1f} min")
