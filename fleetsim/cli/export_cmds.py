"""`fleetsim export` (a scenario's plan -> launch artefacts) and `fleetsim import` (a launcher
config -> a training scenario YAML)."""

from __future__ import annotations

from pathlib import Path

import typer

from fleetsim.cli.common import (
    NO_PROFILE_OPTION,
    PROFILE_OPTION,
    check_output,
    emit_json,
    profile_choice,
    scenario_with_overrides,
)
from hwmodels.errors import ConfigError


def export_cmd(
    scenario: str = typer.Argument(..., help="Training or serving scenario YAML."),
    to: str = typer.Option(..., "--to", help="megatron | torchtitan | deepspeed | nemo | vllm "
                                             "| sglang | trtllm | dynamo-k8s"),
    out: str = typer.Option(None, "--out", help="Directory for the artefact files + launch.sh."),
    set_: list[str] = typer.Option(None, "--set", help="key=value override (repeatable)."),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Launch artefacts for a scenario's plan (the same plan `simulate` runs).

    Example:

        fleetsim export simulator/scenarios/llama3-405b-16k-54d.yaml --to megatron --out launch/
    """
    from planners.export import export_plan, kind_of

    kind_of(to)  # an unknown target lists the valid ones before anything is read
    choice = profile_choice(profile, no_profile)
    raw = scenario_with_overrides(scenario, set_)
    if "serving" in raw or "workload" in raw:
        from simulator.serving.scenario import load_serving_scenario

        plan = load_serving_scenario(raw, file=scenario, profiles=choice)
    else:
        from simulator.training import load_training_scenario

        plan = load_training_scenario(raw, file=scenario, profiles=choice).plan()
    artefact = export_plan(plan, to)
    written = [str(p) for p in artefact.write(out)] if out else []
    if json_out:
        emit_json({**artefact.to_dict(), "written": written})
        return
    typer.echo(f"# {artefact.target} {artefact.target_version}")
    for note in artefact.assumptions:
        typer.echo(f"# assumption: {note}")
    typer.echo(artefact.command)
    for path in written:
        typer.echo(f"wrote {path}")


def import_cmd(
    file: str = typer.Argument(..., help="Megatron argument list / torchrun line, or TOML."),
    source: str = typer.Option(..., "--from", help="megatron | torchtitan"),
    device: str = typer.Option(..., "--device"),
    num_devices: int = typer.Option(None, "--num-devices", min=1,
                                    help="Default: torchrun --nnodes x --nproc-per-node."),
    out: str = typer.Option(None, "--out", help="Scenario YAML to write (default: stdout)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """A training scenario from a launcher's configuration (`simulate train` runs it).

    Example:

        fleetsim import tests/data/launchers/llama3-405b-megatron.sh --from megatron --device h100-sxm --out s.yaml
    """
    import yaml

    from hwmodels.atomic import atomic_write_text
    from hwmodels.catalog import load_device, read_text
    from planners.export.importers import IMPORTERS
    from simulator.training import load_training_scenario

    if source not in IMPORTERS:
        raise ConfigError(f"unknown import source {source!r}", key="--from",
                          allowed=", ".join(IMPORTERS))
    check_output(out, option="--out", suffixes=(".yaml", ".yml"))
    load_device(device)
    text = read_text(file)
    raw = IMPORTERS[source](text, device=device, num_devices=num_devices, file=file)
    raw = {"name": Path(file).stem, **raw}
    load_training_scenario(raw, file=file)  # the scenario must load before it is written
    body = yaml.safe_dump(raw, sort_keys=False)
    if out:
        atomic_write_text(out, body)
    if json_out:
        emit_json({"scenario": raw, "written": out})
    elif not out:
        typer.echo(body, nl=False)
    else:
        typer.echo(f"wrote {out}")
