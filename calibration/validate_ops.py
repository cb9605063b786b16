"""--validate, per operator: time each op of the validation decoder alone and compare it with the
hwmodels cost of the same op (fitted profile and defaults).

A whole-step error says *that* a prediction is off; this table says *where*: each GEMM, the
attention kernel, each memory-bound kernel (norm, rotary, activation, residual, embedding, KV
write) at the step's shapes, plus the 'unaccounted' remainder (measured step minus the sum of
its measured ops: view/transpose/indexing dispatches and Python, which the fused-kernel step
model has no term for). Imports hwmodels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from calibration.bench import rms_norm, rotary
from calibration.timing import time_fn
from hwmodels import ops
from hwmodels.dtypes import DType
from hwmodels.profile import DeviceProfile
from hwmodels.specs import DeviceSpec

Op = tuple[str, str, Callable[[], Any], Callable[[DeviceProfile], float], int]


def step_ops(p: Any, dev: DeviceSpec, device: torch.device, tdt: torch.dtype, dt: DType, *,
             step: str) -> list[Op]:
    """(name, kind, call, predict(profile) -> s, count per step) of every op of one serving step
    ('prefill' or 'decode') of the validation decoder, with the step's shapes."""
    d, h, hkv, hid = p.head_dim, p.heads, p.kv_heads, p.hidden
    if step == "prefill":
        batch, new, ctx = 1, p.prefill_tokens, p.prefill_tokens
    else:
        batch, new, ctx = p.decode_batch, 1, p.decode_context
    t = batch * new
    elt = tdt.itemsize
    rnd = lambda *shape: torch.randn(*shape, device=device, dtype=tdt)  # noqa: E731
    x, w = rnd(batch, new, hid), torch.ones(hid, device=device, dtype=tdt)
    out: list[Op] = []

    def gemm(name: str, m: int, n: int, k: int, count: int) -> None:
        a, wt = rnd(m, k), rnd(n, k)
        out.append((name, "gemm", lambda: F.linear(a, wt),
                    lambda prof: ops.gemm_time(dev, m, n, k, dt, prof), count))

    def mem(name: str, kind: str, call: Callable[[], Any], nbytes: float, count: int) -> None:
        out.append((name, kind, call,
                    lambda prof: ops.memory_time(dev, nbytes, prof, kind=kind), count))

    L = p.layers  # noqa: N806
    tokens = torch.randint(0, p.vocab, (batch, new), device=device)
    table = rnd(p.vocab, hid)
    mem("embedding", "embedding", lambda: F.embedding(tokens, table), 2.0 * t * hid * elt, 1)
    mem("rms_norm", "norm", lambda: rms_norm(x, w), 2.0 * t * hid * elt, 2 * L + 1)
    gemm("qkv", t, (h + 2 * hkv) * d, hid, L)
    q, k = rnd(batch, h, new, d), rnd(batch, hkv, new, d)
    cos, sin = rnd(new, d), rnd(new, d)
    mem("rotary q+k", "rope", lambda: (rotary(q, cos, sin), rotary(k, cos, sin)),
        2.0 * t * (h + hkv) * d * elt, L)
    cache = rnd(2, batch, hkv, ctx, d)
    kv = rnd(batch, hkv, new, d)

    def write() -> None:
        cache[0, :, :, ctx - new:ctx] = kv
        cache[1, :, :, ctx - new:ctx] = kv

    mem("kv write", "copy", write, 2.0 * t * 2 * hkv * d * elt, L)
    if step == "prefill":
        qa, ka, va = rnd(batch, h, new, d), rnd(batch, hkv, new, d), rnd(batch, hkv, new, d)
        out.append(("attention", "attention_prefill",
                    lambda: F.scaled_dot_product_attention(qa, ka, va, is_causal=True,
                                                           enable_gqa=True),
                    lambda prof: ops.attention_prefill_time(
                        dev, batch=batch, q_len=new, kv_len=ctx, num_heads=h, num_kv_heads=hkv,
                        head_dim=d, dtype=dt, profile=prof), L))
    else:
        qg = rnd(batch, hkv, h // hkv, d)
        out.append(("attention", "attention_decode",
                    lambda: F.scaled_dot_product_attention(qg, cache[0], cache[1]),
                    lambda prof: ops.attention_decode_time(
                        dev, num_seqs=batch, total_context=batch * ctx, num_heads=h,
                        num_kv_heads=hkv, head_dim=d, kv_dtype=dt, profile=prof), L))
    gemm("o", t, hid, h * d, L)
    y = rnd(batch, new, hid)
    mem("residual add", "residual", lambda: x + y, 3.0 * t * hid * elt, 2 * L)
    gemm("gate_up", t, 2 * p.ffn, hid, L)
    gate, up = rnd(batch, new, p.ffn), rnd(batch, new, p.ffn)
    mem("silu*up", "activation", lambda: F.silu(gate) * up, 3.0 * t * p.ffn * elt, L)
    gemm("down", t, hid, p.ffn, L)
    gemm("lm_head", batch, p.vocab, hid, 1)
    return out


def per_op_table(p: Any, dev: DeviceSpec, device: torch.device, tdt: torch.dtype, dt: DType,
                 fitted: DeviceProfile, defaults: DeviceProfile, measured_steps: dict[str, Any],
                 *, target_s: float) -> list[dict[str, Any]]:
    """Rows {step, op, kind, count, measured_s, predicted_s, default_predicted_s} per op (times
    per call), and per step an 'unaccounted' row (step median minus count-weighted op medians)."""
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for step in ("prefill", "decode"):
            total = 0.0
            for name, kind, call, predict, count in step_ops(p, dev, device, tdt, dt,
                                                             step=step):
                m = time_fn(call, device, warmup=2, min_repeats=5, max_repeats=200,
                            target_time_s=target_s).median_s
                total += count * m
                rows.append({"step": step, "op": name, "kind": kind, "count": count,
                             "measured_s": m, "predicted_s": predict(fitted),
                             "default_predicted_s": predict(defaults)})
            step_s = measured_steps[step].median_s
            rows.append({"step": step, "op": "unaccounted", "kind": "framework", "count": 1,
                         "measured_s": step_s - total, "predicted_s": 0.0,
                         "default_predicted_s": 0.0})
    return rows


def format_ops(rows: list[dict[str, Any]]) -> list[str]:
    """Fixed-width per-op lines (microseconds per call, signed errors)."""
    head = (f"{'step':<8} {'op':<13} {'x':>3} {'measured us':>12} {'profile us':>11} "
            f"{'err':>7} {'defaults us':>12} {'err':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        m = r["measured_s"]
        err = (r["predicted_s"] - m) / m if m > 0 else float("nan")
        derr = (r["default_predicted_s"] - m) / m if m > 0 else float("nan")
        lines.append(f"{r['step']:<8} {r['op']:<13} {r['count']:>3} {m * 1e6:>12.1f} "
                     f"{r['predicted_s'] * 1e6:>11.1f} {err:>+7.1%} "
                     f"{r['default_predicted_s'] * 1e6:>12.1f} {derr:>+7.1%}")
    return lines
