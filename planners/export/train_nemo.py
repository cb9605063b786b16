"""NeMo megatron GPT Hydra overrides (megatron_gpt_pretraining.py) for a TrainingPlan.

Keys follow NVIDIA/NeMo 8cfedd72 (2025-09-20),
examples/nlp/language_modeling/conf/megatron_gpt_config.yaml (tests/data/launchers/nemo.json).
"""

from __future__ import annotations

from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.parallel import Recompute
from planners.export.base import EXPORTERS, Artefact, ArtefactFile, ExportTarget
from planners.export.train_common import check_dtype, per_stage_layers
from simulator.training.plan import TrainingPlan

NEMO_VERSION = "NVIDIA/NeMo@8cfedd72 (2025-09-20)"


def nemo_overrides(plan: TrainingPlan) -> dict[str, object]:
    """{dotted key: value} Hydra overrides of megatron_gpt_config.yaml."""
    p, t, m, c = plan.parallel, plan.training, plan.model, plan.cluster
    dtype = check_dtype(plan, "NeMo", (DType.BF16, DType.FP16, DType.FP8))
    if p.zero == 3:
        raise ConfigError("NeMo's megatron GPT config has no ZeRO-3", key="--to",
                          allowed="torchtitan, deepspeed")
    if p.cp > 1:
        raise ConfigError("megatron_gpt_config.yaml has no context-parallel key", key="--to",
                          allowed="megatron, torchtitan")
    if len(set(per_stage_layers(plan))) != 1:
        raise ConfigError("NeMo's GPT config splits pipeline stages evenly", key="--to",
                          allowed="megatron")
    o: dict[str, object] = {
        "trainer.num_nodes": c.num_nodes, "trainer.devices": min(c.devices_per_node,
                                                                 c.num_devices),
        "trainer.precision": {DType.BF16: "bf16", DType.FP16: 16, DType.FP8: "bf16"}[dtype],
        "model.micro_batch_size": t.micro_batch, "model.global_batch_size": t.global_batch,
        "model.encoder_seq_length": t.seq_len, "model.max_position_embeddings": t.seq_len,
        "model.tensor_model_parallel_size": p.tp, "model.pipeline_model_parallel_size": p.pp,
        "model.virtual_pipeline_model_parallel_size": p.vpp if p.vpp > 1 else None,
        "model.expert_model_parallel_size": p.ep,
        "model.sequence_parallel": p.sequence_parallel,
        "model.num_layers": m.num_layers, "model.hidden_size": m.hidden_size,
        "model.ffn_hidden_size": m.ffn_hidden_size, "model.num_attention_heads": m.num_heads,
        "model.num_query_groups": m.num_kv_heads,
        "model.optim.name": "distributed_fused_adam" if p.zero else "fused_adam",
    }
    rec = Recompute(str(p.recompute))
    if rec is Recompute.SELECTIVE_OP:
        raise ConfigError("NeMo has no per-op selective recompute (torchtitan's selective-op)",
                          key="parallelism.recompute",
                          allowed="none, selective, full (or export to torchtitan)")
    if rec is not Recompute.NONE:
        o["model.activations_checkpoint_granularity"] = str(rec)
    if rec is Recompute.FULL:
        o.update({"model.activations_checkpoint_method": "uniform",
                  "model.activations_checkpoint_num_layers": 1})
    if dtype is DType.FP8:
        o.update({"model.fp8": True, "model.fp8_hybrid": True})
    return o


def _fmt(v: object) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


@EXPORTERS.register(ExportTarget.NEMO)
def export_nemo(plan: TrainingPlan) -> Artefact:
    """Hydra override list + the python line that runs megatron_gpt_pretraining.py."""
    o = nemo_overrides(plan)
    args = tuple(f"{k}={_fmt(v)}" for k, v in o.items())
    command = ("python examples/nlp/language_modeling/megatron_gpt_pretraining.py "
               "--config-path=conf --config-name=megatron_gpt_config " + " ".join(args))
    return Artefact(target=ExportTarget.NEMO, target_version=NEMO_VERSION, command=command,
                    args=args, files=(ArtefactFile(name="overrides.txt",
                                                   text="\n".join(args) + "\n"),),
                    assumptions=("run once per node under Slurm/torchrun (NeMo reads the "
                                 "launcher's ranks)", "data and tokenizer keys left to the user"))
