"""Long training runs over days and weeks: failures, checkpoints, stragglers, spares, ETTR."""

from simulator.longrun.checkpoint import CheckpointMode, CheckpointPolicy
from simulator.longrun.closed_form import (
    daly_interval_s,
    exact_ettr,
    kokolis_ettr,
    young_interval_s,
)
from simulator.longrun.config import JobShape, RunConfig, RunSettings, ShortagePolicy
from simulator.longrun.engine import Phase, simulate_longrun
from simulator.longrun.failure_models import FAILURE_MODELS, FailuresSpec, build_failure_model
from simulator.longrun.failures import ComponentFailure, FailureModel, FailureModelKind, Scope
from simulator.longrun.results import RunResult, RunSummary
from simulator.longrun.scenario import CheckpointSpec, IntervalRule, RunSpec, parse_run, read_run
from simulator.longrun.simulate import (
    job_shape,
    simulate_many,
    simulate_run,
    simulate_run_seeds,
)
from simulator.longrun.stragglers import StragglerKind, StragglerSpec

__all__ = [
    "FAILURE_MODELS", "CheckpointMode", "CheckpointPolicy", "CheckpointSpec", "ComponentFailure",
    "FailureModel", "FailureModelKind", "FailuresSpec", "IntervalRule", "JobShape", "Phase", "RunConfig",
    "RunResult", "RunSettings", "RunSpec", "RunSummary", "Scope", "ShortagePolicy",
    "StragglerKind", "StragglerSpec", "build_failure_model", "daly_interval_s", "exact_ettr",
    "job_shape", "kokolis_ettr", "parse_run", "read_run", "simulate_longrun", "simulate_many",
    "simulate_run", "simulate_run_seeds", "young_interval_s",
]
