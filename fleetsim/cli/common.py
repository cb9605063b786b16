"""Shared CLI plumbing: JSON output, atomic file writes, scenario loading, error exits."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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


def load_scenario_file(path: str | Path) -> dict[str, Any]:
    """Read a scenario YAML file into a mapping (ConfigError on bad YAML / not a mapping)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("scenario must be a YAML mapping", file=str(path))
    return data


def parse_kv_list(items: list[str] | None, *, option: str) -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'} with a clear error naming the option."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got '{item}'", key=option)
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class scenario_errors:  # noqa: N801 - used as a lowercase context manager
    """Attach the scenario file to any ConfigError raised without one (e.g. by check_plan)."""

    def __init__(self, file: str | Path) -> None:
        self.file = str(file)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, ConfigError) and not exc.file:
            message = str(exc)
            raise ConfigError(message, file=self.file) from None
        return False


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                float_fmt: str = ".4g") -> None:
    """One rich table on the console: floats as float_fmt, everything else as str."""
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(str(col))
    for row in rows:
        t.add_row(*[format(v, float_fmt) if isinstance(v, float) else str(v) for v in row])
    console.print(t)
