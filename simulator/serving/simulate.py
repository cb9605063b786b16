"""simulate_serving: a ServingPlan and its requests -> the engine -> a ServingResult, with an
optional per-step observer (StepRecord per lane step) for callers that account each step."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from hwmodels.errors import ConfigError, InvariantError
from simulator.serving.assemble import build_group_setup, cluster_options
from simulator.serving.energy import busy_power_w, energy_j
from simulator.serving.engine import ReplicaSetup, ServingEngine
from simulator.serving.invariants import check_run
from simulator.serving.metrics import ServingResult
from simulator.serving.plan import ServingPlan, StepObserver, StepRecord
from simulator.serving.power import CapController
from simulator.serving.replica import Lane
from traces.closed_loop import ClientsSpec
from traces.stats import rebase_arrivals


class _StepEmitter:
    """The engine's per-step hook turned into StepRecords: per-lane deltas of the lane's
    accounting (steps, tokens, context read) since its previous step. Lanes that autoscaling
    provisions later are seen too, since the engine hands this hook to every lane it builds."""

    def __init__(self, observer: StepObserver) -> None:
        self.observer = observer
        self.engine: ServingEngine | None = None
        self._last: dict[int, tuple[int, int, float]] = {}

    def __call__(self, lane: Lane, start_s: float, end_s: float) -> None:
        st = lane.stats
        steps, tokens, ctx = self._last.get(id(lane), (0, 0, 0.0))
        self._last[id(lane)] = (st.steps, st.tokens, st.ctx_read)
        assert self.engine is not None  # bound right after the engine is built
        self.observer(StepRecord(replica=lane.replica,
                                 group=self.engine.replicas[lane.replica].group,
                                 start_s=start_s, end_s=end_s, steps=st.steps - steps,
                                 tokens=st.tokens - tokens, ctx_read_tokens=st.ctx_read - ctx))


def simulate_serving(plan: ServingPlan, requests: pd.DataFrame | ClientsSpec, *,
                     seed: int | None = None, progress: Callable[[float], None] | None = None,
                     setup: ReplicaSetup | None = None,
                     cap_controller: CapController | Callable[[], CapController] | None = None,
                     observer: StepObserver | None = None) -> ServingResult:
    """Replay `requests` on the plan's replicas; `setup` overrides the hwmodels-built replica
    of a homogeneous plan (tests inject step costs this way); `cap_controller` (a
    CapController, or a factory returning one per row) drives power capping; `observer` gets
    every lane step as a StepRecord. `requests` may be closed-loop clients
    (traces.closed_loop.ClientsSpec): requests are then issued as earlier ones end. A frame
    that did not come from traces (no attrs['trace_start_offset_s']) is rebased to its first
    arrival, as read_trace does: epoch-stamped arrivals must not bill decades of idle time."""
    sv = plan.serving
    clients = requests if isinstance(requests, ClientsSpec) else None
    if clients is not None:
        requests = pd.DataFrame({"arrival_time_s": [], "input_tokens": [], "output_tokens": []})
        requests.attrs["trace_start_offset_s"] = 0.0
    elif "trace_start_offset_s" not in requests.attrs:
        requests = rebase_arrivals(requests)
    groups = plan.replica_groups()
    setups: list[ReplicaSetup] = []
    for g in groups:
        built = setup if setup is not None and len(groups) == 1 else build_group_setup(plan, g)
        setups += [built] * g.count
    if not setups:
        raise ConfigError("no replicas: every group has count 0", file=plan.file,
                          key="serving.replica_groups")
    emitter = _StepEmitter(observer) if observer is not None else None
    engine = ServingEngine(requests, setups, router=sv.router,
                           seed=plan.seed if seed is None else seed,
                           horizon_s=sv.horizon_s, prefix_block_tokens=plan.prefix_block_tokens,
                           progress=progress,
                           cluster=cluster_options(plan, groups, cap_controller=cap_controller),
                           on_step=emitter, clients=clients)
    if emitter is not None:
        emitter.engine = engine
    scenario = getattr(plan, "name", None) or plan.file
    try:
        out = engine.run()
    except InvariantError as err:  # raised mid-run (a double ending, a KV over-allocation)
        if err.scenario is not None:
            raise
        raise InvariantError(err.invariant, err.detail, scenario=scenario) from None
    result = ServingResult(records=out.records, timeseries=out.timeseries, lanes=out.lanes,
                         duration_s=out.duration_s, device=groups[0].device,
                         slo_ttft_s=plan.slo_ttft_s, slo_tpot_s=plan.slo_tpot_s,
                         prefix_hit_rate=out.prefix_hit_rate,
                         busy_power_w=busy_power_w(plan, out.lanes[
                             out.lanes["group"] == groups[0].name], groups[0]),
                         replicas=out.replicas, power=out.power, events=out.events,
                         energy_j=energy_j(plan, out, groups),
                         migrations=engine.migrations,
                         over_cap_fraction=_over_cap_fraction(engine),
                         trace_start_offset_s=float(
                             requests.attrs.get("trace_start_offset_s", 0.0) or 0.0),
                         notes={"kv_blocks_per_replica": setups[0].lane.total_blocks,
                                "energy": ("per-step roofline power (hwmodels.power)"
                                           if out.energy_j is not None else
                                           "hwmodels.power at mean achieved utilization")})
    if clients is not None:
        result.notes["closed_loop"] = {"clients": clients.count,
                                       "think_time_s": clients.think_time_s,
                                       "think": str(clients.think)}
    check_run(records=out.records, n_requests=engine.n, lanes=engine.lanes,
              summary=result.summary(), cut=sv.horizon_s is not None, scenario=scenario)
    return result


def _over_cap_fraction(engine: ServingEngine) -> float:
    """Share of capped device-seconds whose step power stayed above the cap (memory-bound
    steps under a low cap: hwmodels.power lowers only the SM clock)."""
    meter = engine.meter
    if meter is None or meter.capped_device_s <= 0:
        return 0.0
    return meter.over_cap_device_s / meter.capped_device_s
