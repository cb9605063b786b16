"""`fleetsim hw ...` and `fleetsim models ...`: browse the catalog."""

from __future__ import annotations

import typer

from fleetsim.cli.common import console, emit_json, new_table
from hwmodels import catalog, flops
from hwmodels.errors import ConfigError
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
def hw_show(
    name: str = typer.Argument(None, help="Catalog device or link (omit with --scenario)."),
    scenario: str = typer.Option(None, "--scenario",
                                 help="Training or serving scenario: draw its cluster."),
    num_devices: int = typer.Option(None, "--num-devices",
                                    help="Devices in the cluster (default: one node)."),
    devices_per_node: int = typer.Option(None, "--devices-per-node",
                                         help="Devices per node (TPU: chips per slice)."),
    slice_shape: str = typer.Option(None, "--slice-shape",
                                    help="Torus slice shape, e.g. 16x16 or 4x4x8 (TPU)."),
    intra_node: str = typer.Option(None, "--intra-node", help="Scale-up link (default: the "
                                   "device's own)."),
    inter_node: str = typer.Option(None, "--inter-node", help="Scale-out link (DCN/IB/RoCE; "
                                   "default: the device's NIC)."),
    nics_per_node: int = typer.Option(None, "--nics-per-node",
                                      help="NICs per node (default: one per device)."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Show one device (or link) with its sources, and a cluster's topology: the scale-up
    fabric drawn (torus grid, mesh/link-graph table, switch), per-group bandwidths, the
    scale-out side.

    Examples:

        fleetsim hw show h100-sxm

        fleetsim hw show tpu-v5e --num-devices 512 --devices-per-node 256 --slice-shape 16x16

        fleetsim hw show --scenario simulator/scenarios/llama3-70b-h100.yaml
    """
    from fleetsim.cli.hw_cmds import cluster_from_flags, print_lines, show_cluster
    from hwmodels.topology_render import render_cluster, topology_facts

    options = (num_devices, devices_per_node, slice_shape, intra_node, inter_node,
               nics_per_node)
    if scenario is None and all(v is None for v in options):
        if name is None:
            raise ConfigError("missing device name", key="NAME",
                              allowed="a catalog device or link (fleetsim hw list), or "
                                      "--scenario FILE")
        if name.lower() in catalog.list_links():
            info = link_summary(name)
            cluster = None
        else:
            info = device_summary(name)
            cluster = cluster_from_flags(name)  # one node of the catalog's size
        if json_out:
            emit_json(info if cluster is None else {**info, "topology": topology_facts(cluster)})
            return
        t = new_table(info["name"], show_header=False)
        for k, v in info.items():
            t.add_row(k, str(v))
        console.print(t)
        if cluster is not None:
            console.print(f"one node as catalogued ({cluster.devices_per_node} devices; "
                          "--num-devices and friends draw others):", highlight=False)
            print_lines(render_cluster(cluster))
        return
    if name is not None and name.lower() in catalog.list_links():
        raise ConfigError(f"'{name}' is a link; cluster options need a device", key="NAME",
                          allowed="a catalog device (fleetsim hw list)")
    where, cluster = show_cluster(name, scenario=scenario, num_devices=num_devices,
                                  devices_per_node=devices_per_node, slice_shape=slice_shape,
                                  intra_node=intra_node, inter_node=inter_node,
                                  nics_per_node=nics_per_node)
    info = device_summary(cluster.device.name)
    groups = where.pop("groups", []) if where else []
    facts = topology_facts(cluster, groups)
    if json_out:
        emit_json({**info, **({"scenario": where} if where else {}), "topology": facts})
        return
    pk = info["peak_tflops"]
    peak = pk.get("bf16", pk.get("fp16", 0.0))
    if where:
        console.print(f"{where['kind']} scenario {where['file']}", highlight=False,
                      soft_wrap=True, markup=False)
    console.print(f"{info['name']} ({info['vendor']} {info['kind']}): {peak:g} TFLOP/s bf16, "
                  f"{info['memory_gib']:g} GiB at {info['memory_bw_gbps']:g} GB/s, scale-up "
                  f"{info['scale_up_link']} {info['scale_up_bw_gbps']:g} GB/s "
                  f"[{info['source']}]", highlight=False, soft_wrap=True, markup=False)
    print_lines(render_cluster(cluster, groups))


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
