"""Sweeps: grid x seeds through an executor, failures as rows, atomic Parquet/CSV, plot."""

from __future__ import annotations

import _executor_tasks as _tasks
import pandas as pd
import pytest

from hwmodels.errors import ConfigError
from planners.executors import LocalExecutor
from planners.sweep import (
    evaluate_training,
    grid_points,
    parse_grid,
    plot_sweep,
    sweep,
    write_results,
)
from simulator.schema import set_dotted

BASE = {"cluster": {"num_devices": 8}, "work": 100.0, "speed": {"value": 2.0}}


def test_grid_product_and_results():
    grid = {"cluster.num_devices": [0, 4, 8], "speed.value": [1.0, 2.0]}
    with LocalExecutor(max_workers=2) as ex:
        df = sweep(BASE, grid, _tasks.evaluate_toy, ex)
    assert len(df) == 6
    assert list(df.columns[:2]) == ["cluster.num_devices", "speed.value"]
    ok = df[df.ok]
    expected = 100.0 / (ok["cluster.num_devices"] * ok["speed.value"])
    assert ok.time_s.to_numpy() == pytest.approx(expected.to_numpy())
    assert ok["breakdown.compute_s"].to_numpy() == pytest.approx(ok.time_s.to_numpy())
    assert "stages" not in df.columns  # lists are not summaries
    failed = df[~df.ok]
    assert list(failed["cluster.num_devices"]) == [0, 0]
    assert all(e.startswith("ZeroDivisionError: no devices") for e in failed.error)
    assert BASE["cluster"]["num_devices"] == 8  # the base mapping is never mutated


def test_multi_seed_rows_are_distinct_and_reproducible():
    grid = {"speed.value": [1.0, 2.0]}
    a = sweep(BASE, grid, _tasks.evaluate_toy, LocalExecutor(max_workers=1), num_seeds=3,
              seed=7)
    b = sweep(BASE, grid, _tasks.evaluate_toy, LocalExecutor(max_workers=1), num_seeds=3,
              seed=7)
    assert len(a) == 6 and a.seed.nunique() == 3
    pd.testing.assert_frame_equal(a.drop(columns="duration_s"), b.drop(columns="duration_s"))
    assert a[a["speed.value"] == 1.0].time_s.nunique() == 3


def test_write_parquet_csv_atomically(tmp_path):
    df = sweep(BASE, {"speed.value": [1.0, 4.0]}, _tasks.evaluate_toy,
               LocalExecutor(max_workers=1))
    for name in ("out/sweep.parquet", "out/sweep.csv"):
        path = write_results(df, tmp_path / name)
        back = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        assert back.time_s.tolist() == pytest.approx(df.time_s.tolist())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sweep.csv", "sweep.parquet"]
    with pytest.raises(ConfigError, match="allowed: .parquet, .pq, .csv"):
        write_results(df, tmp_path / "sweep.xlsx")


def test_failed_write_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.csv"
    path.write_text("old\n")

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError):
        write_results(pd.DataFrame({"a": [1]}), path)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


def test_plot(tmp_path):
    df = sweep(BASE, {"cluster.num_devices": [2, 4, 8], "speed.value": [1.0, 2.0]},
               _tasks.evaluate_toy, LocalExecutor(max_workers=1))
    fig = plot_sweep(df, "cluster.num_devices", "time_s", hue="speed.value",
                     path=tmp_path / "sweep.png")
    assert len(fig.axes[0].lines) == 2
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    with pytest.raises(ConfigError, match="no column 'nope'"):
        plot_sweep(df, "nope", "time_s")


def test_grid_parsing_and_errors():
    assert parse_grid(["training.micro_batch=1,2,4", "parallelism.recompute=full,none"]) == {
        "training.micro_batch": [1, 2, 4], "parallelism.recompute": ["full", "none"]}
    with pytest.raises(ConfigError, match="--grid"):
        parse_grid(["micro_batch"])
    with pytest.raises(ConfigError, match="grid.a"):
        grid_points({"a": []})
    m = {"a": {"b": 1}}
    set_dotted(m, "a.c.d", 2)
    assert m == {"a": {"b": 1, "c": {"d": 2}}}
    with pytest.raises(ConfigError, match="--grid a.b.c"):
        set_dotted(m, "a.b.c", 3, where="--grid")


def test_training_sweep_end_to_end():
    base = {"model": "llama3-8b",
            "cluster": {"device": "h100-sxm", "num_devices": 8},
            "training": {"seq_len": 4096, "global_batch": 32, "micro_batch": 1},
            "parallelism": {"tp": 1, "pp": 1, "dp": "auto", "zero": 1,
                            "recompute": "selective"}}
    with LocalExecutor(max_workers=2) as ex:
        df = sweep(base, {"parallelism.tp": [1, 2, 3]}, evaluate_training, ex)
    assert df.ok.tolist() == [True, True, False]  # tp=3 does not divide 32 heads / 8 devices
    assert (df[df.ok].tokens_per_s > 0).all()
    assert "breakdown.bubble_s" in df.columns
