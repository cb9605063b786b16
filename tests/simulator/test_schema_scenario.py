"""simulator.schema: dataclass-driven section reading and the one dotted-override setter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pytest

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from simulator.schema import (
    BytesPerSecond,
    Seconds,
    apply_overrides,
    parse_scalar,
    read_section,
    section_keys,
    set_dotted,
    yaml_key,
)


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True, kw_only=True)
class Inner:
    size: int = 1
    color: Color = Color.RED

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"must be >= 1, got {self.size}", key="outer.inner.size")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outer:
    name: str
    duration_s: Seconds | None = field(default=None, metadata=yaml_key("duration"))
    rate: BytesPerSecond = 1e9
    interval: Literal["auto"] | Seconds = "auto"
    enabled: bool = True
    order: tuple[str, ...] = ("a", "b")
    inner: Inner = field(default_factory=Inner)
    parts: Mapping[str, Inner] = field(default_factory=dict)
    off: Inner | Literal[False] = False
    pair: tuple[int, float] = (1, 2.0)
    names: list[str] = field(default_factory=list)


def test_types_defaults_units_and_nesting() -> None:
    out = read_section({"name": "x", "duration": "2h", "rate": "2TB/s", "interval": "15m",
                        "order": ["c"], "inner": {"color": "BLUE"},
                        "parts": {"p": {"size": 3}}, "off": {"size": 2}}, Outer,
                       file="s.yaml", section="outer")
    assert out.duration_s == 7200.0 and out.rate == 2e12 and out.interval == 900.0
    assert out.order == ("c",) and out.inner == Inner(color=Color.BLUE)
    assert out.parts["p"].size == 3 and out.off == Inner(size=2)
    both = read_section({"name": "x", "pair": [2, 3], "names": ["a"]}, Outer)
    assert both.pair == (2, 3.0) and both.names == ["a"]
    with pytest.raises(ConfigError, match=r"key 'pair': expected 2 values"):
        read_section({"name": "x", "pair": [2]}, Outer)
    with pytest.raises(ConfigError, match=r"key 'names\[0\]': expected a string"):
        read_section({"name": "x", "names": [1]}, Outer)
    assert read_section({"name": "y", "duration": None}, Outer).duration_s is None
    assert read_section({"name": "y", "off": False}, Outer).off is False
    assert section_keys(Inner) == ["size", "color"]


@pytest.mark.parametrize(("raw", "match"), [
    ({"name": "x", "colour": 1}, r"s.yaml: key 'outer.colour': unknown key.*allowed: name, "
                                 r"duration"),
    ({}, r"key 'outer.name': missing required key"),
    ({"name": "x", "inner": {"color": "green"}}, r"key 'outer.inner.color'.*allowed: red, blue"),
    ({"name": "x", "inner": {"size": 0}}, r"s.yaml: key 'outer.inner.size': must be >= 1"),
    ({"name": "x", "inner": {"size": True}}, r"key 'outer.inner.size': expected an integer"),
    ({"name": "x", "enabled": "yes"}, r"key 'outer.enabled'.*allowed: true, false"),
    ({"name": "x", "duration": "soon"}, r"key 'outer.duration': cannot read duration"),
    ({"name": "x", "interval": "later"}, r"key 'outer.interval'.*allowed: auto; seconds"),
    ({"name": "x", "inner": 3}, r"key 'outer.inner': expected a mapping"),
    ({"name": "x", "parts": {"p": {"bad": 1}}}, r"key 'outer.parts.p.bad'"),
])
def test_errors_name_file_dotted_key_and_allowed(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        read_section(raw, Outer, file="s.yaml", section="outer")


def test_one_dotted_setter_for_set_and_grid() -> None:
    base = {"a": {"b": 1}, "c": 2}
    out = apply_overrides(base, ["a.b=4", "a.d.e=true", "f=1f1b", "g=", "h=[1, 2]", "i=: x"])
    assert out == {"a": {"b": 4, "d": {"e": True}}, "c": 2, "f": "1f1b", "g": "", "h": [1, 2],
                   "i": ": x"}
    assert base == {"a": {"b": 1}, "c": 2}  # a copy
    assert parse_scalar("0.5") == 0.5 and parse_scalar("none") == "none"
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(base, ["a.b"])
    with pytest.raises(ConfigError, match=r"key '--set c.x'.*not a section"):
        apply_overrides(base, ["c.x=1"])
    with pytest.raises(ConfigError, match="dotted keys"):
        set_dotted({}, "a..b", 1, where="--grid")


def test_training_scenario_reads_every_section_up_front() -> None:
    from simulator.training.scenario import load_training_scenario

    base = {"model": "llama3-8b", "cluster": {"device": "h100-sxm", "num_devices": 16},
            "training": {"seq_len": 4096, "global_batch": 64},
            "parallelism": {"tp": 2, "vpp": 2, "pp": 2, "rank_order": "tp-cp-ep-dp-pp"}}
    sc = load_training_scenario(base, file="s.yaml")
    assert sc.parallel.dp == 4 and sc.parallel.schedule == "interleaved"
    assert sc.run is None and sc.file == "s.yaml"
    with pytest.raises(ConfigError, match=r"s.yaml: key 'run.checkpoint.mode'.*allowed: sync"):
        load_training_scenario({**base, "run": {"duration": "1d",
                                                "checkpoint": {"mode": "eager"}}}, file="s.yaml")
    with pytest.raises(ConfigError, match=r"s.yaml: key 'cluster.num_devices': must be >= 1"):
        load_training_scenario({**base, "cluster": {"device": "h100-sxm", "num_devices": 0}},
                               file="s.yaml")
    with pytest.raises(ConfigError, match=r"key 'training.seq_len': missing required key"):
        load_training_scenario({**base, "training": {"global_batch": 64}}, file="s.yaml")
