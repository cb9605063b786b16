"""MAPE per accelerator for `fleetsim validate` and benchmarks/accel_mape.py (issue 18).

Rows of a validation suite are grouped by the catalog device they ran on ("vendor/name", e.g.
google/tpu-v5e), with a vendor total where a vendor has several devices. The "before" column is
read from benchmarks/data/accel_before_*.csv (columns BEFORE_COLUMNS): what the base commit
predicted for the closest setup it could express; a row with no before_pred was not
expressible then and counts in before_total only. Before rows are assigned to the suite whose
published rows carry the same source. Both columns are plain means of |error| over the rows
each has, so they may cover different rows: the row counts are printed beside them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hwmodels.errors import ConfigError, UnknownNameError

BEFORE_COLUMNS = ("source", "row", "device", "metric", "published", "before_pred",
                  "before_setup")
BEFORE_GLOB = "accel_before_*.csv"
# the source tree's benchmarks/data (absent in an installed package: no before column)
DEFAULT_BEFORE_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
NOT_EXPRESSIBLE = ("", "n/a", "na", "nan", "none", "-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Accelerator:
    """How a row's device is labelled: vendor and catalog name."""

    vendor: str
    device: str

    @property
    def label(self) -> str:
        return f"{self.vendor}/{self.device}"


def accelerator_of(device: str) -> Accelerator:
    """The catalog's vendor and canonical name of `device` (aliases resolved); a name the
    catalog does not know keeps its own spelling under vendor '?'."""
    from hwmodels.catalog import load_device

    try:
        spec = load_device(str(device))
    except UnknownNameError:
        return Accelerator(vendor="?", device=str(device).strip().lower())
    return Accelerator(vendor=spec.vendor.lower(), device=spec.name)


def _number(value: Any) -> float | None:
    """A finite float, or None for an empty / 'n/a' cell."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in NOT_EXPRESSIBLE:
            return None
        value = float(value)
    value = float(value)
    return value if math.isfinite(value) else None


def read_before(paths: Iterable[Path | str]) -> pd.DataFrame:
    """The before rows of every file (columns BEFORE_COLUMNS + file); `before_pred` is NaN
    where the base commit could not express the setup. A file without one of the columns, or
    with a published value that is not a positive number, is a ConfigError naming it."""
    frames = []
    for path in paths:
        path = Path(path)
        try:
            df = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError,
                UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read before figures: {err}", file=str(path)) from None
        missing = [c for c in BEFORE_COLUMNS if c not in df.columns]
        if missing:
            raise ConfigError("missing column", file=str(path), key=missing[0],
                              allowed=", ".join(BEFORE_COLUMNS))
        out = []
        for i, rec in enumerate(df.to_dict(orient="records")):
            try:
                published = _number(rec["published"])
                before = _number(rec["before_pred"])
            except ValueError:
                raise ConfigError(f"line {i + 2}: not a number", file=str(path),
                                  key="published/before_pred",
                                  allowed="a number, or empty / n/a for not expressible") \
                    from None
            if published is None or published <= 0:
                raise ConfigError(f"line {i + 2}: published must be > 0, got "
                                  f"'{rec['published']}'", file=str(path), key="published")
            out.append({**{c: str(rec[c]).strip() for c in BEFORE_COLUMNS},
                        "published": published,
                        "before_pred": math.nan if before is None else before,
                        "file": path.name})
        frames.append(pd.DataFrame(out, columns=[*BEFORE_COLUMNS, "file"]))
    if not frames:
        return pd.DataFrame(columns=[*BEFORE_COLUMNS, "file"])
    return pd.concat(frames, ignore_index=True)


def before_files(before_dir: Path | str | None = None) -> list[Path]:
    """benchmarks/data/accel_before_*.csv (or those of `before_dir`), sorted; [] if absent."""
    folder = Path(before_dir) if before_dir is not None else DEFAULT_BEFORE_DIR
    if before_dir is not None and not folder.is_dir():
        raise ConfigError("not a directory", file=str(folder), key="--before-dir",
                          allowed=f"a folder holding {BEFORE_GLOB}")
    return sorted(folder.glob(BEFORE_GLOB)) if folder.is_dir() else []


def _stats(errors: Sequence[float]) -> tuple[float | None, float | None]:
    if not errors:
        return None, None
    absolute = [abs(e) for e in errors]
    return sum(absolute) / len(absolute), max(absolute)


def accel_table(rows: Sequence[Mapping[str, Any]], before: pd.DataFrame | None = None
                ) -> list[dict[str, Any]]:
    """One entry per accelerator (then vendor totals where a vendor has several devices):
    rows, mape_pct, max_abs_error_pct of `rows` (each with device and error_pct), and the
    before figures of `before` rows: before_rows (expressible), before_total, before_mape_pct
    (None where no row was expressible)."""
    after: dict[Accelerator, list[float]] = {}
    for r in rows:
        acc = accelerator_of(str(r["device"]))
        after.setdefault(acc, []).append(float(r["error_pct"]))
    prior: dict[Accelerator, list[float]] = {}
    total: dict[Accelerator, int] = {}
    for rec in ([] if before is None else before.to_dict(orient="records")):
        acc = accelerator_of(str(rec["device"]))
        total[acc] = total.get(acc, 0) + 1
        prior.setdefault(acc, [])
        if not math.isnan(rec["before_pred"]):
            prior[acc].append(100.0 * (rec["before_pred"] - rec["published"])
                              / rec["published"])
    accs = sorted(set(after) | set(total), key=lambda a: (a.vendor, a.device))

    def entry(label: str, vendor: str, members: Sequence[Accelerator]) -> dict[str, Any]:
        errs = [e for a in members for e in after.get(a, [])]
        prev = [e for a in members for e in prior.get(a, [])]
        mape, worst = _stats(errs)
        before_mape, _ = _stats(prev)
        return {"accelerator": label, "vendor": vendor,
                "devices": [a.device for a in members], "rows": len(errs),
                "mape_pct": mape, "max_abs_error_pct": worst,
                "before_rows": len(prev), "before_total": sum(total.get(a, 0) for a in members),
                "before_mape_pct": before_mape}

    out = [entry(a.label, a.vendor, [a]) for a in accs]
    vendors: dict[str, list[Accelerator]] = {}
    for a in accs:
        vendors.setdefault(a.vendor, []).append(a)
    out += [entry(f"{v} (all)", v, members) for v, members in vendors.items()
            if len(members) > 1]
    return out


def assign_before(before: pd.DataFrame, suite_sources: Mapping[str, Iterable[str]]
                  ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """({suite: its before rows}, rows whose source no suite has): a before row belongs to
    the suite whose published rows carry its source."""
    owner = {}
    for suite, sources in suite_sources.items():
        for src in sources:
            owner.setdefault(str(src), suite)
    suite_of = before.source.map(lambda s: owner.get(str(s), "")) if len(before) else \
        pd.Series(dtype=str)
    parts = {suite: before[suite_of == suite] for suite in suite_sources}
    return parts, before[suite_of == ""] if len(before) else before


def published_sources() -> dict[str, set[str]]:
    """{suite: the sources of its bundled published rows} (reads the CSVs, runs nothing)."""
    from simulator.serving.validation import load_published as serving_rows
    from simulator.training.validation import load_published as training_rows

    return {"training": {str(s) for s in training_rows().source},
            "serving": {str(s) for s in serving_rows().source}}


def accel_report(report: Mapping[str, Mapping[str, Any]],
                 before: pd.DataFrame | None = None,
                 suite_sources: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
    """{suite: accel_table(...)} for each suite of a validation report, and the before rows no
    suite claims under "unassigned_before" (source, row, device, file). `suite_sources` says
    which sources each suite has (default: those of the report's rows)."""
    before = before if before is not None else read_before([])
    if suite_sources is None:
        suite_sources = {suite: {str(r["source"]) for r in data["rows"]}
                         for suite, data in report.items()}
    parts, loose = assign_before(before, suite_sources)
    empty = before.iloc[0:0]
    out: dict[str, Any] = {suite: accel_table(data["rows"], parts.get(suite, empty))
                           for suite, data in report.items()}
    out["unassigned_before"] = [
        {"source": r["source"], "row": r["row"], "device": r["device"], "file": r["file"]}
        for r in loose.to_dict(orient="records")]
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def table_rows(entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """Cells of the per-accelerator table: accelerator, rows, MAPE %, worst |error| %,
    before MAPE %, before rows (expressible/total)."""
    return [(e["accelerator"], str(e["rows"]), _pct(e["mape_pct"]),
             _pct(e["max_abs_error_pct"]), _pct(e["before_mape_pct"]),
             f"{e['before_rows']}/{e['before_total']}" if e["before_total"] else "-")
            for e in entries]


TABLE_HEADS = ("accelerator", "rows", "MAPE %", "worst |error| %", "before MAPE %",
               "before rows")
