"""Gaudi training rows (training_published_gaudi.csv): LLM Foundry MPT-7B on one HLS-Gaudi2 node
and MLPerf v3.1 GPT-3 175B on 256 / 384 Gaudi 2 run on the 21-port RoCE mesh with 3 scale-out
ports per card, with bounded, reported errors (+13% / +14% / +14% today; regression guards, not
fidelity targets: no constant is set from these rows)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hwmodels.parallel import FSDPImpl
from simulator.training.validation import load_published, row_setup, validate_training
from simulator.training.validation_gaudi import TABLE_SETUPS

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "DATABRICKS-GAUDI2"
SOURCES = ("DATABRICKS-GAUDI2", "MLPERF31-GAUDI2")
ROW_BOUND_PCT = 30.0


def test_row_runs_on_an_hls_gaudi2_node() -> None:
    assert SOURCE in TABLE_SETUPS
    row = load_published().query("source == @SOURCE").iloc[0]
    setup = row_setup(row)
    assert setup.cluster.device.name == "gaudi2"
    assert setup.cluster.intra_node.name == "gaudi2-roce"
    assert setup.cluster.scale_up is not None
    assert setup.parallel.zero == 3 and setup.parallel.fsdp_impl is FSDPImpl.FSDP1


def test_mlperf_rows_run_the_submission_plan() -> None:
    rows = load_published().query("source == 'MLPERF31-GAUDI2'")
    assert len(rows) == 2
    for _, row in rows.iterrows():
        setup = row_setup(row)
        p, c = setup.parallel, setup.cluster
        assert (p.tp, p.pp, p.dp, p.zero) == (8, int(row.pp), int(row.dp), 0)
        assert p.world_size == int(row.n_devices) == c.num_devices
        assert c.nics_per_node == 24 and c.inter_node.name == "roce-100g"
        assert str(setup.training.dtype) == "fp8" and p.sequence_parallel


def test_errors_are_bounded() -> None:
    df = validate_training(sources=SOURCES)
    print(df[["model", "config", "published", "predicted", "error_pct"]].round(1).to_string())
    assert len(df) == 3
    assert df.error_pct.abs().max() <= ROW_BOUND_PCT


def test_before_figures_say_not_expressible() -> None:
    before = pd.read_csv(ROOT / "benchmarks/data/accel_before_gaudi.csv")
    assert list(before.row) == ["gaudi2-mpt-7b", "gaudi2-gpt3-n32", "gaudi2-gpt3-n48"]
    assert before.before_pred.isna().all()
    assert before.before_setup.str.startswith("not expressible").all()
