"""Serving exporters (vLLM, SGLang, TensorRT-LLM, Dynamo on k8s): every exported flag and config
key exists in the pinned launcher definitions (tests/data/launchers/*.json) with a value of the
right type/choice, the launched KV budget is the simulated one, and unsupported settings exit 2.
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from _launcher_pins import check_command, check_flags, check_mapping, load_pin  # tests/planners

from fleetsim.api import load_scenario
from hwmodels.errors import ConfigError
from planners.export import export_plan
from simulator.serving import load_serving_scenario

SCEN = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
DISAGG = SCEN / "llama3-70b-h100-disagg-mooncake.yaml"
DSV3 = SCEN / "deepseek-v3-h200-ep16-serve.yaml"
MIXTRAL = SCEN / "mixtral-8x7b-h100-tp2-ep2-serve.yaml"
SERVING = [DISAGG, DSV3, MIXTRAL, SCEN / "llama2-70b-h100-azure.yaml",
           SCEN / "llama3-8b-hetero-autoscale.yaml"]
PIN = {"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm"}


def _plan(path: Path = DISAGG, **serving: Any) -> Any:
    """A bundled serving scenario with serving keys overridden."""
    data = yaml.safe_load(path.read_text())
    data["serving"].update(serving)
    return load_serving_scenario(data, file=str(path))


def _flag(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# --- every bundled serving scenario, every engine target, against the pins -------------------

@pytest.mark.parametrize("path", SERVING, ids=lambda p: p.stem)
@pytest.mark.parametrize("target", ["vllm", "sglang", "trtllm"])
def test_every_pool_command_conforms_to_the_pinned_flags(path: Path, target: str) -> None:
    plan = load_scenario(path)
    try:
        art = export_plan(plan, target)
    except ConfigError as err:  # only the documented refusal: a batching the engine lacks
        assert err.key == "--to" and "batching" in err.message, err
        assert target == "trtllm" and str(plan.serving.scheduler) == "vllm"
        return
    pin = load_pin(PIN[target])
    assert art.extra["pools"], art
    for pool in art.extra["pools"]:
        assert check_command(pool["command"], pin) == [], pool["command"]
        assert shlex.split(pool["command"]) == pool["args"]
    for line in art.command.splitlines():  # launch.sh: comments, pool lines, orchestrator
        if line.startswith("trtllm-serve disaggregated"):
            assert check_command(line, pin["disaggregated"]) == [], line
            continue
        assert line.startswith("#") or check_command(line, pin) == []
    if target == "trtllm":
        for f in art.files:
            fields = (pin["disaggregated_config"] if f.name == "trtllm-disaggregated.yaml"
                      else pin["llm_args"])
            assert check_mapping(yaml.safe_load(f.text), fields) == [], f.text


def test_llama3_70b_disagg_vllm_pools() -> None:
    art = export_plan(_plan(), "vllm")
    pre, dec = art.extra["pools"]
    assert (pre["role"], pre["replicas"], pre["gpus_per_replica"]) == ("prefill", 12, 4)
    assert (dec["role"], dec["replicas"], dec["gpus_per_replica"]) == ("decode", 4, 4)
    for pool, role in ((pre, "kv_producer"), (dec, "kv_consumer")):
        argv = pool["args"]
        assert _flag(argv, "--tensor-parallel-size") == "4"
        assert "--enable-chunked-prefill" in argv  # scheduler sarathi
        assert _flag(argv, "--max-num-batched-tokens") == "512"  # its chunk_size
        assert "--enable-prefix-caching" in argv
        assert _flag(argv, "--max-model-len") == "131072"
        cfg = json.loads(_flag(argv, "--kv-transfer-config"))
        assert cfg == {"kv_connector": "NixlConnector", "kv_role": role}
    assert art.command.count("vllm serve") == 2


def test_colocated_vllm_without_chunking_and_prefix_cache() -> None:
    plan = _plan(MIXTRAL)
    argv = export_plan(plan, "vllm").extra["pools"][0]["args"]
    assert "--no-enable-chunked-prefill" in argv and "--no-enable-prefix-caching" in argv
    assert _flag(argv, "--max-num-batched-tokens") == str(plan.serving.max_batch_tokens)
    assert "--enable-expert-parallel" in argv and "--kv-transfer-config" not in argv


def test_deepseek_dp_attention_layouts() -> None:
    plan = load_scenario(DSV3)
    v = export_plan(plan, "vllm").extra["pools"][0]["args"]
    assert (_flag(v, "--tensor-parallel-size"), _flag(v, "--data-parallel-size")) == ("1", "16")
    assert _flag(v, "--quantization") == "fp8" and _flag(v, "--data-parallel-size-local") == "8"
    s = export_plan(plan, "sglang").extra["pools"][0]["args"]
    assert "--enable-dp-attention" in s
    assert (_flag(s, "--tp-size"), _flag(s, "--dp-size"), _flag(s, "--ep-size")) == \
        ("16", "16", "16")
    assert (_flag(s, "--nnodes"), _flag(s, "--page-size")) == ("2", "64")


# --- the pin check itself can fail -----------------------------------------------------------

def test_a_renamed_pinned_flag_fails_the_check() -> None:
    line = export_plan(_plan(), "vllm").extra["pools"][0]["command"]
    pin = load_pin("vllm")
    assert check_command(line, pin) == []
    renamed = copy.deepcopy(pin)
    renamed["flags"]["--max-num-sequences"] = renamed["flags"].pop("--max-num-seqs")
    assert check_command(line, renamed)[0] == "unknown flag --max-num-seqs"
    narrowed = copy.deepcopy(pin)
    narrowed["flags"]["--kv-transfer-config"]["fields"]["kv_role"]["choices"] = ["kv_both"]
    assert any("kv_role" in e for e in check_command(line, narrowed))


def test_wrong_types_and_choices_fail_the_check() -> None:
    flags = load_pin("vllm")["flags"]
    assert check_flags(["--tensor-parallel-size", "four"], flags)
    assert check_flags(["--kv-cache-dtype", "fp9"], flags)
    assert check_flags(["--gpu-memory-utilization", "1.5"], flags)
    assert check_flags(["--no-max-num-seqs"], flags)  # --no- only for BooleanOptional flags
    assert check_flags(["--no-enable-prefix-caching"], flags) == []
    schema = load_pin("trtllm")["llm_args"]
    assert check_mapping({"kv_cache_config": {"enable_block_reuse": "yes"}}, schema)
    assert check_mapping({"kv_cache_cfg": {}}, schema) == ["unknown key kv_cache_cfg"]


# --- the launched KV budget is the simulated one ---------------------------------------------

def test_sglang_and_trtllm_fractions_give_the_simulated_kv_bytes() -> None:
    from planners.export.serve_common import pools_of

    plan = _plan()
    pool = pools_of(plan)[0]
    s = float(_flag(export_plan(plan, "sglang").extra["pools"][0]["args"],
                    "--mem-fraction-static"))
    t = float(_flag(export_plan(plan, "trtllm").extra["pools"][0]["args"],
                    "--kv_cache_free_gpu_memory_fraction"))
    m, w = pool.device_memory_bytes, pool.weight_bytes
    assert 0 < s * m - w <= pool.kv_bytes <= s * m - w + 1e-3 * m
    assert 0 < t * (m - w) <= pool.kv_bytes <= (t + 1e-3) * (m - w)
    assert s < plan.serving.gpu_memory_utilization  # fleetsim's activation reserve comes off


def test_trtllm_yaml_follows_the_plan() -> None:
    art = export_plan(_plan(kv_dtype="fp8", admission="no-evict"), "trtllm")
    pre = yaml.safe_load(art.files[0].text)
    dec = yaml.safe_load(art.files[1].text)
    assert pre["kv_cache_config"]["dtype"] == "fp8"
    assert pre["kv_cache_config"]["enable_block_reuse"] is True  # prefix_caching: true
    assert pre["scheduler_config"]["capacity_scheduler_policy"] == "GUARANTEED_NO_EVICT"
    assert pre["disable_overlap_scheduler"] is True and "disable_overlap_scheduler" not in dec
    assert pre["cache_transceiver_config"] == {"backend": "DEFAULT"}
    assert [f.name for f in art.files] == ["trtllm-prefill.yaml", "trtllm-decode.yaml",
                                           "trtllm-disaggregated.yaml"]


# --- engine presets and settings a target lacks ----------------------------------------------

def test_a_different_simulated_engine_is_allowed_and_said() -> None:
    art = export_plan(_plan(engine="sglang"), "vllm")
    assert any("simulated engine sglang differs from the target vllm" in a
               for a in art.assumptions)
    same = export_plan(_plan(engine="sglang"), "sglang")
    assert not any("differs" in a for a in same.assumptions)


def test_a_scheduler_the_target_lacks_is_a_config_error_naming_the_targets() -> None:
    with pytest.raises(ConfigError) as err:
        export_plan(_plan(MIXTRAL, scheduler="orca"), "vllm")
    assert err.value.key == "--to" and err.value.allowed == "trtllm, dynamo-k8s"
    with pytest.raises(ConfigError) as err:
        export_plan(_plan(MIXTRAL, scheduler="vllm"), "trtllm")
    assert err.value.allowed == "vllm, sglang, dynamo-k8s"
    with pytest.raises(ConfigError) as err:
        export_plan(_plan(MIXTRAL, scheduler="static"), "sglang")
    assert "none" in err.value.allowed


def test_settings_without_a_launcher_form_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="multi-step") as err:
        export_plan(_plan(MIXTRAL, scheduler="vllm", num_scheduler_steps=4), "vllm")
    assert err.value.key == "serving.num_scheduler_steps"
    argv = export_plan(_plan(MIXTRAL, scheduler="vllm", num_scheduler_steps=4),
                       "sglang").extra["pools"][0]["args"]
    assert _flag(argv, "--num-continuous-decode-steps") == "4"
    with pytest.raises(ConfigError) as err:
        export_plan(_plan(MIXTRAL, dtype="int4"), "sglang")
    assert err.value.key == "serving.dtype"
    with pytest.raises(ConfigError) as err:  # vLLM's EP spans every rank: ep must be tp
        export_plan(_plan(MIXTRAL, tp=4, ep=2, replicas=2), "vllm")
    assert err.value.key == "serving.ep"
    assert export_plan(_plan(MIXTRAL, tp=4, ep=2, replicas=2), "sglang")
    with pytest.raises(ConfigError):  # a training target for a serving plan
        export_plan(_plan(), "megatron")
    train = load_scenario(SCEN / "gpt3-175b-a100.yaml").plan()
    for target in ("vllm", "sglang", "trtllm", "dynamo-k8s"):  # and the other way round
        with pytest.raises(ConfigError, match="launches"):
            export_plan(train, target)


# --- Dynamo DynamoGraphDeployment ------------------------------------------------------------

def _graph(art: Any) -> dict[str, Any]:
    docs = list(yaml.safe_load_all(art.files[0].text))
    return docs[-1]


@pytest.mark.parametrize("backend", ["vllm", "sglang", "trtllm"])
def test_dynamo_graph_conforms_to_the_pinned_crd(backend: str) -> None:
    pin = load_pin("dynamo")
    art = export_plan(_plan(), "dynamo-k8s", backend=backend)
    assert art.command == "kubectl apply -f dynamo-graph.yaml"
    g = _graph(art)
    assert (g["apiVersion"], g["kind"]) == (pin["api_version"], pin["kind"])
    assert check_mapping(g, pin["schema"]) == []
    svcs = g["spec"]["services"]
    workers = {k: v for k, v in svcs.items() if v["componentType"] == "worker"}
    roles = {v["subComponentType"]: v for v in workers.values()}
    assert (roles["prefill"]["replicas"], roles["decode"]["replicas"]) == (12, 4)
    assert roles["prefill"]["resources"]["limits"]["gpu"] == "4"
    engine_pin = load_pin(PIN[backend])
    for svc in svcs.values():
        main = svc["extraPodSpec"]["mainContainer"]
        module = main["command"][-1]
        wpin = pin["workers"][module]
        flags = {**wpin["flags"], **(engine_pin["flags"] if "engine" in wpin else {})}
        assert check_flags(main["args"], flags) == [], (module, main["args"])
    if backend == "trtllm":  # engine YAMLs in a ConfigMap, keys from the pinned LlmArgs
        cm = next(yaml.safe_load_all(art.files[0].text))
        assert cm["kind"] == "ConfigMap"
        for text in cm["data"].values():
            assert check_mapping(yaml.safe_load(text), engine_pin["llm_args"]) == []


def test_heterogeneous_groups_are_one_service_each() -> None:
    plan = load_scenario(SCEN / "llama3-8b-hetero-autoscale.yaml")
    art = export_plan(plan, "dynamo-k8s")
    svcs = _graph(art)["spec"]["services"]
    assert list(svcs) == ["Frontend", "H100Worker", "A100Worker", "L4Worker"]
    assert [svcs[k]["replicas"] for k in list(svcs)[1:]] == [g.count for g in plan.groups]
    assert check_mapping(_graph(art), load_pin("dynamo")["schema"]) == []
    assert any("autoscale" in a for a in art.assumptions)
    fractions = {p["device"]: _flag(p["args"], "--mem-fraction-static")
                 for p in export_plan(plan, "sglang").extra["pools"]}
    assert fractions["h100-sxm"] == fractions["a100-80gb"]  # both 80 GB
    assert fractions["l4"] != fractions["h100-sxm"]  # per device memory, not one number


def test_dynamo_multinode_replica_and_default_backend() -> None:
    plan = load_scenario(DSV3)
    art = export_plan(plan, "dynamo-k8s")
    assert art.extra["backend"] == "vllm"  # unset engine: vLLM workers
    (worker,) = [v for v in _graph(art)["spec"]["services"].values()
                 if v["componentType"] == "worker"]
    assert worker["multinode"] == {"nodeCount": 2}
    assert worker["resources"]["limits"]["gpu"] == "8"
    assert "subComponentType" not in worker
    assert "--data-parallel-address" not in worker["extraPodSpec"]["mainContainer"]["args"]
    assert export_plan(_plan(engine="sglang"), "dynamo-k8s").extra["backend"] == "sglang"
    with pytest.raises(ConfigError) as err:
        export_plan(plan, "dynamo-k8s", backend="trtllm")  # vllm batching
    assert "vllm, sglang" in err.value.allowed
    with pytest.raises(ConfigError):
        export_plan(plan, "dynamo-k8s", backend="tgi")


# --- files and the plan serve command --------------------------------------------------------

def test_artefact_write(tmp_path: Path) -> None:
    art = export_plan(_plan(), "trtllm")
    written = art.write(tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["launch.sh", "trtllm-decode.yaml", "trtllm-disaggregated.yaml",
                     "trtllm-prefill.yaml"]
    sh = (tmp_path / "out" / "launch.sh").read_text()
    assert sh.count("trtllm-serve meta-llama/Meta-Llama-3-70B") == 2
    assert "# assumption:" in sh


PLAN_SERVE = ["plan", "serve", "--model", "llama3-70b", "--devices", "h100-sxm", "--tp", "4",
              "--schedulers", "sarathi", "--chunk-sizes", "512", "--max-num-seqs", "256",
              "--disagg", "", "--confirm-top", "0", "--slo-ttft", "2", "--slo-tpot", "0.1"]


def test_plan_serve_exports_the_best_plan(cli, tmp_path: Path) -> None:
    out = tmp_path / "launch"
    code, stdout, err = cli(*PLAN_SERVE, "--export", "vllm", "--export-out", str(out), "--json")
    assert code == 0, err
    res = json.loads(stdout)
    best = res["plans"][0]
    exp = res["export"]
    assert exp["target"] == "vllm"
    assert exp["pools"][0]["replicas"] == best["units"]
    argv = exp["pools"][0]["args"]
    assert _flag(argv, "--tensor-parallel-size") == str(best["tp"])
    assert _flag(argv, "--max-num-seqs") == str(best["max_num_seqs"])
    assert check_command(exp["pools"][0]["command"], load_pin("vllm")) == []
    assert (out / "launch.sh").exists()


def test_plan_serve_export_refusals(cli) -> None:
    code, _, err = cli("plan", "serve", "--model", "llama3-70b", "--export", "megatron")
    assert code == 2 and "launches training" in err
    code, _, err = cli("plan", "serve", "--model", "llama3-70b", "--export-out", "x")
    assert code == 2 and "--export-out needs --export" in err
    code, _, err = cli(*PLAN_SERVE[:9], "vllm", *PLAN_SERVE[10:], "--export", "trtllm")
    assert code == 2 and "batching" in err and "Traceback" not in err


def test_pin_recheck_script_finds_renamed_names(tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "pin_serving_args.py"
    spec = importlib.util.spec_from_file_location("pin_serving_args", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pin = load_pin("trtllm")
    good = "\n".join(f'@click.option("{f}")' for f in pin["flags"])
    assert mod.missing_names(pin, {"A": good}) == []
    renamed = good.replace('"--max_batch_size"', '"--max_batch"')
    assert mod.missing_names(pin, {"A": renamed}) == ["--max_batch_size (source A)"]
    src = tmp_path / "serve.py"
    src.write_text(renamed)
    assert mod.main(["trtllm", f"A={src}"]) == 1


def test_trtllm_disaggregated_orchestrator_lists_every_replica() -> None:
    """A disaggregated plan gets `trtllm-serve disaggregated -c FILE` with one context URL per
    prefill replica and one generation URL per decode replica (12 + 4 on the Mooncake scenario)."""
    art = export_plan(_plan(DISAGG), "trtllm")
    cfg = yaml.safe_load(next(f.text for f in art.files if f.name == "trtllm-disaggregated.yaml"))
    assert cfg["context_servers"]["num_instances"] == len(cfg["context_servers"]["urls"]) == 12
    assert cfg["generation_servers"]["num_instances"] == 4
    assert art.command.splitlines()[-1] == ("trtllm-serve disaggregated --config_file "
                                            "trtllm-disaggregated.yaml")
    pin = load_pin(PIN["trtllm"])
    broken = {**pin["disaggregated_config"]}
    broken.pop("generation_servers")  # a renamed key upstream must fail the check
    assert check_mapping(cfg, broken) != []
