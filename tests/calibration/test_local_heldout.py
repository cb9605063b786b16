"""The local held-out gate, elementwise and Triton records, the per-operator --validate table."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from calibration import gate, runner  # noqa: E402
from calibration.__main__ import main  # noqa: E402
from calibration.bench import triton_records  # noqa: E402
from calibration.errors import ProfileRejectedError  # noqa: E402
from calibration.validate import device_spec_for  # noqa: E402
from hwmodels.profile import ElementwiseKind  # noqa: E402

FAMILY_KEYS = {"points", "profile_median_abs_err", "defaults_median_abs_err"}


def _corrupt(data: dict[str, Any]) -> dict[str, Any]:
    """A fit gone wrong: every efficiency curve 20x too low (kernels predicted 20x too slow)."""
    for curves in (data["gemm"], data.get("elementwise") or {}):
        for curve in curves.values():
            curve["eff"] = [max(e / 20.0, 1e-5) for e in curve["eff"]]
    for key in ("memory", "attention_prefill", "attention_decode"):
        data[key]["eff"] = [max(e / 20.0, 1e-5) for e in data[key]["eff"]]
    return data


def test_split_is_deterministic_every_third_per_family(
        cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    _, data = cpu_profile
    raw = data["raw"]
    train, held = gate.split_raw(raw)
    again_train, again_held = gate.split_raw(copy.deepcopy(raw))
    assert held == again_held and train["gemm"] == again_train["gemm"]
    n_fp32 = len([r for r in raw["gemm"] if r["dtype"] == "fp32"])
    assert len(held["gemm.fp32"]) == len(range(gate.HOLDOUT_INDEX, n_fp32, gate.HOLDOUT_EVERY))
    for family in ("gemm", "memory", "elementwise", "attention_prefill", "attention_decode"):
        names = [n for n in held if n.split(".")[0] == family]
        held_recs = [r for n in names for r in held[n]]
        assert len(held_recs) + len(train[family]) == len(raw[family]), family
        assert not any(r in train[family] for r in held_recs), family
    # the smallest and the largest size of each family stay in the fit
    fp32 = sorted((r for r in raw["gemm"] if r["dtype"] == "fp32"), key=lambda r: r["flops"])
    assert fp32[0] in train["gemm"] and fp32[-1] in train["gemm"]


def test_heldout_block_in_profile(cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    path, data = cpu_profile
    block = json.loads(path.read_text())["heldout"]
    assert block["passed"] is True
    assert block["profile_median_abs_err"] < block["defaults_median_abs_err"]
    assert {"step.prefill", "step.decode", "step.train_layer", "gemm.fp32", "memory",
            "attention_prefill", "attention_decode"} <= set(block["families"])
    for stats in block["families"].values():
        assert set(stats) == FAMILY_KEYS and stats["points"] >= 1
    assert "CPU" in block["defaults"] and block["method"]


def test_gate_rejects_a_corrupted_fit(cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    _, data = cpu_profile
    raw = data["raw"]

    def honest(records: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(data)
        return out

    good = gate.heldout_block(raw, honest, device_spec_for, [])
    bad = gate.heldout_block(raw, lambda r: _corrupt(copy.deepcopy(data)), device_spec_for, [])
    assert bad["profile_median_abs_err"] > bad["defaults_median_abs_err"]
    assert not bad["passed"] and bad["defaults_median_abs_err"] == pytest.approx(
        good["defaults_median_abs_err"])
    with pytest.raises(ProfileRejectedError) as err:
        gate.enforce(bad, allow_worse=False)
    assert err.value.heldout["passed"] is False and "defaults" in err.value.message
    gate.enforce(bad, allow_worse=True)  # --allow-worse lets it through


def test_cli_exit_3_and_nothing_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    real = runner.fit_profile
    monkeypatch.setattr(runner, "fit_profile", lambda *a, **k: _corrupt(real(*a, **k)))
    out = tmp_path / "bad.json"
    code = main(["--device", "cpu", "--quick", "--dtypes", "fp32", "--out", str(out)])
    assert code == 3 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: fitted profile does not beat the defaults")
    code = main(["--device", "cpu", "--quick", "--dtypes", "fp32", "--out", str(out),
                 "--allow-worse"])
    written = json.loads(out.read_text())
    assert code == 0 and written["heldout"]["passed"] is False
    assert written["heldout"]["written_anyway"] == "--allow-worse"


def test_elementwise_records(cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    _, data = cpu_profile
    records = data["raw"]["elementwise"]
    kinds = {r["kind"] for r in records}
    assert kinds == {"norm", "rope", "activation", "residual", "embedding"}
    assert kinds <= {k.value for k in ElementwiseKind}
    for r in records:
        assert r["bytes"] > 0 and r["median_s"] > 0 and r["spread"] >= 0 and r["impl"] == "torch"
    assert {r["kind"] for r in data["raw"]["memory"]} == {"copy", "add"}
    assert set(data["elementwise"]) == kinds  # fitted per kind


def test_triton_record_conversion() -> None:
    """Synthetic bench_triton output (Triton cannot run on this CPU)."""
    t = {"p10_s": 1e-5, "p90_s": 1.2e-5, "spread": 0.1, "repeats": 20}
    bench_out = [
        {"family": "triton_elementwise", "impl": "triton", "elements": 1 << 20,
         "bytes": 3.0 * (1 << 20) * 2, "median_s": 1.1e-5, **t},
        {"family": "triton_elementwise", "impl": "torch", "elements": 1 << 20,
         "bytes": 3.0 * (1 << 20) * 2, "median_s": 2.5e-5, **t},
        {"family": "triton_matmul", "impl": "triton", "m": 4096, "n": 6144, "k": 4096,
         "dtype": "bfloat16", "flops": 2.0 * 4096 * 6144 * 4096, "median_s": 4e-4, **t},
        {"family": "triton_matmul", "impl": "torch", "m": 4096, "n": 6144, "k": 4096,
         "dtype": "bfloat16", "flops": 2.0 * 4096 * 6144 * 4096, "median_s": 3.2e-4, **t},
    ]
    elementwise, gemm, notes = triton_records(bench_out)
    assert elementwise == [{"family": "elementwise", "kind": "activation", "impl": "triton",
                            "elements": 1 << 20, "bytes": 3.0 * (1 << 20) * 2,
                            "median_s": 1.1e-5, **t}]
    assert [g["impl"] for g in gemm] == ["triton", "torch"]
    g = gemm[0]
    assert (g["dtype"], g["m"], g["n"], g["k"]) == ("bf16", 4096, 6144, 4096)
    assert g["bytes"] == 2.0 * (4096 * 4096 + 4096 * 6144 + 4096 * 6144)
    assert len(notes) == 1 and "triton/torch 1.25" in notes[0] and "not in the gemm" in notes[0]
    assert triton_records([]) == ([], [], [])


def test_validate_per_op_table(validated_profile: tuple[Path, dict[str, Any]]) -> None:
    _, data = validated_profile
    rows = data["validation_ops"]
    assert {r["step"] for r in rows} == {"prefill", "decode"}
    for step in ("prefill", "decode"):
        ops_ = [r["op"] for r in rows if r["step"] == step]
        assert {"qkv", "o", "gate_up", "down", "lm_head", "attention", "rms_norm", "rotary q+k",
                "silu*up", "residual add", "embedding", "kv write"} <= set(ops_)
        assert ops_[-1] == "unaccounted"
    for r in rows:
        if r["op"] != "unaccounted":
            assert r["measured_s"] > 0 and r["predicted_s"] > 0 and r["default_predicted_s"] > 0
    # the step minus its ops is what the fused-kernel step model has no term for
    for step in ("prefill", "decode"):
        step_s = next(v["measured_s"] for v in data["validation"] if v["step"] == step)
        ops_s = sum(r["count"] * r["measured_s"] for r in rows
                    if r["step"] == step and r["op"] != "unaccounted")
        rest = next(r["measured_s"] for r in rows if r["step"] == step
                    and r["op"] == "unaccounted")
        assert rest == pytest.approx(step_s - ops_s)


def test_catalog_device_gets_the_same_heldout_format(
        cpu_profile: tuple[Path, dict[str, Any]]) -> None:
    """What `python -m calibration --device cuda` writes: the same block, defaults being the
    catalog entry's (here the CPU's records fitted as if measured on an A100, no GPU needed)."""
    from calibration.fit import fit_profile
    from hwmodels.catalog import load_device

    path, data = cpu_profile
    a100 = load_device("a100-80gb")
    peaks = {"flops": {"fp32": float(a100.peak("fp32"))}, "memory_bw_Bps": a100.memory_bw_Bps}
    block = gate.heldout_block(
        data["raw"], lambda raw: fit_profile(raw, peaks, device="a100-80gb",
                                             device_reported="test", env={}),
        device_spec_for, [])
    cpu_block = json.loads(path.read_text())["heldout"]
    assert set(block) == set(cpu_block)
    assert block["defaults"] == "hwmodels catalog defaults of a100-80gb"
    for stats in block["families"].values():
        assert set(stats) == FAMILY_KEYS
    assert set(block["families"]) == {f for f in cpu_block["families"]
                                      if not f.startswith("step.")}
    assert gate.format_block(block)[-1].startswith("all")
