"""Named training stacks (planners/stacks.py): each preset is a valid search space, searches
only what its framework launches, and costs that framework's kernels."""

from __future__ import annotations

import pytest

from hwmodels.errors import ConfigError
from planners.export import export_plan
from planners.stacks import TrainStack, stack_constraints
from planners.train import plan_train
from planners.train_space import TrainConstraints
from simulator.training.plan import TrainingPlan


def test_every_stack_is_a_valid_space_and_unknown_ones_are_refused():
    for stack in TrainStack:
        TrainConstraints(**stack_constraints(stack))
    with pytest.raises(ConfigError) as err:
        stack_constraints("nemo", key="--stack")
    assert err.value.key == "--stack" and "torchtitan" in str(err.value.allowed)


def _plan(stack: TrainStack, n: int = 16, top_k: int = 6):
    return plan_train("llama3-8b", "h100-sxm", n, seq_len=4096, global_batch=64, top_k=top_k,
                      constraints=TrainConstraints(**stack_constraints(stack),
                                                   micro_batches=(1, 2)))


@pytest.mark.parametrize("stack", [TrainStack.MEGATRON, TrainStack.TORCHTITAN,
                                   TrainStack.DEEPSPEED])
def test_every_ranked_plan_exports_to_its_own_framework(stack):
    """The point of a stack: nothing the planner ranks is refused by that framework's
    exporter (torchtitan has no ZeRO-1/2, Megatron no ZeRO-2 or per-op AC)."""
    from hwmodels.catalog import load_model
    from hwmodels.cluster import build_cluster

    res = _plan(stack)
    assert not res.plans.empty
    for (parallel, training), (_, row) in zip(res.configs, res.plans.iterrows(), strict=True):
        plan = TrainingPlan(model=load_model("llama3-8b"),
                            cluster=build_cluster("h100-sxm", int(row.num_devices)),
                            training=training, parallel=parallel)
        assert export_plan(plan, str(stack)).files


def test_llm_foundry_searches_fsdp1_data_parallel_only_with_its_kernels():
    res = _plan(TrainStack.LLM_FOUNDRY, n=8, top_k=4)
    assert set(res.plans.tp) == set(res.plans.pp) == {1}
    assert set(res.plans.zero) == {3} and set(res.plans.fsdp_impl) == {"fsdp1"}
    for parallel, training in res.configs:
        assert (str(training.kernels), str(training.loss_impl)) == ("eager", "fused")
        assert str(parallel.grad_reduce_dtype) == "fp32"


def test_deepspeed_reduces_in_the_model_dtype_and_exports_it():
    """DeepSpeed's engine reduces in bf16 when bf16 is on: the preset costs that, and the
    exported ds_config says it."""
    import json

    from hwmodels.catalog import load_model
    from hwmodels.cluster import build_cluster

    res = _plan(TrainStack.DEEPSPEED, top_k=3)
    parallel, training = res.configs[0]
    assert str(parallel.grad_reduce_dtype) == "bf16" and parallel.tp == parallel.pp == 1
    plan = TrainingPlan(model=load_model("llama3-8b"), cluster=build_cluster("h100-sxm", 16),
                        training=training, parallel=parallel)
    cfg = json.loads(export_plan(plan, "deepspeed").files[0].text)
    assert cfg["communication_data_type"] == "bf16"
