"""Fuzz benchmark: N fuzzed `fleetsim simulate` runs (valid + invalid mix, training, long-run,
serving, and scale-up topologies: TPU slices with slice_shape, xGMI/HCCS meshes, intra_node /
inter_node variety and their bad mutations) and CLI-option runs (hw show with cluster flags
among them), in-process, on a pool of worker processes with a per-run timeout.

Run: python benchmarks/fuzz.py --n 10000 --out /tmp/fuzz [--seed 0] [--workers 2] [--timeout-s 20]
Prints counts: runs, ok, tracebacks (any exception other than ConfigError/InfeasibleError
escaping the CLI), hangs (past the timeout), invariant violations (exit 4), silent wrong
answers (counts not adding up, NaN/inf/negative numbers, cost or GPU-hours inconsistent with
the simulated span), exit-code mismatches (valid rejected, invalid accepted, stderr not one
line); and writes the first reproducer of each failure class (the scenario as YAML plus the
command) and a summary.json to --out. Case i is built from seed (seed, i): reruns are exact.
The case generators and the checks are tests/fuzz/strategies.py and tests/fuzz/harness.py.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fuzz")]

CLI_SHARE = 0.1  # fraction of runs that fuzz option-only commands instead of a scenario


class _Hang(TimeoutError):  # noqa: N818 - the harness lets TimeoutError through
    """Raised by SIGALRM when a run passes --timeout-s (counted as a hang)."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang()


def _init_worker() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    signal.signal(signal.SIGALRM, _alarm)
    import harness  # noqa: F401  (import the CLI once per worker)


def one_run(args: tuple[int, int, int]) -> dict[str, Any]:
    """Build case i from (seed, i), run it under signal.alarm, return its classification."""
    from harness import reproducer, run_case, run_cli_case
    from strategies import RandomChooser, cli_argv, fuzz_case

    seed, i, timeout_s = args
    chooser = RandomChooser(seed * 1_000_003 + i)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        is_cli = chooser.rng.random() < CLI_SHARE
        case = cli_argv(chooser) if is_cli else fuzz_case(chooser)
        signal.alarm(timeout_s)
        try:
            outcome = run_cli_case(case, Path(tmp)) if is_cli else run_case(case, Path(tmp))
        except _Hang:
            outcome = None
        finally:
            signal.alarm(0)
    wall = time.perf_counter() - start
    if is_cli:
        kind, valid = "cli", None
        cmd = "python -m fleetsim " + " ".join(outcome.argv if outcome else case)
        cls, detail = (outcome.cls, outcome.detail) if outcome else ("hang", f"> {timeout_s} s")
        repro = f"# class: {cls}\n# {detail}\n# command: {cmd}\n"
    else:
        kind, valid = case.kind, case.valid
        if outcome is None:
            from harness import Outcome

            outcome = Outcome("hang", None, f"no answer within {timeout_s} s",
                              (*case.command, "scenario.yaml", "--json"))
        cls, detail = outcome.cls, outcome.detail
        repro = reproducer(case, outcome)
    mutation = "" if is_cli else (case.mutation or "valid")
    return {"i": i, "kind": kind, "valid": valid, "cls": cls, "detail": detail,
            "mutation": mutation,
            "wall_s": wall, "repro": repro}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="runs (default 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="fuzz-out", help="folder for reproducers and summary")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout-s", type=int, default=20, help="per-run hang limit")
    a = p.parse_args(argv)
    if a.n < 1 or a.workers < 1 or a.timeout_s < 1:
        p.error("--n, --workers and --timeout-s must be >= 1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    by_kind: Counter[tuple[str, str]] = Counter()
    first: dict[str, dict[str, Any]] = {}
    signatures: Counter[tuple[str, str]] = Counter()
    start = time.perf_counter()
    ctx = mp.get_context("fork")
    with ctx.Pool(a.workers, initializer=_init_worker, maxtasksperchild=500) as pool:
        jobs = ((a.seed, i, a.timeout_s) for i in range(a.n))
        for done, r in enumerate(pool.imap_unordered(one_run, jobs, chunksize=4), 1):
            counts[r["cls"]] += 1
            by_kind[(r["kind"], r["cls"])] += 1
            if r["cls"] != "ok":
                if r["cls"] == "traceback":
                    sig = r["detail"].split(":")[0][:40] + " " + r["detail"].split("(at ")[-1][:90]
                elif r["cls"] == "exit_mismatch" and r["mutation"]:
                    sig = f"{r['mutation']} -> {r['detail'][:40]}"
                else:
                    sig = r["detail"][:60]
                signatures[(r["cls"], f"{r['kind']}: {sig}")] += 1
                if r["cls"] not in first or r["i"] < first[r["cls"]]["i"]:
                    first[r["cls"]] = r
            if done % 1000 == 0:
                print(f"  {done}/{a.n} runs, {time.perf_counter() - start:.0f} s", flush=True)
    wall = time.perf_counter() - start
    for cls, r in first.items():
        (out / f"{cls}.yaml").write_text(r["repro"])
    summary = {"runs": a.n, "seed": a.seed, "wall_s": round(wall, 1),
               "ok": counts["ok"], "tracebacks": counts["traceback"], "hangs": counts["hang"],
               "invariant_violations": counts["invariant"],
               "silent_wrong_answers": counts["wrong_answer"],
               "exit_code_mismatches": counts["exit_mismatch"],
               "by_kind": {f"{k}/{c}": v for (k, c), v in sorted(by_kind.items())},
               "failure_signatures": [{"class": c, "signature": s, "count": v}
                                      for (c, s), v in signatures.most_common()],
               "first_reproducers": {c: f"{c}.yaml" for c in first}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"runs {a.n} in {wall:.0f} s ({a.workers} workers, seed {a.seed})")
    for key in ("ok", "tracebacks", "hangs", "invariant_violations", "silent_wrong_answers",
                "exit_code_mismatches"):
        print(f"  {key:22s} {summary[key]}")
    print("failure signatures (class, kind: first words, count):")
    for (cls, sig), v in signatures.most_common(40):
        print(f"  {cls:14s} {v:6d}  {sig}")
    print(f"first reproducer of each failure class in {out}/")
    return 0 if counts["ok"] == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
