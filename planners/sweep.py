"""What-if sweeps: evaluate a scenario over a grid of overrides (x seeds) through an executor.

`sweep(base, {"cluster.num_devices": [64, 128], "training.micro_batch": [1, 2]}, evaluate)`
deep-copies the base scenario mapping for every grid point, sets each dotted key (with
simulator.schema.set_dotted, the setter behind `--set` too), and calls
`evaluate(mapping) -> metrics` (a mapping of scalars, or an object with to_dict()) in the
executor. One row per point (and seed): the grid values, the metrics, `ok` and `error` (a
failed point is a row with ok=False, never a lost one). `write_results` writes the DataFrame
atomically as Parquet or CSV; `plot_sweep` draws a metric against a grid key.
`evaluate_training` is the evaluate function for training scenarios (simulate train).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hwmodels.atomic import atomic_write
from hwmodels.errors import ConfigError
from planners.executors import Executor, LocalExecutor, seed_int, spawn_seeds
from simulator.schema import parse_scalar, set_dotted

Evaluate = Callable[[dict[str, Any]], Any]
SEED_KEY = "seed"


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, in key order (last key varies fastest)."""
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"needs a non-empty list of values, got {values!r}",
                              key=f"grid.{key}")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(grid[k] for k in keys))]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """CLI form `key=v1,v2,...` -> {key: [v1, v2, ...]}; values parsed as YAML scalars."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or not raw.strip():
            raise ConfigError(f"bad grid item '{item}'", key="--grid", allowed="key=v1,v2,...")
        grid[key.strip()] = [parse_scalar(v.strip()) for v in raw.split(",")]
    return grid


def _metrics(value: Any) -> dict[str, Any]:
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise ConfigError(f"evaluate returned {type(value).__name__}, not a mapping of metrics",
                          key="evaluate")
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, Mapping):  # one level of nesting: breakdown{compute_s} -> breakdown.compute_s
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        elif not isinstance(v, (list, tuple)):
            out[str(k)] = v
    return out


def sweep(base_mapping: Mapping[str, Any], grid: Mapping[str, Sequence[Any]],
          evaluate: Evaluate, executor: Executor | None = None, *, num_seeds: int = 1,
          seed: int | None = 0) -> pd.DataFrame:
    """Evaluate base_mapping with every grid point applied; one row per point (and seed).

    With num_seeds > 1 each point runs with seeds spawned from `seed` (SeedSequence.spawn),
    set as the scenario's top-level `seed` key, and the rows carry a `seed` column.
    """
    points = grid_points(grid)
    seeds: list[int | None] = ([None] if num_seeds == 1
                               else [seed_int(s) for s in spawn_seeds(seed, num_seeds)])
    tasks, labels = [], []
    for point in points:
        for s in seeds:
            mapping = copy.deepcopy(dict(base_mapping))
            for key, value in point.items():
                set_dotted(mapping, key, value, where="--grid")
            label = dict(point)
            if s is not None:
                mapping[SEED_KEY] = s
                label[SEED_KEY] = s
            tasks.append(mapping)
            labels.append(label)
    own = executor is None
    ex: Executor = LocalExecutor() if own else executor  # type: ignore[assignment]
    try:
        results = ex.map(evaluate, tasks)
    finally:
        if own:
            ex.close()
    rows = []
    for label, res in zip(labels, results, strict=True):
        row: dict[str, Any] = dict(label)
        if res.ok:
            try:
                row.update(_metrics(res.value))
                row["ok"], row["error"] = True, ""
            except ConfigError as exc:
                row["ok"], row["error"] = False, str(exc)
        else:
            row["ok"], row["error"] = False, res.error.splitlines()[0] if res.error else ""
        row["duration_s"] = res.duration_s
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_training(mapping: dict[str, Any]) -> dict[str, Any]:
    """Simulate one training-scenario mapping; the `fleetsim simulate train --json` fields."""
    from simulator.training.scenario import load_training_scenario
    from simulator.training.simulate import simulate_iteration

    sc = load_training_scenario(mapping)
    return simulate_iteration(sc.model, sc.cluster, sc.training, sc.parallel).to_dict()


_atomic = atomic_write  # kept for callers of the old private name


def check_results_path(path: str | Path) -> Path:
    """Refuse an output path we cannot write *before* any work is done (suffix, pyarrow)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError("Parquet output needs pyarrow (pip install pyarrow)",
                              file=str(path), key="out", allowed=[".csv"]) from None
    elif suffix != ".csv":
        raise ConfigError(f"unknown output format '{suffix}'", file=str(path), key="out",
                          allowed=[".parquet", ".pq", ".csv"])
    return path


def write_results(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a sweep DataFrame atomically: .parquet (pyarrow) or .csv by the file suffix."""
    path = check_results_path(path)
    if path.suffix.lower() == ".csv":
        return _atomic(path, lambda p: df.to_csv(p, index=False))
    return _atomic(path, lambda p: df.to_parquet(p, index=False))


def plot_sweep(df: pd.DataFrame, x: str, y: str, *, hue: str | None = None,
               path: str | Path | None = None, title: str | None = None) -> Any:
    """Line plot of metric y against grid key x, one line per value of hue (mean over seeds);
    failed points are left out. Saved atomically (format from the suffix) when path is given."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    for col in (x, y) + ((hue,) if hue else ()):
        if col not in df.columns:
            raise ConfigError(f"no column '{col}' in the sweep results", key="plot",
                              allowed=list(df.columns))
    data = df[df["ok"]] if "ok" in df.columns else df
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    groups = data.groupby(hue, sort=True) if hue else [(None, data)]
    for value, part in groups:
        line = part.groupby(x, sort=True)[y].mean()
        label = f"{hue}={value[0] if isinstance(value, tuple) else value}" if hue else y
        ax.plot(line.index, line.to_numpy(), marker="o", label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        target = Path(path)
        _atomic(target, lambda p: fig.savefig(p, format=target.suffix.lstrip(".") or "png"))
    return fig
