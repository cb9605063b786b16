"""MAPE per accelerator, training and serving, now (catalog defaults) and before (issue 18).

"Now" predicts every bundled published row (simulator/data/training_published*.csv and
serving_published*.csv) with the catalog defaults of this tree, as `fleetsim validate` does;
"before" is read from benchmarks/data/accel_before_*.csv: what the base commit predicted for the
closest setup it could express (n/a where none). The table is the one `fleetsim validate`
prints after its per-table summaries (fleetsim.cli.validate_accel).

Run:
  python benchmarks/accel_mape.py                          # both suites, every device
  python benchmarks/accel_mape.py --suite training --devices tpu-v5e,mi300x
  python benchmarks/accel_mape.py --markdown               # the table for README / docs
  python benchmarks/accel_mape.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fleetsim.cli.validate_accel import (  # noqa: E402
    TABLE_HEADS,
    accel_report,
    before_files,
    published_sources,
    read_before,
    table_rows,
)


def suite_rows(suite: str, devices: list[str] | None) -> list[dict[str, Any]]:
    """Rows (device, error_pct, ...) of one suite on the catalog defaults."""
    if suite == "training":
        from simulator.training.validation import validate_training

        return validate_training(devices=devices).to_dict(orient="records")
    from simulator.serving.validation import validate_serving

    return list(validate_serving(devices=devices)["rows"])


def markdown(report: dict[str, Any], suites: list[str]) -> str:
    """One markdown table per suite."""
    out = []
    for suite in suites:
        out.append(f"**{suite.capitalize()}** (catalog defaults; before = base commit)\n")
        out.append("| " + " | ".join(TABLE_HEADS) + " |")
        out.append("|" + "---|" * len(TABLE_HEADS))
        out.extend("| " + " | ".join(cells) + " |" for cells in table_rows(report[suite]))
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=("training", "serving", "all"), default="all")
    ap.add_argument("--devices", default="", help="comma-separated catalog devices (default: "
                    "every row)")
    ap.add_argument("--before-dir", default=None, help="folder of accel_before_*.csv "
                    "(default benchmarks/data)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    suites = ["training", "serving"] if args.suite == "all" else [args.suite]
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] or None
    before = read_before(before_files(args.before_dir))
    if devices is not None and len(before):
        from fleetsim.cli.validate_accel import accelerator_of

        wanted = {accelerator_of(d).device for d in devices}
        before = before[[accelerator_of(d).device in wanted for d in before.device]]
    report = {s: {"rows": suite_rows(s, devices)} for s in suites}
    table = accel_report(report, before, published_sources())
    if args.json:
        print(json.dumps(table, indent=2))
    elif args.markdown:
        print(markdown(table, suites))
    else:
        for suite in suites:
            print(f"{suite}: MAPE per accelerator (catalog defaults; before = base commit)")
            widths = [max([len(h), *(len(c[i]) for c in table_rows(table[suite]))])
                      for i, h in enumerate(TABLE_HEADS)]
            for cells in [TABLE_HEADS, *table_rows(table[suite])]:
                print("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
        if table["unassigned_before"]:
            print(f"{len(table['unassigned_before'])} before row(s) match no validation "
                  "source:", ", ".join(sorted({f"{r['file']}:{r['source']}"
                                               for r in table["unassigned_before"]})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
