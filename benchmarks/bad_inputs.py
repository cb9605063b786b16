"""The hand-made bad-input campaign as a report: runs every case of
tests/fleetsim/test_bad_inputs.py in-process and prints counts per outcome (pass, wrong_exit,
bad_stderr, traceback, wrong_answer, hang) and each failing case with what happened.

Run: python benchmarks/bad_inputs.py [--only SUBSTRING] [--timeout-s 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fleetsim")]


class _Hang(BaseException):  # noqa: N818 - not an Exception: the CLI must not swallow it
    """Raised by SIGALRM when a case runs past --timeout-s."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="run the cases whose id contains this")
    p.add_argument("--timeout-s", type=int, default=300, help="per-case hang limit")
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from test_bad_inputs import CASES, Result, run_case

    signal.signal(signal.SIGALRM, _alarm)
    counts: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    start = time.perf_counter()
    cases = [c for c in CASES if a.only in c.id]
    for c in cases:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            signal.alarm(a.timeout_s)
            try:
                result = run_case(c, Path(tmp))
            except _Hang:
                result = Result("hang", None, f"no answer within {a.timeout_s} s")
            finally:
                signal.alarm(0)
        counts[result.outcome] += 1
        if result.outcome != "pass":
            failures.append({"id": c.id, "outcome": result.outcome, "rc": result.rc,
                             "detail": result.detail, "wall_s": round(time.perf_counter() - t0,
                                                                      2)})
    wall = time.perf_counter() - start
    print(f"{len(cases)} cases in {wall:.0f} s")
    for outcome in ("pass", "wrong_exit", "bad_stderr", "traceback", "wrong_answer", "hang"):
        print(f"  {outcome:13s} {counts[outcome]}")
    if failures:
        print("failing cases:")
        for f in failures:
            print(f"  {f['id']}: {f['outcome']} ({f['detail']})")
    if a.json:
        Path(a.json).write_text(json.dumps({"cases": len(cases), "counts": dict(counts),
                                            "failures": failures}, indent=2))
    return 0 if counts["pass"] == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
