"""`fleetsim plan train-hetero`: one training job over unlike device pools vs. the baselines."""

from __future__ import annotations

import typer
from rich.table import Table

from fleetsim.cli.assumptions import add_assumptions, print_assumptions
from fleetsim.cli.common import console, emit_json, parse_prices, with_profiles


def _with_assumptions(out: dict, pools: tuple) -> dict:  # type: ignore[type-arg]
    """Each pool's fabric and efficiency profile (bundled per device, as simulated)."""
    from hwmodels.cluster import describe_fabric
    from hwmodels.ops import resolve_profile

    profiles = {p.cluster.device.name: resolve_profile(p.cluster.device, p.profile)
                for p in pools}
    out = with_profiles(out, profiles)
    return add_assumptions(out, fabric="; ".join(describe_fabric(p.cluster) for p in pools),
                           engine="training iteration simulator (simulator.training.hetero)",
                           cross_pool_p2p="priced on both pools' NICs, the slower wins")


def plan_train_hetero_cmd(
    model: str = typer.Option(..., "--model", help="Catalog model name."),
    pools: str = typer.Option(..., "--pools", help="DEVICE:COUNT,... e.g. a100-80gb:64,h100-sxm:64"),
    seq_len: int = typer.Option(4096, "--seq-len"),
    global_batch: int = typer.Option(..., "--global-batch", help="Sequences per step."),
    micro_batch: int = typer.Option(1, "--micro-batch"),
    price: list[str] = typer.Option(None, "--price", help="DEVICE=USD_PER_HOUR (repeatable)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Best heterogeneous plan (stages on pools, layers split by device speed within memory)
    beside each pool alone, the naive even-split mixed job and separate jobs.

    Example:

        fleetsim plan train-hetero --model llama3-70b --pools a100-80gb:32,h100-sxm:32 --global-batch 64
    """
    from planners.hetero import parse_pools, plan_hetero

    pools_spec = parse_pools(pools)
    plan = plan_hetero(model, pools_spec, seq_len=seq_len, global_batch=global_batch,
                       micro_batch=micro_batch, prices=parse_prices(price))
    out = _with_assumptions(plan.to_dict(), pools_spec)
    if json_out:
        emit_json(out)
        return
    table = Table(title=f"{model} on {pools}: one job vs. homogeneous use")
    for col in ("plan", "devices", "tp", "pp", "dp", "recompute", "tokens/s", "MFU", "$/Mtok",
                "split"):
        table.add_column(col)
    rows = [plan.hetero, plan.naive, *plan.alone, plan.separate]
    for r in rows:
        if r is None:
            continue
        table.add_row(r.kind, r.devices, str(r.tp), str(r.pp), str(r.dp), r.recompute,
                      f"{r.tokens_per_s:,.0f}", f"{r.mfu:.3f}", f"{r.usd_per_mtoken:.3f}",
                      r.pipeline_split)
    console.print(table)
    print_assumptions(out)
    verdict = "wins" if out["hetero_wins"] else "does NOT win"
    console.print(f"hetero {verdict}: {out['speedup']:.3f}x the best single-job baseline "
                  f"({out['best_baseline']}); {plan.simulated} plans simulated",
                  highlight=False)
