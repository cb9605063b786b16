"""Read public LLM-serving traces into one DataFrame shape, detecting the format from content.

Every reader returns columns arrival_time_s (float, sorted), input_tokens, output_tokens (int)
plus, where the format has them, session_id, prefix_hashes (list of int block hashes) and failed
(bool). Arrivals are rebased to the first one (replay starts there); `df.attrs` carries
format, source, hash_block_tokens (tokens per prefix hash), trace_start_offset_s (the first
arrival's original time, subtracted) and warnings (repairs made, e.g. sorting). Bad content raises ConfigError naming file, column, line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError
from traces.stats import rebase_arrivals

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
REQUIRED = ("arrival_time_s", "input_tokens", "output_tokens")
# Mooncake's hash_ids cover 512-token blocks (kvcache-ai/Mooncake FAST25-release README).
MOONCAKE_BLOCK_TOKENS = 512
# Bundled samples by package-relative name (see traces/data/README.md for sources).
SAMPLES = {
    "azure-conv-2023-sample": DATA_DIR / "azure_llm_2023_conv_sample.csv",
    "mooncake-conversation-sample": DATA_DIR / "mooncake_conversation_sample.jsonl",
}


class TraceFormat(StrEnum):
    AZURE_2023 = "azure-2023"
    AZURE_2024 = "azure-2024"
    BURSTGPT = "burstgpt"
    MOONCAKE = "mooncake"
    GENERIC_CSV = "generic-csv"
    GENERIC_JSONL = "generic-jsonl"


def resolve_trace_path(ref: str | Path) -> Path:
    """A bundled sample name, 'traces/data/<file>' or a filesystem path -> existing Path."""
    text = str(ref)
    if text in SAMPLES:
        return SAMPLES[text]
    if not text.strip():
        raise ConfigError("empty trace path", key="workload.trace",
                          allowed=["a path"] + sorted(SAMPLES))
    path = Path(text).expanduser()
    if path.is_dir():
        raise ConfigError(f"trace path is a directory: {text}", file=text, key="workload.trace",
                          allowed=["a trace file"] + sorted(SAMPLES))
    if path.exists():
        return path
    for candidate in (DATA_DIR / path.name, DATA_DIR.parent.parent / path):
        if candidate.exists() and (candidate.name == path.name or candidate == path):
            return candidate
    raise ConfigError(f"trace file not found: {text}", key="workload.trace",
                      allowed=["a path"] + sorted(SAMPLES))


def _first_line(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    return line.strip()
    except OSError as err:
        raise ConfigError(f"cannot read trace file: {err.strerror or err}",
                          file=str(path)) from None
    raise ConfigError("trace file is empty", file=str(path))


def detect_format(path: str | Path) -> TraceFormat:
    """Guess the trace format from the first non-empty line (header or first JSON record)."""
    path = Path(path)
    line = _first_line(path)
    if line.startswith("{"):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"line 1 is not valid JSON: {err.msg}", file=str(path)) from None
        if "input_length" in rec and "output_length" in rec:
            return TraceFormat.MOONCAKE
        return TraceFormat.GENERIC_JSONL
    cols = [c.strip().strip('"') for c in line.split(",")]
    if {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= set(cols):
        return TraceFormat.AZURE_2023  # refined to 2024 from the timestamps in _read_azure
    if {"Request tokens", "Response tokens"} <= set(cols):
        return TraceFormat.BURSTGPT
    return TraceFormat.GENERIC_CSV


def _numeric(series: pd.Series, column: str, file: str, *, line_offset: int,
             integer: bool, minimum: float, lines: np.ndarray | None = None) -> np.ndarray:
    """Values as float/int; ConfigError with the first bad row's line number (row index +
    line_offset, or lines[row] when the file's line numbers are given)."""
    series = series.set_axis(range(len(series)))
    values = pd.to_numeric(series, errors="coerce")
    arr = values.to_numpy(dtype=float)
    checks = ((np.isnan(arr), "non-numeric value {v!r}"),
              (arr < minimum, "value {v!r} is below " + f"{minimum:g}"),
              (np.isinf(arr), "value {v!r} is not finite"))
    if integer:
        with np.errstate(invalid="ignore"):
            checks += ((arr != np.floor(arr), "expected an integer, got {v!r}"),)
    for bad, text in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise ConfigError(f"line {_line(i, line_offset, lines)}: "
                              + text.format(v=series.iloc[i]), file=file, key=column)
    return arr.astype(np.int64) if integer else arr


def _line(i: int, offset: int, lines: np.ndarray | None) -> int:
    return int(lines[i]) if lines is not None else i + offset


def _require(df: pd.DataFrame, columns: Iterable[str], file: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"missing column(s) {', '.join(missing)}", file=file, key=missing[0],
                          allowed=list(df.columns))


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"cannot parse CSV: {first}", file=str(path)) from None


def _finish(out: dict[str, Any], path: Path, fmt: TraceFormat,
            hash_block_tokens: int | None) -> pd.DataFrame:
    """Build the frame, sort by arrival (stable) with a counted warning, set attrs."""
    df = pd.DataFrame(out)
    warnings: list[str] = []
    t = df["arrival_time_s"].to_numpy()
    out_of_order = int(np.count_nonzero(np.diff(t) < 0)) if len(t) > 1 else 0
    if out_of_order:
        df = df.sort_values("arrival_time_s", kind="stable").reset_index(drop=True)
        msg = f"{path.name}: {out_of_order} row(s) out of timestamp order; sorted by arrival"
        warnings.append(msg)
        log.warning(msg)
    # replay starts at the first arrival: a trace stamped in Unix-epoch seconds (1.7e9) would
    # otherwise bill ~54 years of idle cluster before its first request (issue 13)
    df = rebase_arrivals(df)
    df.attrs.update(format=str(fmt), source=str(path), warnings=warnings,
                    hash_block_tokens=hash_block_tokens)
    return df


def _parse_hashes(text: str, line: int, file: str) -> list[int]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            values = None
    else:
        values = text.replace(";", " ").replace("|", " ").split()
    try:
        return [int(v) for v in values]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"line {line}: prefix_hashes must be a list of integers, got "
                          f"{text!r}", file=file, key="prefix_hashes") from None


def _read_azure(path: Path) -> pd.DataFrame:
    file = str(path)
    raw = _read_csv(path)
    _require(raw, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"), file)
    if raw.empty:
        raise ConfigError("trace has no rows", file=file)
    stamps = pd.to_datetime(raw["TIMESTAMP"], errors="coerce", format="mixed", utc=True)
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(f"line {i + 2}: bad timestamp {raw['TIMESTAMP'].iloc[i]!r}",
                          file=file, key="TIMESTAMP")
    arrival = (stamps - stamps.min()).dt.total_seconds().to_numpy()  # unit-agnostic
    fmt = TraceFormat.AZURE_2024 if stamps.iloc[0].year >= 2024 else TraceFormat.AZURE_2023
    out = {"arrival_time_s": arrival,
           "input_tokens": _numeric(raw["ContextTokens"], "ContextTokens", file, line_offset=2,
                                    integer=True, minimum=1),
           "output_tokens": _numeric(raw["GeneratedTokens"], "GeneratedTokens", file,
                                     line_offset=2, integer=True, minimum=0)}
    return _finish(out, path, fmt, None)


def _read_burstgpt(path: Path) -> pd.DataFrame:
    file = str(path)
    raw = _read_csv(path)
    _require(raw, ("Timestamp", "Request tokens", "Response tokens"), file)
    if raw.empty:
        raise ConfigError("trace has no rows", file=file)
    out: dict[str, Any] = {
        "arrival_time_s": _numeric(raw["Timestamp"], "Timestamp", file, line_offset=2,
                                   integer=False, minimum=0),
        "input_tokens": _numeric(raw["Request tokens"], "Request tokens", file, line_offset=2,
                                 integer=True, minimum=0),
        "output_tokens": _numeric(raw["Response tokens"], "Response tokens", file,
                                  line_offset=2, integer=True, minimum=0)}
    # BurstGPT logs failed requests with zero response tokens: keep them, flagged.
    out["failed"] = out["output_tokens"] == 0
    for col in ("Model", "Log Type"):
        if col in raw.columns:
            out[col.lower().replace(" ", "_")] = raw[col].to_numpy()
    return _finish(out, path, TraceFormat.BURSTGPT, None)


def _read_generic_csv(path: Path) -> pd.DataFrame:
    file = str(path)
    raw = _read_csv(path)
    _require(raw, REQUIRED, file)
    if raw.empty:
        raise ConfigError("trace has no rows", file=file)
    out: dict[str, Any] = {
        "arrival_time_s": _numeric(raw["arrival_time_s"], "arrival_time_s", file, line_offset=2,
                                   integer=False, minimum=0),
        "input_tokens": _numeric(raw["input_tokens"], "input_tokens", file, line_offset=2,
                                 integer=True, minimum=1),
        "output_tokens": _numeric(raw["output_tokens"], "output_tokens", file, line_offset=2,
                                  integer=True, minimum=0)}
    if "session_id" in raw.columns:
        out["session_id"] = raw["session_id"].to_numpy()
    if "prefix_hashes" in raw.columns:
        out["prefix_hashes"] = [_parse_hashes(v, i + 2, file)
                                for i, v in enumerate(raw["prefix_hashes"])]
    if "failed" in raw.columns:
        out["failed"] = raw["failed"].str.strip().str.lower().isin(("1", "true", "yes"))
    return _finish(out, path, TraceFormat.GENERIC_CSV, None)


def _read_jsonl(path: Path, fmt: TraceFormat) -> pd.DataFrame:
    file = str(path)
    records = []
    try:
        with path.open("r", encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ConfigError(f"line {n}: invalid JSON ({err.msg})",
                                      file=file) from None
                if not isinstance(rec, dict):
                    raise ConfigError(f"line {n}: expected a JSON object", file=file)
                rec["_line"] = n
                records.append(rec)
    except UnicodeDecodeError:
        raise ConfigError(f"not UTF-8 text (after {len(records)} records)", file=file,
                          allowed="a UTF-8 JSON-lines file") from None
    if not records:
        raise ConfigError("trace has no rows", file=file)
    raw = pd.DataFrame.from_records(records)
    lines = raw["_line"].to_numpy()
    if fmt is TraceFormat.MOONCAKE:
        names = {"timestamp": "timestamp", "input": "input_length", "output": "output_length",
                 "hashes": "hash_ids"}
        time_scale, block = 1e-3, MOONCAKE_BLOCK_TOKENS  # timestamps are milliseconds
    else:
        names = {"timestamp": "arrival_time_s", "input": "input_tokens",
                 "output": "output_tokens", "hashes": "prefix_hashes"}
        time_scale, block = 1.0, None
    _require(raw, (names["timestamp"], names["input"], names["output"]), file)

    def col(key: str, integer: bool, minimum: float) -> np.ndarray:
        series = raw[names[key]].astype(object).where(raw[names[key]].notna(), "missing")
        return _numeric(series, names[key], file, line_offset=0, integer=integer,
                        minimum=minimum, lines=lines)

    out: dict[str, Any] = {"arrival_time_s": col("timestamp", False, 0) * time_scale,
                           "input_tokens": col("input", True, 1),
                           "output_tokens": col("output", True, 0)}
    if names["hashes"] in raw.columns:
        hashes = []
        for i, value in enumerate(raw[names["hashes"]]):
            if isinstance(value, list):
                try:
                    hashes.append([int(v) for v in value])
                    continue
                except (TypeError, ValueError):
                    pass
            elif value is None or (isinstance(value, float) and np.isnan(value)):
                hashes.append([])
                continue
            raise ConfigError(f"line {lines[i]}: expected a list of integers, got {value!r}",
                              file=file, key=names["hashes"])
        out["prefix_hashes"] = hashes
    if "session_id" in raw.columns:
        out["session_id"] = raw["session_id"].to_numpy()
    if "failed" in raw.columns:
        out["failed"] = raw["failed"].fillna(False).astype(bool).to_numpy()
    return _finish(out, path, fmt, block)


def read_trace(path: str | Path, *, format: TraceFormat | str | None = None) -> pd.DataFrame:
    """Read a trace file (format detected from content unless given) into the common frame."""
    path = resolve_trace_path(path)
    if format is None:
        fmt = detect_format(path)
    else:
        try:
            fmt = TraceFormat(str(format))
        except ValueError:
            raise ConfigError(f"unknown trace format '{format}'", key="format",
                              allowed=[f.value for f in TraceFormat]) from None
    if fmt in (TraceFormat.AZURE_2023, TraceFormat.AZURE_2024):
        return _read_azure(path)
    if fmt is TraceFormat.BURSTGPT:
        return _read_burstgpt(path)
    if fmt is TraceFormat.GENERIC_CSV:
        return _read_generic_csv(path)
    return _read_jsonl(path, fmt)
