"""`fleetsim validate`: catalog defaults and each profile side by side, --profile/--no-profile,
the --json schema (old keys kept), and bad profiles as one-line exit-2 errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import hwmodels.profile as profile_module
from hwmodels.catalog import load_device
from hwmodels.dtypes import DType
from hwmodels.ops import default_profile
from simulator.serving import validation as serving_validation
from simulator.serving.validation import validate_serving

DEFAULTS = "catalog defaults"


def gemm_up_profile_json(scale: float = 0.82 / 0.72) -> dict:
    """A v2 a100-80gb profile whose 16-bit GEMM curves are the catalog's times `scale`."""
    curve = default_profile(load_device("a100-80gb")).gemm[DType.FP16]
    eff = [min(1.0, y * scale) for y in curve.ys]
    return {"format": "fleetsim-profile", "version": 2, "device": "a100-80gb",
            "name": "gemm-up",
            "source": {"kind": "local", "description": "test: catalog GEMM curve scaled"},
            "gemm": {dt: {"x": list(curve.xs), "eff": eff} for dt in ("fp16", "bf16")}}


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture()
def a100_profile(tmp_path: Path) -> Path:
    path = tmp_path / "a100-gemm-up.json"
    path.write_text(json.dumps(gemm_up_profile_json()))
    return path


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers unwrapped, so the text tests can find them."""
    from fleetsim.cli.common import console

    monkeypatch.setattr(console, "width", 250)


@pytest.fixture()
def no_bundled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever hwmodels/profiles/ ships, these tests choose their profiles themselves."""
    monkeypatch.setattr(profile_module, "bundled_profiles", lambda: {})


def _plugin_rows() -> pd.DataFrame:
    """Rows of simulator/data/serving_published_<accelerator>.csv (issue 18 plug-ins)."""
    data = Path(serving_validation.__file__).parents[1] / "data"
    files = sorted(data.glob("serving_published_*.csv"))
    if not files:
        return pd.DataFrame({"engine": []})
    return pd.concat([serving_validation._read_rows(f) for f in files], ignore_index=True)


def test_serving_json_schema_and_defaults(cli_json, a100_profile: Path, no_bundled) -> None:
    out = cli_json("validate", "serving", "--profile", str(a100_profile))
    assert list(out) == ["serving"]
    data = out["serving"]
    assert [s["name"] for s in data["sources"]] == [DEFAULTS, "gemm-up"]
    assert data["sources"][1]["device"] == "a100-80gb"
    assert data["sources"][1]["file"] == str(a100_profile)
    reference = validate_serving()
    # 49 TRT-LLM rows + 20 SGL-BENCH060 end-to-end rows + 12 NIM-LLAMA33-CONC
    # fixed-concurrency rows (all added with issue 16)
    # (+ the rows of the per-accelerator plug-in files, issue 18)
    plugins = _plugin_rows()
    assert len(data["rows"]) == len(reference["rows"]) == 81 + len(plugins)
    for row, ref in zip(data["rows"], reference["rows"], strict=True):
        # old keys: the catalog defaults' numbers, exactly
        assert row["predicted"] == ref["predicted"] and row["error_pct"] == ref["error_pct"]
        assert set(row["by_source"]) == {DEFAULTS, "gemm-up"}
        assert row["by_source"][DEFAULTS] == {"predicted": row["predicted"],
                                              "error_pct": row["error_pct"]}
        mine = row["by_source"]["gemm-up"]
        if row["device"] == "a100-80gb":
            assert set(mine) == {"predicted", "error_pct"}
            if row["metric"] == "ttft_ms":
                assert mine["predicted"] < row["predicted"]
        else:
            assert mine is None  # n/a: the profile is for another device
    summary = {s["table"]: s for s in data["summary"]}
    for table, ref in zip(summary, reference["summary"], strict=True):
        s = summary[table]
        assert table == ref["table"] and s["mape_pct"] == ref["mape_pct"]
        assert {"rows", "mape_pct", "max_abs_error_pct", "by_source"} <= set(s)
    assert summary["TRTLLM-THR-H100"]["by_source"]["gemm-up"] is None
    a100 = summary["TRTLLM-TTFT-A100"]["by_source"]["gemm-up"]
    assert a100["rows"] == 8 and a100["defaults_mape_pct"] == summary["TRTLLM-TTFT-A100"][
        "mape_pct"]
    assert a100["verdict"] in ("improves", "worse", "unchanged")
    everything = summary["ALL"]["by_source"]["gemm-up"]
    assert everything["rows"] == 31  # the A100 rows only (21 TRT-LLM + 10 SGL-BENCH060)
    assert everything["defaults_mape_pct"] != summary["ALL"]["mape_pct"]
    assert summary["ALL"]["by_source"][DEFAULTS]["verdict"] == "unchanged"
    assert {e["engine"] for e in data["engines"]} == {"trtllm", "sglang", "vllm-0.6", "ALL",
                                                      *plugins.engine.dropna()}


def test_table_prints_columns_side_by_side(cli, a100_profile: Path, no_bundled) -> None:
    code, out, err = cli("validate", "serving", "--profile", str(a100_profile))
    assert code == 0, err
    assert "defaults err" in out and "gemm-up err" in out and "n/a" in out
    assert "gemm-up MAPE" in out
    assert "TRTLLM-THR-H100: no profile applies" in out
    verdicts = [line for line in out.splitlines() if line.startswith("TRTLLM-TTFT-A100: ")]
    assert len(verdicts) == 1
    assert any(word in verdicts[0] for word in ("improves", "worse", "unchanged"))
    assert "ALL: gemm-up" in out and "on its 31 rows" in out  # 21 TRT-LLM + 10 SGL-BENCH060
    assert "MAPE per engine" in out and "kernel-only MAPE" in out


def test_bundled_profiles_get_a_column_unless_no_profile(cli, cli_json, a100_profile: Path,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(profile_module, "bundled_profiles",
                        lambda: {"a100-80gb": a100_profile})
    out = cli_json("validate", "serving")
    assert [s["name"] for s in out["serving"]["sources"]] == [DEFAULTS, "gemm-up"]
    bare = cli_json("validate", "serving", "--no-profile")
    assert [s["name"] for s in bare["serving"]["sources"]] == [DEFAULTS]
    assert set(bare["serving"]["rows"][0]["by_source"]) == {DEFAULTS}
    code, text, _ = cli("validate", "serving", "--no-profile")
    assert code == 0 and "gemm-up" not in text and "defaults err" in text


def test_a_profile_option_replaces_the_bundled_one_of_its_name(cli_json, tmp_path: Path,
                                                               a100_profile: Path,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(profile_module, "bundled_profiles",
                        lambda: {"a100-80gb": a100_profile})
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(gemm_up_profile_json(scale=0.9)))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**gemm_up_profile_json(scale=0.8), "name": "other"}))
    out = cli_json("validate", "serving", "--profile", str(slower), "--profile", str(other))
    sources = out["serving"]["sources"]
    assert [s["name"] for s in sources] == [DEFAULTS, "gemm-up", "other"]
    assert sources[1]["file"] == str(slower)


def test_repeated_profile_names_stay_apart(cli_json, tmp_path: Path, no_bundled) -> None:
    paths = []
    for scale in (0.9, 1.1):
        path = tmp_path / f"p{scale}.json"
        path.write_text(json.dumps(gemm_up_profile_json(scale=scale)))
        paths.append(str(path))
    out = cli_json("validate", "serving", "--profile", paths[0], "--profile", paths[1])
    names = [s["name"] for s in out["serving"]["sources"]]
    assert names == [DEFAULTS, "gemm-up", "gemm-up (p1.1.json)"]
    row = next(r for r in out["serving"]["rows"] if r["metric"] == "ttft_ms"
               and r["device"] == "a100-80gb")
    assert row["by_source"][names[1]]["predicted"] > row["by_source"][names[2]]["predicted"]


def test_training_json_keeps_the_old_keys(cli_json, a100_profile: Path, no_bundled) -> None:
    out = cli_json("validate", "training", "--profile", str(a100_profile))["training"]
    summary = {s["table"]: s for s in out["summary"]}
    assert summary["TARGET"]["mape_pct"] <= 10.0  # defaults, as before
    assert summary["FOUNDRY-H100"]["by_source"]["gemm-up"] is None
    target = summary["TARGET"]["by_source"]["gemm-up"]
    assert target["rows"] == 24 and target["defaults_mape_pct"] == summary["TARGET"]["mape_pct"]
    rows = [r for r in out["rows"] if r["source"] == "SC21-T1"]
    assert all(r["by_source"]["gemm-up"]["predicted"] > r["predicted"] for r in rows)


def test_training_shows_the_issue15_tables(cli, cli_json, no_bundled) -> None:
    """The uneven-split rows (Llama 3 405B PP16, BLOOM PP12) and the held-out H100 tables are
    in `fleetsim validate training`, with the split in the config and a HELDOUT-H100 total."""
    from simulator.training.validation import HELDOUT_H100_TABLES, load_published

    out = cli_json("validate", "training", "--no-profile")["training"]
    summary = {s["table"]: s for s in out["summary"]}
    for table in (*HELDOUT_H100_TABLES, "LLAMA3-T4", "BLOOM-176B", "HELDOUT-H100"):
        assert table in summary, table
    data = load_published()
    assert summary["HELDOUT-H100"]["rows"] == int(data.source.isin(HELDOUT_H100_TABLES).sum())
    configs = {r["source"]: r["config"] for r in out["rows"]}
    assert "[balanced 7+8x14+7]" in configs["LLAMA3-T4"]
    assert "[balanced 5+6x10+5]" in configs["BLOOM-176B"]
    code, text, err = cli("validate", "training", "--no-profile")
    assert code == 0, err
    assert "MEGATRON-H100" in text and "HELDOUT-H100 = " in text


# ------------------------------------------------------------------ bad input

def _write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


@pytest.mark.parametrize(("name", "data", "needles"), [
    ("wrong-format.json", {**gemm_up_profile_json(), "format": "something-else"},
     ("key 'format'", "fleetsim-profile")),
    ("v1.json", {**gemm_up_profile_json(), "version": 1}, ("key 'version'", "older")),
    ("unknown-device.json", {**gemm_up_profile_json(), "device": "a100-999gb"},
     ("key 'device'", "a100-999gb", "h100-sxm")),
    ("malformed.json", "{not json", ("malformed JSON",)),
    ("no-source.json", {k: v for k, v in gemm_up_profile_json().items() if k != "source"},
     ("source.description",)),
])
def test_bad_profile_is_one_line_exit_2(cli, tmp_path: Path, no_bundled, name, data,
                                        needles) -> None:
    path = _write(tmp_path, name, data)
    code, out, err = cli("validate", "all", "--profile", path)
    one_line_error(code, err, path, *needles)
    assert out == ""


def test_missing_profile_file_is_one_line(cli, tmp_path: Path, no_bundled) -> None:
    path = str(tmp_path / "absent.json")
    code, _, err = cli("validate", "serving", "--profile", path, "--json")
    one_line_error(code, err, path)


def test_no_profile_with_profile_is_refused(cli, a100_profile: Path) -> None:
    code, out, err = cli("validate", "--no-profile", "--profile", str(a100_profile))
    one_line_error(code, err, "--no-profile")
    assert out == ""
