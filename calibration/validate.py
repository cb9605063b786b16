"""--validate: time real end-to-end steps of a Llama-shaped decoder and compare with hwmodels.

The decoder is plain torch with random weights (no download): RMSNorm, rotary embeddings, GQA
attention through scaled_dot_product_attention with a KV-cache tensor, SwiGLU MLP, LM head.
Three steps, none of them used in the fit: a prefill of N tokens, a decode step of B sequences at
context C, and a training forward+backward of one layer. Each is predicted by hwmodels
(hwmodels.step.estimate_step; hwmodels.layers for the training layer) with the fitted profile
and with the uncalibrated defaults. Imports hwmodels: runs where fleetsim is installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from calibration.bench import TORCH_DTYPES, rms_norm, rotary
from calibration.devices import synchronize
from calibration.profile_io import load_checked, read_profile_json
from calibration.timing import time_fn
from hwmodels import layers, ops, step
from hwmodels.dtypes import DType
from hwmodels.frozen import FrozenMap
from hwmodels.profile import DeviceProfile
from hwmodels.specs import DeviceSpec, ModelSpec

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationPlan:
    """Decoder dims and the three steps' sizes."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    prefill_tokens: int
    decode_batch: int
    decode_context: int
    train_batch: int
    train_seq: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


# Llama-3-8B layer shapes (Meta model card: hidden 4096, 32/8 heads, SwiGLU 14336, vocab 128256)
# with 4 of its 32 layers, so the weights and caches fit any 40 GB+ GPU.
GPU_PLAN = ValidationPlan(layers=4, hidden=4096, heads=32, kv_heads=8, ffn=14336, vocab=128256,
                          prefill_tokens=2048, decode_batch=32, decode_context=2048,
                          train_batch=1, train_seq=4096)
GPU_QUICK = ValidationPlan(layers=2, hidden=4096, heads=32, kv_heads=8, ffn=14336, vocab=128256,
                           prefill_tokens=1024, decode_batch=16, decode_context=1024,
                           train_batch=1, train_seq=2048)
# CPU: the sweep's 1/16-width layer (see calibration.sizes) at sizes between its sweep points.
CPU_PLAN = ValidationPlan(layers=2, hidden=256, heads=8, kv_heads=2, ffn=688, vocab=4096,
                          prefill_tokens=320, decode_batch=6, decode_context=400,
                          train_batch=1, train_seq=192)


class RMSNorm(nn.Module):
    """y = x / rms(x) * weight (Llama), through calibration.bench.rms_norm as the sweep times it."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class Block(nn.Module):
    """One Llama decoder layer: RMSNorm, fused QKV, rotary, SDPA (GQA), O, RMSNorm, SwiGLU."""

    def __init__(self, p: ValidationPlan) -> None:
        super().__init__()
        self.p = p
        d = p.head_dim
        self.attn_norm, self.mlp_norm = RMSNorm(p.hidden), RMSNorm(p.hidden)
        self.wqkv = nn.Linear(p.hidden, (p.heads + 2 * p.kv_heads) * d, bias=False)
        self.wo = nn.Linear(p.heads * d, p.hidden, bias=False)
        self.w_gate_up = nn.Linear(p.hidden, 2 * p.ffn, bias=False)
        self.w_down = nn.Linear(p.ffn, p.hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: torch.Tensor | None = None, pos: int = 0) -> torch.Tensor:
        p, d = self.p, self.p.head_dim
        b, s, _ = x.shape
        qkv = self.wqkv(self.attn_norm(x)).view(b, s, p.heads + 2 * p.kv_heads, d)
        q, k, v = qkv.split([p.heads, p.kv_heads, p.kv_heads], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = rotary(q, cos, sin), rotary(k, cos, sin)
        if cache is None:  # training: full causal attention, GQA heads expanded by SDPA
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        elif s > 1:  # prefill: write the cache, causal attention over the prompt
            cache[0, :, :, pos:pos + s] = k
            cache[1, :, :, pos:pos + s] = v
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:  # decode: append one token, grouped queries against the whole cache
            cache[0, :, :, pos:pos + 1] = k
            cache[1, :, :, pos:pos + 1] = v
            g = p.heads // p.kv_heads
            qg = q.reshape(b, p.kv_heads, g, d)
            o = F.scaled_dot_product_attention(qg, cache[0, :, :, :pos + 1],
                                               cache[1, :, :, :pos + 1])
            o = o.reshape(b, p.heads, 1, d)
        x = x + self.wo(o.transpose(1, 2).reshape(b, s, p.heads * d))
        gate, up = self.w_gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.w_down(F.silu(gate) * up)


class Decoder(nn.Module):
    """Embedding, blocks, final norm and LM head; a greedy next-token step."""

    def __init__(self, p: ValidationPlan) -> None:
        super().__init__()
        self.p = p
        self.embed = nn.Embedding(p.vocab, p.hidden)
        self.blocks = nn.ModuleList(Block(p) for _ in range(p.layers))
        self.norm = RMSNorm(p.hidden)
        self.lm_head = nn.Linear(p.hidden, p.vocab, bias=False)

    def step(self, tokens: torch.Tensor, caches: list[torch.Tensor], pos: int,
             cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Next token of each sequence (logits of the last position only)."""
        x = self.embed(tokens)
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block(x, cos, sin, cache, pos)
        return self.lm_head(self.norm(x[:, -1])).argmax(-1)


def rope_tables(p: ValidationPlan, start: int, length: int, device: torch.device,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of positions start..start+length (base 500000, as Llama 3)."""
    d = p.head_dim
    inv = 1.0 / (500000.0 ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d))
    ang = torch.outer(torch.arange(start, start + length, device=device, dtype=torch.float32),
                      inv)
    ang = torch.cat((ang, ang), dim=-1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def _init(module: nn.Module) -> nn.Module:
    for prm in module.parameters():
        if prm.dim() > 1:
            nn.init.normal_(prm, std=0.02)
    return module


def model_spec(p: ValidationPlan) -> ModelSpec:
    """The same decoder as hwmodels sees it."""
    return ModelSpec(name="validation-llama", model_type="llama", num_layers=p.layers,
                     hidden_size=p.hidden, num_heads=p.heads, num_kv_heads=p.kv_heads,
                     head_dim=p.head_dim, ffn_hidden_size=p.ffn, vocab_size=p.vocab,
                     max_seq_len=max(p.prefill_tokens, p.decode_context, p.train_seq))


def cpu_device_spec(peak: Mapping[str, Any], kernel_overhead_s: float) -> DeviceSpec:
    """The 'cpu' pseudo-device with the peaks stored in its profile (measured by calibrate).

    Power, price and the scale-up fabric are not modelled for the CPU pseudo-device (single
    device, no energy questions); they are set to neutral values that no single-device
    computation reads. hwmodels rates decode-attention math at the bf16 peak; where bf16 was not
    measured, the fp32 rate stands in (models on the CPU run in fp32).
    """
    rates = {DType(dt): float(v) for dt, v in peak["flops"].items()}
    if DType.BF16 not in rates and DType.FP16 not in rates:
        rates[DType.BF16] = rates.get(DType.FP32, max(rates.values()))
    flops = FrozenMap(rates)
    memory_bytes = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return DeviceSpec(name="cpu", vendor="cpu", peak_flops=flops, memory_bytes=memory_bytes,
                      memory_bw_Bps=float(peak["memory_bw_Bps"]), scale_up_link="none",
                      scale_up_bw_Bps=float(peak["memory_bw_Bps"]), host_link="none",
                      tdp_w=1.0, idle_w=0.0, price_usd_per_hour=0.0, devices_per_node=1,
                      kernel_overhead_s=kernel_overhead_s,
                      source="calibration: measured CPU pseudo-device")


def device_spec_for(data: Mapping[str, Any]) -> DeviceSpec:
    """DeviceSpec of a profile: the catalog entry, or the CPU pseudo-device from its peaks."""
    if str(data["device"]).lower() == "cpu":
        return cpu_device_spec(data["peak"], float(data["kernel_overhead_s"]))
    from hwmodels.catalog import load_device

    return load_device(str(data["device"]))


def _timed(fn: Callable[[], Any], device: torch.device, target_s: float) -> Any:
    return time_fn(fn, device, warmup=2, min_repeats=3, max_repeats=30, target_time_s=target_s)


def graphed(fn: Callable[[], Any], device: torch.device, log: Log) -> Callable[[], Any]:
    """On CUDA, fn captured as a CUDA graph (as vLLM/TensorRT-LLM run decode steps: no per-kernel
    host launch cost); elsewhere, or if capture fails, fn itself."""
    if device.type != "cuda":
        return fn
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
    except RuntimeError as err:
        log(f"validate: CUDA graph capture failed ({str(err).splitlines()[0]}); timing eager")
        return fn
    return graph.replay


def _serving_call(model: Decoder, p: ValidationPlan, device: torch.device, dtype: torch.dtype,
                  *, batch: int, new: int, context: int) -> Callable[[], Any]:
    """One step of `batch` sequences adding `new` tokens to a KV cache ending at `context`."""
    d = p.head_dim
    caches = [torch.randn(2, batch, p.kv_heads, context, d, device=device, dtype=dtype)
              for _ in range(p.layers)]
    tokens = torch.randint(0, p.vocab, (batch, new), device=device)
    cos, sin = rope_tables(p, context - new, new, device, dtype)
    return lambda: model.step(tokens, caches, context - new, cos, sin)


def _train_call(p: ValidationPlan, device: torch.device, dtype: torch.dtype
                ) -> Callable[[], Any]:
    block = _init(Block(p)).to(device=device, dtype=dtype).train()
    x = torch.randn(p.train_batch, p.train_seq, p.hidden, device=device, dtype=dtype,
                    requires_grad=True)
    grad = torch.randn_like(x)
    cos, sin = rope_tables(p, 0, p.train_seq, device, dtype)
    return lambda: block(x, cos, sin).backward(grad)


def measure_steps(p: ValidationPlan, device: torch.device, dtype: torch.dtype,
                  log: Log, *, quick: bool = False) -> dict[str, Any]:
    """Median times of the three steps (and their spread) on `device`."""
    torch.manual_seed(0)
    target_s = (0.05 if quick else 0.2) if device.type == "cpu" else (0.2 if quick else 0.5)
    out: dict[str, Any] = {}
    with torch.inference_mode():
        model = _init(Decoder(p)).to(device=device, dtype=dtype).eval()
        prefill = _serving_call(model, p, device, dtype, batch=1, new=p.prefill_tokens,
                                context=p.prefill_tokens)
        out["prefill"] = _timed(prefill, device, target_s)
        decode = _serving_call(model, p, device, dtype, batch=p.decode_batch, new=1,
                               context=p.decode_context)
        out["decode"] = _timed(graphed(decode, device, log), device, target_s)
    out["train_layer"] = _timed(_train_call(p, device, dtype), device, target_s)
    synchronize(device)
    return out


def predict_steps(p: ValidationPlan, dev: DeviceSpec, dtype: DType,
                  profile: DeviceProfile) -> dict[str, float]:
    """hwmodels' seconds for the three steps with `profile`.

    The harness is a bare torch loop (no serving scheduler), so the step model's fixed per-step
    host overhead (hwmodels.step.STEP_OVERHEAD_S, vLLM's scheduler) is left out."""
    spec = model_spec(p)

    def serving(**kw: Any) -> float:
        est = step.estimate_step(spec, dev, dtype=dtype, profile=profile, **kw)
        return est.time_s - est.breakdown["overhead_s"]

    kw = {"micro_batch": p.train_batch, "seq_len": p.train_seq, "tp": 1, "dtype": dtype,
          "profile": profile}
    return {
        "prefill": serving(prefill_lens=[p.prefill_tokens]),
        "decode": serving(decode_context_lens=[p.decode_context] * p.decode_batch),
        "train_layer": layers.layer_forward_time(spec, dev, **kw).total_s
        + layers.layer_backward_time(spec, dev, **kw).total_s,
    }


def _describe(p: ValidationPlan) -> dict[str, str]:
    dims = f"{p.layers}L h{p.hidden} {p.heads}/{p.kv_heads}h ffn{p.ffn}"
    return {"prefill": f"{dims}, prefill {p.prefill_tokens} tokens",
            "decode": f"{dims}, decode B={p.decode_batch} C={p.decode_context}",
            "train_layer": f"1 layer fwd+bwd, batch {p.train_batch} x seq {p.train_seq}"}


def plan_for(device: torch.device, quick: bool) -> ValidationPlan:
    """The decoder the validation steps run on this kind of device."""
    return CPU_PLAN if device.type == "cpu" else (GPU_QUICK if quick else GPU_PLAN)


def step_dtype(data: Mapping[str, Any], device: torch.device) -> str:
    """The dtype the validation decoder runs in: the profile's attention dtype."""
    return data.get("peak", {}).get("attention_dtype") or (
        "fp32" if device.type == "cpu" else "bf16")


def gate_steps(p: ValidationPlan, measured: Mapping[str, Any], dt_name: str
               ) -> list[tuple[str, float, Callable[[DeviceSpec, DeviceProfile], float]]]:
    """(step, measured s, predict(device, profile)) for calibration.gate."""
    dt = DType(dt_name)
    return [(key, timing.median_s,
             lambda dev, prof, key=key: predict_steps(p, dev, dt, prof)[key])
            for key, timing in measured.items()]


def validation_rows(p: ValidationPlan, measured: Mapping[str, Any], dev: DeviceSpec,
                    dt_name: str, fitted: DeviceProfile) -> list[dict[str, Any]]:
    """Measured vs predicted (fitted profile and defaults) rows of the three steps."""
    pred = predict_steps(p, dev, DType(dt_name), fitted)
    base = predict_steps(p, dev, DType(dt_name), ops.default_profile(dev))
    names = _describe(p)
    rows = []
    for key, timing in measured.items():
        m = timing.median_s
        rows.append({"step": key, "shape": names[key], "measured_s": m,
                     "spread": timing.spread, "predicted_s": pred[key],
                     "error": (pred[key] - m) / m, "default_predicted_s": base[key],
                     "default_error": (base[key] - m) / m})
    return rows


def measure_validation(data: Mapping[str, Any], device: torch.device, *, quick: bool,
                       log: Log) -> tuple[ValidationPlan, str, dict[str, Any]]:
    """(plan, dtype name, measured step timings) on `device`, with the CPU thread count the
    profile was measured with."""
    plan = plan_for(device, quick)
    dt_name = step_dtype(data, device)
    log(f"validate: timing {plan.layers}-layer Llama-shaped decoder ({dt_name}) on {device}")
    threads = torch.get_num_threads()
    if device.type == "cpu":  # as many threads as the profile was measured with
        torch.set_num_threads(int((data.get("env") or {}).get("cpu_threads", 1)))
    try:
        measured = measure_steps(plan, device, TORCH_DTYPES[dt_name], log, quick=quick)
    finally:
        torch.set_num_threads(threads)
    return plan, dt_name, measured


def report(data: Mapping[str, Any], fitted: DeviceProfile, device: torch.device,
           plan: ValidationPlan, dt_name: str, measured: Mapping[str, Any], *, quick: bool,
           log: Log) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(step rows, per-op rows) for `--validate`, logged as two tables."""
    from calibration.validate_ops import format_ops, per_op_table

    dev = device_spec_for(data)
    rows = validation_rows(plan, measured, dev, dt_name, fitted)
    for line in format_table(rows):
        log(line)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(int((data.get("env") or {}).get("cpu_threads", 1)))
    try:
        target_s = (0.01 if quick else 0.05) if device.type == "cpu" else 0.05
        op_rows = per_op_table(plan, dev, device, TORCH_DTYPES[dt_name], DType(dt_name), fitted,
                               ops.default_profile(dev), measured, target_s=target_s)
    finally:
        torch.set_num_threads(threads)
    log("validate, per operator (times per call; 'x' = calls per step):")
    for line in format_ops(op_rows):
        log(line)
    return rows, op_rows


def run_validation(profile_path: str | Path, device: torch.device, *, quick: bool = False,
                   log: Log = print) -> list[dict[str, Any]]:
    """Measured vs predicted (fitted profile and defaults) for prefill, decode, training layer
    (the per-operator table is logged after the step table)."""
    data = read_profile_json(profile_path)
    dev = device_spec_for(data)
    fitted = load_checked(profile_path, device=dev.name)
    plan, dt_name, measured = measure_validation(data, device, quick=quick, log=log)
    rows, _ = report(data, fitted, device, plan, dt_name, measured, quick=quick, log=log)
    return rows


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    """Fixed-width lines of the predicted-vs-measured table (milliseconds, signed errors)."""
    head = (f"{'step':<12} {'measured ms':>12} {'spread':>7} {'profile ms':>11} {'err':>7} "
            f"{'defaults ms':>12} {'err':>7}  shape")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['step']:<12} {r['measured_s'] * 1e3:>12.3f} {r['spread']:>7.1%} "
                     f"{r['predicted_s'] * 1e3:>11.3f} {r['error']:>+7.1%} "
                     f"{r['default_predicted_s'] * 1e3:>12.3f} {r['default_error']:>+7.1%}  "
                     f"{r['shape']}")
    if rows:
        med = sorted(abs(r["error"]) for r in rows)[len(rows) // 2]
        dmed = sorted(abs(r["default_error"]) for r in rows)[len(rows) // 2]
        lines.append(f"median |error|: profile {med:.1%}, defaults {dmed:.1%}")
    return lines
