"""The best published MFU per device class (planners.credibility) counts only MFUs a 16-bit
plan can be compared with, for every accelerator with bundled rows."""

from __future__ import annotations

import pandas as pd
import pytest

from planners.credibility import (
    SCALE_FRACTION,
    assess_mfu,
    best_published_mfu,
    device_class,
    published_mfus,
    row_mfu,
)


@pytest.mark.parametrize(("name", "cls"), [
    ("a100-80gb", "a100"), ("h100-sxm", "h100"), ("tpu-v5e", "tpu-v5e"), ("tpu-v5p", "tpu-v5p"),
    ("ascend-910b3", "ascend"), ("gaudi2", "gaudi2"),
])
def test_device_class(name: str, cls: str) -> None:
    assert device_class(name) == cls


def _row(**kw: object) -> pd.Series:
    base = dict(source="X", model="m", params_B=10.0, hardware="H100-SXM (test)", n_devices=8,
                metric="tokens_per_s_per_GPU", value=5000.0, notes="")
    return pd.Series({**base, **kw})


def test_fp8_rows_are_measured_against_the_fp8_peak() -> None:
    bf16, fp8 = row_mfu(_row()), row_mfu(_row(notes="FP8-CS GEMMs"))
    assert bf16 is not None and fp8 is not None
    assert fp8.mfu == pytest.approx(bf16.mfu / 2, rel=1e-3)  # dense fp8 peak ~2x bf16 on H100


def test_moe_rows_have_no_6n_mfu_and_notes_read_both_orders() -> None:
    assert row_mfu(_row(source="MOE-X")) is None
    assert row_mfu(_row(notes="published (61.10% MFU)")).mfu == pytest.approx(0.611)
    assert row_mfu(_row(notes="MFU 56.3% of peak")).mfu == pytest.approx(0.563)


def test_tpu_rows_count_under_their_generation() -> None:
    """'TPU v5e (1x v5e-256)' is tpu-v5e; its ceiling is a published MaxText MFU (notes)."""
    best = best_published_mfu("tpu-v5e")
    assert best is not None and best.basis == "notes" and best.source == "MAXTEXT-V5E"


@pytest.mark.parametrize("cls", ["a100", "h100", "tpu-v5e", "tpu-v5p", "tpu-v6e", "ascend",
                                 "gaudi2"])
def test_every_ceiling_is_one_a_16_bit_plan_can_reach(cls: str) -> None:
    """No bundled ceiling above 75% of peak (the old reading gave H100 74% from an FP8 row and
    H800 628% from an MoE row's total parameters)."""
    rows = published_mfus(cls)
    assert rows and all(0 < r.mfu < 0.75 for r in rows), [r.describe() for r in rows[:3]]


def test_the_at_scale_ceiling_only_counts_runs_of_comparable_size() -> None:
    """best_published_mfu(cls, n) keeps rows on >= n devices: it never rises as n grows, and
    each one it returns ran on >= n devices."""
    last = 1.0
    for n in (0, 8, 64, 256, 1024, 4096):
        best = best_published_mfu("a100", n)
        if best is None:
            continue
        assert best.n_devices >= n and best.mfu <= last
        last = best.mfu
    assert best_published_mfu("a100", 10**7) is None


def test_a_plan_above_its_scale_but_within_the_class_gets_a_note() -> None:
    whole = best_published_mfu("a100")
    n = 1024
    at = best_published_mfu("a100", n // SCALE_FRACTION)
    assert whole is not None and at is not None and at.mfu < whole.mfu
    between = assess_mfu((at.mfu + whole.mfu) / 2, "a100-80gb", num_devices=n)
    assert not between.exceeds and between.exceeds_at_scale
    assert between.warning() is None
    note = between.scale_note()
    assert note is not None and f">= {n // SCALE_FRACTION} devices" in note
    assert at.source in note and whole.source in note
    below = assess_mfu(at.mfu * 0.9, "a100-80gb", num_devices=n)
    assert below.warning() is None and below.scale_note() is None
    above = assess_mfu(whole.mfu + 0.01, "a100-80gb", num_devices=n)
    assert above.warning() is not None and above.scale_note() is None
    # no device count: only the class ceiling is consulted (as before)
    assert assess_mfu((at.mfu + whole.mfu) / 2, "a100-80gb").scale_note() is None
    huge = assess_mfu(at.mfu * 0.5, "a100-80gb", num_devices=10**7)
    assert huge.exceeds_at_scale and "no bundled run has that many devices" in huge.scale_note()
