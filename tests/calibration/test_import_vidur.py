"""The Vidur importer on the real tables, and `fleetsim calibrate --from-measurements` on bad ones."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from calibration.importers import import_vidur
from fleetsim.cli.app import main
from hwmodels import ops
from hwmodels.catalog import load_device
from hwmodels.profile import load_profile

VIDUR = "calibration-data/vidur"
SMALL_MODELS = ("meta-llama/Llama-2-7b-hf", "microsoft/phi-2")


# ../shared beside the checkout (as tests/conftest.py SHARED); skipped with its reason if absent
SHARED = Path(__file__).resolve().parents[3] / "shared"


@pytest.fixture(scope="module")
def requires_shared_module() -> Path:
    """The Vidur tables (module-scoped requires_shared)."""
    path = SHARED / VIDUR
    if not path.exists():
        pytest.skip(f"requires ../shared: {VIDUR} is missing")
    return path


@pytest.fixture(scope="module")
def a100(requires_shared_module: Path) -> tuple[dict, dict]:
    return import_vidur(requires_shared_module, "a100-80gb")


def small_copy(src: Path, dst: Path) -> Path:
    """Two A100 models' layer tables, the A100 NCCL tables, README and LICENSE."""
    for rel in ("README.md", "LICENSE", "network/a100_dgx/all_reduce.csv",
                "network/a100_dgx/send_recv.csv",
                *(f"compute/a100/{m}/mlp.csv" for m in SMALL_MODELS)):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, dst / rel)
    return dst


def _by(records: list[dict], **match: object) -> list[dict]:
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def test_layer_gemm_shapes_and_bytes(a100: tuple[dict, dict]) -> None:
    raw, _ = a100
    assert {r["dtype"] for r in raw["gemm"]} == {"fp16"}
    # Llama-2-7B, TP 2, 512 tokens: QKV [512 x 4096] @ [4096 x 3*4096/2]
    (qkv,) = _by(raw["gemm"], model="meta-llama/Llama-2-7b-hf", tp=2, tokens=512,
                 op="attn_pre_proj")
    assert (qkv["m"], qkv["k"], qkv["n"]) == (512, 4096, 6144)
    assert qkv["flops"] == 2 * 512 * 4096 * 6144
    assert qkv["bytes"] == 2 * (512 * 4096 + 4096 * 6144 + 512 * 6144)
    # Llama-2-70B (GQA 64/8 heads, gated MLP 28672), TP 8
    r = {op: _by(raw["gemm"], model="meta-llama/Llama-2-70b-hf", tp=8, tokens=64, op=op)[0]
         for op in ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")}
    assert (r["attn_pre_proj"]["k"], r["attn_pre_proj"]["n"]) == (8192, (64 + 16) * 128 / 8)
    assert (r["attn_post_proj"]["k"], r["attn_post_proj"]["n"]) == (1024, 8192)
    assert r["mlp_up_proj"]["n"] == 2 * 28672 / 8 and r["mlp_down_proj"]["k"] == 28672 / 8
    # phi-2: plain (GELU) MLP, no post-attention norm, two residual adds per layer
    (up,) = _by(raw["gemm"], model="microsoft/phi-2", tp=1, tokens=256, op="mlp_up_proj")
    assert up["n"] == 10240
    assert not _by(raw["elementwise"], model="microsoft/phi-2", op="post_attention_layernorm")
    assert len(_by(raw["elementwise"], model="microsoft/phi-2", tokens=256, op="add")) == 2


def test_elementwise_bytes_and_units(a100: tuple[dict, dict]) -> None:
    raw, _ = a100
    t, e, i = 1024, 4096, 11008
    rows = {r["op"]: r for r in _by(raw["elementwise"], model="meta-llama/Llama-2-7b-hf", tp=1,
                                    tokens=t)}
    assert {r["kind"] for r in rows.values()} == {"norm", "rope", "activation", "residual",
                                                  "embedding"}
    assert rows["add"]["bytes"] == 2 * 3 * t * e
    assert rows["input_layernorm"]["bytes"] == 2 * (2 * t * e + e)
    assert rows["mlp_act"]["bytes"] == 2 * 3 * t * i
    assert rows["emb"]["bytes"] == 2 * 2 * t * e + 8 * t
    assert rows["attn_rope"]["bytes"] == 2 * (2 * t * (32 + 32) * 128 + t * 128) + 8 * t
    # milliseconds in the table -> seconds: a 25 MB residual add takes tens of microseconds
    assert 5e-6 < rows["add"]["median_s"] < 1e-4


def test_collectives_are_intra_node_with_nccl_bus_factors(a100: tuple[dict, dict]) -> None:
    raw, _ = a100
    worlds = {(r["op"], r["world"]) for r in raw["collectives"]}
    assert worlds == {("all_reduce", 2), ("all_reduce", 4), ("all_reduce", 8),
                      ("send_recv", 2)}  # 16 ranks and devices_per_node < ranks: cross-node
    for r in raw["collectives"][:50]:
        factor = 2 * (r["world"] - 1) / r["world"] if r["op"] == "all_reduce" else 1.0
        assert r["busbw_Bps"] == pytest.approx(r["bytes"] / r["median_s"] * factor)


def test_attention_and_engine_tables(a100: tuple[dict, dict]) -> None:
    raw, _ = a100
    pre = raw["attention_prefill"][0]
    assert (pre["heads"], pre["kv_heads"], pre["head_dim"]) == (32, 4, 128)  # 70B heads / TP2
    q, kv = pre["q_len"], pre["kv_len"]
    assert pre["flops"] == pytest.approx(2 * pre["batch"] * q * (kv - q / 2) * 32 * 256)
    dec = raw["attention_decode"][0]
    assert dec["bytes"] == 2 * (dec["context"] * 2 * 4 * 128 + dec["batch"] * 32 * 128 * 2)
    assert len(raw["engine_overheads"]) == 13
    assert {r["tp"] for r in raw["engine_overheads"]} == {2}


def test_provenance(a100: tuple[dict, dict]) -> None:
    _, src = a100
    assert src["url"] == "https://github.com/microsoft/vidur"
    assert src["commit"].startswith("7d47513 (2024-11-19)") and "acb95f6" in src["commit"]
    assert src["licence"] == "MIT; Copyright (c) Microsoft Corporation."
    assert src["date"] == "2024-11-19" and "fp16" in src["dtype"]
    assert "Llama-2-70b-hf" in src["description"]


def test_h100_has_no_attention_table(requires_shared_module: Path) -> None:
    raw, src = import_vidur(requires_shared_module, "h100-sxm")
    assert "attention_prefill" not in raw and "engine_overheads" not in raw
    assert "catalog defaults" in src["notes"]
    assert {r["model"] for r in raw["gemm"]} >= {"Qwen/Qwen-72B", "microsoft/phi-2"}


def _rewrite(path: Path, drop: str | None = None, rows: bool = True,
             blank: str | None = None) -> None:
    with path.open(newline="") as fh:
        data = list(csv.DictReader(fh))
    cols = [c for c in data[0] if c != drop]
    for row in data:
        row.update({c: "" for c in cols if blank and c.startswith(blank)})
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, cols, extrasaction="ignore")
        w.writeheader()
        if rows:
            w.writerows(data)


MLP = "compute/a100/meta-llama/Llama-2-7b-hf/mlp.csv"


@pytest.mark.parametrize(("case", "expect"), [
    ("missing column", ("mlp.csv", "time_stats.add.median")),
    ("units header missing", ("README.md", "units")),
    ("empty table", ("all_reduce.csv", "no rows")),
    ("no tables for device", ("compute/a100", "mlp.csv")),
    ("no GEMM timings", ("mlp.csv", "time_stats.attn_pre_proj.median")),
    ("not a directory", ("nowhere", "--from-measurements")),
])
def test_bad_tables_exit_2_with_one_line(case: str, expect: tuple[str, str],
                                         requires_shared_module: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    root = small_copy(requires_shared_module, tmp_path / "vidur")
    if case == "missing column":
        _rewrite(root / MLP, drop="time_stats.add.median")
    elif case == "units header missing":
        readme = root / "README.md"
        readme.write_text(readme.read_text().replace("Times are milliseconds", "Times vary"))
    elif case == "empty table":
        _rewrite(root / "network/a100_dgx/all_reduce.csv", rows=False)
    elif case == "no GEMM timings":
        for model in SMALL_MODELS:
            for op in ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj"):
                _rewrite(root / f"compute/a100/{model}/mlp.csv", blank=f"time_stats.{op}.")
    elif case == "no tables for device":
        shutil.rmtree(root / "compute")
    else:
        root = tmp_path / "nowhere"
    out = tmp_path / "p.json"
    rc = main(["calibrate", "--from-measurements", str(root), "--device", "a100-80gb",
               "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and all(e in err for e in expect), err
    assert not out.exists()


def test_unknown_device_exits_2(requires_shared_module: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["calibrate", "--from-measurements", str(requires_shared_module), "--device",
               "cuda", "--out", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "--device" in err and "a100-80gb, h100-sxm" in err


def test_cli_writes_a_profile_hwmodels_loads(requires_shared_module: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = small_copy(requires_shared_module, tmp_path / "vidur")
    out = tmp_path / "a100.json"
    rc = main(["calibrate", "--from-measurements", str(root), "--device", "a100-80gb",
               "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["heldout"]["models"] == list(SMALL_MODELS)
    assert "gemm.mlp_up_proj" in summary["heldout"]["operators"]
    prof = load_profile(out, device="a100-80gb")
    assert prof.name == "a100-80gb-vidur" and prof.collectives_link == "nvlink3"
    assert {"gemm.fp16", "gemm.bf16", "gemm_memory", "elementwise.norm", "collectives",
            "kernel_overhead_s"} <= prof.measured
    assert "attention_prefill" not in prof.measured  # no legacy tables in this copy
    assert prof.provenance["licence"].startswith("MIT")
    data = json.loads(out.read_text())
    assert "raw" not in data and out.stat().st_size < 400_000
    dev = load_device("a100-80gb")
    resolved = ops.resolve_profile(dev, prof)
    # round trip: the file's curves are what hwmodels evaluates
    assert resolved.gemm_memory.ys == tuple(data["gemm_memory"]["eff"])
    assert ops.memory_time(dev, 1e7, profile=prof, kind="norm") != \
        ops.memory_time(dev, 1e7, profile="defaults", kind="norm")


def test_cli_rejects_a_profile_that_loses_to_the_defaults(
        requires_shared_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import calibration.importers.build as build

    real = build.fit_profile

    def bad_fit(*args, **kwargs):  # GEMM efficiency a fifth of what was measured
        prof = real(*args, **kwargs)
        for curve in prof["gemm"].values():
            curve["eff"] = [e / 5 for e in curve["eff"]]
        return prof

    monkeypatch.setattr(build, "fit_profile", bad_fit)
    root = small_copy(requires_shared_module, tmp_path / "vidur")
    out = tmp_path / "bad.json"
    args = ["calibrate", "--from-measurements", str(root), "--device", "a100-80gb", "--out",
            str(out)]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "gemm: held-out median error" in err and "(defaults)" in err and not out.exists()
    assert main([*args, "--allow-worse"]) == 0
    assert "warning: written with --allow-worse: gemm" in capsys.readouterr().err
    assert json.loads(out.read_text())["heldout"]["rejected"][0].startswith("gemm:")
