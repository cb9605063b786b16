"""fleetsim planners: training-plan search, what-if sweeps and the executors they fan out on."""

from planners.executors import (
    Executor,
    ExecutorKind,
    LocalExecutor,
    RayExecutor,
    TaskResult,
    make_executor,
    map_seeds,
    spawn_seeds,
)
from planners.sweep import evaluate_training, parse_grid, plot_sweep, sweep, write_results
from planners.train import PlanResult, TrainEstimator, plan_train, plan_train_on
from planners.train_space import TrainConstraints

__all__ = [
    "Executor", "ExecutorKind", "LocalExecutor", "PlanResult", "RayExecutor", "TaskResult",
    "TrainConstraints", "TrainEstimator", "evaluate_training", "make_executor", "map_seeds",
    "parse_grid", "plan_train", "plan_train_on", "plot_sweep", "spawn_seeds", "sweep",
    "write_results",
]
