"""`fleetsim simulate serve --find-capacity | --sweep-rates a,b,c`: capacity under SLO and the
throughput-latency table (simulator.serving.capacity)."""

from __future__ import annotations

from typing import Any

from fleetsim.cli.common import console, emit_json, new_table, scenario_errors
from hwmodels.errors import ConfigError


def parse_loads(text: str) -> list[float]:
    """'0.5,1,2' -> [0.5, 1.0, 2.0] (ConfigError naming --sweep-rates otherwise)."""
    try:
        loads = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}",
                          key="--sweep-rates", allowed="e.g. 0.5,1,2") from None
    if not loads:
        raise ConfigError("no loads given", key="--sweep-rates", allowed="e.g. 0.5,1,2")
    return loads


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.1f}"


def _table(title: str, kind: str, probes: list[Any], percentile: int) -> Any:
    key = f"p{percentile}"
    t = new_table(title, (kind, "req/s", "tok/s", "TTFT p50 ms", f"TTFT {key} ms",
                          f"TPOT {key} ms", "SLO att.", "queue 1st/3rd ms", "verdict"))
    for p in probes:
        verdict = "pass" if p.passed else ("OVERLOADED" if p.overloaded else "misses SLO")
        t.add_row(f"{p.load:g}", f"{p.offered_rps:.2f}", f"{p.throughput_tokens_per_s:,.0f}",
                  _ms(p.ttft_s.get("p50")), _ms(p.ttft_s.get(key)), _ms(p.tpot_s.get(key)),
                  f"{p.slo_attainment:.1%}",
                  f"{_ms(p.ttft_first_third_s)}/{_ms(p.ttft_last_third_s)}", verdict)
    return t


def run_load_command(sc: Any, scenario: str, *, find: bool, sweep: str | None, probe_s: float,
                     percentile: int, trace: str | None, seed: int | None,
                     json_out: bool) -> dict[str, Any]:
    """Run --find-capacity or --sweep-rates on a loaded scenario; print or emit JSON."""
    from simulator.serving.capacity import find_capacity, load_kind, sweep_loads

    if find and sweep:
        raise ConfigError("give one of --find-capacity and --sweep-rates",
                          key="--find-capacity")
    kind = load_kind(sc, trace)
    title = f"{sc.name or scenario}: {probe_s:g} s probes, SLO p{percentile}"
    with scenario_errors(scenario):
        if sweep:
            probes = sweep_loads(sc, parse_loads(sweep), probe_s=probe_s,
                                 percentile=percentile, trace=trace, seed=seed)
            out: dict[str, Any] = {"load_kind": kind, "probe_s": probe_s,
                                   "slo_percentile": percentile,
                                   "probes": [p.to_dict() for p in probes]}
        else:
            cap = find_capacity(sc, probe_s=probe_s, percentile=percentile, trace=trace,
                                seed=seed)
            probes = list(cap.probes)
            out = cap.to_dict()
    if json_out:
        emit_json(out)
        return out
    console.print(_table(title, kind, probes, percentile))
    if not sweep:
        console.print(f"capacity: {kind} {out['capacity']:g} ({out['capacity_rps']:.2f} req/s, "
                      f"{out['capacity_throughput_tokens_per_s']:,.0f} output tok/s); first "
                      f"failing {kind}: {out['first_failing_load']}", highlight=False)
    return out
