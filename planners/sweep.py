"""What-if sweeps: evaluate a scenario over a grid of overrides (x seeds) through an executor.

`sweep(base, {"cluster.num_devices": [64, 128], "training.micro_batch": [1, 2]}, evaluate)`
deep-copies the base scenario mapping for every grid point, sets each dotted key (with
simulator.schema.set_dotted, the setter behind `--set` too), and calls
`evaluate(mapping) -> metrics` (a mapping of scalars, or an object with to_dict()) in the
executor. One row per point (and seed): the grid values, the metrics, `ok` and `error` (a
failed point is a row with ok=False, never a lost one). `write_results` writes the DataFrame
atomically as Parquet or CSV; `plot_sweep` draws a metric against a grid key.
`evaluate_training` is the evaluate function for training scenarios (simulate train),
`evaluate_serving` for serving scenarios (simulate serve's summary); `scenario_kind` tells
them apart and `check_sweep` validates the grid keys and the metric against the scenario's
schema before any point runs, so a typo is one error, not a table of failed points.
`check_outcome` turns a sweep where every point failed into an error (the first one).
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hwmodels.atomic import atomic_write
from hwmodels.errors import ConfigError
from hwmodels.profile import DeviceProfile
from planners.executors import Executor, LocalExecutor, seed_int, spawn_seeds
from simulator.profiles import NO_CHOICE, ProfileChoice
from simulator.schema import parse_scalar, set_dotted

Evaluate = Callable[[dict[str, Any]], Any]
SEED_KEY = "seed"

# The scalar metrics of each scenario kind (`--metric`): simulate train's and simulate
# serve's --json fields, nested ones flattened as a.b (as the sweep's columns are).
TRAINING_METRICS = ("iteration_time_s", "tokens_per_s", "tflops_per_gpu",
                    "hardware_tflops_per_gpu", "mfu", "hfu", "peak_memory_gib",
                    "memory_needed_gib", "memory_capacity_gib", "num_microbatches",
                    "breakdown.compute_s", "breakdown.exposed_comm_s", "breakdown.bubble_s",
                    "breakdown.optimizer_s")
SERVING_METRICS = ("requests", "completed", "dropped", "ttft_s.p50", "ttft_s.p90", "ttft_s.p99",
                   "tpot_s.p50", "tpot_s.p90", "tpot_s.p99", "e2e_s.p50", "e2e_s.p99",
                   "slo_attainment", "goodput_rps", "throughput_tokens_per_s", "gpu_hours",
                   "cost_usd", "energy_kwh", "retries", "prefix_hit_rate", "migrations",
                   "replica_seconds", "energy_per_request_j", "energy_per_token_j",
                   "cost_per_million_tokens_usd", "mean_power_w", "peak_row_power_w")
METRICS = {"training": TRAINING_METRICS, "serving": SERVING_METRICS}


def scenario_kind(mapping: Mapping[str, Any], *, file: str | None = None) -> str:
    """'training' (a training: or parallelism: section) or 'serving' (serving:/workload:)."""
    if "training" in mapping or "parallelism" in mapping:
        return "training"
    if "serving" in mapping or "workload" in mapping:
        return "serving"
    raise ConfigError("cannot tell a training scenario (training:, parallelism:) from a "
                      "serving one (serving:, workload:)", file=file, key="scenario",
                      allowed=list(METRICS))


def _load(kind: str, mapping: dict[str, Any], file: str | None,
          profiles: ProfileChoice | None = None) -> Any:
    if kind == "training":
        from simulator.training.scenario import load_training_scenario

        return load_training_scenario(mapping, file=file, profiles=profiles)
    from simulator.serving import load_serving_scenario

    return load_serving_scenario(mapping, file=file, profiles=profiles)


def sweep_profiles(base_mapping: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], *,
                   kind: str, file: str | None = None, profiles: ProfileChoice | None = None
                   ) -> dict[str, DeviceProfile]:
    """{device: profile} over the base scenario and every grid value of a device key; a
    --profile for a device none of them uses is a ConfigError."""
    choice = (profiles or NO_CHOICE).lenient()
    mappings = [copy.deepcopy(dict(base_mapping))]
    for key, values in grid.items():
        if key.split(".")[-1] == "device":
            for value in values:
                mapping = copy.deepcopy(dict(base_mapping))
                set_dotted(mapping, key, value, where="--grid")
                mappings.append(mapping)
    used: dict[str, DeviceProfile] = {}
    for mapping in mappings:
        try:
            used.update(_load(kind, mapping, file, choice).profiles())
        except ConfigError:
            if mapping is mappings[0]:
                raise
    (profiles or NO_CHOICE).check_devices(used, where=f"{file or 'the sweep'} (and its grid)")
    return dict(sorted(used.items()))


def check_sweep(base_mapping: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], *,
                metric: str | None = None, file: str | None = None) -> str:
    """Validate before any work: the scenario kind, each grid key (an unknown key, or a key
    under a scalar, is a ConfigError naming --grid and the allowed keys) and the metric.
    Returns the kind. Values are not judged here: a bad value is one failed point."""
    kind = scenario_kind(base_mapping, file=file)
    if metric is not None and metric not in METRICS[kind]:
        raise ConfigError(f"unknown {kind} metric '{metric}'", key="--metric",
                          allowed=list(METRICS[kind]))
    try:
        _load(kind, copy.deepcopy(dict(base_mapping)), file, NO_CHOICE)
    except ConfigError as err:
        if "unknown key" in str(err):
            raise  # the scenario (or a --set) itself, not the grid
    if kind == "training":
        inert = [k for k in grid if k == "run" or k.startswith("run.")]
        if inert:  # evaluate_training simulates one iteration; run: is the long-run section
            raise ConfigError(f"grid key '{inert[0]}' has no effect: a training sweep "
                              "simulates one iteration, not the run: section", file=file,
                              key="--grid", allowed="model, cluster.*, training.*, "
                              "parallelism.* (plan checkpoint searches run.checkpoint)")
    for point in grid_points(grid)[:1]:
        for key, value in point.items():
            mapping = copy.deepcopy(dict(base_mapping))
            set_dotted(mapping, key, value, where="--grid")
            try:
                _load(kind, mapping, file)
            except ConfigError as err:
                at = err.key or ""
                if "unknown key" in str(err) and (key == at or key.startswith(at + ".")):
                    where = "" if at == key else f" (at '{at}')"
                    raise ConfigError(f"unknown {kind} scenario key '{key}'{where}",
                                      file=file, key="--grid", allowed=err.allowed) from None
    return kind


def evaluator(kind: str, *, file: str | None = None,
              profiles: ProfileChoice | None = None) -> Evaluate:
    """The evaluate function of a scenario kind (a picklable callable for executors);
    `profiles` (--profile / --no-profile) goes with it to every point."""
    choice = None if profiles is None else profiles.lenient()
    if kind == "training":
        return functools.partial(evaluate_training, file=file, profiles=choice)
    if kind == "serving":
        return functools.partial(evaluate_serving, file=file, profiles=choice)
    raise ConfigError(f"unknown scenario kind '{kind}'", key="scenario", allowed=list(METRICS))


def check_outcome(df: pd.DataFrame) -> int:
    """Failed points of a sweep; every point failing is a ConfigError with the first error
    (a table of failures is not a result)."""
    failed = int((~df["ok"]).sum()) if "ok" in df else 0
    if len(df) and failed == len(df):
        raise ConfigError(f"all {failed} sweep points failed; first: {df['error'].iloc[0]}",
                          key="--grid")
    return failed


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
        if key.strip() in grid:
            raise ConfigError(f"grid key '{key.strip()}' given twice (the first would be "
                              "ignored)", key="--grid", allowed="key=v1,v2,... once per key")
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


def evaluate_training(mapping: dict[str, Any], *, file: str | None = None,
                      profiles: ProfileChoice | None = None) -> dict[str, Any]:
    """Simulate one training-scenario mapping; the `fleetsim simulate train --json` fields
    (file: the scenario's path, for a profile named relative to it)."""
    from simulator.training.scenario import load_training_scenario
    from simulator.training.simulate import simulate_iteration

    sc = load_training_scenario(mapping, file=file, profiles=profiles)
    return simulate_iteration(sc.model, sc.cluster, sc.training, sc.parallel,
                              profile=sc.profile).to_dict()


def evaluate_serving(mapping: dict[str, Any], *, file: str | None = None,
                     profiles: ProfileChoice | None = None) -> dict[str, Any]:
    """Simulate one serving-scenario mapping; the `fleetsim simulate serve --json` summary
    (file: the scenario's path, for a trace or profile named relative to it)."""
    from simulator.serving import load_serving_scenario, load_workload, simulate_serving

    sc = load_serving_scenario(mapping, file=file, profiles=profiles)
    return simulate_serving(sc, load_workload(sc)).summary()


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
