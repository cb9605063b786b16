"""hwmodels.training.hetero: the layer split over unlike stages and the stage-to-pool map."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.memory import training_memory
from hwmodels.parallel import ParallelConfig, TrainingConfig, stage_layer_counts
from hwmodels.training.hetero import (
    PoolSpec,
    balanced_split,
    layer_caps,
    memory_capacity_bytes,
    pipeline_estimate_s,
    resolve_stage_pools,
    stage_times_s,
)


def _pools(a: int, h: int) -> tuple[PoolSpec, PoolSpec]:
    return (PoolSpec(cluster=build_cluster("a100-80gb", a)),
            PoolSpec(cluster=build_cluster("h100-sxm", h)))


def test_split_follows_speed() -> None:
    # a stage twice as fast per layer gets about twice the layers
    assert balanced_split(30, [2.0, 1.0], [0.0, 0.0], [30, 30]) == (10, 20)


def test_equal_stages_split_evenly() -> None:
    assert balanced_split(80, [1.0] * 4, [0.0] * 4, [80] * 4) == (20, 20, 20, 20)


def test_memory_cap_binds() -> None:
    assert balanced_split(30, [2.0, 1.0], [0.0, 0.0], [30, 15]) == (15, 15)
    with pytest.raises(InfeasibleError):
        balanced_split(30, [2.0, 1.0], [0.0, 0.0], [10, 15])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.1, 10.0), min_size=2, max_size=8),
       st.lists(st.floats(0.0, 5.0), min_size=8, max_size=8), st.integers(8, 96))
def test_never_worse_than_even_in_the_estimate(per_layer: list[float], fixed: list[float],
                                               layers: int) -> None:
    pp = len(per_layer)
    fixed = fixed[:pp]
    even = stage_layer_counts(layers, ParallelConfig(pp=pp))
    split = balanced_split(layers, per_layer, fixed, [layers] * pp)
    assert sum(split) == layers and min(split) >= 1
    # the steady state is paced by the slowest stage: never slower than the even split's
    assert (max(stage_times_s(split, per_layer, fixed))
            <= max(stage_times_s(even, per_layer, fixed)) + 1e-9)
    many = 4 * pp * layers  # microbatches >> stages: the pipeline estimate follows the max
    assert (pipeline_estimate_s(stage_times_s(split, per_layer, fixed), many)
            <= pipeline_estimate_s(stage_times_s(even, per_layer, fixed), many) * (1 + 1e-9)
            + sum(stage_times_s(split, per_layer, fixed)))


def test_layer_caps_fit_memory() -> None:
    model = load_model("llama3-70b")
    training = TrainingConfig(seq_len=4096, global_batch=64, micro_batch=1)
    p = ParallelConfig(tp=8, pp=4, dp=1, zero=1, sequence_parallel=True, recompute="full")
    cap = [memory_capacity_bytes(build_cluster(d, 8)) for d in ("a100-40gb",) * 2 +
           ("h100-sxm",) * 2]
    caps = layer_caps(model, training, p, cap)
    assert all(c >= 1 for c in caps)
    split = balanced_split(80, [2.0, 2.0, 1.0, 1.0], [0.0] * 4, caps)
    par = ParallelConfig(tp=8, pp=4, dp=1, zero=1, sequence_parallel=True, recompute="full",
                         stage_layers=split)
    for s in range(4):
        assert training_memory(model, training, par, stage=s).total_bytes <= cap[s]
    # the 40 GB stages hold fewer layers than speed alone would give them
    assert split[0] <= caps[0] < 40


def test_auto_stage_pools_contiguous() -> None:
    p = ParallelConfig(tp=8, pp=6, dp=1)
    assert resolve_stage_pools(p, _pools(16, 32)) == (0, 0, 1, 1, 1, 1)


@pytest.mark.parametrize(("parallel", "key"), [
    (ParallelConfig(tp=8, pp=4, dp=1, stage_pools=(0, 0, 1, 2)), "parallelism.stage_pools"),
    (ParallelConfig(tp=8, pp=4, dp=1, stage_pools=(0, 1, 1, 1)), "parallelism.stage_pools"),
    (ParallelConfig(tp=8, pp=3, dp=1), "parallelism.pp"),
    (ParallelConfig(tp=8, pp=2, dp=3), "cluster.pools[0].num_devices"),
])
def test_bad_layouts(parallel: ParallelConfig, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_stage_pools(parallel, _pools(16, 16))
    assert err.value.key == key


def test_stage_pools_length_checked() -> None:
    with pytest.raises(ConfigError, match="parallelism.stage_pools"):
        ParallelConfig(pp=4, stage_pools=(0, 1))
