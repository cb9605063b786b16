"""Engine profiles: presets load with sources, kernel-only is today's model, and the presets
move step times in the direction their sources document."""

from __future__ import annotations

import pytest

from hwmodels.catalog import load_device, load_model
from hwmodels.engine_profiles import (
    DEFAULT_ENGINE,
    EngineName,
    EngineProfile,
    list_engines,
    load_engine,
)
from hwmodels.errors import ConfigError
from hwmodels.step import BREAKDOWN_KEYS, ENGINE_BREAKDOWN_KEYS, StepCostModel

H100 = load_device("h100-sxm")
LLAMA8 = load_model("llama3-8b")
LLAMA70 = load_model("llama3-70b")
BATCHES = [(0, 0, 1, 1024), (0, 0, 64, 64 * 2048), (2048, 2048 * 1024, 0, 0),
           (512, 512 * 600, 32, 32 * 900)]


def test_every_preset_loads_with_a_source() -> None:
    assert DEFAULT_ENGINE is EngineName.KERNEL_ONLY
    for name in EngineName:
        eng = load_engine(name)
        assert eng.name == str(name) and len(eng.source) > 40 and eng.year >= 2023
        assert eng.default_scheduler in eng.supported_schedulers
    assert list_engines()[:5] == [str(n) for n in EngineName]


def test_unknown_engine_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        load_engine("vllm-9")
    assert err.value.key == "serving.engine"
    assert "vllm-0.6" in str(err.value.allowed) and "trtllm" in str(err.value.allowed)


def test_bad_profile_values_raise() -> None:
    with pytest.raises(ConfigError, match="cpu_overlap"):
        EngineProfile(name="x", source="s" * 50, year=2024, cpu_overlap=1.5)
    with pytest.raises(ConfigError, match="supported_schedulers"):
        EngineProfile(name="x", source="s" * 50, year=2024, default_scheduler="orca",
                      supported_schedulers=("vllm",))


def test_unsupported_scheduler_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="does not support scheduler vllm"):
        load_engine("trtllm").check_scheduler("vllm")
    load_engine("trtllm").check_scheduler("sarathi")
    with pytest.raises(ConfigError):
        load_engine("vllm-0.2").check_scheduler("sarathi")  # chunked prefill came in v0.4


@pytest.mark.parametrize("model,tp", [(LLAMA8, 1), (LLAMA70, 4)])
def test_kernel_only_is_todays_model(model, tp) -> None:
    plain = StepCostModel(model, H100, tp=tp)
    ko = StepCostModel(model, H100, tp=tp, engine="kernel-only")
    for b in BATCHES:
        assert ko.breakdown(*b) == plain.breakdown(*b)
        assert ko.time_s(*b) == plain.time_s(*b)
    assert ko.breakdown_keys == BREAKDOWN_KEYS


@pytest.mark.parametrize("engine", [str(n) for n in EngineName if n is not EngineName.KERNEL_ONLY])
@pytest.mark.parametrize("model,tp", [(LLAMA8, 1), (LLAMA70, 4)])
def test_engine_breakdown_sums_to_time(engine, model, tp) -> None:
    cost = StepCostModel(model, H100, tp=tp, engine=engine)
    assert cost.breakdown_keys == BREAKDOWN_KEYS + ENGINE_BREAKDOWN_KEYS
    for b in BATCHES:
        parts = cost.breakdown(*b)
        assert parts["overhead_s"] == 0.0
        assert all(parts[k] >= 0 for k in cost.breakdown_keys)
        assert sum(parts[k] for k in cost.breakdown_keys) == pytest.approx(parts["time_s"],
                                                                           rel=1e-12)
        assert cost.time_s(*b) == pytest.approx(parts["time_s"], rel=1e-12)
    assert cost.breakdown(0, 0, 0, 0)["time_s"] == 0.0  # an empty batch costs nothing


def test_2023_vllm_is_slower_than_current() -> None:
    """vLLM v0.6.0 blog (Sep 2024): async output + multi-step, CUDA graphs, custom all-reduce
    and mp workers cut per-step time against the 2023 engine; decode most of all."""
    for model, tp in ((LLAMA8, 1), (LLAMA70, 4)):
        old = StepCostModel(model, H100, tp=tp, engine="vllm-0.2")
        new = StepCostModel(model, H100, tp=tp, engine="vllm-0.6")
        for b in BATCHES:
            assert old.time_s(*b) > new.time_s(*b)
    old = StepCostModel(LLAMA70, H100, tp=4, engine="vllm-0.2").breakdown(0, 0, 8, 8000)
    new = StepCostModel(LLAMA70, H100, tp=4, engine="vllm-0.6").breakdown(0, 0, 8, 8000)
    assert new["tp_comm_s"] < old["tp_comm_s"]  # custom all-reduce: small-message latency
    assert new["transport_s"] < old["transport_s"]  # mp workers vs Ray
    assert new["cpu_s"] < old["cpu_s"]  # overlapped host work


def test_cuda_graphs_lower_small_batch_decode() -> None:
    """With CUDA graphs a small decode batch replays one graph; eager it pays the host launch of
    every kernel beyond what the GPU work hides (vLLM v0.2.6 'enforce_eager')."""
    from dataclasses import replace
    graphs = load_engine("vllm-0.6")
    eager = replace(graphs, cuda_graphs=False)
    g = StepCostModel(LLAMA70, H100, tp=4, engine=graphs).breakdown(0, 0, 1, 1024)
    e = StepCostModel(LLAMA70, H100, tp=4, engine=eager).breakdown(0, 0, 1, 1024)
    assert e["launch_s"] > 0 and g["launch_s"] == 0.0
    assert g["time_s"] < e["time_s"]
    # a large prefill hides its launches behind the GPU work: graphs change nothing there
    b = (8192, 8192 * 4096, 0, 0)
    assert StepCostModel(LLAMA70, H100, tp=4, engine=graphs).time_s(*b) == \
        StepCostModel(LLAMA70, H100, tp=4, engine=eager).time_s(*b)


def test_overlap_hides_at_most_the_gpu_time() -> None:
    from dataclasses import replace
    full = replace(load_engine("vllm-0.6"), cpu_overlap=1.0, cpu_fixed_s=1.0)
    b = StepCostModel(LLAMA8, H100, engine=full).breakdown(0, 0, 1, 100)
    gpu = sum(b[k] for k in BREAKDOWN_KEYS)
    assert b["cpu_s"] == pytest.approx(1.0 + 64 * 0 + full.cpu_per_seq_s - gpu, rel=1e-9)


def test_scheduler_names_match_the_simulator_registry() -> None:
    """hwmodels cannot import simulator (layering), so engine_profiles keeps its own copy of
    the scheduler names: it must list exactly the registered schedulers."""
    from hwmodels.engine_profiles import SCHEDULER_NAMES
    from simulator.serving.schedulers import SCHEDULERS

    assert set(SCHEDULER_NAMES) == set(SCHEDULERS.names())
