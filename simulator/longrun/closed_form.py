r"""Closed forms: expected ETTR (Kokolis et al., HPCA'25) and checkpoint intervals (Young, Daly).

Notation (all in seconds): M = job MTTF = 1 / (N_nodes * r_f) with r_f the per-node failure
rate; tau = compute time between checkpoints; delta = training stall per checkpoint (sync
write, or async snapshot); R = fixed restart overhead (detection + re-init + checkpoint load).

Kokolis et al. ("Revisiting Reliability in Large-Scale Machine Learning Research Clusters",
HPCA 2025, Section on estimating ETTR) assume: failures of the job form a Poisson process
(exponential inter-failure times, rate N*r_f, independent of node age); every failure costs
a fixed restart overhead plus the work since the last checkpoint; checkpoints are periodic;
failures are rare compared with the interval (first order in tau/M and R/M). Under these
assumptions the expected ETTR (productive time / wall-clock time) is, to first order,

    E[ETTR] ~= tau / (tau + delta) * (1 - (R + (tau + delta) / 2) / M)            (kokolis_ettr)

(a failure lands uniformly inside a checkpoint cycle of length tau + delta, so it loses half
a cycle on average plus R; the factor tau/(tau+delta) is the checkpoint stall). With
delta -> 0 this is the paper's form E[ETTR] ~= 1 - (u0 + dt_cp / 2) / MTTF as we recall it;
we derived the expression above from first principles under the paper's assumptions rather
than copying it, so treat the attribution of the exact algebra as ours.

The exact renewal-reward result for the same assumptions (failures also striking during the
restart, which then starts over; Daly 2006, eq. for the expected segment time) is

    E[ETTR] = tau / (M * exp(R / M) * (exp((tau + delta) / M) - 1))             (exact_ettr)

whose first-order expansion is kokolis_ettr. Young (1974): tau_opt = sqrt(2 * delta * M).
Daly (2006, FGCS 22(3) "A higher order estimate of the optimum checkpoint interval"):
tau_opt = sqrt(2 delta M) * (1 + sqrt(delta / (2M)) / 3 + (delta / (2M)) / 9) - delta for
delta < 2M, and tau_opt = M otherwise.
"""

from __future__ import annotations

import math

from hwmodels.errors import ConfigError


def _check(**values: float) -> None:
    for key, value in values.items():
        if not (value >= 0 and math.isfinite(value)):
            raise ConfigError(f"must be a finite number >= 0, got {value!r}", key=key)


def kokolis_ettr(*, mttf_s: float, interval_s: float, stall_s: float, restart_s: float) -> float:
    """First-order expected ETTR (Kokolis et al. assumptions), clipped at 0."""
    _check(mttf_s=mttf_s, interval_s=interval_s, stall_s=stall_s, restart_s=restart_s)
    if mttf_s <= 0 or interval_s <= 0:
        raise ConfigError("mttf_s and interval_s must be > 0", key="mttf_s/interval_s")
    cycle = interval_s + stall_s
    return max(0.0, interval_s / cycle * (1.0 - (restart_s + cycle / 2.0) / mttf_s))


def exact_ettr(*, mttf_s: float, interval_s: float, stall_s: float, restart_s: float) -> float:
    """Exact expected ETTR for Poisson failures with fixed restart cost (renewal reward)."""
    _check(mttf_s=mttf_s, interval_s=interval_s, stall_s=stall_s, restart_s=restart_s)
    if mttf_s <= 0 or interval_s <= 0:
        raise ConfigError("mttf_s and interval_s must be > 0", key="mttf_s/interval_s")
    m = mttf_s
    return interval_s / (m * math.exp(restart_s / m) * math.expm1((interval_s + stall_s) / m))


def young_interval_s(*, stall_s: float, mttf_s: float) -> float:
    """Young (1974): sqrt(2 * delta * M)."""
    _check(stall_s=stall_s, mttf_s=mttf_s)
    return math.sqrt(2.0 * stall_s * mttf_s)


def daly_interval_s(*, stall_s: float, mttf_s: float) -> float:
    """Daly (2006) higher-order optimum checkpoint interval."""
    _check(stall_s=stall_s, mttf_s=mttf_s)
    if stall_s >= 2.0 * mttf_s:
        return mttf_s
    x = stall_s / (2.0 * mttf_s)
    return math.sqrt(2.0 * stall_s * mttf_s) * (1.0 + math.sqrt(x) / 3.0 + x / 9.0) - stall_s
