"""plan train proposes only plans some training stack can launch: ZeRO-2 with pipeline
parallelism (sharded gradients across a pipeline's microbatches) is pruned with its reason."""

from __future__ import annotations

import pytest

from hwmodels.errors import InfeasibleError
from hwmodels.parallel import ParallelConfig
from planners.train import plan_train
from planners.train_space import TrainConstraints, launchable


def test_zero2_with_pp_is_unlaunchable_and_the_rest_is_not() -> None:
    assert "ZeRO-2" in launchable(ParallelConfig(tp=1, pp=2, dp=4, zero=2))
    for zero in (0, 1, 3):
        assert launchable(ParallelConfig(tp=1, pp=2, dp=4, zero=zero)) == ""
    assert launchable(ParallelConfig(tp=1, pp=1, dp=8, zero=2)) == ""


def test_planner_never_returns_zero2_with_pp_and_counts_what_it_pruned() -> None:
    res = plan_train("gpt-7.5b", "a100-80gb", 64, seq_len=2048, global_batch=512, top_k=20,
                     constraints=TrainConstraints(pp=(2, 4), zero=(1, 2), micro_batches=(4,)))
    assert not res.plans.empty
    assert set(res.plans.zero) == {1}
    assert res.pruned_unlaunchable > 0
    assert res.rejections()["unlaunchable"] == res.pruned_unlaunchable
    assert res.to_dict()["pruned_unlaunchable"] == res.pruned_unlaunchable


def test_only_unlaunchable_plans_asked_for_is_infeasible_with_the_reason() -> None:
    res = plan_train("gpt-7.5b", "a100-80gb", 64, seq_len=2048, global_batch=512,
                     constraints=TrainConstraints(pp=(2,), zero=(2,), micro_batches=(4,)))
    assert not res.feasible
    with pytest.raises(InfeasibleError, match="unlaunchable"):
        raise res.infeasible_error()
