"""`model: weibull`: one node-failure process with Weibull inter-failure times."""

from __future__ import annotations

from simulator.longrun.failure_models.exponential import node_process
from simulator.longrun.failure_models.spec import FAILURE_MODELS, FailuresSpec
from simulator.longrun.failures import ComponentFailure, FailureModelKind

# Default shape 0.78: a typical infant-mortality fit for HPC node failures (Schroeder &
# Gibson, DSN'06, report shapes 0.7-0.8 for time between failures).
DEFAULT_WEIBULL_SHAPE = 0.78


@FAILURE_MODELS.register(FailureModelKind.WEIBULL)
def weibull(spec: FailuresSpec) -> tuple[ComponentFailure, ...]:
    """Node failures with Weibull inter-failure times (shape < 1: infant mortality)."""
    return node_process(spec, DEFAULT_WEIBULL_SHAPE if spec.shape is None else spec.shape)
