"""Vidur's published profiling tables (microsoft/vidur, MIT) -> raw calibration records.

Layout (README.md of the data directory): compute/<dev>/<org>/<model>/mlp.csv (one transformer
layer's operators by num_tokens and TP), network/<dev>_dgx/{all_reduce,send_recv}.csv (NCCL
inside one DGX node), legacy-2024-05/a100/{attention,cpu_overheads}.csv (A100 only). Times are
milliseconds (the README's "Times are milliseconds" line is the units header this importer
requires), sizes bytes. Vidur profiled in fp16: vidur/profiling/mlp/mlp_wrapper.py moves the
model to torch.float16, vidur/profiling/attention/main.py sets dtype = torch.float16.

Every record is one kernel: median_s, spread ((max - min) / median over Vidur's repeats), the
work it does (flops, bytes) and where it came from (model, tp, op). Bytes of the memory-bound
operators (B = 2 bytes per fp16 element, T tokens, E = n_embd, I = n_expanded_embd, H/Hkv query/KV
heads per GPU, D = head_dim):
  norm (RMSNorm/LayerNorm): read x, write y, read the weight: B * (2 T E + E)
  rope (in-place on q and k): read + write q and k, read the cos/sin rows: B * (2 T (H + Hkv) D + T D) + 8 T
  activation: SiLU-and-mul reads 2 T I/tp, writes T I/tp: 3 B T I/tp; GELU: 2 B T I/tp
  residual (add): two inputs, one output: 3 B T E (phi-2's attn + mlp + residual is two such
    adds, recorded as two kernels of half the time each)
  embedding (gather): read the rows, write them, read the int64 ids: 2 B T E + 8 T
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hwmodels.errors import ConfigError

URL = "https://github.com/microsoft/vidur"
DTYPE = "fp16"
ELT_BYTES = 2.0  # fp16
INDEX_BYTES = 8.0  # int64 token ids / positions
# catalog device -> (Vidur's directory name, the catalog intra-node link NCCL ran over)
DEVICES: dict[str, tuple[str, str]] = {"a100-80gb": ("a100", "nvlink3"),
                                       "h100-sxm": ("h100", "nvlink4")}
DIMS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp", "num_tokens",
        "num_tensor_parallel_workers")
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS = {"input_layernorm": "norm", "post_attention_layernorm": "norm",
                   "attn_rope": "rope", "mlp_act": "activation", "add": "residual",
                   "emb": "embedding"}
REQUIRED_OPS = ("emb", "input_layernorm", "attn_pre_proj", "attn_post_proj", "mlp_up_proj",
                "mlp_act", "mlp_down_proj", "add")  # phi-2 has no post-attention norm
UNITS = {"milliseconds": 1e-3, "microseconds": 1e-6, "seconds": 1.0}
ENGINE = "vllm-2024"
CPU_PARTS = ("schedule", "sampler_e2e", "prepare_inputs_e2e", "process_model_outputs")


def _read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a CSV file; ConfigError naming the file and the first missing column."""
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
    except OSError as err:
        raise ConfigError(f"cannot read table: {err.strerror}", file=str(path)) from None
    for col in required:
        if col not in header:
            raise ConfigError("missing column", file=str(path), key=col)
    if not rows:
        raise ConfigError("table has no rows", file=str(path))
    return rows


def _num(row: Mapping[str, str], col: str, path: Path) -> float:
    try:
        value = float(row[col])
    except (TypeError, ValueError):
        raise ConfigError(f"expected a number, got {row.get(col)!r}", file=str(path),
                          key=col) from None
    return value


def _stat(row: Mapping[str, str], op: str, path: Path, scale: float) -> tuple[float, float]:
    """(median seconds, spread) of `time_stats.<op>.*`; NaN median if the op is blank."""
    text = row.get(f"time_stats.{op}.median", "")
    if text in ("", None):
        return math.nan, math.nan
    med = _num(row, f"time_stats.{op}.median", path) * scale
    lo = _num(row, f"time_stats.{op}.min", path) * scale
    hi = _num(row, f"time_stats.{op}.max", path) * scale
    return med, (hi - lo) / med if med > 0 else math.nan


def _time_cols(op: str) -> list[str]:
    return [f"time_stats.{op}.{s}" for s in ("min", "max", "median")]


def read_units(root: Path) -> float:
    """Seconds per table time unit, from the README's "Times are <unit>" line."""
    readme = root / "README.md"
    try:
        text = readme.read_text()
    except OSError:
        raise ConfigError("missing README.md stating the time unit of the tables",
                          file=str(readme), key="units") from None
    found = re.search(r"Times are (\w+)", text)
    if not found or found.group(1).lower() not in UNITS:
        raise ConfigError("no 'Times are <unit>' line: the tables' time unit is unknown",
                          file=str(readme), key="units",
                          allowed=[f"Times are {u}" for u in UNITS])
    return UNITS[found.group(1).lower()]


def provenance(root: Path) -> dict[str, str]:
    """source block of the profile: description, url, commit, licence, date."""
    text = (root / "README.md").read_text()
    commits = re.findall(r"commit (\w{7,40}) \((\d{4}-\d\d-\d\d)\)", text)
    try:
        lic = (root / "LICENSE").read_text()
    except OSError:
        raise ConfigError("missing LICENSE (the data's licence must travel with it)",
                          file=str(root / "LICENSE"), key="licence") from None
    copyright_line = next((ln.strip() for ln in lic.splitlines() if "Copyright" in ln), "")
    kind = "MIT" if "MIT License" in lic else lic.strip().splitlines()[0].strip()
    return {
        "kind": "measurements",
        "url": URL,
        "commit": ", ".join(f"{c} ({d})" for c, d in commits) or "unknown",
        "licence": f"{kind}; {copyright_line}".strip("; "),
        "date": commits[0][1] if commits else "",
        "dtype": f"{DTYPE} (vidur/profiling/mlp/mlp_wrapper.py: model.to(torch.float16); "
                 "attention/main.py: dtype = torch.float16)",
    }


def _device_dir(root: Path, device: str) -> str:
    if device not in DEVICES:
        raise ConfigError(f"no Vidur tables for device '{device}'", key="--device",
                          allowed=list(DEVICES))
    return DEVICES[device][0]


def _layer_records(path: Path, model: str, scale: float) -> dict[str, list[dict[str, Any]]]:
    """gemm and elementwise records of one mlp.csv (one transformer layer per row)."""
    required = [*DIMS, *(c for op in REQUIRED_OPS for c in _time_cols(op))]
    rows = _read_csv(path, required)
    gemm: list[dict[str, Any]] = []
    elem: list[dict[str, Any]] = []
    for row in rows:
        dims = {c: row[c] for c in DIMS}
        t = int(_num(dims, "num_tokens", path))
        tp = int(_num(dims, "num_tensor_parallel_workers", path))
        heads, kv = _num(dims, "n_head", path), _num(dims, "n_kv_head", path)
        e, i = _num(dims, "n_embd", path), _num(dims, "n_expanded_embd", path)
        gated = str(dims["use_gated_mlp"]).strip().lower() in ("true", "1")
        hd = e / heads
        shapes = {"attn_pre_proj": (e, (heads + 2 * kv) * hd / tp),
                  "attn_post_proj": (heads * hd / tp, e),
                  "mlp_up_proj": (e, (2 if gated else 1) * i / tp),
                  "mlp_down_proj": (i / tp, e)}
        base = {"model": model, "tp": tp, "tokens": t}
        for op, (k, n) in shapes.items():
            med, spread = _stat(row, op, path, scale)
            if not med > 0:
                continue
            m = float(t)
            gemm.append({**base, "op": op, "dtype": DTYPE, "m": m, "n": n, "k": k,
                         "flops": 2.0 * m * n * k,
                         "bytes": ELT_BYTES * (m * k + k * n + m * n),
                         "impl": "sarathi ColumnParallel/RowParallelLinear (cuBLAS)",
                         "median_s": med, "spread": spread})
        q_heads, kv_heads = heads / tp, kv / tp
        act_in = (3.0 if gated else 2.0) * t * i / tp
        nbytes = {"input_layernorm": ELT_BYTES * (2 * t * e + e),
                  "post_attention_layernorm": ELT_BYTES * (2 * t * e + e),
                  "attn_rope": ELT_BYTES * (2 * t * (q_heads + kv_heads) * hd + t * hd)
                  + INDEX_BYTES * t,
                  "mlp_act": ELT_BYTES * act_in,
                  "add": ELT_BYTES * 3 * t * e,
                  "emb": ELT_BYTES * 2 * t * e + INDEX_BYTES * t}
        for op, kind in ELEMENTWISE_OPS.items():
            med, spread = _stat(row, op, path, scale)
            if not med > 0:
                continue
            kernels = 2 if (op == "add" and not gated) else 1  # phi-2: two adds
            for _ in range(kernels):
                elem.append({**base, "op": op, "kind": kind, "bytes": nbytes[op],
                             "median_s": med / kernels, "spread": spread})
    return {"gemm": gemm, "elementwise": elem}


def _collective_records(root: Path, ddir: str, scale: float) -> list[dict[str, Any]]:
    """NCCL records of one DGX node (rows whose workers all sit in one node)."""
    out: list[dict[str, Any]] = []
    factor = {"all_reduce": lambda n: 2.0 * (n - 1) / n, "send_recv": lambda n: 1.0}
    for op in ("all_reduce", "send_recv"):
        path = root / "network" / f"{ddir}_dgx" / f"{op}.csv"
        rows = _read_csv(path, [*_time_cols(op), "num_workers", "size", "devices_per_node"])
        for row in rows:
            world = int(_num(row, "num_workers", path))
            if int(_num(row, "devices_per_node", path)) != world:
                continue  # spans nodes: the profile's curves are intra-node only
            size = _num(row, "size", path)
            med, spread = _stat(row, op, path, scale)
            if not (med > 0 and size > 0):
                continue
            out.append({"op": op, "world": world, "bytes": size, "median_s": med,
                        "spread": spread, "busbw_Bps": size / med * factor[op](world)})
    if not out:
        raise ConfigError("no intra-node rows (devices_per_node == num_workers)",
                          file=str(root / "network" / f"{ddir}_dgx"), key="devices_per_node")
    return out


def _attention_records(path: Path, scale: float) -> dict[str, list[dict[str, Any]]]:
    """FlashAttention prefill (flops, bytes) and paged decode (bytes) kernels, A100.

    Prefill of one chunk of q new tokens over kv = kv_cache_size + q keys: causal pairs
    q (kv - q/2), FLOPs 2 pairs H (2 D), IO B (q H 2D + kv Hkv 2D) (hwmodels.ops._varlen).
    Decode of `batch` sequences of context kv_cache_size: KV bytes B ctx 2 Hkv D plus q and o
    (hwmodels.ops._decode)."""
    cols = ["n_embd", "n_q_head", "n_kv_head", "num_tensor_parallel_workers", "batch_size",
            "prefill_chunk_size", "kv_cache_size", "is_prefill",
            *_time_cols("attn_prefill"), *_time_cols("attn_decode")]
    rows = _read_csv(path, cols)
    pre: list[dict[str, Any]] = []
    dec: list[dict[str, Any]] = []
    for row in rows:
        tp = int(_num(row, "num_tensor_parallel_workers", path))
        e, hq, hkv = (_num(row, c, path) for c in ("n_embd", "n_q_head", "n_kv_head"))
        d = e / hq
        heads, kv_heads = hq / tp, hkv / tp
        batch = int(_num(row, "batch_size", path))
        kv_cache = _num(row, "kv_cache_size", path)
        base = {"dtype": DTYPE, "tp": tp, "heads": heads, "kv_heads": kv_heads,
                "head_dim": d, "batch": batch, "kv_cache": kv_cache}
        if str(row["is_prefill"]).strip().lower() == "true":
            q = _num(row, "prefill_chunk_size", path)
            med, spread = _stat(row, "attn_prefill", path, scale)
            if not (med > 0 and q > 0):
                continue
            kv_len = kv_cache + q
            pairs = batch * q * (kv_len - q / 2.0)
            pre.append({**base, "q_len": q, "kv_len": kv_len, "pairs": pairs,
                        "flops": 2.0 * pairs * heads * 2 * d,
                        "bytes": ELT_BYTES * batch * (q * heads * 2 * d + kv_len * kv_heads * 2 * d),
                        "median_s": med, "spread": spread})
        else:
            med, spread = _stat(row, "attn_decode", path, scale)
            if not (med > 0 and kv_cache > 0):
                continue
            ctx = batch * kv_cache
            dec.append({**base, "context": ctx,
                        "bytes": ELT_BYTES * (ctx * 2 * kv_heads * d + batch * heads * d * 2),
                        "median_s": med, "spread": spread})
    return {"attention_prefill": pre, "attention_decode": dec}


def _engine_records(path: Path, scale: float) -> list[dict[str, Any]]:
    """Per-iteration CPU time of the engine (schedule + sampler + prepare inputs + process
    outputs, medians) and its Ray communication time (mean: no median published), per batch."""
    cols = [*(f"{p}_median" for p in CPU_PARTS), "batch_size", "tensor_parallel_degree",
            "ray_comm_time_mean", "model_name"]
    out = []
    for row in _read_csv(path, cols):
        cpu = sum(_num(row, f"{p}_median", path) for p in CPU_PARTS) * scale
        ray = _num(row, "ray_comm_time_mean", path) * scale
        out.append({"engine": ENGINE, "model": row["model_name"],
                    "batch": int(_num(row, "batch_size", path)),
                    "tp": int(_num(row, "tensor_parallel_degree", path)),
                    "cpu_s": cpu, "ray_s": ray, "median_s": cpu + ray, "spread": 0.0})
    return out


def import_vidur(root: str | Path, device: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(raw records by family, source block) for one catalog device from Vidur's tables.
    Raises ConfigError naming the file and column of unreadable input."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("not a directory of measurement tables", file=str(root),
                          key="--from-measurements")
    ddir = _device_dir(root, device)
    scale = read_units(root)
    compute = root / "compute" / ddir
    tables = sorted(compute.glob("*/*/mlp.csv"))
    if not tables:
        raise ConfigError(f"no compute/{ddir}/<org>/<model>/mlp.csv tables for {device}",
                          file=str(compute), key="mlp.csv")
    raw: dict[str, Any] = {"gemm": [], "elementwise": []}
    models = []
    for path in tables:
        model = f"{path.parent.parent.name}/{path.parent.name}"
        models.append(model)
        recs = _layer_records(path, model, scale)
        if not recs["gemm"]:
            raise ConfigError("no row has a GEMM timing > 0", file=str(path),
                              key=f"time_stats.{GEMM_OPS[0]}.median")
        raw["gemm"] += recs["gemm"]
        raw["elementwise"] += recs["elementwise"]
    raw["collectives"] = _collective_records(root, ddir, scale)
    legacy = root / "legacy-2024-05" / ddir
    notes = []
    if (legacy / "attention.csv").exists():
        raw.update(_attention_records(legacy / "attention.csv", scale))
    else:
        notes.append(f"no attention table for {device}: attention curves are the catalog "
                     "defaults")
    if (legacy / "cpu_overheads.csv").exists():
        raw["engine_overheads"] = _engine_records(legacy / "cpu_overheads.csv", scale)
    else:
        notes.append(f"no engine CPU-overhead table for {device}")
    src = provenance(root)
    parts = ["per-operator layer timings of " + ", ".join(models),
             f"NCCL all_reduce/send_recv inside one {ddir.upper()} DGX node"]
    if raw.get("attention_prefill"):
        parts.append("FlashAttention prefill/decode (Llama-2-70B heads, TP2)")
    if raw.get("engine_overheads"):
        parts.append("vLLM-derived engine CPU overheads")
    src["description"] = (f"Vidur profiling data (Agrawal et al., MLSys 2024) on {ddir.upper()}: "
                          + "; ".join(parts) + f"; {DTYPE}")
    src["models"] = ", ".join(models)
    src["notes"] = "; ".join(notes)
    return raw, src
