"""Shared CLI plumbing: JSON output, atomic file writes, scenario loading, error exits."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import typer
from rich.console import Console

from hwmodels.atomic import atomic_write_text  # noqa: F401  (re-exported for the CLI)
from hwmodels.catalog import read_yaml
from hwmodels.errors import ConfigError

console = Console()
err_console = Console(stderr=True)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types from numpy scalars, enums, dataclasses' dicts, NaN -> None."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def emit_json(obj: Mapping[str, Any]) -> None:
    """Print exactly one JSON object on stdout (the --json contract)."""
    print(json.dumps(_jsonable(obj), indent=2, sort_keys=False))


#: formats every plot writer can produce (matplotlib infers the format from the suffix)
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
RESULTS_SUFFIXES = (".csv", ".parquet", ".pq")

MKDIR_HELP = "Create missing parent directories of output paths (default: refuse)."


def mkdir_option() -> Any:
    """The per-command `--mkdir` flag: parent directories are never created silently."""
    return typer.Option(False, "--mkdir", help=MKDIR_HELP)


def check_output(path: str | Path | None, *, option: str,
                 suffixes: Sequence[str] | None = None,
                 kind: Literal["file", "dir"] = "file", mkdir: bool = False) -> Path | None:
    """Refuse an output path that cannot be written, BEFORE any simulation runs.

    A file output must not be a directory, must have one of `suffixes` (case-insensitive)
    and its parent must be an existing, writable directory; a directory output must not be
    an existing file and its parent must exist. A missing parent is created only with
    `mkdir` (the --mkdir flag); otherwise the error names `option` and the path. None -> None.
    """
    if path is None:
        return None
    text = str(path)
    if not text.strip():
        raise ConfigError("empty path", key=option,
                          allowed=f"a {'directory' if kind == 'dir' else 'file'} path")
    target = Path(text).expanduser()
    if kind == "file":
        if target.is_dir():
            raise ConfigError(f"'{text}' is a directory, expected a file", key=option)
        if suffixes is not None and target.suffix.lower() not in suffixes:
            raise ConfigError(f"'{text}' has unsupported suffix '{target.suffix}'",
                              key=option, allowed=list(suffixes))
    elif target.exists() and not target.is_dir():
        raise ConfigError(f"'{text}' exists and is not a directory", key=option,
                          allowed="a directory path")
    parent = target.parent
    if not parent.exists():
        if not mkdir:
            raise ConfigError(f"directory '{parent}' of '{text}' does not exist", key=option,
                              allowed="an existing directory, or pass --mkdir to create it")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create directory '{parent}': "
                              f"{err.strerror or err}", key=option) from None
    if not parent.is_dir():
        raise ConfigError(f"'{parent}' (parent of '{text}') is not a directory", key=option)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"directory '{parent}' is not writable", key=option)
    if kind == "dir" and target.exists() and not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(f"directory '{text}' is not writable", key=option)
    return target


def load_scenario_file(path: str | Path) -> dict[str, Any]:
    """Read a scenario YAML file into a mapping (ConfigError on bad YAML / not a mapping)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("scenario must be a YAML mapping", file=str(path))
    return data


def scenario_with_overrides(path: str | Path, overrides: Sequence[str] | None
                            ) -> dict[str, Any]:
    """The scenario mapping of `path` with each `--set key=value` applied; an empty value
    (`--set model=`) is an error naming the option and key, never a silent ''."""
    from simulator.schema import apply_overrides

    for item in overrides or []:
        key, sep, value = item.partition("=")
        if sep and not value.strip():
            raise ConfigError("empty value", key=f"--set {key.strip()}",
                              allowed="key=value with a non-empty value")
    return apply_overrides(load_scenario_file(path), list(overrides or []))


def parse_kv_list(items: list[str] | None, *, option: str) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'} with a clear error naming the option."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got '{item}'", key=option)
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_prices(items: list[str] | None) -> dict[str, float] | None:
    """--price DEVICE=USD_PER_HOUR (repeatable) -> {device: price}; None when not given (the
    planners check the values against their own rules)."""
    if not items:
        return None
    out = {}
    for k, v in parse_kv_list(items, option="--price").items():
        try:
            out[k] = float(v)
        except ValueError:
            raise ConfigError(f"expected a number for {k}, got '{v}'", key="--price") from None
    return out


class scenario_errors:  # noqa: N801 - used as a lowercase context manager
    """Attach the scenario file to any ConfigError raised without one (e.g. by check_plan)."""

    def __init__(self, file: str | Path) -> None:
        self.file = str(file)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, ConfigError) and not exc.file:
            raise exc.with_context(file=self.file) from None
        return False


def new_table(title: str, columns: Sequence[str] = ("key", "value"), *,
              show_header: bool = True, names: Sequence[int] = (0,)) -> Any:
    """A rich Table that never truncates what users must type: the `names` columns (catalog
    names, keys) are not wrapped, and every column folds instead of ending in an ellipsis,
    so at 80 columns a name appears whole and a long value continues on the next line."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, show_header=show_header, box=box.SIMPLE_HEAD, pad_edge=False,
              collapse_padding=True, show_edge=False)
    for i, col in enumerate(columns):
        t.add_column(str(col), overflow="fold", no_wrap=i in names)
    return t


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                float_fmt: str = ".4g") -> None:
    """One rich table on the console: floats as float_fmt, everything else as str."""
    t = new_table(title, columns)
    for row in rows:
        t.add_row(*[format(v, float_fmt) if isinstance(v, float) else str(v) for v in row])
    console.print(t)


# --- efficiency profiles: one definition of --profile / --no-profile for every command -------

PROFILE_HELP = ("Efficiency profile JSON (fleetsim calibrate); repeatable, one per device, "
                "matched by the profile's device. Overrides cluster.profile in the scenario. "
                "Default: the bundled profile for the device, else catalog defaults.")
NO_PROFILE_HELP = "Use the catalog's default efficiencies everywhere (no profile)."


# The `--profile P.json` option (repeatable: one per device) and the `--no-profile` flag,
# defined once and used as the default of every command that predicts time.
PROFILE_OPTION: Any = typer.Option(None, "--profile", help=PROFILE_HELP)
NO_PROFILE_OPTION: Any = typer.Option(False, "--no-profile", help=NO_PROFILE_HELP)


def profile_choice(paths: Sequence[str] | None, no_profile: bool) -> Any:
    """--profile / --no-profile -> a simulator.profiles.ProfileChoice (files read and checked
    here: unreadable, older format, uncatalogued device or two for one device exit 2)."""
    from simulator.profiles import ProfileChoice

    return ProfileChoice.from_paths(list(paths or []), no_profile=no_profile)


def with_profiles(out: dict[str, Any], profiles: Mapping[str, Any]) -> dict[str, Any]:
    """`out` with the "profile" key every JSON result carries: {device: describe()}."""
    from simulator.profiles import describe_used

    out["profile"] = describe_used(profiles)
    return out


def print_efficiency(out: Mapping[str, Any]) -> None:
    """One 'efficiency: <name> (<source>)' line per device of a result's "profile" key."""
    from simulator.profiles import efficiency_lines

    for line in efficiency_lines(out.get("profile") or {}):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
