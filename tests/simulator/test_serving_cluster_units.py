"""Cluster-scale serving units: routers, scenario keys and errors, KV transfers, fast-forward
equality with the cluster features on, migration/autoscale/timeout conservation, costs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hwmodels.catalog import load_device, load_model
from hwmodels.errors import ConfigError
from hwmodels.memory import kv_bytes_per_token
from hwmodels.step import StepCostModel
from simulator.serving import load_serving_scenario, simulate_serving
from simulator.serving.cluster_config import CapControllerConfig
from simulator.serving.engine import ClusterOptions, ReplicaSetup, ServingEngine
from simulator.serving.power import CapController
from simulator.serving.replica import LaneConfig
from simulator.serving.request import Seq
from simulator.serving.routers import RouterKind, make_router
from simulator.serving.steptime import step_cost_from_model
from simulator.serving.transfer import LinkCost

BASE = {"model": "llama3-8b", "cluster": {"device": "a100-80gb"},
        "serving": {"replicas": 2}, "workload": {"synthetic": {}}}


def frame(n: int, rate: float, seed: int, prompt: tuple[int, int] = (100, 1500),
          output: tuple[int, int] = (10, 300)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    return pd.DataFrame({"arrival_time_s": t - t[0], "input_tokens": rng.integers(*prompt, n),
                         "output_tokens": rng.integers(*output, n)})


class Fake:
    def __init__(self, index: int, outstanding: int, kv: float, capacity: float = 1.0):
        self.index, self.outstanding, self._kv, self.capacity = index, outstanding, kv, capacity

    def kv_usage(self) -> float:
        return self._kv


def test_routers_pick_as_documented() -> None:
    reps = [Fake(0, 5, 0.9), Fake(1, 2, 0.5), Fake(2, 3, 0.1, capacity=4.0)]
    seq = Seq(0, 0.0, 10, 10)
    assert make_router("least_loaded").choose(seq, reps) == 1
    assert make_router("least_kv").choose(seq, reps) == 2
    assert make_router("capacity_weighted").choose(seq, reps) == 2  # 4/4 < 3/1
    rr = make_router("round_robin")
    assert [rr.choose(seq, reps) for _ in range(4)] == [0, 1, 2, 0]
    p2c = make_router("power_of_two", np.random.default_rng(0))
    picks = {p2c.choose(seq, reps) for _ in range(50)}
    assert 0 not in picks or len(picks) > 1  # never the busiest when paired with a lighter one
    with pytest.raises(ConfigError, match="round_robin"):
        make_router("nope")
    assert {k.value for k in RouterKind} >= {"prefix_affinity", "session_affinity", "llumnix"}


def test_prefix_affinity_is_consistent_and_moves_few_keys() -> None:
    router = make_router("prefix_affinity")
    reps = [Fake(i, 0, 0.0) for i in range(8)]
    keys = [Seq(i, 0.0, 64, 1, hashes=[1000 + i]) for i in range(400)]
    before = [reps[router.choose(s, reps)].index for s in keys]
    assert before == [reps[router.choose(s, reps)].index for s in keys]  # sticky
    assert len(set(before)) == 8  # spread
    fewer = reps[:7]
    after = [fewer[router.choose(s, fewer)].index for s in keys]
    moved = sum(a != b for a, b in zip(before, after, strict=True))
    assert moved == sum(b == 7 for b in before)  # only the removed replica's keys move


def test_scenario_keys_and_errors() -> None:
    sc = load_serving_scenario({**BASE, "serving": {"replica_groups": [
        {"name": "h", "device": "h100-sxm", "count": 2, "tp": 1, "price_usd_per_hour": 3.0},
        {"name": "a", "device": "a100-80gb", "count": 1}], "router": "capacity_weighted"}})
    assert [(g.name, g.count, g.price) for g in sc.groups] == [("h", 2, 3.0),
                                                               ("a", 1, 5.12)]
    dis = load_serving_scenario({**BASE, "serving": {"disaggregation": {
        "prefill_replicas": 1, "decode": {"device": "h100-sxm", "count": 2}}}})
    assert dis.disaggregated and [g.role for g in dis.groups] == ["prefill", "decode"]
    bad = [({"serving": {"router": "magic"}}, "serving.router"),
           ({"serving": {"replica_groups": [{"device": "a100-80gb", "cnt": 1}]}}, "cnt"),
           ({"serving": {"disaggregation": {"prefill_replicas": 0}}}, "prefill_replicas"),
           ({"failures": {"mtbf_s": 10, "distribution": "gauss"}}, "failures.distribution"),
           ({"autoscale": {"min_replicas": 4, "max_replicas": 2}}, "autoscale.max_replicas"),
           ({"power": {"controller": {"budget_w": 1, "high": 0.5, "low": 0.6}}},
            "power.controller.low"),
           ({"power": {"cap_fraction": 1.5}}, "power.cap_fraction")]
    for extra, key in bad:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_serving_scenario({**BASE, **extra})


def test_heterogeneous_cost_and_capacity_routing() -> None:
    df = frame(300, 20.0, 1)
    m = {**BASE, "serving": {"router": "capacity_weighted", "replica_groups": [
        {"name": "h100", "device": "h100-sxm", "count": 1},
        {"name": "l4", "device": "l4", "count": 1, "price_usd_per_hour": 0.8}]}}
    result = simulate_serving(load_serving_scenario(m), df)
    s = result.summary()
    g = s["groups"]
    hours = result.duration_s / 3600
    assert g["l4"]["cost_usd"] == pytest.approx(0.8 * hours)
    assert s["cost_usd"] == pytest.approx(g["h100"]["cost_usd"] + g["l4"]["cost_usd"])
    served = result.records.replica.value_counts()
    assert served[0] > 1.5 * served.get(1, 0)  # the faster H100 takes more of the traffic
    assert s["cost_per_million_tokens_usd"] > 0 and s["energy_per_token_j"] > 0


def test_kv_transfer_time_uses_the_link() -> None:
    model = load_model("llama3-8b")
    prompt = 2000
    m = {**BASE, "cluster": {"device": "a100-80gb", "intra_node": "nvlink3",
                             "inter_node": "ib-hdr", "devices_per_node": 8},
         "serving": {"disaggregation": {"prefill_replicas": 1, "decode_replicas": 1}}}
    df = pd.DataFrame({"arrival_time_s": [0.0], "input_tokens": [prompt], "output_tokens": [5]})
    same = simulate_serving(load_serving_scenario(m), df).records.kv_transfer_s[0]
    m2 = {**m, "serving": {"disaggregation": {"prefill_replicas": 1, "decode_replicas": 1,
                                              "prefill": {"tp": 8}}}}
    cross = simulate_serving(load_serving_scenario(m2), df).records.kv_transfer_s[0]
    nbytes = kv_bytes_per_token(model, "bf16") * prompt
    assert same == pytest.approx(nbytes / (600e9 * 0.5), rel=0.6)  # NVLink3 class
    assert cross > 3 * same  # the decode replica sits on the next node: over IB HDR


def _engine_run(df: pd.DataFrame, *, fast: bool, roles: tuple[str, ...], router: str,
                opts: ClusterOptions | None = None):  # type: ignore[no-untyped-def]
    model, device = load_model("llama3-8b"), load_device("a100-80gb")
    cost = step_cost_from_model(StepCostModel(model, device, tp=1))
    cfg = LaneConfig(total_blocks=900, max_model_len=4096, fast_forward=fast,
                     max_num_seqs=48)
    setups = [ReplicaSetup(step_cost=cost, lane=cfg, role=r,
                           kv_bytes_per_token=kv_bytes_per_token(model, "bf16"))
              for r in roles]
    opts = opts or ClusterOptions()
    opts.transfer = (LinkCost(latency_s=1e-5, bandwidth_Bps=3e11),
                     LinkCost(latency_s=2e-5, bandwidth_Bps=2.5e10), 8, False)
    return ServingEngine(df, setups, router=router, cluster=opts).run()


@pytest.mark.parametrize("roles,router", [(("prefill", "prefill", "decode"), "least_loaded"),
                                          (("both", "both", "both"), "power_of_two")])
def test_fast_forward_equals_step_by_step_with_cluster_features(roles, router) -> None:
    df = frame(250, 12.0, 5)
    a = _engine_run(df, fast=True, roles=roles, router=router).records
    b = _engine_run(df, fast=False, roles=roles, router=router).records
    for col in ("status", "replica", "decode_replica", "output_tokens"):
        assert (a[col] == b[col]).all(), col
    for col in ("first_token_s", "finish_s", "kv_transfer_s"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-9)
    assert (a.status == "completed").all()


def test_migration_keeps_every_request_and_moves_some() -> None:
    from simulator.serving.cluster_config import MigrationConfig

    df = frame(300, 15.0, 9, output=(50, 800))
    opts = ClusterOptions(migration=MigrationConfig(interval_s=0.5, threshold=4))
    out = _engine_run(df, fast=True, roles=("both", "both", "both"), router="round_robin",
                      opts=opts)
    rec = out.records
    assert (rec.status == "completed").all()
    assert (rec.output_tokens == df.output_tokens).all()  # no token lost or repeated
    assert (out.events.kind == "migration").sum() > 0
    assert rec.kv_transfer_s.max() > 0


def test_autoscale_adds_replicas_and_cost_follows() -> None:
    df = frame(900, 30.0, 2)
    m = {**BASE, "serving": {"replicas": 1, "router": "least_loaded"},
         "autoscale": {"min_replicas": 1, "max_replicas": 4, "metric": "queue",
                       "up_threshold": 8, "down_threshold": 1, "interval_s": 2,
                       "cooldown_s": 4, "instance_start_s": 5, "storage_Bps": 4e9}}
    result = simulate_serving(load_serving_scenario(m), df)
    s, reps = result.summary(), result.replicas
    assert len(reps) > 1 and (result.events.kind == "scale_up").sum() >= 1
    assert s["completed"] == 900
    billed = ((reps.end_s - reps.start_s) * reps.devices).sum() / 3600
    assert s["gpu_hours"] == pytest.approx(billed)
    assert s["gpu_hours"] < len(reps) * result.duration_s / 3600  # not billed all the time
    first_up = result.events[result.events.kind == "scale_up"].time_s.min()
    first_prov = result.events[result.events.kind == "provision"].time_s.min()
    weights = 16.06e9  # llama3-8b bf16 weights (hwmodels.memory), one device
    assert first_up - first_prov == pytest.approx(5 + weights / 4e9, rel=0.02)


def test_client_timeout_drops_with_reason() -> None:
    df = frame(400, 60.0, 3, prompt=(1000, 3000))
    m = {**BASE, "serving": {"replicas": 1, "client_timeout_s": 2}}
    s = simulate_serving(load_serving_scenario(m), df).summary()
    assert s["dropped_by_reason"].get("client_timeout", 0) > 0
    assert s["completed"] + s["dropped"] == 400


def test_cap_controller_hysteresis_and_levels() -> None:
    ctl = CapController.from_config(CapControllerConfig(budget_w=1000, levels=(1.0, 0.8, 0.6),
                                                   high=0.9, low=0.7))
    assert ctl.decide(0, 0, 950) == 0.8
    assert ctl.decide(1, 0, 850) is None  # between low and high: hold
    assert ctl.decide(2, 0, 950) == 0.6
    assert ctl.decide(3, 0, 990) is None  # lowest level already
    assert ctl.decide(4, 0, 600) == 0.8


def test_power_controller_caps_a_row_over_budget() -> None:
    df = frame(600, 20.0, 4, prompt=(1500, 3000), output=(20, 100))
    m = {**BASE, "serving": {"replicas": 4},
         "power": {"bin_s": 1.0, "controller": {"budget_w": 900, "interval_s": 1,
                                                "latency_s": 1, "levels": [1.0, 0.8, 0.6]}}}
    result = simulate_serving(load_serving_scenario(m), df)
    caps = result.events[result.events.kind == "cap"]
    assert len(caps) >= 1 and caps.detail.astype(float).min() < 1.0
    assert result.summary()["peak_row_power_w"] > 0
    assert set(result.power_series("server").columns) == {"time_s", "server", "power_w"}
