"""MAPE per accelerator (fleetsim.cli.validate_accel, `fleetsim validate`,
benchmarks/accel_mape.py): grouping, the before column from accel_before_*.csv, n/a where the
base commit could not express a row, bad before files exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetsim.cli import validate_cmds
from fleetsim.cli.validate_accel import (
    accel_report,
    accel_table,
    accelerator_of,
    before_files,
    read_before,
    table_rows,
)
from hwmodels.errors import ConfigError

HEAD = "source,row,device,metric,published,before_pred,before_setup\n"
BEFORE_TPU = HEAD + (
    "TPU-T,t1,tpu-v5e,tokens_per_s_per_GPU,100,80,flat 256-chip node\n"
    "TPU-T,t2,v5e,tokens_per_s_per_GPU,200,260,flat 256-chip node\n"
    "TPU-S,s1,tpu-v5e,out_tokens_per_s_per_gpu,50,,not expressible: no preallocated cache\n")
BEFORE_AMD = HEAD + "AMD-S,a1,mi300x,out_tokens_per_s_per_gpu,1000,n/a,not expressible\n"


def _rows(*items: tuple[str, str, float]) -> list[dict]:
    return [{"source": s, "device": d, "error_pct": e} for s, d, e in items]


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_accelerator_label_resolves_aliases() -> None:
    assert accelerator_of("v5e").label == "google/tpu-v5e"
    assert accelerator_of("mi300x").label == "amd/mi300x"
    assert accelerator_of("not-a-chip").label == "?/not-a-chip"


def test_table_groups_by_device_with_vendor_totals() -> None:
    rows = _rows(("A", "mi300x", 20.0), ("A", "mi300x", -10.0), ("B", "mi250x", 4.0),
                 ("C", "tpu-v5e", -6.0))
    table = {e["accelerator"]: e for e in accel_table(rows)}
    assert table["amd/mi300x"]["rows"] == 2
    assert table["amd/mi300x"]["mape_pct"] == pytest.approx(15.0)
    assert table["amd/mi300x"]["max_abs_error_pct"] == pytest.approx(20.0)
    assert table["amd (all)"]["mape_pct"] == pytest.approx(34.0 / 3)
    assert table["amd (all)"]["devices"] == ["mi250x", "mi300x"]
    assert "google (all)" not in table  # one device: no total
    assert table["google/tpu-v5e"]["before_mape_pct"] is None
    assert table["google/tpu-v5e"]["before_total"] == 0


def test_before_column_and_not_expressible(tmp_path: Path) -> None:
    before = read_before([_write(tmp_path, "accel_before_tpu.csv", BEFORE_TPU)])
    assert math.isnan(before.before_pred.iloc[2])
    report = {"training": {"rows": [{"source": "TPU-T", "device": "tpu-v5e",
                                     "error_pct": 5.0}]},
              "serving": {"rows": [{"source": "TPU-S", "device": "tpu-v5e",
                                    "error_pct": -8.0}]}}
    out = accel_report(report, before)
    (train,) = out["training"]
    assert train["before_rows"] == 2 and train["before_total"] == 2
    assert train["before_mape_pct"] == pytest.approx((20.0 + 30.0) / 2)
    (serve,) = out["serving"]
    assert serve["before_rows"] == 0 and serve["before_total"] == 1
    assert serve["before_mape_pct"] is None
    cells = table_rows(out["serving"])[0]
    assert cells[4] == "n/a" and cells[5] == "0/1"
    assert out["unassigned_before"] == []


def test_before_rows_of_no_suite_are_reported(tmp_path: Path) -> None:
    before = read_before([_write(tmp_path, "accel_before_amd.csv", BEFORE_AMD)])
    out = accel_report({"training": {"rows": []}}, before,
                       suite_sources={"training": set(), "serving": {"OTHER"}})
    assert out["training"] == []  # a row of no suite counts in none of them
    assert [r["source"] for r in out["unassigned_before"]] == ["AMD-S"]
    # a suite's before rows show even where it has no current rows on that device
    out = accel_report({"training": {"rows": []}}, before,
                       suite_sources={"training": {"AMD-S"}})
    (entry,) = out["training"]
    assert entry["accelerator"] == "amd/mi300x" and entry["rows"] == 0
    assert entry["mape_pct"] is None and entry["before_total"] == 1
    # a source another suite owns goes there, not to unassigned
    out = accel_report({"training": {"rows": []}}, before,
                       suite_sources={"training": set(), "serving": {"AMD-S"}})
    assert out["unassigned_before"] == [] and out["training"] == []


@settings(max_examples=50, deadline=None)
@given(errs=st.lists(st.floats(-90, 300, allow_nan=False), min_size=1, max_size=12))
def test_mape_is_mean_abs_and_bounded_by_worst(errs: list[float]) -> None:
    (entry,) = accel_table(_rows(*[("A", "mi300x", e) for e in errs]))
    assert entry["mape_pct"] == pytest.approx(sum(abs(e) for e in errs) / len(errs))
    assert entry["mape_pct"] <= entry["max_abs_error_pct"] + 1e-9


@pytest.mark.parametrize(("text", "key"), [
    ("source,row,device,metric,published\nA,1,mi300x,m,1\n", "before_pred"),
    (HEAD + "A,1,mi300x,m,0,1,x\n", "published"),
    (HEAD + "A,1,mi300x,m,abc,1,x\n", "published/before_pred"),
    (HEAD + "A,1,mi300x,m,10,fast,x\n", "published/before_pred"),
])
def test_bad_before_file(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, "accel_before_bad.csv", text)
    with pytest.raises(ConfigError) as info:
        read_before([path])
    assert info.value.key == key and info.value.file == str(path)


def test_before_files_folder(tmp_path: Path) -> None:
    _write(tmp_path, "accel_before_b.csv", BEFORE_AMD)
    _write(tmp_path, "accel_before_a.csv", BEFORE_TPU)
    _write(tmp_path, "other.csv", "x\n")
    assert [p.name for p in before_files(tmp_path)] == ["accel_before_a.csv",
                                                        "accel_before_b.csv"]
    with pytest.raises(ConfigError):
        before_files(tmp_path / "missing")


def _fake_report(suite: str = "all", sources: object = ()) -> dict:
    rows = [{"row": 0, "source": "TPU-T", "model": "m", "device": "tpu-v5e", "config": "c",
             "metric": "tokens_per_s_per_GPU", "published": 100.0, "predicted": 110.0,
             "error_pct": 10.0, "by_source": {}}]
    data = {"sources": [], "rows": rows,
            "summary": [{"table": "TPU-T", "rows": 1, "mape_pct": 10.0,
                         "max_abs_error_pct": 10.0, "by_source": {}}]}
    names = ("training", "serving") if suite == "all" else (suite,)
    return {n: json.loads(json.dumps(data)) for n in names}


def test_cli_validate_adds_the_table(cli, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_cmds, "validation_report", _fake_report)
    monkeypatch.setattr(validate_cmds, "published_sources",
                        lambda: {"training": {"TPU-T"}, "serving": {"TPU-S"}})
    _write(tmp_path, "accel_before_tpu.csv", BEFORE_TPU)
    code, out, err = cli("validate", "training", "--no-profile", "--before-dir", str(tmp_path),
                         "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"training"}
    assert {"sources", "rows", "summary"} <= set(data["training"])  # today's keys kept
    (entry,) = data["training"]["accelerators"]
    assert entry["accelerator"] == "google/tpu-v5e" and entry["mape_pct"] == 10.0
    assert entry["before_mape_pct"] == pytest.approx(25.0) and entry["before_total"] == 2
    assert data["training"]["before_unassigned"] == []
    code, out, err = cli("validate", "training", "--no-profile", "--before-dir", str(tmp_path))
    assert code == 0, err
    assert "MAPE per accelerator" in out and "google/tpu-v5e" in out


def test_cli_bad_before_dir_exits_2(cli, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate_cmds, "validation_report", _fake_report)
    code, _, err = cli("validate", "--before-dir", str(tmp_path / "nope"))
    assert code == 2 and err.count("\n") == 1 and "--before-dir" in err
    _write(tmp_path, "accel_before_x.csv", "source,row\nA,1\n")
    code, _, err = cli("validate", "--before-dir", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "accel_before_x.csv" in err and "key 'device'" in err and "(allowed:" in err


def test_benchmark_script_prints_the_same_table(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("accel_mape", root / "benchmarks" /
                                                  "accel_mape.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    monkeypatch.setattr(mod, "suite_rows", lambda suite, devices: [
        {"source": "TPU-T" if suite == "training" else "TPU-S", "device": "tpu-v5e",
         "error_pct": -12.0}])
    monkeypatch.setattr(mod, "published_sources",
                        lambda: {"training": {"TPU-T"}, "serving": {"TPU-S"}})
    _write(tmp_path, "accel_before_tpu.csv", BEFORE_TPU)
    assert mod.main(["--json", "--before-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["training"][0]["mape_pct"] == 12.0
    assert data["serving"][0]["before_mape_pct"] is None
    assert mod.main(["--markdown", "--before-dir", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert "| google/tpu-v5e | 1 | 12.0 | 12.0 | 25.0 | 2/2 |" in md
    assert "| google/tpu-v5e | 1 | 12.0 | 12.0 | n/a | 0/1 |" in md
