"""The fabric and stack in the CLI: a NIC faster than the host link is one line and exit 2;
predictions state the fabric, power cap and training stack (kernels, attention, loss) they
assumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TRAIN = str(Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
            / "gpt3-175b-a100.yaml")


def _one_line_exit_2(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_simulate_train_nic_faster_than_pcie(cli) -> None:
    code, _, err = cli("simulate", "train", TRAIN, "--set", "cluster.inter_node=ib-ndr")
    _one_line_exit_2(code, err, "cluster.inter_node", "ib-ndr", "50 GB/s", "pcie4", "32 GB/s")


def test_plan_train_nic_faster_than_pcie(cli) -> None:
    code, _, err = cli("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb",
                       "--num-devices", "16", "--seq-len", "2048", "--global-batch", "64",
                       "--inter-node", "ib-ndr")
    _one_line_exit_2(code, err, "cluster.inter_node", "ib-ndr", "pcie4")


def test_estimate_step_nic_faster_than_pcie(cli) -> None:
    code, _, err = cli("estimate", "step", "--model", "llama2-70b", "--device", "a100-80gb",
                       "--tp", "8", "--pp", "2", "--decode-seqs", "8", "--context", "1024",
                       "--inter-node", "ib-ndr")
    _one_line_exit_2(code, err, "--inter-node", "ib-ndr", "pcie4")


def test_outputs_state_the_fabric(cli) -> None:
    code, out, err = cli("simulate", "train", TRAIN, "--json")
    assert code == 0, err
    assert "8 x ib-hdr NICs/node (25 GB/s each, behind pcie4 32 GB/s)" in \
        json.loads(out)["fabric"]
    code, out, err = cli("simulate", "train", TRAIN, "--set", "cluster.nics_per_node=4")
    assert code == 0, err
    assert "fabric: 128 nodes of 8 x a100-80gb" in out and "4 x ib-hdr" in out
    code, out, err = cli("estimate", "step", "--model", "llama2-7b", "--device", "h100-sxm",
                         "--decode-seqs", "1", "--context", "16", "--json")
    assert code == 0, err
    assert "ib-ndr" in json.loads(out)["fabric"]


PLAN_16 = ("plan", "train", "--model", "gpt-7.5b", "--device", "a100-80gb", "--num-devices",
           "32", "--seq-len", "2048", "--global-batch", "64", "--tp", "1", "--pp", "1",
           "--zero", "1", "--recompute", "full", "--micro-batches", "2", "--top-k", "1",
           "--json")


def _plan_with_and_without(cli, plan: tuple[str, ...], *option: str) -> tuple[dict, dict]:
    """(plan train --json as given, the same with `option` added)."""
    runs = []
    for args in (plan, (*plan, *option)):
        code, out, err = cli(*args)
        assert code == 0, err
        runs.append(json.loads(out))
    return runs[0], runs[1]


def test_plan_train_nics_per_node_changes_the_plan(cli) -> None:
    """Pure DP over 4 nodes: two NICs per node instead of eight carry the same gradient
    reduce-scatter at a quarter of the node's bandwidth, so the plan gets slower and says so."""
    eight, two = _plan_with_and_without(cli, PLAN_16, "--nics-per-node", "2")
    assert "8 x ib-hdr" in eight["fabric"] and "2 x ib-hdr" in two["fabric"]
    fast, slow = eight["plans"][0], two["plans"][0]
    assert (fast["tp"], fast["dp"]) == (slow["tp"], slow["dp"]) == (1, 32)
    assert slow["iteration_time_s"] > fast["iteration_time_s"] * 1.02
    assert slow["breakdown"]["exposed_comm_s"] > fast["breakdown"]["exposed_comm_s"]


def test_plan_train_nics_per_node_zero(cli) -> None:
    code, _, err = cli(*PLAN_16, "--nics-per-node", "0")
    _one_line_exit_2(code, err, "--nics-per-node", ">= 1")


PLAN_8B = ("plan", "train", "--model", "llama3-8b", "--device", "h100-sxm", "--num-devices", "8",
           "--seq-len", "4096", "--global-batch", "16", "--tp", "1", "--pp", "1", "--zero", "3",
           "--recompute", "full", "--micro-batches", "2", "--top-k", "1", "--json")


def test_plan_train_power_cap_slows_the_plan_and_says_so(cli) -> None:
    """A 500 W limit on 700 W H100s lowers the SM clock of compute-bound kernels: the same plan
    takes longer, its MFU (against the nameplate peak) drops, and the fabric line states it."""
    free, capped = _plan_with_and_without(cli, PLAN_8B, "--power-cap-w", "500")
    assert "power cap" not in free["fabric"] and "power cap 500 W" in capped["fabric"]
    fast, slow = free["plans"][0], capped["plans"][0]
    ratio = slow["iteration_time_s"] / fast["iteration_time_s"]
    assert 1.05 < ratio < 1.0 / 0.5  # slower, never beyond the clock floor
    assert slow["mfu"] == pytest.approx(fast["mfu"] / ratio, rel=1e-6)


@pytest.mark.parametrize("watts", ["50", "800"])
def test_plan_train_power_cap_outside_idle_to_tdp(cli, watts: str) -> None:
    code, _, err = cli(*PLAN_8B, "--power-cap-w", watts)
    _one_line_exit_2(code, err, "--power-cap-w", "(75, 700] W")


def test_simulate_train_power_cap_key(cli) -> None:
    code, out, err = cli("simulate", "train", TRAIN, "--set", "cluster.power_cap_w=300", "--json")
    assert code == 0, err
    assert "power cap 300 W" in json.loads(out)["fabric"]
    code, _, err = cli("simulate", "train", TRAIN, "--set", "cluster.power_cap_w=500")
    _one_line_exit_2(code, err, "cluster.power_cap_w", "(60, 400] W")


def test_plan_train_costs_the_named_stack_and_states_it(cli) -> None:
    """--kernels eager --loss-impl eager-fp32 (torchtitan without compile) costs the same plan
    with PyTorch's per-op kernels and the fp32 loss: slower, more memory at the loss, and the
    output names the stack and the attention kernel it resolved to (FA2 for eager on H100)."""
    fused, eager = _plan_with_and_without(cli, PLAN_8B, "--kernels", "eager", "--loss-impl",
                                          "eager-fp32")
    assert fused["stack"] == {"kernels": "fused", "attention_impl": "auto",
                              "attention_kernel": "cudnn", "loss_impl": "fused",
                              "grad_reduce_dtype": "stack default", "preset": "none"}
    assert eager["stack"] == {"kernels": "eager", "attention_impl": "auto",
                              "attention_kernel": "fa2", "loss_impl": "eager-fp32",
                              "grad_reduce_dtype": "stack default", "preset": "none"}
    fast, slow = fused["plans"][0], eager["plans"][0]
    assert (fast["tp"], fast["dp"], fast["micro_batch"]) == (slow["tp"], slow["dp"],
                                                             slow["micro_batch"])
    assert slow["iteration_time_s"] > fast["iteration_time_s"] * 1.05
    assert slow["peak_memory_gib"] > fast["peak_memory_gib"]
    code, out, err = cli(*PLAN_8B[:-1], "--kernels", "compiled")
    assert code == 0, err
    assert ("stack: kernels compiled, attention fa2 (--attention-impl auto), loss fused, grad "
            "reduce stack default") in " ".join(out.split())  # the console wraps at 80


def test_plan_train_bf16_grad_reduce_halves_the_dp_traffic(cli) -> None:
    """Pure DP over 4 HDR nodes with Megatron's distributed optimizer: --grad-reduce-dtype
    bf16 (--grad-reduce-in-bf16) reduce-scatters half the bytes of its fp32 main grads and
    keeps a bf16 grad buffer; the stack line names it."""
    fp32, bf16 = _plan_with_and_without(cli, PLAN_16, "--grad-reduce-dtype", "bf16")
    assert bf16["stack"]["grad_reduce_dtype"] == "bf16"
    slow, fast = fp32["plans"][0], bf16["plans"][0]
    assert (slow["tp"], slow["dp"], slow["zero"]) == (fast["tp"], fast["dp"], fast["zero"])
    assert fast["breakdown"]["exposed_comm_s"] < slow["breakdown"]["exposed_comm_s"]
    assert fast["peak_memory_gib"] < slow["peak_memory_gib"]


def test_plan_train_stack_preset_and_explicit_options_win(cli) -> None:
    """--stack torchtitan: FSDP2 or replication only (no ZeRO-1/2), eager kernels, fp32 loss
    and fp32 reduce, named on the stack line; an option given beside it wins."""
    plan = (*PLAN_8B[:PLAN_8B.index("--zero")], "--top-k", "3", "--json")
    titan, mixed = _plan_with_and_without(cli, (*plan, "--stack", "torchtitan"),
                                          "--kernels", "compiled")
    assert titan["stack"] == {"kernels": "eager", "attention_impl": "auto",
                              "attention_kernel": "fa2", "loss_impl": "eager-fp32",
                              "grad_reduce_dtype": "fp32", "preset": "torchtitan"}
    assert {r["zero"] for r in titan["plans"]} <= {0, 3}
    assert mixed["stack"]["kernels"] == "compiled" and mixed["stack"]["preset"] == "torchtitan"


@pytest.mark.parametrize(("args", "needles"), [
    (("--stack", "nemo"), ("--stack", "megatron, torchtitan, llm-foundry, deepspeed")),
    (("--grad-reduce-dtype", "fp16"), ("--grad-reduce-dtype", "bf16, fp32")),
    (("--kernels", "eager,fused"), ("--kernels", "takes one value", "fused, eager, compiled")),
    (("--loss-impl", "fp32"), ("--loss-impl", "fused, eager-fp32")),
    (("--attention-impl", "fa4"), ("--attention-impl", "fa3")),
])
def test_plan_train_bad_stack_is_one_line(cli, args, needles) -> None:
    code, _, err = cli(*PLAN_8B, *args)
    _one_line_exit_2(code, err, *needles)


def test_plan_train_fa3_off_hopper_names_the_flag(cli) -> None:
    code, _, err = cli(*PLAN_16, "--attention-impl", "fa3")
    _one_line_exit_2(code, err, "--attention-impl", "Hopper", "a100-80gb")
