"""Power model: idle/TDP bounds, DVFS shape, and Splitwise's power-capping direction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import ops
from hwmodels.catalog import load_device
from hwmodels.dtypes import DType
from hwmodels.errors import ConfigError
from hwmodels.power import (
    FREQ_EXPONENT,
    MIN_FREQ_SCALE,
    capped_time_s,
    freq_scale_for_cap,
    operating_clock,
    power_capped,
    power_w,
    utilization_from_roofline,
)
from hwmodels.specs import DeviceSpec

H100 = load_device("h100-sxm")
A100 = load_device("a100-80gb")


@pytest.mark.parametrize("device", [H100, A100])
def test_idle_and_tdp_bounds(device: DeviceSpec) -> None:
    assert power_w(device, compute_util=0.0) == device.idle_w
    assert power_w(device, compute_util=0.0, memory_util=0.0, freq_scale=0.5) == device.idle_w
    full = power_w(device, compute_util=1.0, memory_util=1.0)
    assert full == pytest.approx(device.tdp_w)  # a full load is power-limited, never above
    assert power_w(device, compute_util=1.0) <= device.tdp_w
    assert power_w(device, compute_util=0.2, memory_util=0.9) < 0.75 * device.tdp_w


def test_full_load_throttles_to_about_085_of_max_clock() -> None:
    """H100 SXM dense GEMMs run power-limited near 1.65-1.75 GHz of a 1.98 GHz max clock."""
    assert 1.6 / 1.98 < operating_clock(1.0, 1.0) < 1.8 / 1.98
    assert operating_clock(0.1, 0.9) == 1.0


def test_compute_power_follows_dvfs_exponent() -> None:
    """Below the throttle point the compute term scales as f^2.4 (memory term fixed)."""
    util = 0.5
    p1 = power_w(H100, compute_util=util) - H100.idle_w
    p8 = power_w(H100, compute_util=util, freq_scale=0.8) - H100.idle_w
    base = p1 - (H100.tdp_w - H100.idle_w) * 0.9 * util  # remove the compute term at f = 1
    assert (p8 - base) / (p1 - base) == pytest.approx(0.8 ** FREQ_EXPONENT, rel=1e-9)


def _slowdown(compute_s: float, memory_s: float, cap_fraction: float) -> float:
    util = utilization_from_roofline(compute_s, memory_s)
    scale = freq_scale_for_cap(H100, cap_fraction * H100.tdp_w,
                               compute_util=util.compute_util, memory_util=util.memory_util)
    return capped_time_s(1.0, compute_fraction=util.compute_fraction, freq_scale=scale)


def test_splitwise_power_cap_direction() -> None:
    """Splitwise (ISCA'24, Sec. III, DGX-H100): under a 70% power cap the compute-bound prompt
    phase slows down markedly while the memory-bound token phase is nearly unaffected."""
    prefill = _slowdown(0.9, 0.1, 0.7)  # compute_fraction 0.9
    decode = _slowdown(0.15, 0.85, 0.7)
    assert 1.2 <= prefill <= 1.3
    assert decode < 1.1
    # a mid-size prefill chunk (compute_fraction 0.8) lands in the same band
    assert 1.15 <= _slowdown(0.8, 0.2, 0.7) <= 1.3


def test_cap_edges() -> None:
    assert freq_scale_for_cap(H100, 700, compute_util=1.0, memory_util=1.0) == 1.0
    assert freq_scale_for_cap(H100, 800, compute_util=1.0) == 1.0
    assert freq_scale_for_cap(H100, 100, compute_util=1.0, memory_util=0.5) == MIN_FREQ_SCALE
    with pytest.raises(ConfigError, match="idle"):
        freq_scale_for_cap(H100, 50, compute_util=1.0)
    with pytest.raises(ConfigError, match="compute_util"):
        power_w(H100, compute_util=1.5)
    with pytest.raises(ConfigError, match="freq_scale"):
        capped_time_s(1.0, compute_fraction=0.5, freq_scale=0.0)


def test_capped_time_formula() -> None:
    assert capped_time_s(2.0, compute_fraction=0.5, freq_scale=0.5) == pytest.approx(3.0)
    assert capped_time_s(2.0, compute_fraction=0.0, freq_scale=0.5) == pytest.approx(2.0)
    util = utilization_from_roofline(3.0, 1.0)
    assert (util.compute_util, util.memory_util, util.compute_fraction) == (1.0, 1 / 3, 0.75)
    assert utilization_from_roofline(0.0, 0.0).compute_util == 0.0


@settings(max_examples=100, deadline=None)
@given(cu=st.floats(0.0, 1.0), mu=st.floats(0.0, 1.0), cap=st.floats(0.3, 1.0))
def test_cap_respected_and_power_monotone(cu: float, mu: float, cap: float) -> None:
    cap_w = cap * H100.tdp_w
    scale = freq_scale_for_cap(H100, cap_w, compute_util=cu, memory_util=mu)
    assert MIN_FREQ_SCALE <= scale <= 1.0
    power = power_w(H100, compute_util=cu, memory_util=mu, freq_scale=scale)
    if scale > MIN_FREQ_SCALE and cu > 0:  # the SM clock cannot cap memory-only power
        assert power <= cap_w + 1e-6
    assert H100.idle_w <= power <= H100.tdp_w + 1e-9
    assert power_w(H100, compute_util=min(1.0, cu + 0.1), memory_util=mu) >= \
        power_w(H100, compute_util=cu, memory_util=mu) - 1e-9


# --- a static power cap on a device (training: cluster.power_cap_w, plan train --power-cap-w)


def test_power_cap_at_tdp_changes_nothing() -> None:
    capped = power_capped(H100, H100.tdp_w)
    assert capped.sm_clock_scale == 1.0
    assert capped.compute_peak(DType.BF16) == H100.peak(DType.BF16)


def test_lower_caps_leave_lower_clocks() -> None:
    scales = [power_capped(H100, w).sm_clock_scale for w in (700, 600, 500, 400, 300)]
    assert scales == sorted(scales, reverse=True) and scales[-1] < scales[0]
    # 500 W of 700 W: below the uncapped clock, above the floor a cap can drive it to
    assert MIN_FREQ_SCALE < power_capped(H100, 500).sm_clock_scale < 0.9
    # the nameplate peak (MFU's denominator) is untouched
    assert power_capped(H100, 500).peak(DType.BF16) == H100.peak(DType.BF16)


def test_a_cap_slows_compute_bound_kernels_only() -> None:
    capped = power_capped(H100, 500)
    big = (ops.gemm_time(capped, 8192, 8192, 8192, "bf16", profile="defaults")
           / ops.gemm_time(H100, 8192, 8192, 8192, "bf16", profile="defaults"))
    assert big == pytest.approx(1.0 / capped.sm_clock_scale, rel=1e-3)
    copy = (ops.memory_time(capped, 1e9, profile="defaults")
            / ops.memory_time(H100, 1e9, profile="defaults"))
    assert copy == pytest.approx(1.0)


@pytest.mark.parametrize("watts", [H100.idle_w, 10.0, H100.tdp_w + 1, True])
def test_a_cap_outside_idle_to_tdp_is_refused(watts: float) -> None:
    with pytest.raises(ConfigError) as err:
        power_capped(H100, watts, key="cluster.power_cap_w")
    assert err.value.key == "cluster.power_cap_w" and "700" in str(err.value)
