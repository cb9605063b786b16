"""Held-out H100 training rows: published vs predicted, per row and per table (issue 15).

The rows are simulator/data/training_published*.csv's HELDOUT_H100_TABLES (no constant was set
from them; sources and assumptions in simulator/training/validation.py), predicted with the
catalog defaults of the current tree. `--ref REV` predicts the same rows, with the same row
setups, on another git revision's models: it checks REV out in a temporary `git worktree`,
copies this tree's validation module, data files and this script into it, and runs there. A
row REV cannot express (a field it lacks, a split it rejects) shows its error instead of a
number. REV needs the issue-15 seam (5d54515 or later) for the row setups to import.

Run:
  python benchmarks/training_heldout.py                       # the current tree
  python benchmarks/training_heldout.py --ref 5d54515         # errors before (REV) and after
  python benchmarks/training_heldout.py --markdown            # tables for docs/
  python benchmarks/training_heldout.py --tables BLOOM-176B,LLAMA3-T4
  python benchmarks/training_heldout.py --tables FOUNDRY-A100  # held-out A100 rows
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from simulator.training.validation import (  # noqa: E402
    DATA_DIR,
    DATA_GLOB,
    HELDOUT_H100_TABLES,
    load_published,
    predict_row_full,
)

COPIED = ("simulator/training/validation.py", "benchmarks/training_heldout.py")


def measure(tables: tuple[str, ...]) -> list[dict[str, Any]]:
    """One record per row of `tables`: published, predicted (None where it failed), signed
    error %, whether the published plan fits our memory model, config or the error."""
    out = []
    data = load_published()
    for index, row in data[data.source.isin(tables)].iterrows():
        rec: dict[str, Any] = {"row": int(index), "source": str(row.source),
                               "model": str(row.model), "n_devices": int(row.n_devices),
                               "metric": str(row.metric), "published": float(row.value)}
        try:
            pred = predict_row_full(row)
        except Exception as err:  # noqa: BLE001 - a revision that cannot run a row reports why
            rec.update(predicted=None, error_pct=None, fits_memory=None,
                       config=f"n/a: {type(err).__name__}: {str(err).splitlines()[0]}")
        else:
            rec.update(predicted=pred.predicted,
                       error_pct=100.0 * (pred.predicted - rec["published"]) / rec["published"],
                       fits_memory=pred.fits_memory, config=pred.config)
        out.append(rec)
    return out


def measure_at(rev: str, tables: tuple[str, ...]) -> list[dict[str, Any]]:
    """measure() run on revision `rev`'s models with this tree's row setups and data."""
    with tempfile.TemporaryDirectory(prefix="heldout-") as tmp:
        where = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
                       check=True, capture_output=True, text=True)
        try:
            for rel in COPIED:
                (where / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, where / rel)
            for f in DATA_DIR.glob(DATA_GLOB):
                shutil.copy2(f, where / "simulator" / "data" / f.name)
            out_json = Path(tmp) / "ref.json"
            run = subprocess.run(
                [sys.executable, str(where / "benchmarks" / "training_heldout.py"),
                 "--tables", ",".join(tables), "--emit-json", str(out_json)],
                cwd=where, env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
                capture_output=True, text=True)
            if run.returncode != 0:
                raise SystemExit(f"--ref {rev}: the run failed:\n{run.stderr.strip()}")
            return json.loads(out_json.read_text())
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(where)], check=False, capture_output=True)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def rows_frame(cur: list[dict[str, Any]], ref: list[dict[str, Any]] | None) -> pd.DataFrame:
    df = pd.DataFrame(cur)
    if ref is not None:
        r = pd.DataFrame(ref).set_index("row")
        df["ref_predicted"] = df.row.map(r.predicted)
        df["ref_error_pct"] = df.row.map(r.error_pct)
        df["ref_config"] = df.row.map(r.config)
    return df


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per table and over all held-out rows: rows, MAPE, mean signed error, worst |error|."""
    cols = ["error_pct"] + (["ref_error_pct"] if "ref_error_pct" in df else [])
    out = []
    total = ("ALL H100 HELD-OUT" if set(df.source) <= set(HELDOUT_H100_TABLES)
             else "ALL ROWS SHOWN")
    for name, part in [*df.groupby("source", sort=False), (total, df)]:
        rec: dict[str, Any] = {"table": name, "rows": len(part)}
        for col in cols:
            err = pd.to_numeric(part[col], errors="coerce").dropna()
            tag = "" if col == "error_pct" else "ref_"
            rec[f"{tag}mape_pct"] = err.abs().mean() if len(err) else None
            rec[f"{tag}mean_signed_pct"] = err.mean() if len(err) else None
            rec[f"{tag}worst_pct"] = err.loc[err.abs().idxmax()] if len(err) else None
        out.append(rec)
    return pd.DataFrame(out)


def _markdown(df: pd.DataFrame, headers: list[str], cells: list[str]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(cell.format(**r.to_dict()) if "{" in cell else
                                        str(r[cell]) for cell in cells) + " |")
    return "\n".join(lines)


def render(df: pd.DataFrame, summary: pd.DataFrame, *, markdown: bool, rev: str | None) -> str:
    show = df.copy()
    show["err"] = [_fmt(v, "+.1f") for v in show.error_pct]
    show["pred"] = [_fmt(v, ".4g") for v in show.predicted]
    show["fits"] = [{True: "yes", False: "NO", None: "-"}.get(v, "-") for v in show.fits_memory]
    cols = ["source", "model", "n_devices", "config", "metric", "published", "pred", "err",
            "fits"]
    heads = ["table", "model", "GPUs", "config (current)", "metric", "published", "predicted",
             "error %", "fits memory"]
    if rev is not None:
        show["ref_pred"] = [_fmt(v, ".4g") for v in show.ref_predicted]
        show["ref_err"] = [_fmt(v, "+.1f") for v in show.ref_error_pct]
        cols += ["ref_pred", "ref_err"]
        heads += [f"predicted @{rev}", f"error % @{rev}"]
    s = summary.copy()
    for c in [c for c in s.columns if c.endswith("_pct")]:
        s[c] = [_fmt(v, "+.1f" if "signed" in c or "worst" in c else ".1f") for v in s[c]]
    if markdown:
        return (_markdown(show, heads, cols) + "\n\n"
                + _markdown(s, list(s.columns), list(s.columns)))
    with pd.option_context("display.width", 250, "display.max_colwidth", 70):
        return (show[cols].set_axis(heads, axis=1).to_string(index=False) + "\n\n"
                + s.to_string(index=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", help="git revision to compare with (e.g. 5d54515)")
    ap.add_argument("--tables", default=",".join(HELDOUT_H100_TABLES),
                    help="comma-separated tables (default: the held-out H100 tables)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    ap.add_argument("--json", dest="json_out", help="write rows and summary as JSON here")
    ap.add_argument("--emit-json", help=argparse.SUPPRESS)  # --ref's child run
    args = ap.parse_args(argv)
    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    cur = measure(tables)
    if args.emit_json:
        Path(args.emit_json).write_text(json.dumps(cur))
        return 0
    ref = measure_at(args.ref, tables) if args.ref else None
    df = rows_frame(cur, ref)
    summary = summary_frame(df)
    print(render(df, summary, markdown=args.markdown, rev=args.ref))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"ref": args.ref, "rows": df.to_dict(orient="records"),
             "summary": summary.to_dict(orient="records")}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
