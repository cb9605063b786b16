"""Run one fuzz case through the CLI in-process and classify what happened.

Classes: ok; traceback (an exception escaped fleetsim.cli.app.main, or "Traceback" on a
stream); invariant (exit 4: the simulator caught its own broken invariant); exit_mismatch (an
exit code not allowed for the case, or stderr that is not exactly one "fleetsim: ..." line);
wrong_answer (exit 0 but the numbers fail the checks below). Hangs are the caller's business
(benchmarks/fuzz.py wraps run_case in signal.alarm).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from strategies import FuzzCase

CLASSES = ("ok", "traceback", "hang", "invariant", "wrong_answer", "exit_mismatch")


@dataclass(frozen=True)
class Outcome:
    cls: str
    rc: int | None
    detail: str
    argv: tuple[str, ...]


def run_cli(argv: list[str]) -> tuple[int | None, str, str, str]:
    """main(argv) with stdout/stderr captured: (rc or None, stdout, stderr, traceback text)."""
    from fleetsim.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    tb = ""
    rc: int | None = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except (TimeoutError, KeyboardInterrupt):
            raise
        except BaseException:  # noqa: BLE001 - any escape is the finding
            tb = traceback.format_exc()
    return rc, out.getvalue(), err.getvalue(), tb


def tb_summary(tb: str) -> str:
    """'ExcType: message (at file:line in function)' of a formatted traceback."""
    lines = tb.strip().splitlines()
    root = str(Path(__file__).resolve().parents[2]) + "/"
    where = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
    ours = [w for w in where if root in w and "/tests/" not in w]  # innermost frame of ours
    where = ours or where
    loc = where[-1].replace("File ", "").replace('"', "") if where else "?"
    return f"{lines[-1][:200]} (at {loc.replace(root, '')})"


def stderr_problem(rc: int, err: str) -> str | None:
    """Why stderr is not the one-line contract for exit code rc (None: it is)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if "Traceback" in err:
        return "Traceback on stderr"
    if rc == 0:
        return None
    if len(lines) != 1:
        return f"{len(lines)} stderr lines: {err.strip()[:300]!r}"
    prefix = {2: "fleetsim: error:", 3: "fleetsim: infeasible:",
              4: "fleetsim: internal error"}.get(rc, "fleetsim:")
    if not lines[0].startswith(prefix):
        return f"stderr does not start with {prefix!r}: {lines[0][:300]!r}"
    return None


def _numbers(obj: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{prefix}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield prefix, obj


def _finite_nonneg(summary: dict[str, Any]) -> list[str]:
    bad = []
    for key, v in _numbers(summary):
        if not math.isfinite(v) or v < 0:
            bad.append(f"{key}={v}")
    return bad


def _device_price(name: str) -> float:
    from hwmodels.catalog import load_device

    return float(load_device(name).price_usd_per_hour)


def _max_devices_and_price(sc: dict[str, Any]) -> tuple[int, float]:
    """An upper bound on devices ever up (autoscaling included) and the dearest $/device-h."""
    s = sc.get("serving", {})
    tp, pp = int(s.get("tp", 1)), int(s.get("pp", 1))
    base = sc["cluster"]["device"]
    if "replica_groups" in s:
        total, price = 0, 0.0
        auto = sc.get("autoscale") or {}
        for g in s["replica_groups"]:
            count = g.get("count", 1)
            if auto.get("group") == g["name"]:
                count = max(count, auto.get("max_replicas", 8))
            total += count * g.get("tp", tp) * g.get("pp", pp)
            price = max(price, g.get("price_usd_per_hour") or _device_price(g.get("device", base)))
        return total, price
    if "disaggregation" in s:
        d = s["disaggregation"]
        return (d.get("prefill_replicas", 1) + d.get("decode_replicas", 1)) * tp * pp, \
            _device_price(base)
    return int(s.get("replicas", 1)) * tp * pp, _device_price(base)


def check_serving(sc: dict[str, Any], summary: dict[str, Any], records_csv: Path) -> list[str]:
    """Silent-wrong-answer checks for a serving run: counts add up, numbers finite and >= 0,
    cost and GPU-hours consistent with the simulated span and the devices that existed."""
    problems = _finite_nonneg(summary)
    n = summary.get("requests")
    for key in ("requests", "completed", "dropped", "gpu_hours", "cost_usd", "energy_kwh",
                "throughput_tokens_per_s", "goodput_rps", "slo_attainment"):
        if not isinstance(summary.get(key), (int, float)):
            problems.append(f"{key} is {summary.get(key)!r} (NaN or missing)")
    if problems:
        return problems
    synthetic = sc["workload"].get("synthetic")
    expected_n = synthetic["num_requests"] if synthetic else n  # a trace: its window decides
    if n != expected_n:
        problems.append(f"requests {n} != workload's {expected_n}")
    accounted = summary["completed"] + summary["dropped"] + summary.get("truncated", 0)
    if accounted != n:
        problems.append(f"completed {summary['completed']} + dropped {summary['dropped']}"
                        f" + truncated {summary.get('truncated', 0)} != requests {n}")
    if not 0 <= summary["slo_attainment"] <= 1:
        problems.append(f"slo_attainment {summary['slo_attainment']} outside [0, 1]")
    groups = summary.get("groups") or {}
    if groups:
        for key in ("gpu_hours", "cost_usd"):
            total = sum(g.get(key, 0.0) or 0.0 for g in groups.values())
            if not math.isclose(total, summary[key], rel_tol=1e-6, abs_tol=1e-9):
                problems.append(f"sum of groups' {key} {total} != {key} {summary[key]}")
    with records_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != n:
        problems.append(f"{len(rows)} records for {n} requests")
    end_s = 0.0
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        arrival = float(r["arrival_s"])
        times = [float(r[k]) for k in ("arrival_s", "first_token_s", "finish_s")
                 if r.get(k) not in (None, "", "nan")]
        times = [t for t in times if math.isfinite(t)]
        end_s = max([end_s, *times])
        if r["status"] == "completed":
            first, finish = float(r["first_token_s"]), float(r["finish_s"])
            if not (arrival <= first + 1e-9 and first <= finish + 1e-9):
                problems.append(f"request {r['request_id']}: arrival {arrival} first token "
                                f"{first} finish {finish} out of order")
                break
    if statuses.get("completed", 0) != summary["completed"]:
        problems.append(f"{statuses.get('completed', 0)} completed records but summary says "
                        f"{summary['completed']}")
    devices, price = _max_devices_and_price(sc)
    timeout = (sc.get("serving") or {}).get("client_timeout_s") or 0.0
    span_h = (end_s + 60.0 + timeout) * 1.1 / 3600.0
    if summary["gpu_hours"] > devices * span_h + 1e-9:
        problems.append(f"gpu_hours {summary['gpu_hours']:.6g} > {devices} devices x "
                        f"{span_h:.6g} h (simulated span {end_s:.3f} s)")
    if summary["cost_usd"] > summary["gpu_hours"] * price * (1 + 1e-6) + 1e-9:
        problems.append(f"cost_usd {summary['cost_usd']:.6g} > gpu_hours x dearest price "
                        f"{price}/h")
    return problems


def check_training(sc: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """Silent-wrong-answer checks for an iteration (and a long run)."""
    problems = _finite_nonneg({k: v for k, v in out.items() if k != "job_mttf_s"})
    it = out.get("iteration_time_s")
    if not isinstance(it, (int, float)) or not it > 0:
        return [*problems, f"iteration_time_s {it!r}"]
    for key in ("mfu", "hfu"):
        v = out.get(key)
        if isinstance(v, (int, float)) and not 0 < v <= 1:
            problems.append(f"{key} {v} outside (0, 1]")
    bd = out.get("breakdown") or {}
    if bd.get("compute_s", 0) > it * (1 + 1e-9):
        problems.append(f"compute_s {bd['compute_s']} > iteration_time_s {it}")
    tokens = sc["training"]["global_batch"] * sc["training"]["seq_len"]
    if not math.isclose(out["tokens_per_s"] * it, tokens, rel_tol=1e-6):
        problems.append(f"tokens_per_s x iteration_time_s = {out['tokens_per_s'] * it:.6g}"
                        f" != global_batch x seq_len = {tokens}")
    if "ettr" in out:
        if not 0 <= out["ettr"] <= 1 + 1e-9:
            problems.append(f"ettr {out['ettr']} outside [0, 1]")
        # a multi-seed summary has no ideal_tokens_per_s: the failure-free iteration rate is it
        ideal = out.get("ideal_tokens_per_s", out["tokens_per_s"])
        if out["goodput_tokens_per_s"] > ideal * (1 + 1e-9):
            problems.append(f"goodput_tokens_per_s {out['goodput_tokens_per_s']} > ideal {ideal}")
    return problems


ELASTIC_GAIN_REFUSAL = "data-parallel communication costs more than the replicas add"


def run_case(case: FuzzCase, workdir: Path) -> Outcome:
    """Write the scenario, run the CLI in-process, classify."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "scenario.yaml"
    path.write_text(yaml.safe_dump(case.scenario, sort_keys=False))
    argv = [*case.command, str(path), "--json", *case.extra_args]
    records = workdir / "records.csv"
    if case.serving and case.valid:
        argv += ["--records", str(records)]
    rc, out, err, tb = run_cli(argv)
    if tb:
        return Outcome("traceback", None, tb_summary(tb), tuple(argv))
    assert rc is not None
    if rc == 4:
        return Outcome("invariant", rc, err.strip()[:300], tuple(argv))
    problem = stderr_problem(rc, err)
    if problem and "Traceback" in problem:
        return Outcome("traceback", rc, problem, tuple(argv))
    if rc == 2 and case.valid and ELASTIC_GAIN_REFUSAL in err:
        # a valid long run whose plan is slower than its own elastic shrink: refused on
        # purpose (simulator/longrun/engine.py _base) instead of pricing a negative loss
        return Outcome("ok", rc, "refused: elastic shrink faster than the plan", tuple(argv))
    if rc not in case.expect:
        return Outcome("exit_mismatch", rc, f"exit {rc}, expected {case.expect}: "
                       f"{err.strip()[:300]}", tuple(argv))
    if problem:
        return Outcome("exit_mismatch", rc, problem, tuple(argv))
    if rc == 0 and case.valid:
        try:
            result = json.loads(out)
        except json.JSONDecodeError as exc:
            return Outcome("wrong_answer", rc, f"stdout is not one JSON object: {exc}",
                           tuple(argv))
        problems = (check_serving(case.scenario, result, records) if case.serving
                    else check_training(case.scenario, result))
        if problems:
            return Outcome("wrong_answer", rc, "; ".join(problems)[:500], tuple(argv))
    return Outcome("ok", rc, "", tuple(argv))


def reproducer(case: FuzzCase, outcome: Outcome) -> str:
    """The scenario as YAML plus the command that reproduces the outcome."""
    cmd = " ".join(["python -m fleetsim", *outcome.argv[:2], "scenario.yaml",
                    *outcome.argv[3:]]).replace(str(Path(outcome.argv[2]).parent) + "/", "")
    return (f"# class: {outcome.cls}  (exit {outcome.rc})\n# {outcome.detail}\n"
            f"# kind: {case.kind}  valid: {case.valid}  mutation: {case.mutation or '-'}\n"
            f"# command: {cmd}\n" + yaml.safe_dump(case.scenario, sort_keys=False))


def run_cli_case(argv: list[str], workdir: Path) -> Outcome:
    """A CLI-option fuzz case: any of exit 0, 2, 3 is fine, with the stderr contract."""
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [a.replace("{tmp}", str(workdir)) for a in argv]
    rc, out, err, tb = run_cli(argv)
    if tb:
        return Outcome("traceback", None, tb_summary(tb), tuple(argv))
    assert rc is not None
    if rc == 4:
        return Outcome("invariant", rc, err.strip()[:300], tuple(argv))
    problem = stderr_problem(rc, err)
    if rc not in (0, 2, 3) or problem:
        return Outcome("traceback" if problem and "Traceback" in problem else "exit_mismatch",
                       rc, problem or f"exit {rc}", tuple(argv))
    if rc == 0:
        try:
            result = json.loads(out)
        except json.JSONDecodeError as exc:
            return Outcome("wrong_answer", rc, f"stdout is not one JSON object: {exc}",
                           tuple(argv))
        bad = [k for k, v in _numbers(result) if not math.isfinite(v)]
        if bad:
            return Outcome("wrong_answer", rc, f"non-finite {bad[:5]}", tuple(argv))
    return Outcome("ok", rc, "", tuple(argv))
