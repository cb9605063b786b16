"""Bad planner inputs found by trying them: one ConfigError line (exit 2), never a traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("args", "needle"), [
    (("plan", "power", "--budget-kw", "60", "--tp", "0"), "power.tp"),  # was ZeroDivisionError
    (("plan", "power", "--budget-kw", "1e12", "--training"), "power.budget_kw"),  # was 5 TiB alloc
    (("plan", "serve", "--model", "llama3-8b", "--devices", "l4", "--slo-ttft", "1",
      "--slo-tpot", "0.1", "--confirm-top", "-1"), "confirm_top"),  # was accepted silently
])
def test_bad_planner_input_is_one_line(cli, args, needle) -> None:
    code, _, err = cli(*args)
    assert code == 2, err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


LONG = str(__import__("pathlib").Path(__file__).resolve().parents[2] / "simulator"
           / "scenarios" / "llama3-405b-16k-54d.yaml")
TRAIN = LONG.replace("llama3-405b-16k-54d", "gpt3-175b-a100")


@pytest.mark.parametrize(("args", "needle"), [
    (("plan", "checkpoint", LONG, "--seeds", "1", "--seed", "-1"), "--seed"),  # was a traceback
    (("plan", "train", "--model", "llama3-8b", "--device", "h100-sxm", "--num-devices", "8",
      "--seq-len", "2048", "--global-batch", "8", "--top-k", "0"), "--top-k"),
    # a training sweep simulates one iteration: sweeping run.* gave identical rows
    (("sweep", LONG, "--grid", "run.spares=1,2", "--out", "/tmp/x.csv"), "no effect"),
    (("sweep", TRAIN, "--grid", "parallelism.tp=4", "--grid", "parallelism.tp=8",
      "--out", "/tmp/x.csv"), "given twice"),
])
def test_more_bad_inputs(cli, args, needle) -> None:
    code, _, err = cli(*args)
    assert code == 2, err
    assert needle in err and "Traceback" not in err


PT8 = ("plan", "train", "--model", "llama3-8b", "--device", "h100-sxm", "--num-devices", "8",
       "--seq-len", "2048", "--global-batch", "8")


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("--recompute", "none,sometimes", "selective"),
    ("--schedules", "1f1b,zigzag", "interleaved"),
    ("--zero", "0,4", "0, 1, 2, 3"),
    ("--zero", "x", "0, 1, 2, 3"),
    ("--fsdp-impl", "fsdp3", "fsdp2"),
    ("--uneven", "sometimes", "megatron"),
    ("--tp", "0,8", None),
    ("--pp", "4,x", None),
    ("--vpp", "0", None),
    ("--cp", "-1", None),
    ("--ep", "two", None),
])
def test_plan_train_bad_choice_names_option_and_allowed(cli, option, value, allowed) -> None:
    """Every search-space option of `plan train`: a bad value is one line, exit 2, naming the
    option (and, for a closed set, the allowed values)."""
    code, _, err = cli(*PT8, option, value)
    assert code == 2, err
    assert option in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    if allowed:
        assert allowed in err
