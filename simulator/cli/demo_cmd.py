"""`fleetsim demo`: the main job on embedded defaults; writes a report to ./fleetsim-out/."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hwmodels import catalog
from simulator.cli.common import atomic_write_text, console, emit_json

Section = Callable[[Path], dict[str, Any]]


def _scenario_path(name: str) -> Path:
    return Path(str(resources.files("simulator") / "scenarios" / name))


def _catalog_section(out: Path) -> dict[str, Any]:
    return {"devices": len(catalog.list_devices()), "links": len(catalog.list_links()),
            "models": len(catalog.list_models())}


def _estimate_section(out: Path) -> dict[str, Any]:
    from hwmodels.step import estimate_step

    model, device = catalog.load_model("llama2-70b"), catalog.load_device("h100-sxm")
    est = estimate_step(model, device, tp=8, prefill_lens=[512, 512],
                        decode_context_lens=[1024] * 32)
    return {"what": "llama2-70b on 8x h100-sxm (TP8): 2 prompts x 512 tokens + 32 decodes @1024",
            "time_s": est.time_s, "breakdown": dict(est.breakdown)}


def _training_section(out: Path) -> dict[str, Any]:
    from simulator.cli.common import load_scenario_file
    from simulator.training import load_training_scenario, simulate_iteration
    from simulator.training.plot import plot_pipeline
    from simulator.training.timeline import write_chrome_trace

    path = _scenario_path("gpt3-175b-a100.yaml")
    sc = load_training_scenario(load_scenario_file(path), file=str(path))
    res = simulate_iteration(sc.model, sc.cluster, sc.training, sc.parallel, timeline=True)
    write_chrome_trace(res.timeline or (), out / "training_timeline.json")
    plot_pipeline(res.timeline or (), out / "training_pipeline.png", title=sc.name)
    return {"scenario": sc.name, **res.to_dict(),
            "files": ["training_timeline.json", "training_pipeline.png"]}


def _validation_section(out: Path) -> dict[str, Any]:
    from simulator.training.validation import summarize, validate_training

    df = validate_training()
    df.to_csv(out / "validation_training.csv", index=False)
    return {"summary": summarize(df).to_dict(orient="records"),
            "files": ["validation_training.csv"]}


SECTIONS: dict[str, Section] = {
    "catalog": _catalog_section,
    "estimate": _estimate_section,
    "training": _training_section,
    "validation": _validation_section,
}


def _report_md(results: dict[str, Any]) -> str:
    lines = ["# fleetsim demo report", ""]
    c = results["catalog"]
    lines += [f"Catalog: {c['devices']} devices, {c['links']} links, {c['models']} models.", ""]
    e = results["estimate"]
    lines += ["## One serving step", "", f"{e['what']}: **{e['time_s'] * 1e3:.2f} ms**", ""]
    t = results["training"]
    bd = t["breakdown"]
    lines += ["## One training iteration", "",
              f"Scenario `{t['scenario']}`: iteration {t['iteration_time_s']:.2f} s, "
              f"{t['tokens_per_s']:,.0f} tokens/s, {t['tflops_per_gpu']:.0f} TFLOP/s per GPU "
              f"(MFU {t['mfu']:.1%}), peak memory {t['peak_memory_gib']:.1f} GiB "
              f"({'fits' if t['fits_memory'] else 'does not fit'}).",
              f"Breakdown: compute {bd['compute_s']:.2f} s, exposed comm "
              f"{bd['exposed_comm_s']:.2f} s, bubble {bd['bubble_s']:.2f} s, optimizer "
              f"{bd['optimizer_s']:.3f} s. Timeline: `training_timeline.json` (Perfetto), "
              "Gantt: `training_pipeline.png`.", ""]
    v = results["validation"]
    lines += ["## Validation against published training runs", "",
              "| table | rows | MAPE % | worst abs error % |", "|---|---|---|---|"]
    lines += [f"| {r['table']} | {r['rows']} | {r['mape_pct']:.1f} | "
              f"{r['max_abs_error_pct']:.1f} |" for r in v["summary"]]
    lines.append("")
    for name in results:
        if name not in SECTIONS or name in ("catalog", "estimate", "training", "validation"):
            continue
        lines += [f"## {name}", "", "```", _short(results[name]), "```", ""]
    return "\n".join(lines)


def _short(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=1, default=str)[:4000]


def demo_cmd(
    out_dir: str = typer.Option("fleetsim-out", "--out", help="Report directory."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Run the main job on embedded defaults and write a report to ./fleetsim-out/."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name, section in SECTIONS.items():
        t0 = time.perf_counter()
        if not json_out:
            console.print(f"[bold]demo[/bold]: {name} ...")
        results[name] = section(out)
        timings[name] = time.perf_counter() - t0
    results["timings_s"] = timings
    atomic_write_text(out / "summary.json", _short_full(results))
    atomic_write_text(out / "report.md", _report_md(results))
    if json_out:
        emit_json(results)
        return
    t = Table(title=f"fleetsim demo -> {out}/report.md")
    t.add_column("section")
    t.add_column("result")
    t.add_column("seconds")
    tr = results["training"]
    summary_rows = {
        "catalog": "{devices} devices, {links} links, {models} models".format(**results["catalog"]),
        "estimate": f"{results['estimate']['time_s'] * 1e3:.2f} ms per step",
        "training": f"{tr['iteration_time_s']:.2f} s/iter, MFU {tr['mfu']:.1%}",
        "validation": "; ".join(f"{r['table']} MAPE {r['mape_pct']:.1f}%"
                                for r in results["validation"]["summary"]),
    }
    for name in SECTIONS:
        t.add_row(name, summary_rows.get(name, _oneline(results[name])),
                  f"{timings[name]:.1f}")
    console.print(t)


def _oneline(obj: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in obj.items() if not isinstance(v, (dict, list)))[:120]


def _short_full(obj: Any) -> str:
    import json

    from simulator.cli.common import _jsonable

    return json.dumps(_jsonable(obj), indent=2)
