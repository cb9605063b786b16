"""One scenario reader driven by frozen dataclass schemas, and one dotted-override setter.

A section's allowed keys, types and defaults are the fields of a frozen dataclass; its checks
live in that dataclass's `__post_init__`. `read_section(raw, cls, file=..., section=...)`
turns one YAML mapping into `cls`, recursing into nested dataclasses, so adding a scenario
key is one line: a field. Field types the reader understands:

- `int`, `float`, `bool`, `str`, `Any` (passed through), `X | None`, unions tried in order
  (a mapping goes to the dataclass member), `Literal[...]`, enums (from their string value,
  any case), `tuple[X, ...]`, `tuple[X, Y]`, `list[X]`, `Mapping[str, X]` (a FrozenMap),
  nested dataclasses;
- units, as `Annotated` aliases: `Seconds` (30, "30s", "15m", "2h", "54d"), `Bytes`
  ("80GiB", "1.5TB"), `BytesPerSecond` ("2TB/s").

A field's YAML key is its name unless `field(metadata=yaml_key("duration"))` says otherwise.
A YAML null is read as "not given" (the default applies) where the field may be None
(`X | None`, `Any`, a whole section); for any other field it is an error naming the key
and the type expected. Errors are ConfigError naming the
file, the dotted key and the allowed keys or values; errors raised by `__post_init__` get the
file added.

Serving uses the same reader: the whole file is `ServingScenarioFile`
(simulator/serving/scenario.py) with `serving:` a `ServingConfig` (durations as `Seconds`,
scheduler/router/preemption as StrEnums, replica groups as `tuple[GroupSpec, ...]`), and
power/failures/autoscale/migration the configs of simulator/serving/cluster_config.py.
A value that needs another section (training's `dp: auto`, serving's default `replicas`,
which need the cluster) is read as written and resolved right after, in the same loader.
A float field also takes a numeric string (YAML 1.1 reads 2.0e9 as one).

`apply_overrides` / `set_dotted` are the one dotted-override setter behind `--set`,
`sweep --grid` and the planners; `parse_scalar` reads a value the way YAML reads a scalar.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
import types
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap
from hwmodels.units import parse_duration_s, parse_size_bytes

T = TypeVar("T")
_NUMBER_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class Unit(StrEnum):
    """Units a float field can be written in (the Annotated marker of Seconds, Bytes, ...)."""

    SECONDS = "seconds"
    BYTES = "bytes"
    BYTES_PER_S = "bytes_per_s"


Seconds = Annotated[float, Unit.SECONDS]
Bytes = Annotated[float, Unit.BYTES]
BytesPerSecond = Annotated[float, Unit.BYTES_PER_S]

YAML_KEY = "yaml_key"


def yaml_key(name: str) -> dict[str, str]:
    """Field metadata: the field is written as `name` in YAML (e.g. duration -> duration_s)."""
    return {YAML_KEY: name}


def field_key(f: dataclasses.Field[Any]) -> str:
    """The YAML key of a dataclass field."""
    return str(f.metadata.get(YAML_KEY, f.name))


def section_keys(cls: type) -> list[str]:
    """The YAML keys a schema dataclass accepts, in field order."""
    return [field_key(f) for f in dataclasses.fields(cls) if f.init]


def _dotted(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def with_file(err: ConfigError, file: str | None) -> ConfigError:
    """err with the scenario file named (unchanged when it already names one or none is known)."""
    return err.with_context(file=file)


def check_keys(raw: object, allowed: Sequence[str], *, file: str | None,
               section: str) -> dict[str, Any]:
    """raw as a dict (None -> {}); a non-mapping or an unknown key names file, key and allowed."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping, got {type(raw).__name__}", file=file,
                          key=section or None, allowed=list(allowed))
    for k in raw:
        if k not in allowed:
            raise ConfigError("unknown key", file=file, key=_dotted(section, str(k)),
                              allowed=list(allowed))
    return dict(raw)


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return (f.default is not dataclasses.MISSING
            or f.default_factory is not dataclasses.MISSING)  # type: ignore[misc]


@functools.lru_cache(maxsize=256)  # one entry per schema class: a small, fixed set
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """(type hints by field name, fields by YAML key) of a schema dataclass."""
    return (get_type_hints(cls, include_extras=True),
            {field_key(f): f for f in dataclasses.fields(cls) if f.init})


def read_section(raw: object, cls: type[T], *, file: str | None = None,
                 section: str = "") -> T:
    """An instance of the schema dataclass `cls` from one scenario mapping (None: defaults)."""
    hints, by_key = _schema(cls)
    values = check_keys(raw, list(by_key), file=file, section=section)
    kwargs: dict[str, Any] = {}
    for key, f in by_key.items():
        dotted = _dotted(section, key)
        value = values.get(key)
        if value is not None:
            kwargs[f.name] = read_value(value, hints[f.name], file=file, key=dotted)
        elif key in values and not _nullable(hints[f.name]):
            raise ConfigError("null is not allowed here", file=file, key=dotted,
                              allowed=_allowed_of(hints[f.name]))
        elif not _has_default(f):
            hint = hints[f.name]
            allowed = section_keys(hint) if dataclasses.is_dataclass(hint) else None
            raise ConfigError("missing required key", file=file, key=dotted, allowed=allowed)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise with_file(err, file) from None


def _nullable(hint: Any) -> bool:
    """Whether a YAML null may stand for "not given": `X | None`, `Any`, and whole sections
    (an empty `power:` mapping means its defaults); never a plain int/float/str/enum/list."""
    if hint is Any or dataclasses.is_dataclass(hint) or get_origin(hint) in (dict, Mapping):
        return True
    return get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)


def _members(hint: Any) -> tuple[Any, ...]:
    return tuple(a for a in get_args(hint) if a is not type(None))


def _allowed_of(hint: Any) -> str:
    """What a value of this type may be, in words (for union error messages)."""
    origin = get_origin(hint)
    if origin is Literal:
        return ", ".join(str(a).lower() if isinstance(a, bool) else str(a)
                         for a in get_args(hint))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return ", ".join(str(m.value) for m in hint)
    if origin is Annotated:
        return _UNIT_WORDS[_unit_of(hint)]
    if dataclasses.is_dataclass(hint):
        return "a mapping of " + ", ".join(section_keys(hint))  # type: ignore[arg-type]
    return getattr(hint, "__name__", str(hint))


def _read_union(value: object, hint: Any, *, file: str | None, key: str) -> Any:
    members = _members(hint)
    if isinstance(value, Mapping):
        for m in members:
            if dataclasses.is_dataclass(m) or get_origin(m) in (dict, Mapping):
                return read_value(value, m, file=file, key=key)
    errors: list[ConfigError] = []
    for m in members:
        try:
            return read_value(value, m, file=file, key=key)
        except ConfigError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    raise ConfigError(f"cannot read {value!r}", file=file, key=key,
                      allowed="; ".join(_allowed_of(m) for m in members))


_UNIT_WORDS = {Unit.SECONDS: "seconds or a string like 30s, 15m, 2h, 54d",
               Unit.BYTES: "bytes or a string like 80GiB, 1.5TB",
               Unit.BYTES_PER_S: "B/s or a string like 2TB/s"}


def _unit_of(hint: Any) -> Unit:
    for meta in get_args(hint)[1:]:
        if isinstance(meta, Unit):
            return meta
    raise TypeError(f"schema type {hint} has no Unit marker")


def _read_unit(value: object, unit: Unit, *, file: str | None, key: str) -> float:
    if unit is Unit.SECONDS:
        return parse_duration_s(value, key=key, file=file)
    if unit is Unit.BYTES_PER_S and isinstance(value, str):
        value = value.strip().removesuffix("/s")
    return parse_size_bytes(value, key=key, file=file)


def _read_enum(value: object, hint: type[Enum], *, file: str | None, key: str) -> Enum:
    if isinstance(value, hint):
        return value
    if not isinstance(value, bool):
        for candidate in (value, str(value).lower()):
            try:
                return hint(candidate)
            except ValueError:
                continue
    raise ConfigError(f"unknown value '{value}'", file=file, key=key,
                      allowed=[str(m.value) for m in hint])


def _read_scalar(value: object, hint: type, *, file: str | None, key: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true or false, got {value!r}", file=file, key=key,
                          allowed=["true", "false"])
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"expected an integer, got {value!r}", file=file, key=key)
    if hint is float:
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError("NaN is not a number any setting can take", file=file, key=key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _NUMBER_RE.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 2.0e9 (no exponent sign) as a string
        raise ConfigError(f"expected a number, got {value!r}", file=file, key=key)
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"expected a string, got {value!r}", file=file, key=key)
    raise TypeError(f"schema type {hint!r} is not supported by read_section")


def read_value(value: object, hint: Any, *, file: str | None = None, key: str = "") -> Any:
    """One YAML value as the schema type `hint` (see the module docstring for the types)."""
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin is Annotated:
        return _read_unit(value, _unit_of(hint), file=file, key=key)
    if origin in (Union, types.UnionType):
        return _read_union(value, hint, file=file, key=key)
    if origin is Literal:
        for allowed in get_args(hint):
            if value == allowed and type(value) is type(allowed):
                return allowed
        raise ConfigError(f"unknown value {value!r}", file=file, key=key,
                          allowed=_allowed_of(hint))
    if dataclasses.is_dataclass(hint):
        return read_section(value, hint, file=file, section=key)  # type: ignore[arg-type]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _read_enum(value, hint, file=file, key=key)
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"expected a list, got {value!r}", file=file, key=key)
        args = get_args(hint)
        variadic = origin is list or (len(args) == 2 and args[1] is Ellipsis)
        item_types = [args[0]] * len(value) if variadic else list(args)
        if len(item_types) != len(value):
            raise ConfigError(f"expected {len(item_types)} values, got {len(value)}",
                              file=file, key=key)
        items = [read_value(v, t, file=file, key=f"{key}[{i}]")
                 for i, (v, t) in enumerate(zip(value, item_types, strict=True))]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping, got {type(value).__name__}", file=file,
                              key=key)
        _, value_type = get_args(hint)
        return FrozenMap({str(k): read_value(v, value_type, file=file, key=f"{key}.{k}")
                          for k, v in value.items()})
    return _read_scalar(value, hint, file=file, key=key)


# ---------------------------------------------------------------- the dotted-override setter

def parse_scalar(text: str) -> Any:
    """A command-line value read as a YAML scalar (4, 0.5, true, 1f1b, [1, 2]); '' stays ''."""
    if not text.strip():
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_dotted(mapping: dict[str, Any], key: str, value: Any, *, where: str = "--set") -> None:
    """mapping["a"]["b"] = value for key "a.b", creating intermediate sections."""
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"bad key '{key}'", key=where, allowed="dotted keys like a.b")
    node = mapping
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"'{part}' is a {type(child).__name__}, not a section",
                              key=f"{where} {key}")
        node = child
    node[parts[-1]] = value


def apply_overrides(mapping: Mapping[str, Any], overrides: Sequence[str], *,
                    where: str = "--set") -> dict[str, Any]:
    """A deep copy of `mapping` with each 'a.b.c=value' set (value read by parse_scalar)."""
    out = copy.deepcopy(dict(mapping))
    for item in overrides:
        path, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"expected key=value, got '{item}'", key=where)
        set_dotted(out, path, parse_scalar(text), where=where)
    return out


__all__ = ["Bytes", "BytesPerSecond", "Seconds", "Unit", "apply_overrides", "check_keys",
           "field_key", "parse_scalar", "read_section", "read_value", "section_keys",
           "set_dotted", "with_file", "yaml_key"]
