"""plan train --offload: a model that does not fit HBM gets a ZeRO-Offload/-Infinity plan
whose iteration time is bounded by the PCIe/NVMe traffic it reports."""

from __future__ import annotations

import pytest

from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.parallel import OffloadTarget, Recompute
from planners.train import plan_train
from planners.train_space import TrainConstraints

# llama3-70b (~70.6B params: 1.1 TB of weights + grads + Adam state) on 4 x A100 80GB (320 GB)
SEARCH = dict(pp=(1,), zero=(1, 2, 3), recompute=(Recompute.FULL,), micro_batches=(1,))
ARGS = dict(seq_len=4096, global_batch=16, top_k=3)


def test_without_offload_nothing_fits() -> None:
    result = plan_train("llama3-70b", "a100-80gb", 4, constraints=TrainConstraints(**SEARCH),
                        **ARGS)
    assert not result.feasible
    with pytest.raises(InfeasibleError):
        result.best  # noqa: B018


def test_with_offload_a_plan_is_found_and_bounded_by_its_traffic() -> None:
    c = TrainConstraints(**SEARCH, offload_optimizer=("none", "cpu", "nvme"),
                         offload_params=("none", "cpu", "nvme"))
    result = plan_train("llama3-70b", "a100-80gb", 4, constraints=c, **ARGS)
    assert result.feasible
    rows = result.to_dict()["plans"]
    for row, (parallel, _) in zip(rows, result.configs, strict=True):
        assert parallel.offload_optimizer is not OffloadTarget.NONE
        off = row["breakdown"]["offload"]
        assert row["iteration_time_s"] >= max(off["pcie_s"], off["nvme_s"]) > 0
        assert row["offload_optimizer"].startswith("optimizer=")
        assert row["peak_memory_gib"] <= 80 * 0.95


def test_offload_constraints_accept_bools_and_reject_unknown() -> None:
    c = TrainConstraints(offload_optimizer=(False, True))
    assert c.offload_optimizer == (OffloadTarget.NONE, OffloadTarget.CPU)
    with pytest.raises(ConfigError, match="constraints.offload_params"):
        TrainConstraints(offload_params=("tape",))
