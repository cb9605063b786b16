"""Serving defects the fuzz benchmark found (benchmarks/fuzz.py, issue 13), one test each."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml

from fleetsim.cli.app import main

# a heterogeneous group autoscaled down to zero replicas (the first fuzz hang, seed 1)
SCALE_TO_ZERO = {
    "name": "fuzz-scale-to-zero", "model": "llama3-8b",
    "cluster": {"device": "a100-80gb", "devices_per_node": 8},
    "serving": {"tp": 1, "scheduler": "vllm", "router": "capacity_weighted",
                "max_num_seqs": 256, "max_batch_tokens": 8192, "chunk_size": 64,
                "replica_groups": [{"name": "g0", "device": "l40s", "count": 2, "tp": 1}]},
    "seed": 6,
    "autoscale": {"group": "g0", "min_replicas": 0, "max_replicas": 3, "metric": "latency",
                  "up_threshold": 1.0, "down_threshold": 0.5, "interval_s": 2.0,
                  "cooldown_s": 1.0, "instance_start_s": 1.0},
    "workload": {"synthetic": {"num_requests": 18,
                               "arrival": {"process": "poisson", "rate": 1.0},
                               "input": {"dist": "lognormal", "mean": 700, "sigma": 1.0,
                                         "min": 1, "max": 2048},
                               "output": {"dist": "fixed", "value": 32}}},
}


def _serve(tmp_path: Path, sc: dict, capsys: pytest.CaptureFixture[str], *extra: str
           ) -> tuple[int, str, str]:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sc))
    rc = main(["simulate", "serve", str(path), "--json", "--no-progress", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("metric,up", [("latency", 1.0), ("queue", 1000.0)])
def test_a_group_scaled_to_zero_comes_back_for_waiting_requests(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], metric: str, up: float) -> None:
    """The latency metric read 0 s with no first tokens in the window, and a queue threshold
    above the backlog never fired: with no replica left, the run never ended (a hang)."""
    sc = copy.deepcopy(SCALE_TO_ZERO)
    sc["autoscale"].update(metric=metric, up_threshold=up)
    rc, out, err = _serve(tmp_path, sc, capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["completed"] == res["requests"] == 18
    assert all(math.isfinite(v) for v in res["e2e_s"].values() if v is not None)


@pytest.mark.parametrize("key", ["serving.replica_groups.0.price_usd_per_hour",
                                 "failures.stragglers.fraction", "serving.gpu_memory_utilization"])
def test_nan_is_refused_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       key: str) -> None:
    """NaN passed every `value < minimum` range check (a NaN comparison is False)."""
    sc = copy.deepcopy(SCALE_TO_ZERO)
    sc.pop("autoscale")
    sc["failures"] = {"mtbf_s": 100.0, "stragglers": {"fraction": 0.1, "slowdown": 2.0}}
    node: dict = sc
    *path, last = key.split(".")
    for part in path:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = float("nan")
    rc, _, err = _serve(tmp_path, sc, capsys)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "NaN" in err
    assert last in err


def test_prefix_hash_blocks_must_cover_whole_kv_blocks(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """16-token prefix hashes on 32-token KV blocks charged a whole block per hash, so a
    259-token prompt matched 15 'blocks' (480 tokens) and the pool went to -6 blocks (caught
    by the kv_capacity invariant, exit 4). Now exit 2 naming the key; 32-token hashes run."""
    sc = copy.deepcopy(SCALE_TO_ZERO)
    sc.pop("autoscale")
    sc["serving"].update(kv_block_size=32, prefix_caching=True, scheduler="sarathi")
    sc["serving"].pop("replica_groups")
    sc["serving"]["disaggregation"] = {"prefill_replicas": 1, "decode_replicas": 2}
    sc["workload"]["synthetic"]["prefix"] = {"num_prompts": 4, "tokens": 256, "share": 1.0}
    rc, _, err = _serve(tmp_path, sc, capsys)
    assert rc == 2 and "key 'workload.prefix_block_tokens'" in err, err
    sc["workload"]["synthetic"]["prefix"]["block_tokens"] = 32
    rc, out, err = _serve(tmp_path, sc, capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["completed"] + res["dropped"] == res["requests"]


def test_unknown_window_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sc = copy.deepcopy(SCALE_TO_ZERO)
    sc["workload"] = {"trace": "azure-conv-2023-sample",
                      "window": {"start_s": 0, "end_s": 5, "bogus": 1}}
    rc, _, err = _serve(tmp_path, sc, capsys)
    assert rc == 2 and "workload.window.bogus" in err, err


def test_a_cap_the_clock_cannot_meet_is_reported(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A 30% cap on decode-heavy (memory-bound) steps: lowering the SM clock cannot bring
    HBM-bound power under it (hwmodels.power), and the run used to say nothing. The summary
    now carries the share of capped device-time spent above the cap; uncapped runs omit it."""
    sc = copy.deepcopy(SCALE_TO_ZERO)
    sc.pop("autoscale")
    sc["serving"].pop("replica_groups")
    sc["serving"]["replicas"] = 1
    sc["cluster"]["num_devices"] = 1
    sc["workload"]["synthetic"].update(num_requests=40, output={"dist": "fixed", "value": 256})
    rc, out, err = _serve(tmp_path, sc, capsys)
    assert rc == 0, err
    assert "over_cap_fraction" not in json.loads(out)
    sc["power"] = {"cap_fraction": 0.3}
    rc, out, err = _serve(tmp_path, sc, capsys)
    assert rc == 0, err
    over = json.loads(out)["over_cap_fraction"]
    assert 0.5 < over <= 1.0, over  # decode dominates and sits above a 120 W cap
