"""Checks an exported launch command / config against pinned launcher definitions
(tests/data/launchers/*.json): every flag exists, its value has the pinned type or choice,
every mapping key is a pinned field. Returns the list of violations (empty: conforms)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

PINS = Path(__file__).resolve().parents[1] / "data" / "launchers"
VALUED = {"int", "float", "str", "choice", "json"}


def load_pin(name: str) -> dict[str, Any]:
    """tests/data/launchers/<name>.json."""
    return json.loads((PINS / f"{name}.json").read_text())


def _value_errors(flag: str, spec: dict[str, Any], value: str) -> list[str]:
    kind = spec["type"]
    try:
        if kind == "int":
            int(value)
        elif kind == "float":
            x = float(value)
            if not spec.get("min", -float("inf")) <= x <= spec.get("max", float("inf")):
                return [f"{flag} {value}: outside [{spec.get('min')}, {spec.get('max')}]"]
        elif kind == "choice" and value not in spec["choices"]:
            return [f"{flag} {value!r}: not one of {spec['choices']}"]
        elif kind == "json":
            obj = json.loads(value)
            if spec.get("fields"):
                return [f"{flag}.{e}" for e in check_mapping(obj, spec["fields"])]
    except ValueError:
        return [f"{flag} {value!r}: not a {kind}"]
    return []


def check_flags(tokens: list[str], flags: dict[str, Any], *, positionals: int = 0) -> list[str]:
    """Violations of argv `tokens` (after the command words) against pinned `flags`."""
    errors: list[str] = []
    seen_pos, i = 0, 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            seen_pos += 1
            if seen_pos > positionals:
                errors.append(f"unexpected positional {tok!r}")
            i += 1
            continue
        spec = flags.get(tok)
        if spec is None and tok.startswith("--no-"):
            neg = flags.get("--" + tok[5:])
            spec = neg if neg is not None and neg["type"] == "bool_optional" else None
        if spec is None:
            errors.append(f"unknown flag {tok}")
            i += 1
            continue
        if spec["type"] in VALUED:
            if i + 1 >= len(tokens):
                errors.append(f"{tok}: missing value")
                break
            errors += _value_errors(tok, spec, tokens[i + 1])
            i += 2
        else:
            i += 1
    if seen_pos < positionals:
        errors.append(f"expected {positionals} positional argument(s), got {seen_pos}")
    return errors


def check_command(line: str | list[str], pin: dict[str, Any]) -> list[str]:
    """Violations of one command line (a string is shlex-split) against a launcher pin."""
    argv = shlex.split(line) if isinstance(line, str) else list(line)
    n = len(pin["command"])
    if argv[:n] != pin["command"]:
        return [f"command {argv[:n]} is not {pin['command']}"]
    return check_flags(argv[n:], pin["flags"], positionals=pin["positionals"])


def _type_ok(kind: str, value: Any) -> bool:
    return {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
            "list": lambda v: isinstance(v, list), "dict": lambda v: isinstance(v, dict),
            "map": lambda v: isinstance(v, dict), "choice": lambda v: True}[kind](value)


def check_mapping(obj: Any, fields: dict[str, Any], where: str = "") -> list[str]:
    """Violations of a YAML/JSON mapping against pinned `fields` (recursive)."""
    if not isinstance(obj, dict):
        return [f"{where or '<root>'}: expected a mapping"]
    errors = []
    for key, value in obj.items():
        path = f"{where}.{key}" if where else str(key)
        spec = fields.get(key)
        if spec is None:
            errors.append(f"unknown key {path}")
            continue
        kind = spec["type"]
        if not _type_ok(kind, value):
            errors.append(f"{path}: {value!r} is not a {kind}")
        elif kind == "choice" and value not in spec["choices"]:
            errors.append(f"{path}: {value!r} not one of {spec['choices']}")
        elif kind == "float" and not spec.get("min", -1e300) <= value <= spec.get("max", 1e300):
            errors.append(f"{path}: {value} outside [{spec.get('min')}, {spec.get('max')}]")
        elif kind == "dict" and "fields" in spec:
            errors += check_mapping(value, spec["fields"], path)
        elif kind == "map":
            for k, v in value.items():
                errors += check_mapping(v, spec["values"]["fields"], f"{path}.{k}")
    return errors
