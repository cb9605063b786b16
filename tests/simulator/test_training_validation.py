"""Fidelity of the training simulator against published Megatron-LM runs (issue 3 targets).

Fails when the MAPE over SC'21 Table 1 + Korthikanti et al. rows exceeds 10%, any of those
rows is off by more than 20%, or a published ordering is lost. llm-foundry H100 rows are
reported (printed), not asserted.
"""

from __future__ import annotations

import pandas as pd
import pytest

from simulator.training.validation import (
    MAPE_TARGET_PCT,
    MAX_ROW_ERROR_PCT,
    TARGET_TABLES,
    summarize,
    validate_training,
)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    df = validate_training()
    with pd.option_context("display.width", 200, "display.max_columns", 10):
        print(df.drop(columns=["notes"]).round(2).to_string())
        print(summarize(df).round(2).to_string())
    return df


def test_every_published_row_is_predicted(table: pd.DataFrame) -> None:
    assert len(table) == 43
    assert table.predicted.gt(0).all()


def test_mape_over_target_tables(table: pd.DataFrame) -> None:
    target = table[table.source.isin(TARGET_TABLES)]
    assert len(target) == 24
    mape = target.error_pct.abs().mean()
    assert mape <= MAPE_TARGET_PCT, f"MAPE {mape:.1f}% > {MAPE_TARGET_PCT}%"


def test_no_target_row_worse_than_20_pct(table: pd.DataFrame) -> None:
    target = table[table.source.isin(TARGET_TABLES)]
    worst = target.loc[target.error_pct.abs().idxmax()]
    assert abs(worst.error_pct) <= MAX_ROW_ERROR_PCT, \
        f"{worst.source} {worst.model} {worst.config}: {worst.error_pct:+.1f}%"


def test_selective_recompute_beats_full_by_the_published_margin(table: pd.DataFrame) -> None:
    t = table[table.source == "KORTH-T3T5"]
    for model, part in t.groupby("model"):
        full = part[part.config.str.endswith("full")].iloc[0]
        sel = part[part.config.str.endswith("selective")].iloc[0]
        published = full.published / sel.published
        predicted = full.predicted / sel.predicted
        assert predicted > 1.0, model
        assert predicted == pytest.approx(published, rel=0.10), model


def test_layer_table_orderings(table: pd.DataFrame) -> None:
    t = table[table.source == "KORTH-T4"].set_index("config").predicted
    assert t["tp8 sp=False full"] > t["tp8 sp=False selective"] > t["tp8 sp=False none"]
    assert t["tp8 sp=True none"] < t["tp8 sp=False none"]
    assert t["tp8 sp=True selective"] < t["tp8 sp=False selective"]


def test_ptdp_throughput_falls_with_data_parallel_size(table: pd.DataFrame) -> None:
    t = table[(table.source == "SC21-T2") & ~table.config.str.contains("zero3")]
    for _, part in t.groupby("model"):
        assert part.predicted.is_monotonic_decreasing
        assert part.published.is_monotonic_decreasing


def test_zero3_without_model_parallelism_collapses_as_gpus_grow(table: pd.DataFrame) -> None:
    """SC'21 Table 2: 144 -> 88 -> 44 TFLOP/s (175B) and 138 -> 98 -> 48 (530B) with ZeRO-3."""
    t = table[(table.source == "SC21-T2") & table.config.str.contains("zero3")]
    for model, part in t.groupby("model"):
        pred = part.predicted.to_numpy()
        pub = part.published.to_numpy()
        assert (pred[1:] < pred[:-1]).all(), model
        assert pred[-1] / pred[0] == pytest.approx(pub[-1] / pub[0], abs=0.15), model


def test_ptdp_beats_zero3_at_scale(table: pd.DataFrame) -> None:
    t = table[table.source == "SC21-T2"]
    for model in t.model.unique():
        part = t[t.model == model]
        z = part[part.config.str.contains("zero3")].predicted.iloc[-1]
        ptdp = part[~part.config.str.contains("zero3")].predicted.iloc[-1]
        assert ptdp > z, model
