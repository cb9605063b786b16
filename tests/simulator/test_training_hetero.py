"""simulator.training.hetero: pipelines over unlike pools, and cluster.pools scenarios."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from hwmodels.parallel import ParallelConfig, TrainingConfig
from hwmodels.training.hetero import PoolSpec
from simulator.training import load_training_scenario, simulate_training
from simulator.training.hetero import simulate_hetero, simulate_pools
from simulator.training.simulate import simulate_iteration

SCENARIO = (Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
            / "llama3-70b-a100-h100-hetero.yaml")
MODEL = load_model("llama3-70b")
TRAIN = TrainingConfig(seq_len=4096, global_batch=64, micro_batch=1)


def _par(**kw: object) -> ParallelConfig:
    base = dict(tp=8, pp=8, dp=1, zero=1, sequence_parallel=True, recompute="selective")
    base.update(kw)
    return ParallelConfig(**base)  # type: ignore[arg-type]


def _pool(device: str, n: int, **links: str) -> PoolSpec:
    return PoolSpec(cluster=build_cluster(device, n, **links))


def test_one_pool_given_as_two_is_the_homogeneous_job() -> None:
    homo = simulate_iteration(MODEL, build_cluster("h100-sxm", 64), TRAIN, _par())
    pools = (_pool("h100-sxm", 32), _pool("h100-sxm", 32))
    # the per-pool cost path itself, not only the dispatch to simulate_iteration
    split = simulate_pools(MODEL, TRAIN, _par(), pools, (0,) * 4 + (1,) * 4)
    assert split.iteration_time_s == homo.iteration_time_s
    assert split.memory_per_stage == homo.memory_per_stage
    assert simulate_hetero(MODEL, TRAIN, _par(), pools) == homo


def test_proportional_beats_even_and_fits() -> None:
    pools = (_pool("a100-80gb", 32), _pool("h100-sxm", 32))
    prop = simulate_hetero(MODEL, TRAIN, _par(), pools)
    even = simulate_hetero(MODEL, TRAIN, _par(pool_split="even"), pools)
    assert prop.fits_memory and even.fits_memory
    assert prop.tokens_per_s > 1.3 * even.tokens_per_s
    a100 = [r.layers for r in prop.stages[:4]]
    h100 = [r.layers for r in prop.stages[4:]]
    assert sum(a100) + sum(h100) == 80 and max(a100) < min(h100)
    # every stage's memory is judged against its own device
    assert all(m <= 80 * 0.95 * 1e9 / 2**30 for m in prop.memory_per_stage)


def test_slower_inter_pool_fabric_is_slower() -> None:
    fast = (_pool("a100-80gb", 32), _pool("h100-sxm", 32))
    slow = (_pool("a100-80gb", 32, inter_node="eth-100g"), _pool("h100-sxm", 32))
    assert (simulate_hetero(MODEL, TRAIN, _par(), slow).iteration_time_s
            > simulate_hetero(MODEL, TRAIN, _par(), fast).iteration_time_s)


def test_explicit_stage_pools_put_h100_first() -> None:
    pools = (_pool("a100-80gb", 32), _pool("h100-sxm", 32))
    flipped = simulate_hetero(MODEL, TRAIN, _par(stage_pools=(1,) * 4 + (0,) * 4), pools)
    assert flipped.fits_memory and flipped.pipeline_split.startswith("h100-sxm")


def _raw() -> dict:
    return yaml.safe_load(SCENARIO.read_text())


def test_bundled_scenario_runs() -> None:
    sc = load_training_scenario(_raw(), file=str(SCENARIO))
    r = simulate_training(sc.plan())
    assert r.fits_memory and r.pipeline_split.startswith("a100-80gb")
    assert set(sc.profiles()) == {"a100-80gb", "h100-sxm"}


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda r: r["cluster"].update(device="h100-sxm"), "cluster.pools"),
    (lambda r: r["cluster"]["pools"][0].update(num_devices=0), "num_devices"),
    (lambda r: r["parallelism"].update(stage_pools=[0, 0, 1]), "parallelism.stage_pools"),
    (lambda r: r["parallelism"].update(stage_pools=[0, 0, 0, 0, 1, 1, 1, 5]),
     "parallelism.stage_pools"),
    (lambda r: r["cluster"]["pools"][0].update(num_devices=36), "num_devices"),
    (lambda r: r["parallelism"].update(pp=4, dp=1), "parallelism.pp"),
])
def test_bad_pools_are_config_errors(edit, needle: str) -> None:  # type: ignore[no-untyped-def]
    raw = copy.deepcopy(_raw())
    edit(raw)
    with pytest.raises(ConfigError) as err:
        load_training_scenario(raw, file="x.yaml")
    assert needle in str(err.value) and "\n" not in str(err.value)
