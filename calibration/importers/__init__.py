"""Importers: published kernel/collective measurement tables -> the raw records calibration.fit
consumes (the same schema a local `fleetsim calibrate` run produces)."""

from __future__ import annotations

from calibration.importers.vidur import DEVICES, import_vidur

__all__ = ["DEVICES", "import_vidur"]
