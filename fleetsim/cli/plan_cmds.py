"""`fleetsim plan ...`: searched plans confirmed by simulation."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from fleetsim.cli.assumptions import (
    add_assumptions,
    device_fabrics,
    print_assumptions,
    serving_engine,
)
from fleetsim.cli.common import (
    NO_PROFILE_OPTION,
    PLOT_SUFFIXES,
    PROFILE_OPTION,
    RESULTS_SUFFIXES,
    check_output,
    console,
    emit_json,
    err_console,
    load_scenario_file,
    mkdir_option,
    parse_prices,
    print_efficiency,
    print_table,
    profile_choice,
    with_profiles,
)
from hwmodels.errors import ConfigError

INFEASIBLE_HELP = "Print the report (exit 0) even when no candidate is feasible."

plan_app = typer.Typer(help="Search for the best plan.", no_args_is_help=True)


@plan_app.command("checkpoint")
def plan_checkpoint_cmd(
    scenario: str = typer.Argument(..., help="Training scenario YAML with a run: section."),
    set_: list[str] = typer.Option(None, "--set", help="Override a scenario key (repeatable)."),
    seeds: int = typer.Option(4, "--seeds", help="Simulated runs per candidate interval."),
    seed: int = typer.Option(0, "--seed", min=0),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str = typer.Option(None, "--address", help="Ray cluster address (ray executor)."),
    modes: str = typer.Option(None, "--modes", help="Also choose the mode: sync,async,"
                              "multilevel (default: the scenario's run.checkpoint.mode)."),
    tiers: str = typer.Option(None, "--tiers", help="Also choose the storage tier: scenario,"
                              "parallel-fs,lustre,object-store,nvme-local."),
    allow_infeasible: bool = typer.Option(False, "--allow-infeasible", help=INFEASIBLE_HELP),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """The checkpoint interval that maximizes simulated ETTR, beside Young's and Daly's.

    With --modes and/or --tiers: the mode x storage tier x interval with the best ETTR, and
    the runner-up of every other mode and tier.

    A plan that does not fit memory, or no interval making progress (ETTR 0 everywhere),
    exits 3 unless --allow-infeasible.

    Example:

        fleetsim plan checkpoint simulator/scenarios/llama3-405b-16k-54d.yaml --seeds 4
    """
    from planners.checkpoint import plan_checkpoint_for_scenario
    from simulator.training import apply_overrides, load_training_scenario

    choice = profile_choice(profile, no_profile)
    sc = load_training_scenario(apply_overrides(load_scenario_file(scenario), set_ or []),
                                file=scenario, profiles=choice)
    if sc.run is None:
        raise ConfigError("needs a run: section (duration, failures, checkpoint)", file=scenario,
                          key="run")
    if seeds < 1:
        raise ConfigError(f"must be >= 1, got {seeds}", key="--seeds")
    if seed < 0:
        raise ConfigError(f"must be >= 0, got {seed}", key="--seed")
    from hwmodels.errors import InfeasibleError
    from simulator.longrun.simulate import default_iteration_time_fn
    from simulator.training import simulate_iteration

    it = simulate_iteration(sc.model, sc.cluster, sc.training, sc.parallel, profile=sc.profile)
    if not it.fits_memory and not allow_infeasible:
        raise InfeasibleError(f"{scenario}: the plan {it.message}",
                              hint="more devices, a larger tp/pp, recompute or ZeRO")
    fn = default_iteration_time_fn(sc)
    fn.cache[sc.parallel.dp] = it.iteration_time_s  # the same simulation, not run twice
    if modes is not None or tiers is not None:
        _plan_checkpoint_choice(sc, modes, tiers, seeds, seed, executor, address, fn,
                                allow_infeasible, json_out)
        return
    with _executor(executor, address) as ex:
        plan = plan_checkpoint_for_scenario(sc, seeds=seeds, seed=seed, executor=ex,
                                            iteration_time_fn=fn)
    if not plan.feasible and not allow_infeasible:
        raise plan.infeasible_error()
    out = _checkpoint_assumptions(with_profiles(plan.to_dict(), sc.profiles()), sc)
    if json_out:
        emit_json(out)
        return
    t = Table(title=f"{sc.name or scenario}: job MTTF {plan.mttf_s / 3600:.2f} h, "
                    f"checkpoint stall {plan.stall_s:.1f} s, restart {plan.restart_s:.0f} s")
    for col in ("rule", "interval", "ETTR mean", "5-95%", "closed form (Kokolis)"):
        t.add_column(col)
    for r in plan.rows:
        best = " *" if r["interval_s"] == plan.best_interval_s else ""
        t.add_row(f"{r['rule']}{best}", f"{r['interval_s'] / 60:.1f} min",
                  f"{r['ettr_mean']:.4f}", f"{r['ettr_p5']:.4f}-{r['ettr_p95']:.4f}",
                  f"{r['kokolis_ettr']:.4f}")
    console.print(t)
    console.print(f"best interval {plan.best_interval_s / 60:.1f} min (ETTR {plan.best_ettr:.4f});"
                  f" Young {plan.young_interval_s / 60:.1f} min, Daly "
                  f"{plan.daly_interval_s / 60:.1f} min")
    print_efficiency(out)
    print_assumptions(out)


def _plan_checkpoint_choice(sc: Any, modes: str | None, tiers: str | None, seeds: int,
                            seed: int, executor: str, address: str | None, fn: Any,
                            allow_infeasible: bool, json_out: bool) -> None:
    """`plan checkpoint --modes/--tiers`: choose mode x tier x interval, print the choice."""
    from planners.checkpoint_choice import plan_checkpoint_choice
    from planners.checkpoint_tiers import StorageTier
    from simulator.longrun.checkpoint import CheckpointMode

    mode_list = _choices(modes, CheckpointMode, "--modes") or (sc.run.checkpoint.mode,)
    tier_list = _choices(tiers, StorageTier, "--tiers") or (StorageTier.SCENARIO,)
    with _executor(executor, address) as ex:
        choice = plan_checkpoint_choice(sc, modes=mode_list, tiers=tier_list, seeds=seeds,
                                        seed=seed, iteration_time_fn=fn, executor=ex)
    if not choice.feasible and not allow_infeasible:
        raise choice.infeasible_error()
    out = _checkpoint_assumptions(with_profiles(choice.to_dict(), sc.profiles()), sc)
    if json_out:
        emit_json(out)
        return
    rows = [(r["mode"], r["tier"], f"{r['interval_s'] / 60:.1f} min", f"{r['ettr']:.4f}",
             f"{r['goodput_tokens_per_s']:,.0f}", f"{r['stall_s']:.2f}", f"{r['write_s']:.1f}",
             "-" if r["storage_usd_per_hour"] is None else f"{r['storage_usd_per_hour']:.2f}")
            for r in choice.rows]
    print_table(f"plan checkpoint: {sc.name or sc.file} — mode x tier x interval",
                ("mode", "tier", "interval", "ETTR", "goodput tok/s", "stall s", "write s",
                 "storage $/h"), rows)
    b = choice.best if choice.rows else None
    if b is not None:
        console.print(f"choice: {b['mode']} to {b['tier']} every {b['interval_s'] / 60:.1f} min"
                      f" (ETTR {b['ettr']:.4f}, goodput {b['goodput_tokens_per_s']:,.0f} tok/s)")
    for key, r in choice.runner_ups().items():
        console.print(f"runner-up {key}: {r['mode']} to {r['tier']} every "
                      f"{r['interval_s'] / 60:.1f} min (ETTR {r['ettr']:.4f})")
    for r in choice.rejected:
        console.print(f"rejected tier {r['tier']}: {r['reason']}")
    print_efficiency(out)
    print_assumptions(out)


def _checkpoint_assumptions(out: dict[str, Any], sc: Any) -> dict[str, Any]:
    """plan checkpoint's assumptions: the job's fabric, the long-run engine, failures, storage."""
    c, ck = sc.cluster, sc.run.checkpoint
    fabric = (f"{c.num_devices} x {c.device.name}, {c.intra_node.name} intra-node, "
              f"{c.inter_node.name} inter-node")
    failures = sc.run.failures
    return add_assumptions(
        out, fabric=fabric,
        engine="training iteration simulator + long-run failure/checkpoint simulator",
        failures=getattr(failures, "model", failures),
        storage=f"write {ck.storage_write_bandwidth / 1e12:g} TB/s, read "
                f"{ck.storage_read_bandwidth / 1e12:g} TB/s (run.checkpoint; --tiers replaces)",
        checkpoint_mode=str(ck.mode))


def _int_list(text: str | None, key: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"expected comma-separated integers, got '{text}'", key=key) from None
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"expected integers >= 1, got '{text}'", key=key)
    return values


def _choices(text: str | None, enum_cls: type, key: str) -> tuple[Any, ...] | None:
    """'a,b' -> enum members; an unknown value exits 2 naming the option and the allowed."""
    if text is None:
        return None
    allowed = [e.value for e in enum_cls]
    values = [v.strip() for v in text.split(",")]
    for v in values:
        if v not in allowed:
            raise ConfigError(f"unknown value '{v}' in '{text}'", key=key, allowed=allowed)
    return tuple(enum_cls(v) for v in values)


def _one_choice(text: str, enum_cls: type, key: str) -> Any:
    """One enum value of an option that takes a single choice (exit 2 otherwise)."""
    values = _choices(text, enum_cls, key) or ()
    if len(values) != 1:
        raise ConfigError(f"takes one value, got '{text}'", key=key,
                          allowed=[e.value for e in enum_cls])
    return values[0]


def _stack_of(constraints: Any, device: str) -> dict[str, str]:
    """The kernels, attention (as asked and as resolved on `device`) and loss a plan costs."""
    from hwmodels.attention_impl import resolve

    kernel = resolve(constraints.attention_impl, device, constraints.kernels,
                     constraints.flash_attention)
    reduce = constraints.grad_reduce_dtype
    return {"kernels": str(constraints.kernels), "attention_impl": str(constraints.attention_impl),
            "attention_kernel": str(kernel), "loss_impl": str(constraints.loss_impl),
            "grad_reduce_dtype": "stack default" if reduce is None else str(reduce)}


def _shard_list(text: str) -> tuple[str | int, ...]:
    """--fsdp-shard all,node,16 -> ("all", "node", 16)."""
    out: list[str | int] = []
    for part in (x.strip() for x in text.split(",") if x.strip()):
        if part in ("all", "node", "slice"):
            out.append("node" if part == "slice" else part)
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise ConfigError(f"bad shard group {part!r}", key="--fsdp-shard",
                              allowed="all, node, slice or integers >= 1")
    return tuple(out)


def _zero_list(text: str) -> tuple[int, ...]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v not in (0, 1, 2, 3) for v in values):
        raise ConfigError(f"bad ZeRO stages '{text}'", key="--zero", allowed=[0, 1, 2, 3])
    return tuple(values)


def _plan_profiles(paths: list[str] | None, no_profile: bool, devices: list[str]
                   ) -> tuple[Any, dict[str, Any]]:
    """--profile / --no-profile of a plan over `devices`: (the ProfileChoice the planner
    gets, {device: DeviceProfile} its JSON reports); a --profile for another device exits 2."""
    from hwmodels.catalog import load_device

    choice = profile_choice(paths, no_profile)
    specs = [load_device(d) for d in devices]
    choice.check_devices(specs, where="the plan (--devices/--device/--server)")
    return choice, {s.name: choice.for_device(s) for s in specs}


def _executor(name: str, address: str | None):  # type: ignore[no-untyped-def]
    from planners.executors import make_executor

    return make_executor(name, address=address) if name == "ray" else make_executor(name)


@plan_app.command("train")
def plan_train_cmd(
    model: str = typer.Option(..., "--model", help="Catalog name or HF config.json path."),
    device: str = typer.Option(..., "--device"),
    num_devices: str = typer.Option(..., "--num-devices", help="A count or a list: 512,1024."),
    seq_len: int = typer.Option(..., "--seq-len"),
    global_batch: int = typer.Option(None, "--global-batch", help="Sequences per step."),
    global_batch_tokens: int = typer.Option(None, "--global-batch-tokens"),
    dtype: str = typer.Option("bf16", "--dtype"),
    tp: str = typer.Option(None, "--tp", help="TP degrees to consider, e.g. 1,2,4,8 "
                                              "(default: divisors of devices per node)."),
    max_tp: int = typer.Option(None, "--max-tp"),
    pp: str = typer.Option(None, "--pp", help="PP degrees to consider, e.g. 8 or 8,12,16 "
                                              "(default: every pp <= layers dividing the "
                                              "devices; uneven splits by --uneven)."),
    vpp: str = typer.Option(None, "--vpp", help="Virtual stages per stage (interleaved), "
                                                "e.g. 2,3,4 (default 2-8)."),
    cp: str = typer.Option("1", "--cp", help="Context-parallel degrees, e.g. 1,2,4."),
    ep: str = typer.Option(None, "--ep", help="Expert-parallel degrees (MoE; default: every "
                                              "divisor of the experts)."),
    stack: str = typer.Option(None, "--stack",
                              help="Plan for one framework: megatron | torchtitan | "
                                   "llm-foundry | deepspeed. Searches only what it launches "
                                   "and costs its kernels, attention, loss and grad "
                                   "reduction (planners/stacks.py); options given here win."),
    zero: str = typer.Option(None, "--zero", help="ZeRO stages, e.g. 0,1,3 (default 0,1,2,3)."),
    recompute: str = typer.Option(None, "--recompute",
                                  help="none | selective (Megatron: core attention) | "
                                       "selective-op (torchtitan's per-op AC; dense models) "
                                       "| full (default none,selective,full)."),
    schedules: str = typer.Option(None, "--schedules",
                                  help="Pipeline schedules: gpipe, 1f1b, interleaved, zb-h1 "
                                       "(default 1f1b,interleaved,zb-h1)."),
    fsdp_impl: str = typer.Option(None, "--fsdp-impl",
                                  help="FSDP stacks for ZeRO-3 plans, e.g. fsdp2,deepspeed "
                                       "(default: the plan default)."),
    fsdp_shard: str = typer.Option("all", "--fsdp-shard",
                                   help="ZeRO-3 shard groups: all (over all of DP), node "
                                        "(hybrid sharding: one node / TPU slice, replicated "
                                        "across), or DP-rank counts, e.g. all,node,16."),
    offload: bool = typer.Option(False, "--offload/--no-offload",
                                 help="Also search ZeRO-Offload (optimizer on cpu|nvme, ZeRO >= 1) and "
                                      "ZeRO-Infinity (parameters on cpu|nvme, ZeRO-3)."),
    uneven: str = typer.Option("megatron", "--uneven",
                               help="Uneven pipeline splits: none | megatron (vpp 1) | any."),
    micro_batches: str = typer.Option("1,2,4,8", "--micro-batches"),
    headroom: float = typer.Option(0.05, "--memory-headroom", help="Fraction kept free."),
    kernels: str = typer.Option(None, "--kernels",
                                help="The framework's non-GEMM kernels (one value, not "
                                     "searched): fused (Megatron / Transformer Engine) | eager "
                                     "(PyTorch eager: llm-foundry, torchtitan without compile) "
                                     "| compiled (torch.compile). Default fused."),
    attention_impl: str = typer.Option(None, "--attention-impl",
                                       help="Attention kernel: auto (the stack's usual one on "
                                            "the device) | fa2 | fa3 (Hopper) | cudnn | "
                                            "unfused (default auto)."),
    loss_impl: str = typer.Option(None, "--loss-impl",
                                  help="Cross-entropy: fused (vocab-parallel / fused CE) | "
                                       "eager-fp32 (F.cross_entropy(logits.float()), "
                                       "torchtitan). Default fused."),
    grad_reduce_dtype: str = typer.Option(None, "--grad-reduce-dtype",
                                          help="DP gradient reduction dtype: bf16 | fp32 "
                                               "(default: each stack's own: Megatron fp32 "
                                               "main grads, FSDP2/torchtitan fp32, FSDP1 and "
                                               "DeepSpeed bf16)."),
    inter_node: str = typer.Option(None, "--inter-node",
                                   help="Scale-out fabric (default: the device generation's)."),
    nics_per_node: int = typer.Option(None, "--nics-per-node",
                                      help="Scale-out NICs per node (default: the device's "
                                           "own, one per GPU on DGX-style nodes); the NICs "
                                           "are shared by the DP/PP/CP/EP traffic of the "
                                           "node's ranks."),
    power_cap_w: float = typer.Option(None, "--power-cap-w",
                                      help="Static board power limit per GPU in W (nvidia-smi "
                                           "-pl; default: TDP): compute-bound kernels run at "
                                           "the SM clock it leaves."),
    top_k: int = typer.Option(10, "--top-k"),
    shape_probes: int = typer.Option(None, "--shape-probes",
                                     help="Extra simulations for the best plan of each other "
                                          "parallel shape (default: as many as the ranked "
                                          "table's; 0: none, the shapes table then lists "
                                          "only shapes already simulated)."),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str = typer.Option(None, "--address", help="Ray cluster address."),
    allow_infeasible: bool = typer.Option(False, "--allow-infeasible", help=INFEASIBLE_HELP),
    export: str = typer.Option(None, "--export", help="Launch artefacts for the top plan: "
                                                      "megatron | torchtitan | deepspeed | nemo."),
    export_out: str = typer.Option(None, "--export-out", help="Directory for --export files."),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Search parallel plans (pruned by divisibility and memory), simulate the best ones.

    Prints each plan's pipeline split, the best plan of each other parallel shape (tp x pp x cp
    x ep), the cluster fabric and the training stack costed (--kernels, --attention-impl,
    --loss-impl); warns when the best plan's MFU exceeds the best published MFU for its device
    class. No plan that fits exits 3 unless
    --allow-infeasible (then: the empty report and the candidates rejected per reason).

    Example:

        fleetsim plan train --model gpt3-175b --device a100-80gb --num-devices 1024 --seq-len 2048 --global-batch 1536 --inter-node ib-hdr --tp 4,8 --pp 8,12,16
    """
    from hwmodels.catalog import load_device
    from hwmodels.parallel import (
        AttentionImpl,
        FSDPImpl,
        GradReduceDType,
        KernelStack,
        LossImpl,
        PipelineSchedule,
        Recompute,
    )
    from planners.stacks import stack_constraints
    from planners.train import plan_train
    from planners.train_space import TrainConstraints, UnevenPolicy

    if export:
        from planners.export import kind_of

        kind_of(export, key="--export")  # an unknown target fails before the search
    choice = profile_choice(profile, no_profile)
    spec = load_device(device)
    choice.check_devices([spec], where="--device")
    prof = choice.for_device(spec)

    if (global_batch is None) == (global_batch_tokens is None):
        raise ConfigError("give exactly one of --global-batch / --global-batch-tokens",
                          key="--global-batch")
    if top_k < 1:
        raise ConfigError(f"must be >= 1, got {top_k}", key="--top-k", allowed=">= 1")
    if shape_probes is not None and shape_probes < 0:
        raise ConfigError(f"must be >= 0, got {shape_probes}", key="--shape-probes",
                          allowed=">= 0")
    if nics_per_node is not None and nics_per_node < 1:
        raise ConfigError(f"must be >= 1, got {nics_per_node}", key="--nics-per-node",
                          allowed=">= 1")
    nics = nics_per_node or 0
    if power_cap_w is not None:
        from hwmodels.power import power_capped

        power_capped(spec, power_cap_w, key="--power-cap-w")  # (idle, TDP] or exit 2
    counts = _int_list(num_devices, "--num-devices") or []
    given = {
        "tp": _int_list(tp, "--tp"), "max_tp": max_tp, "pp": _int_list(pp, "--pp"),
        "vpp": _int_list(vpp, "--vpp"), "cp": tuple(_int_list(cp, "--cp") or ()),
        "ep": _int_list(ep, "--ep"), "zero": None if zero is None else _zero_list(zero),
        "recompute": _choices(recompute, Recompute, "--recompute"),
        "schedules": _choices(schedules, PipelineSchedule, "--schedules"),
        "fsdp_impl": _choices(fsdp_impl, FSDPImpl, "--fsdp-impl"),
        "fsdp_shard": _shard_list(fsdp_shard),
        "offload_optimizer": ("none", "cpu", "nvme") if offload else (False,),
        "offload_params": ("none", "cpu", "nvme") if offload else ("none",),
        "uneven": (_choices(uneven, UnevenPolicy, "--uneven") or (UnevenPolicy.MEGATRON,))[0],
        "micro_batches": tuple(_int_list(micro_batches, "--micro-batches") or ()),
        "memory_headroom": headroom,
        "kernels": None if kernels is None else _one_choice(kernels, KernelStack, "--kernels"),
        "attention_impl": None if attention_impl is None else _one_choice(
            attention_impl, AttentionImpl, "--attention-impl"),
        "loss_impl": None if loss_impl is None else _one_choice(loss_impl, LossImpl,
                                                                "--loss-impl"),
        "grad_reduce_dtype": None if grad_reduce_dtype is None else _one_choice(
            grad_reduce_dtype, GradReduceDType, "--grad-reduce-dtype")}
    # explicit options win over the stack's defaults, which win over TrainConstraints' own
    preset = {} if stack is None else dict(stack_constraints(stack, key="--stack"))
    constraints = TrainConstraints(**{**preset,
                                      **{k: v for k, v in given.items() if v is not None}})
    try:
        costed = _stack_of(constraints, spec.name)  # FA3 off Hopper fails before the search
    except ConfigError as err:
        raise ConfigError(err.message, key="--attention-impl", allowed=err.allowed) from None
    with _executor(executor, address) as ex:
        result = plan_train(model, device, counts if len(counts) > 1 else counts[0],
                            seq_len=seq_len, global_batch=global_batch,
                            global_batch_tokens=global_batch_tokens, dtype=dtype,
                            constraints=constraints, top_k=top_k, executor=ex,
                            inter_node=inter_node, nics_per_node=nics,
                            power_cap_w=power_cap_w, profile=prof, shape_probes=shape_probes)
    if not result.feasible and not allow_infeasible:
        raise result.infeasible_error()
    out = add_assumptions(with_profiles(result.to_dict(), {spec.name: prof}),
                          fabric=result.to_dict()["fabric"],
                          engine="training iteration simulator (simulator.training)",
                          dtype=dtype)
    out["stack"] = {**costed, "preset": stack or "none"}
    artefact = None
    if export and result.feasible:
        cluster_kwargs = {"nics_per_node": nics, "power_cap_w": power_cap_w,
                          **({"inter_node": inter_node} if inter_node else {})}
        artefact, rank, skipped = _export_best(result, model, device, cluster_kwargs, prof,
                                               export, export_out)
        out["export"] = {**artefact.to_dict(), "written": export_out, "plan_rank": rank,
                         "skipped": skipped}
    if json_out:
        emit_json(out)
        return
    if artefact is not None:
        console.print(f"export ({artefact.target}, plan #{rank}"
                      + (f"; better plans not launchable there: {'; '.join(skipped)}" if skipped
                         else "") + f"): {artefact.command}", markup=False,
                      soft_wrap=True)
    t = Table(title=f"plan train: {model} on {num_devices} x {device} — considered "
                    f"{out['considered']}, pruned {out['pruned_divisibility']} (divisibility) + "
                    f"{out['pruned_memory']} (memory) + {out['pruned_unlaunchable']} (unlaunchable), "
                    f"simulated {out['simulated']}")
    t.add_column("#")
    for c in ("plan", "pipeline split", "tokens/s", "MFU", "memory GiB"):
        t.add_column(c)
    for i, row in enumerate(out["plans"], 1):
        t.add_row(str(i), _plan_words(row), row["pipeline_split"], f"{row['tokens_per_s']:,.0f}",
                  f"{row['mfu']:.1%}", f"{row['peak_memory_gib']:.1f}")
    console.print(t)
    shown = {_shape(row) for row in out["plans"]}
    others = [row for row in out["shapes"] if _shape(row) not in shown]
    if others:
        # the ranked table is often one shape in several variants: name the best of the others
        best = out["plans"][0]["tokens_per_s"]
        s = Table(title="best plan of each other parallel shape (tp x pp x cp x ep)")
        for c in ("shape", "plan", "tokens/s", "MFU", "vs #1"):
            s.add_column(c)
        for row in others:
            s.add_row(f"tp{row['tp']} pp{row['pp']} cp{row['cp']} ep{row['ep']}",
                      _plan_words(row), f"{row['tokens_per_s']:,.0f}", f"{row['mfu']:.1%}",
                      f"{row['tokens_per_s'] / best - 1:+.1%}")
        console.print(s)
    console.print(f"fabric: {out['fabric']}")
    st = out["stack"]
    console.print(f"stack: {st['preset'] + ': ' if st['preset'] != 'none' else ''}"
                  f"kernels {st['kernels']}, attention {st['attention_kernel']}"
                  + (f" (--attention-impl {st['attention_impl']})"
                     if st["attention_impl"] != st["attention_kernel"] else "")
                  + f", loss {st['loss_impl']}, grad reduce {st['grad_reduce_dtype']}",
                  markup=False)
    for i, row in enumerate(out["plans"], 1):
        off = row["breakdown"].get("offload")
        if off:
            console.print(f"#{i} offload: iteration {row['iteration_time_s']:.2f} s >= PCIe "
                          f"{off['pcie_bytes'] / 1e9:.1f} GB in {off['pcie_s']:.2f} s, NVMe "
                          f"{off['nvme_bytes'] / 1e9:.1f} GB in {off['nvme_s']:.2f} s; CPU-Adam "
                          f"{off['cpu_optimizer_s']:.2f} s; exposed {off['exposed_s']:.2f} s",
                          markup=False)
    cred = result.credibility
    warning = None if cred is None else cred.warning() or cred.scale_note()
    if warning:
        console.print(warning, style="bold yellow", markup=False)
    print_efficiency(out)
    print_assumptions(out)
    if not result.feasible:
        console.print(f"INFEASIBLE: no plan fits; {result.describe_rejections()}")


def _shape(row: dict[str, Any]) -> tuple[int, ...]:
    from planners.train import SHAPE_COLUMNS

    return tuple(int(row[k]) for k in SHAPE_COLUMNS)


def _plan_words(row: dict[str, Any]) -> str:
    """One plan row of plan train --json in words (tp.. pp.. zero.. recompute= schedule)."""
    stack = f" {row['fsdp_impl']}" if row["fsdp_impl"] else ""
    if row.get("fsdp_shard_size") and row["fsdp_shard_size"] != row["dp"]:
        stack += f" shard{row['fsdp_shard_size']}"  # hybrid sharding
    return (f"tp{row['tp']} pp{row['pp']} vpp{row['vpp']} dp{row['dp']} cp{row['cp']} "
            f"ep{row['ep']} mb{row['micro_batch']} zero{row['zero']}{stack} "
            f"recompute={row['recompute']} {row['schedule']}"
            f"{' sp' if row['sequence_parallel'] else ''}"
            f"{' offload ' + row['offload_optimizer'] if row['offload_optimizer'] else ''}")


def _export_best(result: Any, model: str, device: str, cluster_kwargs: dict[str, Any],
                 prof: Any, target: str, out_dir: str | None) -> tuple[Any, int, list[str]]:
    """The best ranked plan `target` can launch, exported (files written under out_dir), its
    rank, and why each better plan could not be (e.g. a schedule the launcher lacks)."""
    from hwmodels.catalog import load_model
    from hwmodels.cluster import build_cluster
    from planners.export import export_plan, kind_of
    from simulator.training.plan import TrainingPlan

    kind_of(target, key="--export")
    skipped: list[str] = []
    for rank, ((parallel, training), (_, row)) in enumerate(
            zip(result.configs, result.plans.iterrows(), strict=True), 1):
        cluster = build_cluster(device, int(row["num_devices"]), **cluster_kwargs)
        plan = TrainingPlan(model=load_model(model), cluster=cluster, training=training,
                            parallel=parallel, profile=prof)
        try:
            artefact = export_plan(plan, target, key="--export")
        except ConfigError as err:
            skipped.append(f"#{rank}: {err.message}")
            continue
        if out_dir:
            artefact.write(out_dir)
        return artefact, rank, skipped
    raise ConfigError(f"none of the {len(skipped)} ranked plans can be launched by {target} "
                      f"({skipped[0] if skipped else 'no plans'})", key="--export",
                      allowed="another --export target, or constrain the search (e.g. "
                              "--schedules 1f1b,interleaved, --zero 0,1)")


def sweep_cmd(
    scenario: str = typer.Argument(..., help="Training or serving scenario YAML."),
    grid: list[str] = typer.Option(..., "--grid", help="key=v1,v2 (repeatable)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a scenario key (repeatable)."),
    out: str = typer.Option("sweep.csv", "--out", help="Results .csv or .parquet."),
    plot: str = typer.Option(None, "--plot", help="Plot --metric over the first grid key."),
    metric: str = typer.Option(None, "--metric",
                               help="Column to show and plot (default: tokens_per_s for "
                                    "training, goodput_rps for serving)."),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str = typer.Option(None, "--address"),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Simulate a training or serving scenario at every point of a grid; write a table and a
    plot. Grid keys and --metric are checked first; every point failing exits 2 with the
    first error, a partial failure reports how many points failed.

    Example:

        fleetsim sweep simulator/scenarios/gpt3-175b-a100.yaml --grid parallelism.tp=4,8 --out sweep.csv --plot sweep.png
    """
    from planners.sweep import (
        check_outcome,
        check_results_path,
        check_sweep,
        evaluator,
        parse_grid,
        plot_sweep,
        sweep,
        sweep_profiles,
        write_results,
    )
    from simulator.schema import apply_overrides

    check_output(out, option="--out", suffixes=RESULTS_SUFFIXES, mkdir=mkdir)
    check_output(plot, option="--plot", suffixes=PLOT_SUFFIXES, mkdir=mkdir)
    check_results_path(out)
    choice = profile_choice(profile, no_profile)
    base = apply_overrides(load_scenario_file(scenario), set_ or [])
    grid_map = parse_grid(grid)
    kind = check_sweep(base, grid_map, metric=metric, file=scenario)
    used = sweep_profiles(base, grid_map, kind=kind, file=scenario, profiles=choice)
    metric = metric or ("tokens_per_s" if kind == "training" else "goodput_rps")
    with _executor(executor, address) as ex:
        df = sweep(base, grid_map, evaluator(kind, file=scenario, profiles=choice), ex)
    failed = check_outcome(df)
    write_results(df, out)
    keys = list(grid_map)
    if plot:
        plot_sweep(df, keys[0], metric, hue=keys[1] if len(keys) > 1 else None, path=plot,
                   title=scenario)
    if json_out:
        emit_json(with_profiles({"out": out, "points": len(df), "failed": failed,
                                 "rows": df.to_dict(orient="records")}, used))
        return
    extra = ("mfu", "peak_memory_gib", "fits_memory") if kind == "training" else \
        ("slo_attainment", "cost_usd")
    cols = keys + [c for c in dict.fromkeys((metric, *extra, "ok", "error")) if c in df]
    print_table(f"sweep: {len(df)} points -> {out}", cols,
                ([row[c] for c in cols] for _, row in df.iterrows()))
    print_efficiency(with_profiles({}, used))
    if failed:
        console.print(f"{failed} of {len(df)} points failed (see the error column)")


def _workload(trace: str, start_s: float | None, end_s: float | None,
              rate_scale: float | None):  # type: ignore[no-untyped-def]
    from traces.readers import read_trace
    from traces.stats import scale_trace, window_trace

    df = read_trace(trace)
    if start_s is not None or end_s is not None:
        df = window_trace(df, start_s or 0.0, end_s)
    if rate_scale is not None:
        df = scale_trace(df, rate_scale)
    return df


@plan_app.command("gpu-mix")
def plan_gpu_mix_cmd(
    model: str = typer.Option(..., "--model"),
    trace: str = typer.Option(..., "--trace", help="Trace file or bundled sample name."),
    devices: str = typer.Option(..., "--devices", help="Candidate types, e.g. l4,a10g,h100-sxm."),
    tp: str = typer.Option("1", "--tp", help="TP options per replica, e.g. 1,2."),
    slo_ttft: float = typer.Option(None, "--slo-ttft", help="TTFT SLO in seconds (optional)."),
    slo_tpot: float = typer.Option(None, "--slo-tpot", help="TPOT SLO in seconds; alone, a "
                                   "request also needs e2e / output tokens within it (Mélange)."),
    slo_target: float = typer.Option(0.95, "--slo-target", help="Fraction of requests in SLO."),
    price: list[str] = typer.Option(None, "--price", help="device=$/h per device (repeatable)."),
    solver: str = typer.Option("cbc", "--solver", help="cbc | highs"),
    window_s: float = typer.Option(None, "--window-s", help="Plan per time window too."),
    start_s: float = typer.Option(None, "--start-s"),
    end_s: float = typer.Option(None, "--end-s"),
    rate_scale: float = typer.Option(None, "--rate-scale"),
    router: str = typer.Option("ilp_split", "--router"),
    plot: str = typer.Option(None, "--plot", help="Write the mix plot (PNG)."),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str = typer.Option(None, "--address"),
    seed: int = typer.Option(0, "--seed", min=0),
    allow_infeasible: bool = typer.Option(False, "--allow-infeasible", help=INFEASIBLE_HELP),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Cheapest GPU mix meeting the SLO (ILP over request-size buckets), confirmed by simulation.

    Give --slo-ttft, --slo-tpot or both (neither: exit 2). A mix whose simulated SLO
    attainment stays below --slo-target exits 3 unless --allow-infeasible (then: the best mix
    found, marked as missing the target).

    Example:

        fleetsim plan gpu-mix --model llama2-7b --trace azure-conv-2023-sample --devices l4,a10g,h100-sxm --slo-ttft 1 --slo-tpot 0.1
    """
    from hwmodels.atomic import atomic_write
    from planners.gpu_mix import plan_gpu_mix, plot_gpu_mix
    from planners.mix_profile import check_slo

    check_slo(slo_ttft, slo_tpot)  # before reading the trace: neither SLO is exit 2
    check_output(plot, option="--plot", suffixes=PLOT_SUFFIXES, mkdir=mkdir)
    names = [d.strip() for d in devices.split(",") if d.strip()]
    choice, used = _plan_profiles(profile, no_profile, names)

    df = _workload(trace, start_s, end_s, rate_scale)
    with _executor(executor, address) as ex:
        plan = plan_gpu_mix(model, df, devices=[d.strip() for d in devices.split(",") if d],
                            tp_options=tuple(_int_list(tp, "--tp") or (1,)),
                            slo_ttft_s=slo_ttft, slo_tpot_s=slo_tpot, slo_target=slo_target,
                            prices=parse_prices(price), solver=solver, window_s=window_s,
                            router=router, executor=ex, seed=seed, profiles=choice)
    if not plan.meets_slo and not allow_infeasible:
        from hwmodels.errors import InfeasibleError

        raise InfeasibleError(f"no GPU mix meets the SLO target: the best mix found attains "
                              f"{plan.slo_attainment:.1%} < {slo_target:.1%} after "
                              f"{plan.iterations} round(s)",
                              hint="loosen the SLO, lower --slo-target or add devices/TP options")
    if plan.refused_requests:
        err_console.print(f"warning: {plan.notes['refused']}", highlight=False, soft_wrap=True)
    if plot:
        fig = plot_gpu_mix(plan)
        atomic_write(plot, lambda p: fig.savefig(p, dpi=110))
    out = add_assumptions(with_profiles(plan.to_dict(), used), fabric=device_fabrics(names),
                          engine=serving_engine(), router=router, trace=trace)
    if json_out:
        emit_json(out)
        return
    table = plan.table()
    print_table(f"plan gpu-mix: {model} on {trace} — ${out['cost_usd_per_hour']:.2f}/h, "
                f"SLO attainment {out['slo_attainment']:.1%} after {out['iterations']} round(s)",
                list(table.columns), (list(row) for _, row in table.iterrows()), float_fmt=".3g")
    if out.get("best_single_type"):
        saving = out.get("savings_vs_best_single")
        console.print(f"best single type: {out['best_single_type']} at "
                      f"${out['best_single_cost_usd_per_hour']:.2f}/h"
                      + (f"; the mix saves {saving:.1%}" if saving is not None else ""))
    print_efficiency(out)
    print_assumptions(out)
    if not plan.meets_slo:
        console.print(f"INFEASIBLE: SLO attainment {out['slo_attainment']:.1%} is below the "
                      f"target {slo_target:.1%}")


@plan_app.command("power")
def plan_power_cmd(
    budget_kw: float = typer.Option(..., "--budget-kw", help="Row power budget (kW)."),
    server: str = typer.Option("dgx-a100", "--server", help="dgx-a100 | dgx-h100"),
    model: str = typer.Option("llama2-70b", "--model"),
    tp: int = typer.Option(8, "--tp"),
    trace: str = typer.Option("azure-conv-2023-sample", "--trace"),
    training: bool = typer.Option(False, "--training", help="A training-like lockstep load."),
    high_priority: float = typer.Option(0.5, "--high-priority-fraction"),
    t1: float = typer.Option(0.80, "--t1", help="Cap low-priority servers above t1 x budget."),
    t2: float = typer.Option(0.89, "--t2", help="Cap every server above t2 x budget."),
    latency_s: float = typer.Option(2.0, "--latency-s", help="Capping control latency."),
    plot: str = typer.Option(None, "--plot", help="Write the power time series (PNG)."),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str = typer.Option(None, "--address"),
    seed: int = typer.Option(0, "--seed", min=0),
    allow_infeasible: bool = typer.Option(False, "--allow-infeasible", help=INFEASIBLE_HELP),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Servers that fit a power budget with POLCA-style capping, vs the nameplate baseline.

    A budget that not even one server fits exits 3 unless --allow-infeasible.

    Example:

        fleetsim plan power --budget-kw 500 --server dgx-a100 --plot power.png
    """
    from hwmodels.atomic import atomic_write
    from planners.power import CappingPolicy, load_server, plan_power, plot_power
    from traces.readers import read_trace

    check_output(plot, option="--plot", suffixes=PLOT_SUFFIXES, mkdir=mkdir)
    choice, used = _plan_profiles(profile, no_profile, [load_server(server).device])

    policy = CappingPolicy(t1=t1, t2=t2, latency_s=latency_s)
    df = None if training else read_trace(trace)
    with _executor(executor, address) as ex:
        plan = plan_power(budget_kw, server, model=model, inference_df=df, training=training,
                          tp=tp, high_priority_fraction=high_priority, policy=policy, seed=seed,
                          executor=ex, profiles=choice)
    if not plan.feasible and not allow_infeasible:
        raise plan.infeasible_error()
    if plot:
        fig = plot_power(plan)
        atomic_write(plot, lambda p: fig.savefig(p, dpi=110))
    out = with_profiles(plan.to_dict(), used)
    if training:  # say so rather than ignore a given profile silently
        note = ("the --training load is synthetic (planners.power_load.training_profile, no "
                "step costs): the efficiency profile does not change it")
        out["notes"] = {**(out.get("notes") or {}), "profile": note}
        if choice.given:
            err_console.print(f"note: {note}", highlight=False, soft_wrap=True, markup=False)
    add_assumptions(out, fabric="none (a power plan: no communication is modelled)",
                    engine=("synthetic lockstep training load (planners.power_load)" if training
                            else serving_engine()),
                    server=server, load="training" if training else trace,
                    policy=f"POLCA t1={t1:g} t2={t2:g} latency {latency_s:g} s")
    if json_out:
        emit_json(out)
        return
    cap = out["capping"]
    console.print(f"plan power: {out['servers']} servers fit {budget_kw:g} kW "
                  f"(nameplate: {out['nameplate_servers']}, {out['gain']:+.0%}); peak "
                  f"{out['peak_power_kw']:.1f} kW; capping {cap['fraction_of_time']:.1%} of the "
                  f"time in {cap['events']} episodes")
    print_table("impact of capping", ("priority", "metric", "uncapped", "capped", "change"),
                ((r["priority"], r["metric"], r["uncapped"], r["capped"], f"{r['change']:+.2%}")
                 for r in out["impact"]))
    if "nameplate_floor" in out["notes"]:
        console.print(f"nameplate floor: {out['notes']['nameplate_floor']}", highlight=False,
                      soft_wrap=True, markup=False)
    print_efficiency(out)
    print_assumptions(out)
    if not plan.feasible:
        console.print("INFEASIBLE: not even one server fits; probes rejected: "
                      + ", ".join(f"{n} by {k}" for k, n in plan.rejections().items()))


@plan_app.command("serve")
def plan_serve_cmd(
    model: str = typer.Option(..., "--model"),
    trace: str = typer.Option("azure-conv-2023-sample", "--trace", help="Trace file or sample."),
    slo_ttft: float = typer.Option(None, "--slo-ttft", help="TTFT SLO (s)."),
    slo_tpot: float = typer.Option(None, "--slo-tpot", help="TPOT SLO (s)."),
    slo_percentile: str = typer.Option("p90", "--slo-percentile"),
    devices: str = typer.Option("a100-80gb,h100-sxm,h200", "--devices"),
    price: list[str] = typer.Option(None, "--price", help="device=$/h per device (repeatable)."),
    max_gpus: int = typer.Option(None, "--max-gpus"),
    budget: float = typer.Option(None, "--budget", help="Budget in USD per hour."),
    tp: str = typer.Option("1,2,4,8", "--tp"),
    pp: str = typer.Option("1", "--pp"),
    schedulers: str = typer.Option("vllm,sarathi", "--schedulers"),
    chunk_sizes: str = typer.Option("512,2048", "--chunk-sizes"),
    max_num_seqs: str = typer.Option("128,256", "--max-num-seqs"),
    disagg: str = typer.Option("1:1,1:2", "--disagg", help="Prefill:decode ratios ('' = none)."),
    prefill_devices: str = typer.Option(None, "--prefill-devices",
                                        help="Mixed P/D pairs: prefill pool devices, e.g. "
                                             "h100-sxm (needs --decode-devices)."),
    decode_devices: str = typer.Option(None, "--decode-devices",
                                       help="Mixed P/D pairs: decode pool devices, e.g. "
                                            "a100-80gb,l40s."),
    prefill_tp: str = typer.Option(None, "--prefill-tp",
                                   help="TP of a mixed pair's prefill pool (default: --tp)."),
    decode_tp: str = typer.Option(None, "--decode-tp",
                                  help="TP of a mixed pair's decode pool (default: --tp)."),
    colocated: bool = typer.Option(True, "--colocated/--no-colocated"),
    rate: float = typer.Option(None, "--rate", help="Target request rate (default: trace's)."),
    rank_by: str = typer.Option("usd", "--rank-by", help="usd | gpu"),
    confirm_top: int = typer.Option(3, "--confirm-top"),
    start_s: float = typer.Option(None, "--start-s"),
    end_s: float = typer.Option(None, "--end-s"),
    plot: str = typer.Option(None, "--plot", help="Cost vs goodput plot (PNG)."),
    out: str = typer.Option(None, "--out", help="Ranked plans (.csv/.parquet)."),
    executor: str = typer.Option("local", "--executor", help="local | ray"),
    address: str = typer.Option(None, "--address"),
    seed: int = typer.Option(0, "--seed", min=0),
    allow_infeasible: bool = typer.Option(False, "--allow-infeasible", help=INFEASIBLE_HELP),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
    export: str = typer.Option(None, "--export",
                               help="Launch artefact of the best plan: vllm | sglang | trtllm "
                                    "| dynamo-k8s."),
    export_out: str = typer.Option(None, "--export-out",
                                   help="Directory for the --export files (and launch.sh)."),
) -> None:
    """Serving configurations ranked by goodput per dollar: max SLO rate by simulation.

    No configuration meeting the SLO exits 3 unless --allow-infeasible (then: the empty
    report and the count of candidates rejected per reason).

    Example:

        fleetsim plan serve --model llama2-70b --slo-ttft 2 --slo-tpot 0.2 --out plans.csv
    """
    from planners.serve import plan_serve
    from planners.serve_pd_mix import PoolMix

    mix = PoolMix(prefill_devices=_names(prefill_devices),
                  decode_devices=_names(decode_devices),
                  prefill_tp=_opt_tuple(_int_list(prefill_tp, "--prefill-tp")),
                  decode_tp=_opt_tuple(_int_list(decode_tp, "--decode-tp")))
    _check_serve_export(export, export_out)
    check_output(plot, option="--plot", suffixes=PLOT_SUFFIXES, mkdir=mkdir)
    check_output(out, option="--out", suffixes=RESULTS_SUFFIXES, mkdir=mkdir)

    if out:
        from planners.sweep import check_results_path

        check_results_path(out)
    choice, used = _plan_profiles(profile, no_profile,
                                  [d.strip() for d in devices.split(",") if d.strip()])
    df = _workload(trace, start_s, end_s, None)
    ratios = [r.strip() for r in disagg.split(",") if r.strip()]
    with _executor(executor, address) as ex:
        res = plan_serve(model, df, slo_ttft_s=slo_ttft, slo_tpot_s=slo_tpot,
                         slo_percentile=slo_percentile,
                         devices=[d.strip() for d in devices.split(",") if d.strip()],
                         prices=parse_prices(price), max_gpus=max_gpus, budget_usd_per_hour=budget,
                         tp=tuple(_int_list(tp, "--tp") or ()),
                         pp=tuple(_int_list(pp, "--pp") or ()),
                         schedulers=tuple(s.strip() for s in schedulers.split(",") if s.strip()),
                         chunk_sizes=tuple(_int_list(chunk_sizes, "--chunk-sizes") or ()),
                         max_num_seqs=tuple(_int_list(max_num_seqs, "--max-num-seqs") or ()),
                         disaggregation=ratios, colocated=colocated, target_rate_rps=rate,
                         rank_by=rank_by, confirm_top=confirm_top, executor=ex, seed=seed,
                         profiles=choice, pool_mix=mix)
    if not res.feasible and not allow_infeasible:
        raise res.infeasible_error()
    if plot:
        res.plot(plot)
    if out:
        from planners.sweep import write_results

        write_results(res.plans, out)
    artefact = _serve_export(res, model, export, export_out, choice) if export else None
    names = list(dict.fromkeys([*(d.strip() for d in devices.split(",") if d.strip()),
                                *mix.devices()]))
    result = add_assumptions(with_profiles(res.to_dict(), used), fabric=device_fabrics(names),
                             engine=serving_engine(), schedulers=schedulers, trace=trace,
                             disaggregation=disagg or "none")
    if artefact is not None:
        result["export"] = artefact.to_dict()
    if json_out:
        emit_json(result)
        return
    counts = res.counts()
    t = Table(title=f"plan serve: {model} — " + ", ".join(f"{k} {v}" for k, v in counts.items()
                                                         if isinstance(v, (int, float))))
    for c in ("#", "configuration", "rate/unit", "units x GPUs", "$/h", "goodput", "confirmed"):
        t.add_column(c)
    for i, (_, r) in enumerate(res.plans.head(10).iterrows(), 1):
        config = (f"{_serve_shape(r)} {r['scheduler']} "
                  f"budget {r['token_budget']} seqs {r['max_num_seqs']}")
        confirmed = r.get("confirmed_attainment")
        t.add_row(str(i), config, f"{r['unit_rate_rps']:.2f}/s",
                  f"{r['units']} x {r['gpus'] // max(r['units'], 1)}",
                  f"{r['cost_usd_per_hour']:.2f}", f"{r['goodput_rps']:.2f}/s",
                  "-" if confirmed is None or confirmed != confirmed else f"{confirmed:.1%}")
    console.print(t)
    print_efficiency(result)
    print_assumptions(result)
    if not res.feasible:
        console.print(f"INFEASIBLE: no configuration meets the SLO; {res.describe_rejections()}")
    if artefact is not None:
        console.print(f"export {artefact.target} ({artefact.target_version}) of plan #1"
                      + (f" -> {export_out}" if export_out else "") + ":",
                      highlight=False, markup=False)
        console.print(artefact.command, highlight=False, markup=False, soft_wrap=True)
        for note in artefact.assumptions:
            console.print(f"  assumption: {note}", highlight=False, markup=False,
                          soft_wrap=True)


def _names(text: str | None) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'); None -> ()."""
    return tuple(d.strip() for d in (text or "").split(",") if d.strip())


def _opt_tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


def _serve_shape(r: Any) -> str:
    """A plan row's replica shape; a mixed pair shows both pools
    ('P h100-sxm TP2 x1 : D a100-80gb TP4 x2 PP1')."""
    disagg = str(r.get("placement", "")).startswith("dis")
    dev, dtp = r.get("decode_device"), r.get("decode_tp")
    if disagg and isinstance(dev, str) and (dev != r["device"] or int(dtp) != int(r["tp"])):
        p, d = (int(x) for x in str(r["pd_ratio"]).split(":"))
        return f"P {r['device']} TP{r['tp']} x{p} : D {dev} TP{int(dtp)} x{d} PP{r['pp']}"
    pd_ = f" P:D {r['pd_ratio']}" if disagg else ""
    return f"{r['device']} TP{r['tp']} PP{r['pp']}{pd_}"


def _check_serve_export(export: str | None, export_out: str | None) -> None:
    """--export names a serving launcher (before the search runs); --export-out needs it."""
    from planners.export import PlanKind, kind_of

    if export_out and not export:
        raise ConfigError("--export-out needs --export", key="--export-out",
                          allowed="--export vllm | sglang | trtllm | dynamo-k8s")
    if export and kind_of(export, key="--export") is not PlanKind.SERVING:
        raise ConfigError(f"'{export}' launches training, plan serve exports serving",
                          key="--export", allowed="vllm, sglang, trtllm, dynamo-k8s")


def _serve_export(res: Any, model: str, export: str, export_out: str | None,
                  profiles: Any) -> Any:
    """The launch artefact of the best plan (written under export_out when given)."""
    from hwmodels.catalog import load_model
    from planners.export import export_plan

    plan = res.serving_plan(load_model(model), profiles=profiles)
    artefact = export_plan(plan, export, key="--export")
    if export_out:
        artefact.write(export_out)
    return artefact
