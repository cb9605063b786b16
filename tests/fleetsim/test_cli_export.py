"""`fleetsim export`, `fleetsim import` and `plan train --export` end to end (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "launchers"
ROOT = Path(__file__).resolve().parents[2]
S405 = str(ROOT / "simulator/scenarios/llama3-405b-16k-54d.yaml")


def _train_yaml(tmp_path: Path) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "model": "llama3-70b", "cluster": {"device": "h100-sxm", "num_devices": 64},
        "training": {"seq_len": 4096, "global_batch": 256},
        "parallelism": {"tp": 8, "pp": 4, "zero": 1, "recompute": "full"}}))
    return str(path)


def test_export_megatron_writes_files(cli_json, tmp_path):
    out = cli_json("export", S405, "--to", "megatron", "--out", str(tmp_path / "o"))
    assert "--pipeline-model-parallel-size" in out["args"]
    assert out["command"].startswith("torchrun --nnodes 2048 --nproc-per-node 8")
    names = {Path(p).name for p in out["written"]}
    assert names == {"megatron_args.txt", "sbatch.sh", "launch.sh"}
    assert "#SBATCH --nodes=2048" in (tmp_path / "o" / "sbatch.sh").read_text()


def test_export_unknown_target_lists_valid(cli, tmp_path):
    code, _, err = cli("export", _train_yaml(tmp_path), "--to", "slurm")
    assert code == 2 and "megatron" in err and "torchtitan" in err and len(err.strip().splitlines()) == 1


def test_export_serving_target_on_training_scenario(cli, tmp_path):
    code, _, err = cli("export", _train_yaml(tmp_path), "--to", "vllm")
    assert code == 2 and "deepspeed" in err


def test_export_set_override(cli_json, tmp_path):
    out = cli_json("export", _train_yaml(tmp_path), "--to", "torchtitan",
                   "--set", "parallelism.zero=3", "--set", "parallelism.pp=1",
                   "--set", "parallelism.tp=2")
    toml = out["files"]["job.toml"]
    assert "data_parallel_shard_degree = 32" in toml and "tensor_parallel_degree = 2" in toml


def test_import_round_trip_simulates(cli, cli_json, tmp_path):
    exported = cli_json("export", _train_yaml(tmp_path), "--to", "megatron")
    args = tmp_path / "args.sh"
    args.write_text(exported["command"] + "\n")
    scen = tmp_path / "imported.yaml"
    code, _, err = cli("import", str(args), "--from", "megatron", "--device", "h100-sxm",
                       "--out", str(scen))
    assert code == 0, err
    a = cli_json("simulate", "train", str(scen))
    b = cli_json("simulate", "train", _train_yaml(tmp_path))
    assert a["iteration_time_s"] == b["iteration_time_s"]


def test_import_405b(cli_json):
    out = cli_json("import", str(DATA / "llama3-405b-megatron.sh"), "--from", "megatron",
                   "--device", "h100-sxm")
    sc = out["scenario"]
    assert sc["model"] == "llama3.1-405b" and sc["parallelism"]["first_stage_layers"] == 7
    assert sc["training"]["global_batch"] * sc["training"]["seq_len"] == 2048 * 8192


def test_import_unknown_flag_named(cli, tmp_path):
    f = tmp_path / "a.sh"
    f.write_text("pretrain_gpt.py --num-layers 2 --tensor-parallel-size 8\n")
    code, _, err = cli("import", str(f), "--from", "megatron", "--device", "h100-sxm",
                       "--num-devices", "8")
    assert code == 2 and "--tensor-parallel-size" in err and len(err.strip().splitlines()) == 1


def test_import_wrong_type_exit_2(cli, tmp_path):
    f = tmp_path / "a.sh"
    f.write_text("pretrain_gpt.py --num-layers two\n")
    code, _, err = cli("import", str(f), "--from", "megatron", "--device", "h100-sxm",
                       "--num-devices", "8")
    assert code == 2 and "--num-layers" in err and "int" in err


def test_plan_train_export(cli, tmp_path):
    code, out, err = cli("plan", "train", "--model", "llama3-8b", "--device", "h100-sxm",
                         "--num-devices", "8", "--seq-len", "4096", "--global-batch", "64",
                         "--tp", "1,2", "--pp", "1", "--zero", "1", "--recompute", "none",
                         "--schedules", "1f1b", "--top-k", "1", "--export", "megatron",
                         "--export-out", str(tmp_path / "x"), "--json")
    assert code == 0, err
    res = json.loads(out)
    top = res["plans"][0]
    args = res["export"]["args"]
    assert args[args.index("--tensor-model-parallel-size") + 1] == str(top["tp"])
    assert (tmp_path / "x" / "launch.sh").exists()


PT_PP = ("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb", "--num-devices",
         "64", "--seq-len", "2048", "--global-batch", "512", "--tp", "8", "--pp", "2",
         "--zero", "1", "--recompute", "none", "--micro-batches", "4", "--uneven", "none")


def test_plan_train_export_takes_the_best_plan_the_launcher_runs(cli, tmp_path):
    """Megatron has no zb-h1 flag: with zb-h1 ranked first, the export is of the best plan
    Megatron can launch, and says which it skipped and why."""
    code, out, err = cli(*PT_PP, "--schedules", "zb-h1,1f1b", "--top-k", "4", "--export",
                         "megatron", "--json")
    assert code == 0, err
    res = json.loads(out)
    exp = res["export"]
    rank = exp["plan_rank"]
    schedules = [p["schedule"] for p in res["plans"]]
    assert rank >= 2 and schedules[rank - 1] == "1f1b"
    assert all(s == "zb-h1" for s in schedules[:rank - 1])
    assert len(exp["skipped"]) == rank - 1
    assert all("zb-h1" in s for s in exp["skipped"])


def test_plan_train_export_nothing_launchable_exit_2(cli):
    code, _, err = cli(*PT_PP, "--schedules", "zb-h1", "--top-k", "2", "--export", "megatron")
    assert code == 2 and "none of the 2 ranked plans" in err and len(err.splitlines()) == 1
