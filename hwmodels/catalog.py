"""The catalog: YAML files under hwmodels/catalog/ looked up by name.

devices.yaml and links.yaml map a name to its facts; catalog/models/*.yaml map a model name to
Hugging Face config.json keys. Users add entries with YAML, or point FLEETSIM_CATALOG at a
directory laid out the same way (its entries override the bundled ones).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError, UnknownNameError
from hwmodels.frozen import FrozenMap
from hwmodels.packaging import PackageSpec, package_from_entry, package_view
from hwmodels.specs import DeviceKind, DeviceSpec, LinkKind, LinkSpec, ModelSpec
from hwmodels.topology import SWITCH_FABRIC, ScaleUpFabric, ScaleUpKind, WrapRule
from hwmodels.units import GiB

CATALOG_DIR = Path(__file__).parent / "catalog"


def _catalog_dirs() -> list[Path]:
    dirs = [CATALOG_DIR]
    extra = os.environ.get("FLEETSIM_CATALOG")
    if extra:
        dirs.extend(Path(p) for p in extra.split(os.pathsep) if p)
    return dirs


def read_text(path: Path | str) -> str:
    """A UTF-8 text file's contents; a missing, unreadable, directory or non-UTF-8 file is one
    ConfigError naming the file (never an OSError / UnicodeDecodeError traceback)."""
    if not str(path).strip():
        raise ConfigError("empty file name", allowed="a path to a file")
    path = Path(path)
    if path.is_dir():
        raise ConfigError("is a directory, expected a file", file=str(path))
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read file: {err.strerror or err}", file=str(path)) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                          f"{err.start})", file=str(path), allowed="a UTF-8 YAML/JSON file") \
            from None


def read_yaml(path: Path | str) -> Any:
    """Parse a YAML file; syntax errors become one ConfigError line naming the file and line."""
    text = read_text(path)
    path = Path(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML{where}: {problem}", file=str(path)) from None


def _read_mapping(path: Path) -> dict[str, dict[str, Any]]:
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping of name -> entry", file=str(path))
    for name, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError("entry must be a mapping of keys", file=str(path), key=str(name))
    return {str(k): v for k, v in data.items()}


@functools.lru_cache(maxsize=8)  # one entry per kind (devices, links, models)
def _entries(kind: str) -> dict[str, tuple[Path, dict[str, Any]]]:
    """name -> (file, raw entry) for 'devices', 'links' or 'models'."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for root in _catalog_dirs():
        files = sorted((root / "models").glob("*.yaml")) if kind == "models" else \
            [root / f"{kind}.yaml"]
        for path in files:
            if path.exists():
                for name, entry in _read_mapping(path).items():
                    out[name.lower()] = (path, entry)
    return out


def clear_cache() -> None:
    """Forget parsed catalog files (after FLEETSIM_CATALOG changes)."""
    _entries.cache_clear()
    load_device.cache_clear()
    load_link.cache_clear()
    _load_model_by_name.cache_clear()


def list_devices() -> list[str]:
    """Catalog device names, the package views derived from die entries included."""
    return sorted({*_entries("devices"), *_package_views()})


def _package_views() -> dict[str, str]:
    """Derived package name -> its die entry (hwmodels.packaging; `package.package_name`)."""
    out: dict[str, str] = {}
    for name, (_, entry) in _entries("devices").items():
        raw = entry.get("package")
        if isinstance(raw, Mapping) and raw.get("package_name"):
            out[str(raw["package_name"]).lower()] = name
    return out


def load_package(name: str) -> PackageSpec:
    """The `package:` of a device entry (a single die when it has none)."""
    dev = load_device(name)
    views = _package_views()
    key = views.get(dev.name, dev.name)
    path, entry = _entries("devices")[key]
    pkg = package_from_entry(key, entry.get("package"), str(path))
    if dev.name in views:  # the derived package view is itself the whole package
        return PackageSpec(dies=pkg.dies, die_link_Bps=pkg.die_link_Bps)
    return pkg


def list_links() -> list[str]:
    return sorted(_entries("links"))


def list_models() -> list[str]:
    return sorted(_entries("models"))


def raw_entry(kind: str, name: str) -> dict[str, Any]:
    """The YAML entry as written (for `show` commands)."""
    entries = _entries(kind)
    key = name.lower()
    if key not in entries:
        raise UnknownNameError(kind.rstrip("s"), name, entries)
    return dict(entries[key][1])


class _Fields:
    """Reads typed keys from a raw entry, naming file and key on any error."""

    def __init__(self, entry: Mapping[str, Any], file: Path | str, name: str,
                 allowed_keys: set[str]) -> None:
        self.entry, self.file, self.name = entry, str(file), name
        unknown = set(entry) - allowed_keys
        if unknown:
            raise ConfigError(f"unknown key '{sorted(unknown)[0]}'", file=self.file,
                              key=f"{name}.{sorted(unknown)[0]}", allowed=sorted(allowed_keys))

    def num(self, key: str, default: float | None = None, *, positive: bool = True) -> float:
        if key not in self.entry:
            if default is None:
                raise ConfigError("missing required key", file=self.file,
                                  key=f"{self.name}.{key}")
            return default
        value = self.entry[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", file=self.file,
                              key=f"{self.name}.{key}")
        if value < 0 or (positive and value == 0):
            raise ConfigError(f"must be {'>' if positive else '>='} 0, got {value}",
                              file=self.file, key=f"{self.name}.{key}")
        return float(value)

    def text(self, key: str, default: str | None = None) -> str:
        if key not in self.entry:
            if default is None:
                raise ConfigError("missing required key", file=self.file,
                                  key=f"{self.name}.{key}")
            return default
        return str(self.entry[key])

    def dtype_table(self, key: str, scale: float) -> FrozenMap[DType, float]:
        raw = self.entry.get(key) or {}
        if not isinstance(raw, dict):
            raise ConfigError("expected a mapping dtype -> number", file=self.file,
                              key=f"{self.name}.{key}", allowed=[d.value for d in DType])
        table: dict[DType, float] = {}
        for dt, value in raw.items():
            try:
                dtype = DType(str(dt).lower())
            except ValueError:
                raise ConfigError(f"unknown dtype '{dt}'", file=self.file,
                                  key=f"{self.name}.{key}",
                                  allowed=[d.value for d in DType]) from None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"expected a positive number for {dt}, got {value!r}",
                                  file=self.file, key=f"{self.name}.{key}")
            table[dtype] = float(value) * scale
        return FrozenMap(table)

    def enum(self, key: str, enum_cls: type, default: str) -> Any:
        value = self.text(key, default)
        try:
            return enum_cls(value)
        except ValueError:
            raise ConfigError(f"unknown value '{value}'", file=self.file,
                              key=f"{self.name}.{key}",
                              allowed=[e.value for e in enum_cls]) from None


_DEVICE_KEYS = {"vendor", "kind", "peak_tflops", "memory_gib", "memory_bw_gbps",
                "scale_up_link", "scale_up_bw_gbps", "host_link", "default_inter_node", "tdp_w",
                "idle_w", "price_usd_per_hour", "gemm_efficiency", "memory_efficiency",
                "attention_efficiency", "kernel_overhead_us", "devices_per_node", "source",
                "notes", "aliases", "scale_up_fabric", "alt_scale_up_links", "nics_per_device", "package"}
_FABRIC_KEYS = {"kind", "link_gbps", "max_dims", "wrap", "size", "edges", "source", "notes"}


def fabric_from_entry(name: str, raw: Any, file: Path | str) -> ScaleUpFabric:
    """ScaleUpFabric from a device entry's `scale_up_fabric:` mapping (link_gbps per link per
    direction; torus: max_dims, wrap rule; graph: size and edges [a, b, gbps])."""
    key = f"{name}.scale_up_fabric"
    if raw is None:
        return SWITCH_FABRIC
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping (kind, link_gbps, ...)", file=str(file), key=key,
                          allowed=sorted(_FABRIC_KEYS))
    f = _Fields(raw, file, key, _FABRIC_KEYS)
    kind = f.enum("kind", ScaleUpKind, "switch")
    wrap = f.enum("wrap", WrapRule, "full-axis")

    def ints(field: str) -> tuple[int, ...]:
        value = raw.get(field) or []
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int)
                                              or v < 1 for v in value):
            raise ConfigError(f"expected a list of positive integers, got {value!r}",
                              file=str(file), key=f"{key}.{field}")
        return tuple(value)

    edges: list[tuple[int, int, float]] = []
    for edge in raw.get("edges") or []:
        if not (isinstance(edge, list) and len(edge) == 3 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in edge)):
            raise ConfigError(f"expected [a, b, gbps], got {edge!r}", file=str(file),
                              key=f"{key}.edges")
        edges.append((int(edge[0]), int(edge[1]), float(edge[2]) * 1e9))
    try:
        return ScaleUpFabric(kind=kind, link_bw_Bps=f.num("link_gbps", 0.0, positive=False) * 1e9,
                             max_dims=ints("max_dims"), wrap=wrap, edges=tuple(edges),
                             graph_size=int(f.num("size", 0.0, positive=False)),
                             source=f.text("source", ""))
    except ConfigError as err:
        if err.file:
            raise
        raise ConfigError(err.message, file=str(file), key=key + "." + (err.key or "")
                          .split(".")[-1], allowed=err.allowed) from None


def device_from_entry(name: str, entry: Mapping[str, Any], file: Path | str) -> DeviceSpec:
    """DeviceSpec from a devices.yaml entry (units: TFLOP/s, GiB, GB/s, W, USD/h, us)."""
    f = _Fields(entry, file, name, _DEVICE_KEYS)
    package_from_entry(name, entry.get("package"), str(file))  # a bad package: key exits 2 here
    peak = f.dtype_table("peak_tflops", 1e12)
    if not peak:
        raise ConfigError("missing required key", file=str(file), key=f"{name}.peak_tflops",
                          allowed=[d.value for d in DType])
    try:
        return DeviceSpec(
            name=name,
            vendor=f.text("vendor"),
            kind=f.enum("kind", DeviceKind, "gpu"),
            peak_flops=peak,
            memory_bytes=f.num("memory_gib") * GiB,
            memory_bw_Bps=f.num("memory_bw_gbps") * 1e9,
            scale_up_link=f.text("scale_up_link"),
            scale_up_bw_Bps=f.num("scale_up_bw_gbps") * 1e9,
            host_link=f.text("host_link", "pcie4"),
            default_inter_node=f.text("default_inter_node", ""),
            tdp_w=f.num("tdp_w"),
            idle_w=f.num("idle_w", positive=False),
            price_usd_per_hour=f.num("price_usd_per_hour", positive=False),
            gemm_efficiency=f.dtype_table("gemm_efficiency", 1.0),
            memory_efficiency=f.num("memory_efficiency", 0.85),
            attention_efficiency=f.num("attention_efficiency", 0.55),
            kernel_overhead_s=f.num("kernel_overhead_us", 4.0, positive=False) * 1e-6,
            devices_per_node=int(f.num("devices_per_node", 8)),
            scale_up_fabric=fabric_from_entry(name, entry.get("scale_up_fabric"), file),
            nics_per_device=f.num("nics_per_device", 1.0),
            alt_scale_up_links=tuple(str(n).lower()
                                     for n in entry.get("alt_scale_up_links") or ()),
            source=f.text("source", ""),
        )
    except ConfigError as err:
        raise _entry_error(err, file, name) from None


def _entry_error(err: ConfigError, file: Path | str, name: str) -> ConfigError:
    """A spec's own check (key 'DeviceSpec.idle_w') as the catalog entry's key ('h100.idle_w')."""
    if err.file:
        return err
    field = (err.key or "").split(".")[-1]
    return ConfigError(err.message, file=str(file), key=f"{name}.{field}" if field else name,
                       allowed=err.allowed)


_LINK_KEYS = {"kind", "bandwidth_gbps", "latency_us", "efficiency", "source", "notes"}


def link_from_entry(name: str, entry: Mapping[str, Any], file: Path | str) -> LinkSpec:
    """LinkSpec from a links.yaml entry (bandwidth per direction in GB/s, latency in us)."""
    f = _Fields(entry, file, name, _LINK_KEYS)
    try:
        return LinkSpec(
            name=name,
            kind=f.enum("kind", LinkKind, "scale_out"),
            bandwidth_Bps=f.num("bandwidth_gbps") * 1e9,
            latency_s=f.num("latency_us", positive=False) * 1e-6,
            efficiency=f.num("efficiency", 0.8),
            source=f.text("source", ""),
        )
    except ConfigError as err:
        raise _entry_error(err, file, name) from None


@functools.lru_cache(maxsize=256)  # bounded: names come from user input
def load_device(name: str) -> DeviceSpec:
    """DeviceSpec by catalog name (case-insensitive); unknown names list the valid ones."""
    entries = _entries("devices")
    key = name.lower()
    if key not in entries:
        views = _package_views()
        if key in views:
            die_name = views[key]
            path, entry = entries[die_name]
            pkg = package_from_entry(die_name, entry.get("package"), str(path))
            return package_view(load_device(die_name), pkg, key)
        for cand, (_, entry) in entries.items():
            if key in [str(a).lower() for a in entry.get("aliases", [])]:
                key = cand
                break
        else:
            raise UnknownNameError("device", name, {**entries, **views})
    path, entry = entries[key]
    return device_from_entry(key, entry, path)


@functools.lru_cache(maxsize=256)
def load_link(name: str) -> LinkSpec:
    """LinkSpec by catalog name (case-insensitive)."""
    entries = _entries("links")
    key = name.lower()
    if key not in entries:
        raise UnknownNameError("link", name, entries)
    path, entry = entries[key]
    return link_from_entry(key, entry, path)


@functools.lru_cache(maxsize=256)
def _load_model_by_name(key: str) -> ModelSpec:
    from hwmodels.hf_config import model_from_config

    path, entry = _entries("models")[key]
    return model_from_config(entry, name=key, file=str(path))


def load_model(ref: str | Path | Mapping[str, Any], *, file: str | None = None) -> ModelSpec:
    """ModelSpec from a catalog name, a path to an HF config.json/YAML, or an inline mapping."""
    from hwmodels.hf_config import model_from_config

    if isinstance(ref, Mapping):
        name = str(ref.get("name", ref.get("_name_or_path", "inline")))
        return model_from_config(ref, name=name, file=file)
    text = str(ref).strip()
    key = text.lower()
    if not text:
        raise ConfigError("empty model name", file=file, key="model",
                          allowed="a catalog name (fleetsim models list) or a path to an HF "
                                  "config.json / .yaml")
    if key in _entries("models"):
        return _load_model_by_name(key)
    path = Path(text)
    if path.suffix in (".json", ".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError("model config file not found", file=text)
        if path.suffix == ".json":
            try:
                data = json.loads(read_text(path))
            except json.JSONDecodeError as err:
                raise ConfigError(f"malformed JSON at line {err.lineno}: {err.msg}",
                                  file=text) from None
        else:
            data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError("expected a mapping of config keys", file=text)
        name = str(data.get("name") or data.get("_name_or_path") or path.parent.name or path.stem)
        return model_from_config(data, name=name, file=text)
    raise UnknownNameError("model", text, _entries("models"), file=file)
