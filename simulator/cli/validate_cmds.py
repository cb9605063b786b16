"""`fleetsim validate`: the bundled published-measurement checks with their errors."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from hwmodels.errors import ConfigError
from simulator.cli.common import console, emit_json

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
    """Predict every bundled published measurement and print the errors."""
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'", key="suite", allowed=SUITES)
    out: dict[str, Any] = {}
    if suite in ("training", "all"):
        out["training"] = _training()
    if suite in ("serving", "all"):
        try:
            out["serving"] = _serving()
        except ModuleNotFoundError:
            if suite == "serving":
                raise ConfigError("no bundled serving measurements in this build",
                                  key="suite", allowed=["training"]) from None
    if json_out:
        emit_json(out)
        return
    if "training" in out:
        t = Table(title="Training: predicted vs published")
        for col in ("source", "model", "config", "metric", "published", "predicted", "error %"):
            t.add_column(col)
        for r in out["training"]["rows"]:
            t.add_row(r["source"], r["model"], r["config"], r["metric"], f"{r['published']:.4g}",
                      f"{r['predicted']:.4g}", f"{r['error_pct']:+.1f}")
        console.print(t)
        s = Table(title="Training: error per table")
        for col in ("table", "rows", "MAPE %", "worst |error| %"):
            s.add_column(col)
        for r in out["training"]["summary"]:
            s.add_row(r["table"], str(r["rows"]), f"{r['mape_pct']:.1f}",
                      f"{r['max_abs_error_pct']:.1f}")
        console.print(s)
    if "serving" in out:
        console.print(out["serving"])
