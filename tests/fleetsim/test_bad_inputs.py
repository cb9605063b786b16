"""The hand-made bad-input campaign (issue 13: never a traceback, never a silent wrong answer):
every CLI command with missing, unreadable, malformed, out-of-range and contradictory input.

Each case is argv (placeholders: {tmp} the case's temporary folder, {sc} the shipped scenario
folder), the files it creates under {tmp}, and the exit code it must end with: 2 bad input,
3 infeasible, 0 valid; stderr is then one line ("fleetsim: error: ..." for 2) and never a
traceback. Cases with `check` also test the numbers of a valid run. benchmarks/bad_inputs.py
runs the same CASES and prints counts per outcome.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "simulator" / "scenarios"


# ------------------------------------------------------------------------- scenario files

def _serve(**over: Any) -> dict[str, Any]:
    """A tiny valid serving scenario (llama3-8b, 2 x H100, 20 synthetic requests)."""
    sc: dict[str, Any] = {
        "name": "tiny-serve", "model": "llama3-8b",
        "cluster": {"device": "h100-sxm", "num_devices": 2},
        "serving": {"replicas": 2, "tp": 1},
        "workload": {"synthetic": {"num_requests": 20, "arrival": {"process": "poisson",
                                                                   "rate": 20.0},
                                   "input": {"dist": "fixed", "value": 128},
                                   "output": {"dist": "fixed", "value": 16}}},
        "slo": {"ttft_s": 1.0, "tpot_s": 0.1}, "seed": 0}
    for key, value in over.items():
        _set(sc, key, value)
    return sc


def _train(**over: Any) -> dict[str, Any]:
    """A tiny valid training scenario (llama3-8b on 8 x H100, TP2 PP2 DP2)."""
    sc: dict[str, Any] = {
        "name": "tiny-train", "model": "llama3-8b",
        "cluster": {"device": "h100-sxm", "num_devices": 8, "devices_per_node": 8},
        "training": {"seq_len": 2048, "global_batch": 16, "micro_batch": 1},
        "parallelism": {"tp": 2, "pp": 2, "dp": "auto", "schedule": "1f1b"}}
    for key, value in over.items():
        _set(sc, key, value)
    return sc


def _run(**over: Any) -> dict[str, Any]:
    """The tiny training scenario with a one-day run: section."""
    sc = _train(run={"duration": "1d", "failures": {"model": "llama3", "scale": 10.0},
                     "checkpoint": {"interval_s": "30m", "mode": "async"}})
    for key, value in over.items():
        _set(sc, key, value)
    return sc


def _set(sc: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split("__")
    d = sc
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    if value is _DELETE:
        d.pop(keys[-1], None)
    else:
        d[keys[-1]] = value


_DELETE = object()


def _y(sc: dict[str, Any]) -> str:
    return yaml.safe_dump(sc, sort_keys=False)


GROUPS = {"replica_groups": [{"name": "a", "device": "h100-sxm", "count": 1},
                             {"name": "b", "device": "a100-80gb", "count": 1}]}
NON_UTF8 = b"model: llama3-8b\nname: \xff\xfe\xfa caf\xe9\n"
EPOCH_TRACE = "arrival_time_s,input_tokens,output_tokens\n" + "".join(
    f"{1_700_000_000 + i},{100},{20}\n" for i in range(20))
HUGE_OUTPUT_TRACE = ("arrival_time_s,input_tokens,output_tokens\n0.0,100,20\n0.5,100,20\n"
                     "1.0,100,100000000\n")


# ------------------------------------------------------------------------------- checks

def _serve_counts_add_up(out: dict[str, Any]) -> str | None:
    total = out["completed"] + out["dropped"] + out.get("truncated", 0)
    if total != out["requests"]:
        return (f"completed {out['completed']} + dropped {out['dropped']} + truncated "
                f"{out.get('truncated', 0)} != requests {out['requests']} (requests left running)")
    bad = [k for k, v in out.items() if isinstance(v, float) and (not math.isfinite(v) or v < 0)]
    return f"non-finite or negative {bad}" if bad else None


def _epoch_cost(out: dict[str, Any]) -> str | None:
    """20 requests over ~20 s on 2 H100s: cost must be for that span (~cents), not $11M."""
    problem = _serve_counts_add_up(out)
    if problem:
        return problem
    if out["gpu_hours"] > 2 * (60.0 / 3600.0):
        return f"gpu_hours {out['gpu_hours']:.6g} for a ~20 s trace on 2 GPUs"
    if out["cost_usd"] > 1.0:
        return f"cost_usd {out['cost_usd']:.6g} for a ~20 s trace on 2 GPUs"
    return None


def _huge_output_not_completed(out: dict[str, Any]) -> str | None:
    """A 100M-token answer cannot finish in the horizon: not a normal completion."""
    problem = _serve_counts_add_up(out)
    if problem:
        return problem
    if out["completed"] >= 3:
        return "the 100M-output-token request counted as a normal completion"
    return None


# -------------------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expect: int | tuple[int, ...] = 2
    files: dict[str, str | bytes] = field(default_factory=dict)  # "x/" makes a folder
    check: Callable[[dict[str, Any]], str | None] | None = None  # on the --json stdout
    # the error line must contain each (placeholders as argv): file, key, allowed values
    says: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # e.g. FLEETSIM_CATALOG={tmp}/cat


CASES: list[Case] = []


def case(id: str, *argv: str, expect: int | tuple[int, ...] = 2,
         files: dict[str, str | bytes] | None = None,
         check: Callable[[dict[str, Any]], str | None] | None = None,
         says: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
    assert all(c.id != id for c in CASES), id
    CASES.append(Case(id, tuple(argv), expect, files or {}, check, says, env or {}))


def serve_case(id: str, sc: dict[str, Any], *extra: str, expect: int | tuple[int, ...] = 2,
               check: Callable[[dict[str, Any]], str | None] | None = None,
               files: dict[str, str | bytes] | None = None, says: tuple[str, ...] = ()) -> None:
    case(id, "simulate", "serve", "{tmp}/s.yaml", "--json", *extra, expect=expect,
         files={"s.yaml": _y(sc), **(files or {})}, check=check, says=says)


def train_case(id: str, sc: dict[str, Any], *extra: str, expect: int | tuple[int, ...] = 2,
               files: dict[str, str | bytes] | None = None, says: tuple[str, ...] = ()) -> None:
    case(id, "simulate", "train", "{tmp}/t.yaml", "--json", *extra, expect=expect,
         files={"t.yaml": _y(sc), **(files or {})}, says=says)


FILE = {"afile": "not a folder\n"}  # {tmp}/afile/sub/... cannot be created

# --- top level / usage
case("top-unknown-command", "nosuchcmd")
case("top-unknown-option", "--nosuch")
case("hw-unknown-subcommand", "hw", "nosuch")

# --- hw / models
case("hw-list", "hw", "list", expect=0)
case("hw-list-json", "hw", "list", "--json", expect=0)
case("hw-show-device", "hw", "show", "h100-sxm", expect=0)
case("hw-show-link", "hw", "show", "nvlink4", expect=0)
case("hw-show-unknown", "hw", "show", "tpu-v9")
case("hw-show-empty", "hw", "show", "")
case("hw-show-path", "hw", "show", "../etc/passwd")
case("hw-show-missing-arg", "hw", "show")
case("models-list", "models", "list", "--json", expect=0)
case("models-show", "models", "show", "llama3-8b", expect=0)
case("models-show-unknown", "models", "show", "llama-99b")
case("models-show-empty", "models", "show", "")
case("models-show-dir", "models", "show", "{tmp}/d", files={"d/": ""})
case("models-show-missing-file", "models", "show", "{tmp}/nope.json")
case("models-show-bad-json", "models", "show", "{tmp}/c.json", files={"c.json": "{not json"})
case("models-show-non-utf8", "models", "show", "{tmp}/c.json", files={"c.json": b"\xff\xfe{"})
case("models-show-empty-file", "models", "show", "{tmp}/c.json", files={"c.json": ""})
case("models-show-json-list", "models", "show", "{tmp}/c.json", files={"c.json": "[1, 2]"})
case("models-show-json-missing-keys", "models", "show", "{tmp}/c.json",
     files={"c.json": '{"model_type": "llama"}'})
case("models-show-json-negative-layers", "models", "show", "{tmp}/c.json",
     files={"c.json": json.dumps({"model_type": "llama", "hidden_size": 4096,
                                  "num_hidden_layers": -2, "num_attention_heads": 32,
                                  "intermediate_size": 11008, "vocab_size": 32000})})
case("models-show-unreadable", "models", "show", "/proc/self/mem")

# --- estimate step
EST = ("estimate", "step", "--model", "llama3-8b", "--device", "h100-sxm")
case("estimate-valid", *EST, "--prefill-len", "512", "--prefill-seqs", "1", "--json", expect=0)
case("estimate-valid-decode", *EST, "--decode-seqs", "8", "--context", "1024", "--json",
     expect=0)
case("estimate-unknown-model", "estimate", "step", "--model", "nope", "--device", "h100-sxm")
case("estimate-unknown-device", "estimate", "step", "--model", "llama3-8b", "--device", "nope")
case("estimate-empty-model", "estimate", "step", "--model", "", "--device", "h100-sxm")
case("estimate-missing-device", "estimate", "step", "--model", "llama3-8b")
for opt in ("--tp", "--pp"):
    for v in ("0", "-1", "abc"):
        case(f"estimate{opt}={v}", *EST, opt, v, "--decode-seqs", "1", "--context", "10")
case("estimate--tp=3-not-dividing-heads", *EST, "--tp", "3", "--decode-seqs", "1",
     "--context", "10")
for opt in ("--prefill-len", "--prefill-seqs", "--decode-seqs", "--context"):
    case(f"estimate{opt}=-1", *EST, opt, "-1")
case("estimate-dtype-unknown", *EST, "--dtype", "fp7", "--decode-seqs", "1", "--context", "8")
case("estimate-kv-dtype-unknown", *EST, "--kv-dtype", "fp7", "--decode-seqs", "1",
     "--context", "8")
case("estimate-fp8-on-a100", "estimate", "step", "--model", "llama3-8b", "--device",
     "a100-80gb", "--dtype", "fp8", "--decode-seqs", "1", "--context", "8")
case("estimate-profile-missing", *EST, "--profile", "{tmp}/p.json", "--decode-seqs", "1")
case("estimate-profile-dir", *EST, "--profile", "{tmp}/d", "--decode-seqs", "1",
     files={"d/": ""})
case("estimate-profile-bad-json", *EST, "--profile", "{tmp}/p.json", "--decode-seqs", "1",
     files={"p.json": "{"})
case("estimate-profile-non-utf8", *EST, "--profile", "{tmp}/p.json", "--decode-seqs", "1",
     files={"p.json": b"\xff\xfe"})
case("estimate-profile-wrong-shape", *EST, "--profile", "{tmp}/p.json", "--decode-seqs", "1",
     files={"p.json": "[1, 2, 3]"})
case("estimate-405b-on-one-l4", "estimate", "step", "--model", "llama3.1-405b", "--device",
     "l4", "--decode-seqs", "1", "--context", "128", expect=3)

# --- simulate train: files
TRAIN_OK = _train()
train_case("train-valid", TRAIN_OK, expect=0)
train_case("train-valid-run", _run(), expect=0)
case("train-missing-file", "simulate", "train", "{tmp}/nope.yaml")
case("train-dir", "simulate", "train", "{tmp}/d", files={"d/": ""})
case("train-non-utf8", "simulate", "train", "{tmp}/t.yaml", files={"t.yaml": NON_UTF8})
case("train-empty-file", "simulate", "train", "{tmp}/t.yaml", files={"t.yaml": ""})
case("train-yaml-list", "simulate", "train", "{tmp}/t.yaml", files={"t.yaml": "- 1\n- 2\n"})
case("train-yaml-syntax", "simulate", "train", "{tmp}/t.yaml",
     files={"t.yaml": "model: [unclosed\n"})
case("train-unreadable", "simulate", "train", "/proc/self/mem")
case("train-serving-scenario", "simulate", "train", "{sc}/llama2-70b-h100-azure.yaml")
# --- simulate train: --set
for s in ("model=", "noequals", "parallelism.tp=abc", "parallelism.tp=0",
                       "parallelism.tp=-1", "parallelism.tp=3", "parallelism.zero=4",
                       "parallelism.schedule=zigzag", "parallelism.recompute=half",
                       "parallelism.vpp=2", "parallelism.cp=0", "parallelism.ep=3",
                       "parallelism.dp=3", "parallelism.rank_order=tp-tp-dp-pp-cp",
                       "training.seq_len=0", "training.seq_len=-5", "training.seq_len=nan",
                       "training.global_batch=0", "training.micro_batch=0",
                       "training.global_batch=15", "training.dtype=fp7",
                       "cluster.device=nope", "cluster.device=", "cluster.num_devices=-5",
                       "cluster.num_devices=inf", "cluster.num_devices=false",
                       "cluster.num_devices=nan", "cluster.num_devices=null",
                       "cluster.num_devices=7", "cluster.devices_per_node=0",
                       "cluster.inter_node=pigeon", "unknown.key=1", "parallelism.bogus=1",
                       "training.bogus=1", "name=[1, 2]", "model=nope-9b",
                       "parallelism.tp=1e30"):
    train_case(f"train-set-{s}", TRAIN_OK, "--set", s)
# --- simulate train: options and outputs
train_case("train-seed-negative", _run(), "--seed", "-1")
train_case("train-seeds-zero", _run(), "--seeds", "0")
train_case("train-seed-abc", _run(), "--seed", "abc")
train_case("train-timeline-uncreatable", TRAIN_OK, "--timeline", "{tmp}/afile/sub/t.json",
           files=FILE)
train_case("train-plot-uncreatable", TRAIN_OK, "--plot", "{tmp}/afile/sub/g.png", files=FILE)
train_case("train-plot-txt", TRAIN_OK, "--plot", "{tmp}/g.txt")
train_case("train-progress-plot-uncreatable", _run(), "--progress-plot",
           "{tmp}/afile/sub/p.png", files=FILE)
train_case("train-progress-plot-txt", _run(), "--progress-plot", "{tmp}/p.txt")
train_case("train-timeline-is-dir", TRAIN_OK, "--timeline", "{tmp}/d", files={"d/": ""})
# --- simulate train: run: section
for key, value in (("run__duration", "-1d"), ("run__duration", "abc"), ("run__duration", 0),
                   ("run__duration", float("nan")), ("run__duration", float("inf")),
                   ("run__duration", _DELETE), ("run__spares", -1), ("run__spares", 100),
                   ("run__on_shortage", "panic"), ("run__min_dp", 0), ("run__min_dp", 5),
                   ("run__seeds", 0), ("run__seed", -1), ("run__detection_s", "-5s"),
                   ("run__restart_s", float("nan")), ("run__checkpoint__mode", "tape"),
                   ("run__checkpoint__interval_s", 0), ("run__checkpoint__interval_s", "-10m"),
                   ("run__checkpoint__interval_s", "sometimes"),
                   ("run__checkpoint__storage_write_bandwidth", 0),
                   ("run__checkpoint__keep", -1), ("run__failures__model", "cosmic"),
                   ("run__failures__scale", -1.0), ("run__failures__scale", float("nan")),
                   ("run__failures__shape", 0), ("run__failures__bogus", 1),
                   ("run__token_budget", -5), ("run__bogus", 1)):
    label = "missing" if value is _DELETE else value
    train_case(f"run-{key.replace('__', '.')}={label}", _run(**{key: value}))

# --- simulate train: uneven pipeline stages (issue 15); llama3-8b has 32 layers, TRAIN_OK pp 2
for key, value in (("parallelism__stage_layers", [10, 20]), ("parallelism__stage_layers", [0, 32]),
                   ("parallelism__stage_layers", [8, 8, 16]),
                   ("parallelism__stage_layers", [16.5, 15.5]),
                   ("parallelism__first_stage_layers", 32), ("parallelism__first_stage_layers", 0),
                   ("parallelism__last_stage_layers", -3), ("parallelism__pp", 64)):
    train_case(f"train-split-{key.split('__')[1]}={value}", _train(**{key: value}))
train_case("train-split-first-and-list", _train(parallelism__stage_layers=[16, 16],
                                                parallelism__first_stage_layers=16))
train_case("train-split-uneven-valid", _train(parallelism__stage_layers=[15, 17]), expect=0)
train_case("train-split-balanced-valid", _train(parallelism__pp=3, parallelism__tp=1,
                                                cluster__num_devices=6), expect=0)

# --- simulate serve: files and --trace
SERVE_OK = _serve()
serve_case("serve-valid", SERVE_OK, expect=0, check=_serve_counts_add_up)
case("serve-missing-file", "simulate", "serve", "{tmp}/nope.yaml")
case("serve-dir", "simulate", "serve", "{tmp}/d", files={"d/": ""})
case("serve-non-utf8", "simulate", "serve", "{tmp}/s.yaml", files={"s.yaml": NON_UTF8})
case("serve-empty-file", "simulate", "serve", "{tmp}/s.yaml", files={"s.yaml": ""})
case("serve-yaml-scalar", "simulate", "serve", "{tmp}/s.yaml", files={"s.yaml": "42\n"})
case("serve-training-scenario", "simulate", "serve", "{sc}/llama3-70b-h100.yaml")
serve_case("serve-trace-dir", SERVE_OK, "--trace", "{tmp}/d", files={"d/": ""})
serve_case("serve-trace-missing", SERVE_OK, "--trace", "{tmp}/nope.csv")
serve_case("serve-trace-unreadable", SERVE_OK, "--trace", "/proc/self/mem")
serve_case("serve-trace-non-utf8", SERVE_OK, "--trace", "{tmp}/t.csv",
           files={"t.csv": b"arrival_time_s,input_tokens,output_tokens\n\xff\xfe,1,1\n"})
serve_case("serve-trace-empty", SERVE_OK, "--trace", "{tmp}/t.csv", files={"t.csv": ""})
serve_case("serve-trace-header-only", SERVE_OK, "--trace", "{tmp}/t.csv",
           files={"t.csv": "arrival_time_s,input_tokens,output_tokens\n"})
serve_case("serve-trace-wrong-columns", SERVE_OK, "--trace", "{tmp}/t.csv",
           files={"t.csv": "a,b,c\n1,2,3\n"})
serve_case("serve-trace-negative-tokens", SERVE_OK, "--trace", "{tmp}/t.csv",
           files={"t.csv": "arrival_time_s,input_tokens,output_tokens\n0,-5,10\n"})
serve_case("serve-trace-nan-arrival", SERVE_OK, "--trace", "{tmp}/t.csv",
           files={"t.csv": "arrival_time_s,input_tokens,output_tokens\nnan,5,10\n"})
serve_case("serve-trace-text-tokens", SERVE_OK, "--trace", "{tmp}/t.csv",
           files={"t.csv": "arrival_time_s,input_tokens,output_tokens\n0,many,10\n"})
serve_case("serve-trace-bad-jsonl", SERVE_OK, "--trace", "{tmp}/t.jsonl",
           files={"t.jsonl": '{"timestamp": 0, "input_length": 10\n'})
serve_case("serve-trace-unknown-sample", SERVE_OK, "--trace", "no-such-sample")
serve_case("serve-trace-epoch-arrivals", SERVE_OK, "--trace", "{tmp}/t.csv", expect=0,
           files={"t.csv": EPOCH_TRACE}, check=_epoch_cost)
serve_case("serve-100m-output-tokens", _serve(serving__horizon_s=60.0), "--trace",
           "{tmp}/t.csv", expect=0, files={"t.csv": HUGE_OUTPUT_TRACE},
           check=_huge_output_not_completed)
# --- simulate serve: outputs and options
serve_case("serve-records-uncreatable", SERVE_OK, "--records", "{tmp}/afile/sub/r.csv",
           files=FILE)
serve_case("serve-records-txt", SERVE_OK, "--records", "{tmp}/r.txt")
serve_case("serve-records-is-dir", SERVE_OK, "--records", "{tmp}/d", files={"d/": ""})
serve_case("serve-plots-uncreatable", SERVE_OK, "--plots", "{tmp}/afile/sub", files=FILE)
serve_case("serve-plots-is-file", SERVE_OK, "--plots", "{tmp}/afile", files=FILE)
serve_case("serve-seed-negative", SERVE_OK, "--seed", "-1")
serve_case("serve-seed-abc", SERVE_OK, "--seed", "abc")
# --- simulate serve: --set (issue reproducers first)
for s in ("serving.chunk_size=null", "serving.tp=null", "serving.pp=null",
          "serving.max_num_seqs=null", "model=", "serving.max_batch_tokens=null",
          "serving.scheduler=null", "serving.router=null", "serving.tp=0", "serving.tp=-1",
          "serving.tp=abc", "serving.tp=1.5", "serving.tp=8", "serving.replicas=0",
          "serving.scheduler=fifo", "serving.router=random", "serving.preemption=evict",
          "serving.gpu_memory_utilization=0", "serving.gpu_memory_utilization=1.5",
          "serving.gpu_memory_utilization=nan", "serving.kv_block_size=0",
          "serving.max_num_seqs=0", "serving.chunk_size=-1", "serving.dtype=fp7",
          "serving.kv_dtype=fp7", "serving.max_model_len=0", "serving.horizon_s=-1",
          "serving.horizon_s=nan", "serving.routers=0", "serving.client_timeout_s=0",
          "serving.bogus=1", "seed=-1", "seed=1.5", "seed=abc", "bogus=1",
          "cluster.device=nope", "cluster.num_devices=0", "cluster.devices_per_node=0",
          "slo.ttft_s=-1", "slo.tpot_s=0", "workload.rate_scale=0", "workload.rate_scale=-1",
          "workload.prefix_block_tokens=0", "workload.trace=azure-conv-2023-sample",
          "workload.synthetic.num_requests=0", "workload.synthetic.num_requests=-1",
          "workload.synthetic.num_requests=abc", "workload.synthetic.arrival.rate=-1",
          "workload.synthetic.arrival.rate=0", "workload.synthetic.arrival.rate=nan",
          "workload.synthetic.arrival.rate=inf", "workload.synthetic.arrival.process=hawkes",
          "workload.synthetic.input.dist=pareto", "workload.synthetic.input.value=-1",
          "workload.synthetic.output.value=0", "workload.synthetic.bogus=1",
          "workload.window.start_s=10", "workload.window=[5, 1]",
          "power.bin_s=0", "power.cap_fraction=1.5", "power.cap_fraction=0",
          "power.cap_w=-1", "power.servers_per_row=0", "failures.mtbf_s=0",
          "failures.mtbf_s=-1", "failures.weibull_shape=1e-09", "failures.weibull_shape=0",
          "failures.distribution=gamma", "failures.retry_budget=-1",
          "failures.repair_s=-1", "failures.stragglers.fraction=2",
          "failures.stragglers.slowdown=0.5", "autoscale.group=nope",
          "serving.migration.interval_s=0", "serving.migration.threshold=0",
          "failures.stragglers.fraction=.nan", "serving.gpu_memory_utilization=.nan",
          "power.cap_fraction=.nan", "failures.repair_s=.nan"):
    serve_case(f"serve-set-{s}", SERVE_OK, "--set", s)
serve_case("serve-power-both-caps", _serve(power={"cap_fraction": 0.5, "cap_w": 300}))
serve_case("serve-power-levels-increasing",
           _serve(power={"controller": {"budget_w": 1000, "levels": [0.7, 1.0]}}))
serve_case("serve-power-low-above-high",
           _serve(power={"controller": {"budget_w": 1000, "high": 0.5, "low": 0.9}}))
serve_case("serve-autoscale-max-below-min",
           _serve(serving__replica_groups=GROUPS["replica_groups"],
                  autoscale={"group": "b", "min_replicas": 3, "max_replicas": 1}))
serve_case("serve-autoscale-thresholds-crossed",
           _serve(serving__replica_groups=GROUPS["replica_groups"],
                  autoscale={"group": "b", "up_threshold": 1, "down_threshold": 5}))
serve_case("serve-workload-both", _serve(workload__trace="azure-conv-2023-sample"))
serve_case("serve-workload-none", _serve(workload={}))
serve_case("serve-model-int", _serve(model=5))
serve_case("serve-model-list", _serve(model=[1, 2]))
serve_case("serve-groups-empty", _serve(serving__replica_groups=[]))
serve_case("serve-group-count-negative",
           _serve(serving__replica_groups=[{"name": "a", "count": -1}]))
serve_case("serve-group-device-unknown",
           _serve(serving__replica_groups=[{"name": "a", "device": "nope"}]))
serve_case("serve-group-tp-zero", _serve(serving__replica_groups=[{"name": "a", "tp": 0}]))
serve_case("serve-group-not-mapping", _serve(serving__replica_groups=["a"]))
serve_case("serve-disagg-zero-prefill",
           _serve(serving__disaggregation={"prefill_replicas": 0, "decode_replicas": 1}))
serve_case("serve-disagg-bad-link",
           _serve(serving__disaggregation={"prefill_replicas": 1, "decode_replicas": 1,
                                           "link": "pigeon"}))
for v in (-5, float("inf"), False, "abc", float("nan")):
    serve_case(f"serve-groups-num-devices={v}",
               _serve(serving__replica_groups=GROUPS["replica_groups"],
                      cluster__num_devices=v, serving__replicas=_DELETE))
# null is "not given": the groups size the cluster
serve_case("serve-groups-num-devices=None",
           _serve(serving__replica_groups=GROUPS["replica_groups"], cluster__num_devices=None,
                  serving__replicas=_DELETE), expect=0, check=_serve_counts_add_up)
# --- simulate serve: issue reproducers that must run and add up
MOONCAKE = "{sc}/llama3-70b-h100-disagg-mooncake.yaml"
WINDOW = ("--set", "workload.window.end_s=30")
case("serve-disagg-mooncake-tp2", "simulate", "serve", MOONCAKE, "--json", *WINDOW,
     "--set", "serving.tp=2", expect=0, check=_serve_counts_add_up)
case("serve-disagg-mooncake-static", "simulate", "serve", MOONCAKE, "--json", *WINDOW,
     "--set", "serving.scheduler=static")  # static batching cannot hand off: exit 2
BURSTY = _serve(cluster__num_devices=4, serving__replicas=4, serving__router="llumnix",
                workload__synthetic__num_requests=200,
                workload__synthetic__arrival={"process": "mmpp", "rate_on": 200.0,
                                              "rate_off": 2.0, "mean_on_s": 1.0,
                                              "mean_off_s": 2.0},
                workload__synthetic__output={"dist": "lognormal", "mean": 100, "sigma": 1.0,
                                             "min": 1, "max": 1000})
serve_case("serve-llumnix-bursty-seed2", BURSTY, "--seed", "2", expect=0,
           check=_serve_counts_add_up)
serve_case("serve-round-robin-migration-seed0",
           _serve(**{**{"serving__router": "round_robin",
                        "serving__migration": {"interval_s": 0.1, "threshold": 1}},
                     "cluster__num_devices": 4, "serving__replicas": 4,
                     "workload__synthetic__num_requests": 100}),
           "--seed", "0", expect=0, check=_serve_counts_add_up)

# --- validate / demo / calibrate
case("validate-unknown-suite", "validate", "bogus")
case("validate-json-unknown-suite", "validate", "servng", "--json")
case("demo-out-is-file", "demo", "--out", "{tmp}/afile", files=FILE)
case("demo-out-uncreatable", "demo", "--out", "{tmp}/afile/sub", files=FILE)
case("calibrate-unknown-device", "calibrate", "--device", "quantum")
case("calibrate-bad-dtype", "calibrate", "--device", "cpu", "--quick", "--dtypes", "fp7")
case("calibrate-bad-peak", "calibrate", "--device", "cpu", "--quick", "--peak-tflops", "bf16")
case("calibrate-negative-bw", "calibrate", "--device", "cpu", "--quick", "--mem-bw-gbps", "-1")
case("calibrate-unknown-catalog-name", "calibrate", "--device", "cpu", "--quick",
     "--catalog-name", "nope")

# --- plan train


def _pt(num_devices: str = "8") -> tuple[str, ...]:
    return ("plan", "train", "--model", "llama3-8b", "--device", "h100-sxm", "--num-devices",
            num_devices, "--seq-len", "2048", "--global-batch", "16")


PT = _pt()
case("plan-train-nothing-feasible", "plan", "train", "--model", "llama3.1-405b", "--device",
     "l4", "--num-devices", "8", "--seq-len", "8192", "--global-batch", "8", expect=3)
case("plan-train-unknown-model", "plan", "train", "--model", "nope", "--device", "h100-sxm",
     "--num-devices", "8", "--seq-len", "2048", "--global-batch", "16")
case("plan-train-unknown-device", "plan", "train", "--model", "llama3-8b", "--device", "nope",
     "--num-devices", "8", "--seq-len", "2048", "--global-batch", "16")
for opt, v in (("--num-devices", "0"), ("--num-devices", "-8"), ("--num-devices", "abc"),
               ("--num-devices", "8,,16"), ("--seq-len", "0"), ("--global-batch", "0"),
               ("--global-batch", "-1"), ("--micro-batches", "0"), ("--micro-batches", "a,b"),
               ("--pp", "0"), ("--pp", "x"), ("--max-tp", "0"), ("--memory-headroom", "1.5"),
               ("--memory-headroom", "-0.1"), ("--memory-headroom", "nan"), ("--top-k", "0"),
               ("--executor", "nope"), ("--dtype", "fp7"), ("--inter-node", "pigeon")):
    case(f"plan-train{opt}={v}", *(_pt(v) if opt == "--num-devices" else (*PT, opt, v)))
case("plan-train-both-batches", *PT, "--global-batch-tokens", "32768")

# --- plan serve
PS = ("plan", "serve", "--model", "llama3-8b", "--devices", "h100-sxm", "--tp", "1",
      "--schedulers", "vllm", "--chunk-sizes", "512", "--max-num-seqs", "128", "--disagg", "",
      "--confirm-top", "1", "--end-s", "60")
case("plan-serve-unknown-model", "plan", "serve", "--model", "nope")
for opt, v in (("--devices", "nope"), ("--devices", ""), ("--tp", "0"), ("--tp", "x"),
               ("--pp", "0"), ("--schedulers", "fifo"), ("--chunk-sizes", "0"),
               ("--max-num-seqs", "-1"), ("--disagg", "1:0"), ("--disagg", "x"),
               ("--rank-by", "speed"), ("--slo-percentile", "p101"), ("--max-gpus", "0"),
               ("--budget", "-1"), ("--rate", "-1"), ("--rate", "nan"), ("--slo-ttft", "0"),
               ("--slo-tpot", "-1"), ("--confirm-top", "-1"), ("--price", "h100-sxm"),
               ("--price", "h100-sxm=-3"), ("--trace", "{tmp}/nope.csv"),
               ("--start-s", "100"), ("--seed", "-1"), ("--executor", "nope")):
    case(f"plan-serve{opt}={v}", *PS, opt, v)
case("plan-serve-trace-dir", *PS, "--trace", "{tmp}/d", files={"d/": ""})
case("plan-serve-plot-txt", *PS, "--plot", "{tmp}/g.txt")
case("plan-serve-plot-uncreatable", *PS, "--plot", "{tmp}/afile/sub/g.png", files=FILE)
case("plan-serve-out-uncreatable", *PS, "--out", "{tmp}/afile/sub/o.csv", files=FILE)
case("plan-serve-out-txt", *PS, "--out", "{tmp}/o.txt")

# --- plan gpu-mix
PG = ("plan", "gpu-mix", "--model", "llama3-8b", "--trace", "azure-conv-2023-sample",
      "--devices", "l4,h100-sxm", "--slo-ttft", "1.0", "--slo-tpot", "0.1", "--end-s", "30")
for opt, v in (("--devices", "nope"), ("--tp", "0"), ("--slo-target", "1.5"),
               ("--slo-target", "0"), ("--solver", "nope"), ("--price", "l4=abc"),
               ("--router", "nope"), ("--window-s", "0"), ("--window-s", "-5"),
               ("--rate-scale", "0"), ("--rate-scale", "nan"), ("--start-s", "-1"),
               ("--seed", "-1"), ("--trace", "{tmp}/nope.csv"), ("--executor", "nope")):
    case(f"plan-gpu-mix{opt}={v}", *PG, opt, v)
case("plan-gpu-mix-slo-ttft-negative", "plan", "gpu-mix", "--model", "llama3-8b", "--trace",
     "azure-conv-2023-sample", "--devices", "l4", "--slo-ttft", "-1", "--slo-tpot", "0.1")
case("plan-gpu-mix-one-type-unknown-router", "plan", "gpu-mix", "--model", "llama3-8b",
     "--trace", "azure-conv-2023-sample", "--devices", "l4", "--slo-ttft", "1.0",
     "--slo-tpot", "0.1", "--end-s", "30", "--router", "nope")  # one type never routed
case("plan-gpu-mix-trace-dir", *PG, "--trace", "{tmp}/d", files={"d/": ""})
case("plan-gpu-mix-plot-txt", *PG, "--plot", "{tmp}/g.txt")
case("plan-gpu-mix-plot-uncreatable", *PG, "--plot", "{tmp}/afile/sub/g.png", files=FILE)

# --- plan power
PP = ("plan", "power", "--budget-kw", "50")
for opt, v in (("--budget-kw", "0"), ("--budget-kw", "-1"), ("--budget-kw", "nan"),
               ("--budget-kw", "inf"), ("--server", "nope"), ("--tp", "0"), ("--tp", "3"),
               ("--model", "nope"), ("--high-priority-fraction", "1.5"),
               ("--high-priority-fraction", "-0.1"), ("--t1", "0.95"), ("--t2", "1.5"),
               ("--latency-s", "-1"), ("--seed", "-1"), ("--trace", "{tmp}/nope.csv"),
               ("--executor", "nope")):
    case(f"plan-power{opt}={v}", *(PP if opt != "--budget-kw" else ("plan", "power")), opt, v)
case("plan-power-trace-dir", *PP, "--trace", "{tmp}/d", files={"d/": ""})
case("plan-power-plot-txt", *PP, "--plot", "{tmp}/g.txt")
case("plan-power-plot-uncreatable", *PP, "--plot", "{tmp}/afile/sub/g.png", files=FILE)

# --- plan checkpoint
case("plan-checkpoint-no-run", "plan", "checkpoint", "{tmp}/t.yaml",
     files={"t.yaml": _y(_train())})
case("plan-checkpoint-serving-scenario", "plan", "checkpoint",
     "{sc}/llama2-70b-h100-azure.yaml")
case("plan-checkpoint-missing", "plan", "checkpoint", "{tmp}/nope.yaml")
case("plan-checkpoint-non-utf8", "plan", "checkpoint", "{tmp}/t.yaml",
     files={"t.yaml": NON_UTF8})
for opt, v in (("--seeds", "0"), ("--seed", "-1"), ("--set", "run.duration=-1d"),
               ("--set", "model="), ("--executor", "nope")):
    case(f"plan-checkpoint{opt}={v}", "plan", "checkpoint", "{tmp}/t.yaml", opt, v,
         files={"t.yaml": _y(_run())})

# --- sweep
SW = ("sweep", "{tmp}/t.yaml", "--out", "{tmp}/o.csv")
SWF = {"t.yaml": _y(_train())}
case("sweep-valid", *SW, "--grid", "training.micro_batch=1,2", "--json", expect=0, files=SWF)
case("sweep-metric-speed", *SW, "--grid", "training.micro_batch=1,2", "--metric", "speed",
     files=SWF)
case("sweep-serving-scenario", "sweep", "{sc}/llama2-70b-h100-azure.yaml", "--grid",
     "serving.tp=4,8", "--set", "workload.window.end_s=30", "--out", "{tmp}/o.csv",
     expect=0)  # serving sweeps are supported (planners/sweep.evaluate_serving)
case("sweep-unknown-grid-key", *SW, "--grid", "parallelism.bogus=1,2", files=SWF)
case("sweep-unknown-grid-section", *SW, "--grid", "nosuch.key=1,2", files=SWF)
case("sweep-grid-no-equals", *SW, "--grid", "parallelism.tp", files=SWF)
case("sweep-grid-empty-values", *SW, "--grid", "parallelism.tp=", files=SWF)
case("sweep-grid-bad-values", *SW, "--grid", "parallelism.tp=abc,0", files=SWF)
case("sweep-out-uncreatable", "sweep", "{tmp}/t.yaml", "--grid", "training.micro_batch=1",
     "--out", "{tmp}/afile/sub/o.csv", files={**SWF, **FILE})
case("sweep-out-txt", "sweep", "{tmp}/t.yaml", "--grid", "training.micro_batch=1", "--out",
     "{tmp}/o.txt", files=SWF)
case("sweep-plot-txt", *SW, "--grid", "training.micro_batch=1", "--plot", "{tmp}/g.txt",
     files=SWF)
case("sweep-plot-uncreatable", *SW, "--grid", "training.micro_batch=1", "--plot",
     "{tmp}/afile/sub/g.png", files={**SWF, **FILE})
case("sweep-executor-unknown", *SW, "--grid", "training.micro_batch=1", "--executor", "nope",
     files=SWF)
case("sweep-missing-scenario", "sweep", "{tmp}/nope.yaml", "--grid", "parallelism.tp=1")
case("sweep-non-utf8", "sweep", "{tmp}/t.yaml", "--grid", "parallelism.tp=1",
     files={"t.yaml": NON_UTF8})

# --- traces stats / synth
case("traces-stats-sample", "traces", "stats", "azure-conv-2023-sample", "--json", expect=0)
case("traces-stats-missing", "traces", "stats", "{tmp}/nope.csv")
case("traces-stats-dir", "traces", "stats", "{tmp}/d", files={"d/": ""})
case("traces-stats-unreadable", "traces", "stats", "/proc/self/mem")
case("traces-stats-non-utf8", "traces", "stats", "{tmp}/t.csv",
     files={"t.csv": b"\xff\xfe\x00garbage"})
case("traces-stats-empty", "traces", "stats", "{tmp}/t.csv", files={"t.csv": ""})
case("traces-stats-wrong-columns", "traces", "stats", "{tmp}/t.csv",
     files={"t.csv": "a,b\n1,2\n"})
case("traces-stats-epoch", "traces", "stats", "{tmp}/t.csv", "--json", expect=0,
     files={"t.csv": EPOCH_TRACE})
for opt, v in (("--rate-scale", "0"), ("--rate-scale", "-1"), ("--rate-scale", "nan"),
               ("--start-s", "-5"), ("--end-s", "nan")):
    case(f"traces-stats{opt}={v}", "traces", "stats", "azure-conv-2023-sample", opt, v)
case("traces-stats-window-reversed", "traces", "stats", "azure-conv-2023-sample", "--start-s",
     "100", "--end-s", "10")
SY = ("traces", "synth", "--out", "{tmp}/t.csv")
case("traces-synth-valid", *SY, "--num-requests", "10", "--json", expect=0)
case("traces-synth-out-uncreatable", "traces", "synth", "--out", "{tmp}/afile/sub/t.csv",
     "--num-requests", "10", files=FILE)
case("traces-synth-out-txt", "traces", "synth", "--out", "{tmp}/t.txt", "--num-requests", "10")
case("traces-synth-both-counts", *SY, "--num-requests", "10", "--duration-s", "5")
case("traces-synth-duration-1e308", *SY, "--duration-s", "1e308")
for opt, v in (("--num-requests", "0"), ("--num-requests", "-1"), ("--duration-s", "0"),
               ("--duration-s", "nan"), ("--duration-s", "inf"), ("--seed", "-1")):
    case(f"traces-synth{opt}={v}", *SY, opt, v)
for opt, v in (("--arrival", "process=hawkes"), ("--arrival", "rate"),
               ("--arrival", "process=poisson,rate=-1"), ("--arrival", "process=poisson,rate=inf"),
               ("--arrival", "process=gamma,rate=5,cv=0"), ("--input", "dist=pareto"),
               ("--input", "dist=fixed,value=-1"), ("--input", "dist=uniform,min=10,max=1"),
               ("--output", "dist=lognormal,mean=nan"), ("--prefix", "num_prompts=0"),
               ("--prefix", "tokens=abc")):
    case(f"traces-synth{opt}={v}", *SY, "--num-requests", "10", opt, v)
case("traces-synth-spec-missing", *SY, "--spec", "{tmp}/nope.yaml")
case("traces-synth-spec-dir", *SY, "--spec", "{tmp}/d", files={"d/": ""})
case("traces-synth-spec-non-utf8", *SY, "--spec", "{tmp}/s.yaml", files={"s.yaml": NON_UTF8})
case("traces-synth-spec-unknown-key", *SY, "--spec", "{tmp}/s.yaml",
     files={"s.yaml": "num_requests: 5\nbogus: 1\n"})


# --- efficiency profiles (issue 14): every command that predicts time, the scenario keys, the
# importer. A profile for another device, an older format, a table it cannot read: exit 2.
def _profile_json(device: str = "h100-sxm", **over: Any) -> str:
    data: dict[str, Any] = {"format": "fleetsim-profile", "version": 2, "device": device,
                            "source": {"description": "hand-made campaign profile"},
                            "gemm": {"bf16": {"x": [1e6, 1e12], "eff": [0.3, 0.3]}}}
    data.update(over)
    return json.dumps(data)


PROFILE_CASES = {
    "wrong-device": {"p.json": _profile_json("a100-80gb")},
    "v1": {"p.json": _profile_json(version=1)},
    "no-source": {"p.json": json.dumps({"format": "fleetsim-profile", "version": 2,
                                        "device": "h100-sxm"})},
    "bad-curve": {"p.json": _profile_json(memory={"x": [2.0, 1.0], "eff": [0.5, 0.5]})},
    "unknown-kind": {"p.json": _profile_json(elementwise={"bogus": {"x": [1.0], "eff": [1.0]}})},
    "not-json": {"p.json": "{"},
}
for why, files in PROFILE_CASES.items():
    train_case(f"simulate-train-profile-{why}", _train(), "--profile", "{tmp}/p.json",
               files=files)
    serve_case(f"simulate-serve-profile-{why}", _serve(), "--profile", "{tmp}/p.json",
               files=files)
    case(f"estimate-step-profile-{why}", *EST, "--profile", "{tmp}/p.json", "--decode-seqs",
         "1", files=files)
    if why != "wrong-device":  # validate takes any catalog device's profile (its rows)
        case(f"validate-profile-{why}", "validate", "serving", "--profile", "{tmp}/p.json",
             files=files)
case("validate-profile-unknown-device", "validate", "serving", "--profile", "{tmp}/p.json",
     files={"p.json": _profile_json("tpu-v9")})
train_case("simulate-train-profile-and-no-profile", _train(), "--profile", "{tmp}/p.json",
           "--no-profile", files={"p.json": _profile_json()})
train_case("simulate-train-profile-valid", _train(), "--profile", "{tmp}/p.json", expect=0,
           files={"p.json": _profile_json()})
train_case("scenario-cluster-profile-missing", _train(cluster__profile="nope.json"))
train_case("scenario-cluster-profile-unknown-name", _train(cluster__profile="tpu-v9"))
train_case("scenario-cluster-profile-wrong-device", _train(cluster__profile="a100-80gb"))
serve_case("scenario-group-profile-wrong-device",
           _serve(serving__replica_groups=[{"name": "a", "device": "h100-sxm", "count": 2,
                                            "profile": "a100-80gb"}]))
serve_case("serve-engine-overhead-unknown", _serve(serving__engine_overhead="sglang-2030"))
serve_case("serve-engine-overhead-defaults-profile",
           _serve(serving__engine_overhead="vllm-2024", cluster__profile="defaults"))
case("plan-serve-profile-wrong-device", "plan", "serve", "--model", "llama3-8b", "--devices",
     "h100-sxm", "--profile", "{tmp}/p.json", files={"p.json": _profile_json("l4")})
VIDUR_MIN = {"v/README.md": "Times are milliseconds; sizes are bytes\n",
             "v/compute/a100/org/m/mlp.csv": "num_tokens,n_embd\n1,4096\n"}
case("calibrate-import-missing-dir", "calibrate", "--from-measurements", "{tmp}/nope",
     "--device", "a100-80gb", "--out", "{tmp}/p.json")
case("calibrate-import-missing-columns", "calibrate", "--from-measurements", "{tmp}/v",
     "--device", "a100-80gb", "--out", "{tmp}/p.json", files=VIDUR_MIN)
case("calibrate-import-no-units", "calibrate", "--from-measurements", "{tmp}/v",
     "--device", "a100-80gb", "--out", "{tmp}/p.json",
     files={**VIDUR_MIN, "v/README.md": "no units here\n"})
case("calibrate-import-unknown-device", "calibrate", "--from-measurements", "{tmp}/v",
     "--device", "tpu-v5e", "--out", "{tmp}/p.json", files=VIDUR_MIN)


# --- issue 17: export / import, heterogeneous pools, offload, spot
GPT3, AZURE = "{sc}/gpt3-175b-a100.yaml", "{sc}/llama2-70b-h100-azure.yaml"
case("export-megatron-json", "export", GPT3, "--to", "megatron", "--json", expect=0)
case("export-unknown-target", "export", GPT3, "--to", "slurm-magic")
case("export-serving-target-for-training", "export", GPT3, "--to", "vllm")
case("export-training-target-for-serving", "export", AZURE, "--to", "megatron")
case("export-missing-scenario", "export", "{tmp}/nope.yaml", "--to", "megatron")
case("export-out-under-a-file", "export", GPT3, "--to", "megatron", "--out", "{tmp}/afile/x",
     files=FILE)
case("export-torchtitan-zero1", "export", GPT3, "--to", "torchtitan")
case("export-deepspeed-pipeline", "export", GPT3, "--to", "deepspeed")
case("export-trtllm-lacks-scheduler", "export", "{sc}/deepseek-v3-h200-ep16-serve.yaml",
     "--to", "trtllm")
case("export-bad-set", "export", GPT3, "--to", "megatron", "--set", "parallelism.tp=zero")
case("plan-train-export-serving-target", *PT, "--export", "vllm")
case("plan-train-export-unknown", *PT, "--export", "nope")
case("plan-serve-export-training-target", "plan", "serve", "--model", "llama3-8b",
     "--export", "megatron")
MEG = ("pretrain_gpt.py --tensor-model-parallel-size 2 --pipeline-model-parallel-size 1 "
       "--num-layers 32 --hidden-size 4096 --ffn-hidden-size 14336 --num-attention-heads 32 "
       "--micro-batch-size 1 --global-batch-size 16 --seq-length 2048 --vocab-size 128256 "
       "--bf16\n")
case("import-megatron-ok", "import", "{tmp}/m.sh", "--from", "megatron", "--device",
     "h100-sxm", "--num-devices", "8", "--json", files={"m.sh": MEG}, expect=0)
case("import-megatron-unknown-flag", "import", "{tmp}/m.sh", "--from", "megatron", "--device",
     "h100-sxm", "--num-devices", "8", files={"m.sh": MEG.replace("--bf16", "--warp-drive 9")})
case("import-megatron-wrong-type", "import", "{tmp}/m.sh", "--from", "megatron", "--device",
     "h100-sxm", "--num-devices", "8",
     files={"m.sh": MEG.replace("--num-layers 32", "--num-layers two")})
case("import-megatron-no-device-count", "import", "{tmp}/m.sh", "--from", "megatron",
     "--device", "h100-sxm", files={"m.sh": MEG})
case("import-unknown-format", "import", "{tmp}/m.sh", "--from", "deepspeed", "--device",
     "h100-sxm", files={"m.sh": MEG})
case("import-unknown-device", "import", "{tmp}/m.sh", "--from", "megatron", "--device",
     "quantum", "--num-devices", "8", files={"m.sh": MEG})
case("import-missing-file", "import", "{tmp}/nope.sh", "--from", "megatron", "--device",
     "h100-sxm", "--num-devices", "8")
case("import-torchtitan-not-toml", "import", "{tmp}/j.toml", "--from", "torchtitan",
     "--device", "h100-sxm", "--num-devices", "8", files={"j.toml": "[parallelism\nx = = 1\n"})
HET = ("plan", "train-hetero", "--model", "llama3-8b", "--global-batch", "32", "--pools")
case("plan-hetero-no-count", *HET, "a100-80gb,h100-sxm:16")
case("plan-hetero-zero-count", *HET, "a100-80gb:0,h100-sxm:16")
case("plan-hetero-one-pool", *HET, "h100-sxm:16")
case("plan-hetero-unknown-device", *HET, "a100-80gb:16,quantum:16")
case("plan-hetero-bad-price", *HET, "a100-80gb:16,h100-sxm:16", "--price", "h100-sxm=cheap")
POOLS = [{"device": "a100-80gb", "num_devices": 4}, {"device": "h100-sxm", "num_devices": 4}]
train_case("scenario-pools-and-device", _train(cluster__pools=POOLS))
train_case("scenario-pools-zero-devices", _train(
    cluster={"pools": [{"device": "a100-80gb", "num_devices": 0}, POOLS[1]]}))
train_case("scenario-stage-pools-wrong-length", _train(cluster={"pools": POOLS},
                                                       parallelism__stage_pools=[0, 1, 1]))
train_case("scenario-stage-pools-unknown-pool", _train(cluster={"pools": POOLS},
                                                       parallelism__stage_pools=[0, 7]))
train_case("scenario-offload-unknown-target", _train(parallelism__offload_optimizer="disk"))
train_case("scenario-offload-params-without-zero3",
           _train(parallelism__zero=1, parallelism__offload_optimizer="cpu",
                  parallelism__offload_params="cpu"))
train_case("scenario-offload-params-without-optimizer",
           _train(parallelism__zero=3, parallelism__offload_params="nvme"))
train_case("scenario-unknown-host", _train(cluster__host="dgx-z9000"))
SPOT = {"preemptions_per_node_hour": 0.01, "price_usd_per_gpu_hour": 2.5,
        "on_demand_price_usd_per_gpu_hour": 6.0}
train_case("scenario-spot-negative-rate", _run(run__spot={**SPOT,
                                                          "preemptions_per_node_hour": -1}))
train_case("scenario-spot-negative-warning", _run(run__spot={**SPOT, "warning_s": -5}))
train_case("scenario-spot-fraction-above-one", _run(run__spot={**SPOT, "fraction": 1.5}))
train_case("scenario-spot-no-price", _run(run__spot={"preemptions_per_node_hour": 0.01}))
case("plan-spot-no-spot-section", "plan", "spot", "{tmp}/t.yaml", files={"t.yaml": _y(_run())})
case("plan-spot-negative-rate", "plan", "spot", "{sc}/llama3-70b-h100-spot.yaml",
     "--preemptions-per-node-hour", "-1")
case("plan-spot-zero-seeds", "plan", "spot", "{sc}/llama3-70b-h100-spot.yaml", "--seeds", "0")


# --- scale-up topologies (issue 18): torus shapes, links a device does not have, user fabrics
# Each error line must name the file (scenario cases), the key and the allowed values.
V5E_POD = {"device": "tpu-v5e", "num_devices": 512, "devices_per_node": 256,
           "slice_shape": [16, 16]}
V5E_PAR = {"tp": 1, "pp": 1, "dp": "auto", "zero": 3}
T = "{tmp}/t.yaml"
S = "{tmp}/s.yaml"
ALLOWED = "(allowed:"
train_case("topo-train-v5e-two-slices", _train(cluster=V5E_POD, parallelism=V5E_PAR,
                                               training__global_batch=512), expect=(0, 3))
train_case("topo-train-mi300x-mesh", _train(cluster={"device": "mi300x", "num_devices": 16}),
           expect=(0, 3))
train_case("topo-train-ascend-four-nodes", _train(cluster={"device": "ascend-910b",
                                                           "num_devices": 32}), expect=(0, 3))
train_case("topo-train-shape-chip-count",
           _train(cluster={**V5E_POD, "slice_shape": [16, 8]}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.slice_shape'", "16x8", ALLOWED, "product is 256"))
train_case("topo-train-shape-three-axes",
           _train(cluster={**V5E_POD, "slice_shape": [4, 4, 16]}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.slice_shape'", "3 axes", ALLOWED, "2 dims"))
train_case("topo-train-shape-one-axis",
           _train(cluster={**V5E_POD, "slice_shape": [256]}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.slice_shape'", ALLOWED, "2 dims"))
train_case("topo-train-shape-exceeds-pod",
           _train(cluster={**V5E_POD, "slice_shape": [32, 8]}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.slice_shape'", ALLOWED, "at most"))
train_case("topo-train-shape-negative",
           _train(cluster={**V5E_POD, "slice_shape": [16, -16]}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.slice_shape'", ALLOWED))
train_case("topo-train-shape-on-mesh",
           _train(cluster={"device": "mi300x", "num_devices": 8, "slice_shape": [2, 4]}),
           says=(T, "key 'cluster.slice_shape'", "mesh", ALLOWED))
train_case("topo-train-shape-on-switch",
           _train(cluster={"device": "h100-sxm", "num_devices": 8, "slice_shape": [2, 4]}),
           says=(T, "key 'cluster.slice_shape'", ALLOWED))
train_case("topo-train-shape-on-host-link",
           _train(cluster={**V5E_POD, "intra_node": "pcie4"}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.slice_shape'", ALLOWED))
train_case("topo-train-mesh-node-too-big",
           _train(cluster={"device": "ascend-910b", "num_devices": 32, "devices_per_node": 16}),
           says=(T, "key 'cluster.devices_per_node'", ALLOWED, "1..8"))
train_case("topo-train-mesh-node-too-big-on-pcie",  # a PCIe switch may hold any number
           _train(cluster={"device": "mi300x", "num_devices": 16, "devices_per_node": 16,
                           "intra_node": "pcie5"}), expect=(0, 3))
train_case("topo-train-intra-nvlink4-on-mi300x",
           _train(cluster={"device": "mi300x", "num_devices": 8, "intra_node": "nvlink4"}),
           says=(T, "key 'cluster.intra_node'", "nvlink4", ALLOWED, "infinity-fabric"))
train_case("topo-train-intra-ici-on-h100",
           _train(cluster={"device": "h100-sxm", "num_devices": 8, "intra_node": "ici"}),
           says=(T, "key 'cluster.intra_node'", "ici", ALLOWED, "nvlink4"))
train_case("topo-train-inter-nvlink4-on-mi300x",
           _train(cluster={"device": "mi300x", "num_devices": 16, "inter_node": "nvlink4"}),
           says=(T, "key 'cluster.inter_node'", "nvlink4", ALLOWED, "ib-ndr"))
train_case("topo-train-inter-hccs-on-tpu",
           _train(cluster={**V5E_POD, "inter_node": "hccs"}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.inter_node'", "hccs", ALLOWED, "eth-100g"))
train_case("topo-train-inter-unknown",
           _train(cluster={**V5E_POD, "inter_node": "dcn-9000"}, parallelism=V5E_PAR),
           says=(T, "key 'cluster.inter_node'", "dcn-9000", ALLOWED, "eth-100g"))
V5E_8 = {"device": "tpu-v5e", "num_devices": 8, "slice_shape": [4, 2]}
serve_case("topo-serve-v5e-slice", _serve(cluster=V5E_8, serving={"replicas": 1, "tp": 8}),
           expect=0, check=_serve_counts_add_up)
serve_case("topo-serve-shape-chip-count",
           _serve(cluster={**V5E_8, "slice_shape": [4, 4]}, serving={"replicas": 1, "tp": 8}),
           says=(S, "key 'cluster.slice_shape'", "4x4", ALLOWED, "product is 8"))
serve_case("topo-serve-shape-axes",
           _serve(cluster={**V5E_8, "slice_shape": [2, 2, 2]}, serving={"replicas": 1, "tp": 8}),
           says=(S, "key 'cluster.slice_shape'", "3 axes", ALLOWED))
serve_case("topo-serve-shape-on-mesh",
           _serve(cluster={"device": "mi300x", "num_devices": 2, "slice_shape": [1, 2]}),
           says=(S, "key 'cluster.slice_shape'", ALLOWED))
serve_case("topo-serve-intra-nvlink4-on-mi300x",
           _serve(cluster={"device": "mi300x", "num_devices": 2, "intra_node": "nvlink4"}),
           says=(S, "key 'cluster.intra_node'", "nvlink4", ALLOWED, "infinity-fabric"))
serve_case("topo-serve-inter-ici-on-ascend",
           _serve(cluster={"device": "ascend-910b", "num_devices": 2, "inter_node": "ici"}),
           says=(S, "key 'cluster.inter_node'", "ici", ALLOWED, "roce-200g"))
HWS = ("hw", "show")
case("hw-show-v5e-two-slices", *HWS, "tpu-v5e", "--num-devices", "512", "--slice-shape",
     "16x16", "--json", expect=0)
case("hw-show-mi250x-node", *HWS, "mi250x", "--num-devices", "8", expect=0)
case("hw-show-shape-chip-count", *HWS, "tpu-v5e", "--devices-per-node", "256",
     "--slice-shape", "16x8", says=("key '--slice-shape'", ALLOWED, "product is 256"))
case("hw-show-shape-axes", *HWS, "tpu-v5e", "--slice-shape", "4x4x4",
     says=("key '--slice-shape'", "3 axes", ALLOWED))
case("hw-show-shape-garbage", *HWS, "tpu-v5e", "--slice-shape", "16 by 16",
     says=("key '--slice-shape'", ALLOWED))
case("hw-show-shape-zero", *HWS, "tpu-v5e", "--slice-shape", "0x16",
     says=("key '--slice-shape'", ALLOWED))
case("hw-show-shape-on-mesh", *HWS, "mi300x", "--slice-shape", "2x4",
     says=("key '--slice-shape'", ALLOWED))
case("hw-show-mesh-node-too-big", *HWS, "mi300x", "--devices-per-node", "16",
     says=("key '--devices-per-node'", ALLOWED, "1..8"))
case("hw-show-intra-foreign", *HWS, "mi300x", "--intra-node", "nvlink4",
     says=("key '--intra-node'", "nvlink4", ALLOWED, "infinity-fabric"))
case("hw-show-inter-foreign", *HWS, "tpu-v5e", "--num-devices", "512", "--inter-node",
     "nvlink4", says=("key '--inter-node'", "nvlink4", ALLOWED, "eth-100g"))
case("hw-show-inter-unknown", *HWS, "ascend-910b", "--inter-node", "tin-can",
     says=("key '--inter-node'", "tin-can", ALLOWED))
case("hw-show-cluster-of-a-link", *HWS, "ici", "--num-devices", "8",
     says=("key 'NAME'", ALLOWED))
case("hw-show-scenario-and-device", *HWS, "tpu-v5e", "--scenario", "{tmp}/t.yaml",
     files={"t.yaml": _y(_train())}, says=("key '--scenario'", ALLOWED))
case("hw-show-scenario-missing", *HWS, "--scenario", "{tmp}/nope.yaml",
     says=("{tmp}/nope.yaml", "key '--scenario'", ALLOWED))
case("hw-show-scenario-bad-shape", *HWS, "--scenario", "{tmp}/t.yaml",
     files={"t.yaml": _y(_train(cluster={**V5E_POD, "slice_shape": [8, 8]},
                                parallelism=V5E_PAR))},
     says=("{tmp}/t.yaml", "key 'cluster.slice_shape'", ALLOWED, "product is 256"))
case("hw-show-scenario-serve-bad-shape", *HWS, "--scenario", "{tmp}/s.yaml",
     files={"s.yaml": _y(_serve(cluster={**V5E_8, "slice_shape": [8, 8]},
                                serving={"replicas": 1, "tp": 8}))},
     says=("{tmp}/s.yaml", "key 'cluster.slice_shape'", ALLOWED, "product is 8"))
case("estimate-inter-node-foreign-scale-up", "estimate", "step", "--model", "llama3-8b",
     "--device", "mi300x", "--prefill-len", "128", "--inter-node", "nvlink4",
     says=("key '--inter-node'", "nvlink4", ALLOWED, "ib-ndr"))
case("estimate-inter-node-ici-on-h100", *EST, "--prefill-len", "128", "--inter-node", "ici",
     says=("key '--inter-node'", "ici", ALLOWED))
case("plan-train-inter-node-foreign", "plan", "train", "--model", "llama3-8b", "--device",
     "mi300x", "--num-devices", "16", "--seq-len", "2048", "--global-batch", "64",
     "--inter-node", "nvlink4", says=("nvlink4", ALLOWED, "ib-ndr"))
_GCD = ("  vendor: amd\n  kind: gpu\n  peak_tflops: {bf16: 191.5}\n  memory_gib: 64\n"
        "  memory_bw_gbps: 1638\n  scale_up_link: infinity-fabric\n  scale_up_bw_gbps: 100\n"
        "  host_link: pcie4\n  tdp_w: 280\n  idle_w: 50\n  price_usd_per_hour: 1.0\n"
        "  gemm_efficiency: {bf16: 0.5}\n  memory_efficiency: 0.8\n"
        "  attention_efficiency: 0.4\n  kernel_overhead_us: 5\n  devices_per_node: 4\n"
        "  source: bad-input campaign\n")
USER_CAT = {"FLEETSIM_CATALOG": "{tmp}/cat"}


def _gcd_catalog(fabric: str) -> dict[str, str | bytes]:
    return {"cat/devices.yaml": f"my-gcd:\n{_GCD}  scale_up_fabric: {fabric}\n"}


GRAPH_OK = "{kind: graph, size: 4, edges: [[0, 1, 200], [1, 2, 50], [2, 3, 200], [3, 0, 50]]}"
case("catalog-graph-fabric-valid", *HWS, "my-gcd", "--num-devices", "8", "--json", expect=0,
     files=_gcd_catalog(GRAPH_OK), env=USER_CAT)
for _cmd, _extra in ((HWS, ("my-gcd",)), (("simulate", "train"), ("{tmp}/t.yaml", "--json"))):
    case(f"catalog-graph-edge-out-of-range-{_cmd[0]}", *_cmd, *_extra,
         files={**_gcd_catalog("{kind: graph, size: 4, edges: [[0, 1, 200], [2, 7, 50]]}"),
                "t.yaml": _y(_train(cluster={"device": "my-gcd", "num_devices": 8}))},
         env=USER_CAT, says=("{tmp}/cat/devices.yaml", "key 'my-gcd.scale_up_fabric.edges'",
                             "[2, 7]", ALLOWED, "0..3"))
    case(f"catalog-fabric-unknown-kind-{_cmd[0]}", *_cmd, *_extra,
         files={**_gcd_catalog("{kind: hypercube, link_gbps: 50}"),
                "t.yaml": _y(_train(cluster={"device": "my-gcd", "num_devices": 8}))},
         env=USER_CAT, says=("{tmp}/cat/devices.yaml", "key 'my-gcd.scale_up_fabric.kind'",
                             "hypercube", ALLOWED, "mesh"))
case("catalog-graph-wrong-node-size", *HWS, "my-gcd", "--devices-per-node", "8",
     files=_gcd_catalog(GRAPH_OK), env=USER_CAT,
     says=("key '--devices-per-node'", ALLOWED, "4"))
case("catalog-torus-no-dims", *HWS, "my-gcd", files=_gcd_catalog("{kind: torus, link_gbps: 45}"),
     env=USER_CAT, says=("{tmp}/cat/devices.yaml", "key 'my-gcd.scale_up_fabric.max_dims'"))


# --------------------------------------------------------------------------------- runner

@dataclass(frozen=True)
class Result:
    outcome: str  # pass | wrong_exit | bad_stderr | traceback | wrong_answer
    rc: int | None
    detail: str


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Any:
    """os.environ with `env` set for the case (the catalog re-read), restored after."""
    import os

    from hwmodels import catalog

    if not env:
        yield
        return
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    catalog.clear_cache()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        catalog.clear_cache()


def run_case(c: Case, tmp: Path) -> Result:
    """Create the case's files, run main(argv) in-process, judge exit code, stderr, numbers."""
    from fleetsim.cli.app import main

    for name, content in c.files.items():
        path = tmp / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    def fill(text: str) -> str:
        return text.replace("{tmp}", str(tmp)).replace("{sc}", str(SCENARIOS))

    argv = [fill(a) for a in c.argv]
    out, err = io.StringIO(), io.StringIO()
    rc: int | None = None
    tb = ""
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            _environment({k: fill(v) for k, v in c.env.items()}):
        try:
            rc = main(argv)
        except BaseException:  # noqa: BLE001 - an escaping exception is the finding
            tb = traceback.format_exc()
    stdout, stderr = out.getvalue(), err.getvalue()
    if tb or "Traceback" in stderr:
        lines = (tb or stderr).strip().splitlines()
        frames = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
        frames = [f for f in frames if str(ROOT) in f and "/tests/" not in f] or frames
        where = frames[-1].replace(str(ROOT) + "/", "") if frames else "?"
        return Result("traceback", rc, f"{lines[-1][:200]} ({where})")
    expect = c.expect if isinstance(c.expect, tuple) else (c.expect,)
    if rc not in expect:
        return Result("wrong_exit", rc, f"exit {rc}, expected {c.expect}: "
                      f"{stderr.strip()[:250]}")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if rc != 0:
        prefix = "fleetsim: error:" if rc == 2 else "fleetsim: infeasible"
        if len(lines) != 1 or not lines[0].startswith(prefix):
            return Result("bad_stderr", rc, f"{len(lines)} stderr lines: {stderr[:250]!r}")
        # the line says each thing once: no "x.yaml: x.yaml:", "key 'a': key 'a':" or a
        # second "(allowed: ...)"
        keys = re.findall(r"key '([^']*)'", lines[0])
        head = lines[0].split(": ")[1] if lines[0].count(": ") > 1 else ""
        if lines[0].count("(allowed:") > 1 or len(keys) != len(set(keys)) \
                or (head.endswith((".yaml", ".yml", ".json", ".csv"))
                    and lines[0].count(f"{head}: {head}:")):
            return Result("bad_stderr", rc, f"repeats itself: {lines[0][:250]!r}")
        missing = [fill(w) for w in c.says if fill(w) not in lines[0]]
        if missing:
            return Result("bad_stderr", rc, f"does not name {missing}: {lines[0][:250]!r}")
    if rc == 0 and c.check is not None:
        try:
            problem = c.check(json.loads(stdout))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            problem = f"unreadable --json output: {exc!r}"
        if problem:
            return Result("wrong_answer", rc, problem[:300])
    return Result("pass", rc, "")


def test_campaign_is_big_and_covers_every_command() -> None:
    assert len(CASES) >= 200
    commands = {c.argv[0] if c.argv[0] not in ("simulate", "plan", "hw", "models", "traces",
                                                "estimate") else " ".join(c.argv[:2])
                for c in CASES}
    for needed in ("hw list", "hw show", "models list", "models show", "estimate step",
                   "simulate train", "simulate serve", "validate", "demo", "calibrate",
                   "plan train", "plan serve", "plan gpu-mix", "plan power", "plan checkpoint",
                   "plan spot", "plan train-hetero", "export", "import",
                   "sweep", "traces stats", "traces synth"):
        assert needed in commands, needed


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path: Path) -> None:
    result = run_case(c, tmp_path)
    assert result.outcome == "pass", f"{result.outcome}: {result.detail}"
