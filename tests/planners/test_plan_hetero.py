"""planners.hetero and `fleetsim plan train-hetero`: the hetero plan, its baselines, and where
it stops winning (A100 share, inter-pool fabric, small slow devices)."""

from __future__ import annotations

import json

import pytest

from fleetsim.cli.app import main
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.training.hetero import PoolSpec
from planners.hetero import parse_pools, plan_hetero


def _plan(device: str, n: int, **links: str):  # type: ignore[no-untyped-def]
    pools = (PoolSpec(cluster=build_cluster(device, n, **links)),
             PoolSpec(cluster=build_cluster("h100-sxm", 32)))
    return plan_hetero("llama3-70b", pools, seq_len=4096, global_batch=64)


def test_a100_share_sweep_wins_more_with_more_a100s() -> None:
    speedups = [_plan("a100-80gb", n).speedup for n in (8, 16, 32)]
    assert all(s > 1.0 for s in speedups), speedups
    assert speedups == sorted(speedups), speedups


def test_baselines_are_reported_on_the_same_machines() -> None:
    plan = _plan("a100-80gb", 32)
    kinds = {r.kind for r in plan.alone}
    assert kinds == {"alone:a100-80gb", "alone:h100-sxm"}
    assert plan.naive is not None and plan.hetero is not None
    assert plan.hetero.tokens_per_s > plan.naive.tokens_per_s
    # the naive even split is paced by the A100 stages: worse than the H100s alone here
    assert plan.naive.tokens_per_s < max(r.tokens_per_s for r in plan.alone)
    # two separate jobs are not one job; they bound what mixing can add
    assert plan.separate is not None
    assert plan.separate.tokens_per_s >= plan.hetero.tokens_per_s
    out = plan.to_dict()
    assert out["hetero_wins"] and out["best_baseline"] == "alone:h100-sxm"


def test_slow_inter_pool_fabric_shrinks_the_gain() -> None:
    fast = _plan("a100-80gb", 32).speedup
    slow = _plan("a100-80gb", 32, inter_node="eth-100g").speedup
    assert slow < fast


@pytest.mark.parametrize("device", ["a10g", "l4"])
def test_small_slow_devices_do_not_win(device: str) -> None:
    # 24 GB devices hold one 70B layer per stage at tp 4: the H100s alone are faster
    plan = _plan(device, 32)
    assert plan.speedup < 1.0
    assert not plan.to_dict()["hetero_wins"]


def test_parse_pools_rejects_bad_input() -> None:
    for text in ("a100-80gb:0,h100-sxm:8", "a100-80gb", "h100-sxm:8"):
        with pytest.raises(ConfigError):
            parse_pools(text)


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "train-hetero", "--model", "llama3-70b", "--pools",
                 "a100-80gb:16,h100-sxm:16", "--global-batch", "32", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["speedup"] > 0 and out["hetero"]["tokens_per_s"] > 0


def test_cli_bad_pools_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "train-hetero", "--model", "llama3-70b", "--pools",
                 "a100-80gb:0,h100-sxm:16", "--global-batch", "32"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--pools" in err
