"""Exact event-order tests of the pipeline schedules on tiny pipelines with uniform costs."""

from __future__ import annotations

import pytest

from hwmodels.errors import ConfigError
from hwmodels.parallel import PipelineSchedule
from simulator.training.engine import run_pipeline
from simulator.training.schedules import (
    SCHEDULES,
    Op,
    OpKind,
    build_schedule,
    gpipe,
    interleaved_1f1b,
    max_inflight,
    one_f_one_b,
    zb_h1,
)

F, B, W = OpKind.F, OpKind.B, OpKind.W


def _uniform(f: float = 1.0, b: float = 2.0, w: float = 0.0):  # type: ignore[no-untyped-def]
    costs = {F: f, B: b, W: w}
    return lambda stage, op: (costs[op.kind], 0.0)


def _no_p2p(src: int, dst: int, kind: OpKind) -> float:
    return 0.0


def test_1f1b_order_two_stages_four_microbatches() -> None:
    ops = one_f_one_b(2, 4)
    assert ops[0] == (Op(F, 0), Op(F, 1), Op(B, 0), Op(F, 2), Op(B, 1), Op(F, 3), Op(B, 2),
                      Op(B, 3))
    assert ops[1] == (Op(F, 0), Op(B, 0), Op(F, 1), Op(B, 1), Op(F, 2), Op(B, 2), Op(F, 3),
                      Op(B, 3))


def test_1f1b_event_times_and_bubble_fraction() -> None:
    p, m = 2, 4
    res = run_pipeline(one_f_one_b(p, m), pp=p, vpp=1, op_time=_uniform(), p2p_time=_no_p2p,
                       record=True)
    # (m + p - 1) slots of F + B = 3 units each
    assert res.makespan_s == pytest.approx((m + p - 1) * 3.0)
    busy = m * 3.0
    assert 1 - busy / res.makespan_s == pytest.approx((p - 1) / (m + p - 1))
    stage1 = [(e.name, e.start_s) for e in res.events if e.track == "stage 1"]
    assert stage1 == [("F0", 1.0), ("B0", 2.0), ("F1", 4.0), ("B1", 5.0), ("F2", 7.0),
                      ("B2", 8.0), ("F3", 10.0), ("B3", 11.0)]


def test_gpipe_same_time_as_1f1b_but_more_memory() -> None:
    p, m = 4, 8
    t_gpipe = run_pipeline(gpipe(p, m), pp=p, vpp=1, op_time=_uniform(),
                           p2p_time=_no_p2p).makespan_s
    t_1f1b = run_pipeline(one_f_one_b(p, m), pp=p, vpp=1, op_time=_uniform(),
                          p2p_time=_no_p2p).makespan_s
    assert t_gpipe == pytest.approx(t_1f1b)
    assert [max_inflight(s) for s in gpipe(p, m)] == [m] * p
    assert [max_inflight(s) for s in one_f_one_b(p, m)] == [4, 3, 2, 1]


@pytest.mark.parametrize("vpp", [2, 4])
def test_interleaved_divides_bubble_by_vpp(vpp: int) -> None:
    p, m = 4, 8
    base = run_pipeline(one_f_one_b(p, m), pp=p, vpp=1, op_time=_uniform(),
                        p2p_time=_no_p2p).makespan_s
    inter = run_pipeline(interleaved_1f1b(p, m, vpp), pp=p, vpp=vpp,
                         op_time=_uniform(1.0 / vpp, 2.0 / vpp), p2p_time=_no_p2p).makespan_s
    work = m * 3.0
    assert base - work == pytest.approx((p - 1) * 3.0)
    assert inter - work == pytest.approx((p - 1) * 3.0 / vpp)


def test_zb_h1_bubble_smaller_than_1f1b() -> None:
    p, m = 4, 8
    unit = _uniform(1.0, 1.0, 1.0)
    split_1f1b = tuple(tuple(x for op in s for x in ((op, Op(W, op.mb)) if op.kind is B
                                                      else (op,))) for s in one_f_one_b(p, m))
    t_split = run_pipeline(split_1f1b, pp=p, vpp=1, op_time=unit, p2p_time=_no_p2p).makespan_s
    t_1f1b = run_pipeline(one_f_one_b(p, m), pp=p, vpp=1, op_time=_uniform(1.0, 2.0),
                          p2p_time=_no_p2p).makespan_s
    t_zb = run_pipeline(zb_h1(p, m), pp=p, vpp=1, op_time=unit, p2p_time=_no_p2p).makespan_s
    assert t_1f1b == pytest.approx(m * 3 + (p - 1) * 3)
    assert t_zb < t_split < t_1f1b
    # the paper's ZB-H1 bubble with T_F = T_B = T_W: (p - 1)(T_F + T_B - T_W)
    assert t_zb == pytest.approx(m * 3 + (p - 1) * 1)
    for stage_ops in zb_h1(p, m):
        assert sorted((op.kind, op.mb) for op in stage_ops if op.kind is W) == \
            [(W, i) for i in range(m)]


def test_p2p_latency_delays_the_pipeline() -> None:
    p, m = 2, 4
    slow = run_pipeline(one_f_one_b(p, m), pp=p, vpp=1, op_time=_uniform(),
                        p2p_time=lambda s, d, k: 0.5).makespan_s
    # worked by hand: every steady-state round trip F->B between the stages pays two sends
    assert slow == pytest.approx(17.0)


def test_unknown_schedule_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="allowed: 1f1b, gpipe, interleaved, zb-h1"):
        build_schedule("pipedream", 2, 4)
    with pytest.raises(ConfigError, match="vpp"):
        build_schedule("1f1b", 2, 4, vpp=2)


def test_every_schedule_is_registered_once() -> None:
    assert list(SCHEDULES) == list(PipelineSchedule)
    assert SCHEDULES.get("zb-h1") is zb_h1 and SCHEDULES.get(PipelineSchedule.GPIPE) is gpipe
