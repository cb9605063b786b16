"""Synthetic workloads: arrival processes x length distributions x shared prefixes, seeded.

Spec (the scenario's workload.synthetic mapping):

    num_requests: 1000            # or duration_s: 600 (one of them)
    arrival: {process: poisson, rate: 5.0}        # requests/s
             {process: gamma, rate: 5.0, cv: 2.0}  # renewal process with inter-arrival CV
             {process: mmpp, rate_on: 20, rate_off: 1, mean_on_s: 10, mean_off_s: 30}
             {process: diurnal, rate: 5.0, amplitude: 0.5, period_s: 86400, phase_s: 0}
    input:  512 (fixed) | {dist: fixed, value: 512} | {dist: uniform, min: 16, max: 2048}
            {dist: lognormal, mean: 1000, sigma: 1.0, min: 1, max: 32768}
            {dist: zipf, a: 1.5, min: 16, max: 8192} | {dist: trace, path: azure-conv-2023-sample}
    output: same shapes as input (trace resamples the output column)
    prefix: {num_prompts: 4, tokens: 512, share: 1.0, zipf_a: 1.0, block_tokens: 16}

The prefix section gives each request (with probability `share`) one of `num_prompts` shared
system prompts of `tokens` tokens, as prefix_hashes of `block_tokens`-token blocks; prompts
are drawn Zipf(zipf_a)-popular. Same spec and seed -> same frame, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hwmodels._compat import StrEnum
from hwmodels.errors import ConfigError

SPEC_KEYS = ("num_requests", "duration_s", "arrival", "input", "output", "prefix")
LENGTH_KEYS = ("dist", "value", "min", "max", "mean", "sigma", "a", "path")
PREFIX_KEYS = ("num_prompts", "tokens", "share", "zipf_a", "block_tokens")


class ArrivalProcess(StrEnum):
    POISSON = "poisson"
    GAMMA = "gamma"
    MMPP = "mmpp"
    DIURNAL = "diurnal"


class LengthDist(StrEnum):
    FIXED = "fixed"
    UNIFORM = "uniform"
    LOGNORMAL = "lognormal"
    ZIPF = "zipf"
    TRACE = "trace"


def _section(spec: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str,
             file: str | None) -> dict[str, Any]:
    raw = spec.get(key)
    if raw is None:
        raise ConfigError("missing required section", file=file, key=f"{where}.{key}",
                          allowed=list(allowed))
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping, got {raw!r}", file=file, key=f"{where}.{key}")
    return _known_keys(raw, allowed, f"{where}.{key}", file)


def _known_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str,
                file: str | None) -> dict[str, Any]:
    """`raw` as a dict, every key one of `allowed` (else ConfigError naming `where`.key)."""
    for k in raw:
        if k not in allowed:
            raise ConfigError(f"unknown key '{k}'", file=file, key=f"{where}.{k}",
                              allowed=list(allowed))
    return dict(raw)


def _num(sec: Mapping[str, Any], key: str, where: str, file: str | None, *,
         default: float | None = None, minimum: float = 0.0, strict: bool = True) -> float:
    value = sec.get(key, default)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or (value <= minimum if strict else value < minimum):
        rel = ">" if strict else ">="
        raise ConfigError(f"expected a number {rel} {minimum:g}, got {value!r}", file=file,
                          key=f"{where}.{key}")
    return float(value)


def _enum(sec: Mapping[str, Any], key: str, cls: type, where: str, file: str | None) -> Any:
    value = sec.get(key)
    try:
        return cls(value)
    except ValueError:
        raise ConfigError(f"unknown value {value!r}", file=file, key=f"{where}.{key}",
                          allowed=[m.value for m in cls]) from None


# The most requests one synthetic trace may hold: ~2 GB of columns; more is a typo (a
# duration in ms given as s), not a workload anyone replays in a discrete-event simulator.
MAX_SYNTH_REQUESTS = 20_000_000


def _check_size(spec: Mapping[str, Any], n: int | None, duration: float | None, where: str,
                file: str | None) -> None:
    """ConfigError before any sampling when the trace would exceed MAX_SYNTH_REQUESTS
    (a duration is priced at the section's peak rate, so the check is conservative)."""
    if n is not None and n > MAX_SYNTH_REQUESTS:
        raise ConfigError(f"{n:,} requests is more than {MAX_SYNTH_REQUESTS:,}",
                          file=file, key=f"{where}.num_requests",
                          allowed=f"1 .. {MAX_SYNTH_REQUESTS:,}")
    arrival = spec.get("arrival")
    if duration is None or not isinstance(arrival, Mapping):
        return
    rates = [v for k, v in arrival.items() if k in ("rate", "rate_on", "rate_off")
             and isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)]
    amplitude = arrival.get("amplitude", 0.0)
    if not isinstance(amplitude, (int, float)) or not np.isfinite(amplitude):
        amplitude = 0.0
    expected = max(rates, default=0.0) * (1.0 + abs(amplitude)) * duration
    if expected > MAX_SYNTH_REQUESTS:
        raise ConfigError(f"duration {duration:g} s at a peak rate of "
                          f"{max(rates, default=0.0):g} req/s is ~{expected:.3g} requests, "
                          f"more than {MAX_SYNTH_REQUESTS:,}", file=file,
                          key=f"{where}.duration_s",
                          allowed=f"duration_s x peak rate <= {MAX_SYNTH_REQUESTS:,}")


def _length(spec: Mapping[str, Any], key: str, where: str, file: str | None) -> dict[str, Any]:
    """A required length section of a synthetic spec (an int is a fixed length)."""
    raw = spec.get(key)
    if raw is None:
        raise ConfigError("missing required section", file=file, key=f"{where}.{key}",
                          allowed=list(LENGTH_KEYS))
    return length_section(raw, f"{where}.{key}", file)


def _arrivals(sec: dict[str, Any], n: int | None, duration: float | None,
              rng: np.random.Generator, where: str, file: str | None) -> np.ndarray:
    """Arrival times (s, from 0): n of them, or all within [0, duration)."""
    proc = _enum(sec, "process", ArrivalProcess, where, file)
    allowed = {ArrivalProcess.POISSON: ("process", "rate"),
               ArrivalProcess.GAMMA: ("process", "rate", "cv"),
               ArrivalProcess.MMPP: ("process", "rate_on", "rate_off", "mean_on_s",
                                     "mean_off_s"),
               ArrivalProcess.DIURNAL: ("process", "rate", "amplitude", "period_s", "phase_s")}
    for k in sec:
        if k not in allowed[proc]:
            raise ConfigError(f"unknown key '{k}' for {proc}", file=file, key=f"{where}.{k}",
                              allowed=list(allowed[proc]))
    if proc in (ArrivalProcess.POISSON, ArrivalProcess.GAMMA):
        rate = _num(sec, "rate", where, file)
        cv = _num(sec, "cv", where, file, default=1.0) if proc is ArrivalProcess.GAMMA else 1.0
        shape = 1.0 / cv**2  # Gamma(k, theta): CV = 1/sqrt(k), mean = k theta = 1/rate
        count = n if n is not None else int(rate * duration * 1.2 + 10 * np.sqrt(rate * duration)
                                             + 16)
        while True:
            gaps = (rng.exponential(1.0 / rate, count) if proc is ArrivalProcess.POISSON
                    else rng.gamma(shape, 1.0 / (rate * shape), count))
            times = np.cumsum(gaps) - gaps[0]  # first request at t = 0
            if n is not None or times[-1] >= duration:
                return times if n is not None else times[times < duration]
            count *= 2
    if proc is ArrivalProcess.MMPP:
        rates = (_num(sec, "rate_on", where, file),
                 _num(sec, "rate_off", where, file, default=0.0, strict=False))
        means = (_num(sec, "mean_on_s", where, file), _num(sec, "mean_off_s", where, file))
        out: list[np.ndarray] = []
        t, state, total = 0.0, 0, 0
        while (n is not None and total < n) or (duration is not None and t < duration):
            length = rng.exponential(means[state])
            if rates[state] > 0:
                k = rng.poisson(rates[state] * length)
                pts = t + np.sort(rng.uniform(0.0, length, k))
                out.append(pts)
                total += k
            t += length
            state = 1 - state
        times = np.concatenate(out) if out else np.zeros(0)
        times = times - times[0] if len(times) else times
        return times[:n] if n is not None else times[times < duration]
    rate = _num(sec, "rate", where, file)
    amp = _num(sec, "amplitude", where, file, default=0.5, minimum=0.0, strict=False)
    if amp > 1:
        raise ConfigError(f"must be in [0, 1], got {amp}", file=file, key=f"{where}.amplitude")
    period = _num(sec, "period_s", where, file, default=86400.0)
    phase = _num(sec, "phase_s", where, file, default=0.0, minimum=0.0, strict=False)
    peak = rate * (1 + amp)
    chunks: list[np.ndarray] = []
    t, total = 0.0, 0
    block = max(1024, n or 0)
    while (n is not None and total < n) or (duration is not None and t < duration):
        cand = t + np.cumsum(rng.exponential(1.0 / peak, block))  # thinning (Lewis-Shedler)
        keep = rng.uniform(0, peak, block) < rate * (
            1 + amp * np.sin(2 * np.pi * (cand + phase) / period))
        chunks.append(cand[keep])
        total += int(keep.sum())
        t = float(cand[-1])
    times = np.concatenate(chunks)
    times = times - times[0]
    return times[:n] if n is not None else times[times < duration]


def _lengths(sec: dict[str, Any], count: int, rng: np.random.Generator, where: str,
             file: str | None, column: str) -> np.ndarray:
    dist = _enum(sec, "dist", LengthDist, where, file)
    allowed = {LengthDist.FIXED: ("dist", "value"), LengthDist.UNIFORM: ("dist", "min", "max"),
               LengthDist.LOGNORMAL: ("dist", "mean", "sigma", "min", "max"),
               LengthDist.ZIPF: ("dist", "a", "min", "max"),
               LengthDist.TRACE: ("dist", "path")}
    for k in sec:
        if k not in allowed[dist]:
            raise ConfigError(f"unknown key '{k}' for {dist}", file=file, key=f"{where}.{k}",
                              allowed=list(allowed[dist]))
    minimum = 1 if column == "input_tokens" else 1
    if dist is LengthDist.FIXED:
        return np.full(count, int(_num(sec, "value", where, file, minimum=minimum,
                                       strict=False)), dtype=np.int64)
    if dist is LengthDist.TRACE:
        from traces.readers import read_trace  # local: readers import pandas parsing machinery

        path = sec.get("path")
        if not isinstance(path, str):
            raise ConfigError("needs a trace path or sample name", file=file,
                              key=f"{where}.path")
        pool = read_trace(path)[column].to_numpy()
        pool = pool[pool >= minimum]
        return rng.choice(pool, size=count, replace=True).astype(np.int64)
    lo = int(_num(sec, "min", where, file, default=minimum, minimum=minimum, strict=False))
    hi = int(_num(sec, "max", where, file, default=1 << 20, minimum=lo, strict=False))
    if dist is LengthDist.UNIFORM:
        return rng.integers(lo, hi + 1, count, dtype=np.int64)
    if dist is LengthDist.LOGNORMAL:
        mean = _num(sec, "mean", where, file)
        sigma = _num(sec, "sigma", where, file, default=1.0)
        mu = np.log(mean) - sigma**2 / 2  # so that E[X] = mean before clipping
        return np.clip(np.rint(rng.lognormal(mu, sigma, count)), lo, hi).astype(np.int64)
    a = _num(sec, "a", where, file, minimum=1.0)
    return np.minimum(rng.zipf(a, count) + lo - 1, hi).astype(np.int64)


def length_section(raw: Any, where: str, file: str | None) -> dict[str, Any]:
    """An input/output length section: a mapping ({dist: ...}) or an int (fixed length)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return {"dist": "fixed", "value": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a length or a mapping, got {raw!r}", file=file, key=where,
                          allowed=["an integer (fixed)", "{dist: ...}"])
    return _known_keys(raw, LENGTH_KEYS, where, file)


def sample_lengths(sec: Mapping[str, Any], count: int, rng: np.random.Generator, where: str,
                   file: str | None, column: str) -> np.ndarray:
    """`count` token lengths from a length section (closed-loop clients draw in chunks)."""
    return _lengths(dict(sec), count, rng, where, file, column)


def sample_prefixes(sec: Mapping[str, Any], count: int, rng: np.random.Generator, where: str,
                    file: str | None) -> tuple[list[list[int]], np.ndarray, int]:
    """Prefix hashes, shared tokens and block size for `count` requests (see _prefixes)."""
    if not isinstance(sec, Mapping):
        raise ConfigError(f"expected a mapping, got {sec!r}", file=file, key=where)
    return _prefixes(_known_keys(sec, PREFIX_KEYS, where, file), count, rng, where, file)


def _prefixes(sec: dict[str, Any], count: int, rng: np.random.Generator, where: str,
              file: str | None) -> tuple[list[list[int]], np.ndarray, int]:
    """Per-request prefix hashes, shared-prompt token counts and the block size."""
    prompts = int(_num(sec, "num_prompts", where, file, default=1, minimum=1, strict=False))
    tokens = int(_num(sec, "tokens", where, file, minimum=1, strict=False))
    share = _num(sec, "share", where, file, default=1.0, minimum=0.0, strict=False)
    zipf_a = _num(sec, "zipf_a", where, file, default=1.0, minimum=0.0, strict=False)
    block = int(_num(sec, "block_tokens", where, file, default=16, minimum=1, strict=False))
    weights = 1.0 / np.arange(1, prompts + 1) ** zipf_a
    choice = rng.choice(prompts, size=count, p=weights / weights.sum())
    uses = rng.uniform(size=count) < share
    blocks = tokens // block
    table = [[p * 1_000_003 + b for b in range(blocks)] for p in range(prompts)]
    hashes = [table[c] if u else [] for c, u in zip(choice, uses, strict=True)]
    return hashes, np.where(uses, tokens, 0), block


def synthesize(spec: Mapping[str, Any], *, seed: int = 0, file: str | None = None
               ) -> pd.DataFrame:
    """A request frame (arrival_time_s, input_tokens, output_tokens[, prefix_hashes]) from
    `spec` (see the module docstring); deterministic for a given seed."""
    where = "workload.synthetic"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"expected a mapping, got {spec!r}", file=file, key=where)
    for k in spec:
        if k not in SPEC_KEYS:
            raise ConfigError(f"unknown key '{k}'", file=file, key=f"{where}.{k}",
                              allowed=list(SPEC_KEYS))
    has_n, has_d = spec.get("num_requests") is not None, spec.get("duration_s") is not None
    if has_n == has_d:
        raise ConfigError("give exactly one of num_requests and duration_s", file=file,
                          key=where, allowed=["num_requests", "duration_s"])
    n = int(_num(spec, "num_requests", where, file, minimum=1, strict=False)) if has_n else None
    duration = _num(spec, "duration_s", where, file) if has_d else None
    _check_size(spec, n, duration, where, file)
    rng_arr, rng_in, rng_out, rng_pre = (np.random.default_rng(s) for s in
                                         np.random.SeedSequence(seed).spawn(4))
    times = _arrivals(_section(spec, "arrival", ("process", "rate", "cv", "rate_on", "rate_off",
                                                 "mean_on_s", "mean_off_s", "amplitude",
                                                 "period_s", "phase_s"), where, file),
                      n, duration, rng_arr, f"{where}.arrival", file)
    count = len(times)
    inputs = _lengths(_length(spec, "input", where, file), count, rng_in,
                      f"{where}.input", file, "input_tokens")
    outputs = _lengths(_length(spec, "output", where, file), count, rng_out,
                       f"{where}.output", file, "output_tokens")
    out: dict[str, Any] = {"arrival_time_s": times, "input_tokens": inputs,
                           "output_tokens": outputs}
    block = None
    if spec.get("prefix") is not None:
        sec = _section(spec, "prefix", PREFIX_KEYS, where, file)
        hashes, shared, block = _prefixes(sec, count, rng_pre, f"{where}.prefix", file)
        out["input_tokens"] = inputs + shared  # the shared prompt precedes the user's tokens
        out["prefix_hashes"] = hashes
    df = pd.DataFrame(out)
    # times are from the process start (t = 0): nothing to rebase (traces.stats.rebase_arrivals)
    df.attrs.update(format="synthetic", source="synthesize", warnings=[],
                    hash_block_tokens=block, trace_start_offset_s=0.0)
    return df
