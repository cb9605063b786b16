"""plan checkpoint --modes/--tiers: the mode x storage tier x interval with the best ETTR."""

from __future__ import annotations

import math

import pytest

from fleetsim.cli.common import load_scenario_file
from hwmodels.errors import UnknownNameError
from planners.checkpoint_choice import plan_checkpoint_choice
from planners.checkpoint_tiers import STORAGE_TIERS, StorageTier
from simulator.longrun.checkpoint import CheckpointMode
from simulator.longrun.simulate import default_iteration_time_fn
from simulator.training import apply_overrides, load_training_scenario

SCEN = "simulator/scenarios/llama3-405b-16k-54d.yaml"


@pytest.fixture(scope="module")
def choice():  # type: ignore[no-untyped-def]
    sc = load_training_scenario(apply_overrides(load_scenario_file(SCEN), ["run.duration=1d"]),
                                file=SCEN)
    return plan_checkpoint_choice(sc, modes=tuple(CheckpointMode), tiers=tuple(StorageTier),
                                  seeds=1, iteration_time_fn=default_iteration_time_fn(sc))


def test_every_durable_pair_is_simulated_and_ranked(choice) -> None:  # type: ignore[no-untyped-def]
    pairs = {(r["mode"], r["tier"]) for r in choice.rows}
    assert len(pairs) == 3 * 4  # nvme-local rejected
    ettrs = [r["ettr"] for r in choice.rows]
    assert ettrs == sorted(ettrs, reverse=True)
    assert choice.best["ettr"] == max(ettrs) and 0 < choice.best["ettr"] < 1
    assert [r["tier"] for r in choice.rejected] == ["nvme-local"]


def test_sync_stall_is_the_tier_write_and_async_hides_it(choice) -> None:  # type: ignore[no-untyped-def]
    rows = {(r["mode"], r["tier"]): r for r in choice.rows}
    lustre_sync, lustre_async = rows[("sync", "lustre")], rows[("async", "lustre")]
    assert lustre_sync["stall_s"] == pytest.approx(lustre_sync["write_s"])
    assert lustre_async["stall_s"] < 1.0 < lustre_async["write_s"]
    # parallel-fs carries the scenario defaults (Tectonic 2 TB/s): identical numbers
    assert rows[("sync", "parallel-fs")]["ettr"] == rows[("sync", "scenario")]["ettr"]
    # a slower tier never beats a faster one in the same mode
    for mode in ("sync", "async", "multilevel"):
        assert rows[(mode, "lustre")]["ettr"] <= rows[(mode, "parallel-fs")]["ettr"]
    assert choice.best["mode"] != "sync"  # the stall costs more than async's late commits


def test_runner_up_per_mode_and_tier(choice) -> None:  # type: ignore[no-untyped-def]
    ups = choice.runner_ups()
    best = choice.best
    for mode in {"sync", "async", "multilevel"} - {best["mode"]}:
        assert ups[f"mode={mode}"]["mode"] == mode
    for tier in {"scenario", "parallel-fs", "lustre", "object-store"} - {best["tier"]}:
        assert ups[f"tier={tier}"]["tier"] == tier
    d = choice.to_dict()
    assert d["choice"]["goodput_tokens_per_s"] > 0 and d["runner_up"]


def test_tier_bandwidth_and_price() -> None:
    lustre = STORAGE_TIERS.get("lustre")
    write, read = lustre.bandwidths_Bps(nodes=2, stored_bytes=10 * 2**40)
    assert write == read == pytest.approx(2e9)  # 200 MB/s per TiB x 10 TiB
    s3 = STORAGE_TIERS.get("object-store")
    assert s3.bandwidths_Bps(nodes=4, stored_bytes=1e15)[0] == pytest.approx(50e9)
    assert s3.usd_per_hour(1e12) == pytest.approx(1000 * 0.023 / 730)
    assert math.isinf(STORAGE_TIERS.get("parallel-fs").write_bps_per_node)
    with pytest.raises(UnknownNameError):
        STORAGE_TIERS.get("tape")


def test_cli_choice_json_and_default_unchanged() -> None:
    import contextlib
    import io
    import json

    from fleetsim.cli.app import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["plan", "checkpoint", SCEN, "--seeds", "1", "--set", "run.duration=1d",
                     "--modes", "sync,async", "--tiers", "parallel-fs,object-store", "--json"])
    assert code == 0
    out = json.loads(buf.getvalue())
    assert out["choice"]["mode"] in ("sync", "async")
    assert {"interval_s", "ettr", "tier", "goodput_tokens_per_s"} <= set(out["choice"])
    assert len(out["candidates"]) == 4
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["plan", "checkpoint", SCEN, "--tiers", "tape", "--json"]) == 2
