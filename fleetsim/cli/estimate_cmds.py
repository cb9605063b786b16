"""`fleetsim estimate step`: one serving batch step, the unit of every serving prediction."""

from __future__ import annotations

import typer
from rich.table import Table

from fleetsim.cli.common import (
    NO_PROFILE_OPTION,
    PROFILE_OPTION,
    console,
    emit_json,
    print_efficiency,
    profile_choice,
    with_profiles,
)
from hwmodels.catalog import load_device, load_model
from hwmodels.dtypes import parse_dtype
from hwmodels.errors import ConfigError, InfeasibleError
from hwmodels.units import GiB

estimate_app = typer.Typer(help="Analytical estimates.", no_args_is_help=True)


@estimate_app.command("step")
def estimate_step_cmd(
    model: str = typer.Option(..., "--model", help="Catalog name or path to an HF config.json."),
    device: str = typer.Option(..., "--device", help="Catalog device name."),
    tp: int = typer.Option(1, "--tp"),
    pp: int = typer.Option(1, "--pp"),
    prefill_len: int = typer.Option(0, "--prefill-len", help="New tokens per prefilled prompt."),
    prefill_seqs: int = typer.Option(0, "--prefill-seqs", help="Prompts prefilled this step."),
    decode_seqs: int = typer.Option(0, "--decode-seqs", help="Sequences decoding one token."),
    context: int = typer.Option(0, "--context", help="Context length of decoding sequences."),
    dtype: str = typer.Option("bf16", "--dtype", help="bf16|fp8|int8|int4 (weights/compute)."),
    kv_dtype: str = typer.Option(None, "--kv-dtype", help="KV-cache dtype (default: dtype)."),
    inter_node: str = typer.Option(None, "--inter-node",
                                   help="Scale-out NIC when tp*pp spans nodes (default: the "
                                        "device generation's)."),
    engine: str = typer.Option(None, "--engine",
                               help="Serving engine preset (hwmodels/catalog/engines.yaml: "
                                    "vllm-0.2, vllm-0.6, sglang, trtllm; default kernel-only)."),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    allow_infeasible: bool = typer.Option(
        False, "--allow-infeasible",
        help="Print the step time even when the batch does not fit device memory."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Time of one batch step: S prompts of L tokens prefilled + B sequences decoding at C.

    The batch is checked against device memory first (weights + KV + activations,
    hwmodels.memory.serving_step_fit): a step that cannot fit exits 3 unless
    --allow-infeasible, which prints the time with a DOES NOT FIT line (`fits_memory`).

    Example:

        fleetsim estimate step --model llama2-70b --device h100-sxm --tp 8 --decode-seqs 32 --context 1024
    """
    from hwmodels.memory import serving_step_fit
    from hwmodels.step import estimate_step

    for key, value in (("--tp", tp), ("--pp", pp)):
        if value < 1:
            raise ConfigError(f"must be >= 1, got {value}", key=key)
    for key, value in (("--prefill-len", prefill_len), ("--prefill-seqs", prefill_seqs),
                       ("--decode-seqs", decode_seqs), ("--context", context)):
        if value < 0:
            raise ConfigError(f"must be >= 0, got {value}", key=key)
    if prefill_seqs and not prefill_len:
        raise ConfigError("--prefill-seqs needs --prefill-len > 0", key="--prefill-len")
    if prefill_len and not prefill_seqs:
        prefill_seqs = 1
    if decode_seqs and not context:
        raise ConfigError("--decode-seqs needs --context > 0", key="--context")
    if not prefill_seqs and not decode_seqs:
        raise ConfigError("empty batch: give --prefill-len/--prefill-seqs and/or "
                          "--decode-seqs/--context", key="batch")
    from hwmodels.cluster import build_cluster, describe_fabric
    from hwmodels.engine_profiles import describe_engine, load_engine

    if engine is not None:
        engine = load_engine(engine, key="--engine").name
    choice = profile_choice(profile, no_profile)
    m = load_model(model)
    d = load_device(device)
    try:
        fabric = describe_fabric(build_cluster(d, tp * pp, inter_node=inter_node))
    except ConfigError as err:
        if err.key != "cluster.inter_node":
            raise
        raise ConfigError(err.message, key="--inter-node", allowed=err.allowed) from None
    choice.check_devices([d], where="--device")
    prof = choice.for_device(d)
    wdtype = parse_dtype(dtype, key="--dtype")
    kvdtype = parse_dtype(kv_dtype, key="--kv-dtype") if kv_dtype else None
    fit = serving_step_fit(m, d, tp=tp, pp=pp, dtype=wdtype, kv_dtype=kvdtype,
                           batch_tokens=prefill_len * prefill_seqs + decode_seqs,
                           batch_seqs=prefill_seqs + decode_seqs,
                           kv_tokens=prefill_len * prefill_seqs + context * decode_seqs)
    if not fit.fits and not allow_infeasible:
        raise InfeasibleError(f"{m.name} on {tp}x{pp} {d.name}: the batch {fit.describe()} "
                              "per device (weights + KV + activations)",
                              hint="a larger --tp/--pp, a smaller --dtype/batch or a bigger "
                                   "device")
    est = estimate_step(
        m, d, tp=tp, pp=pp,
        prefill_lens=[prefill_len] * prefill_seqs,
        decode_context_lens=[context] * decode_seqs,
        dtype=wdtype, kv_dtype=kvdtype,
        profile=prof, inter_link=inter_node, engine=engine,
    )
    out = {"model": m.name, "device": d.name, "tp": tp, "pp": pp,
           "prefill_tokens": prefill_len * prefill_seqs, "decode_seqs": decode_seqs,
           "context": context, "dtype": dtype, "time_s": est.time_s,
           "breakdown": dict(est.breakdown), "fits_memory": fit.fits,
           "memory_needed_gib": fit.needed_bytes / GiB,
           "memory_capacity_gib": fit.available_bytes / GiB, "fabric": fabric,
           "engine": describe_engine(engine)}
    with_profiles(out, {d.name: prof})
    if json_out:
        emit_json(out)
        return
    t = Table(title=f"{m.name} on {tp}x{pp} {d.name}: step {est.time_s * 1e3:.3f} ms")
    t.add_column("component")
    t.add_column("value")
    for k, v in est.breakdown.items():
        t.add_row(k, f"{v * 1e3:.3f} ms" if k.endswith("_s") else f"{v:.4g}")
    console.print(t)
    console.print(f"fabric: {fabric}", highlight=False, soft_wrap=True)
    console.print(f"engine: {out['engine']}", highlight=False, soft_wrap=True)
    print_efficiency(out)
    if not fit.fits:
        console.print(f"DOES NOT FIT ({fit.describe()} per device): this step cannot run")
