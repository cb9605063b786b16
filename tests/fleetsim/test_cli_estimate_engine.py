"""estimate step --engine: the preset's software terms reach the step, the output names the
engine, and an unknown preset is one line listing the valid ones (exit 2)."""

from __future__ import annotations

import json

ARGS = ("estimate", "step", "--model", "llama3-70b", "--device", "h100-sxm", "--tp", "4",
        "--decode-seqs", "1", "--context", "1024", "--json")


def _step(cli, *extra: str) -> dict:
    code, out, err = cli(*ARGS, *extra)
    assert code == 0, err
    return json.loads(out)


def test_engine_presets_order_small_batch_decode(cli) -> None:
    """CUDA graphs + custom all-reduce (vllm-0.6) beat 2023's eager vLLM at batch 1."""
    default, old, new = _step(cli), _step(cli, "--engine", "vllm-0.2"), \
        _step(cli, "--engine", "vllm-0.6")
    assert default["engine"] == "kernel-only (default)"
    assert (old["engine"], new["engine"]) == ("vllm-0.2", "vllm-0.6")
    assert new["time_s"] < default["time_s"] < old["time_s"]
    assert "cpu_s" in old["breakdown"] and "cpu_s" not in default["breakdown"]


def test_unknown_engine_is_one_line(cli) -> None:
    code, _, err = cli(*ARGS, "--engine", "nope")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--engine" in err and "vllm-0.6" in err and "trtllm" in err
