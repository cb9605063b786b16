"""`fleetsim validate`: the bundled published-measurement checks, with the error of the catalog
defaults and of each device profile side by side.

Every row is predicted with the catalog defaults; each profile (bundled, or `--profile`)
predicts the rows of its own device again, so its column is "n/a" on other devices' rows.
The published rows are end-to-end measurements: validation only, never fitted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from fleetsim.cli.common import console, emit_json, new_table
from fleetsim.cli.validate_accel import (
    TABLE_HEADS,
    accel_report,
    before_files,
    published_sources,
    read_before,
    table_rows,
)
from hwmodels.errors import ConfigError
from hwmodels.profile import CATALOG_DEFAULTS_NAME, DeviceProfile

SUITES = ("training", "serving", "all")
# A profile's table MAPE within this many percentage points of the defaults' is "unchanged"
# (the printed MAPEs are rounded to 0.1).
UNCHANGED_PCT = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One efficiency source of the side-by-side: the catalog defaults (every device) or a
    complete profile of one device."""

    name: str
    device: str | None  # None: applies to every device (the catalog defaults)
    profile: DeviceProfile | None = None

    def __post_init__(self) -> None:
        if (self.device is None) != (self.profile is None):
            raise ValueError("a Source has both device and profile, or neither (defaults)")

    def describe(self) -> dict[str, Any]:
        if self.profile is None:
            return {"name": self.name, "devices": "all",
                    "source": "hwmodels/catalog/devices.yaml efficiencies"}
        return {**self.profile.describe(), "name": self.name}


DEFAULTS = Source(name=CATALOG_DEFAULTS_NAME, device=None)


def load_source(path: str | Path, name: str | None = None) -> Source:
    """A profile file as a Source: format/version checked, its device a catalog device
    (aliases resolved), parts it leaves out completed from the catalog defaults."""
    from hwmodels.catalog import load_device
    from hwmodels.ops import resolve_profile
    from hwmodels.profile import load_profile

    prof = load_profile(path)
    try:
        spec = load_device(prof.device)
    except ConfigError as err:
        raise ConfigError(err.message, file=str(path), key="device",
                          allowed=err.allowed) from None
    if spec.name != prof.device:
        prof = replace(prof, device=spec.name)
    complete = resolve_profile(spec, prof)
    return Source(name=name or complete.name, device=spec.name, profile=complete)


def choose_sources(profiles: Sequence[str] = (), no_profile: bool = False,
                   bundled: Mapping[str, Path] | None = None) -> list[Source]:
    """Defaults first, then every bundled profile, then each --profile (one with a bundled
    profile's name replaces it; repeated names get the file name appended)."""
    if no_profile and profiles:
        raise ConfigError("cannot be combined with --profile (it means the catalog defaults "
                          "only)", key="--no-profile")
    if no_profile:
        return [DEFAULTS]
    if bundled is None:
        from hwmodels.profile import bundled_profiles

        bundled = bundled_profiles()
    chosen: dict[str, Source] = {}
    for path in bundled.values():
        src = load_source(path)
        chosen[src.name] = src
    given: set[str] = set()
    for path in profiles:
        src = load_source(path)
        if src.name in given or src.name == DEFAULTS.name:
            src = replace(src, name=f"{src.name} ({Path(path).name})")
        given.add(src.name)
        chosen[src.name] = src
    return [DEFAULTS, *chosen.values()]


# -- one suite, every source ------------------------------------------------------------------

Runner = Callable[[Mapping[str, Any] | None, Collection[str] | None], pd.DataFrame]
Summarizer = Callable[[pd.DataFrame], list[dict[str, Any]]]


def _run_training(profiles: Mapping[str, Any] | None,
                  devices: Collection[str] | None) -> pd.DataFrame:
    from simulator.training.validation import validate_training

    return validate_training(profiles=profiles, devices=devices)


def _summarize_training(df: pd.DataFrame) -> list[dict[str, Any]]:
    from simulator.training.validation import summarize

    return summarize(df).to_dict(orient="records")


def _run_serving(profiles: Mapping[str, Any] | None,
                 devices: Collection[str] | None) -> pd.DataFrame:
    from simulator.serving.validation import validate_serving

    return pd.DataFrame(validate_serving(profiles=profiles, devices=devices)["rows"])


def _summarize_serving(df: pd.DataFrame) -> list[dict[str, Any]]:
    from simulator.serving.validation import summarize

    return summarize(df)


SUITE_FUNCS: dict[str, tuple[Runner, Summarizer]] = {
    "training": (_run_training, _summarize_training),
    "serving": (_run_serving, _summarize_serving),
}


def _verdict(mape_pct: float, defaults_pct: float) -> str:
    if abs(mape_pct - defaults_pct) < UNCHANGED_PCT:
        return "unchanged"
    return "improves" if mape_pct < defaults_pct else "worse"


def suite_report(suite: str, sources: Sequence[Source]) -> dict[str, Any]:
    """{"sources", "rows", "summary"} of one suite. rows/summary keep the defaults' numbers
    under their old keys; `by_source` beside them holds each source's (None = n/a)."""
    run, summarize = SUITE_FUNCS[suite]
    base = run(None, None)  # every device on the catalog defaults
    per_source: dict[str, pd.DataFrame] = {}
    for src in sources:
        if src.profile is None:
            per_source[src.name] = base
        else:
            assert src.device is not None  # noqa: S101  (Source.__post_init__)
            per_source[src.name] = run({src.device: src.profile}, {src.device})
    rows = base.to_dict(orient="records")
    for row in rows:
        row["by_source"] = {}
    for name, df in per_source.items():
        hits = df.set_index("row")[["predicted", "error_pct"]].to_dict(orient="index")
        for row in rows:
            hit = hits.get(row["row"])
            row["by_source"][name] = None if hit is None else \
                {"predicted": hit["predicted"], "error_pct": hit["error_pct"]}
    summary = summarize(base)
    for entry in summary:
        entry["by_source"] = {}
    tables = {entry["table"]: entry for entry in summary}
    for name, df in per_source.items():
        own = {e["table"]: e for e in summarize(df)} if len(df) else {}
        same_rows = {e["table"]: e for e in summarize(base[base.row.isin(df.row)])} \
            if len(df) else {}
        for table, entry in tables.items():
            mine = own.get(table)
            if mine is None:
                entry["by_source"][name] = None
                continue
            ref = float(same_rows[table]["mape_pct"])
            entry["by_source"][name] = {
                "rows": int(mine["rows"]), "mape_pct": float(mine["mape_pct"]),
                "max_abs_error_pct": float(mine["max_abs_error_pct"]),
                "defaults_mape_pct": ref, "verdict": _verdict(float(mine["mape_pct"]), ref)}
    out = {"sources": [s.describe() for s in sources], "rows": rows, "summary": summary}
    if suite == "serving":
        from simulator.serving.validation import summarize_engines

        out["engines"] = summarize_engines(base)  # catalog defaults, preset vs kernel-only
    return out


def validation_report(suite: str = "all", sources: Sequence[Source] = (DEFAULTS,)
                      ) -> dict[str, Any]:
    """{"training": ..., "serving": ...} for `suite` (training | serving | all)."""
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'", key="suite", allowed=SUITES)
    names = ("training", "serving") if suite == "all" else (suite,)
    return {name: suite_report(name, sources) for name in names}


def validate_cmd(
    suite: str = typer.Argument("all", help="training | serving | all"),
    profile: list[str] = typer.Option(
        None, "--profile", help="Profile JSON to compare (repeatable); adds a column, or "
        "replaces the bundled profile of the same name."),
    no_profile: bool = typer.Option(False, "--no-profile",
                                    help="Catalog defaults only (no profile columns)."),
    before_dir: str = typer.Option(
        None, "--before-dir", help="Folder of accel_before_*.csv (what the base commit "
        "predicted) for the per-accelerator table; default: the source tree's "
        "benchmarks/data."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Predict every bundled published measurement and print the errors of the catalog
    defaults and of each profile (bundled or --profile) side by side, then MAPE per
    accelerator with the base commit's ("before") beside it.

    Example:

        fleetsim validate training --profile a100.json
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'", key="suite", allowed=SUITES)
    sources = choose_sources(profile or (), no_profile)
    before = read_before(before_files(before_dir))  # bad files fail before the long run
    out = validation_report(suite, sources)
    add_accelerators(out, before)
    if json_out:
        emit_json(out)
        return
    for suite_name, data in out.items():
        _print_suite(suite_name, data, sources)
        print_accelerators(suite_name, data)


def add_accelerators(out: dict[str, Any], before: pd.DataFrame) -> None:
    """Each suite of a validation report gets "accelerators" (MAPE per accelerator, catalog
    defaults, with the before figures) and "before_unassigned" (before rows of no suite)."""
    accel = accel_report(out, before, published_sources())
    for suite_name, data in out.items():
        data["accelerators"] = accel[suite_name]
        data["before_unassigned"] = accel["unassigned_before"]


def print_accelerators(name: str, data: Mapping[str, Any]) -> None:
    """The per-accelerator table of one suite (and a note on unassigned before rows)."""
    t = new_table(f"{name.capitalize()}: MAPE per accelerator (catalog defaults; before = "
                  "base commit, benchmarks/data/accel_before_*.csv)", TABLE_HEADS)
    for cells in table_rows(data.get("accelerators", [])):
        t.add_row(*cells)
    console.print(t)
    loose = data.get("before_unassigned") or []
    if loose:
        console.print(f"{len(loose)} before row(s) match no validation source: "
                      + ", ".join(sorted({f"{r['file']}:{r['source']}" for r in loose})),
                      highlight=False, soft_wrap=True, markup=False)


def _err(cell: Mapping[str, Any] | None, fmt: str = "{:+.1f}") -> str:
    return "n/a" if cell is None else fmt.format(cell["error_pct"])


def _print_suite(name: str, data: dict[str, Any], sources: Sequence[Source]) -> None:
    profiles = [s for s in sources if s.profile is not None]
    heads = ("source", "model", "config", "metric", "published", "predicted",
             "defaults err %", *(f"{s.name} err %" for s in profiles))
    t = new_table(f"{name.capitalize()}: predicted (catalog defaults) vs published", heads,
                  names=(1,))
    for r in data["rows"]:
        t.add_row(r["source"], r["model"], r["config"], r["metric"], f"{r['published']:.4g}",
                  f"{r['predicted']:.4g}", f"{r['error_pct']:+.1f}",
                  *(_err(r["by_source"][s.name]) for s in profiles))
    console.print(t)
    s_heads = ("table", "rows", "defaults MAPE %", "worst |error| %",
               *(f"{s.name} MAPE %" for s in profiles))
    st = new_table(f"{name.capitalize()}: error per table", s_heads)
    for r in data["summary"]:
        cells = []
        for src in profiles:
            mine = r["by_source"][src.name]
            cells.append("n/a" if mine is None else f"{mine['mape_pct']:.1f}")
        st.add_row(r["table"], str(r["rows"]), f"{r['mape_pct']:.1f}",
                   f"{r['max_abs_error_pct']:.1f}", *cells)
    console.print(st)
    if data.get("engines"):
        et = new_table(f"{name.capitalize()}: MAPE per engine, preset vs kernel-only (catalog "
                       "defaults)", ("engine", "rows", "preset MAPE %", "kernel-only MAPE %",
                                     "tables"))
        for e in data["engines"]:
            et.add_row(str(e["engine"]), str(e["rows"]), f"{e['mape_preset_pct']:.1f}",
                       f"{e['mape_kernel_only_pct']:.1f}", ", ".join(e["tables"]))
        console.print(et)
    if name == "training":
        from simulator.training.validation import (
            HELDOUT_A100_TABLES,
            HELDOUT_H100_TABLES,
            TARGET_TABLES,
        )

        console.print(f"TARGET = {', '.join(TARGET_TABLES)} (the fidelity target); "
                      f"HELDOUT-H100 = {', '.join(HELDOUT_H100_TABLES)}; held-out A100: "
                      f"{', '.join(HELDOUT_A100_TABLES)} (held out: no constant was set from "
                      "them; benchmarks/training_heldout.py)",
                      highlight=False, soft_wrap=True)
    if not profiles:
        return
    for r in data["summary"]:
        said = []
        for src in profiles:
            mine = r["by_source"][src.name]
            if mine is not None:
                rows = "" if mine["rows"] == r["rows"] else f" on its {mine['rows']} rows"
                said.append(f"{src.name} {mine['verdict']}{rows} "
                            f"({mine['defaults_mape_pct']:.1f}% -> {mine['mape_pct']:.1f}%)")
        console.print(f"{r['table']}: " + ("; ".join(said) if said else "no profile applies"),
                      highlight=False, soft_wrap=True)
