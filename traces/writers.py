"""Write request frames in fleetsim's generic format (read back by traces.readers)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix == ".csv":
            if "prefix_hashes" in out:
                out["prefix_hashes"] = [" ".join(str(int(h)) for h in hs)
                                        for hs in out["prefix_hashes"]]
            out.to_csv(tmp, index=False)
        else:
            with open(tmp, "w") as fh:
                for rec in out.to_dict(orient="records"):
                    if "prefix_hashes" in rec:
                        rec["prefix_hashes"] = [int(h) for h in rec["prefix_hashes"]]
                    fh.write(json.dumps({k: (v.item() if hasattr(v, "item") else v)
                                         for k, v in rec.items()}) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
