"""Training exporters against the pinned launcher definitions (tests/data/launchers/*.json,
written by benchmarks/pin_launcher_args.py), and Megatron export -> import round trips."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib
import yaml

from hwmodels.errors import ConfigError
from hwmodels.parallel import stage_layer_counts
from planners.export import export_plan
from planners.export.importers import import_megatron
from simulator.training import load_training_scenario, simulate_training

DATA = Path(__file__).resolve().parents[1] / "data" / "launchers"
ROOT = Path(__file__).resolve().parents[2]
PINNED = {t: json.loads((DATA / f"{t}.json").read_text())
          for t in ("megatron", "torchtitan", "deepspeed", "nemo")}
TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool}

PLANS = {
    "tp-pp-zero1-full": ("llama3-70b", 64, {"tp": 8, "pp": 4, "zero": 1, "recompute": "full",
                                            "sequence_parallel": True}, 1),
    "vpp": ("llama3-70b", 64, {"tp": 4, "pp": 4, "vpp": 2, "zero": 1}, 1),
    "uneven-first-last": ("llama3-70b", 64, {"tp": 8, "pp": 4, "first_stage_layers": 17,
                                             "last_stage_layers": 17}, 1),
    "balanced-uneven": ("llama3-70b", 48, {"tp": 8, "pp": 6, "vpp": 3}, 1),
    "cp-selective": ("llama3-8b", 32, {"tp": 2, "cp": 2, "recompute": "selective"}, 2),
    "cp-selective-op": ("llama3-8b", 32, {"tp": 2, "cp": 2, "recompute": "selective-op"}, 2),
    "fsdp2": ("llama3-8b", 16, {"tp": 2, "zero": 3}, 1),
}


# plans Megatron-LM can say (torchtitan's per-op AC is not one of its recompute modes)
MEGATRON_PLANS = sorted(k for k, v in PLANS.items() if v[2].get("recompute") != "selective-op")


def _plan(model: str, n: int, par: dict, mb: int = 1, **training):
    raw = {"model": model, "cluster": {"device": "h100-sxm", "num_devices": n},
           "training": {"seq_len": 4096, "global_batch": 256, "micro_batch": mb, **training},
           "parallelism": {"dp": "auto", **par}}
    return load_training_scenario(raw).plan()


def _megatron_parser() -> argparse.ArgumentParser:
    """An argparse parser built from the pinned Megatron flag definitions."""
    ap = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag, spec in PINNED["megatron"]["flags"].items():
        if spec["type"] == "bool":
            ap.add_argument(flag, action="store_true")
            continue
        kw = {"type": {"int": int, "float": float}.get(spec["type"], str)}
        if "choices" in spec:
            kw["choices"] = spec["choices"]
        if "nargs" in spec:
            kw["nargs"] = spec["nargs"]
        ap.add_argument(flag, **kw)
    return ap


@pytest.mark.parametrize("name", MEGATRON_PLANS)
def test_megatron_args_parse_with_pinned_parser(name):
    art = export_plan(_plan(*PLANS[name]), "megatron")
    flags = [a for a in art.args if a.startswith("--")]
    assert set(flags) <= set(PINNED["megatron"]["flags"]), set(flags) - set(PINNED["megatron"]["flags"])
    ns = _megatron_parser().parse_args(list(art.args))  # SystemExit on a bad type/choice
    p = PLANS[name][2]
    assert ns.tensor_model_parallel_size == p.get("tp", 1)
    assert ns.pipeline_model_parallel_size == p.get("pp", 1)
    tokens = shlex.split(art.command)
    assert tokens[tokens.index("pretrain_gpt.py") + 1:] == list(art.args)


def test_megatron_rejects_renamed_flag():
    with pytest.raises(SystemExit):
        _megatron_parser().parse_args(["--tensor-parallel-size", "8"])


@pytest.mark.parametrize("name", MEGATRON_PLANS)
def test_megatron_round_trip_same_plan(name):
    plan = _plan(*PLANS[name])
    art = export_plan(plan, "megatron")
    raw = import_megatron(art.command, device="h100-sxm")
    back = load_training_scenario(yaml.safe_load(yaml.safe_dump(raw))).plan()
    assert back.model == plan.model and back.training == plan.training
    assert back.cluster == plan.cluster
    split = ("stage_layers", "first_stage_layers", "last_stage_layers")
    assert stage_layer_counts(back.model.num_layers, back.parallel) == \
        stage_layer_counts(plan.model.num_layers, plan.parallel)
    assert replace(back.parallel, **{k: getattr(plan.parallel, k) for k in split}) == plan.parallel


def test_zero3_non_fsdp2_megatron_names_allowed_targets():
    plan = _plan("llama3-8b", 16, {"pp": 2, "zero": 3})
    with pytest.raises(ConfigError, match="torchtitan, deepspeed"):
        export_plan(plan, "megatron")


def test_llama3_405b_import_matches_hand_written_scenario():
    raw = import_megatron((DATA / "llama3-405b-megatron.sh").read_text(), device="h100-sxm")
    assert raw["model"] == "llama3.1-405b" and raw["cluster"]["num_devices"] == 16384
    assert (raw["parallelism"]["tp"], raw["parallelism"]["pp"], raw["parallelism"]["cp"]) == (8, 16, 1)
    hand = yaml.safe_load((ROOT / "simulator/scenarios/llama3-405b-16k-54d.yaml").read_text())
    hand.pop("run")
    # the published split without interleaving (Megatron's first/last flags need vpp | 7)
    hand["parallelism"].update(vpp=1, schedule="1f1b")
    raw["cluster"].update(intra_node="nvlink4", inter_node="roce-400g", devices_per_node=8)
    imported = load_training_scenario(raw).plan()
    written = load_training_scenario(hand).plan()
    assert stage_layer_counts(126, imported.parallel) == (7,) + (8,) * 14 + (7,)
    a, b = simulate_training(imported), simulate_training(written)
    assert a.iteration_time_s == pytest.approx(b.iteration_time_s, rel=0, abs=1e-9)


def test_llama3_405b_scenario_as_written_round_trips_through_megatron_layout():
    """The bundled 405B scenario (vpp 4, balanced 126-layer split) exports as a pipeline layout
    and imports back to a plan that simulates identically."""
    hand = yaml.safe_load((ROOT / "simulator/scenarios/llama3-405b-16k-54d.yaml").read_text())
    hand.pop("run")
    written = load_training_scenario(hand).plan()
    args = list(export_plan(written, "megatron").args)
    assert "--pipeline-model-parallel-layout" in args
    raw = import_megatron(export_plan(written, "megatron").command, device="h100-sxm")
    raw["cluster"].update(intra_node="nvlink4", inter_node="roce-400g", devices_per_node=8)
    imported = load_training_scenario(raw).plan()
    assert (imported.parallel.vpp, stage_layer_counts(126, imported.parallel)) == \
        (4, stage_layer_counts(126, written.parallel))
    a, b = simulate_training(imported), simulate_training(written)
    assert a.iteration_time_s == pytest.approx(b.iteration_time_s, rel=0, abs=1e-9)


@pytest.mark.parametrize("name", ["tp-pp-zero1-full", "fsdp2", "cp-selective-op"])
def test_torchtitan_toml_keys_are_pinned(name):
    plan = _plan(*PLANS[name])
    try:
        art = export_plan(plan, "torchtitan")
    except ConfigError as err:
        assert "zero" in str(err)
        return
    cfg = tomllib.loads(art.files[0].text)
    pinned = PINNED["torchtitan"]["sections"]
    for section, body in cfg.items():
        for key, value in body.items():
            spec = pinned[section][key]
            if spec.get("nargs"):
                assert isinstance(value, list)
                continue
            assert isinstance(value, TYPES[spec["type"]]), (section, key, value)
            assert value in spec.get("choices", [value]), (section, key, value)
    assert cfg["parallelism"]["tensor_parallel_degree"] == plan.parallel.tp


def test_deepspeed_config_keys_are_pinned():
    plan = _plan("llama3-8b", 16, {"zero": 3, "offload_optimizer": True, "fsdp_bucket_mb": 50})
    cfg = json.loads(export_plan(plan, "deepspeed").files[0].text)
    pin = PINNED["deepspeed"]
    for key in ("train_batch_size", "train_micro_batch_size_per_gpu",
                "gradient_accumulation_steps", "communication_data_type"):
        assert isinstance(cfg[key], TYPES[pin["top"][key]["type"]])
    assert cfg["communication_data_type"] in pin["top"]["communication_data_type"]["choices"]
    assert cfg["train_batch_size"] == cfg["train_micro_batch_size_per_gpu"] * \
        cfg["gradient_accumulation_steps"] * 16
    for key, value in cfg["zero_optimization"].items():
        if key == "offload_optimizer":
            for k, v in value.items():
                assert isinstance(v, TYPES[pin["offload_optimizer"][k]["type"]])
            assert value["device"] in pin["offload_optimizer"]["device"]["choices"]
            continue
        assert isinstance(value, TYPES[pin["zero_optimization"][key]["type"]]), key
    assert cfg["zero_optimization"]["stage"] == 3
    assert set(cfg["bf16"]) <= set(pin["bf16"])


def test_deepspeed_refuses_model_parallel_plans():
    with pytest.raises(ConfigError, match="megatron, torchtitan"):
        export_plan(_plan(*PLANS["vpp"]), "deepspeed")


def test_nemo_overrides_are_pinned_keys():
    art = export_plan(_plan(*PLANS["tp-pp-zero1-full"]), "nemo")
    keys = PINNED["nemo"]["keys"]
    for item in art.args:
        key, _, value = item.partition("=")
        assert key in keys, key
        if keys[key]["type"] == "int":
            int(value)
        if keys[key]["type"] == "bool":
            assert value in ("true", "false")


@pytest.mark.parametrize("name", ["tp-pp-zero1-full", "fsdp2", "cp-selective-op", "vpp",
                                  "uneven-first-last", "balanced-uneven"])
def test_torchtitan_round_trip_same_plan(name):
    from planners.export.importers import import_torchtitan

    model, n, par, mb = PLANS[name]
    par = {**par, "zero": 3 if par.get("zero") == 3 else 0}
    plan = _plan(model, n, par, mb, kernels="compiled")  # torchtitan's kernels (torch.compile)
    if name == "balanced-uneven":  # 4x5+5x8+4x5 virtual stages: not torchtitan's one shape
        with pytest.raises(ConfigError, match="megatron"):
            export_plan(plan, "torchtitan")
        return
    text = export_plan(plan, "torchtitan").files[0].text
    back = load_training_scenario(import_torchtitan(text, device="h100-sxm")).plan()
    assert back.model == plan.model and back.training == plan.training
    split = ("stage_layers", "first_stage_layers", "last_stage_layers", "overlap_grad_reduce",
             "overlap_param_gather", "sequence_parallel")
    assert back.parallel.sequence_parallel == (plan.parallel.tp > 1)
    assert stage_layer_counts(back.model.num_layers, back.parallel) == \
        stage_layer_counts(plan.model.num_layers, plan.parallel)
    assert replace(back.parallel, **{k: getattr(plan.parallel, k) for k in split}) == plan.parallel


@pytest.mark.parametrize(("kernels", "loss", "enable", "components"), [
    ("eager", "eager-fp32", False, None), ("eager", "fused", True, ["loss"]),
    ("compiled", "eager-fp32", True, ["model"]), ("compiled", "fused", True, ["model", "loss"])])
def test_torchtitan_compile_section_round_trips_the_stack(kernels, loss, enable, components):
    """[compile] says what the plan was costed with: torchtitan at 9dec370 (the TITAN rows'
    stack) compiles neither by default and runs the loss as F.cross_entropy(logits.float())."""
    from planners.export.importers import import_torchtitan

    plan = _plan("llama3-8b", 8, {"zero": 3}, kernels=kernels, loss_impl=loss)
    text = export_plan(plan, "torchtitan").files[0].text
    section = tomllib.loads(text)["compile"]
    assert section["enable"] is enable
    if enable:
        assert section["components"] == components
    assert set(section) <= set(PINNED["torchtitan"]["sections"]["compile"])
    back = load_training_scenario(import_torchtitan(text, device="h100-sxm")).plan()
    assert back.training == plan.training


def test_torchtitan_export_of_fused_kernels_compiles_and_says_so():
    """torchtitan has no Megatron/TE fused kernels: a fused-costed plan exports with the
    model and loss compiled (priced the same) and a note naming the flag that costs it as run."""
    art = export_plan(_plan("llama3-8b", 8, {"zero": 3}), "torchtitan")
    assert tomllib.loads(art.files[0].text)["compile"] == {"enable": True,
                                                          "components": ["model", "loss"]}
    assert any("--kernels compiled|eager" in note for note in art.assumptions)


@pytest.mark.parametrize(("section", "key"), [({"enable": "yes"}, "compile.enable"),
                                              ({"enable": True, "components": ["opt"]},
                                               "compile.components")])
def test_torchtitan_import_refuses_a_bad_compile_section(section, key):
    from planners.export.importers import import_torchtitan

    cfg = {"model": {"flavor": "llama3-8b"}, "activation_checkpoint": {"mode": "none"},
           "compile": section}
    text = "\n".join(f"[{sec}]\n" + "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in body.items()) for sec, body in cfg.items())
    with pytest.raises(ConfigError) as err:
        import_torchtitan(text, device="h100-sxm")
    assert err.value.key == key


def test_megatron_refuses_zero2_it_cannot_launch():
    """Megatron's distributed optimizer keeps full fp32 grads: a ZeRO-2 plan would need more
    HBM than simulated, so the exporter names the target that has ZeRO-2."""
    plan = _plan("llama3-8b", 16, {"zero": 2})
    with pytest.raises(ConfigError, match="deepspeed"):
        export_plan(plan, "megatron")
    assert export_plan(plan, "deepspeed").command


def test_recompute_modes_map_to_each_launchers_own():
    """Megatron's selective (core attention) and torchtitan's per-op AC are different policies
    with different memory and compute: each exporter says only its own and names the other."""
    megatron_sel = _plan(*PLANS["cp-selective"])
    titan_sel = _plan(*PLANS["cp-selective-op"])
    assert "--recompute-granularity" in export_plan(megatron_sel, "megatron").args
    with pytest.raises(ConfigError, match="selective-op"):
        export_plan(megatron_sel, "torchtitan")
    ac = tomllib.loads(export_plan(titan_sel, "torchtitan").files[0].text)["activation_checkpoint"]
    assert ac == {"mode": "selective", "selective_ac_option": "op"}
    for target in ("megatron", "nemo"):
        with pytest.raises(ConfigError, match="torchtitan"):
            export_plan(titan_sel, target)


@pytest.mark.parametrize(("option", "recompute"), [("op", "selective-op"), ("1", "full")])
def test_torchtitan_import_reads_the_selective_option(option, recompute):
    from planners.export.importers import import_torchtitan

    text = export_plan(_plan(*PLANS["cp-selective-op"]), "torchtitan").files[0].text
    text = text.replace('selective_ac_option = "op"', f'selective_ac_option = "{option}"')
    assert import_torchtitan(text, device="h100-sxm")["parallelism"]["recompute"] == recompute


def test_torchtitan_import_refuses_layer_frequency_ac():
    """v0.2.2's default selective_ac_option "2" (every second layer fully checkpointed) is a
    policy fleetsim does not model: one clear error naming the key, not a silent mapping."""
    from planners.export.importers import import_torchtitan

    text = export_plan(_plan(*PLANS["cp-selective-op"]), "torchtitan").files[0].text
    for new in ('selective_ac_option = "2"', ""):
        with pytest.raises(ConfigError, match="activation_checkpoint.selective_ac_option"):
            import_torchtitan(text.replace('selective_ac_option = "op"', new),
                              device="h100-sxm")


def test_grad_reduce_dtype_reaches_the_launchers():
    """bf16 gradient reduction: Megatron's --grad-reduce-in-bf16 (read back by the importer);
    torchtitan reduces in float32 only, so a bf16 plan is refused naming the key, and its
    job.toml states the float32 reduce it was costed with."""
    from planners.export.importers import import_torchtitan

    plan = _plan("llama3-8b", 16, {"zero": 1, "grad_reduce_dtype": "bf16"})
    art = export_plan(plan, "megatron")
    assert "--grad-reduce-in-bf16" in art.args
    assert "--grad-reduce-in-bf16" in PINNED["megatron"]["flags"]
    back = load_training_scenario(import_megatron(art.command, device="h100-sxm")).plan()
    assert str(back.parallel.grad_reduce_dtype) == "bf16"
    assert "--grad-reduce-in-bf16" not in export_plan(_plan("llama3-8b", 16, {"zero": 1}),
                                                      "megatron").args
    with pytest.raises(ConfigError) as err:
        export_plan(_plan("llama3-8b", 8, {"zero": 3, "grad_reduce_dtype": "bf16"}),
                    "torchtitan")
    assert err.value.key == "parallelism.grad_reduce_dtype"
    text = export_plan(_plan("llama3-8b", 8, {"zero": 3}), "torchtitan").files[0].text
    reduce = tomllib.loads(text)["training"]["mixed_precision_reduce"]
    assert reduce in PINNED["torchtitan"]["sections"]["training"]["mixed_precision_reduce"][
        "choices"]
    with pytest.raises(ConfigError) as err:
        import_torchtitan(text.replace('"float32"', '"bfloat16"'), device="h100-sxm")
    assert err.value.key == "training.mixed_precision_reduce"


@pytest.mark.parametrize(("par", "want"), [
    ({"zero": 1}, "fp32"),  # costed as Megatron's fp32 main grads
    ({"zero": 1, "grad_reduce_dtype": "bf16"}, "bf16"),
    ({"zero": 3, "fsdp_impl": "deepspeed"}, "bf16"),  # DeepSpeed ZeRO-3: the model dtype
    ({"zero": 3, "fsdp_impl": "deepspeed", "grad_reduce_dtype": "fp32"}, "fp32"),
])
def test_deepspeed_communication_dtype_is_what_was_costed(par, want):
    """DeepSpeed left alone reduces in the model dtype; the exported config names the dtype
    the plan was costed with instead."""
    cfg = json.loads(export_plan(_plan("llama3-8b", 16, par), "deepspeed").files[0].text)
    assert cfg["communication_data_type"] == want
