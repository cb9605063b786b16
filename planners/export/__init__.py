"""Launch artefacts for plans: `export_plan(plan, target)`; exporters register in `EXPORTERS`."""

from planners.export.base import (
                                  EXPORTERS,
                                  Artefact,
                                  ArtefactFile,
                                  ExportTarget,
                                  PlanKind,
                                  export_plan,
                                  kind_of,
)
from planners.export import serve_vllm  # noqa: F401  (registers ExportTarget.VLLM)

__all__ = ["EXPORTERS", "Artefact", "ArtefactFile", "ExportTarget", "PlanKind", "export_plan",
           "kind_of"]
