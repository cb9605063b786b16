"""Fidelity of the training simulator against published Megatron-LM runs (issue 3 targets).

Fails when the MAPE over SC'21 Table 1 + Korthikanti et al. rows exceeds 10%, any of those
rows is off by more than 20%, or a published ordering is lost. The held-out H100 rows
(llm-foundry, Llama 3, Megatron-LM README, torchtitan, NeMo; issue 15) are reported (printed
per table), never pinned: only a factor-of-two sanity bound is asserted. Every published row
with an uneven pipeline split (Llama 3 405B on PP16, BLOOM-176B on PP12) runs as published.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from hwmodels.errors import ConfigError
from hwmodels.parallel import stage_layer_counts
from simulator.training import validation
from simulator.training.validation import (
    HELDOUT_A100_TABLES,
    HELDOUT_H100_TABLES,
    MAPE_TARGET_PCT,
    MAX_ROW_ERROR_PCT,
    TARGET_TABLES,
    UNEVEN_SPLIT_TABLES,
    load_published,
    predict_row_full,
    row_setup,
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
    assert len(table) == len(load_published()) >= 63
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


# -- issue 15: uneven pipeline splits run as published -------------------------------------

# The split each source publishes: Llama 3 Sec. 3.3.2 (126 layers on PP16, first and last
# stage one layer fewer); Megatron-DeepSpeed's 'type:transformer|embedding' partition of
# BLOOM's 70 layers + 2 embeddings over PP12.
PUBLISHED_SPLITS = {"LLAMA3-T4": (7,) + (8,) * 14 + (7,), "BLOOM-176B": (5,) + (6,) * 10 + (5,)}
SHOWN_SPLITS = {"LLAMA3-T4": "balanced 7+8x14+7", "BLOOM-176B": "balanced 5+6x10+5"}


def _stage_totals(counts: tuple[int, ...], pp: int) -> tuple[int, ...]:
    return tuple(sum(counts[s::pp]) for s in range(pp))


@pytest.mark.parametrize("source", UNEVEN_SPLIT_TABLES)
def test_uneven_split_rows_run_as_published(table: pd.DataFrame, source: str) -> None:
    data = load_published()
    rows = data[data.source == source]
    assert len(rows) >= 1
    for index, row in rows.iterrows():
        s = row_setup(row)
        p = s.parallel
        assert (p.tp, p.pp, p.dp, p.cp) == (row.tp, row.pp, row.dp, row.cp)
        assert s.model.num_layers == row.layers and row.layers % (p.pp * p.vpp) != 0
        counts = stage_layer_counts(s.model.num_layers, p)
        assert _stage_totals(counts, p.pp) == PUBLISHED_SPLITS[source]
        got = predict_row_full(row)
        assert got.pipeline_split == SHOWN_SPLITS[source]
        assert f"[{SHOWN_SPLITS[source]}]" in got.config  # the config string shows the split
        shown = table.set_index("row").loc[index]
        assert shown.config == got.config and shown.predicted == got.predicted > 0


def test_llama3_first_and_last_virtual_stage_lose_the_layer() -> None:
    """With the interleaved schedule the layer comes off the first chunk of stage 0 and the
    last chunk of the last stage (the ones holding the embedding and the loss)."""
    data = load_published()
    s = row_setup(data[data.source == "LLAMA3-T4"].iloc[0])
    counts = stage_layer_counts(s.model.num_layers, s.parallel)
    assert len(counts) == s.parallel.pp * s.parallel.vpp
    assert counts[0] == counts[-1] == min(counts) < max(counts) == counts[1]


# -- issue 15: held-out H100 rows are reported, not pinned ---------------------------------

def test_heldout_h100_rows_are_reported_with_a_sanity_bound(table: pd.DataFrame) -> None:
    """Print each held-out table's errors. Assert only that each prediction is within a
    factor of two of what was published (a broken model, not a fidelity target)."""
    held = table[table.source.isin(HELDOUT_H100_TABLES)]
    assert set(held.source) == set(HELDOUT_H100_TABLES)
    assert set(held.device) == {"h100-sxm"}
    print(held.groupby("source").error_pct.agg(["count", "mean", lambda e: e.abs().mean()])
          .round(1).to_string())
    ratio = held.predicted / held.published
    assert ratio.between(0.5, 2.0).all(), held[~ratio.between(0.5, 2.0)].to_string()


def test_heldout_a100_rows_run_on_mosaicml_a100_nodes(table: pd.DataFrame) -> None:
    """llm-foundry's A100 table (every seq-2048 row) runs on A100-80GB over 8 x 200 GbE RoCE
    per node, the same FSDP1 plan as its H100 rows; same sanity bound, errors printed."""
    held = table[table.source.isin(HELDOUT_A100_TABLES)]
    assert set(held.source) == set(HELDOUT_A100_TABLES) and len(held) == 11
    assert set(held.device) == {"a100-80gb"}
    data = load_published()
    setup = row_setup(data[data.source == "FOUNDRY-A100"].iloc[0])
    assert setup.cluster.inter_node.name == "roce-200g"
    assert setup.parallel.zero == 3 and setup.parallel.dp == setup.cluster.num_devices
    print(held[["model", "published", "predicted", "error_pct"]].round(1).to_string())
    ratio = held.predicted / held.published
    assert ratio.between(0.5, 2.0).all(), held[~ratio.between(0.5, 2.0)].to_string()


def test_torchtitan_rows_memory_against_the_measured_peak() -> None:
    """torchtitan measured each row's peak memory (docs/performance.md at d4c86e3: 82.4 / 77.0
    GiB on 8 GPUs, 67.0 / 62.0 on 128, eager / compiled). With its eager fp32 loss
    (LossImpl.EAGER_FP32) ours is within 10% of each: -1..-2% eager, +6% compiled (Inductor's
    saved-tensor savings are not modelled); with the fused loss it read -16..-28%."""
    data = load_published()
    rows = data[data.source == "TITAN-H100"]
    assert len(rows) == 4
    for _, row in rows.iterrows():
        measured = validation.published_memory_gib(row)
        assert measured is not None
        got = predict_row_full(row).peak_memory_gib
        assert got is not None
        print(row.n_devices, row.notes, f"{got:.1f} GiB vs {measured} GiB")
        assert abs(got - measured) / measured < 0.10, (row.notes, got, measured)
        if "compile" not in str(row.notes):
            assert abs(got - measured) / measured < 0.03, (row.notes, got, measured)


def test_heldout_tables_share_no_row_with_the_target() -> None:
    assert not (set(HELDOUT_H100_TABLES) | set(HELDOUT_A100_TABLES)) & set(TARGET_TABLES)


# -- issue 15: every training_published*.csv is read; MOE- rows need their module -----------

def _write(folder: Path, name: str, rows: list[str]) -> None:
    header = ",".join(load_published().columns)
    (folder / name).write_text("# test data\n" + header + "\n" + "\n".join(rows) + "\n")


def _copy_row(source: str, like: str = "SC21-T1") -> str:
    row = load_published().query("source == @like").iloc[0].copy()
    row["source"] = source
    return ",".join("" if pd.isna(v) else str(v) for v in row.to_list())


def test_load_published_reads_every_training_published_file(tmp_path: Path,
                                                            monkeypatch) -> None:
    monkeypatch.setattr(validation, "_moe_row_setup", lambda: None)
    _write(tmp_path, "training_published.csv", [_copy_row("SC21-T1")])
    _write(tmp_path, "training_published_extra.csv", [_copy_row("EXTRA-T1")])
    _write(tmp_path, "other.csv", [_copy_row("IGNORED")])
    data = load_published(tmp_path)
    assert list(data.source) == ["SC21-T1", "EXTRA-T1"]  # the main file first


def test_moe_rows_are_left_out_without_their_module(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, validation.MOE_MODULE, None)  # import raises
    assert validation._moe_row_setup() is None
    _write(tmp_path, "training_published.csv", [_copy_row("SC21-T1")])
    _write(tmp_path, "training_published_moe.csv", [_copy_row("MOE-TEST")])
    assert list(load_published(tmp_path).source) == ["SC21-T1"]
    with pytest.raises(ConfigError, match="validation_moe"):
        row_setup(pd.Series({"source": "MOE-TEST", "notes": ""}))


def test_moe_rows_dispatch_to_row_setup_moe(tmp_path: Path, monkeypatch) -> None:
    seen = []
    module = types.ModuleType(validation.MOE_MODULE)
    sc21 = row_setup(load_published().query("source == 'SC21-T1'").iloc[0])

    def row_setup_moe(row: pd.Series) -> validation.RowSetup:
        seen.append(row.source)
        return sc21

    module.row_setup_moe = row_setup_moe  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, validation.MOE_MODULE, module)
    _write(tmp_path, "training_published.csv", [_copy_row("SC21-T1")])
    _write(tmp_path, "training_published_moe.csv", [_copy_row("MOE-TEST")])
    data = load_published(tmp_path)
    assert list(data.source) == ["SC21-T1", "MOE-TEST"]
    assert row_setup(data.iloc[1]) is sc21 and seen == ["MOE-TEST"]


def test_torchtitan_rows_fit_the_memory_they_ran_in() -> None:
    """torchtitan's selective AC is its per-op policy (selective_ac_option 'op' in the
    llama3_8b.toml the tables ran): modelled as such, the published local batch 2 at seq 8192
    fits the 96 GB H100s it ran on (docs/performance.md reports 62-82 GiB); modelled as
    Megatron's core-attention recompute it needed ~104 GiB."""
    data = load_published()
    rows = data[data.source == "TITAN-H100"]
    assert len(rows) == 4
    for _, row in rows.iterrows():
        assert str(row_setup(row).parallel.recompute) == "selective-op"
        assert predict_row_full(row).fits_memory, row.to_dict()


def test_foundry_rows_reduce_grads_as_their_mixed_precision_mode_says():
    """llm-foundry's tables ran Composer 0.16.4 (b2a43a147): MP Mode DEFAULT reduces the
    FSDP grads in fp32, PURE (the A100 70B rows) in bf16."""
    data = load_published()
    rows = data[data.source.str.startswith("FOUNDRY")]
    modes = [str(row_setup(row).parallel.grad_reduce_dtype) for _, row in rows.iterrows()]
    assert modes.count("bf16") == 2 and modes.count("fp32") == len(rows) - 2
