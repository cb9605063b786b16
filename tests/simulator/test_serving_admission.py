"""Admission as engines do it. No-evict admission (TensorRT-LLM GUARANTEED_NO_EVICT): KV for prompt + output is reserved
at admission, so a paged lane never preempts, where vLLM's recompute policy does under the
same overload; and it admits more than Orca's max_model_len reservation."""

from __future__ import annotations

import pandas as pd
import pytest

from hwmodels.catalog import load_device, load_model
from simulator.serving import simulate_serving
from simulator.serving.plan import ServingConfig, ServingPlan

N = 120


def _requests(n: int = N) -> pd.DataFrame:
    # a burst of long outputs: prompt-only admission overcommits the KV pool
    return pd.DataFrame({"request_id": range(n), "arrival_time_s": [i * 0.01 for i in range(n)],
                         "input_tokens": [512] * n, "output_tokens": [1536] * n})


def _run(**serving) -> dict:
    plan = ServingPlan(model=load_model("llama3-8b"), device=load_device("l4"),
                       serving=ServingConfig(tp=1, replicas=1, max_model_len=8192,
                                             max_num_seqs=512, **serving))
    return simulate_serving(plan, _requests())


def _facts(res) -> dict:
    summary = res.summary if isinstance(res.summary, dict) else res.summary()
    return {"preemptions": int(res.lanes["preemptions"].sum()),
            "completed": summary["completed"],
            "tokens_per_s": summary["throughput_tokens_per_s"]}


@pytest.fixture(scope="module")
def runs() -> dict:
    return {"recompute": _facts(_run(scheduler="sarathi", preemption="recompute")),
            "no-evict": _facts(_run(scheduler="sarathi", admission="no-evict")),
            "orca": _facts(_run(scheduler="orca")),
            "trtllm": _facts(_run(engine="trtllm"))}


def test_no_evict_never_preempts_where_recompute_does(runs) -> None:
    assert runs["recompute"]["preemptions"] > 0
    assert runs["no-evict"]["preemptions"] == 0
    assert runs["trtllm"]["preemptions"] == 0  # its default admission is no-evict
    assert runs["no-evict"]["completed"] == runs["recompute"]["completed"] == N


def test_no_evict_reserves_less_than_orca_max_model_len(runs) -> None:
    """Reserving 2,048 tokens a request (prompt + output) instead of max_model_len (8,192)
    fits more requests at once: higher throughput on the same burst."""
    assert runs["no-evict"]["tokens_per_s"] > 2 * runs["orca"]["tokens_per_s"]


def _ttft_p50(steps: int) -> float:
    plan = ServingPlan(model=load_model("llama3-8b"), device=load_device("h100-sxm"),
                       serving=ServingConfig(engine="vllm-0.6", num_scheduler_steps=steps))
    n = 200
    reqs = pd.DataFrame({"request_id": range(n), "arrival_time_s": [i * 0.05 for i in range(n)],
                         "input_tokens": [256] * n, "output_tokens": [128] * n})
    return float(simulate_serving(plan, reqs).records.eval("first_token_s - arrival_s").median())


def test_multi_step_rounds_delay_new_prompts() -> None:
    """vLLM --num-scheduler-steps 10: a prompt arriving mid-round waits for the round's end,
    so TTFT rises by a fraction of a 10-step round."""
    one, ten = _ttft_p50(1), _ttft_p50(10)
    assert ten > one + 0.005


def test_multi_step_needs_the_vllm_scheduler() -> None:
    from hwmodels.errors import ConfigError

    with pytest.raises(ConfigError, match="needs scheduler vllm") as err:
        ServingConfig(scheduler="sarathi", num_scheduler_steps=4)
    assert err.value.key == "serving.num_scheduler_steps"
    with pytest.raises(ConfigError):
        ServingConfig(num_scheduler_steps=0)
