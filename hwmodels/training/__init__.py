"""Pure training-iteration costs: rank placement, collectives on real groups, per-chunk op costs,
gradient sync and the optimizer step, and the closed-form iteration estimate built from them.
No SimPy: the simulator and the planner both call these (one cost path)."""

from hwmodels.training.comm import CommModel
from hwmodels.training.costs import FSDP_TRAITS, ChunkCostModel, CostCache, p2p_activation_bytes
from hwmodels.training.estimate import SCHEDULE_SHAPES, IterationEstimate, estimate_iteration
from hwmodels.training.gradsync import finish_stage, stage_params
from hwmodels.training.placement import StageGroups, pipeline_groups, stage_groups

__all__ = ["FSDP_TRAITS", "SCHEDULE_SHAPES", "ChunkCostModel", "CommModel", "CostCache",
           "IterationEstimate", "StageGroups", "estimate_iteration", "finish_stage",
           "p2p_activation_bytes", "pipeline_groups", "stage_groups", "stage_params"]
