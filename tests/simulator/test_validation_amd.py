"""AMD validation rows (simulator/data/serving_published_amd.csv) and their before figures.

Tolerances are what the model reaches today from kernel-level inputs only (the bundled MI300X
profile from Azure's hipBLASLt / RCCL microbenchmarks and the vllm-rocm-0.6 preset); they are
asserted so a regression fails, and the large-batch rows' known optimism is pinned, not hidden:
+19% at batch 128 and +28% at batch 256 (see the report / README MAPE table).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hwmodels.catalog import load_device
from hwmodels.engine_profiles import AllReduceImpl, load_engine
from hwmodels.ops import curve_is_monotone, resolve_profile
from simulator.serving.validation import load_published, predict_row

ROOT = Path(__file__).parents[2]
BEFORE = ROOT / "benchmarks" / "data" / "accel_before_amd.csv"


def _rows() -> pd.DataFrame:
    df = load_published()
    return df[df.device == "mi300x"].reset_index(drop=True)


def _row_id(row: pd.Series) -> str:
    return str(row.notes).split(";")[0].removeprefix("row=")


@pytest.fixture(scope="module")
def predicted() -> pd.DataFrame:
    df = _rows()
    df["row"] = [_row_id(r) for _, r in df.iterrows()]
    df["pred"] = [predict_row(r, None) for _, r in df.iterrows()]  # bundled profile + preset
    df["err"] = df.pred / df.value - 1.0
    return df


def test_rows_are_bundled_with_ids_and_before_figures() -> None:
    df = _rows()
    assert len(df) == 11 and set(df.source) == {"OCI-405B-LAT", "OCI-405B-THR"}
    before = pd.read_csv(BEFORE)
    assert list(before.columns) == ["source", "row", "device", "metric", "published",
                                    "before_pred", "before_setup"]
    ids = {_row_id(r): r for _, r in df.iterrows()}
    assert set(before.row) == set(ids)
    for _, b in before.iterrows():
        assert b.published == pytest.approx(float(ids[b.row].value))
        assert b.metric == ids[b.row].metric


def test_static_batch_rows_within_tolerance(predicted: pd.DataFrame) -> None:
    lat = predicted[predicted.source == "OCI-405B-LAT"].set_index("batch")
    assert (lat.err.abs() <= 0.10).loc[[1, 2, 4, 8, 16, 32, 64]].all(), lat.err
    assert lat.err.loc[128] == pytest.approx(0.19, abs=0.06)  # known: too fast at large batch
    assert lat.err.loc[256] == pytest.approx(0.28, abs=0.06)
    assert lat.err.abs().mean() < 0.10


def test_offline_throughput_rows_within_tolerance(predicted: pd.DataFrame) -> None:
    thr = predicted[predicted.source == "OCI-405B-THR"]
    assert (thr.err.abs() <= 0.22).all(), thr.err
    assert (thr.err > 0).all()  # still optimistic: reported, not tuned away


def test_after_beats_before(predicted: pd.DataFrame) -> None:
    before = pd.read_csv(BEFORE).set_index("row")
    before_err = (before.before_pred / before.published - 1.0).abs()
    after_err = predicted.set_index("row").err.abs()
    assert after_err.mean() < before_err.loc[after_err.index].mean() - 0.05
    # the throughput rows the issue names (21-28% too high before) improve each
    thr = [r for r in after_err.index if r.startswith("OCI-405B-THR")]
    assert (after_err.loc[thr] < before_err.loc[thr]).all()


def test_catalog_defaults_reproduce_the_issue_pattern() -> None:
    """Kernel-only + catalog defaults: exact at batch 1, increasingly optimistic with batch
    (the behaviour issue 18 reports), so the improvement above is the profile's and preset's."""
    df = _rows()
    lat = df[df.source == "OCI-405B-LAT"].copy()
    lat["engine"] = "kernel-only"
    errs = [predict_row(r, "defaults") / r.value - 1.0 for _, r in lat.iterrows()]
    assert abs(errs[0]) < 0.02 and errs[-1] > 0.35
    assert errs == sorted(errs)


def test_profile_is_reproducible_and_kernel_level() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_mi300x_profile.py"),
                          "--check"], capture_output=True, cwd=ROOT, check=False)
    assert out.returncode == 0, "hwmodels/profiles/mi300x.json differs from its generator"
    data = json.loads((ROOT / "hwmodels" / "profiles" / "mi300x.json").read_text())
    assert data["source"]["kind"] == "measurements"
    prof = resolve_profile(load_device("mi300x"), None)
    curve = prof.gemm_curve("fp8")
    assert curve_is_monotone(curve)
    # measured: 955 TFLOPS at 4096^3 (0.365 of the 2614.9 peak) -> the fitted curve there
    x = 2.0 * 4096**3
    t = x / (2614.9e12 * curve(x)) + prof.kernel_overhead_s
    assert x / t / 1e12 == pytest.approx(955.17, rel=0.01)
    ar = prof.collectives["all_reduce"][8]
    assert ar(2**33) == pytest.approx(316.82e9)


def test_rocm_preset() -> None:
    eng = load_engine("vllm-rocm-0.6")
    assert eng.tp_allreduce is AllReduceImpl.CUSTOM and eng.cuda_graphs
    assert eng.custom_allreduce_max_bytes == 8 * 2**20
    assert 0 < eng.cpu_overlap < load_engine("vllm-0.6").cpu_overlap  # no multi-step by default
    assert "ROCm" in eng.source


def test_csv_comment_lines_name_sources() -> None:
    text = (ROOT / "simulator" / "data" / "serving_published_amd.csv").read_text()
    comments = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("Oracle Cloud Infrastructure blog" in ln for ln in comments)
    body = pd.read_csv(io.StringIO("\n".join(ln for ln in text.splitlines()
                                             if not ln.startswith("#"))))
    assert body.notes.str.startswith("row=").all()
