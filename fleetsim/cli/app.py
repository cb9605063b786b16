"""The `fleetsim` typer application: sub-apps are registered here, errors handled in main()."""

from __future__ import annotations

import importlib
import sys

import typer

from calibration.errors import ProfileRejectedError
from fleetsim.cli.calibrate_cmd import calibrate_cmd
from fleetsim.cli.catalog_cmds import hw_app, models_app
from fleetsim.cli.demo_cmd import demo_cmd
from fleetsim.cli.estimate_cmds import estimate_app
from fleetsim.cli.export_cmds import export_cmd, import_cmd
from fleetsim.cli.plan_cmds import plan_app, sweep_cmd
from fleetsim.cli.plan_hetero_cmd import plan_train_hetero_cmd
from fleetsim.cli.plan_spot_cmd import plan_spot_cmd
from fleetsim.cli.simulate_cmds import simulate_app
from fleetsim.cli.traces_cmds import traces_app
from fleetsim.cli.validate_cmds import validate_cmd
from hwmodels.errors import FleetsimError, InfeasibleError, InvariantError

app = typer.Typer(
    name="fleetsim",
    help="Discrete-event cluster simulator and auto-configurator for LLM training and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fleetsim_version() -> str:
    """The installed distribution's version; the source tree's __version__ when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fleetsim")
    except PackageNotFoundError:
        from fleetsim import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"fleetsim {fleetsim_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_print_version,
                                       is_eager=True, help="Print the version and exit.")) -> None:
    """Discrete-event cluster simulator and auto-configurator for LLM training and serving.

    Example:

        fleetsim simulate train simulator/scenarios/gpt3-175b-a100.yaml
    """


app.add_typer(hw_app, name="hw")
app.add_typer(models_app, name="models")
app.add_typer(estimate_app, name="estimate")
app.add_typer(simulate_app, name="simulate")
app.command("validate")(validate_cmd)
app.command("demo")(demo_cmd)
app.command("calibrate")(calibrate_cmd)
plan_app.command("train-hetero")(plan_train_hetero_cmd)
plan_app.command("spot")(plan_spot_cmd)
app.add_typer(plan_app, name="plan")
app.command("sweep")(sweep_cmd)
app.command("export")(export_cmd)
app.command("import")(import_cmd)
app.add_typer(traces_app, name="traces")


def _click_modules() -> list:
    """typer >= 0.2x vendors click as typer._click; older ones use click itself."""
    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            continue
    return mods


_MODS = _click_modules()
_NO_ARGS = tuple(m.NoArgsIsHelpError for m in _MODS if hasattr(m, "NoArgsIsHelpError"))
_USAGE = tuple(m.ClickException for m in _MODS)
_EXIT = (typer.Exit, *(m.Exit for m in _MODS if hasattr(m, "Exit")))
_ABORT = (typer.Abort, *(m.Abort for m in _MODS if hasattr(m, "Abort")))


def _has_option(command: object, argv: list[str] | None, option: str) -> bool:
    """Whether the subcommand `argv` names takes `option` (so an error may suggest it)."""
    cmd = command
    for token in argv if argv is not None else sys.argv[1:]:
        sub = getattr(cmd, "commands", {}).get(token)
        if sub is None:
            break
        cmd = sub
    return any(option in getattr(p, "opts", ()) for p in getattr(cmd, "params", ()))


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr, never a traceback. Exit codes: 2 bad input,
    3 infeasible plan (unless --allow-infeasible) or a calibrated profile that loses to the
    catalog defaults (unless --allow-worse), 4 violated simulation invariant (a bug)."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="fleetsim", standalone_mode=False)
    except InfeasibleError as err:
        hint = (" (pass --allow-infeasible for the report)"
                if _has_option(command, argv, "--allow-infeasible") else "")
        print(f"fleetsim: infeasible: {err}{hint}", file=sys.stderr)
        return InfeasibleError.exit_code
    except ProfileRejectedError as err:
        print(f"fleetsim: rejected: {err}", file=sys.stderr)
        return 3
    except FleetsimError as err:
        print(f"fleetsim: error: {err}", file=sys.stderr)
        return 2
    except InvariantError as err:
        print(f"fleetsim: internal error (a fleetsim bug, please report): {err}",
              file=sys.stderr)
        return InvariantError.exit_code
    except _NO_ARGS as exc:
        exc.show()  # a bare group prints its help
        return 0
    except _USAGE as exc:
        print(f"fleetsim: error: {exc.format_message()} (see --help)", file=sys.stderr)
        return exc.exit_code
    except _EXIT as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _ABORT:
        print("fleetsim: aborted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0
