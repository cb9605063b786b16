"""Scenario builders for property-based fuzzing: VALID scenarios (the shipped scenarios'
shapes, mutated within allowed ranges) and INVALID ones (one certainly-bad mutation of a valid
one). Every builder takes a Chooser, so the same code drives hypothesis (DrawChooser: shrinks)
and the 10,000-run benchmark (RandomChooser: fast, seeded). Runs are kept tiny: few requests,
short horizons, small clusters.

Keys come from the dataclasses read by simulator.schema.read_section: simulator/training/
scenario.py (cluster, training, parallelism, run), simulator/longrun/scenario.py (run:),
simulator/serving/plan.py (ServingConfig), simulator/serving/cluster_config.py (power,
failures, autoscale, migration, groups) and traces/synth.py (workload.synthetic).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hwmodels.parallel import PipelineSchedule, Recompute
from simulator.longrun.checkpoint import CheckpointMode
from simulator.serving.routers import ROUTERS
from simulator.serving.schedulers import SCHEDULERS

T = TypeVar("T")

ROUTER_NAMES = tuple(ROUTERS.names())
SCHEDULER_NAMES = tuple(SCHEDULERS.names())
# static batching finishes a whole batch at once, so it cannot hand prefills off
DISAGG_SCHEDULERS = tuple(n for n in SCHEDULER_NAMES if n != "static")
SCHEDULE_NAMES = tuple(str(s) for s in PipelineSchedule)
RECOMPUTE_NAMES = tuple(str(r) for r in Recompute)


def _recompute_names(model: str) -> tuple[str, ...]:
    """The recompute modes valid for a catalog model (per-op SAC is dense-only)."""
    from hwmodels import sac
    from hwmodels.catalog import load_model

    if sac.supports(load_model(model)):
        return RECOMPUTE_NAMES
    return tuple(r for r in RECOMPUTE_NAMES if r != Recompute.SELECTIVE_OP)
CHECKPOINT_MODES = tuple(str(m) for m in CheckpointMode)


class Chooser(Protocol):
    def choice(self, seq: Sequence[T]) -> T: ...
    def integer(self, lo: int, hi: int) -> int: ...
    def floating(self, lo: float, hi: float) -> float: ...
    def boolean(self) -> bool: ...


class RandomChooser:
    """Chooser over random.Random (the benchmark: fast, reproducible from a seed)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.rng.randrange(len(seq))]

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def floating(self, lo: float, hi: float) -> float:
        return round(self.rng.uniform(lo, hi), 4)

    def boolean(self) -> bool:
        return self.rng.random() < 0.5


class DrawChooser:
    """Chooser over hypothesis' draw (the test suite: shrinking, derandomized in CI)."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def choice(self, seq: Sequence[T]) -> T:
        return self.draw(self.st.sampled_from(list(seq)))

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(self.st.integers(lo, hi))

    def floating(self, lo: float, hi: float) -> float:
        return round(self.draw(self.st.floats(lo, hi, allow_nan=False)), 4)

    def boolean(self) -> bool:
        return self.draw(self.st.booleans())


# ---------------------------------------------------------------- training (one iteration)

# (name, layers, heads, kv heads, experts): small catalog models so one iteration is quick
TRAIN_MODELS = (("llama3-8b", 32, 32, 8, 0), ("gpt-1.7b", 24, 24, 24, 0),
                ("mpt-1b", 24, 16, 16, 0), ("llama2-7b", 32, 32, 32, 0),
                ("mixtral-8x7b", 32, 32, 8, 8))
TRAIN_DEVICES = ("h100-sxm", "a100-80gb", "h200", "mi300x")
FP8_DEVICES = ("h100-sxm", "h200", "mi300x")


def _divisors(n: int, options: Sequence[int]) -> list[int]:
    return [x for x in options if n % x == 0]


def training_scenario(c: Chooser) -> dict[str, Any]:
    """A valid training scenario (tp/pp/dp/cp/ep, ZeRO, schedules, microbatches)."""
    name, layers, heads, kv, experts = c.choice(TRAIN_MODELS)
    tp = c.choice(_divisors(heads, (1, 2, 4, 8)) if kv % 1 == 0 else [1])
    pp = c.choice(_divisors(layers, (1, 2, 4)))
    cp = c.choice((1, 1, 2))
    dp = c.choice((1, 2, 4))
    ep = c.choice(_divisors(dp * cp, (1, 2, 4, 8))) if experts else 1
    if experts and experts % ep:
        ep = 1
    schedule = c.choice(SCHEDULE_NAMES) if pp > 1 else "1f1b"
    vpp = 1
    if schedule == "interleaved":
        vpp_opts = [v for v in (2, 3, 4) if layers % (pp * v) == 0]
        if vpp_opts:
            vpp = c.choice(vpp_opts)
        else:
            schedule = "1f1b"
    micro = c.choice((1, 1, 2))
    microbatches = c.choice((1, 2, 4, 8)) * (pp if schedule == "interleaved" else 1)
    seq_len = c.choice((512, 1024, 2048))
    par: dict[str, Any] = {"tp": tp, "pp": pp, "cp": cp, "ep": ep,
                           "dp": c.choice(("auto", dp)), "zero": c.integer(0, 3),
                           "sequence_parallel": tp > 1 and c.boolean(),
                           "recompute": c.choice(_recompute_names(name)), "schedule": schedule}
    if vpp > 1:
        par["vpp"] = vpp
    if c.boolean():
        par["overlap_grad_reduce"] = c.boolean()
    if par["zero"] >= 1 and c.choice((False, False, True)):  # ZeRO-Offload / ZeRO-Infinity
        par["offload_optimizer"] = c.choice(("cpu", "nvme", True))
        if par["zero"] == 3 and c.boolean():
            par["offload_params"] = c.choice(("cpu", "nvme"))
    devices = tp * pp * cp * dp
    device = c.choice(TRAIN_DEVICES)
    dtype = c.choice(("bf16", "bf16", "fp8")) if device in FP8_DEVICES else "bf16"
    return {
        "name": "fuzz-train", "model": name,
        "cluster": {"device": device, "num_devices": devices, "devices_per_node": 8},
        "training": {"seq_len": seq_len, "global_batch": micro * dp * microbatches,
                     "micro_batch": micro, "dtype": dtype},
        "parallelism": par,
    }


def longrun_scenario(c: Chooser) -> dict[str, Any]:
    """A valid training scenario with a run: section (failures, checkpoints, spares)."""
    sc = training_scenario(c)
    model = c.choice(("llama3", "exponential", "weibull", "none"))
    failures: Any = "none" if model == "none" else {"model": model}
    if model == "llama3":
        failures["scale"] = c.choice((0.5, 1.0, 50.0, 500.0))
    elif model == "weibull":
        failures["shape"] = c.choice((0.5, 0.78, 1.0, 2.0))
        failures["node_failures_per_1000_node_days"] = c.choice((5.0, 500.0, 5000.0))
    elif model == "exponential":
        failures["node_failures_per_1000_node_days"] = c.choice((5.0, 500.0, 5000.0))
    nodes = max(1, math.ceil(sc["cluster"]["num_devices"] / 8))
    mode = c.choice(CHECKPOINT_MODES)
    checkpoint: dict[str, Any] = {"mode": mode,
                                  "interval_s": c.choice(("auto", "10m", "1h", 120))}
    if mode == "multilevel":
        checkpoint["persistent_every"] = c.integer(1, 5)
    run: dict[str, Any] = {"duration": c.choice(("1h", "6h", "1d", "7d")),
                           "failures": failures, "checkpoint": checkpoint,
                           "detection_s": c.choice(("0s", "60s", "5m")),
                           "restart_s": c.choice(("0s", "5m", "20m")),
                           "spares": c.integer(0, nodes), "on_shortage":
                           c.choice(("wait", "elastic")), "seed": c.integer(0, 5)}
    if c.boolean():
        run["seeds"] = c.integer(1, 3)
    if c.choice((False, False, True)):  # preemptible capacity
        run["spot"] = {"preemptions_per_node_hour": c.choice((0.0, 0.001, 0.05, 1.0)),
                       "warning_s": c.choice(("0s", "30s", "120s")),
                       "replacement_s": c.choice(("5m", "1h", "never")),
                       "fraction": c.choice((0.0, 0.5, 1.0)),
                       "price_usd_per_gpu_hour": 2.0, "on_demand_price_usd_per_gpu_hour": 5.0}
    sc["run"] = run
    sc["name"] = "fuzz-longrun"
    return sc


# ------------------------------------------------------------------------------- serving

SERVE_MODELS = ("llama3-8b", "mistral-7b", "mpt-1b", "llama2-7b")
SERVE_DEVICES = ("h100-sxm", "a100-80gb", "h200", "l40s")


def _lengths(c: Chooser, *, short: bool) -> dict[str, Any]:
    hi = 64 if short else 1024
    kind = c.choice(("fixed", "uniform", "lognormal", "zipf"))
    if kind == "fixed":
        return {"dist": "fixed", "value": c.integer(1, hi)}
    if kind == "uniform":
        lo = c.integer(1, hi)
        return {"dist": "uniform", "min": lo, "max": lo + c.integer(0, hi)}
    if kind == "lognormal":
        return {"dist": "lognormal", "mean": c.integer(8, hi), "sigma": c.choice((0.5, 1.0)),
                "min": 1, "max": 2 * hi}
    return {"dist": "zipf", "a": c.choice((1.2, 1.5, 2.0)), "min": 1, "max": hi}


def _arrival(c: Chooser) -> dict[str, Any]:
    process = c.choice(("poisson", "gamma", "mmpp", "diurnal"))
    if process == "poisson":
        return {"process": "poisson", "rate": c.choice((1.0, 10.0, 50.0, 200.0))}
    if process == "gamma":
        return {"process": "gamma", "rate": c.choice((5.0, 50.0)), "cv": c.choice((0.5, 2.0, 4.0))}
    if process == "mmpp":
        return {"process": "mmpp", "rate_on": c.choice((20.0, 100.0)), "rate_off": 1.0,
                "mean_on_s": c.choice((0.5, 2.0)), "mean_off_s": c.choice((0.5, 2.0))}
    return {"process": "diurnal", "rate": c.choice((5.0, 50.0)), "amplitude": 0.5,
            "period_s": 10.0}


def serving_scenario(c: Chooser) -> dict[str, Any]:
    """A valid serving scenario: homogeneous, heterogeneous groups or disaggregated; every
    router and scheduler; optional migration, autoscaling, failures and power."""
    model = c.choice(SERVE_MODELS)
    device = c.choice(SERVE_DEVICES)
    tp = c.choice((1, 1, 2))
    serving: dict[str, Any] = {
        "tp": tp, "scheduler": c.choice(SCHEDULER_NAMES), "router": c.choice(ROUTER_NAMES),
        "max_num_seqs": c.choice((4, 16, 256)), "max_batch_tokens": c.choice((2048, 8192)),
        "chunk_size": c.choice((64, 512)), "kv_block_size": c.choice((16, 32)),
        "preemption": c.choice(("recompute", "swap")),
        "gpu_memory_utilization": c.choice((0.5, 0.9)),
    }
    if c.boolean():
        serving["prefix_caching"] = True
    if c.boolean():
        serving["routers"] = 2
    if c.boolean():
        serving["client_timeout_s"] = c.choice((0.5, 5.0, 60.0))
    if c.boolean():
        serving["migration"] = {"interval_s": c.choice((0.1, 1.0)),
                                "threshold": c.integer(1, 8), "max_per_round": c.integer(1, 4)}
    cluster: dict[str, Any] = {"device": device, "devices_per_node": 8}
    shape = c.choice(("homogeneous", "groups", "disagg"))
    sc: dict[str, Any] = {"name": f"fuzz-serve-{shape}", "model": model, "cluster": cluster,
                          "serving": serving, "seed": c.integer(0, 10)}
    if shape == "homogeneous":
        replicas = c.integer(1, 4)
        serving["replicas"] = replicas
        cluster["num_devices"] = replicas * tp * c.choice((1, 1, 2))
    elif shape == "groups":
        groups = [{"name": f"g{i}", "device": c.choice(SERVE_DEVICES), "count": c.integer(1, 2),
                   "tp": c.choice((1, 2))} for i in range(c.integer(1, 3))]
        if c.boolean():
            groups[0]["price_usd_per_hour"] = c.choice((0.5, 2.0))
        if c.boolean():
            groups[-1]["slowdown"] = c.choice((1.0, 1.5))
        serving["replica_groups"] = groups
        if c.boolean():
            lo = c.integer(0, 1)
            sc["autoscale"] = {"group": groups[-1]["name"], "min_replicas": lo,
                               "max_replicas": lo + c.integer(1, 3),
                               "metric": c.choice(("queue", "latency", "utilization")),
                               "up_threshold": c.choice((1.0, 4.0)), "down_threshold": 0.5,
                               "interval_s": c.choice((0.5, 2.0)), "cooldown_s": 1.0,
                               "instance_start_s": c.choice((0.0, 1.0))}
    else:
        serving["disaggregation"] = {"prefill_replicas": c.integer(1, 3),
                                     "decode_replicas": c.integer(1, 3)}
        if serving["scheduler"] == "static":  # refused with disaggregation (invalid inputs)
            serving["scheduler"] = c.choice(DISAGG_SCHEDULERS)
        if c.boolean():
            serving["disaggregation"]["same_node"] = True
    if c.boolean():
        sc["failures"] = {"mtbf_s": c.choice((0.5, 5.0, 100.0)),
                          "distribution": c.choice(("exponential", "weibull")),
                          "weibull_shape": c.choice((0.5, 1.0, 2.0)),
                          "repair_s": c.choice((0.0, 1.0, 10.0)), "retry_budget": c.integer(0, 3)}
        if c.boolean():
            sc["failures"]["stragglers"] = {"fraction": 0.5, "slowdown": 2.0}
    if c.boolean():
        power: dict[str, Any] = {"bin_s": c.choice((0.5, 1.0)), "servers_per_row": c.integer(1, 4)}
        cap = c.choice(("none", "fraction", "w", "controller"))
        if cap == "fraction":
            power["cap_fraction"] = c.choice((0.5, 0.8, 1.0))
        elif cap == "w":
            power["cap_w"] = c.choice((200.0, 500.0))
        elif cap == "controller":
            power["controller"] = {"budget_w": c.choice((500.0, 5000.0)), "interval_s": 0.5,
                                   "latency_s": 0.5}
        sc["power"] = power
    synthetic: dict[str, Any] = {"num_requests": c.integer(1, 30), "arrival": _arrival(c),
                                 "input": _lengths(c, short=False),
                                 "output": _lengths(c, short=True)}
    if c.boolean():
        synthetic["prefix"] = {"num_prompts": c.integer(1, 4), "tokens": c.choice((16, 256)),
                               "share": c.choice((0.5, 1.0)),
                               # prefix hashes cover whole KV blocks (else exit 2)
                               "block_tokens": serving["kv_block_size"] * c.choice((1, 2))}
    sc["workload"] = {"synthetic": synthetic}
    if c.boolean():
        sc["slo"] = {"ttft_s": c.choice((0.1, 1.0)), "tpot_s": c.choice((0.01, 0.1))}
    return sc


# ------------------------------------------------- scale-up topologies (issue 18)

# device -> (its own scale-up link, a host link it may use instead, its default NIC)
TOPO_DEVICES = {"tpu-v5e": ("ici", "pcie4", "eth-100g"), "mi300x": ("infinity-fabric", "pcie5",
                                                                    "ib-ndr"),
                "ascend-910b": ("hccs", "pcie4", "roce-200g"),
                "h100-sxm": ("nvlink4", "pcie5", "ib-ndr")}
TORUS_POD = (16, 16)  # tpu-v5e's max_dims (hwmodels/catalog/devices.yaml)


def _shapes_2d(n: int) -> list[list[int]]:
    """Every 2D slice shape of n chips that fits the v5e pod."""
    return [[a, n // a] for a in range(1, n + 1)
            if n % a == 0 and a <= TORUS_POD[0] and n // a <= TORUS_POD[1]]


def topology_scenario(c: Chooser) -> dict[str, Any]:
    """A valid training or serving scenario on a torus (TPU v5e: one or two slices, a chosen
    or default slice_shape), a mesh (MI300X, Ascend 910B) or a switch (H100), with the
    device's own scale-up link, a host link instead, or none named; small models."""
    device = c.choice(sorted(TOPO_DEVICES))
    own, host, nic = TOPO_DEVICES[device]
    cluster: dict[str, Any] = {"device": device}
    if device == "tpu-v5e":
        per_slice = c.choice((4, 8, 16))
        slices = c.choice((1, 1, 2))
        cluster["num_devices"] = per_slice * slices
        if slices > 1 or c.boolean():
            cluster["devices_per_node"] = per_slice
        if c.boolean():
            cluster["slice_shape"] = c.choice(_shapes_2d(per_slice))
    else:
        per_node = c.choice((4, 8)) if device != "h100-sxm" else 8
        cluster["devices_per_node"] = per_node
        cluster["num_devices"] = per_node * c.choice((1, 2))
    if device == "tpu-v5e" and "slice_shape" in cluster:
        link = c.choice((None, own))  # a host link would make the slice a switch
    else:
        link = c.choice((None, own, host))
    if link is not None:
        cluster["intra_node"] = link
    if c.boolean():
        cluster["inter_node"] = nic
    n = cluster["num_devices"]
    tp = c.choice(_divisors(min(n, cluster.get("devices_per_node", n)), (1, 2, 4)))
    if c.boolean():  # serving
        if "slice_shape" in cluster:  # one replica per slice: tp x pp = the slice's chips
            tp = math.prod(cluster["slice_shape"])
        sc: dict[str, Any] = {
            "name": "fuzz-topology-serve", "model": "mpt-1b", "cluster": cluster,
            "serving": {"tp": tp, "replicas": max(1, n // tp)}, "seed": c.integer(0, 5),
            "workload": {"synthetic": {"num_requests": c.integer(1, 12),
                                       "arrival": _arrival(c),
                                       "input": _lengths(c, short=True),
                                       "output": _lengths(c, short=True)}}}
        return sc
    dp = n // tp
    micro = c.choice((1, 2))
    return {"name": "fuzz-topology-train", "model": c.choice(("mpt-1b", "gpt-1.7b")),
            "cluster": cluster,
            "training": {"seq_len": c.choice((512, 1024)), "global_batch": micro * dp
                         * c.choice((1, 2)), "micro_batch": micro, "dtype": "bf16"},
            "parallelism": {"tp": tp, "pp": 1, "dp": "auto", "zero": c.integer(0, 3)}}


def topology_mutation(c: Chooser, sc: dict[str, Any]) -> Mutation:
    """One certainly-bad topology change: a slice shape whose chips do not match, one with
    the wrong number of axes, a shape on a device without a torus, a scale-up link the device
    does not have as intra_node or inter_node, an unknown inter_node."""
    cl = sc["cluster"]
    device = cl["device"]
    n = cl.get("devices_per_node", cl["num_devices"]) if device == "tpu-v5e" else 0
    options = ["intra_foreign", "inter_foreign", "inter_unknown"]
    options += ["shape_count", "shape_axes"] if device == "tpu-v5e" else ["shape_not_torus"]
    how = c.choice(options)
    if how == "shape_count":
        a = c.choice(_shapes_2d(n))[0]
        return Mutation(("cluster", "slice_shape"), [a, n // a + 1],
                        f"slice_shape not {n} chips")
    if how == "shape_axes":
        return Mutation(("cluster", "slice_shape"), c.choice(([n], [1, 1, n], [1, n, 1, 1])),
                        "slice_shape wrong axes")
    if how == "shape_not_torus":
        return Mutation(("cluster", "slice_shape"), [2, 4], f"slice_shape on {device}")
    foreign = c.choice([TOPO_DEVICES[d][0] for d in sorted(TOPO_DEVICES) if d != device])
    if how == "intra_foreign":
        return Mutation(("cluster", "intra_node"), foreign, f"intra_node {foreign} on {device}")
    if how == "inter_foreign":
        return Mutation(("cluster", "inter_node"), foreign, f"inter_node {foreign} on {device}")
    return Mutation(("cluster", "inter_node"), "carrier-pigeon", "unknown inter_node")


# ------------------------------------------------------------- shipped scenarios, mutated

SHIPPED = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"


def shipped_scenario(c: Chooser) -> dict[str, Any]:
    """One of simulator/scenarios/*.yaml, shrunk to a short run (a 5-20 s trace window, 30
    synthetic requests, a run of at most a week) and mutated within its allowed ranges:
    router, scheduler and seed for serving; ZeRO, recompute, microbatch and the run's
    failure scale, checkpoint mode and spares for training."""
    import yaml

    path = c.choice(sorted(SHIPPED.glob("*.yaml")))
    sc = yaml.safe_load(path.read_text())
    if "serving" in sc:
        sc["serving"]["router"] = c.choice(ROUTER_NAMES)
        schedulers = DISAGG_SCHEDULERS if "disaggregation" in sc["serving"] else SCHEDULER_NAMES
        engine = sc["serving"].get("engine")
        if engine:  # an engine preset runs only its own batching policies
            from hwmodels.engine_profiles import load_engine

            supported = set(load_engine(engine).supported_schedulers)
            schedulers = tuple(s for s in schedulers if s in supported) or schedulers
        sc["serving"]["scheduler"] = c.choice(schedulers)
        sc["seed"] = c.integer(0, 10)
        wl = sc["workload"]
        if "synthetic" in wl:
            wl["synthetic"]["num_requests"] = c.integer(1, 30)
        else:
            wl["window"] = {"start_s": 0, "end_s": c.choice((5, 10, 20))}
        return sc
    par = sc["parallelism"]
    par["zero"] = c.integer(0, 3) if par.get("zero", 0) else par.get("zero", 0)
    if par["zero"] != 3:
        par.pop("fsdp_shard_size", None)  # hybrid sharding is a ZeRO-3 layout
    # DualPipe-style overlap needs the activations it overlaps (no full recompute)
    par["recompute"] = c.choice(_recompute_names(sc["model"])
                                if par.get("ep_overlap") != "dualpipe" else ("none", "selective"))
    if "run" in sc:
        run = sc["run"]
        run["duration"] = c.choice(("1d", "3d", "7d"))
        run["failures"] = {"model": "llama3", "scale": c.choice((0.5, 1.0, 4.0))}
        run["checkpoint"] = {"interval_s": c.choice(("auto", "10m", "1h")),
                             "mode": c.choice(CHECKPOINT_MODES)}
        run["spares"] = c.integer(0, 64)
        run["on_shortage"] = c.choice(("wait", "elastic"))
    return sc


# ------------------------------------------------------------------------ invalid mutations

@dataclass(frozen=True)
class Mutation:
    """One certainly-bad change to a valid scenario: set `path` to `value` (or delete it)."""

    path: tuple[str | int, ...]
    value: Any
    what: str
    delete: bool = False


MISSING = object()

# keys whose value must never be null (a default exists but null is not a value for it)
NON_NULL = {
    "serving": ("serving.tp", "serving.pp", "serving.chunk_size", "serving.max_num_seqs",
                "serving.max_batch_tokens", "serving.kv_block_size", "serving.scheduler",
                "serving.router", "serving.gpu_memory_utilization", "cluster.device", "model",
                "seed"),
    "training": ("parallelism.tp", "parallelism.pp", "parallelism.zero", "training.seq_len",
                 "training.global_batch", "training.micro_batch", "cluster.device",
                 "cluster.num_devices", "model"),
}
NON_NULL["longrun"] = NON_NULL["training"] + ("run.spares", "run.on_shortage",
                                             "run.checkpoint.mode")

BAD_ENUMS = {
    "serving": {"serving.scheduler": "fifo", "serving.router": "random",
                "serving.preemption": "evict", "serving.dtype": "fp7", "cluster.device": "tpu-v9",
                "model": "llama-99b", "workload.synthetic.arrival.process": "hawkes",
                "workload.synthetic.input.dist": "pareto"},
    "training": {"parallelism.schedule": "zigzag", "parallelism.recompute": "half",
                 "training.dtype": "fp7", "cluster.device": "tpu-v9", "model": "llama-99b",
                 "cluster.inter_node": "carrier-pigeon", "parallelism.zero": 4},
}
BAD_ENUMS["longrun"] = {**BAD_ENUMS["training"], "run.on_shortage": "panic",
                        "run.checkpoint.mode": "tape", "run.failures.model": "cosmic-rays"}

# counts that must be >= 1 (so 0, -5 and huge values that exceed the cluster are all bad)
POSITIVE_INTS = {
    "serving": ("serving.tp", "serving.pp", "serving.max_num_seqs", "serving.chunk_size",
                "serving.kv_block_size", "serving.max_batch_tokens"),
    "training": ("parallelism.tp", "parallelism.pp", "training.seq_len",
                 "training.global_batch", "training.micro_batch", "cluster.num_devices"),
}
POSITIVE_INTS["longrun"] = POSITIVE_INTS["training"]
# counts where 10**30 cannot be meant (more devices than the cluster has, a KV block or a
# microbatch bigger than any memory); a huge max_num_seqs or chunk_size just means no limit
HUGE_BAD = {"serving": ("serving.tp", "serving.pp", "serving.kv_block_size"),
            "training": ("parallelism.tp", "parallelism.pp", "training.micro_batch")}
HUGE_BAD["longrun"] = HUGE_BAD["training"]

# leaves where a negative number is never meaningful (phase-like keys excluded)
NEVER_NEGATIVE_EXCLUDE = ("phase_s",)


def _get(d: Any, path: Sequence[str | int]) -> Any:
    for p in path:
        if isinstance(d, dict) and p in d:
            d = d[p]
        elif isinstance(d, list) and isinstance(p, int) and p < len(d):
            d = d[p]
        else:
            return MISSING
    return d


def leaves(d: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], Any]]:
    """(path, value) of every scalar leaf."""
    out: list[tuple[tuple[str | int, ...], Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += leaves(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += leaves(v, (*prefix, i))
    else:
        out.append((prefix, d))
    return out


def mappings(d: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Paths of every mapping (where an unknown key can be planted)."""
    out: list[tuple[str | int, ...]] = []
    if isinstance(d, dict):
        out.append(prefix)
        for k, v in d.items():
            out += mappings(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += mappings(v, (*prefix, i))
    return out


def _dotted(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def mutation(c: Chooser, sc: dict[str, Any], kind: str) -> Mutation:
    """One mutation that must make the scenario invalid (exit 2)."""
    numeric = [(p, v) for p, v in leaves(sc) if isinstance(v, (int, float))
               and not isinstance(v, bool)
               and not any(str(x) in NEVER_NEGATIVE_EXCLUDE for x in p)]
    how = c.choice(("unknown_key", "wrong_type", "negative", "nan", "null", "bad_enum",
                    "zero_count", "huge_count", "empty_string", "list_for_scalar"))
    if how == "unknown_key":
        # an inline model is an HF config.json mapping: unknown keys there are allowed (HF
        # configs carry many keys fleetsim does not read)
        where = c.choice([m for m in mappings(sc) if not m or m[0] != "model"])
        return Mutation((*where, "bogus_key"), 1, f"unknown key {'.'.join(map(str, where))}")
    if how in ("wrong_type", "negative", "nan", "list_for_scalar") and numeric:
        p, _ = c.choice(numeric)
        value = {"wrong_type": "abc", "negative": -5, "nan": float("nan"),
                 "list_for_scalar": [1, 2]}[how]
        return Mutation(p, value, f"{how} at {'.'.join(map(str, p))}")
    if how == "null":
        keys = NON_NULL[kind]
        if "pools" in sc.get("cluster", {}):  # pools make cluster.device/num_devices optional
            keys = tuple(k for k in keys if not k.startswith("cluster.")) or keys
        key = c.choice(keys)
        return Mutation(_dotted(key), None, f"null {key}")
    if how == "bad_enum":
        key = c.choice(sorted(BAD_ENUMS[kind]))
        return Mutation(_dotted(key), BAD_ENUMS[kind][key], f"bad enum {key}")
    if how in ("zero_count", "huge_count"):
        huge = HUGE_BAD[kind]
        if "replica_groups" in sc.get("serving", {}):
            huge = ("serving.kv_block_size",)  # every group sets its own tp (and pp)
        key = c.choice(POSITIVE_INTS[kind] if how == "zero_count" else huge)
        value = 0 if how == "zero_count" else 10 ** 30  # beyond int64: reject, never run
        return Mutation(_dotted(key), value, f"{how} {key}")
    key = c.choice(("cluster.device", "model"))
    return Mutation(_dotted(key), "", f"empty string {key}")


def apply_mutation(sc: dict[str, Any], m: Mutation) -> dict[str, Any]:
    out = copy.deepcopy(sc)
    d: Any = out
    for p in m.path[:-1]:
        if isinstance(d, dict):
            if not isinstance(d.get(p), (dict, list)):
                d[p] = {}  # e.g. failures: none -> a mapping holding the bad key
            d = d[p]
        else:
            d = d[p]  # type: ignore[index]
    if m.delete:
        d.pop(m.path[-1], None)
    else:
        d[m.path[-1]] = m.value
    return out


@dataclass(frozen=True)
class FuzzCase:
    """One fuzz input: a scenario for `command`, valid or with one bad mutation."""

    kind: str  # training | longrun | serving
    scenario: dict[str, Any]
    valid: bool
    mutation: str = ""
    expect: tuple[int, ...] = (0,)  # allowed exit codes
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def serving(self) -> bool:
        return "serving" in self.scenario

    @property
    def command(self) -> tuple[str, ...]:
        return ("simulate", "serve") if self.serving else ("simulate", "train")


BUILDERS = {"training": training_scenario, "longrun": longrun_scenario,
            "serving": serving_scenario, "shipped": shipped_scenario,
            "topology": topology_scenario}


def fuzz_case(c: Chooser, *, kind: str | None = None, valid: bool | None = None) -> FuzzCase:
    # one run in ten replays a (shrunk, mutated) shipped scenario: slower, but the real shapes
    kind = kind or c.choice(("training", "training", "longrun", "longrun", "serving",
                             "serving", "serving", "serving", "serving", "shipped",
                             "topology"))
    sc = BUILDERS[kind](c)
    if valid is None:
        valid = c.boolean()
    if valid:
        # a training plan may legitimately not fit memory: infeasible (3) is a clean answer
        return FuzzCase(kind, sc, True, expect=(0,) if "serving" in sc else (0, 3))
    if kind == "topology" and c.boolean():
        return FuzzCase(kind, apply_mutation(sc, m := topology_mutation(c, sc)), False,
                        m.what, expect=(2,))
    if kind in ("shipped", "topology"):
        kind = "serving" if "serving" in sc else ("longrun" if "run" in sc else "training")
    m = mutation(c, sc, kind)
    # a huge count may also be reported as infeasible (does not fit) instead of rejected
    expect = (2, 3) if m.what.startswith("huge") else (2,)
    return FuzzCase(kind, apply_mutation(sc, m), False, m.what, expect=expect)


def hypothesis_cases(*, kind: str | None = None, valid: bool | None = None) -> Any:
    """A hypothesis strategy of FuzzCase."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Callable[[Any], Any]) -> FuzzCase:
        return fuzz_case(DrawChooser(draw), kind=kind, valid=valid)

    return build()


# ------------------------------------------------------------------- CLI options (no YAML)

ODD_INTS = ("-1", "0", "1", "7", "4096", "99999999999999999999", "abc", "", "1.5", "nan")
ODD_FLOATS = ("-1", "0", "0.5", "1e308", "inf", "nan", "-inf", "abc", "")
ODD_NAMES = ("h100-sxm", "llama3-8b", "", "nope", "../etc/passwd", "h100-sxm ", "A100-80GB")


def cli_argv(c: Chooser) -> list[str]:
    """argv for the commands that take no scenario file, with odd option values; the answer
    must be exit 0, 2 or 3 with the one-line stderr contract, never a traceback."""
    which = c.choice(("estimate", "hw", "models", "synth", "stats", "hw-cluster"))
    if which == "hw-cluster":  # hw show with cluster options (issue 18 topologies)
        argv = ["hw", "show", c.choice(("tpu-v5e", "mi300x", "ascend-910b", "h100-sxm",
                                        "mi250x", *ODD_NAMES))]
        if c.boolean():
            argv += ["--num-devices", c.choice(("8", "16", "256", "512", *ODD_INTS))]
        if c.boolean():
            argv += ["--devices-per-node", c.choice(("4", "8", "256", *ODD_INTS))]
        if c.boolean():
            argv += ["--slice-shape", c.choice(("16x16", "4x2", "2x4", "8x8", "16x8", "4x4x4",
                                                "32x8", "0x8", "x", "16", "", "abc"))]
        if c.boolean():
            argv += ["--intra-node", c.choice(("ici", "nvlink4", "infinity-fabric", "hccs",
                                               "pcie4", "pcie5", "ib-ndr", "nope", ""))]
        if c.boolean():
            argv += ["--inter-node", c.choice(("eth-100g", "ib-ndr", "roce-200g", "nvlink4",
                                               "ici", "pcie4", "nope", ""))]
        if c.boolean():
            argv += ["--nics-per-node", c.choice(("0", "1", "8", *ODD_INTS))]
        return [*argv, "--json"]
    if which == "estimate":
        argv = ["estimate", "step", "--model", c.choice(("llama3-8b", "llama3-70b", *ODD_NAMES)),
                "--device", c.choice(("h100-sxm", "l4", *ODD_NAMES))]
        for opt in ("--tp", "--pp", "--prefill-len", "--prefill-seqs", "--decode-seqs",
                    "--context"):
            if c.boolean():
                argv += [opt, c.choice(ODD_INTS)]
        if c.boolean():
            argv += ["--dtype", c.choice(("bf16", "fp8", "int4", "fp7", ""))]
        return [*argv, "--json"]
    if which in ("hw", "models"):
        return [which, "show", c.choice(ODD_NAMES), "--json"]
    if which == "stats":
        argv = ["traces", "stats", c.choice(("azure-conv-2023-sample", "mooncake-conversation-"
                                             "sample", "nope", ""))]
        for opt in ("--rate-scale", "--start-s", "--end-s"):
            if c.boolean():
                argv += [opt, c.choice(ODD_FLOATS)]
        return [*argv, "--json"]
    argv = ["traces", "synth", "--out", "{tmp}/t.csv"]
    argv += c.choice((["--num-requests", c.choice(("1", "5", "0", "-3", "abc"))],
                      ["--duration-s", c.choice(ODD_FLOATS)]))
    if c.boolean():
        argv += ["--arrival", c.choice(("process=poisson,rate=5", "process=gamma,rate=5,cv=2",
                                        "process=poisson,rate=-1", "process=poisson,rate=nan",
                                        "process=hawkes", "rate", "process=poisson,rate=inf"))]
    if c.boolean():
        argv += ["--input", c.choice(("dist=fixed,value=10", "dist=fixed,value=-1",
                                      "dist=uniform,min=10,max=1", "dist=lognormal,mean=nan",
                                      "dist=pareto"))]
    if c.boolean():
        argv += ["--seed", c.choice(("0", "1", "-1", "abc"))]
    return [*argv, "--json"]


def hypothesis_cli_argv() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Callable[[Any], Any]) -> list[str]:
        return cli_argv(DrawChooser(draw))

    return build()
