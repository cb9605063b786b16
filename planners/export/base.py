"""The export seam: launch artefacts (argument lists, config files, command lines) for a typed
training or serving plan, one exporter per target launcher, registered by `ExportTarget`.

Exporters are pure: `TrainingPlan | ServingPlan -> Artefact`. Only `Artefact.write` touches the
disk, through `hwmodels.atomic`, after every file has been rendered (nothing half-written).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from hwmodels._compat import StrEnum
from hwmodels.atomic import atomic_write_text
from hwmodels.errors import ConfigError
from hwmodels.registry import Registry


class ExportTarget(StrEnum):
    """Launchers fleetsim writes artefacts for."""

    MEGATRON = "megatron"
    TORCHTITAN = "torchtitan"
    DEEPSPEED = "deepspeed"
    NEMO = "nemo"
    VLLM = "vllm"
    SGLANG = "sglang"
    TRTLLM = "trtllm"
    DYNAMO_K8S = "dynamo-k8s"


class PlanKind(StrEnum):
    """What a target launches."""

    TRAINING = "training"
    SERVING = "serving"


TARGET_KIND: dict[ExportTarget, PlanKind] = {
    ExportTarget.MEGATRON: PlanKind.TRAINING,
    ExportTarget.TORCHTITAN: PlanKind.TRAINING,
    ExportTarget.DEEPSPEED: PlanKind.TRAINING,
    ExportTarget.NEMO: PlanKind.TRAINING,
    ExportTarget.VLLM: PlanKind.SERVING,
    ExportTarget.SGLANG: PlanKind.SERVING,
    ExportTarget.TRTLLM: PlanKind.SERVING,
    ExportTarget.DYNAMO_K8S: PlanKind.SERVING,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ArtefactFile:
    """One file of an artefact: a relative POSIX path (no '..') and its text."""

    name: str
    text: str

    def __post_init__(self) -> None:
        p = PurePosixPath(self.name)
        if not self.name or p.is_absolute() or ".." in p.parts:
            raise ValueError(f"ArtefactFile.name: a relative path without '..', got {self.name!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Artefact:
    """A ready launch artefact for one plan on one target.

    `command` is the one line a user runs (a torchrun / srun / `vllm serve` line); `files` are
    what it reads; `target_version` is the pinned version whose argument definitions the
    exporter is tested against; `assumptions` are the choices fleetsim made that the plan
    does not pin down (paths, ports, tokenizer) for the user to check.
    """

    target: ExportTarget
    target_version: str
    command: str
    files: tuple[ArtefactFile, ...] = ()
    assumptions: tuple[str, ...] = ()
    args: tuple[str, ...] = ()  # the launcher's argument list, as given to `command`
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. per-pool commands

    def __post_init__(self) -> None:
        if not self.command.strip():
            raise ValueError("Artefact.command: must not be empty")
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"Artefact.files: duplicate names in {names}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (`--json` output)."""
        return {"target": str(self.target), "target_version": self.target_version,
                "command": self.command, "args": list(self.args),
                "files": {f.name: f.text for f in self.files},
                "assumptions": list(self.assumptions), **self.extra}

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write every file under `out_dir` (created) plus `launch.sh`; returns the paths."""
        root = Path(out_dir)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root} exists and is not a directory", key="--out",
                              allowed="a directory path")
        parent = root.absolute().parent
        if not root.exists() and not parent.is_dir():
            raise ConfigError(f"{parent} is not an existing directory (the artefact directory "
                              f"is created, its parents are not)", key="--out",
                              allowed="a path under an existing directory")
        files = [*self.files, ArtefactFile(name="launch.sh", text=_launch_sh(self))]
        written = []
        for f in files:
            path = root / f.name
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(atomic_write_text(path, f.text))
        return written


def _launch_sh(a: Artefact) -> str:
    notes = "".join(f"# assumption: {s}\n" for s in a.assumptions)
    return (f"#!/usr/bin/env bash\n# written by fleetsim for {a.target} {a.target_version}\n"
            f"{notes}set -euo pipefail\n{a.command}\n")


TrainingExporter = Callable[..., Artefact]  # (TrainingPlan, **options) -> Artefact
ServingExporter = Callable[..., Artefact]  # (ServingPlan, **options) -> Artefact

EXPORTERS: Registry[ExportTarget, Callable[..., Artefact]] = Registry(
    "export target", ExportTarget, key="--to")


def kind_of(target: str | ExportTarget, *, key: str = "--to") -> PlanKind:
    """Whether `target` launches training or serving (unknown names list the valid ones)."""
    return TARGET_KIND[EXPORTERS.kind(target, key=key)]


def _plan_kind(plan: Any) -> PlanKind:
    """Training or serving, by the plan's type; anything else is a caller's bug."""
    from simulator.serving.plan import ServingPlan
    from simulator.training.plan import TrainingPlan

    if isinstance(plan, TrainingPlan):
        return PlanKind.TRAINING
    if isinstance(plan, ServingPlan):
        return PlanKind.SERVING
    raise TypeError(f"export_plan takes a TrainingPlan or ServingPlan, got {type(plan).__name__}")


def export_plan(plan: Any, target: str | ExportTarget, *, key: str = "--to",
                **options: Any) -> Artefact:
    """The artefact for `plan` (a TrainingPlan or ServingPlan) on `target`."""
    kind = EXPORTERS.kind(target, key=key)
    plan_kind = _plan_kind(plan)
    if TARGET_KIND[kind] is not plan_kind:
        valid = [str(t) for t, k in TARGET_KIND.items() if k is plan_kind]
        raise ConfigError(f"'{kind}' launches {TARGET_KIND[kind]}, this is a {plan_kind} plan",
                          key=key, allowed=", ".join(valid))
    return EXPORTERS.get(kind, key=key)(plan, **options)
