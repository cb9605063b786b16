"""`fleetsim demo`: the main job on embedded defaults; writes a report to ./fleetsim-out/."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from fleetsim.cli.common import (
    NO_PROFILE_OPTION,
    PROFILE_OPTION,
    atomic_write_text,
    check_output,
    console,
    emit_json,
    mkdir_option,
    new_table,
    print_efficiency,
    profile_choice,
    with_profiles,
)
from hwmodels import catalog

# (report directory, the --profile / --no-profile choice) -> the section's results; a section
# that predicts time reports the profiles it used under "profile" ({device: describe()})
Section = Callable[[Path, Any], dict[str, Any]]


def _scenario_path(name: str) -> Path:
    return Path(str(resources.files("simulator") / "scenarios" / name))


def _catalog_section(out: Path, choice: Any) -> dict[str, Any]:
    return {"devices": len(catalog.list_devices()), "links": len(catalog.list_links()),
            "models": len(catalog.list_models())}


def _estimate_section(out: Path, choice: Any) -> dict[str, Any]:
    from hwmodels.step import estimate_step

    model, device = catalog.load_model("llama2-70b"), catalog.load_device("h100-sxm")
    prof = choice.for_device(device)
    est = estimate_step(model, device, tp=8, prefill_lens=[512, 512],
                        decode_context_lens=[1024] * 32, profile=prof)
    return with_profiles({
        "what": "llama2-70b on 8x h100-sxm (TP8): 2 prompts x 512 tokens + 32 decodes @1024",
        "time_s": est.time_s, "breakdown": dict(est.breakdown)}, {device.name: prof})


def _training_section(out: Path, choice: Any) -> dict[str, Any]:
    from fleetsim.cli.common import load_scenario_file
    from simulator.training import load_training_scenario, simulate_training
    from simulator.training.plot import plot_pipeline
    from simulator.training.timeline import write_chrome_trace

    path = _scenario_path("gpt3-175b-a100.yaml")
    sc = load_training_scenario(load_scenario_file(path), file=str(path),
                                profiles=choice.lenient())
    res = simulate_training(sc.plan(timeline=True))
    write_chrome_trace(res.timeline or (), out / "training_timeline.json")
    plot_pipeline(res.timeline or (), out / "training_pipeline.png", title=sc.name,
                  parallel=sc.parallel, mfu=res.mfu)
    return with_profiles({"scenario": sc.name, **res.to_dict(),
                          "files": ["training_timeline.json", "training_pipeline.png"]},
                         sc.profiles())


def _validation_section(out: Path, choice: Any) -> dict[str, Any]:
    from simulator.training.validation import summarize, validate_training

    df = validate_training()
    df.to_csv(out / "validation_training.csv", index=False)
    return {"summary": summarize(df).to_dict(orient="records"),
            "files": ["validation_training.csv"]}


def _serving_section(out: Path, choice: Any) -> dict[str, Any]:
    from fleetsim.cli.common import load_scenario_file
    from simulator.serving import load_serving_scenario, load_workload, simulate_serving
    from simulator.serving.plots import plot_latency_cdfs

    path = _scenario_path("llama2-70b-h100-azure.yaml")
    sc = load_serving_scenario(load_scenario_file(path), file=str(path),
                               profiles=choice.lenient())
    df = load_workload(sc)
    result = simulate_serving(sc, df)
    plot_latency_cdfs(result, out / "serving_latency_cdf.png")
    return with_profiles({"scenario": sc.name, **result.summary(),
                          "files": ["serving_latency_cdf.png"]}, sc.profiles())


def _longrun_section(out: Path, choice: Any) -> dict[str, Any]:
    from fleetsim.cli.common import load_scenario_file
    from simulator.longrun.plot import plot_progress
    from simulator.longrun.simulate import simulate_run_seeds
    from simulator.training import load_training_scenario

    path = _scenario_path("llama3-405b-16k-54d.yaml")
    sc = load_training_scenario(load_scenario_file(path), file=str(path),
                                profiles=choice.lenient())
    summary = simulate_run_seeds(sc, seeds=4, seed=0)
    plot_progress(list(summary.runs), out / "longrun_progress.png")
    d = summary.to_dict()
    return with_profiles({"scenario": sc.name, "ettr": d["ettr"], "ettr_p5": d["ettr_p5"],
                          "ettr_p95": d["ettr_p95"], "num_interruptions": d["num_interruptions"],
                          "goodput_tokens_per_s": d["goodput_tokens_per_s"],
                          "files": ["longrun_progress.png"]}, sc.profiles())


# the devices the demo's sections run on (a --profile must be for one of them)
DEMO_DEVICES = ("a100-80gb", "h100-sxm")

SECTIONS: dict[str, Section] = {
    "catalog": _catalog_section,
    "estimate": _estimate_section,
    "training": _training_section,
    "serving": _serving_section,
    "longrun": _longrun_section,
    "validation": _validation_section,
}


def _report_md(results: dict[str, Any]) -> str:
    lines = ["# fleetsim demo report", ""]
    c = results["catalog"]
    lines += [f"Catalog: {c['devices']} devices, {c['links']} links, {c['models']} models.", ""]
    lines += ["## Efficiency source", "",
              "The step, training, serving and long-run predictions below use these "
              "per-device efficiencies (`--profile` / `--no-profile`; default: the bundled "
              "profile for the device, else the catalog defaults). The validation table is "
              "`fleetsim validate training` (bundled profiles, else defaults).", "", "| device | profile | source | file |", "|---|---|---|---|"]
    lines += [f"| {dev} | {d.get('name')} | {d.get('source')} | {d.get('file', '-')} |"
              for dev, d in results.get("profile", {}).items()]
    lines.append("")
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
    sv = results["serving"]
    lines += ["## Serving a real trace", "",
              f"Scenario `{sv['scenario']}` (Azure LLM inference 2023 conversation sample, "
              f"{sv['requests']:,} requests): TTFT p50/p99 {sv['ttft_s']['p50'] * 1e3:.0f}/"
              f"{sv['ttft_s']['p99'] * 1e3:.0f} ms, TPOT p50/p99 {sv['tpot_s']['p50'] * 1e3:.1f}/"
              f"{sv['tpot_s']['p99'] * 1e3:.1f} ms, SLO attainment {sv['slo_attainment']:.1%}, "
              f"{sv['throughput_tokens_per_s']:,.0f} output tokens/s, ${sv['cost_usd']:.2f}, "
              f"{sv['energy_kwh']:.2f} kWh. CDFs: `serving_latency_cdf.png`.", ""]
    lr = results["longrun"]
    lines += ["## A 54-day run with failures", "",
              f"Scenario `{lr['scenario']}` (4 seeds): ETTR {lr['ettr']:.3f} "
              f"(5-95%: {lr['ettr_p5']:.3f}-{lr['ettr_p95']:.3f}), "
              f"{lr['num_interruptions']:.0f} interruptions (Llama 3 paper: 419 in 54 days on "
              f"16,384 GPUs). Progress: `longrun_progress.png`.", ""]
    v = results["validation"]
    lines += ["## Validation against published training runs", "",
              "| table | rows | MAPE % | worst abs error % |", "|---|---|---|---|"]
    lines += [f"| {r['table']} | {r['rows']} | {r['mape_pct']:.1f} | "
              f"{r['max_abs_error_pct']:.1f} |" for r in v["summary"]]
    lines.append("")
    for name in results:
        if name not in SECTIONS or name in ("catalog", "estimate", "training", "serving",
                                            "longrun", "validation", "profile"):
            continue
        lines += [f"## {name}", "", "```", _short(results[name]), "```", ""]
    return "\n".join(lines)


def _short(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=1, default=str)[:4000]


def demo_cmd(
    out_dir: str = typer.Option("fleetsim-out", "--out", help="Report directory."),
    profile: list[str] = PROFILE_OPTION,
    no_profile: bool = NO_PROFILE_OPTION,
    mkdir: bool = mkdir_option(),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Run the main job on embedded defaults and write a report to ./fleetsim-out/ (which
    efficiency profile each device used is in the report and under "profile").

    Example:

        fleetsim demo --out fleetsim-out
    """
    check_output(out_dir, option="--out", kind="dir", mkdir=mkdir)
    choice = profile_choice(profile, no_profile)
    choice.check_devices([catalog.load_device(d) for d in DEMO_DEVICES], where="the demo")
    out = Path(out_dir).expanduser()
    out.mkdir(exist_ok=True)
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name, section in SECTIONS.items():
        t0 = time.perf_counter()
        if not json_out:
            console.print(f"[bold]demo[/bold]: {name} ...")
        results[name] = section(out, choice)
        timings[name] = time.perf_counter() - t0
    used: dict[str, Any] = {}
    for res in results.values():
        used.update(res.get("profile", {}))
    results["profile"] = dict(sorted(used.items()))
    results["timings_s"] = timings
    atomic_write_text(out / "summary.json", _short_full(results))
    atomic_write_text(out / "report.md", _report_md(results))
    if json_out:
        emit_json(results)
        return
    t = new_table(f"fleetsim demo -> {out}/report.md", ("section", "result", "seconds"))
    tr = results["training"]
    summary_rows = {
        "catalog": "{devices} devices, {links} links, {models} models".format(**results["catalog"]),
        "estimate": f"{results['estimate']['time_s'] * 1e3:.2f} ms per step",
        "training": f"{tr['iteration_time_s']:.2f} s/iter, MFU {tr['mfu']:.1%}",
        "serving": "TTFT p99 {:.0f} ms, TPOT p99 {:.1f} ms, SLO {:.1%}".format(
            results["serving"]["ttft_s"]["p99"] * 1e3, results["serving"]["tpot_s"]["p99"] * 1e3,
            results["serving"]["slo_attainment"]),
        "longrun": f"ETTR {results['longrun']['ettr']:.3f}, "
                   f"{results['longrun']['num_interruptions']:.0f} interruptions",
        "validation": "; ".join(f"{r['table']} MAPE {r['mape_pct']:.1f}%"
                                for r in results["validation"]["summary"]),
    }
    for name in SECTIONS:
        t.add_row(name, summary_rows.get(name, _oneline(results[name])),
                  f"{timings[name]:.1f}")
    console.print(t)
    print_efficiency(results)


def _oneline(obj: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in obj.items() if not isinstance(v, (dict, list)))[:120]


def _short_full(obj: Any) -> str:
    import json

    from fleetsim.cli.common import _jsonable

    return json.dumps(_jsonable(obj), indent=2)
