"""MoE training end to end: the bundled DeepSeek-V3 and Mixtral 8x22B scenarios, the published
MoE rows (simulator/data/training_published_moe.csv) and the direction of each MoE knob."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwmodels.parallel import EPOverlap
from simulator.training.scenario import load_training_scenario
from simulator.training.simulate import simulate_iteration
from simulator.training.validation_moe import DATA_FILE, predict_row_moe, row_setup_moe

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "simulator" / "scenarios"
# Tolerance on the published MoE rows: the validation tables' per-row limit (20%) plus margin
# for the assumptions the CSV states (micro batch, node-limited routing, Mixtral's plan).
MOE_ROW_TOLERANCE_PCT = 25.0


def _scenario(name: str):
    path = SCENARIOS / name
    return load_training_scenario(yaml.safe_load(path.read_text()), file=str(path))


def _run(sc, **changes):
    plan = dataclasses.replace(sc.parallel, **changes)
    return simulate_iteration(sc.model, sc.cluster, sc.training, plan, profile=sc.profile)


@pytest.fixture(scope="module")
def deepseek():
    return _scenario("deepseek-v3-h800.yaml")


@pytest.fixture(scope="module")
def mixtral():
    return _scenario("mixtral-8x22b-h100.yaml")


def test_deepseek_v3_plan_runs_as_published(deepseek) -> None:
    sc = deepseek
    assert (sc.parallel.tp, sc.parallel.pp, sc.parallel.dp, sc.parallel.ep) == (1, 16, 128, 64)
    assert sc.cluster.device.name == "h800" and sc.cluster.num_devices == 2048
    r = _run(sc)
    assert r.pipeline_split.startswith("balanced")  # 61 layers on PP16
    assert sum(s.layers for s in r.stages) == 61
    per_gpu = r.tokens_per_s / 2048
    published = 1e12 / (180e3 * 3600)  # 180K H800 GPU-hours per trillion tokens
    err = 100 * (per_gpu - published) / published
    assert abs(err) < MOE_ROW_TOLERANCE_PCT, f"{per_gpu:.0f} vs {published:.0f} tok/s/GPU"
    assert r.moe is not None and r.moe["imbalance_source"] == "balls-in-bins"
    # known gap: DeepSeek trained this in 80 GB with FP8 activation caching and recompute of
    # the SwiGLU inputs (report Sec. 3.3.3), which hwmodels.memory does not model
    assert not r.fits_memory and r.peak_memory_gib > 80


def test_dualpipe_hides_the_all_to_all_but_not_for_free(deepseek) -> None:
    none = _run(deepseek, ep_overlap=EPOverlap.NONE)
    dual = _run(deepseek)
    assert dual.iteration_time_s < 0.8 * none.iteration_time_s
    assert dual.breakdown.exposed_comm_s > 0.0  # SM share and a2a longer than compute
    assert dual.breakdown.compute_s == pytest.approx(none.breakdown.compute_s)


def test_imbalance_and_capacity_move_time_the_right_way(mixtral) -> None:
    balanced = _run(mixtral, moe_imbalance=1.0)
    default = _run(mixtral)
    skewed = _run(mixtral, moe_imbalance=1.5)
    capped = _run(mixtral, moe_imbalance=1.5, moe_capacity_factor=1.1)
    assert balanced.iteration_time_s < default.iteration_time_s < skewed.iteration_time_s
    assert balanced.iteration_time_s < capped.iteration_time_s < skewed.iteration_time_s
    assert capped.moe["imbalance"] == pytest.approx(1.1)
    assert capped.moe["dropped_fraction"] > 0.0 and skewed.moe["dropped_fraction"] == 0.0


def test_mixtral_8x22b_scenario_is_sane(mixtral) -> None:
    r = _run(mixtral)
    assert r.fits_memory
    assert 0.15 < r.mfu < 0.6
    assert r.breakdown.exposed_comm_s > 0.0  # EP all-to-all across nodes, not overlapped


def test_expert_tp_changes_groups_memory_and_communication(mixtral) -> None:
    tp4 = _run(mixtral)
    etp1 = _run(mixtral, expert_tp=1)
    assert etp1.peak_memory_gib > tp4.peak_memory_gib  # whole experts per rank
    # no expert-TP all-gather / reduce-scatter of the routed rows
    assert etp1.breakdown.exposed_comm_s < tp4.breakdown.exposed_comm_s


def test_published_moe_rows_within_tolerance() -> None:
    data = pd.read_csv(ROOT / "simulator" / "data" / DATA_FILE, comment="#")
    assert set(data.source) == {"MOE-DSV3", "MOE-MCORE"}
    for _, row in data.iterrows():
        setup = row_setup_moe(row)
        assert setup.model.is_moe and setup.parallel.ep == int(row.ep)
        _, predicted = predict_row_moe(row)
        err = 100 * (predicted - float(row.value)) / float(row.value)
        assert abs(err) < MOE_ROW_TOLERANCE_PCT, f"{row.source}: {predicted:.1f} vs {row.value}"
