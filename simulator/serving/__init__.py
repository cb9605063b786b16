"""Serving simulation: replicas with continuous-batching schedulers, paged KV and prefix cache,
driven by real or synthetic traces, at cluster scale (routers, heterogeneous replica groups,
prefill/decode disaggregation, autoscaling, failures, power and power capping).

API for planners (planners/serve.py, gpu_mix.py, power.py build on exactly this)
================================================================================

Scenario YAML (all cluster keys optional; the homogeneous form of issue 4 still works)::

    model: llama3-70b
    cluster: {device: h100-sxm, devices_per_node: 8, intra_node: nvlink4, inter_node: ib-ndr,
              profile: h100-sxm}   # efficiency profile: a path (relative to this file), a
                                   # bundled name, or `defaults`; omitted: bundled, else catalog
    serving:
      engine: vllm-0.6             # software-stack preset (hwmodels/catalog/engines.yaml:
                                   # vllm-0.2, vllm-0.6, sglang, trtllm; unset: kernel-only,
                                   # the kernel model + 0.5 ms a step); it defaults scheduler,
                                   # max_num_seqs, max_batch_tokens, admission, prefix_caching
      admission: no-evict | recompute | swap   # no-evict reserves prompt + output KV
      engine_overhead: vllm-2024   # optional: per-step host overhead from the profile's fitted
                                   # engine (default: hwmodels.step.STEP_OVERHEAD_S, 0.5 ms)
      ep: 1                        # MoE expert parallelism over a stage's tp devices
      dp_attention: false          # attention/dense parts data-parallel over the tp devices
      # homogeneous: replicas x (tp, pp) of cluster.device           (issue 4, unchanged)
      replicas: 4
      tp: 4
      # heterogeneous: replica groups replace replicas/tp/pp/cluster.device
      replica_groups:
        - {name: h100, device: h100-sxm, count: 2, tp: 4, pp: 1, price_usd_per_hour: 4.5}
        - {name: a100, device: a100-80gb, count: 4, tp: 4}        # price: catalog default
        - {name: l4, device: l4, count: 8, tp: 1, slowdown: 1.0}   # slowdown: step multiplier
        # any group may name its own `profile:` (one per device in a mixed fleet)
      router: round_robin | least_loaded | least_kv | power_of_two | prefix_affinity
              | session_affinity | capacity_weighted | llumnix     # RouterKind
      routers: 1               # front-end router instances; request i goes to router i % n
      migration: {interval_s: 1.0, threshold: 8, max_per_round: 4}  # used by router: llumnix
      client_timeout_s: 30     # a request still queued this long after arrival is dropped
      # prefill/decode disaggregation (DistServe/Splitwise); omit (or null) = co-located
      disaggregation:
        prefill_replicas: 2    # short form: pools of cluster.device with serving.tp/pp
        decode_replicas: 2
        # long form, per pool (overrides the short form): any replica-group keys
        prefill: {device: h100-sxm, count: 2, tp: 2}
        decode:  {device: a100-80gb, count: 3, tp: 4}
        link: null             # null: derived from placement (intra_node / inter_node)
        same_node: false       # true: pools share nodes, KV moves over NVLink
    power:                     # optional; energy is per-step power either way, the section
                               # adds the time series, server/row bins and caps
      bin_s: 1.0               # power time-series resolution
      devices_per_server: 8    # default cluster.devices_per_node
      servers_per_row: 4
      cap_fraction: 0.7        # static cap (fraction of TDP), or cap_w: 490
      cap_targets: prefill     # all | prefill | decode | <group name>
      controller:              # dynamic capping (POLCA-style), needs a budget
        budget_w: 20000        # per row
        interval_s: 1.0        # how often row power is read
        latency_s: 2.0         # control latency: a decision takes effect this much later
        levels: [1.0, 0.85, 0.7]   # cap fractions of TDP, loosest first
        high: 0.95             # tighten one level when row power > high x budget
        low: 0.8               # loosen one level when row power < low x budget (hysteresis)
        targets: all
    failures:                  # optional
      mtbf_s: 86400            # per replica; durations accept 30s/15m/2h/54d
      distribution: exponential | weibull
      weibull_shape: 0.8
      repair_s: 600
      retry_budget: 2          # retries elsewhere (prefill recomputed), then dropped
      stragglers: {fraction: 0.1, slowdown: 1.5}
    autoscale:                 # optional; scales one group (the first by default)
      group: h100
      min_replicas: 1
      max_replicas: 8
      metric: queue | latency | utilization    # outstanding/replica, recent p90 TTFT, busy frac
      up_threshold: 16
      down_threshold: 2
      interval_s: 10
      cooldown_s: 60
      instance_start_s: 60     # VM/container start; weight load adds weight bytes / storage_Bps
      storage_Bps: 2.0e9

Python
------
- ``load_serving_scenario(mapping, file=)`` -> ``ServingScenario`` (a ``ServingPlan`` plus its
  workload spec); planners build a ``ServingPlan(model=, device=, serving=ServingConfig(...),
  groups=...)`` directly (``parse_serving_section`` turns serving keys into a ServingConfig and
  groups). ``scenario.groups`` is a
  tuple of ``ReplicaGroup(name, device: DeviceSpec, count, tp, pp, role: Role,
  price_usd_per_hour, slowdown)`` (Role: both | prefill | decode); disaggregation is simply
  groups with roles prefill and decode. ``scenario.power`` / ``.failures`` / ``.autoscale`` /
  ``.serving.migration`` are frozen configs (``PowerConfig``, ``CapControllerConfig``,
  ``FailureConfig``, ``AutoscaleConfig``, ``MigrationConfig``) or None, read from the YAML by
  ``simulator.schema.read_section`` (the fields are the keys; metric, distribution and cap
  targets are the StrEnums ``AutoscaleMetric``, ``FailureDistribution``, ``CapTarget``).
- Build variants without YAML: ``with_groups(scenario, [ReplicaGroup(...), ...])`` or
  ``dataclasses.replace(scenario, power=PowerConfig(...), ...)``.
- ``simulate_serving(plan, requests, *, seed=None, progress=None, setup=None,
  cap_controller=None, observer=None)`` -> ``ServingResult``; ``observer`` (a StepObserver)
  receives a ``StepRecord(replica, group, start_s, end_s, steps, tokens, ctx_read_tokens)``
  per lane step. ``cap_controller``: any object with the
  ``CapController`` interface (``decide(now, row, row_power_w) -> cap fraction | None``) to
  drive capping from Python (the power planner's hook); default built from power.controller.
- ``ServingResult.summary()``: the contract keys plus ``retries``, ``dropped_by_reason``,
  ``energy_per_request_j``, ``energy_per_token_j``, ``cost_per_million_tokens_usd``,
  ``prefix_hit_rate``, ``kv_transfer_s{p50,p99}``, ``migrations``, ``replica_seconds``,
  ``mean_power_w``, ``peak_row_power_w``, ``groups{name: {replicas, devices, gpu_hours,
  cost_usd}}``, and ``trace_start_offset_s`` when the trace's first arrival was not at 0
  (``traces.read_trace`` rebases arrivals to it, e.g. a Unix-epoch trace), and
  ``over_cap_fraction`` when a power cap was not met (share of capped device-time whose step
  power stayed above it: the SM clock cannot bring memory-bound steps under a low cap).
- Lifecycle (issue 13): every request ends exactly once, completed or dropped with a reason
  (``running`` only when ``serving.horizon_s`` cut the run). Like vLLM, a request whose
  prompt + output exceeds max_model_len is refused (``prompt_plus_output_exceeds_max_model_len``),
  never shortened; one whose KV (private + reused prefix blocks) can never fit a lane is dropped
  as ``exceeds_kv_capacity``. ``simulator.serving.invariants.check_run`` verifies this, KV
  accounting, time order and finite summaries after every ``simulate_serving`` run
  (``InvariantError``, CLI exit 4). ``serving.scheduler: static`` is refused with
  disaggregation; ``cluster.num_devices`` next to groups must hold them.
- ``ServingResult.power``: DataFrame(time_s, replica, group, server, row, power_w,
  busy_s, cap_fraction) per replica per bin (None without a power section);
  ``power_series(level="server" | "row" | "cluster")`` sums devices' power per bin;
  ``ServingResult.replicas``: DataFrame(replica, group, role, device, devices, start_s, end_s,
  price_usd_per_hour) - cost follows it; ``ServingResult.events``: failures, repairs,
  scale-ups/downs, cap changes, migrations (time_s, kind, replica, detail).
- Power per step: ``hwmodels.power.StepPower`` gives each step's FLOPs and bytes (roofline
  compute/memory split) for ``hwmodels.power.power_w`` (``simulator.serving.power.LanePower``);
  capping lowers the SM clock via ``freq_scale_for_cap`` and stretches steps by
  ``capped_time_s`` (prefill slows with clock, decode barely). ``simulator.serving.power.
  CapController`` is the one row cap controller (scenario power.controller and plan power).
- Modules: scenario (parse) -> plan (ServingPlan) -> assemble (engine inputs) -> simulate
  (engine run) -> energy (joules).
"""

from __future__ import annotations

from simulator.serving.assemble import build_group_setup, build_replica_setup
from simulator.serving.engine import ReplicaSetup, ServingEngine
from simulator.serving.metrics import SUMMARY_KEYS, ServingResult
from simulator.serving.plan import ServingConfig, ServingPlan, StepObserver, StepRecord
from simulator.serving.replica import Lane, LaneConfig, Replica
from simulator.serving.routers import RouterKind, make_router
from simulator.serving.scenario import (
    ServingScenario,
    apply_overrides,
    load_serving_scenario,
    load_workload,
    parse_serving_section,
    with_groups,
)
from simulator.serving.schedulers import SchedulerKind, make_scheduler
from simulator.serving.simulate import simulate_serving

__all__ = ["SUMMARY_KEYS", "Lane", "LaneConfig", "Replica", "ReplicaSetup", "RouterKind",
           "SchedulerKind", "ServingConfig", "ServingEngine", "ServingPlan", "ServingResult",
           "ServingScenario", "StepObserver", "StepRecord", "apply_overrides",
           "build_group_setup", "build_replica_setup", "load_serving_scenario", "load_workload",
           "make_router", "make_scheduler", "parse_serving_section", "simulate_serving",
           "with_groups"]
