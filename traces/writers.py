"""Write request frames in fleetsim's generic format (read back by traces.readers)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hwmodels.atomic import atomic_write
from hwmodels.errors import ConfigError

COLUMNS = ("arrival_time_s", "input_tokens", "output_tokens", "session_id", "prefix_hashes")


def write_trace(df: pd.DataFrame, path: str | Path) -> Path:
    """Generic CSV (prefix_hashes space-separated) or JSONL by suffix, written atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ConfigError(f"unknown trace output format '{suffix}'", file=str(path), key="--out",
                          allowed=[".csv", ".jsonl"])
    cols = [c for c in COLUMNS if c in df.columns]
    out = df[cols].copy()

    def write(tmp: Path) -> None:
        if suffix == ".csv":
            frame = out.copy()
            if "prefix_hashes" in frame:
                frame["prefix_hashes"] = [" ".join(str(int(h)) for h in hs)
                                          for hs in frame["prefix_hashes"]]
            frame.to_csv(tmp, index=False)
            return
        with open(tmp, "w") as fh:
            for rec in out.to_dict(orient="records"):
                if "prefix_hashes" in rec:
                    rec["prefix_hashes"] = [int(h) for h in rec["prefix_hashes"]]
                fh.write(json.dumps({k: (v.item() if hasattr(v, "item") else v)
                                     for k, v in rec.items()}) + "\n")

    return atomic_write(path, write)
