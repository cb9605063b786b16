"""The generic extension registry: lookups, unknown names, double registration."""

from __future__ import annotations

import pytest

from hwmodels._compat import StrEnum
from hwmodels.errors import UnknownNameError
from hwmodels.registry import Registry


class Color(StrEnum):
    RED = "red"
    BLUE = "blue"
    GREEN = "green"


def test_register_and_get() -> None:
    reg: Registry[Color, type] = Registry("color", Color, key="paint.color")

    @reg.register(Color.RED)
    class Red:
        pass

    reg.add(Color.BLUE, int)
    assert reg.get("red") is Red and reg.get(Color.BLUE) is int
    assert reg.names() == ["red", "blue"] and len(reg) == 2
    assert "red" in reg and "green" not in reg and "nope" not in reg
    assert list(reg) == [Color.RED, Color.BLUE]


def test_unknown_name_lists_valid_ones_and_key() -> None:
    reg: Registry[Color, int] = Registry("color", Color, key="paint.color")
    reg.add(Color.RED, 1)
    with pytest.raises(UnknownNameError) as err:
        reg.get("purple", file="s.yaml")
    text = str(err.value)
    assert "s.yaml" in text and "paint.color" in text and "purple" in text
    assert "blue, green, red" in text
    with pytest.raises(UnknownNameError, match="allowed: red"):
        reg.get("green")  # a member with nothing registered


def test_double_registration_is_an_error() -> None:
    reg: Registry[Color, int] = Registry("color", Color)
    reg.add(Color.RED, 1)
    with pytest.raises(RuntimeError, match="twice"):
        reg.add(Color.RED, 2)
