"""Launch artefacts for plans: `export_plan(plan, target)`; exporters register in `EXPORTERS`."""

from planners.export import (  # noqa: F401  (each registers its ExportTarget)
                                  serve_dynamo,
                                  serve_sglang,
                                  serve_trtllm,
                                  serve_vllm,
                                  train_deepspeed,
                                  train_megatron,
                                  train_nemo,
                                  train_torchtitan,
)
from planners.export.base import (
                                  EXPORTERS,
                                  Artefact,
                                  ArtefactFile,
                                  ExportTarget,
                                  PlanKind,
                                  export_plan,
                                  kind_of,
)

__all__ = ["EXPORTERS", "Artefact", "ArtefactFile", "ExportTarget", "PlanKind", "export_plan",
           "kind_of"]
