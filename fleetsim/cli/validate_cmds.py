"""`fleetsim validate`: the bundled published-measurement checks with their errors."""

from __future__ import annotations

from typing import Any

import typer

from fleetsim.cli.common import console, emit_json, new_table
from hwmodels.errors import ConfigError

SUITES = ("training", "serving", "all")


def _training() -> dict[str, Any]:
    from simulator.training.validation import summarize, validate_training

    df = validate_training()
    summary = summarize(df)
    return {"rows": df.to_dict(orient="records"), "summary": summary.to_dict(orient="records")}


def _serving() -> dict[str, Any]:
    from simulator.serving.validation import validate_serving

    return validate_serving()


def validate_cmd(
    suite: str = typer.Argument("all", help="training | serving | all"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Predict every bundled published measurement and print the errors.

    Example:

        fleetsim validate training
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'", key="suite", allowed=SUITES)
    out: dict[str, Any] = {}
    if suite in ("training", "all"):
        out["training"] = _training()
    if suite in ("serving", "all"):
        out["serving"] = _serving()
    if json_out:
        emit_json(out)
        return
    for suite_name in ("training", "serving"):
        if suite_name in out:
            _print_suite(suite_name, out[suite_name])


def _print_suite(name: str, data: dict[str, Any]) -> None:
    t = new_table(f"{name.capitalize()}: predicted vs published",
                  ("source", "model", "config", "metric", "published", "predicted", "error %"),
                  names=(1,))
    for r in data["rows"]:
        t.add_row(r["source"], r["model"], r["config"], r["metric"], f"{r['published']:.4g}",
                  f"{r['predicted']:.4g}", f"{r['error_pct']:+.1f}")
    console.print(t)
    s = new_table(f"{name.capitalize()}: error per table",
                  ("table", "rows", "MAPE %", "worst |error| %"))
    for r in data["summary"]:
        s.add_row(r["table"], str(r["rows"]), f"{r['mape_pct']:.1f}",
                  f"{r['max_abs_error_pct']:.1f}")
    console.print(s)
