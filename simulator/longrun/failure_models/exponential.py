"""`model: exponential`: one memoryless node-failure process at an all-cause rate."""

from __future__ import annotations

from simulator.longrun.failure_models.spec import FAILURE_MODELS, FailuresSpec
from simulator.longrun.failures import DAY_S, ComponentFailure, FailureModelKind, Scope


def node_process(spec: FailuresSpec, shape: float) -> tuple[ComponentFailure, ...]:
    """One `node` cause at spec's rate per 1,000 node-days with this Weibull shape."""
    return (ComponentFailure(cause="node", scope=Scope.NODE,
                             rate_per_unit_s=spec.node_failures_per_1000_node_days / 1000 / DAY_S,
                             shape=shape, repair_s=spec.repair_s),)


@FAILURE_MODELS.register(FailureModelKind.EXPONENTIAL)
def exponential(spec: FailuresSpec) -> tuple[ComponentFailure, ...]:
    """Node failures with exponential inter-failure times (shape 1)."""
    return node_process(spec, 1.0)
