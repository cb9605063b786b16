"""Failure models, one module per model, registered in FAILURE_MODELS by FailureModelKind."""

from simulator.longrun.failure_models import exponential, llama3, weibull
from simulator.longrun.failure_models.spec import (
    FAILURE_MODELS,
    RATE_KEYS,
    ComponentSpec,
    FailuresSpec,
    build_failure_model,
)

__all__ = ["FAILURE_MODELS", "RATE_KEYS", "ComponentSpec", "FailuresSpec", "build_failure_model",
           "exponential", "llama3", "weibull"]
