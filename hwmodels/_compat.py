"""Small compatibility shims so the package runs on Python 3.10+."""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    StrEnum = enum.StrEnum
else:  # pragma: no cover - exercised only on 3.10

    class StrEnum(str, enum.Enum):
        """str-valued Enum whose str() is its value (backport of 3.11's StrEnum)."""

        def __str__(self) -> str:
            return str(self.value)


__all__ = ["StrEnum"]
