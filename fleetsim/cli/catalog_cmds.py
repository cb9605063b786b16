"""`fleetsim hw ...` and `fleetsim models ...`: browse the catalog."""

from __future__ import annotations

import typer

from fleetsim.cli.common import console, emit_json, new_table
from hwmodels import catalog, flops
from hwmodels.memory import kv_bytes_per_token
from hwmodels.units import GiB

hw_app = typer.Typer(help="Devices and links in the catalog.", no_args_is_help=True)
models_app = typer.Typer(help="Models in the catalog.", no_args_is_help=True)


def device_summary(name: str) -> dict:
    d = catalog.load_device(name)
    return {
        "name": d.name, "vendor": d.vendor, "kind": str(d.kind),
        "peak_tflops": {str(k): v / 1e12 for k, v in d.peak_flops.items()},
        "memory_gib": d.memory_bytes / GiB, "memory_bw_gbps": d.memory_bw_Bps / 1e9,
        "scale_up_link": d.scale_up_link, "scale_up_bw_gbps": d.scale_up_bw_Bps / 1e9,
        "tdp_w": d.tdp_w, "idle_w": d.idle_w, "price_usd_per_hour": d.price_usd_per_hour,
        "gemm_efficiency": {str(k): v for k, v in d.gemm_efficiency.items()},
        "memory_efficiency": d.memory_efficiency, "attention_efficiency": d.attention_efficiency,
        "devices_per_node": d.devices_per_node, "source": d.source,
    }


def link_summary(name: str) -> dict:
    link = catalog.load_link(name)
    return {"name": link.name, "kind": str(link.kind), "bandwidth_gbps": link.bandwidth_Bps / 1e9,
            "latency_us": link.latency_s * 1e6, "efficiency": link.efficiency,
            "source": link.source}


def model_summary(name: str) -> dict:
    m = catalog.load_model(name)
    return {
        "name": m.name, "model_type": m.model_type, "layers": m.num_layers,
        "hidden_size": m.hidden_size, "heads": m.num_heads, "kv_heads": m.num_kv_heads,
        "head_dim": m.head_dim, "ffn_hidden_size": m.ffn_hidden_size, "vocab_size": m.vocab_size,
        "gated_mlp": m.gated_mlp, "tie_embeddings": m.tie_embeddings,
        "num_experts": m.num_experts, "experts_per_token": m.experts_per_token,
        "attention": str(m.attention),
        "params_b": flops.param_count(m) / 1e9,
        "active_params_b": flops.active_param_count(m) / 1e9,
        "kv_bytes_per_token_bf16": kv_bytes_per_token(m, "bf16"),
        "source": m.source,
    }


@hw_app.command("list")
def hw_list(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """List devices and links.

    Example:

        fleetsim hw list --json
    """
    devices = [device_summary(n) for n in catalog.list_devices()]
    links = [link_summary(n) for n in catalog.list_links()]
    if json_out:
        emit_json({"devices": devices, "links": links})
        return
    t = new_table("Devices (dense peak)", ("name", "bf16 TFLOP/s", "fp8 TFLOP/s", "HBM GiB",
                                           "HBM GB/s", "scale-up", "TDP W", "$/h"))
    for d in devices:
        pk = d["peak_tflops"]
        t.add_row(d["name"], f"{pk.get('bf16', pk.get('fp16', 0)):.0f}",
                  f"{pk['fp8']:.0f}" if "fp8" in pk else "-", f"{d['memory_gib']:.0f}",
                  f"{d['memory_bw_gbps']:.0f}", f"{d['scale_up_link']} {d['scale_up_bw_gbps']:.0f}",
                  f"{d['tdp_w']:.0f}", f"{d['price_usd_per_hour']:.2f}")
    console.print(t)
    lt = new_table("Links (per direction)", ("name", "kind", "GB/s", "latency us",
                                             "bus efficiency"))
    for link in links:
        lt.add_row(link["name"], link["kind"], f"{link['bandwidth_gbps']:.1f}",
                   f"{link['latency_us']:.1f}", f"{link['efficiency']:.2f}")
    console.print(lt)


@hw_app.command("show")
def hw_show(name: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Show one device (or link) with its sources.

    Example:

        fleetsim hw show h100-sxm
    """
    info = link_summary(name) if name.lower() in catalog.list_links() else device_summary(name)
    if json_out:
        emit_json(info)
        return
    t = new_table(info["name"], show_header=False)
    for k, v in info.items():
        t.add_row(k, str(v))
    console.print(t)


@models_app.command("list")
def models_list(json_out: bool = typer.Option(False, "--json")) -> None:
    """List catalog models with parameter counts.

    Example:

        fleetsim models list
    """
    rows = [model_summary(n) for n in catalog.list_models()]
    if json_out:
        emit_json({"models": rows})
        return
    t = new_table("Models", ("name", "type", "layers", "hidden", "heads/kv", "experts",
                             "params B", "active B"))
    for r in rows:
        t.add_row(r["name"], r["model_type"], str(r["layers"]), str(r["hidden_size"]),
                  f"{r['heads']}/{r['kv_heads']}",
                  f"{r['num_experts']}x{r['experts_per_token']}" if r["num_experts"] else "-",
                  f"{r['params_b']:.2f}", f"{r['active_params_b']:.2f}")
    console.print(t)


@models_app.command("show")
def models_show(name: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """Show one model (catalog name or path to an HF config.json).

    Example:

        fleetsim models show llama2-70b
    """
    info = model_summary(name)
    if json_out:
        emit_json(info)
        return
    t = new_table(info["name"], show_header=False)
    for k, v in info.items():
        t.add_row(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    console.print(t)
