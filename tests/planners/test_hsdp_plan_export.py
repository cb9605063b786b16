"""Hybrid sharding in the planner and the launch exporters: plan train searches one-node shard
groups when asked (--fsdp-shard all,node), and the exporters say it with real flags of the
pinned launchers (torchtitan HSDP degrees, DeepSpeed MiCS, Megatron-FSDP outer DP) or refuse."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import tomllib
import yaml

from hwmodels.catalog import load_model
from hwmodels.cluster import build_cluster
from hwmodels.errors import ConfigError
from planners.export import export_plan
from planners.export.importers import import_megatron, import_torchtitan
from planners.replan import _shard_policy
from planners.train import plan_train
from planners.train_space import TrainConstraints, enumerate_candidates, shard_sizes
from simulator.training import load_training_scenario
from tests.planners.test_export_train import PINNED, TYPES, _megatron_parser


def _plan(n: int = 32, **par):
    raw = {"model": "llama3-8b", "cluster": {"device": "h100-sxm", "num_devices": n},
           "training": {"seq_len": 4096, "global_batch": 256, "micro_batch": 1},
           "parallelism": {"dp": "auto", "zero": 3, **par}}
    return load_training_scenario(raw).plan()


# --- planner ----------------------------------------------------------------------------------

def test_constraints_refuse_bad_shard_values():
    with pytest.raises(ConfigError, match="shard groups") as err:
        TrainConstraints(fsdp_shard=("rack",))
    assert err.value.key == "constraints.fsdp_shard"
    with pytest.raises(ConfigError):
        TrainConstraints(fsdp_shard=())


def test_shard_sizes_node_only_on_multi_node_jobs():
    c = TrainConstraints(fsdp_shard=("all", "node", 4, 3))
    base = _plan().parallel
    two_nodes = build_cluster("h100-sxm", 32, devices_per_node=8)
    assert shard_sizes(c, two_nodes, replace(base, fsdp_shard_size=None)) == (None, 8, 4)
    one_node = build_cluster("h100-sxm", 8, devices_per_node=8)
    assert shard_sizes(c, one_node, replace(base, dp=8, fsdp_shard_size=None)) == (None, 4)


def test_default_search_has_no_hybrid_plans():
    model = load_model("llama3-8b")
    cluster = build_cluster("h100-sxm", 32, devices_per_node=8)
    kw = dict(seq_len=4096, global_batch=256)
    only = TrainConstraints(tp=(1,), pp=(1,), zero=(3,), micro_batches=(1,),
                            recompute=("selective",))
    cands, counts = enumerate_candidates(model, cluster, constraints=only, **kw)
    assert all(c.parallel.fsdp_shard_size is None for c in cands)
    both, counts2 = enumerate_candidates(model, cluster, constraints=replace(
        only, fsdp_shard=("all", "node")), **kw)
    assert {c.parallel.fsdp_shard_size for c in both} == {None, 8}
    assert counts2.considered == 2 * counts.considered


def test_plan_train_reports_the_shard_size_and_prefers_hybrid_on_a_slow_link():
    res = plan_train("llama3-8b", "h100-sxm", 128, seq_len=8192, global_batch=256,
                     inter_node="eth-100g", top_k=4, constraints=TrainConstraints(
                         tp=(1,), pp=(1,), zero=(3,), micro_batches=(1,),
                         recompute=("selective",), fsdp_impl=("deepspeed",),
                         fsdp_shard=("all", "node")))
    rows = res.to_dict()["plans"]
    assert {r["fsdp_shard_size"] for r in rows} == {8, 128}
    assert rows[0]["fsdp_shard_size"] == 8  # node-local gathers win over 100 GbE
    for r in rows:  # the fast estimate and the simulator agree on each plan
        assert r["est_iteration_time_s"] == pytest.approx(r["iteration_time_s"], rel=1e-6)
    assert res.configs[0][0].fsdp_shard_size == 8


def test_replan_keeps_the_scenario_shard_policy():
    assert _shard_policy(_plan(fsdp_shard_size="node").parallel, 8) == ("node",)
    assert _shard_policy(_plan(fsdp_shard_size=16).parallel, 8) == (16,)
    assert _shard_policy(_plan().parallel, 8) == ("all",)


# --- exporters --------------------------------------------------------------------------------

def test_torchtitan_hsdp_degrees_pinned_and_round_trip():
    plan = _plan(fsdp_shard_size=8)
    text = export_plan(plan, "torchtitan").files[0].text
    par = tomllib.loads(text)["parallelism"]
    assert (par["data_parallel_shard_degree"], par["data_parallel_replicate_degree"]) == (8, 4)
    pinned = PINNED["torchtitan"]["sections"]["parallelism"]
    for key in ("data_parallel_shard_degree", "data_parallel_replicate_degree"):
        assert isinstance(par[key], TYPES[pinned[key]["type"]])
    back = load_training_scenario(import_torchtitan(text, device="h100-sxm")).plan()
    assert back.parallel == plan.parallel


def test_torchtitan_full_sharding_unchanged():
    par = tomllib.loads(export_plan(_plan(), "torchtitan").files[0].text)["parallelism"]
    assert (par["data_parallel_shard_degree"], par["data_parallel_replicate_degree"]) == (32, 1)


def test_deepspeed_hybrid_is_mics_with_pinned_keys():
    art = export_plan(_plan(fsdp_shard_size=8, fsdp_impl="deepspeed"), "deepspeed")
    zero = json.loads(art.files[0].text)["zero_optimization"]
    assert zero["mics_shard_size"] == 8 and "zero_hpz_partition_size" not in zero
    pin = PINNED["deepspeed"]["zero_optimization"]
    for key in ("mics_shard_size", "mics_hierarchical_params_gather"):
        assert isinstance(zero[key], TYPES[pin[key]["type"]])
    assert any("MiCS_Init" in note for note in art.assumptions)


def test_deepspeed_mics_refuses_offload():
    plan = _plan(fsdp_shard_size=8, offload_optimizer="cpu")
    with pytest.raises(ConfigError, match="MiCS") as err:
        export_plan(plan, "deepspeed")
    assert err.value.key == "parallelism.fsdp_shard_size"


def test_megatron_fsdp_outer_dp_flags_parse_and_round_trip():
    plan = _plan(fsdp_shard_size=8, fsdp_impl="megatron")
    art = export_plan(plan, "megatron")
    ns = _megatron_parser().parse_args(list(art.args))
    assert ns.num_distributed_optimizer_instances == 4
    assert ns.outer_dp_sharding_strategy == "no_shard"
    back = load_training_scenario(yaml.safe_load(yaml.safe_dump(
        import_megatron(art.command, device="h100-sxm")))).plan()
    assert back.parallel == plan.parallel


def test_megatron_torch_fsdp2_and_nemo_refuse_hybrid_sharding():
    plan = _plan(fsdp_shard_size=8)
    with pytest.raises(ConfigError, match="torchtitan") as err:
        export_plan(plan, "megatron")
    assert err.value.key == "parallelism.fsdp_shard_size"
    with pytest.raises(ConfigError, match="ZeRO-3"):
        export_plan(plan, "nemo")


def test_megatron_import_refuses_what_is_not_modelled():
    base = export_plan(_plan(fsdp_shard_size=8, fsdp_impl="megatron"), "megatron").command
    with pytest.raises(ConfigError, match="Hybrid-FSDP"):
        import_megatron(base.replace("no_shard", "optim"), device="h100-sxm")
    dist = export_plan(_plan(zero=1), "megatron").command
    with pytest.raises(ConfigError, match="without --use-megatron-fsdp"):
        import_megatron(dist + " --num-distributed-optimizer-instances 2", device="h100-sxm")
