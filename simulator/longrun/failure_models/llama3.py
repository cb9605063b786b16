"""`model: llama3`: the per-component processes of Llama 3's Table 5, rates times `scale`."""

from __future__ import annotations

from dataclasses import replace

from simulator.longrun.failure_models.spec import FAILURE_MODELS, FailuresSpec
from simulator.longrun.failures import ComponentFailure, FailureModelKind, llama3_components


@FAILURE_MODELS.register(FailureModelKind.LLAMA3)
def llama3(spec: FailuresSpec) -> tuple[ComponentFailure, ...]:
    """Every Table 5 cause, scaled; Weibull shape `spec.shape` (default 1: exponential)."""
    shape = 1.0 if spec.shape is None else spec.shape
    return tuple(replace(c, rate_per_unit_s=c.rate_per_unit_s * spec.scale, shape=shape)
                 for c in llama3_components())
