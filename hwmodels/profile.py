"""Device profiles: measured efficiency curves that replace the catalog's default efficiencies.

A profile is a JSON file written by `fleetsim calibrate` (a local run, or `--from-measurements`
over published kernel tables). Cost models take an optional `DeviceProfile`; without one they use
the bundled profile for the device (hwmodels/profiles/<device>.json), else
`hwmodels.ops.default_profile(device)`, built from the catalog's efficiency numbers. Curves are
efficiency (fraction of the catalog peak) against problem size, interpolated linearly in
log(size) and clamped at the ends. Every part a profile leaves out (a dtype, the attention
curves, ...) comes from the catalog defaults; `measured` says which parts came from the file.

JSON format (version 2; version 1 files are refused with a hint to re-create them)::

    {"format": "fleetsim-profile", "version": 2, "device": "<catalog name>",
     "name": "a100-80gb-vidur",                                        # optional, shown in reports
     "created": "ISO-8601",
     "source": {"kind": "local" | "measurements", "description": "...",  # description required
                "licence": "...", "url": "...", "commit": "...", "date": "..."},
     "gemm": {"bf16": {"x": [flops...], "eff": [...]}, ...},          # fraction of peak[dtype]
     "gemm_memory": {"x": [bytes...], "eff": [...]},                  # memory-bound GEMMs (GEMV)
     "memory": {"x": [bytes...], "eff": [...]},                       # generic streaming kernels
     "elementwise": {"norm": {"x": [bytes...], "eff": [...]}, ...},   # per kind (ElementwiseKind)
     "attention_prefill": {"x": [flops...], "eff": [...]},            # fraction of attention peak
     "attention_decode": {"x": [bytes...], "eff": [...]},             # fraction of memory_bw
     "kernel_overhead_s": 4e-6, "host_to_device_Bps": 2.5e10,
     "collectives": {"all_reduce": {"8": {"x": [bytes...], "busbw_Bps": [...]}, ...}, ...},
     "collectives_link": "nvlink3",                                    # link they were measured on
     "engine_overheads": {"vllm-2024": {"fixed_s": 1e-3, "per_seq_s": 1e-5, ...}},
     "heldout": {...}, "fit": {...}, "raw": {...}, "env": {...}, "peak": {...}}   # reported only

Every key but format, version, device and source is optional.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from hwmodels._compat import StrEnum
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.frozen import FrozenMap

PROFILE_FORMAT = "fleetsim-profile"
PROFILE_VERSION = 2
# Bundled profiles are hwmodels package data (hwmodels/profiles/<device>.json), found through
# importlib.resources so an installed wheel finds them as well as a checkout does.
PROFILES_DIR = Path(str(resources.files("hwmodels") / "profiles"))
# `--no-profile` / `cluster.profile: defaults`: the catalog's efficiencies, even where a profile
# is bundled for the device.
CATALOG_DEFAULTS = "defaults"
CATALOG_DEFAULTS_NAME = "catalog defaults"


class ElementwiseKind(StrEnum):
    """Families of memory-bound kernels a profile may give their own efficiency curve."""

    NORM = "norm"  # RMSNorm / LayerNorm
    ROPE = "rope"  # rotary embedding
    ACTIVATION = "activation"  # SiLU*up, GELU
    RESIDUAL = "residual"  # residual add, dropout-add
    EMBEDDING = "embedding"  # token-embedding gather
    SOFTMAX = "softmax"  # unfused attention softmax / mask
    COPY = "copy"  # plain copies
    OPTIMIZER = "optimizer"  # fused Adam step


# The parts of a profile that `measured` names.
PARTS = ("gemm_memory", "memory", "attention_prefill", "attention_decode", "kernel_overhead_s",
         "host_to_device_Bps", "collectives", "engine_overheads")


@dataclass(frozen=True, slots=True)
class Curve:
    """y(x) by linear interpolation in log(x), clamped outside [x0, xn]."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    _logx: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys) or not self.xs:
            raise ConfigError("curve needs equal, non-empty x and y lists", key="curve")
        if any(not math.isfinite(v) for v in self.xs + self.ys):
            raise ConfigError("curve values must be finite", key="curve")
        if any(x <= 0 for x in self.xs) or any(y <= 0 for y in self.ys):
            raise ConfigError("curve values must be > 0", key="curve")
        if list(self.xs) != sorted(self.xs):
            raise ConfigError("curve x values must be increasing", key="curve")
        object.__setattr__(self, "_logx", tuple(math.log(x) for x in self.xs))

    def __call__(self, x: float) -> float:
        xs, ys = self.xs, self.ys
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        i = bisect.bisect_right(xs, x)
        lx = math.log(x)
        t = (lx - self._logx[i - 1]) / (self._logx[i] - self._logx[i - 1])
        return ys[i - 1] + t * (ys[i] - ys[i - 1])

    def to_json(self, yname: str = "eff") -> dict[str, list[float]]:
        return {"x": list(self.xs), yname: list(self.ys)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """Efficiency curves for one device. A profile read from a file may leave parts out (None,
    empty); `complete_with(defaults)` fills them, and hwmodels.ops.resolve_profile always
    returns a complete one. `source` is 'defaults' or the profile file's path."""

    device: str
    gemm: FrozenMap[DType, Curve]
    memory: Curve | None
    attention_prefill: Curve | None
    attention_decode: Curve | None
    kernel_overhead_s: float | None
    host_to_device_Bps: float | None
    gemm_memory: Curve | None = None
    elementwise: FrozenMap[ElementwiseKind, Curve] = field(default_factory=FrozenMap)
    # op ("all_reduce", "send_recv", ...) -> group size -> bus bandwidth (B/s) vs message bytes
    collectives: FrozenMap[str, FrozenMap[int, Curve]] = field(default_factory=FrozenMap)
    collectives_link: str | None = None
    # engine name -> coefficient name -> value (seconds), as fitted (see calibration)
    engine_overheads: FrozenMap[str, FrozenMap[str, float]] = field(default_factory=FrozenMap)
    name: str = CATALOG_DEFAULTS_NAME
    version: int = 0  # 0: built in memory (catalog defaults), else the file's format version
    source: str = "defaults"
    provenance: FrozenMap[str, str] = field(default_factory=FrozenMap)
    # parts taken from the file: "gemm.<dtype>", "elementwise.<kind>" or a PARTS name
    measured: frozenset[str] = frozenset()

    @property
    def is_defaults(self) -> bool:
        return not self.measured

    def gemm_curve(self, dtype: DType) -> Curve:
        if dtype in self.gemm:
            return self.gemm[dtype]
        for fallback in (DType.BF16, DType.FP16):
            if fallback in self.gemm:
                return self.gemm[fallback]
        return next(iter(self.gemm.values()))

    def gemm_memory_curve(self) -> Curve:
        """Efficiency of memory-bound GEMMs (weight reads of small-batch decode)."""
        assert self.memory is not None, "resolve_profile completes profiles"  # noqa: S101
        return self.gemm_memory or self.memory

    def elementwise_curve(self, kind: ElementwiseKind | str | None) -> Curve:
        """Efficiency of a memory-bound kernel of `kind` (the generic memory curve if the
        profile has none for it)."""
        assert self.memory is not None, "resolve_profile completes profiles"  # noqa: S101
        if kind is None:
            return self.memory
        return self.elementwise.get(ElementwiseKind(kind), self.memory)

    def complete_with(self, defaults: DeviceProfile) -> DeviceProfile:
        """This profile with every part it leaves out taken from `defaults` (same device).
        GEMM dtypes the profile did not measure keep the defaults' curves."""
        if self.is_defaults and self.memory is not None:
            return self
        gemm = dict(defaults.gemm)
        gemm.update(self.gemm)

        def pick(name: str) -> Any:
            own = getattr(self, name)
            return getattr(defaults, name) if own is None else own

        return replace(
            self, gemm=FrozenMap(gemm), memory=pick("memory"),
            attention_prefill=pick("attention_prefill"),
            attention_decode=pick("attention_decode"),
            kernel_overhead_s=pick("kernel_overhead_s"),
            host_to_device_Bps=pick("host_to_device_Bps"))

    def describe(self) -> dict[str, Any]:
        """What every JSON result reports as its efficiency source."""
        if self.is_defaults:
            return {"name": CATALOG_DEFAULTS_NAME, "device": self.device,
                    "source": "hwmodels/catalog/devices.yaml efficiencies"}
        return {"name": self.name, "device": self.device, "version": self.version,
                "source": self.provenance.get("description", self.source),
                "file": _shown_path(self.source), "created": self.provenance.get("created", ""),
                "measured": sorted(self.measured)}


def _shown_path(source: str) -> str:
    """A bundled profile by its package path (the same in every checkout and install), any
    other file as given."""
    try:
        rel = Path(source).resolve().relative_to(PROFILES_DIR.resolve())
    except (ValueError, OSError):
        return source
    return f"hwmodels/profiles/{rel.as_posix()}"


def describe_profiles(profiles: Mapping[str, DeviceProfile] | Sequence[DeviceProfile]
                      ) -> dict[str, dict[str, Any]]:
    """{device: describe()} for the profiles a run used (one per device)."""
    items = profiles.values() if isinstance(profiles, Mapping) else profiles
    return {p.device: p.describe() for p in items}


def _curve(raw: Any, file: str, key: str, yname: str = "eff") -> Curve:
    if not isinstance(raw, Mapping) or "x" not in raw or yname not in raw:
        raise ConfigError(f"expected {{x: [...], {yname}: [...]}}", file=file, key=key)
    try:
        return Curve(tuple(float(v) for v in raw["x"]), tuple(float(v) for v in raw[yname]))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad curve: {err}", file=file, key=key) from None
    except ConfigError as err:
        raise ConfigError(err.message, file=file, key=key) from None


def _mapping(data: Mapping[str, Any], key: str, file: str) -> Mapping[str, Any]:
    raw = data.get(key) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping", file=file, key=key)
    return raw


def _number(data: Mapping[str, Any], key: str, file: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
            or math.isinf(value):
        raise ConfigError(f"must be a finite number >= 0, got {value!r}", file=file, key=key)
    return float(value)


def _collectives(data: Mapping[str, Any], file: str) -> FrozenMap[str, FrozenMap[int, Curve]]:
    out: dict[str, FrozenMap[int, Curve]] = {}
    for op, per_world in _mapping(data, "collectives", file).items():
        if not isinstance(per_world, Mapping) or not per_world:
            raise ConfigError("expected {group size: {x, busbw_Bps}}", file=file,
                              key=f"collectives.{op}")
        worlds: dict[int, Curve] = {}
        for world, raw in per_world.items():
            try:
                n = int(world)
            except (TypeError, ValueError):
                n = 0
            if n < 2 or str(n) != str(world).strip():
                raise ConfigError(f"group size must be an integer >= 2, got {world!r}",
                                  file=file, key=f"collectives.{op}")
            worlds[n] = _curve(raw, file, f"collectives.{op}.{world}", "busbw_Bps")
        out[str(op)] = FrozenMap(dict(sorted(worlds.items())))
    return FrozenMap(out)


def _engine_overheads(data: Mapping[str, Any], file: str
                      ) -> FrozenMap[str, FrozenMap[str, float]]:
    out: dict[str, FrozenMap[str, float]] = {}
    for engine, coeffs in _mapping(data, "engine_overheads", file).items():
        if not isinstance(coeffs, Mapping):
            raise ConfigError("expected {coefficient: seconds}", file=file,
                              key=f"engine_overheads.{engine}")
        values = {}
        for name, value in coeffs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[str(name)] = _number(coeffs, name, file) or 0.0
        out[str(engine)] = FrozenMap(values)
    return FrozenMap(out)


def profile_from_json(data: Mapping[str, Any], *, file: str = "<profile>") -> DeviceProfile:
    """Validate and parse a profile mapping (parts it leaves out are None / empty)."""
    if data.get("format") != PROFILE_FORMAT:
        raise ConfigError(f"not a fleetsim profile (format={data.get('format')!r})", file=file,
                          key="format", allowed=[PROFILE_FORMAT])
    version = data.get("version")
    if version != PROFILE_VERSION:
        older = isinstance(version, int) and not isinstance(version, bool) \
            and version < PROFILE_VERSION
        why = "is older than this fleetsim reads; re-create it with fleetsim calibrate" \
            if older else "is not supported"
        raise ConfigError(f"profile format version {version!r} {why}", file=file,
                          key="version", allowed=[PROFILE_VERSION])
    if not isinstance(data.get("device"), str) or not data["device"]:
        raise ConfigError("missing required key (the catalog device name)", file=file,
                          key="device")
    src = data.get("source")
    if not isinstance(src, Mapping) or not isinstance(src.get("description"), str) \
            or not src["description"]:
        raise ConfigError("expected {description: ..., kind, licence, url, date} saying where "
                          "the measurements came from", file=file, key="source.description")
    measured: set[str] = set()
    gemm: dict[DType, Curve] = {}
    for dt, raw in _mapping(data, "gemm", file).items():
        try:
            dtype = DType(dt)
        except ValueError:
            raise ConfigError(f"unknown dtype '{dt}'", file=file, key="gemm",
                              allowed=[d.value for d in DType]) from None
        gemm[dtype] = _curve(raw, file, f"gemm.{dt}")
        measured.add(f"gemm.{dtype.value}")
    elementwise: dict[ElementwiseKind, Curve] = {}
    for kind, raw in _mapping(data, "elementwise", file).items():
        try:
            ek = ElementwiseKind(kind)
        except ValueError:
            raise ConfigError(f"unknown elementwise kind '{kind}'", file=file,
                              key="elementwise", allowed=[k.value for k in ElementwiseKind]
                              ) from None
        elementwise[ek] = _curve(raw, file, f"elementwise.{kind}")
        measured.add(f"elementwise.{ek.value}")
    curves: dict[str, Curve | None] = {}
    for key in ("gemm_memory", "memory", "attention_prefill", "attention_decode"):
        curves[key] = _curve(data[key], file, key) if data.get(key) is not None else None
    numbers = {key: _number(data, key, file) for key in ("kernel_overhead_s",
                                                         "host_to_device_Bps")}
    colls = _collectives(data, file)
    engines = _engine_overheads(data, file)
    link = data.get("collectives_link")
    if link is not None and not isinstance(link, str):
        raise ConfigError(f"expected a catalog link name, got {link!r}", file=file,
                          key="collectives_link")
    for key, value in {**curves, **numbers, "collectives": colls or None,
                       "engine_overheads": engines or None}.items():
        if value is not None:
            measured.add(key)
    provenance = {k: str(v) for k, v in src.items() if isinstance(v, (str, int, float))}
    if isinstance(data.get("created"), str):
        provenance.setdefault("created", data["created"])
    name = data.get("name") or f"{data['device']}-{src.get('kind', 'profile')}"
    return DeviceProfile(
        device=str(data["device"]), gemm=FrozenMap(gemm), elementwise=FrozenMap(elementwise),
        memory=curves["memory"], gemm_memory=curves["gemm_memory"],
        attention_prefill=curves["attention_prefill"],
        attention_decode=curves["attention_decode"],
        kernel_overhead_s=numbers["kernel_overhead_s"],
        host_to_device_Bps=numbers["host_to_device_Bps"],
        collectives=colls, collectives_link=link, engine_overheads=engines,
        name=str(name), version=PROFILE_VERSION, source=file,
        provenance=FrozenMap(provenance), measured=frozenset(measured))


def load_profile(path: str | Path, *, device: str | None = None) -> DeviceProfile:
    """Read and validate a profile file; with `device`, refuse a profile of another device."""
    from hwmodels.catalog import read_text

    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ConfigError(f"malformed JSON at line {err.lineno}: {err.msg}",
                          file=str(path)) from None
    if not isinstance(data, Mapping):
        raise ConfigError("expected a JSON object", file=str(path))
    profile = profile_from_json(data, file=str(path))
    if device is not None and profile.device.lower() != device.lower():
        raise ConfigError(f"profile is for device '{profile.device}', not '{device}'",
                          file=str(path), key="device", allowed=[profile.device])
    return profile


def find_profile(device: str, search_dirs: Sequence[Path] | None = None) -> Path | None:
    """The bundled/calibrated profile file for a device name, if any (hwmodels/profiles/)."""
    for root in search_dirs or [PROFILES_DIR]:
        candidate = Path(root) / f"{device.lower()}.json"
        if candidate.exists():
            return candidate
    return None


def bundled_profiles() -> dict[str, Path]:
    """{device: path} of every profile shipped in hwmodels/profiles/."""
    return {p.stem: p for p in sorted(PROFILES_DIR.glob("*.json"))}
