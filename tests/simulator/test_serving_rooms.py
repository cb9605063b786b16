"""The serving engine's rooms: DecodeSet closed forms against brute force, the KV pool, the one
wake-up path, typed records, registries with enum keys, and the import seams (extensions do not
import the engine; schedulers change lanes only through verbs)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.errors import ConfigError, UnknownNameError
from simulator.serving.fast_forward import DecodeSet
from simulator.serving.kinds import PreemptionMode
from simulator.serving.kv_pool import KVPool
from simulator.serving.prefix_cache import PrefixCache
from simulator.serving.records import RECORD_COLUMNS, RequestLog, RequestRecord
from simulator.serving.replica import Lane, LaneConfig
from simulator.serving.replica_setup import ReplicaSetup
from simulator.serving.request import DropReason, Phase, Seq, Status
from simulator.serving.routers import ROUTERS, RouterKind, make_router
from simulator.serving.schedulers import SCHEDULERS, SchedulerKind, make_scheduler
from simulator.serving.steptime import StepTimer

SERVING = Path(__file__).resolve().parents[2] / "simulator" / "serving"


def _cost(pt: float, units: float, n: int, ctx: float, ps: int, cached: float) -> float:
    return 0.010 + 1e-5 * pt + 1e-4 * n + 1e-7 * ctx


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(1, 50)), min_size=1, max_size=12),
       st.integers(0, 40), st.integers(1, 70), st.integers(0, 300))
def test_decode_set_closed_forms_match_step_by_step(reqs: list[tuple[int, int]], warm: int,
                                                    k: int, avail: int) -> None:
    B = 16
    dec = DecodeSet(B)
    dec.step = warm
    seqs = []
    for i, (kv, out) in enumerate(reqs):
        seq = Seq(i, 0.0, kv, out + 1)
        seq.order = i
        dec.add(seq, kv)
        seqs.append(seq)
    kv_now = [kv for kv, _ in reqs]
    assert dec.kv_sum() == sum(kv_now)
    # each step adds one token per request; a block is needed whenever the KV crosses B
    brute = sum(1 for kv in kv_now for j in range(k) if (kv + j) % B == 0)
    assert dec.new_blocks(k) == brute
    fit = dec.steps_that_fit(avail, 10_000)
    assert dec.new_blocks(fit) <= avail < dec.new_blocks(fit + 1) or fit == 10_000
    assert dec.context_read(k) == sum(kv + j + 1 for kv in kv_now for j in range(k))


def test_decode_set_due_is_lazy_and_skips_stale_entries() -> None:
    dec = DecodeSet(4)
    a, b = Seq(0, 0.0, 10, 3), Seq(1, 0.0, 10, 5)
    a.order, b.order = 1, 2
    dec.add(a, 10)
    dec.add(b, 10)
    dec.remove(b)
    b.phase = Phase.WAITING  # the lane moves a removed request on: its heap entry is stale
    dec.step += 10
    assert list(dec.due()) == [a]
    assert dec.n == 1 and dec.kv_tokens(a) == 20


def test_kv_pool_evicts_unreferenced_prefix_entries_only_when_short() -> None:
    cache = PrefixCache(block_tokens=32, kv_blocks=2)
    pool = KVPool(10, 16, cache)
    for h in (1, 2):
        cache.pin(h)
        pool.alloc(2)  # the cache entries' blocks
        cache.unpin(h)
    assert pool.available() == 10 and pool.used == 4
    pool.alloc(7)  # 6 free: one entry (the least recently released, 1) is evicted
    assert list(cache.lru) == [2] and pool.used == 9 and pool.peak_used == 9
    pool.hold(1)
    assert pool.held == 1 and pool.usage() == 1.0
    with pytest.raises(RuntimeError):
        pool.alloc(3)  # 2 evictable blocks are not enough


def _lane(env: simpy.Environment, **cfg: object) -> Lane:
    lane_cfg = LaneConfig(**{"total_blocks": 1000, "max_model_len": 1 << 16, **cfg})
    return Lane(env, lane_cfg, make_scheduler(SchedulerKind.VLLM), StepTimer(_cost))


def test_one_wake_path_survives_an_op_and_an_arrival_in_the_same_run() -> None:
    # a long decode run is cut by an arrival; an op asked at the same instant must wait for
    # the step boundary instead of interrupting the process a second time
    env = simpy.Environment()
    lane = _lane(env)
    done: list[int] = []
    lane.on_finish = lambda seq, t: done.append(seq.rid)
    lane.submit(Seq(0, 0.0, 10, 400))
    ops: list[float] = []

    def later():  # type: ignore[no-untyped-def]
        yield env.timeout(1.0)
        lane.submit(Seq(1, 1.0, 10, 2))
        lane.request_op(lambda ln: ops.append(env.now))

    env.process(later())
    env.run()
    assert sorted(done) == [0, 1] and len(ops) == 1 and ops[0] >= 1.0


def test_scheduler_verbs_admit_drop_and_preempt() -> None:
    env = simpy.Environment()
    lane = _lane(env, total_blocks=20, preemption="swap")
    assert lane.cfg.preemption is PreemptionMode.SWAP
    dropped: list[DropReason] = []
    lane.on_drop = lambda seq, reason: dropped.append(reason)
    big, small = Seq(0, 0.0, 1000, 2), Seq(1, 0.0, 32, 2)
    lane.waiting.extend([big, small])
    lane.outstanding = 2
    got = lane.admit_waiting_head(0)  # the head can never fit: dropped, the next admitted
    assert dropped == [DropReason.EXCEEDS_KV] and got == (small, 32)
    lane._start_decoding(small, 32)
    del lane.prefilling[small]
    lane.preempt_newest()
    assert list(lane.swapped) == [small] and lane.stats.preemptions == 1
    assert lane.swap_in_fitting(0) == 2 and lane.n_dec == 1


def test_lane_config_rejects_bad_limits_and_modes() -> None:
    with pytest.raises(ConfigError, match="total_blocks"):
        LaneConfig(total_blocks=0)
    with pytest.raises(ConfigError, match="recompute"):
        LaneConfig(total_blocks=1, preemption="evict")


def test_request_log_frame_follows_the_record_schema() -> None:
    log = RequestLog(np.array([0.0, 1.0, 2.0]), np.array([10, 20, 30]), np.array([5, 6, 7]))
    log.first_token(0, 0.5)
    log.first_token(0, 0.9)  # a retry's first token does not replace the client's
    log.complete(0, 1.5, generated=4, preemptions=1, cached_tokens=8)
    log.drop(1, DropReason.CLIENT_TIMEOUT, preemptions=2)
    frame = log.frame()
    assert tuple(frame.columns) == RECORD_COLUMNS
    assert frame.status.tolist() == ["completed", "dropped", "running"]
    assert isinstance(frame.status.dtype, pd.CategoricalDtype)
    assert frame.drop_reason.tolist() == ["", "client_timeout", ""]
    assert frame.output_tokens.tolist() == [4, 6, 7]
    rec = log.record(1)
    assert isinstance(rec, RequestRecord) and rec.status is Status.DROPPED
    assert rec.drop_reason is DropReason.CLIENT_TIMEOUT and rec.preemptions == 2
    assert log.frame(arrived_by_s=1.0).request_id.tolist() == [0, 1]


def test_registries_are_keyed_by_enums_and_list_valid_names() -> None:
    assert list(SCHEDULERS) == list(SchedulerKind) and list(ROUTERS) == list(RouterKind)
    with pytest.raises(UnknownNameError, match="sarathi"):
        make_scheduler("fcfs")
    with pytest.raises(UnknownNameError, match="least_kv"):
        make_router("random")
    setup = ReplicaSetup(step_cost=_cost, lane=LaneConfig(total_blocks=1), scheduler="orca")
    assert setup.scheduler is SchedulerKind.ORCA


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("module", ["autoscale", "failures", "migration", "power_control",
                                    "hooks"])
def test_extensions_do_not_import_the_engine(module: str) -> None:
    assert "simulator.serving.engine" not in _imports(SERVING / f"{module}.py")


@pytest.mark.parametrize("path", sorted((SERVING / "schedulers").glob("*.py")),
                         ids=lambda p: p.name)
def test_schedulers_change_lanes_only_through_verbs(path: Path) -> None:
    tree = ast.parse(path.read_text())
    mutators = {"popleft", "appendleft", "append", "pop", "clear", "extend"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in mutators:
            owner = node.value
            assert not (isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name)
                        and owner.value.id == "lane"), f"{path.name}: lane.{owner.attr}"


def test_engine_step_observer_sees_every_step() -> None:
    from simulator.serving.engine import ServingEngine

    df = pd.DataFrame({"arrival_time_s": [0.0, 0.1, 0.2], "input_tokens": [50, 60, 70],
                       "output_tokens": [5, 40, 9]})
    seen: list[float] = []
    setup = ReplicaSetup(step_cost=_cost, lane=LaneConfig(total_blocks=100))
    out = ServingEngine(df, [setup] * 2, router=RouterKind.ROUND_ROBIN,
                        on_step=lambda lane, start, end: seen.append(end - start)).run()
    assert 0 < len(seen) <= int(out.lanes.steps.sum())  # a fast-forward run is one call
    assert sum(seen) == pytest.approx(float(out.lanes.busy_s.sum()))
